#!/usr/bin/env bash
# report.sh NEAP MAKE_TRACE CASE -- `neap report` on synthetic traces (label:
# cli).  MAKE_TRACE (tests/cli/make_trace.c) writes traces of known content;
# the figures expected here are worked out by hand in its header comment.
# Sizes are checked with --bytes (exact counts).  Site names: when the
# report finds function names (symbols.c) they are make_trace's functions;
# otherwise frames are module+offset, and the checks that need names skip.
#
#   basic      totals, peak, the three top-site tables, a warning for the
#              free of an unknown block, the allocator frame skipped
#   traceback  --by traceback separates alpha<main from alpha<outer_caller;
#              --by function, --top, and both as --opt=VALUE
#   truncated  exit 0, the report of the first chunk, the warning with the
#              byte offset; corrupt: the same for a CRC mismatch, but an
#              error, exit 1
#   damaged    values no writer writes under correct CRCs (a block at
#              2^64-1, a growth whose offset + size wraps, a block moved past
#              the end of the address space): exit 1 (no signal, no hang),
#              the report of what came before, the error naming the record;
#              a stack id of 2^64-1 is read whole
#   killed     no end record: a warning, "live at the end"
#   sampled    estimates: 1000 B at interval 1000 counts as 1582 B, 1.6 blocks
#   grow       a sampled block grown by a realloc ('G': a part by its own
#              stack) and moved ('R'): both parts live at exit at the new
#              address, each weighted by its own size (s/(1-e^-s/interval),
#              worked out here), each pinned at address + offset (a page
#              shared); freed at the new address, nothing is live
#   pinning    pages, shares, arenas and ratios of a hand-made layout
#   compare    neap report A B and --compare: differences per site, sorted
#   html       --html writes one file with the expected ids, no network
#              reference, a script that parses (when node is installed)
#   browser    headless Chromium shows the page: the flame graph drawn with
#              the trace's figures (live at exit, and #total), the tables
#              filled, the three lines of the memory chart (RSS, pinned,
#              live); the marks trace at --at mark:phase1: its marks drawn
#              as labelled lines, the moment's line, the pinning in words,
#              the flame graph of the moment's live bytes
#   at         marks and --at WHEN on the marks trace (basic with three
#              marks): the marks' table (time, live, pinned bytes, a label
#              with an escape sequence shown escaped); --at mark:LABEL (the
#              first so named), mark:N, peak, times (the start, a tick, a
#              mark, the end) each with its live set, top sites and pinning
#              (figures worked out in make_trace.c), the pinning in words;
#              an unknown mark, mark:N past the last, a time past the end
#              and malformed WHENs exit 2 (the marks listed); two traces at
#              the same moment, one without the mark refused; --html with
#              the marks and the moment drawn
#   errors     missing file (1), a directory (1, "is a directory", no
#              report), not a trace (2), version from the future (1),
#              bad options and values out of range (2, the message naming
#              them), "--" ending the options, --help; --progress draws on
#              stderr
set -u
NEAP=$1
MAKE=$2
CASE=$3
WORK=$(mktemp -d "${TMPDIR:-/tmp}/neap-report.XXXXXX") || exit 1
trap 'rm -rf "$WORK"' EXIT
cd "$WORK" || exit 1

fail() {
    echo "FAIL: $*" >&2
    [ -f out ] && { echo "--- stdout:" >&2; cat out >&2; }
    [ -f err ] && { echo "--- stderr:" >&2; cat err >&2; }
    exit 1
}

# report WANT ARGS...: neap report ARGS into out/err, checks the exit status
report() {
    local want=$1
    shift
    "$NEAP" report "$@" >out 2>err
    local got=$?
    [ "$got" -eq "$want" ] || fail "neap report $* exited with $got, expected $want"
}

# has PATTERN: out has a line matching the extended regex PATTERN
has() {
    grep -Eq -- "$1" out || fail "no line matching '$1'"
}
# section TITLE: the lines of out from the one containing TITLE to the next blank line
section() {
    awk -v t="$1" 'index($0, t) { on = 1 } on && /^$/ { exit } on' out
}
# row TITLE N: row N (1-based) of the table under TITLE, columns squeezed
row() {
    section "$1" | grep -E "^ +$2 " | tr -s ' ' | sed 's/^ [0-9]* //'
}
# expect_row TITLE N TEXT: that row starts with TEXT
expect_row() {
    local got
    got=$(row "$1" "$2")
    case $got in
    "$3"*) ;;
    *) fail "row $2 of '$1' is '$got', expected it to start with '$3'" ;;
    esac
}

