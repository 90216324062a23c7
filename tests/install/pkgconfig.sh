#!/usr/bin/env bash
# tests/install/pkgconfig.sh -- a program built against an installed neap
# through pkg-config, as README's "Install" says, and run:
#   shared        cc consumer.c $(pkg-config --cflags --libs neap)
#   static        cc consumer.c $(pkg-config --cflags --libs neap-static)
#   fully static  cc -static consumer.c $(pkg-config --static --cflags --libs neap)
# In each, malloc must be neap's; the shared one must load the installed
# libneap.so.0, the others no libneap.so at all.
#   usage: pkgconfig.sh BUILD_DIR SOURCE_DIR CC VERSION
. "$(dirname "$0")/common.sh"
build=$1 src=$2 cc=$3 version=$4
command -v pkg-config >/dev/null || skip "no pkg-config (Debian: pkg-config)"
prefix=$work/prefix
install_prefix "$build" "$prefix"
export PKG_CONFIG_PATH=$NEAP_LIBDIR/pkgconfig
consumer=$src/tests/install/consumer/consumer.c
cflags=(-std=c11 -Wall -Wextra -Wpedantic -Werror)

v=$(pkg-config --modversion neap) || fail "pkg-config --modversion neap"
[ "$v" = "$version" ] || fail "pkg-config says version $v, the project $version"
echo "pkg-config --modversion neap: $v"

# shared: libneap.so.0 from the prefix
# shellcheck disable=SC2046
"$cc" "${cflags[@]}" "$consumer" $(pkg-config --cflags --libs neap) -o "$work/c_shared" ||
    fail "cc with pkg-config --cflags --libs neap"
LD_LIBRARY_PATH=$NEAP_LIBDIR ldd "$work/c_shared" | grep -q "libneap.so.0 => $NEAP_LIBDIR/" ||
    fail "the shared consumer does not load $NEAP_LIBDIR/libneap.so.0"
LD_LIBRARY_PATH=$NEAP_LIBDIR "$work/c_shared" "pkg-config shared" || fail "the shared consumer"

# libneap.a into a dynamic program
# shellcheck disable=SC2046
"$cc" "${cflags[@]}" "$consumer" $(pkg-config --cflags --libs neap-static) -o "$work/c_static" ||
    fail "cc with pkg-config --cflags --libs neap-static"
ldd "$work/c_static" | grep -q libneap && fail "the static consumer needs libneap.so"
"$work/c_static" "pkg-config static" || fail "the static consumer"

# a fully static program: pkg-config --static (Libs.private)
# shellcheck disable=SC2046
"$cc" -static "${cflags[@]}" "$consumer" $(pkg-config --static --cflags --libs neap) \
    -o "$work/c_full" 2>"$work/ld.log" ||
    { cat "$work/ld.log" >&2; fail "cc -static with pkg-config --static --cflags --libs neap"; }
readelf -l "$work/c_full" | grep -q INTERP && fail "the -static consumer is dynamic"
"$work/c_full" "pkg-config -static" || fail "the fully static consumer"
echo "ok"
