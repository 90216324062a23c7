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
#   json       --json - (the document alone on stdout) and --json FILE (the
#              text report unchanged beside it), read back with python3's
#              json module: the schema version, the header, totals, peak,
#              RSS, the series (one entry a tick), the three tables with
#              the figures the text checks (integers in an exact trace),
#              warnings; the marks trace at moments (marks, moment,
#              pinning with its sentences); pinning's figures; sampled
#              estimates as decimals; --top 1, --top all; Python frames
#              with names to escape (a control byte, a byte that is not
#              UTF-8, a quote, a backslash): valid UTF-8, no raw control
#              byte, names decoded back as written (U+FFFD for the bad byte)
#   json_damaged  truncated: exit 0, a "truncated" warning; corrupt and a
#              damaged record: exit 1, still one whole document of what came
#              before, an "error" entry; killed: "no_end"
#   json_compare  the comparison of base and basic, per site, and of a
#              trace with itself (no rows), at a mark
#   outputs    --html and --json paths that cannot be written (no such
#              directory, a directory) fail before the trace is read: exit
#              1, a message, nothing printed; both at once written, the
#              text unchanged; an older file replaced whole, one there
#              left alone and one made removed when the command fails
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
json)
    command -v python3 >/dev/null 2>&1 || { echo "SKIP: no python3"; exit 77; }
    # check FILE ARGS...: python3 runs the script on stdin with the document
    # as d, SYMS as syms, ARGS as args
    check() {
        local file=$1
        shift
        python3 -c "$(cat)" "$file" "$SYMS" "$@" || fail "the JSON document ($file) is not what the trace holds"
    }
    report 0 basic.trace --json -
    check out <<'PY'
import json, sys
raw = open(sys.argv[1], "rb").read()
d = json.loads(raw.decode("utf-8"))
syms = sys.argv[2] == "1"
def ints(x):
    if isinstance(x, dict): return all(ints(v) for v in x.values())
    if isinstance(x, list): return all(ints(v) for v in x)
    return not isinstance(x, float)
assert d["schema"] == "neap-report/1", d["schema"]
assert d["estimates"] is False and d["by"] == "line" and d["top"] == 10
t = d["trace"]
assert t["path"] == "basic.trace" and t["command"] == "./synthetic --kind", t
assert t["argv"] == ["./synthetic", "--kind"] and t["pid"] == 4242, t
assert t["start_ns"] == 1700000000000000000 and t["start"] == "2023-11-14T22:13:20Z", t
assert t["mode"] == "exact" and t["sample_interval"] is None, t
assert t["end"] == {"how": "exit", "status": 0} and t["status"] == "clean", t
assert t["bytes_read"] == t["file_bytes"] and t["module_map"] is True, t
assert d["totals"] == {"allocated_bytes": 32500, "allocated_blocks": 6, "allocation_records": 6,
                       "frees": 3, "stacks": 5, "sites": 4}, d["totals"]
assert d["peak"]["bytes"] == 30500 and d["peak"]["ms"] == 50, d["peak"]
assert d["end"]["exit"] is True and d["end"]["live_bytes"] == 11500 and d["end"]["live_blocks"] == 4, d["end"]
assert d["moment"]["kind"] == "end" and d["moment"]["live_bytes"] == 11500, d["moment"]
assert d["rss"] == {"peak": 2097152, "last": 2097152, "program_live_last": 11500}, d["rss"]
assert d["marks"] == [] and d["comparison"] is None
# the series: one entry a tick ('T' at 50 and 100 ms)
assert [(s["ms"], s["rss"], s["live"], s["program_live"], s["pinned"]) for s in d["series"]] == \
    [(50, 1 << 20, 10500, 10500, 20480), (100, 2 << 20, 11500, 11500, 20480)], d["series"]
def rows(table):
    return [(r["rank"], r["bytes"], r["blocks"], r["site"]["function"] if syms else None)
            for r in d["tables"][table]["rows"]]
