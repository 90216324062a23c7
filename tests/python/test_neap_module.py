"""test_neap_module.py -- the `neap` Python module (python/neapmodule.c), driven by pytest.

    run_pytest.sh (ctest: python_module)
        LD_PRELOAD=libneap.so PYTHONMALLOC=malloc PYTHONPATH=<the built module>
        python3 -m pytest test_neap_module.py
            |-- this process is on neap: `import neap` works, every Python
            |   object comes from neap, tracing sees them
            +-- subprocesses of sys.executable: without the preload (ImportError),
                without PYTHONMALLOC (a warning), under `neap run` (NEAP_TEST_CMD)

Invariants the tests keep: tracing is stopped at the end of every test (the
fixture `tracing_off`), so one test's traces never reach the next; a
figure is checked against what the test itself allocated, with a margin, or
against a relation that must hold whatever else the interpreter allocates.

Allocation sites: a test that needs its own line to be the site (statistics
by 'lineno', compare_to, pinning) first checks what holds whether or not the
library records Python frames, then calls require_python_frames(), which
fails the test when no frame of the snapshot is a .py file (skips it in a
Python other than 3.11, whose frames the library does not read), and then
checks the site file:line.
"""
import ctypes
import os
import re
import subprocess
import sys
import threading
import tracemalloc

import pytest

import neap

HERE = os.path.abspath(__file__)
BASENAME = os.path.basename(__file__)
LIB = os.environ.get("NEAP_TEST_LIB", "")
MiB = 1 << 20


@pytest.fixture(autouse=True)
def tracing_off():
    neap.stop()
    yield
    neap.stop()


def line():
    """The line of the caller."""
    return sys._getframe(1).f_lineno


def python_frames(snapshot):
    for st in snapshot.statistics("traceback"):
        for f in st.traceback:
            if f.filename.endswith(".py"):
                return True
    return False


def require_python_frames(snapshot):
    if python_frames(snapshot):
        return
    if sys.version_info[:2] != (3, 11):
        pytest.skip("neap reads the Python frames of CPython 3.11 only, not %d.%d"
                    % sys.version_info[:2])
    pytest.fail("no Python frame (a .py file) in the snapshot's traces")


def site(stats, lineno):
    """The statistic (or diff, or pinning) whose site is this file at lineno."""
    found = [s for s in stats
             if s.traceback[-1].filename.endswith(BASENAME) and s.traceback[-1].lineno == lineno]
    assert found, "no site %s:%d among %s" % (BASENAME, lineno, [str(s) for s in stats[:10]])
    assert len(found) == 1
    return found[0]


def plain_env():
    env = dict(os.environ)
    for k in ("LD_PRELOAD", "PYTHONMALLOC"):
        env.pop(k, None)
    return env


def run_python(code, env):
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60)


# --- import -------------------------------------------------------------------

def test_import_outside_neap():
    r = run_python("import neap", plain_env())
    assert r.returncode != 0
    assert "ImportError" in r.stderr
    assert "does not run on neap" in r.stderr
    assert "neap run -- python3" in r.stderr
    assert "LD_PRELOAD=" in r.stderr


