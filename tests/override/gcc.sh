#!/usr/bin/env bash
# gcc.sh LIB -- gcc -O2 on neap (the driver, cc1 and as all preloaded):
# compiles a generated C file; the objects' symbols (nm), section sizes and
# bytes are compared.
. "$(dirname "$0")/common.sh"
setup "$@"
need gcc nm size sha256sum awk

awk 'BEGIN {
    print "#include <string.h>";
    print "struct s { int a; double b; char c[24]; struct s *next; };";
    for (i = 0; i < 400; i++) {
        printf "static int helper%d(int x) { return x * %d + (x >> %d); }\n", i, i + 3, i % 7;
        printf "int f%d(struct s *p, int n) {\n", i;
        printf "    int acc = %d;\n", i;
        printf "    for (int k = 0; k < n; k++) {\n";
        printf "        switch ((k + %d) %% 5) {\n", i;
        for (c = 0; c < 5; c++)
            printf "        case %d: acc += helper%d(p->a + k) ^ %d; break;\n", c, i, c * i;
        printf "        }\n        if (p->next) p = p->next;\n    }\n";
        printf "    memset(p->c, acc & 0x7f, sizeof p->c);\n";
        printf "    return acc + (int)(p->b * %d.5);\n}\n", i;
        printf "double g%d(const double *v, int n) { double t = 0; for (int k = 0; k < n; k++) t += v[k] * %d.25 / (k + 1); return t; }\n", i, i;
    }
}' >"$DATA/gen.c"

scenario() {
    "${RUN[@]}" gcc -O2 -c "$DATA/gen.c" -o gen.o
    "${RUN[@]}" gcc -O1 -g -c "$DATA/gen.c" -o gen_g.o
    nm gen.o
    size gen.o gen_g.o | awk '{ print $1, $2, $3 }'
    sha256sum <gen.o
}
compare_runs
