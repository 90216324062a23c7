#!/usr/bin/env bash
# cpython_regrtest.sh LIB [NEAP] -- a subset of CPython's own regression tests
# (`python3 -m test`) on neap: on the preloaded library (LIB alone), or, given
# the neap command, under `neap run --lib LIB -- python3 -m test ...`, as
# users run it: the background thread giving pages back on time and every
# process publishing its statistics each second (NEAP_BACKGROUND=1 and
# NEAP_PUBLISH=1000, which neap run sets), in regrtest's worker processes
# too.  Both runs set PYTHONMALLOC=malloc, so that
# Python's objects, not only its big buffers, come from malloc: from the C
# library's in the plain run and from neap's in the neap run.  The output
# compared is not regrtest's own (it has timings, a load average and a random
# order of completion) but a reduction of it: every test file with its result,
# then every test case that did not pass (failed, error, skipped) with its
# outcome, taken from regrtest's JUnit XML, a count of cases per file, and the
# "Tests result" line.  So a test case that fails, errs or is skipped only
# under neap, a worker process that crashes, or a test that hangs (regrtest's
# --timeout) makes the outputs differ and the test fail; on failure the
# failing part of the neap run's regrtest log is printed.
#
# Needs the interpreter's test package (Debian: libpython3.X-testsuite);
# skips (77) without it.  Cost: about 40 s a run on 2 idle cores (regrtest -j2).
#
# The tests, and why each (seconds a run on a 2-core machine, one at a time):
#   test_list, test_tuple   growing, slicing and sorting sequences: realloc of
#                           the item arrays, many small objects (0.2, 0.4)
#   test_unicode            str building, joins, replace, encode/decode: many
#                           sizes of buffers, resized in place (0.7)
#   test_string             string.Template and Formatter: many small strs (0.1)
#   test_io                 buffered and text I/O, big reads and writes, large
#                           buffers freed and made again, threads (10.8; the
#                           slowest kept)
#   test_mmap               mmap objects next to the allocator's own mappings
#                           (0.2)
#   test_dict, test_set     hash tables grown and shrunk, resized under
#                           mutation (0.3, 1.3)
#   test_bytes              bytes/bytearray: resize in place, big repeats (0.9)
#   test_json, test_re      parsers and builders with many temporary objects
#                           (1.2, 0.3)
#   test_pickle             deep and big object graphs made and thrown away
#                           (2.3)
#   test_array, test_deque  C arrays resized by realloc; deque's fixed blocks
#                           (0.4, 0.5)
#   test_gc, test_weakref   the cyclic collector frees objects in bulk; weakref
#                           callbacks run during frees (1.7, 1.7)
#   test_capi               the C allocation API (PyMem_*, PyObject_*, calloc
#                           and realloc paths, PyMem_SetAllocator) (3.9)
#   test_tracemalloc        wraps the allocators and tracks every block (1.7)
#   test_sys                getsizeof, _debugmallocstats, getallocatedblocks
#                           (1.7)
#   test_threading,         threads that allocate and free concurrently, locks,
#   test_thread             thread-local state (12, mostly waiting; 1.1)
#   test_fork1              fork while other threads run: the allocator's locks
#                           in the child (5.2)
#   test_decimal, test_long libmpdec and big ints: buffers realloc'ed as numbers
#                           grow (1.3, 0.8)
#   test_ctypes             raw malloc/free/realloc from Python, callbacks (0.6)
#   test_sqlite3, test_zlib, test_bz2, test_lzma, test_hashlib, test_xml_etree_c
#                           C libraries (SQLite, zlib, bzip2, liblzma, OpenSSL,
#                           expat) that call malloc themselves (0.3 .. 0.6 each)
#   test_collections, test_itertools, test_memoryview
#                           containers, iterators holding references, buffer
#                           views over allocated memory (0.3, 1.1, 0.2)
# Left out for their cost (seconds a run): test_subprocess (21: fork/exec and
# waiting, little allocation), test_ssl (41: handshakes over sockets),
# test_signal (18: sleeps), test_queue (8: sleeps), test_tarfile (8: file
# I/O), test_multiprocessing_* and test_concurrent_futures (minutes);
# test_bigmem does nothing without -M and with it needs gigabytes.
# No -u resources are enabled (regrtest's default), so the "cpu" and
# "largefile" parts are skipped, alike in both runs.
#
# Under neap run, a smaller set (about 28 s a run): the tests above where
# the background thread and the publisher meet the program's own threads,
# forks and frees (test_threading, test_thread, test_fork1, test_gc,
# test_weakref, test_capi, test_tracemalloc, test_sys, test_mmap), and a
# few of the allocation-heavy ones (test_list, test_unicode, test_dict,
# test_set, test_bytes, test_json, test_pickle, test_array, test_deque,
# test_decimal, test_ctypes, test_sqlite3, test_zlib, test_memoryview);
# test_io, the slowest, and the rest are left to the preload run.
. "$(dirname "$0")/common.sh"
setup "$@"
NEAP_CMD=${2:-}
if [ -n "$NEAP_CMD" ]; then
    NEAP_CMD=$(cd "$(dirname "$NEAP_CMD")" && pwd)/$(basename "$NEAP_CMD")
    [ -x "$NEAP_CMD" ] || fail "no neap command at $NEAP_CMD"
fi
need python3
# the interpreter itself, not a wrapper script (pyenv shims are shell scripts)
PY=$(python3 -c 'import sys; print(sys.executable)') || fail "python3 does not run"
[ -x "$PY" ] || fail "no interpreter at $PY"
TESTS=(test_list test_tuple test_unicode test_string test_io test_mmap
       test_dict test_set test_bytes test_json test_re test_pickle test_array
       test_deque test_gc test_weakref test_capi test_tracemalloc test_sys
       test_threading test_thread test_fork1 test_decimal test_long test_ctypes
       test_sqlite3 test_zlib test_bz2 test_lzma test_hashlib test_xml_etree_c
       test_collections test_itertools test_memoryview)