n = lambda f: f if syms else None
assert rows("live") == [(1, 7000, 2, n("site_beta")), (2, 4500, 2, n("site_alpha"))], rows("live")
assert rows("peak") == [(1, 20000, 1, n("site_gamma")), (2, 5500, 3, n("site_alpha")),
                        (3, 5000, 1, n("site_beta"))], rows("peak")
assert rows("total") == [(1, 20000, 1, n("site_gamma")), (2, 7000, 2, n("site_beta")),
                         (3, 5500, 3, n("site_alpha"))], rows("total")
assert d["tables"]["live"]["title"] == "Top sites live at exit (leaks)"
assert all(d["tables"][k]["omitted"] == 0 for k in ("live", "peak", "total"))
for k in ("live", "peak", "total"):
    for r in d["tables"][k]["rows"]:
        assert ints({x: r[x] for x in ("bytes", "blocks")}), r
        s = r["site"]
        assert s["python"] is False and "traceback" not in s, s
        if syms:
            assert s["file"] == "make_trace.c" and isinstance(s["line"], int) and s["line"] > 0, s
            assert s["label"] == "%s (make_trace.c:%d)" % (s["function"], s["line"]), s
            assert s["module"] == "make_trace", s
assert ints(d["totals"]) and ints(d["peak"]) and ints(d["series"])
p = d["pinning"]
assert p["moment"] == "exit" and p["underestimated"] is False, p
assert [r["live_bytes"] for r in p["rows"]] == [7000, 4500], p["rows"]
assert p["all_sites"]["live_bytes"] == 11500, p["all_sites"]
assert d["warnings"] == [{"level": "warning", "kind": "unknown_frees", "count": 1, "trace": "basic.trace",
    "message": "1 frees of blocks the trace does not know (allocated before tracing started?)"}], d["warnings"]
PY
    grep -q 'warning: 1 frees of blocks' err || fail "--json -: the warnings left stderr"
    # --json FILE: the text report as without it, the document beside it
    report 0 basic.trace --bytes
    cp out text.txt
    report 0 basic.trace --bytes --json r.json
    cmp -s out text.txt || fail "--json FILE changed the text report"
    check r.json <<'PY'
import json, sys
assert json.load(open(sys.argv[1]))["tables"]["live"]["rows"][0]["bytes"] == 7000
PY
    # --top 1 and --top all; traceback frames
    report 0 basic.trace --json - --top 1 --by traceback
    check out <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); syms = sys.argv[2] == "1"
assert d["top"] == 1 and d["by"] == "traceback"
live = d["tables"]["live"]
assert len(live["rows"]) == 1 and live["omitted"] == 2, live
tb = live["rows"][0]["site"]["traceback"]
assert len(tb) == 2 and tb[0]["label"] == live["rows"][0]["site"]["label"], tb
if syms: assert [f["function"] for f in tb] == ["site_beta", "main"], tb
assert len(d["pinning"]["rows"]) == 1 and d["pinning"]["omitted"] == 2, d["pinning"]
PY
    report 0 basic.trace --json - --top all --by function
    check out <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); syms = sys.argv[2] == "1"
assert d["top"] is None and d["by"] == "function"
assert len(d["tables"]["peak"]["rows"]) == 3 and d["tables"]["peak"]["omitted"] == 0
for r in d["tables"]["peak"]["rows"]:
    assert r["site"]["line"] is None, r
    if syms: assert r["site"]["label"] == r["site"]["function"], r
PY
    report 0 basic.trace --top all
    [ "$(row "at the peak" 3 | cut -d' ' -f1)" = 5000 ] || [ "$(row "at the peak" 3 | cut -d' ' -f1)" = "4.9" ] ||
        fail "--top all did not show every site"
    # marks and moments
    "$MAKE" marks m.trace >/dev/null || fail "make_trace marks failed"
    report 0 m.trace --json - --at mark:phase1
    check out <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); syms = sys.argv[2] == "1"
m = d["marks"]
assert [(x["n"], x["ms"], x["label"], x["live_bytes"], x["live_blocks"], x["pinned_bytes"], x["shown"]) for x in m] == [
    (1, 60, "phase1", 10500, 4, 20480, True), (2, 70, "esc\x1b[2J", 30500, 5, 40960, False),
    (3, 100, "phase1", 11500, 4, 20480, False)], m