"$MAKE" basic basic.trace >/dev/null || fail "make_trace basic failed"
report 0 basic.trace --bytes
SYMS=0
grep -q 'site_alpha' out && SYMS=1
# site names: the function when symbolized, else module+offset (not checked)
name() {
    [ $SYMS = 1 ] && echo "$1" || echo ""
}

case $CASE in
basic)
    has '^neap report: basic.trace$'
    has '^  command +\./synthetic --kind$'
    has '^  process +pid 4242, '
    has '^  mode +every allocation$'
    has '^  end +exited with status 0$'
    has '^  allocated +32500 in 6 blocks \(6 allocation records, 3 frees, 5 stacks\)$'
    has '^  peak +30500 live, reached after 0\.050 s'
    has '^  at exit +11500 live in 4 blocks$'
    has '^  RSS +peak 2097152, last 2097152 \(the program counted 11500 live\)$'
    grep -q 'warning: 1 frees of blocks the trace does not know' err || fail "no warning for the unknown free"
    expect_row "live at exit" 1 "7000 2 3500 $(name site_beta)"
    expect_row "live at exit" 2 "4500 2 2250 $(name site_alpha)"
    [ -z "$(row "live at exit" 3)" ] || fail "a third site live at exit"
    expect_row "at the peak" 1 "20000 1 20000 $(name site_gamma)"
    expect_row "at the peak" 2 "5500 3 1833 $(name site_alpha)"
    expect_row "at the peak" 3 "5000 1 5000 $(name site_beta)"
    expect_row "total allocated" 1 "20000 1 20000 $(name site_gamma)"
    expect_row "total allocated" 2 "7000 2 3500 $(name site_beta)"
    expect_row "total allocated" 3 "5500 3 1833 $(name site_alpha)"
    # the innermost frame, in the fake libneap.so.0, is never a site
    ! grep -q 'libneap' out || fail "a frame of libneap was shown as a site"
    if [ $SYMS = 1 ]; then
        has 'site_beta \(make_trace\.c:[0-9]+\)$'
    else
        echo "note: no function names (symbols unavailable); names not checked"
        has 'make_trace\+0x[0-9a-f]+'
    fi
    # human-readable sizes without --bytes
    report 0 basic.trace
    has '^  allocated +31\.7 KiB in 6 blocks'
    has '^  peak +29\.8 KiB live'
    ;;
traceback)
    report 0 basic.trace --bytes --by traceback
    expect_row "live at exit" 1 "7000 2 3500 $(name site_beta)"
    expect_row "live at exit" 2 "3500 1 3500 $(name site_alpha)"
    expect_row "live at exit" 3 "1000 1 1000 $(name site_alpha)"
    if [ $SYMS = 1 ]; then
        section "live at exit" | grep -A1 '^ *2 ' | grep -q 'outer_caller' ||
            fail "alpha's traceback through outer_caller is not under row 2"
        section "live at exit" | grep -A1 '^ *3 ' | tail -1 | grep -q 'main' ||
            fail "alpha's direct traceback does not show main"
    fi
    report 0 basic.trace --bytes --by function --top 1
    expect_row "at the peak" 1 "20000 1 20000 $(name site_gamma)"
    [ -z "$(row "at the peak" 2)" ] || fail "--top 1 showed a second row"
    if [ $SYMS = 1 ]; then
        section "at the peak" | grep -q 'make_trace\.c' && fail "--by function still shows lines"
    fi
    # the same written --opt=VALUE, options after "--" taken as files
    report 0 --bytes --by=function --top=1 -- basic.trace
    expect_row "at the peak" 1 "20000 1 20000 $(name site_gamma)"
    [ -z "$(row "at the peak" 2)" ] || fail "--top=1 showed a second row"
    if [ $SYMS = 1 ]; then
        section "at the peak" | grep -q 'make_trace\.c' && fail "--by=function still shows lines"
    fi
    ;;
