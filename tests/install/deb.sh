#!/usr/bin/env bash
# tests/install/deb.sh -- the Debian package: `cpack -G DEB` from the build
# directory gives neap_VERSION_ARCH.deb holding the whole installation under
# /usr (checked with dpkg-deb -c); `dpkg -i` installs it, after which
# `neap run -- python3 -c ...` works from PATH with its summary,
# `pkg-config --modversion neap` answers and a program built with
# pkg-config runs without LD_LIBRARY_PATH; `dpkg --purge neap` removes it
# again, always (a trap), leaving the machine as it was.
#
# It installs into the system, so it runs as root only (or with
# passwordless sudo), else it is skipped (77); skipped too when a package
# neap is installed already (not ours to replace).  Two runs at once (two
# build trees) take turns on a lock.
#   usage: deb.sh BUILD_DIR SOURCE_DIR CPACK VERSION
. "$(dirname "$0")/common.sh"
build=$1 src=$2 cpack=$3 version=$4
command -v dpkg-deb >/dev/null || skip "no dpkg-deb: not a Debian system"

# the package
"$cpack" -G DEB --config "$build/CPackConfig.cmake" -B "$work/pkg" >"$work/cpack.log" 2>&1 ||
    { cat "$work/cpack.log" >&2; fail "cpack -G DEB"; }
deb=$(ls "$work"/pkg/neap_*.deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || { cat "$work/cpack.log" >&2; fail "cpack made no neap_*.deb"; }
echo "built $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB)"
[ "$(dpkg-deb -f "$deb" Package)" = neap ] || fail "the package is not named neap"
[ "$(dpkg-deb -f "$deb" Version)" = "$version" ] || fail "the package's version is not $version"
echo "Depends: $(dpkg-deb -f "$deb" Depends)"
dpkg-deb -f "$deb" Depends | grep -q libc6 || fail "the package does not depend on libc6"

dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|' >"$work/contents"
has() {   # has REGEX WHAT
    grep -qE "$1" "$work/contents" || fail "the package lacks $2"
    echo "  $(grep -E "$1" "$work/contents" | tr '\n' ' ')"
}
echo "contents:"
has '^/usr/bin/neap$' "bin/neap"
has '^/usr/lib/([^/]+/)?libneap\.so(\.[0-9.]+)?$' "libneap.so*"
has '^/usr/lib/([^/]+/)?libneap\.a$' "libneap.a"
for h in "$src"/include/*.h; do has "^/usr/include/$(basename "$h")\$" "$(basename "$h")"; done
has '^/usr/lib/([^/]+/)?pkgconfig/neap\.pc$' "neap.pc"
has '^/usr/lib/([^/]+/)?pkgconfig/neap-static\.pc$' "neap-static.pc"
has '^/usr/lib/([^/]+/)?cmake/neap/neapConfig\.cmake$' "neapConfig.cmake"
has '^/usr/lib/([^/]+/)?cmake/neap/neapTargets\.cmake$' "neapTargets.cmake"
has '^/usr/lib/([^/]+/)?cmake/neap/neapConfigVersion\.cmake$' "neapConfigVersion.cmake"
for m in "$src"/docs/man/*.[0-9]; do
    has "^/usr/share/man/man${m##*.}/$(basename "$m")(\\.gz)?\$" "$(basename "$m")"
done
has '^/usr/share/doc/neap/copyright$' "the licence in /usr/share/doc/neap/copyright"

# installed into the system: root, or sudo without a password
if [ "$(id -u)" = 0 ]; then
    sudo=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
else
    skip "installing the package needs root or passwordless sudo (the package itself was checked)"
fi
exec 9>"${TMPDIR:-/tmp}/neap-deb-test.lock"
command -v flock >/dev/null && flock -w 300 9
if dpkg-query -W -f='${Status}' neap 2>/dev/null | grep -q ' installed$'; then
    skip "a package neap is installed already: not replacing it (dpkg -r neap, then run again)"
fi
remove() {
    "${sudo[@]}" dpkg --purge neap >"$work/remove.log" 2>&1 ||
        { cat "$work/remove.log" >&2; echo "FAILED: dpkg --purge neap" >&2; }
    cleanup_work
}
trap remove EXIT
"${sudo[@]}" dpkg -i "$deb" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg -i"; }
echo "installed with dpkg -i"

export PATH=/usr/bin:/bin:$PATH
[ "$(command -v neap)" = /usr/bin/neap ] || fail "neap on PATH is $(command -v neap), not /usr/bin/neap"
out=$(cd "$work" && neap run -- python3 -c 'print(6 * 7)' 2>"$work/summary") ||
    { cat "$work/summary" >&2; fail "neap run -- python3 -c ..."; }
[ "$out" = 42 ] || fail "neap run -- python3 printed '$out'"
grep -q "^neap run: python3 -c" "$work/summary" && grep -q "exited with status 0" "$work/summary" &&
    grep -q "live in blocks" "$work/summary" || { cat "$work/summary" >&2; fail "no run summary"; }
echo "neap run -- python3 -c 'print(6 * 7)': $out, and the summary:"
sed 's/^/  | /' "$work/summary" | head -n 6
pre=$(neap run -q -- sh -c 'echo "$LD_PRELOAD"')
case $pre in /usr/lib/*libneap.so*) echo "it preloads $pre" ;; *) fail "it preloads '$pre'" ;; esac

v=$(env -u PKG_CONFIG_PATH pkg-config --modversion neap 2>&1) || fail "pkg-config --modversion neap: $v"
[ "$v" = "$version" ] || fail "pkg-config --modversion neap says $v"
echo "pkg-config --modversion neap: $v"
# shellcheck disable=SC2046
cc "$src/tests/install/consumer/consumer.c" $(env -u PKG_CONFIG_PATH pkg-config --cflags --libs neap) \
    -o "$work/consumer" || fail "cc with pkg-config neap against /usr"
"$work/consumer" "/usr shared" || fail "the consumer against /usr (ldconfig?)"
if command -v man >/dev/null; then
    p=$(man -w neap-options 2>/dev/null) || fail "man -w neap-options finds no page"
    echo "man -w neap-options: $p"
fi
echo "ok (dpkg --purge neap at exit)"
