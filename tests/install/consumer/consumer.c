/* consumer.c -- a program built against an installed neap, as its users
 * build theirs (tests/install/pkgconfig.sh through pkg-config,
 * tests/install/cmake.sh through find_package).  It allocates through
 * neap's own names and through malloc, which must be neap's whether it
 * linked libneap.so or libneap.a, reads the statistics, and says so on
 * stdout: "consumer LINK: neap VERSION, malloc is neap's, N bytes live".
 * Exit status 1, naming the check, when one fails.
 */
#include <neap.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failed;

static void check(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "consumer: FAILED: %s\n", what);
        failed = 1;
    }
}

int main(int argc, char **argv) {
    const char *link = argc > 1 ? argv[1] : "?";

    void *p = neap_malloc(100);
    check(p != NULL && neap_owns(p), "neap_malloc gives a block neap owns");
    check(neap_usable_size(p) >= 100, "neap_usable_size >= the size asked for");

    char *q = malloc(1000);   /* malloc itself: neap's when neap is linked */
    check(q != NULL && neap_owns(q), "malloc is neap's");
    if (q != NULL) memset(q, 1, 1000);

    neap_stats_t st;
    neap_stats_get(&st);
    check(st.bytes_live >= 1100, "neap_stats_get counts the live blocks");
    check(strcmp(neap_option_name(NEAP_OPTION_PURGE_DELAY), "PURGE_DELAY") == 0,
          "neap_option_name");

    printf("consumer %s: neap %s, malloc is %s, %zu bytes live\n", link, NEAP_VERSION,
           q != NULL && neap_owns(q) ? "neap's" : "NOT neap's", st.bytes_live);
    free(q);
    neap_free(p);
    return failed;
}
