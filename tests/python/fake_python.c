/* fake_python.c -- a program that looks, to neap's search for an
 * interpreter (src/trace/pyframes.c), like CPython 3.12: it exports the
 * names that search reads (built with -rdynamic), with a version neap does
 * not read.  Traced, it must get one warning saying so, and C frames.
 * Nothing of CPython is here: it allocates from a few threads and exits. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

const unsigned long Py_Version = 0x030c01f0UL; /* 3.12.1, final */

void *_PyThreadState_UncheckedGet(void);
void *_PyThreadState_UncheckedGet(void) {
    abort(); /* never called: neap reads no frame of a 3.12 interpreter */
}

static void *work(void *arg) {
    (void)arg;
    for (int i = 0; i < 20000; i++) free(malloc(64 + (size_t)i % 512));
    return NULL;
}

int main(void) {
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        if (pthread_create(&t[i], NULL, work, NULL) != 0) return 1;
    work(NULL);
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    puts("fake python done");
    return 0;
}
