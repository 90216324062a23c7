#!/usr/bin/env bash
# awk.sh LIB -- awk on neap: aggregation over a generated file in
# associative arrays, string building and split(); the output is sorted by a
# plain sort.
. "$(dirname "$0")/common.sh"
setup "$@"
need awk sort

awk 'BEGIN {
    srand(777);
    for (i = 0; i < 600000; i++)
        printf "%d k%d %s %d\n", i, int(rand() * 20000),
            substr("lorem ipsum dolor sit amet consectetur", 1, 1 + int(rand() * 38)),
            int(rand() * 1000);
}' >"$DATA/input.txt"

scenario() {
    "${RUN[@]}" awk '{ n[$2]++; s[$2] += $NF; if ($1 % 50 == 0) w[$3] = w[$3] " " $1 % 97 }
        END {
            for (k in n) print "key", k, n[k], s[k];
            for (k in w) { m = split(w[k], parts, " "); print "word", k, m, length(w[k]) }
        }' "$DATA/input.txt" | sort
    "${RUN[@]}" awk 'BEGIN { for (i = 0; i < 200000; i++) { a[i] = sprintf("%0100d", i) }
                         for (i = 0; i < 200000; i += 2) delete a[i]
                         t = 0; for (k in a) t += length(a[k]); print "left", t }'
}
compare_runs
