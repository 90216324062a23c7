# common.sh -- sourced by the override tests (label: override).
#
# An override test runs a real program twice, first as installed and then
# with LD_PRELOAD=libneap.so, and requires the same standard output from
# both.  The test script defines a function `scenario` that does its work in
# the current directory and prefixes every command that should run on neap
# with "${RUN[@]}": empty-handed (`env`) in the plain run, `env LD_PRELOAD=...
# NEAP_SHOW_STATS=1 NEAP_STATS_FD=9 NEAP_EXPECT=1` in the neap run (or the
# same settings and `neap run --lib LIB --` when the test sets NEAP_CMD).
# Input files that both runs share are made once, by plain programs, in
# $DATA.
#
# That the preload took effect is checked, not assumed: with NEAP_SHOW_STATS=1
# every process that ran on neap prints "neap <version> statistics" at exit,
# to descriptor 9 (NEAP_STATS_FD; some programs, mawk for one, close their
# stderr before they exit), which the scenario has open on $WORK/neap.stats;
# that file must have the line (programs that can check more, python and the
# C++ program, also look neap_owns up themselves when NEAP_EXPECT is set).
#
# Usage from a test:  . common.sh; setup "$@"; need prog...; <make $DATA>;
#                     compare_runs
# Exit status: 0 pass, 1 fail, 77 skip (a program is not installed).

set -u
set -o pipefail

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# need PROG...: skip the test unless every PROG is installed
need() {
    local p
    for p in "$@"; do
        if ! command -v "$p" >/dev/null 2>&1; then
            echo "SKIP: $p is not installed"
            exit 77
        fi
    done
}

# setup LIB: LIB is libneap.so (the $<TARGET_FILE:neap_shared> of CMake)
setup() {
    [ $# -ge 1 ] || fail "usage: $0 path/to/libneap.so [args]"
    LIB=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
    [ -f "$LIB" ] || fail "no library at $LIB"
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/neap-override.XXXXXX") || fail "mktemp"
    trap 'rm -rf "$WORK"' EXIT
    DATA=$WORK/data
    mkdir -p "$DATA" "$WORK/plain" "$WORK/neap"
    # the same environment for both runs, apart from the preload
    export LC_ALL=C TZ=UTC
    unset LD_PRELOAD NEAP_SHOW_STATS NEAP_EXPECT NEAP_STATS_FD NEAP_BACKGROUND NEAP_PUBLISH \
          NEAP_RUN_PID
    exec 9>&- # the scenario gets a descriptor 9 of its own
}

# run_one MODE: runs `scenario` in $WORK/MODE, stdout to $WORK/MODE.out,
# stderr to $WORK/MODE.err.  A test that sets NEAP_CMD (the neap command)
# has its neap run go through `neap run --lib LIB --` instead of a bare
# preload: the library as users get it, with the background thread and
# published statistics on.
run_one() {
    local mode=$1 start end
    if [ "$mode" = neap ] && [ -n "${NEAP_CMD:-}" ]; then
        RUN=(env NEAP_SHOW_STATS=1 NEAP_STATS_FD=9 NEAP_EXPECT=1 "$NEAP_CMD" run -q --lib "$LIB" --)
    elif [ "$mode" = neap ]; then
        RUN=(env "LD_PRELOAD=$LIB" NEAP_SHOW_STATS=1 NEAP_STATS_FD=9 NEAP_EXPECT=1)
    else
        RUN=(env)
    fi
    start=$(date +%s%N)
    (cd "$WORK/$mode" || exit 1; set -e; scenario) >"$WORK/$mode.out" 2>"$WORK/$mode.err" \
        9>>"$WORK/$mode.stats"
    local status=$?
    end=$(date +%s%N)
    printf '%-6s run: exit %d, %d ms, %s lines of output\n' "$mode" "$status" \
        $(((end - start) / 1000000)) "$(wc -l <"$WORK/$mode.out")"
    if [ $status -ne 0 ]; then
        echo "--- stderr of the $mode run (last 40 lines) ---"
        tail -n 40 "$WORK/$mode.err"
        fail "the $mode run exited with status $status"
    fi
}

compare_runs() {
    run_one plain
    run_one neap
    if grep -q "cannot be preloaded" "$WORK/neap.err"; then
        grep "cannot be preloaded" "$WORK/neap.err" | head -3
        fail "the dynamic loader refused the preload"
    fi
    local nstats
    nstats=$(grep -c '^neap [0-9.]* statistics' "$WORK/neap.stats")
    if [ "$nstats" -eq 0 ]; then
        echo "--- stderr of the neap run (last 40 lines) ---"
        tail -n 40 "$WORK/neap.err"
        echo "--- statistics file of the neap run (last 10 lines) ---"
        tail -n 10 "$WORK/neap.stats"
        fail "no process of the neap run printed neap statistics: the preload did not take effect"
    fi
    echo "neap statistics printed by $nstats process(es)"
    if ! cmp -s "$WORK/plain.out" "$WORK/neap.out"; then
        echo "--- diff plain neap (first 40 lines) ---"
        diff "$WORK/plain.out" "$WORK/neap.out" | head -n 40
        echo "--- stderr of the neap run (last 20 lines) ---"
        tail -n 20 "$WORK/neap.err"
        fail "the output under neap differs from the plain run"
    fi
    echo "--- output (first 10 lines) ---"
    head -n 10 "$WORK/neap.out"
    echo "PASS"
}