truncated | corrupt)
    msg=$("$MAKE" "$CASE" t.trace) || fail "make_trace $CASE failed"
    if [ "$CASE" = truncated ]; then
        report 0 t.trace --bytes
        grep -qF "warning: t.trace: $msg" err || fail "no warning '$msg'"
    else
        report 1 t.trace --bytes
        grep -qF "error: t.trace: $msg" err || fail "no error '$msg'"
    fi
    has '^  allocated +10500 in 4 blocks'
    has '^  at the end +10500 live in 4 blocks$'
    has "^  end +(truncated|corrupt): $msg"
    expect_row "live at the end" 1 "5500 3 1833 $(name site_alpha)"
    expect_row "live at the end" 2 "5000 1 5000 $(name site_beta)"
    ;;
damaged)
    # values no writer writes, under correct CRCs: each corrupt one is an
    # error naming the record, after a report of the records before it (the
    # first chunk: 6000 B live, exact; grow and move are sampled); never a
    # signal, never a hang (ctest's timeout would end one)
    for kind in addr grow move; do
        msg=$("$MAKE" damaged-$kind d.trace) || fail "make_trace damaged-$kind failed"
        [ -n "$msg" ] || fail "make_trace damaged-$kind printed no message"
        report 1 d.trace --bytes
        grep -qF "error: d.trace: $msg; the report covers the" err || fail "damaged-$kind: no error '$msg'"
        has "^  end +corrupt: "
        has '^  at the end +[0-9]+ live in '
    done
    "$MAKE" damaged-addr d.trace >/dev/null
    report 1 d.trace --bytes
    has '^  at the end +6000 live in 2 blocks$'
    
    # a stack id of 2^64-1 is a stack id: read whole
    "$MAKE" damaged-stack d.trace || fail "make_trace damaged-stack failed"
    report 0 d.trace --bytes
    grep -q "warning: 1 stacks used but never defined" err || fail "no warning for the undefined stack"
    has '^  at exit +7700 live in 4 blocks$'
    has '^ +[0-9]+ +1000 +1 +1000 +<undefined stack 18446744073709551615>$'
    ;;
extremes)
    # stack ids 2^64-1 and 0, a block at address 0: any key is a key
    "$MAKE" extremes x.trace || fail "make_trace extremes failed"
    report 0 x.trace --bytes
    has '^  allocated +4000 in 4 blocks'
    has '^  at exit +2700 live in 2 blocks$'
    expect_row "live at exit" 1 "2700 2 1350 $(name site_beta)"
    [ -z "$(row "live at exit" 2)" ] || fail "a second site live at exit"
    ;;
killed)
    "$MAKE" killed k.trace || fail "make_trace killed failed"
    report 0 k.trace --bytes
    grep -q "no end record: the program was killed or is still running" err || fail "no warning for a missing end"
    has '^  end +no end record'
    has '^  at the end +11500 live in 4 blocks$'
    has '^Pinning at the end of the trace'
    ;;
sampled)
    "$MAKE" sampled s.trace || fail "make_trace sampled failed"
    report 0 s.trace --bytes
    has '^  mode +sampled, one sample per 1000 B on average: figures are estimates$'
    has '^  allocated +101582 in 2\.6 blocks'
    expect_row "live at exit" 1 "100000 1 100000 $(name site_beta)"
    expect_row "live at exit" 2 "1582 1.6 1000 $(name site_alpha)"
    ! grep -q 'frees of blocks the trace does not know' err || fail "an unsampled free was warned about"
    ;;
