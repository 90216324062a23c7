#!/usr/bin/env bash
# tests/install/man.sh -- the manual pages (docs/man) render without a
# warning, and say what the code has:
#   - every page passes groff -man -ww (all warnings) silently, and man -l
#     when man is there;
#   - every subcommand `neap --help` lists (but help and version) has its
#     page neap-CMD.1, naming every --option its `neap CMD --help` names;
#   - every option of src/core/options.c's table, and every NEAP_ variable
#     the code of src/ and cli/ reads, is in neap-options.7.
# So a new option or subcommand without its documentation fails here.
#   usage: man.sh SOURCE_DIR NEAP_EXECUTABLE
. "$(dirname "$0")/common.sh"
src=$1 neap=$2
man=$src/docs/man
command -v groff >/dev/null || skip "no groff (Debian: groff-base)"
bad=0
documented=()
miss() { echo "FAILED: $*" >&2; bad=1; }

for page in "$man"/*.[0-9]; do
    groff -man -Tutf8 -ww -z "$page" >"$work/groff.log" 2>&1
    [ -s "$work/groff.log" ] && { cat "$work/groff.log" >&2; miss "groff warns on $(basename "$page")"; }
    if command -v man >/dev/null; then
        MANWIDTH=80 man --warnings -l "$page" >"$work/page.txt" 2>"$work/man.log" ||
            miss "man -l $(basename "$page")"
        [ -s "$work/man.log" ] && { cat "$work/man.log" >&2; miss "man warns on $(basename "$page")"; }
        [ -s "$work/page.txt" ] || miss "man -l $(basename "$page") renders nothing"
    fi
done
echo "$(ls "$man"/*.[0-9] | wc -l) pages render without warnings"

# the subcommands and their options
cmds=$("$neap" --help | awk '/^commands:/ {on = 1; next} on && /^  [a-z]/ {print $1}')
[ -n "$cmds" ] || miss "no commands in neap --help"
for c in $cmds; do
    case $c in help|version) continue ;; esac
    documented+=("$c")
    page=$man/neap-$c.1
    [ -f "$page" ] || { miss "neap $c has no page docs/man/neap-$c.1"; continue; }
    grep -q "^\.BR neap\\\\-$c (1)" "$man/neap.1" || miss "neap.1 does not refer to neap-$c(1)"
    for o in $("$neap" "$c" --help 2>&1 | grep -oE -- '--[a-z][a-z-]*' | sort -u); do
        roff=${o//-/\\-}
        grep -qF -- "$roff" "$page" || miss "neap $c $o is not in neap-$c.1"
    done
done
echo "subcommands with their pages: ${documented[*]}"

# the NEAP_ variables: options.c's table and what the code reads
opts=$(grep -oE '^\s*\[NEAP_OPTION_[A-Z_]+\] = \{"[A-Z_]+"' "$src/src/core/options.c" |
       sed -E 's/.*\{"([A-Z_]+)"/NEAP_\1/')
[ "$(echo "$opts" | wc -l)" -ge 10 ] || miss "could not read src/core/options.c's table"
reads=$(grep -rhoE '"NEAP_[A-Z_]+[="]' "$src/src" "$src/cli" --include='*.c' | tr -d '"=' | sort -u)
# an entry is the tagged paragraph (.TP) that starts with the variable
entries=$(awk 'prev == ".TP" {print} {prev = $0}' "$man/neap-options.7" | grep -oE 'NEAP_[A-Z_]+')
for v in $opts $reads; do
    echo "$entries" | grep -qx "$v" || miss "$v has no entry in docs/man/neap-options.7"
done
echo "NEAP_ variables in neap-options.7: $(echo $opts $reads | tr ' ' '\n' | sort -u | wc -l)"
exit $bad