if [ -n "$NEAP_CMD" ]; then
    TESTS=(test_threading test_thread test_fork1 test_gc test_weakref test_capi
           test_tracemalloc test_sys test_mmap test_list test_unicode test_dict
           test_set test_bytes test_json test_pickle test_array test_deque
           test_decimal test_ctypes test_sqlite3 test_zlib test_memoryview)
fi

# regrtest and every chosen test must be there (Debian's libpython3.X-stdlib
# has test.support and test.libregrtest but not the tests themselves)
missing=$("$PY" - "${TESTS[@]}" <<'PYEOF' 2>&1
import importlib.util, sys
for name in ["test.libregrtest"] + ["test." + t for t in sys.argv[1:]]:
    try:
        found = importlib.util.find_spec(name) is not None
    except ImportError:
        found = False
    if not found:
        print(name)
PYEOF
) || fail "$PY cannot look for its test package: $missing"
if [ -n "$missing" ]; then
    echo "SKIP: $PY lacks" $missing "(Debian: libpython3.X-testsuite)"
    exit 77
fi

export PYTHONMALLOC=malloc PYTHONDONTWRITEBYTECODE=1
unset PYTHONHASHSEED PYTHONSTARTUP

# neap run must hand the interpreter what it promises: the preload, the
# background thread, publishing, the run's pid
if [ -n "$NEAP_CMD" ]; then
    got=$("$NEAP_CMD" run -q --lib "$LIB" -- "$PY" -c 'import os, sys
print(os.environ.get("NEAP_BACKGROUND"), os.environ.get("NEAP_PUBLISH"),
      os.environ.get("NEAP_RUN_PID") == str(os.getpid()),
      os.environ.get("LD_PRELOAD", "").split(":")[0] == sys.argv[1])' "$LIB" 2>&1) ||
        fail "neap run python3 failed: $got"
    [ "$got" = "1 1000 True True" ] ||
        fail "under neap run the interpreter sees NEAP_BACKGROUND NEAP_PUBLISH, pid, preload: $got"
fi

# test_threading's test_import_from_another_thread asserts that `python -I`
# starts without importing threading; a .pth file in site-packages that imports
# it (some distributions' and sandboxes' do) fails it in both runs, which has
# nothing to do with the allocator: leave that one case out where it is so.
IGNORE=()
if ! "$PY" -I -c 'import sys; sys.exit("threading" in sys.modules)' 2>/dev/null; then
    IGNORE=(--ignore test.test_threading.ThreadTests.test_import_from_another_thread)
    echo "note: site imports threading here; leaving out test_import_from_another_thread"
fi

# reduce.py LOG XML: the comparable view of one regrtest run
cat >"$DATA/reduce.py" <<'PYEOF'
import collections, re, sys
import xml.etree.ElementTree as ET

log, xml_path = sys.argv[1], sys.argv[2]
files, result = [], []
# "0:00:03 load avg: 1.2 [ 3/34/1] test_x failed (1 error) (3.1 sec) -- running (1): ..."
progress = re.compile(r"\[\s*\d+/\d+(?:/\d+)?\] (test_\w+) (.*)$")
duration = re.compile(r" \((?:\d+ hour ?)?(?:\d+ min ?)?(?:\d+(?:\.\d+)? (?:sec|ms))?\)$")
with open(log, errors="replace") as f:
    for line in f:
        line = line.rstrip("\n")
        m = progress.search(line)
        if m:
            status = m.group(2).split(" -- ")[0]
            files.append("file %s %s" % (m.group(1), duration.sub("", status)))
        elif line.startswith("== Tests result:"):
            result.append(line)
for line in sorted(files):
    print(line)

try:
    root = ET.parse(xml_path).getroot()
except (OSError, ET.ParseError) as e:
    print("no JUnit XML:", type(e).__name__)
    root = None
if root is not None:
    counts = collections.Counter()
    cases = []
    for case in root.iter("testcase"):
        name = case.get("name", "?")
        module = name.split(".")[1] if name.startswith("test.") else name.split(".")[0]
        counts[module] += 1
        kinds = [c.tag for c in case if c.tag in ("failure", "error", "skipped")]
        if kinds:
            cases.append("case %s %s" % (name, ",".join(kinds)))
    for line in sorted(cases):
        print(line)
    for module in sorted(counts):
        print("cases %s %d" % (module, counts[module]))
for line in result:
    print(line)
PYEOF

scenario() {
    local status=0
    "${RUN[@]}" "$PY" -m test -j2 --randseed=1 --timeout=200 --junit-xml="$PWD/junit.xml" \
        ${IGNORE[@]+"${IGNORE[@]}"} "${TESTS[@]}" >regrtest.log 2>&1 || status=$?
    echo "regrtest exit status $status"
    "$PY" "$DATA/reduce.py" regrtest.log junit.xml
}

# on failure, show what went wrong in the neap run before the work directory
# goes: regrtest's log without the progress lines (tracebacks, crashes)
on_exit() {
    local status=$?
    if [ $status -ne 0 ] && [ -f "$WORK/neap/regrtest.log" ]; then
        echo "--- regrtest log of the neap run, progress lines left out (first 150 lines) ---"
        grep -v ' load avg: ' "$WORK/neap/regrtest.log" | head -n 150
        echo "--- the neap run's results (tests and cases not passed) ---"
        grep -v '^cases \|^file .* passed$\|^case .* skipped$' "$WORK/neap.out" | head -n 40
    fi
    rm -rf "$WORK"
    exit $status
}
trap on_exit EXIT

compare_runs
