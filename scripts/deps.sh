#!/usr/bin/env bash
# Installs, from Debian's packages, what building and testing neap needs,
# when it is missing.  Sourced by ./run-demo and ./run-tests.
# Another package manager at work (unattended-upgrades, a second apt-get)
# holds apt's locks: apt-get waits for the dpkg lock with
# DPkg::Lock::Timeout, but `apt-get update` fails at once on the lock of the
# package lists all the same (apt 2.6), so a failure that says "Could not
# get lock" is tried again every 5 s, for 10 minutes in all.
neap_apt_get() {   # neap_apt_get ARGS...: apt-get ARGS (with sudo unless root), output to stderr
    local sudo="" err rc waited=0
    [ "$(id -u)" = 0 ] || sudo="sudo"
    err=$(mktemp) || return 1
    while :; do
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 "$@" >&2 2>"$err"
        rc=$?
        if [ $rc -eq 0 ] || ! grep -q "Could not get lock" "$err" || [ $waited -ge 600 ]; then
            cat "$err" >&2
            rm -f "$err"
            return $rc
        fi
        [ $waited -eq 0 ] && echo "apt-get: another package manager holds apt's lock; waiting for it (at most 10 minutes)" >&2
        sleep 5
        waited=$((waited + 5))
    done
}

neap_install() {   # neap_install PACKAGE...: apt-get install, with sudo unless root
    [ $# -eq 0 ] && return 0
    echo "installing: $*" >&2
    neap_apt_get update -qq && neap_apt_get install -y -qq "$@"
}

neap_need() {   # neap_need COMMAND PACKAGE [COMMAND PACKAGE ...]
    local missing=()
    while [ $# -ge 2 ]; do
        command -v "$1" >/dev/null 2>&1 || missing+=("$2")
        shift 2
    done
    neap_install ${missing[@]+"${missing[@]}"}
}

neap_need_pkg() {   # neap_need_pkg PACKAGE...: Debian packages that are not commands
    local missing=() p
    for p in "$@"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    neap_install ${missing[@]+"${missing[@]}"}
}

neap_build() {   # neap_build DIR [cmake args...]
    local dir=$1; shift
    local gen=()
    command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
    cmake -S "$NEAP_ROOT" -B "$dir" "${gen[@]}" "$@" >/dev/null && \
        cmake --build "$dir" -j "$(nproc)"
}
