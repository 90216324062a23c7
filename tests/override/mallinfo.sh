#!/usr/bin/env bash
# mallinfo.sh PROG [LIB] -- glibc's malloc introspection under neap: PROG
# (tests/override/mallinfo_prog.c) checks mallinfo2, mallinfo, mallopt and
# malloc_trim itself; this script checks what it printed: malloc_info's XML
# is well formed, says version "neap-1" and has the figures PROG saw at that
# moment (huge blocks as glibc's mmap total), and malloc_stats wrote glibc's
# header and neap's statistics to stderr.  With LIB, PROG runs with
# LD_PRELOAD=LIB; without, PROG is linked with libneap.a.
set -u
PROG=$1
LIB=${2:-}
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
command -v python3 >/dev/null 2>&1 || { echo "SKIP: no python3"; exit 77; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/neap-mallinfo.XXXXXX") || exit 1
trap 'rm -rf "$WORK"' EXIT
unset NEAP_STATS_FD NEAP_SHOW_STATS
if [ -n "$LIB" ]; then
    LD_PRELOAD=$LIB "$PROG" "$WORK/info.xml" >"$WORK/out" 2>"$WORK/err"
else
    "$PROG" "$WORK/info.xml" >"$WORK/out" 2>"$WORK/err"
fi || { cat "$WORK/err" >&2; fail "$PROG failed"; }
cat "$WORK/out"
grep -q "^Total (incl. mmap):" "$WORK/err" || { cat "$WORK/err"; fail "malloc_stats printed no glibc header to stderr"; }
grep -q "^in use bytes *= *[1-9]" "$WORK/err" || { cat "$WORK/err"; fail "malloc_stats: no bytes in use"; }
grep -q "^neap .* statistics" "$WORK/err" || { cat "$WORK/err"; fail "malloc_stats printed no neap statistics"; }
python3 - "$WORK/info.xml" "$WORK/out" <<'PY' || fail "malloc_info's XML: see above"
import sys
import xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()          # raises if not well formed
seen = dict(zip(*[iter(open(sys.argv[2]).read().split())] * 2))
assert root.tag == "malloc" and root.get("version") == "neap-1", root.attrib
heaps = root.findall("heap")
assert len(heaps) == 1, "heaps: %d" % len(heaps)
sizes = heaps[0].find("sizes").findall("size")
assert sizes, "no <size> in <sizes>"
for s in sizes:
    assert int(s.get("from")) <= int(s.get("to")), s.attrib
    assert int(s.get("total")) == int(s.get("count")) * int(s.get("to")), s.attrib
totals = {t.get("type"): t for t in root.findall("total")}
mmap = totals["mmap"]
assert int(mmap.get("count")) == int(seen["hblks"]), (mmap.attrib, seen)
assert int(mmap.get("size")) == int(seen["hblkhd"]), (mmap.attrib, seen)
assert int(mmap.get("size")) >= 64 << 20, mmap.attrib
system = {s.get("type"): int(s.get("size")) for s in root.findall("system")}
assert system["current"] == int(seen["arena"]), (system, seen)
assert system["max"] >= system["current"], system
neap = {n.get("type"): int(n.get("size")) for n in root.findall("neap")}
assert neap["bytes_live"] >= int(seen["uordblks"]) + int(seen["hblkhd"]) - 65536, (neap, seen)
assert neap["huge_current"] == int(seen["hblks"]), (neap, seen)
print("malloc_info: %d size classes, %d huge bytes, %d live" % (len(sizes), int(mmap.get("size")), neap["bytes_live"]))
PY
echo PASS