grow)
    # a sample of s bytes stands for s/p bytes, 1/p blocks, p = 1-e^(-s/4096):
    # alpha's part 8192 B, beta's 4096 B; they pin 2.25 and 1.75 pages (make_trace.c)
    read -r a_bytes a_blocks b_bytes b_blocks all_bytes all_blocks a_ratio b_ratio < <(awk 'BEGIN {
        pa = 1 - exp(-8192 / 4096); pb = 1 - exp(-4096 / 4096)
        a = 8192 / pa; b = 4096 / pb
        printf "%.0f %.1f %.0f %.1f %.0f %.1f %.1fx %.1fx\n", a, 1 / pa, b, 1 / pb, a + b,
               1 / pa + 1 / pb, 2.25 * 4096 / a, 1.75 * 4096 / b }')
    "$MAKE" grow g.trace || fail "make_trace grow failed"
    report 0 g.trace --bytes
    has '^  mode +sampled, one sample per 4\.0 KiB on average: figures are estimates$'
    has "^  at exit +$all_bytes live in ${all_blocks/./\\.} blocks\$"
    expect_row "live at exit" 1 "$a_bytes $a_blocks 8192 $(name site_alpha)"
    expect_row "live at exit" 2 "$b_bytes $b_blocks 4096 $(name site_beta)"
    [ -z "$(row "live at exit" 3)" ] || fail "a third site live at exit"
    expect_row "total allocated" 1 "$a_bytes $a_blocks 8192 $(name site_alpha)"
    expect_row "total allocated" 2 "$b_bytes $b_blocks 4096 $(name site_beta)"
    #                  live  pinned  ratio pages shared arenas
    expect_row "Pinning at exit" 1 "$a_bytes 9216 $a_ratio 2.25 1 1 $(name site_alpha)"
    expect_row "Pinning at exit" 2 "$b_bytes 7168 $b_ratio 1.75 1 1 $(name site_beta)"
    ! grep -q '^warning' err || fail "warnings for a grown and moved block"
    "$MAKE" grow-freed gf.trace || fail "make_trace grow-freed failed"
    report 0 gf.trace --bytes
    has '^  at exit +0 live in 0 blocks$'
    section "live at exit" | grep -q '(none)' || fail "something live at exit after F of the new address"
    has '^  \(no live blocks\)$'
    expect_row "at the peak" 1 "$a_bytes $a_blocks 8192 $(name site_alpha)"
    expect_row "at the peak" 2 "$b_bytes $b_blocks 4096 $(name site_beta)"
    ! grep -q '^warning' err || fail "warnings for a grown, moved and freed block"
    ;;
pinning)
    "$MAKE" pinning p.trace || fail "make_trace pinning failed"
    report 0 p.trace --bytes
    has 'a page shared by several sites split by their live bytes'
    #               live    pinned  ratio pages shared arenas
    expect_row "Pinning at exit" 1 "2097152 2097152 1.0x 512 0 0 $(name site_delta)"
    expect_row "Pinning at exit" 2 "1300 5120 3.9x 1.25 1 1 $(name site_alpha)"
    expect_row "Pinning at exit" 3 "200 4096 20.5x 1 0 1 $(name site_beta)"
    expect_row "Pinning at exit" 4 "3000 3072 1.0x 0.75 1 1 $(name site_gamma)"
    has '^  all sites: 2101652 live pin 2109440 \(1\.0x\)'
    ;;
compare)
    "$MAKE" base base.trace || fail "make_trace base failed"
    for args in "base.trace basic.trace" "base.trace --compare basic.trace"; do
        # shellcheck disable=SC2086
        report 0 $args --bytes
        has '^Compared with base\.trace: live at exit, by line \(basic\.trace minus base\.trace\)'
        has '^  all sites: \+7000 \(now 11500\)$'
        expect_row "Compared with" 1 "+4000 7000 -1 2 $(name site_beta)"
        expect_row "Compared with" 2 "+3500 4500 +1 2 $(name site_alpha)"
        expect_row "Compared with" 3 "-500 0 -1 0 $(name site_gamma)"
        # the rest of the report is basic.trace's
        has '^  at exit +11500 live in 4 blocks$'
    done
    report 0 basic.trace basic.trace
    section "Compared with" | grep -q "(no difference)" || fail "a trace compared with itself differs"
    report 2 a b c
    ;;
html)
    report 0 basic.trace --html r.html
    [ -s r.html ] || fail "no HTML written"
    for id in memory-chart flamegraph top-sites pinning peak-marker flame-svg; do
        grep -q "id=\"$id\"" r.html || fail "the HTML has no element with id $id"
    done
    grep -q '<polyline class="rss"' r.html || fail "no RSS line in the chart"
    grep -q '<polyline class="live"' r.html || fail "no live line in the chart"
    grep -q 'var FLAME=\["all",11500,32500,' r.html || fail "the flame graph data does not start with the totals"
    ! grep -Eq '(src|href)="(https?:)?//' r.html || fail "the HTML refers to the network"
    ! grep -q '<script src' r.html || fail "the HTML loads a script"
    [ $SYMS = 1 ] && { grep -q 'site_gamma' r.html || fail "site names missing from the HTML"; }
    if command -v node >/dev/null 2>&1; then
        sed -n '/^<script>$/,/^<\/script>$/p' r.html | sed '1d;$d' >flame.js
        node --check flame.js 2>err || fail "the page's script does not parse"
    fi
    report 1 basic.trace --html "$WORK/no/such/dir/r.html"
    grep -q "cannot write" err || fail "no message for an unwritable HTML file"
    ;;
