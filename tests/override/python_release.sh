#!/usr/bin/env bash
# python_release.sh LIB [NEAP] -- the memory CPython gives back on neap, next
# to pymalloc and the other mallocs: a measurement, not a comparison of
# outputs (label: release).
#
# python_seed.py makes 10^7 small str objects (~700 MB), keeps 1 in 1000 of
# them, scattered over the whole heap, frees the rest and prints the share of
# the peak's RSS growth still resident afterwards ("kept %").  It runs once on
# each of:
#   neap      `NEAP run --quiet -- python3 python_seed.py` when NEAP (the neap
#             executable) is given, which must set PYTHONMALLOC=malloc itself;
#             else LD_PRELOAD=LIB with PYTHONMALLOC=malloc
#   pymalloc  CPython's own small-object allocator (PYTHONMALLOC unset)
#   glibc     PYTHONMALLOC=malloc, nothing preloaded
#   jemalloc, mimalloc, tcmalloc
#             PYTHONMALLOC=malloc and LD_PRELOAD of libjemalloc.so.2,
#             libmimalloc.so.2, libtcmalloc_minimal.so.4 (Debian: libjemalloc2,
#             libmimalloc2.0, libtcmalloc-minimal4), found with ldconfig; one
#             that is not installed is left out, and said so
# and requires, with a margin (figures of the issue: neap <= 6%, pymalloc 89%):
#   neap kept <= NEAP_MAX_KEPT (8%) right after del and gc.collect()
#   neap kept <= NEAP_MAX_SETTLED (6.5%) 0.2 s later (under neap run the
#     background thread has given back the pages still in their purge delay)
#   pymalloc kept >= PYMALLOC_MIN_KEPT (50%)
#   every other allocator kept >= PEER_FACTOR (3) x neap's
# Each run checks what it ran on (python_seed.py reports the malloc in the
# process and whether objects came from pymalloc), so a preload that did not
# take effect fails the test instead of measuring the wrong allocator.
# Exit status: 0 pass, 1 fail, 77 skip (no python3, or too little memory).
. "$(dirname "$0")/common.sh"
setup "$@"
NEAP=${2:-}
SEED=$(cd "$(dirname "$0")" && pwd)/python_seed.py
NEAP_MAX_KEPT=8
NEAP_MAX_SETTLED=6.5
PYMALLOC_MIN_KEPT=50
PEER_FACTOR=3

need python3 awk
# the interpreter itself, not a wrapper script (pyenv shims are shell scripts)
PY=$(python3 -c 'import sys; print(sys.executable)') || fail "python3 does not run"
[ -x "$PY" ] || fail "no interpreter at $PY"
[ -f "$SEED" ] || fail "no seed script at $SEED"
if [ -n "$NEAP" ]; then
    [ -x "$NEAP" ] || fail "no neap executable at $NEAP"
fi
unset PYTHONMALLOC PYTHONSTARTUP
# one run at a time peaks at ~800 MB
avail_kb=$(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo)
if [ -n "$avail_kb" ] && [ "$avail_kb" -lt 1200000 ]; then
    echo "SKIP: only $((avail_kb / 1024)) MB of memory available, the runs need ~800 MB"
    exit 77
fi

# peer_lib NAME: the path of the shared library NAME that preloads into $PY
# (ldconfig may list several, one per architecture), or nothing
peer_lib() {
    local ldconfig path
    ldconfig=$(command -v ldconfig || echo /sbin/ldconfig)
    [ -x "$ldconfig" ] || return 0
    for path in $("$ldconfig" -p | awk -v n="$1" '$1 == n { print $NF }'); do
        if [ -f "$path" ] && [ -z "$(env LD_PRELOAD="$path" "$PY" -c pass 2>&1)" ]; then
            echo "$path"
            return 0
        fi
    done
}

