#!/usr/bin/env bash
# tests/install/cmake.sh -- a CMake project built against an installed neap
# through find_package(neap 0.1 REQUIRED) (tests/install/consumer), and run:
# consumer_shared links neap::neap, consumer_static neap::neap_static; in
# both, malloc must be neap's, and only the first loads libneap.so.0, the
# installed one.  A version the installation does not satisfy must fail.
#   usage: cmake.sh BUILD_DIR SOURCE_DIR CC GENERATOR
. "$(dirname "$0")/common.sh"
build=$1 src=$2 cc=$3 gen=$4
prefix=$work/prefix
install_prefix "$build" "$prefix"

"$CMAKE" -S "$src/tests/install/consumer" -B "$work/consumer" -G "$gen" \
    -DCMAKE_C_COMPILER="$cc" -DCMAKE_PREFIX_PATH="$prefix" >"$work/configure.log" 2>&1 ||
    { cat "$work/configure.log" >&2; fail "configuring the consumer (find_package(neap))"; }
grep "neap .* found in" "$work/configure.log"
"$CMAKE" --build "$work/consumer" >"$work/build.log" 2>&1 ||
    { cat "$work/build.log" >&2; fail "building the consumer"; }

ldd "$work/consumer/consumer_shared" | grep -q "libneap.so.0 => $NEAP_LIBDIR/" ||
    fail "consumer_shared does not load $NEAP_LIBDIR/libneap.so.0"
"$work/consumer/consumer_shared" "cmake neap::neap" || fail "consumer_shared"
ldd "$work/consumer/consumer_static" | grep -q libneap && fail "consumer_static needs libneap.so"
"$work/consumer/consumer_static" "cmake neap::neap_static" || fail "consumer_static"

# find_package(neap 9.9) must not take this installation
mkdir -p "$work/newer"
cat >"$work/newer/CMakeLists.txt" <<'EOT'
cmake_minimum_required(VERSION 3.16)
project(neap_newer LANGUAGES C)
find_package(neap 9.9 REQUIRED)
EOT
"$CMAKE" -S "$work/newer" -B "$work/newer/build" -G "$gen" -DCMAKE_PREFIX_PATH="$prefix" \
    >"$work/newer.log" 2>&1 && fail "find_package(neap 9.9) accepted version 0.x"
echo "find_package(neap 9.9) refused, as it should"
echo "ok"
