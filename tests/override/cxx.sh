#!/usr/bin/env bash
# cxx.sh LIB PROG -- a C++ program (cxx_prog.cpp: new/delete, vector,
# string, map, unordered_map, shared_ptr, aligned new, threads) on neap.
# Under the preload the program checks with neap_owns that operator new's
# memory is neap's.
. "$(dirname "$0")/common.sh"
setup "$@"
PROG=${2:?usage: cxx.sh LIB PROG}
[ -x "$PROG" ] || fail "no program at $PROG"

scenario() {
    "${RUN[@]}" "$PROG"
}
compare_runs