assert m[1]["label_escaped"] == "esc\\x1b[2J", m[1]
mo = d["moment"]
assert (mo["kind"], mo["when"], mo["name"], mo["mark"], mo["ms"], mo["live_bytes"], mo["live_blocks"],
        mo["pinned_bytes"]) == ("mark", "mark:phase1", "mark 'phase1'", 1, 60, 10500, 4, 20480), mo
assert mo["description"] == "mark 'phase1' at 0.060 s (mark 1 of 3)", mo
live = d["tables"]["live"]
assert live["title"] == "Top sites live at mark 'phase1'", live["title"]
assert [(r["bytes"], r["blocks"]) for r in live["rows"]] == [(5500, 3), (5000, 1)], live
# the peak and the totals stay the whole trace's; the end's figures too
assert d["tables"]["peak"]["rows"][0]["bytes"] == 20000 and d["end"]["live_bytes"] == 11500
p = d["pinning"]
assert p["moment"] == "mark 'phase1'"
assert [(r["live_bytes"], r["pinned_bytes"], r["pages"], r["pages_shared"], r["arenas"]) for r in p["rows"]] == \
    [(5500, 12288, 3, 0, 1), (5000, 8192, 2, 0, 1)], p["rows"]
assert abs(p["rows"][0]["ratio"] - 12288 / 5500) < 0.001, p["rows"][0]
assert p["rows"][0]["sentence"].endswith("keeps 3 pages (12.0 KiB) for 5.4 KiB of live objects"), p["rows"][0]
if syms: assert p["rows"][0]["sentence"].startswith("site_alpha (make_trace.c:"), p["rows"][0]
PY
    report 0 m.trace --json - --at peak
    check out <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
mo = d["moment"]
assert (mo["kind"], mo["mark"], mo["live_bytes"], mo["live_blocks"], mo["pinned_bytes"]) == ("peak", None, 30500, 5, 40960), mo
assert mo["record"] == d["peak"]["record"], (mo, d["peak"])
assert d["pinning"]["all_sites"] == {"live_bytes": 30500, "pinned_bytes": 40960, "ratio": 1.343}, d["pinning"]["all_sites"]
PY
    report 0 m.trace --json - --at 0.065s
    check out <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
mo = d["moment"]
assert (mo["kind"], mo["requested_ms"], mo["ms"], mo["live_bytes"]) == ("time", 65, 60, 10500), mo
assert not any(x["shown"] for x in d["marks"]), d["marks"]
PY
    # pinning's figures (a shared page split: fractions of pages)
    "$MAKE" pinning p.trace || fail "make_trace pinning failed"
    report 0 p.trace --json -
    check out <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); syms = sys.argv[2] == "1"
rows = [(r["live_bytes"], r["pinned_bytes"], r["pages"], r["pages_alone"], r["pages_shared"], r["arenas"],
         r["site"]["function"] if syms else None) for r in d["pinning"]["rows"]]
n = lambda f: f if syms else None
assert rows == [(2097152, 2097152, 512, 512, 0, 0, n("site_delta")), (1300, 5120, 1.25, 1, 1, 1, n("site_alpha")),
                (200, 4096, 1, 1, 0, 1, n("site_beta")), (3000, 3072, 0.75, 0, 1, 1, n("site_gamma"))], rows
assert d["pinning"]["all_sites"]["live_bytes"] == 2101652 and d["pinning"]["all_sites"]["pinned_bytes"] == 2109440
assert d["rss"] is None and d["series"] == []
PY
    # sampled: estimates, not whole numbers
    "$MAKE" sampled s.trace || fail "make_trace sampled failed"
    report 0 s.trace --json -
    check out <<'PY'
