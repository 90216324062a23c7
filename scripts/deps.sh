#!/usr/bin/env bash
# Installs, from Debian's packages, what building and testing neap needs,
# when it is missing.  Sourced by ./run-demo and ./run-tests.
neap_install() {   # neap_install PACKAGE...: apt-get install, with sudo unless root
    [ $# -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    echo "installing: $*" >&2
    $sudo apt-get update -qq >&2 && \
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >&2
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
