#!/usr/bin/env bash
# pyframes.sh NEAP PROG.py FAKE -- Python frames in traces (label: cli): a
# program with known allocation lines (tests/python/pyframes_prog.py) runs
# under `neap run --trace`, and `neap report` must name each line with its
# bytes: within 1% traced exactly, within the estimate's bounds sampled;
# its thread's line too; grouped by file and by function; two runs compared
# line by line; the pinning
# report must name the line whose survivors pin pages, at exit and at the
# moment the program marked (--at).  Then --native (Python frames merged
# with C ones) and --python-frames off (C frames only).  First, FAKE
# (tests/python/fake_python.c), a program that looks like CPython 3.12:
# traced, it gets one warning that neap does not read its frames.
set -u
set -o pipefail
fail() { echo "FAIL: $*" >&2; exit 1; }
[ $# -eq 3 ] || fail "usage: $0 NEAP PROG.py FAKE"
NEAP=$1 PROG=$2 FAKE=$3
WORK=$(mktemp -d "${TMPDIR:-/tmp}/neap-pyframes.XXXXXX") || fail mktemp
trap 'rm -rf "$WORK"' EXIT

# --- an interpreter whose frames neap does not read -------------------------
"$NEAP" run -q --trace "$WORK/fake.trc" -- "$FAKE" >"$WORK/out" 2>"$WORK/err" ||
    { cat "$WORK/err"; fail "the fake interpreter failed under neap run --trace"; }
grep -q "^fake python done$" "$WORK/out" || fail "the fake interpreter did not finish"
n=$(grep -c "reads the frames of Python 3.11 only" "$WORK/err")
[ "$n" -eq 1 ] || { cat "$WORK/err"; fail "$n warnings about the interpreter's version, 1 expected"; }
grep -q "Python 3.12: traces show the interpreter's C functions" "$WORK/err" ||
    fail "the warning does not name the version: $(cat "$WORK/err")"
"$NEAP" report "$WORK/fake.trc" >"$WORK/fake.txt" 2>&1 || fail "neap report of the fake interpreter's trace failed"
grep -q "work (" "$WORK/fake.txt" || grep -q "fake_python" "$WORK/fake.txt" ||
    { cat "$WORK/fake.txt"; fail "the fake interpreter's trace has no C frames of its own"; }
echo "another version: one warning, C frames"

command -v python3 >/dev/null 2>&1 || { echo "SKIP: no python3"; exit 77; }
PY=$(python3 -c 'import sys; print(sys.executable)') || fail "python3 does not run"
case $("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])') in
3.11) ;;
*) echo "SKIP: Python frames are read from Python 3.11 only"; exit 77 ;;
esac
cp "$PROG" "$WORK/prog.py"
cd "$WORK" || fail cd
line_of() { grep -n "# $1\$" prog.py | cut -d: -f1; }
MAIN=$(line_of SITE_MAIN) THREAD=$(line_of SITE_THREAD) SMALL=$(line_of SITE_SMALL)
[ -n "$MAIN" ] && [ -n "$THREAD" ] && [ -n "$SMALL" ] || fail "no site markers in $PROG"
K=2000

# the row of a table (its title's first words) whose site is prog.py:LINE;
# prints "bytes blocks"
row() {  # row REPORT TITLE LINE
    awk -v title="$2" -v site="prog.py:$3)" '
        index($0, title) == 1 { on = 1; next }
        on && /^$/ { exit }
        on && index($0, site) { print $2, $3; exit }' "$1"
}
# |got - want| <= want * tol
near() { awk -v g="$1" -v w="$2" -v t="$3" 'BEGIN { d = g - w; if (d < 0) d = -d; exit !(d <= w * t) }'; }