import json, math, sys
d = json.load(open(sys.argv[1]))
assert d["estimates"] is True and d["trace"]["mode"] == "sampled" and d["trace"]["sample_interval"] == 1000
rows = d["tables"]["live"]["rows"]
assert rows[0]["bytes"] == 100000 and rows[0]["blocks"] == 1, rows[0]
p = 1 - math.exp(-1)
assert isinstance(rows[1]["bytes"], float) and abs(rows[1]["bytes"] - 1000 / p) < 0.001, rows[1]
assert abs(rows[1]["blocks"] - 1 / p) < 0.001, rows[1]
assert d["pinning"]["underestimated"] is True and d["warnings"] == []
PY
    # Python frames, names a writer must escape
    "$MAKE" python py.trace || fail "make_trace python failed"
    # the text report: the control byte escaped, never raw on the terminal
    report 0 py.trace --by traceback
    if LC_ALL=C grep -q "$(printf '\001')" out; then fail "a raw control byte in the text report"; fi
    grep -qF 'main\x01 (app\xff"q\.py:3)' out || fail "the Python frame with odd bytes is not shown escaped"
    report 0 py.trace --json - --by traceback
    check out <<'PY'
import json, sys
raw = open(sys.argv[1], "rb").read()
assert not any(b < 0x20 and b != 0x0a for b in raw), "a raw control byte in the JSON"
d = json.loads(raw.decode("utf-8", "strict"))
rows = d["tables"]["live"]["rows"]
s = rows[0]["site"]
assert rows[0]["bytes"] == 3500 and rows[0]["blocks"] == 2, rows[0]
# the report keeps a frame's control bytes and bytes that are not UTF-8
# escaped as \xNN (as the text report shows them)
assert (s["function"], s["file"], s["line"], s["python"], s["module"]) == \
    ("main\\x01", "app\\xff\"q\\.py", 3, True, None), s
assert s["label"] == "main\\x01 (app\\xff\"q\\.py:3)", s
assert [(f["function"], f["file"], f["line"]) for f in s["traceback"]] == \
    [("main\\x01", "app\\xff\"q\\.py", 3), ("<module>", "<string>", None)], s["traceback"]
s = rows[1]["site"]
assert (rows[1]["bytes"], s["function"], s["file"], s["line"]) == (1000, "raw_decode", "json/decoder.py", 12), rows[1]
PY
    ;;
json_damaged)
    command -v python3 >/dev/null 2>&1 || { echo "SKIP: no python3"; exit 77; }
    # doc FILE STATUS LEVEL KIND [LIVE]: the document parses, the trace's
    # status and a warning of that level and kind, live at the end
    doc() {
        python3 - "$@" <<'PY' || fail "the JSON document of a damaged trace ($2) is wrong"
import json, sys
path, status, level, kind = sys.argv[1:5]
d = json.load(open(path))
assert d["schema"] == "neap-report/1"
assert d["trace"]["status"] == status, d["trace"]
w = [x for x in d["warnings"] if x["kind"] == kind]
assert len(w) == 1 and w[0]["level"] == level and w[0]["trace"] == "t.trace", d["warnings"]
if len(sys.argv) > 5: assert d["end"]["live_bytes"] == int(sys.argv[5]), d["end"]
print(w[0]["message"])
PY
    }
    msg=$("$MAKE" truncated t.trace) || fail "make_trace truncated failed"
    report 0 t.trace --json -
    doc out truncated warning truncated 10500 >got || fail "truncated"
    grep -qF "t.trace: $msg; the report covers the" got || fail "the warning does not name '$msg'"
    msg=$("$MAKE" corrupt t.trace) || fail "make_trace corrupt failed"
    report 1 t.trace --json -
    doc out corrupt error corrupt 10500 >got
    grep -qF "t.trace: $msg" got || fail "the error does not name '$msg'"
    grep -qF "error: t.trace: $msg" err || fail "no error on stderr"
    msg=$("$MAKE" damaged-addr t.trace) || fail "make_trace damaged-addr failed"
    report 1 t.trace --json -
    doc out corrupt error corrupt 6000 >got
    "$MAKE" killed t.trace || fail "make_trace killed failed"
    report 0 t.trace --json -
    doc out no_end warning no_end 11500 >/dev/null
    python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert d["trace"]["end"] is None and d["end"]["exit"] is False' out ||
        fail "a killed trace's end"
    ;;