def test_import_with_neap_loaded_late():
    # the library loaded with dlopen after start-up: its functions are in the
    # process, but malloc is still the C library's
    assert LIB, "NEAP_TEST_LIB is not set"
    code = ("import ctypes, sys\n"
            "ctypes.CDLL(sys.argv[1], mode=ctypes.RTLD_GLOBAL)\n"
            "import neap\n")
    r = subprocess.run([sys.executable, "-c", code, LIB], env=plain_env(), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode != 0
    assert "ImportError" in r.stderr
    assert "malloc is not neap's" in r.stderr
    assert "neap run -- python3" in r.stderr


def test_import_with_pymalloc_warns():
    env = dict(os.environ)
    env.pop("PYTHONMALLOC", None)
    r = run_python("import neap; print(neap.rss() > 0)", env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "True"
    assert "RuntimeWarning" in r.stderr and "PYTHONMALLOC=malloc" in r.stderr


def test_import_under_neap_run():
    cmd = os.environ.get("NEAP_TEST_CMD")
    if not cmd:
        pytest.skip("NEAP_TEST_CMD (the neap command) is not set")
    code = ("import neap, warnings\n"
            "neap.start()\n"
            "x = [bytes(100) for _ in range(1000)]\n"
            "print(len(neap.take_snapshot()) >= 1000)\n")
    r = subprocess.run([cmd, "run", "-q", "--lib", LIB, "--", sys.executable, "-W",
                        "error::RuntimeWarning", "-c", code],
                       env=plain_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "True"


def test_mark_under_neap_run_trace(tmp_path):
    """neap.mark names a moment of the trace file that neap report --at shows."""
    cmd = os.environ.get("NEAP_TEST_CMD")
    if not cmd:
        pytest.skip("NEAP_TEST_CMD (the neap command) is not set")
    trc = str(tmp_path / "m.trc")
    code = ("import neap\n"
            "x = [bytes(1000) for _ in range(3000)]\n"
            "neap.mark('filled')\n"
            "del x\n"
            "neap.mark('emptied')\n")
    r = subprocess.run([cmd, "run", "-q", "--lib", LIB, "--trace", trc, "--", sys.executable, "-c",
                        code], env=plain_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    shown = {}
    for label in ("filled", "emptied"):
        rep = subprocess.run([cmd, "report", "--bytes", "--at", "mark:" + label, trc],
                             capture_output=True, text=True, timeout=60)
        assert rep.returncode == 0, rep.stderr
        line = [l for l in rep.stdout.splitlines() if l.startswith("  shown ")]
        assert line and ("mark '%s'" % label) in line[0], rep.stdout[:2000]
        shown[label] = int(line[0].split(": ", 1)[1].split()[0])
    # 3,000 blocks of 1,033 bytes freed between the marks
    assert shown["filled"] - shown["emptied"] >= 3000 * 1033, shown


def test_mark_without_trace_file():
    with pytest.raises(RuntimeError, match="writes no trace"):
        neap.mark("nothing")
    with pytest.raises(TypeError):
        neap.mark(3)


def test_on_neap():
    # this process: Python's objects are neap's blocks
    owns = ctypes.CDLL(None).neap_owns
    owns.argtypes = [ctypes.c_void_p]
    owns.restype = ctypes.c_int
    big = "z" * 100000
    assert owns(id(big)) == 1
    assert neap.library.endswith(".so") or ".so." in neap.library
    assert isinstance(neap.__version__, str) and neap.HAVE_TRACING


# --- the allocator and the process --------------------------------------------

def test_get_stats():
    st = neap.get_stats()
    for key in ("arenas_current", "bytes_live", "bytes_mapped", "pages_used", "heaps_current"):
        assert isinstance(st[key], int)
    sizes = [c["block_size"] for c in st["classes"]]
    assert sizes == sorted(sizes) and sizes[0] > 0
    before = st["bytes_live"]
    keep = [bytes(200) for _ in range(50000)]
    after = neap.get_stats()["bytes_live"]
    assert after - before >= 50000 * 200
    assert len(keep) == 50000


def statm_rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_rss_and_trim():
    assert isinstance(neap.trim(), bool)
    before = neap.rss()
    assert before > 0
    # psutil's memory_info().rss reads /proc/self/statm
    assert abs(neap.rss() - statm_rss()) < 8 * MiB
    info = neap.memory_info()
    assert info.rss > 0 and info.vms >= info.rss and info.peak_rss >= info.rss
    blob = b"x" * (100 * MiB)  # every page written
    grown = neap.rss()
    assert grown - before >= 90 * MiB
    del blob
    neap.trim()
    after = neap.rss()
    assert grown - after >= 90 * MiB, (before, grown, after)


def test_options():
    opts = neap.get_options()
    assert "PURGE_DELAY" in opts
    assert neap.get_option("purge_delay") == opts["PURGE_DELAY"]
    assert neap.get_option("NEAP_PURGE_DELAY") == opts["PURGE_DELAY"]
    neap.set_option("purge_delay", opts["PURGE_DELAY"] + 1)
    try:
        assert neap.get_option("purge_delay") == opts["PURGE_DELAY"] + 1
    finally:
        neap.set_option("purge_delay", opts["PURGE_DELAY"])
    with pytest.raises(ValueError):
        neap.get_option("no_such_option")


# --- tracing -----------------------------------------------------------------

def test_tracing_switches():
    assert not neap.is_tracing()
    neap.start(3)
    assert neap.is_tracing()
    assert neap.get_traceback_limit() == 3
    assert neap.get_sample_interval() == 0
    cur0, _ = neap.get_traced_memory()
    data = [bytes(1000) for _ in range(10000)]
    cur1, peak1 = neap.get_traced_memory()
    assert cur1 - cur0 >= 10000 * 1000
    assert peak1 >= cur1
    del data
    cur2, peak2 = neap.get_traced_memory()
    assert cur2 < cur1 - 9000 * 1000 and peak2 >= cur1
    neap.reset_peak()
    _, peak3 = neap.get_traced_memory()
    assert peak3 < peak2 - 9000 * 1000
    assert neap.get_tracemalloc_memory() > 0
    neap.clear_traces()
    assert neap.is_tracing()
    neap.stop()
    assert not neap.is_tracing()
    assert neap.get_traced_memory() == (0, 0)


def test_snapshot_needs_tracing():
    neap.start()
    neap.stop()
    with pytest.raises(RuntimeError, match="not tracing"):
        neap.take_snapshot()


def test_start_arguments():
    with pytest.raises(ValueError):
        neap.start(0)
    with pytest.raises(ValueError):
        neap.start(neap.MAX_FRAMES + 1)
    with pytest.raises(ValueError):
        neap.start(1, sample_interval=0)
    assert not neap.is_tracing()
    neap.start(2, sample_interval=64 * 1024)
    assert neap.get_sample_interval() == 64 * 1024
    data = [bytes(4000) for _ in range(5000)]
    snap = neap.take_snapshot()
    assert snap.sample_interval == 64 * 1024 and snap.traceback_limit == 2
    # sampled: estimates, but 20 MB of blocks cannot vanish
    assert sum(s.size for s in snap.statistics("filename")) >= 10 * MiB
    assert len(data) == 5000


def test_key_types():
    neap.start()
    snap = neap.take_snapshot()
    with pytest.raises(ValueError):
        snap.statistics("bogus")
    with pytest.raises(ValueError):
        snap.statistics("traceback", cumulative=True)
    with pytest.raises(ValueError):
        snap.pinning("bogus")
    assert isinstance(snap.statistics("lineno", cumulative=True), list)


SIZE_RE = r"\d+(\.\d)? (B|KiB|MiB|GiB)"


def test_statistics_lineno():
    n = 20000
    neap.start(1)
    data = [bytes(1000) for _ in range(n)]; here = line()
    snap = neap.take_snapshot()
    neap.stop()
    stats = snap.statistics("lineno")
    assert stats == sorted(stats, key=lambda s: (s.size, s.count), reverse=True)
    assert sum(s.size for s in stats) >= n * 1000
    assert any(s.size >= n * 1000 and s.count >= n for s in stats)
    assert re.fullmatch(r".+: size=%s, count=\d+, average=%s" % (SIZE_RE, SIZE_RE), str(stats[0]))
    f = stats[0].traceback[-1]
    assert isinstance(f, neap.Frame) and isinstance(f.lineno, int)
    assert str(stats[0].traceback) == str(f)
    require_python_frames(snap)
    s = site(stats, here)
    # n bytes objects of 1000 bytes (plus their headers) and the list
    assert n * 1000 <= s.size <= n * 1100 + MiB
    assert n <= s.count <= n + 100
    assert str(s).startswith("%s:%d: size=" % (s.traceback[-1].filename, here))
    assert "test_statistics_lineno" in s.traceback[-1].function
    # the frame's source line, as a Python traceback shows it
    assert s.traceback.format() == ['  File "%s", line %d, in %s' % (
        s.traceback[-1].filename, here, s.traceback[-1].function),
        "    data = [bytes(1000) for _ in range(n)]; here = line()"]
    assert len(data) == n


def test_compare_to():
    n = 40000
    neap.start(1)
    old = neap.take_snapshot()
    grow = [bytes(500) for _ in range(n)]; here = line()
    new = neap.take_snapshot()
    neap.stop()
    diffs = new.compare_to(old, "lineno")
    assert sum(d.size_diff for d in diffs) >= n * 500
    assert diffs[0].size_diff >= n * 500 and diffs[0].count_diff >= n
    for d in diffs:
        assert d.size - d.size_diff >= 0 and d.count - d.count_diff >= 0
    assert re.fullmatch(r".+: size=%s \(\+%s\), count=\d+ \(\+\d+\), average=%s"
                        % (SIZE_RE, SIZE_RE, SIZE_RE), str(diffs[0]))
    require_python_frames(new)
    d = site(diffs, here)
    assert d.size_diff >= n * 500 and n <= d.count_diff <= n + 100
    assert len(grow) == n


def test_pinning():
    n, step = 200000, 64
    neap.start(1)
    objs = [bytes(100) for _ in range(n)]; here = line()
    survivors = objs[::step]
    del objs
    snap = neap.take_snapshot()
    neap.stop()
    pins = snap.pinning()
    assert pins == sorted(pins, key=lambda p: (p.pinned, p.live), reverse=True)
    for p in pins:
        assert p.shared_pages <= p.pages and p.count >= 1 and p.arenas >= 1
        assert p.pinned <= p.pages * 4096
    # a survivor every 64 blocks of ~140 bytes: a page of its own each
    assert max(p.pages for p in pins) >= 0.8 * len(survivors)
    assert re.fullmatch(r".+ keeps [\d,]+ pages? \(%s\) for %s of live objects \([\d,]+ blocks?\)"
                        % (SIZE_RE, SIZE_RE), str(pins[0]))
    require_python_frames(snap)
    p = site(pins, here)
    # the survivors, and at most a few blocks the line's code keeps
    assert len(survivors) <= p.count <= len(survivors) + 10
    assert p.pages >= 0.8 * len(survivors)
    assert p.pinned >= 10 * p.live
    assert str(p).startswith("%s:%d keeps " % (p.traceback[-1].filename, here))


def test_traceback_key_and_format():
    neap.start(10)
    data = [bytes(3000) for _ in range(2000)]
    snap = neap.take_snapshot()
    neap.stop()
    stats = snap.statistics("traceback")
    assert stats and all(1 <= len(s.traceback) <= 10 for s in stats)
    lines = stats[0].traceback.format()
    assert lines and lines[0].startswith("  File ")
    assert stats[0].traceback.format(most_recent_first=True)[0].startswith("  File ")
    assert len(stats[0].traceback.format(limit=1)) <= 2
    assert len(data) == 2000


def test_filter_dump_load(tmp_path):
    neap.start(4)
    data = [bytes(300) for _ in range(5000)]
    snap = neap.take_snapshot()
    neap.stop()
    assert len(snap) >= 5000
    none = snap.filter_traces([neap.Filter(False, "*")])
    assert len(none) == 0 and none.statistics("lineno") == []
    assert len(snap.filter_traces([neap.Filter(True, "*")])) == len(snap)
    assert len(snap.filter_traces([])) == len(snap)
    # tracemalloc's own filters work too; a domain does not
    assert len(snap.filter_traces([tracemalloc.Filter(True, "*")])) == len(snap)
    with pytest.raises(ValueError, match="domain"):
        snap.filter_traces([tracemalloc.DomainFilter(True, 0)])
    with pytest.raises(TypeError):
        neap.Filter(True, 3)
    top = snap.statistics("lineno")[0].traceback[-1]
    only = snap.filter_traces([neap.Filter(True, top.filename, top.lineno)])
    assert 0 < len(only) <= len(snap)

    path = tmp_path / "snap.neap"
    snap.dump(path)
    loaded = neap.Snapshot.load(path)
    assert len(loaded) == len(snap)
    assert loaded.traceback_limit == snap.traceback_limit == 4
    assert loaded.statistics("lineno") == snap.statistics("lineno")
    assert loaded.compare_to(snap, "lineno")[0].size_diff == 0

    with pytest.raises(FileNotFoundError):
        neap.Snapshot.load(tmp_path / "missing")
    with pytest.raises(FileNotFoundError):
        snap.dump(tmp_path / "no" / "such" / "dir")
    bad = tmp_path / "bad.neap"
    bad.write_bytes(b"not a snapshot at all" * 10)
    with pytest.raises(ValueError, match="bad.neap"):
        neap.Snapshot.load(bad)
    assert len(data) == 5000


def test_threads():
    neap.start(2)
    errors = []

    def work(k):
        try:
            keep = []
            for i in range(20):
                keep.append([bytes(64 + k) for _ in range(2000)])
                if i % 5 == 0:
                    snap = neap.take_snapshot()
                    assert snap.statistics("lineno")
                    snap.pinning()
                    neap.get_stats()
                if i % 3 == 0:
                    keep.pop(0)
        except Exception as e:  # noqa: BLE001 -- reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert neap.take_snapshot().statistics("filename")