# --- exact ------------------------------------------------------------------
"$NEAP" run -q --trace exact.trc -- "$PY" prog.py $K >out 2>err || { cat err; fail "neap run failed"; }
grep -q "^done $K $K " out || fail "the program did not finish: $(cat out err)"
"$NEAP" report --bytes exact.trc >exact.txt 2>exact.err || { cat exact.err; fail "neap report failed"; }
for spec in "$MAIN 10033 site_main" "$THREAD 3033 site_thread"; do
    set -- $spec
    want=$((K * $2))
    for table in "Top sites by total allocated" "Top sites live at the peak"; do
        r=$(row exact.txt "$table" "$1")
        [ -n "$r" ] || { cat exact.txt; fail "$table: no row for prog.py:$1"; }
        set -- $spec
        got=${r%% *} blocks=${r##* }
        near "$got" "$want" 0.01 || fail "$table: prog.py:$1 has $got bytes, $want expected (within 1%)"
        [ "$blocks" -ge $K ] && [ "$blocks" -le $((K + K / 100)) ] ||
            fail "$table: prog.py:$1 has $blocks blocks, $K expected"
    done
    grep -q "$3 (.*prog.py:$1)" exact.txt || fail "the site of line $1 is not named $3"
done
# the survivors at SITE_SMALL: 2,000 blocks of 133 bytes, live at exit, each
# alone on its page or nearly: that line leads the pinning table
pin=$(awk '/^Pinning at exit/ { on = 1; next } on && $1 == "1" { print; exit }' exact.txt)
case $pin in
*"prog.py:$SMALL)"*) ;;
*) sed -n '/^Pinning/,/all sites/p' exact.txt; fail "the pinning table does not lead with prog.py:$SMALL" ;;
esac
echo "exact: lines $MAIN, $THREAD named with their bytes; pinning led by line $SMALL"
# by file: prog.py's row holds both lines' bytes (and its other lines');
# by function: site_main's is its line's
"$NEAP" report --bytes --by file exact.trc >file.txt 2>&1 || fail "neap report --by file failed"
got=$(awk '/^Top sites by total allocated/ { on = 1; next } on && /^$/ { exit }
           on && $NF ~ /\/prog\.py$/ { print $2; exit }' file.txt)
[ -n "$got" ] && [ "$got" -ge $((K * 13066)) ] || { cat file.txt; fail "--by file: prog.py has '$got' bytes"; }
"$NEAP" report --bytes --by function exact.trc >func.txt 2>&1 || fail "neap report --by function failed"
got=$(awk '/^Top sites by total allocated/ { on = 1; next } on && /^$/ { exit }
           on && $NF == "site_main" { print $2; exit }' func.txt)
[ -n "$got" ] && near "$got" $((K * 10033)) 0.01 || { cat func.txt; fail "--by function: site_main has '$got' bytes"; }
echo "exact: by file and by function"
# the moment the program named (neap_trace_mark through ctypes), after the
# others were freed: the survivors' line keeps about a page per survivor,
# in the table and in words
"$NEAP" report --at mark:survivors exact.trc >at.txt 2>&1 || { cat at.txt; fail "neap report --at mark:survivors failed"; }
grep -q "^  shown        mark 'survivors'" at.txt || { cat at.txt; fail "--at: the moment shown is not the mark"; }
words=$(grep "<listcomp> (.*prog.py:$SMALL) keeps " at.txt) || { cat at.txt; fail "--at: no words for line $SMALL"; }
pages=$(echo "$words" | sed 's/.* keeps \([0-9,]*\) pages.*/\1/' | tr -d ,)
[ "$pages" -ge 1900 ] && [ "$pages" -le 2100 ] || fail "--at: line $SMALL keeps $pages pages, about 2,000 expected: $words"
echo "at the mark: line $SMALL keeps $pages pages"
# two runs compared at the same mark, site by site: line SITE_MAIN grew by
# the 10,033-byte blocks of the larger run
"$NEAP" run -q --trace small.trc -- "$PY" prog.py $((K / 10)) >out 2>err || { cat err; fail "the small run failed"; }
"$NEAP" report --bytes --at mark:survivors small.trc exact.trc >cmp.txt 2>&1 || { cat cmp.txt; fail "neap report A B failed"; }
diff=$(awk -v site="prog.py:$MAIN)" '/^Compared with/ { on = 1; next } on && index($0, site) { print $2; exit }' cmp.txt)
[ "$diff" = "+$((K * 9 / 10 * 10033))" ] || { cat cmp.txt; fail "the comparison gives line $MAIN '$diff', +$((K * 9 / 10 * 10033)) expected"; }
echo "compared: line $MAIN $diff"

# --- sampled: within 6 standard deviations of the estimate ----------------
I=16384
"$NEAP" run -q --trace sampled.trc --sample $I -- "$PY" prog.py $K >out 2>err || { cat err; fail "neap run --sample failed"; }
"$NEAP" report --bytes sampled.trc >sampled.txt 2>&1 || fail "neap report of the sampled trace failed"
for spec in "$MAIN 10033" "$THREAD 3033"; do
    set -- $spec
    want=$((K * $2))
    r=$(row sampled.txt "Top sites by total allocated" "$1")
    [ -n "$r" ] || { cat sampled.txt; fail "sampled: no row for prog.py:$1"; }
    got=${r%% *}
    tol=$(awk -v s="$2" -v k=$K -v i=$I 'BEGIN { p = 1 - exp(-s / i); print 6 * sqrt((1 - p) / (k * p)) }')
    near "$got" "$want" "$tol" || fail "sampled: prog.py:$1 has $got bytes, $want expected (within $tol)"
done
echo "sampled: lines $MAIN, $THREAD within the estimate's bounds"

# --- merged with the C frames ---------------------------------------------
"$NEAP" run -q --trace native.trc --native -- "$PY" prog.py 200 >out 2>err || { cat err; fail "neap run --native failed"; }
"$NEAP" report --by traceback native.trc >native.txt 2>&1 || fail "neap report of the --native trace failed"
# the stack of SITE_MAIN: its Python frames and C frames around them
awk -v site="prog.py:$MAIN)" '
    /^Top sites by total allocated/ { on = 1; next }
    on && index($0, site) { found = 1 }
    found && /^ +[0-9]+ / && !index($0, site) { exit }
    found { print }' native.txt >stack.txt
grep -q "prog.py:$MAIN)" stack.txt || { cat native.txt; fail "--native: no stack with prog.py:$MAIN"; }
grep -q "<module> (.*prog.py:" stack.txt || fail "--native: the module's frame is missing: $(cat stack.txt)"
grep -vq "\.py:" stack.txt || fail "--native: no C frame in the stack: $(cat stack.txt)"
echo "native: Python and C frames merged"

# --- C frames only ------------------------------------------------------------
"$NEAP" run -q --trace c.trc --python-frames off -- "$PY" prog.py 200 >out 2>err || fail "neap run --python-frames off failed"
"$NEAP" report c.trc >c.txt 2>&1 || fail "neap report of the C-frames trace failed"
if grep -q "prog.py:" c.txt; then fail "--python-frames off: Python lines in the report"; fi
echo "off: C frames only"

# --- the HTML report's flame graph, as a browser shows it --------------------
CHROME=$(command -v chromium || command -v chromium-browser || command -v google-chrome) ||
    { echo "no chromium: the browser check is left out"; exit 0; }
"$NEAP" report exact.trc --html r.html >/dev/null 2>&1 || fail "neap report --html failed"
timeout 120 "$CHROME" --headless --no-sandbox --disable-gpu --no-first-run \
    --user-data-dir="$WORK/chrome" --virtual-time-budget=5000 --dump-dom "file://$WORK/r.html#total" \
    2>chrome.err >total.html || { cat chrome.err >&2; fail "chromium could not load the page"; }
"$PY" - total.html "$K" "$MAIN" <<'PYEOF' || fail "the flame graph (total allocated) does not show the Python frames"
import re, sys
d = open(sys.argv[1]).read()
k = int(sys.argv[2])
svg = re.search(r'<svg[^>]*id="flame-svg".*?</svg>', d, re.S)
assert svg, "no flame graph drawn"
titles = re.findall(r'<title>([^<]*)</title>', svg.group(0))
def mib(t):
    m = re.search(r': ([0-9.]+) MiB \(', t)
    return float(m.group(1)) if m else None
main = [t for t in titles if t.startswith("site_main (") and "prog.py:%s)" % sys.argv[3] in t]
thread = [t for t in titles if t.startswith("site_thread (")]
assert main and thread, titles[:40]
assert any(t.startswith("&lt;module&gt; (") for t in titles), titles[:40]
want = k * 10033 / 2**20
assert abs(mib(main[0]) - want) <= 0.02 * want, (main[0], want)
PYEOF
echo "browser: the flame graph shows site_main, site_thread and <module>"