NAMES=()
declare -A KEPT SETTLED LINE
# measure NAME OBJECTS MALLOC CMD...: runs the seed under CMD; the run must
# report objects=OBJECTS and malloc=MALLOC
measure() {
    local name=$1 objects=$2 malloc=$3 out status
    shift 3
    status=0
    out=$("$@" "$PY" "$SEED" 2>"$WORK/$name.err") || status=$?
    if [ $status -ne 0 ]; then
        echo "--- stderr of the $name run (last 20 lines) ---"
        tail -n 20 "$WORK/$name.err"
        fail "the $name run exited with status $status"
    fi
    out=$(printf '%s\n' "$out" | grep '^base_kb=' | tail -n 1)
    [ -n "$out" ] || fail "the $name run printed no figures"
    case " $out " in
    *" objects=$objects malloc=$malloc "*) ;;
    *) fail "the $name run did not run as meant (want objects=$objects malloc=$malloc): $out" ;;
    esac
    NAMES+=("$name")
    LINE[$name]=$out
    KEPT[$name]=$(printf '%s\n' "$out" | sed -n 's/.*kept_pct=\([0-9.-]*\).*/\1/p')
    SETTLED[$name]=$(printf '%s\n' "$out" | sed -n 's/.*settled_pct=\([0-9.-]*\).*/\1/p')
}

if [ -n "$NEAP" ]; then
    measure neap malloc neap "$NEAP" run --quiet --
else
    measure neap malloc neap env "LD_PRELOAD=$LIB" PYTHONMALLOC=malloc
fi
measure pymalloc pymalloc libc env
measure glibc malloc libc env PYTHONMALLOC=malloc
PEERS=(glibc)
SKIPPED=()
for peer in jemalloc:libjemalloc.so.2 mimalloc:libmimalloc.so.2 \
            tcmalloc:libtcmalloc_minimal.so.4; do
    name=${peer%%:*} soname=${peer#*:}
    path=$(peer_lib "$soname")
    if [ -z "$path" ]; then
        SKIPPED+=("$name: skipped ($soname is not installed)")
        continue
    fi
    measure "$name" malloc "$name" env "LD_PRELOAD=$path" PYTHONMALLOC=malloc
    PEERS+=("$name")
done

# the table
printf '%-9s %-9s %8s %8s %8s %7s %9s\n' allocator objects "base MB" "peak MB" "after MB" "kept %" "+0.2 s %"
for name in "${NAMES[@]}"; do
    printf '%s\n' "${LINE[$name]}" | awk -v name="$name" '{
        for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        printf "%-9s %-9s %8.1f %8.1f %8.1f %7.2f %9.2f\n", name, v["objects"],
            v["base_kb"] / 1024, v["peak_kb"] / 1024, v["after_kb"] / 1024, v["kept_pct"],
            v["settled_pct"]
    }'
done
for line in ${SKIPPED[@]+"${SKIPPED[@]}"}; do
    echo "$line"
done

# the checks; at_least A B: A >= B, as numbers
at_least() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 >= b + 0) }'; }
bad=0
check() { # check DESCRIPTION A B: A >= B
    if at_least "$2" "$3"; then
        echo "ok   $1"
    else
        echo "FAIL $1"
        bad=1
    fi
}
neap=${KEPT[neap]}
check "neap kept $neap% <= $NEAP_MAX_KEPT%" "$NEAP_MAX_KEPT" "$neap"
check "neap kept ${SETTLED[neap]}% 0.2 s later <= $NEAP_MAX_SETTLED%" "$NEAP_MAX_SETTLED" "${SETTLED[neap]}"
check "pymalloc kept ${KEPT[pymalloc]}% >= $PYMALLOC_MIN_KEPT%" "${KEPT[pymalloc]}" "$PYMALLOC_MIN_KEPT"
min_peer=$(awk -v a="$neap" -v f="$PEER_FACTOR" 'BEGIN { printf "%.2f", a * f }')
for name in pymalloc "${PEERS[@]}"; do
    check "$name kept ${KEPT[$name]}% >= $PEER_FACTOR x neap's = $min_peer%" \
        "${KEPT[$name]}" "$min_peer"
done
[ $bad -eq 0 ] || fail "the memory given back is not as it should be"
echo "PASS"