browser)
    # the page as a browser shows it, after its script ran: headless
    # Chromium's DOM (Debian: chromium; skipped without it)
    CHROME=$(command -v chromium || command -v chromium-browser || command -v google-chrome) ||
        { echo "SKIP: no chromium"; exit 77; }
    report 0 basic.trace --html r.html
    dom() {
        timeout 120 "$CHROME" --headless --no-sandbox --disable-gpu --no-first-run \
            --user-data-dir="$WORK/chrome" --virtual-time-budget=5000 --dump-dom "file://$WORK/r.html$1" \
            2>chrome.err >"$2" || { cat chrome.err >&2; fail "chromium could not load the page"; }
        [ -s "$2" ] || { cat chrome.err >&2; fail "chromium gave an empty page"; }
    }
    dom "" live.html
    python3 - live.html "$SYMS" <<'PY' || fail "the page as shown (live at exit) is not what the trace holds"
import re, sys
d = open(sys.argv[1]).read()
syms = sys.argv[2] == "1"
svg = re.search(r'<svg[^>]*id="flame-svg".*?</svg>', d, re.S)
assert svg, "no flame graph drawn"
titles = re.findall(r'<title>([^<]*)</title>', svg.group(0))
rects = len(re.findall(r'<rect', svg.group(0)))
assert rects >= 4 and rects == len(titles), (rects, titles)
assert titles[0].startswith("all: 11.2 KiB (100.0%)"), titles
if syms:
    assert any(t.startswith("site_beta: 6.8 KiB (60.9%)") for t in titles), titles
    assert any(t.startswith("site_alpha:") for t in titles), titles
top = re.search(r'id="top-sites".*?</section>', d, re.S).group(0)
assert len(re.findall(r'<tr', top)) >= 3, "top sites table empty"
pin = re.search(r'id="pinning".*?</section>', d, re.S).group(0)
assert len(re.findall(r'<tr', pin)) >= 2, "pinning table empty"
for cls in ("rss", "live"):
    m = re.search(r'<polyline class="%s" points="([^"]*)"' % cls, d)
    assert m and len(m.group(1).split()) >= 2, "no %s line in the chart" % cls
assert re.search(r'id="flame-live" class="on"', d), "the live view is not the one selected"
PY
    dom "#total" total.html
    python3 - total.html <<'PY' || fail "the total-allocated view is not what the trace holds"
import re, sys
d = open(sys.argv[1]).read()
svg = re.search(r'<svg[^>]*id="flame-svg".*?</svg>', d, re.S).group(0)
titles = re.findall(r'<title>([^<]*)</title>', svg)
assert titles and titles[0].startswith("all: 31.7 KiB (100.0%)"), titles
assert re.search(r'id="flame-total" class="on"', d), "the total view is not the one selected"
PY
    ;;
