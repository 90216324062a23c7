# tests/install/common.sh -- what the installation tests share: sourced by
# tree.sh, pkgconfig.sh, cmake.sh and deb.sh.
#
#   install_prefix BUILD DIR   `cmake --install BUILD --prefix DIR`; sets
#                              NEAP_LIBDIR to the library directory in it
#   fail MESSAGE...            says what failed, exits 1
#   skip MESSAGE...            says why the test cannot run, exits 77
#
# Every test works in a fresh temporary directory, $work, removed at exit.
set -u
work=$(mktemp -d "${TMPDIR:-/tmp}/neap-install-test.XXXXXX") || exit 1
cleanup_work() { rm -rf "$work"; }
trap cleanup_work EXIT
trap "exit 143" TERM INT HUP   # the EXIT trap runs on a timeout too

fail() { echo "FAILED: $*" >&2; exit 1; }
skip() { echo "SKIPPED: $*" >&2; exit 77; }

CMAKE=${CMAKE:-cmake}
install_prefix() {   # install_prefix BUILD DIR
    "$CMAKE" --install "$1" --prefix "$2" >"$work/install.log" 2>&1 ||
        { cat "$work/install.log" >&2; fail "cmake --install $1 --prefix $2"; }
    local pc
    pc=$(find "$2" -name neap.pc -path '*/pkgconfig/*' | head -n 1)
    [ -n "$pc" ] || fail "no pkgconfig/neap.pc under the prefix"
    NEAP_LIBDIR=$(cd "$(dirname "$pc")/.." && pwd)
}
