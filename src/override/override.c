/* override.c -- the C library's allocation functions, served by neap.
 *
 * Linked into libneap.so and libneap.a.  With LD_PRELOAD=libneap.so, or with
 * the library linked before the C library, every malloc in the process --
 * the program's, the C library's own, C++'s operator new through malloc --
 * is neap's.  This works from the first allocation of the process: the
 * thread-local heap pointer starts at a static empty heap whose every pool
 * is empty, so the first call takes the slow path and sets neap up.
 */
#include "core/fastpath.h"

#include <errno.h>
#include <malloc.h>
#include <stdlib.h>

#define NEAP_OVERRIDE __attribute__((visibility("default")))

NEAP_OVERRIDE void *malloc(size_t size) { return neap_malloc_inline(size); }
NEAP_OVERRIDE void free(void *p) { neap_free_inline(p); }
NEAP_OVERRIDE void *calloc(size_t n, size_t size) { return neap_calloc(n, size); }
NEAP_OVERRIDE void *realloc(void *p, size_t size) { return neap_realloc(p, size); }
NEAP_OVERRIDE void *reallocarray(void *p, size_t n, size_t size) { return neap_reallocarray(p, n, size); }
NEAP_OVERRIDE int posix_memalign(void **out, size_t alignment, size_t size) {
    return neap_posix_memalign(out, alignment, size);
}
NEAP_OVERRIDE void *aligned_alloc(size_t alignment, size_t size) { return neap_aligned_alloc(alignment, size); }
NEAP_OVERRIDE void *memalign(size_t alignment, size_t size) { return neap_aligned_alloc(alignment, size); }
NEAP_OVERRIDE void *valloc(size_t size) { return neap_aligned_alloc(NEAP_PAGE_SIZE, size); }
NEAP_OVERRIDE void *pvalloc(size_t size) {
    size_t rounded = (size + NEAP_PAGE_SIZE - 1) & ~(size_t)(NEAP_PAGE_SIZE - 1);
    if (rounded < size) {
        errno = ENOMEM;
        return NULL;
    }
    return neap_aligned_alloc(NEAP_PAGE_SIZE, rounded ? rounded : NEAP_PAGE_SIZE);
}
NEAP_OVERRIDE size_t malloc_usable_size(void *p) { return neap_usable_size(p); }
NEAP_OVERRIDE int malloc_trim(size_t pad) {
    (void)pad;
    return neap_trim();
}
/* glibc's historical names, still called by some programs */
NEAP_OVERRIDE void cfree(void *p);  /* no longer declared by the headers */
NEAP_OVERRIDE void cfree(void *p) { neap_free(p); }