at)
    "$MAKE" marks m.trace >/dev/null || fail "make_trace marks failed"
    report 0 m.trace --bytes
    has '^  at exit +11500 live in 4 blocks$'
    ! grep -q '^  shown' out || fail "a moment shown without --at"
    #                     time      live    pinned label
    expect_row "Marks (" 1 "0.060 s 10500 20480 phase1"
    expect_row "Marks (" 2 '0.070 s 30500 40960 esc\x1b[2J'
    expect_row "Marks (" 3 "0.100 s 11500 20480 phase1"
    ! grep -q $'\e' out || fail "a mark's escape byte reached the output raw"
    # the first mark so named, and by number
    for when in mark:phase1 mark:1; do
        report 0 m.trace --bytes --at "$when"
        has "^  shown +mark 'phase1' at 0\.060 s \(mark 1 of 3\): 10500 live in 4 blocks, 20480 in pages they pin$"
        has '^  at exit +11500 live in 4 blocks$'
        expect_row "live at mark 'phase1'" 1 "5500 3 1833 $(name site_alpha)"
        expect_row "live at mark 'phase1'" 2 "5000 1 5000 $(name site_beta)"
        [ -z "$(row "live at mark 'phase1'" 3)" ] || fail "$when: a third site live"
        #                                            live pinned ratio pages shared arenas
        expect_row "Pinning at mark 'phase1'" 1 "5500 12288 2.2x 3 0 1 $(name site_alpha)"
        expect_row "Pinning at mark 'phase1'" 2 "5000 8192 1.6x 2 0 1 $(name site_beta)"
        # the peak and total tables stay the whole trace's
        expect_row "at the peak" 1 "20000 1 20000 $(name site_gamma)"
        expect_row "total allocated" 1 "20000 1 20000 $(name site_gamma)"
        section "Marks (" | grep -q '0\.060 s.*phase1  <- shown$' || fail "$when: the mark shown is not pointed at"
    done
    report 0 m.trace --bytes --at mark:3
    has "^  shown +mark 'phase1' at 0\.100 s \(mark 3 of 3\): 11500 live in 4 blocks, 20480 in pages they pin$"
    expect_row "live at mark 'phase1'" 1 "7000 2 3500 $(name site_beta)"
    # the peak: gamma's 20000 alone in 5 pages, said in words
    for when in peak mark:2; do
        report 0 m.trace --bytes --at "$when"
        expect_row "Pinning at" 1 "20000 20480 1.0x 5 0 1 $(name site_gamma)"
        has '^  all sites: 30500 live pin 40960 \(1\.3x\)'
        has "^    $(name site_gamma).* keeps 5 pages \(20480\) for 20000 of live objects$"
    done
    report 0 m.trace --bytes --at peak
    has '^  shown +the peak, reached after 0\.050 s \(record [0-9]+\): 30500 live in 5 blocks, 40960 in pages they pin$'
    expect_row "Top sites live at the peak" 1 "20000 1 20000 $(name site_gamma)"
    [ "$(grep -c 'Top sites live at the peak' out)" -eq 1 ] || fail "--at peak: the peak's table twice"
    report 0 m.trace --at mark:2
    grep -Fq "  shown        mark 'esc\x1b[2J' at 0.070 s" out || fail "--at mark:2: the label not shown escaped"
    ! grep -q $'\e' out || fail "--at mark:2: the label's escape byte reached the output raw"
    # times: the last tick or mark at or before it
    for when in 0 0s 0ms 0.049; do
        report 0 m.trace --bytes --at "$when"
        has '^  shown +0\.0[0-9]+ s: the start of the trace \(no tick or mark at or before it\): 0 live in 0 blocks, 0 in pages they pin$'
        section "live at 0.0" | grep -q '(none)' || fail "--at $when: sites live at the start"
        has '^  \(no live blocks\)$'
    done
    report 0 m.trace --bytes --at 50ms
    has '^  shown +0\.050 s: as at the tick or mark of 0\.050 s \(record [0-9]+\): 10500 live in 4 blocks'
    report 0 m.trace --bytes --at 0.065s
    has '^  shown +0\.065 s: as at the tick or mark of 0\.060 s .*: 10500 live in 4 blocks'
    report 0 m.trace --bytes --at .075
    has '^  shown +0\.075 s: as at the tick or mark of 0\.070 s .*: 30500 live in 5 blocks'
    report 0 m.trace --bytes --at 100ms
    has '^  shown +0\.100 s: .*: 11500 live in 4 blocks, 20480 in pages they pin$'
    report 0 m.trace --bytes --at end
    ! grep -q '^  shown' out || fail "--at end shows a moment"
    has '^Pinning at exit'
    # moments the trace does not have: exit 2, the marks listed
    report 2 m.trace --at 101ms
    grep -q "^neap report: --at 101ms is past the end of m.trace: its last tick or mark is at 0.100 s$" err ||
        fail "no message for a time past the end"
    report 2 m.trace --at 1e3
    report 2 m.trace --at mark:nope
    grep -q "^neap report: --at mark:nope: m.trace has no mark 'nope'$" err || fail "no message for an unknown mark"
    grep -Eq '^ +1 +0\.060 s +phase1$' err || fail "the marks are not listed"
    grep -Fq '0.070 s  esc\x1b[2J' err || fail "the escaped label is not listed"
    report 2 m.trace --at mark:4
    grep -q "m.trace has 3 marks, not 4" err || fail "no message for mark:4"
    report 2 basic.trace --at mark:phase1
    grep -q "the trace has no marks" err || fail "no message for a trace without marks"
    for bad in mark:0 -1s 12x 1.5h inf nan 0x10 '' s ms; do
        report 2 m.trace --at "$bad"
        grep -q -- "--at" err || fail "--at '$bad': no message naming --at"
    done
    report 2 m.trace --at
    # two traces: the same moment in both
    report 0 m.trace m.trace --bytes --at mark:phase1
    has "^Compared with m\.trace: live at mark 'phase1' in both"
    section "Compared with" | grep -q "(no difference)" || fail "a trace compared with itself at a mark differs"
    report 2 basic.trace m.trace --at mark:phase1
    grep -q "basic.trace has no mark 'phase1'" err || fail "the trace without the mark is not named"
    report 0 basic.trace m.trace --bytes --at peak
    has '^  all sites: \+0 \(now 30500\)$'
    # the page: the marks and the moment drawn, the moment's tables
    report 0 m.trace --at mark:phase1 --html r.html
    [ "$(grep -o '<g class="mark">' r.html | wc -l)" -eq 3 ] || fail "the HTML does not draw three marks"
    for id in marks at-marker marks-table pinning-words; do
        grep -q "id=\"$id\"" r.html || fail "the HTML has no element with id $id"
    done
    grep -q '<polyline class="pinned"' r.html || fail "no pinned line in the chart"
    grep -q "Live at mark &#39;phase1&#39;\|Live at mark 'phase1'" r.html || fail "the HTML's live table is not the mark's"
    grep -q 'esc\\x1b\[2J' r.html || fail "the escaped label is not in the HTML"
    ! grep -q $'\e' r.html || fail "a raw escape byte in the HTML"
    ;;
