#!/usr/bin/env bash
# sort.sh LIB -- GNU sort on neap: a generated 50 MB file sorted in memory,
# with a small buffer (temporary files and merges) and with two threads;
# the outputs' checksums are compared.
. "$(dirname "$0")/common.sh"
setup "$@"
need sort awk sha256sum

# ~50 MB: 1.2M lines of random keys, numbers and words
awk 'BEGIN {
    srand(12345);
    for (i = 0; i < 1200000; i++)
        printf "%08d %s%d %d.%03d w%x %s\n", int(rand() * 100000000),
            substr("abcdefghijklmnopqrstuvwxyz", 1 + int(rand() * 26), 1 + int(rand() * 8)),
            int(rand() * 1000), int(rand() * 100000), int(rand() * 1000), i * 7,
            substr("the quick brown fox jumps over the lazy dog", 1 + int(rand() * 30));
}' >"$DATA/input.txt"
[ "$(wc -c <"$DATA/input.txt")" -gt 45000000 ] || fail "input too small"

scenario() {
    "${RUN[@]}" sort "$DATA/input.txt" | sha256sum
    "${RUN[@]}" sort -S 8M -T . --parallel=2 -k2,2 -k1,1n "$DATA/input.txt" | sha256sum
    "${RUN[@]}" sort -u -t' ' -k2,2 "$DATA/input.txt" | sha256sum
    "${RUN[@]}" sort -g -k3,3 -s "$DATA/input.txt" | tail -n 3
}
compare_runs
