#!/usr/bin/env bash
# tests/install/tree.sh -- `cmake --install` into a fresh prefix gives a
# complete installation: the command, both libraries, every public header,
# the pkg-config and CMake files, every manual page of docs/man, the
# licence; and the installed `neap run` finds the installed libneap.so.
#   usage: tree.sh BUILD_DIR SOURCE_DIR
. "$(dirname "$0")/common.sh"
build=$1 src=$2
prefix=$work/prefix
install_prefix "$build" "$prefix"
lib=$NEAP_LIBDIR

want() { [ -e "$1" ] || fail "not installed: ${1#"$prefix"/}"; echo "  ${1#"$prefix"/}"; }
echo "installed:"
want "$prefix/bin/neap"
want "$lib/libneap.so"
want "$lib/libneap.so.0"
want "$lib/libneap.a"
for h in "$src"/include/*.h; do want "$prefix/include/$(basename "$h")"; done
want "$lib/pkgconfig/neap.pc"
want "$lib/pkgconfig/neap-static.pc"
for f in neapConfig.cmake neapConfigVersion.cmake neapTargets.cmake; do
    want "$lib/cmake/neap/$f"
done
for m in "$src"/docs/man/*.[0-9]; do
    s=${m##*.}
    want "$prefix/share/man/man$s/$(basename "$m")"
done
want "$prefix/share/doc/neap/copyright"
cmp -s "$src/LICENSE" "$prefix/share/doc/neap/copyright" || fail "share/doc/neap/copyright is not LICENSE"

# the installed command runs a program on the installed library
out=$("$prefix/bin/neap" run -- sh -c 'echo "$LD_PRELOAD"' 2>"$work/summary") ||
    { cat "$work/summary" >&2; fail "the installed neap run"; }
case $out in
    "$lib/libneap.so"*) echo "installed neap run preloads ${out#"$prefix"/}" ;;
    *) fail "the installed neap run preloads '$out', not $lib/libneap.so" ;;
esac
grep -q "exited with status 0" "$work/summary" || { cat "$work/summary" >&2; fail "no summary"; }
"$prefix/bin/neap" --version