errors)
    report 1 missing.trace
    grep -q "^neap report: missing.trace: cannot open: No such file or directory$" err || fail "missing file"
    # a directory is refused as a missing file is: no report of nothing
    mkdir adir
    report 1 adir
    grep -q "^neap report: adir: is a directory$" err || fail "no message for a directory"
    [ ! -s out ] || fail "a report printed for a directory"
    report 1 basic.trace adir
    grep -q "^neap report: adir: is a directory$" err || fail "no message for a directory to compare"
    "$MAKE" notrace n.trace
    report 2 n.trace
    grep -q 'n.trace: not a neap trace' err || fail "no message for a non-trace"
    "$MAKE" future f.trace
    report 1 f.trace
    grep -q 'f.trace: trace format version 9 is newer than this neap reads' err || fail "future version"
    head -c 20 basic.trace >short.trace
    report 1 short.trace
    grep -q 'short.trace: trace header truncated: 20 of its 44 fixed bytes present' err || fail "short header"
    report 2
    report 2 basic.trace --by nothing
    report 2 basic.trace --top 0
    report 2 basic.trace --bogus
    grep -q "unknown option '--bogus'" err || fail "the unknown option is not named"
    # values out of range are refused, never replaced
    report 2 basic.trace --top=0
    grep -q -- "--top 0 is out of range: it must be from 1 to 1000000" err || fail "--top=0 not called out of range"
    report 2 basic.trace --top 1000001
    grep -q "out of range" err || fail "--top 1000001 not called out of range"
    report 2 basic.trace --top=12x
    grep -q -- "--top wants a whole number from 1 to 1000000, not '12x'" err || fail "--top=12x not called malformed"
    report 2 basic.trace --top
    grep -q "option '--top' needs a value" err || fail "--top without a value"
    report 2 basic.trace --bytes=yes
    grep -q "option '--bytes' takes no value" err || fail "--bytes=yes accepted"
    report 2 basic.trace basic.trace basic.trace
    report 0 basic.trace --top 1e6
    # "--" ends the options: what follows is a file, even if it looks like one
    report 1 -- --bytes
    grep -q "^neap report: --bytes: cannot open" err || fail "a file named --bytes after -- was not taken as a file"
    report 0 --help
    has '^usage: neap report'
    "$NEAP" help report >out 2>&1 || fail "neap help report failed"
    has '^usage: neap report'
    # --progress draws on stderr, and nothing is left of it on stdout
    report 0 basic.trace --progress
    grep -q 'neap report: reading basic.trace' err || fail "--progress drew nothing"
    grep -q 'reading' out && fail "the progress bar went to stdout"
    report 0 basic.trace --no-progress
    grep -q 'reading' err && fail "--no-progress drew a bar"
    ;;
*)
    fail "unknown case $CASE"
    ;;
esac
echo "PASS: $CASE"