json_compare)
    command -v python3 >/dev/null 2>&1 || { echo "SKIP: no python3"; exit 77; }
    "$MAKE" base base.trace || fail "make_trace base failed"
    report 0 base.trace basic.trace --json -
    python3 - out "$SYMS" <<'PY' || fail "the comparison in JSON is not base's against basic's"
import json, sys
d = json.load(open(sys.argv[1])); syms = sys.argv[2] == "1"
c = d["comparison"]
assert d["trace"]["path"] == "basic.trace" and c["base"] == "base.trace", c
assert c["base_trace"]["path"] == "base.trace" and c["moment"] == "exit", c
assert (c["live_bytes"], c["base_live_bytes"], c["diff_bytes"]) == (11500, 4500, 7000), c
n = lambda f: f if syms else None
rows = [(r["rank"], r["bytes_diff"], r["bytes"], r["blocks_diff"], r["blocks"], r["base_bytes"], r["base_blocks"],
         r["site"]["function"] if syms else None) for r in c["rows"]]
assert rows == [(1, 4000, 7000, -1, 2, 3000, 3, n("site_beta")), (2, 3500, 4500, 1, 2, 1000, 1, n("site_alpha")),
                (3, -500, 0, -1, 0, 500, 1, n("site_gamma"))], rows
assert c["omitted"] == 0
# the warnings of both traces, each naming its trace
assert [w["trace"] for w in d["warnings"]] == ["basic.trace"], d["warnings"]
PY
    "$MAKE" marks m.trace >/dev/null || fail "make_trace marks failed"
    report 0 m.trace m.trace --json - --at mark:phase1
    python3 -c 'import json, sys; c = json.load(open(sys.argv[1]))["comparison"]; assert c["rows"] == [] and c["diff_bytes"] == 0 and c["moment"] == "mark '"'"'phase1'"'"'", c' out ||
        fail "a trace compared with itself at a mark differs"
    ;;
outputs)
    # paths that cannot be written fail before the trace is read: nothing printed
    mkdir outdir
    for opt in --html --json; do
        report 1 basic.trace $opt "$WORK/no/such/dir/out"
        grep -q "^neap report: cannot write $WORK/no/such/dir/out: No such file or directory$" err ||
            fail "$opt: no message for an unwritable path"
        [ ! -s out ] || fail "$opt to an unwritable path: the report printed before the failure"
        report 1 basic.trace --bytes $opt outdir
        grep -q "^neap report: cannot write outdir: Is a directory$" err || fail "$opt: no message for a directory"
        [ ! -s out ] || fail "$opt to a directory: the report printed before the failure"
    done
    report 1 basic.trace --json - --html "$WORK/no/such/dir/out"
    [ ! -s out ] || fail "--json - with an unwritable --html: a document printed"
    # both at once, the text as without them
    report 0 basic.trace --bytes
    cp out text.txt
    report 0 basic.trace --bytes --html r.html --json r.json
    cmp -s out text.txt || fail "--html and --json changed the text report"
    grep -q 'id="flame-svg"' r.html || fail "no HTML with --json"
    grep -q '"schema": "neap-report/1"' r.json || fail "no JSON with --html"
    report 0 basic.trace --bytes --json - --html r2.html
    grep -q '"schema": "neap-report/1"' out || fail "--json - with --html: no document on stdout"
    cmp -s r.html r2.html || fail "the HTML differs with --json -"
    # an older, longer file is replaced whole
    head -c 200000 /dev/zero | tr '\0' x >r.json
    report 0 basic.trace --json r.json
    [ "$(tail -c 2 r.json | head -c 1)" = "}" ] || fail "the older file's tail is left after the document"
    # a failing command leaves a file that was there alone, removes one it made
    echo keep >keep.json
    report 1 missing.trace --json keep.json --html keep.json
    [ "$(cat keep.json)" = keep ] || fail "a failed report changed the file already there"
    report 1 missing.trace --json new.json --html new.html
    [ ! -e new.json ] && [ ! -e new.html ] || fail "a failed report left the files it made"
    "$MAKE" marks m.trace >/dev/null || fail "make_trace marks failed"
    report 2 m.trace --at mark:nope --json new.json
    [ ! -e new.json ] || fail "a moment the trace has not left the file made for it"
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
