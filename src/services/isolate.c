/* isolate.c -- neap_run_isolated: run a memory-hungry function in a forked
 * child, so that every byte it used goes back to the OS when it exits.
 *
 *   parent                                 child (fork)
 *   shared = map_shared(header + out_size)
 *   fork ------------------------------->  n = fn(arg, shared->data, out_size)
 *                                          shared->length = n; shared->done = 1
 *   wait <-------------------------------  _exit(0)   (no atexit handlers, no
 *   exit status, signal?                              stdio flush of the parent's
 *   done? n <= out_size? copy to out                  buffers)
 *   unmap shared
 *
 * The result travels through an anonymous shared mapping of out_size bytes,
 * which is touched only as far as the child writes.  fn reports the length
 * it needed, as snprintf does, so a result too large for `out` is detected
 * rather than cut short.
 */
#include "core/internal.h"

#include <errno.h>
#include <limits.h>

typedef struct neap_isolated_box_s {
    _Atomic int done;       /* the child returned from fn */
    long length;            /* fn's return value */
    _Alignas(16) unsigned char data[];
} neap_isolated_box_t;

long neap_run_isolated(neap_isolated_fn fn, void *arg, void *out, size_t out_size) {
    if (fn == NULL || (out == NULL && out_size > 0) ||
        out_size > (size_t)LONG_MAX - sizeof(neap_isolated_box_t) - NEAP_PAGE_SIZE) {
        errno = EINVAL;
        return NEAP_ISOLATED_ERROR;
    }
    size_t map_size = (sizeof(neap_isolated_box_t) + out_size + NEAP_PAGE_SIZE - 1) & ~(size_t)(NEAP_PAGE_SIZE - 1);
    neap_isolated_box_t *box = _neap_os_map_shared(map_size);
    if (box == NULL) {
        errno = ENOMEM;
        return NEAP_ISOLATED_ERROR;
    }
    long pid = _neap_os_fork();
    if (pid < 0) {
        int saved = errno;
        _neap_os_unmap(box, map_size);
        errno = saved;
        return NEAP_ISOLATED_ERROR;
    }
    if (pid == 0) {
        long n = fn(arg, box->data, out_size);
        box->length = n;
        atomic_store_explicit(&box->done, 1, memory_order_release);
        _neap_os_exit(0);
    }
    int status = 0;
    long result;
    if (_neap_os_wait(pid, &status) != 0) {
        result = NEAP_ISOLATED_ERROR;
    } else {
        int code;
        if (!_neap_os_exited(status, &code)) {
            result = NEAP_ISOLATED_SIGNAL(code);
        } else if (code != 0 || !atomic_load_explicit(&box->done, memory_order_acquire)) {
            result = NEAP_ISOLATED_EXITED;   /* fn called exit() or _exit() */
        } else if (box->length < 0) {
            result = NEAP_ISOLATED_FAILED;
        } else if ((size_t)box->length > out_size) {
            if (out_size > 0) memcpy(out, box->data, out_size);
            result = NEAP_ISOLATED_TOO_LARGE;
        } else {
            if (box->length > 0) memcpy(out, box->data, (size_t)box->length);
            result = box->length;
        }
    }
    int saved = errno;
    _neap_os_unmap(box, map_size);
    if (result == NEAP_ISOLATED_TOO_LARGE) saved = ERANGE;
    errno = saved;
    return result;
}

const char *neap_isolated_strerror(long result) {
    if (result >= 0) return "success";
    switch (result) {
    case NEAP_ISOLATED_ERROR: return "the child process could not be started";
    case NEAP_ISOLATED_FAILED: return "the function reported a failure (returned a negative length)";
    case NEAP_ISOLATED_TOO_LARGE: return "the result is larger than the output buffer";
    case NEAP_ISOLATED_EXITED: return "the child exited before the function returned";
    default: break;
    }
    if (NEAP_ISOLATED_IS_SIGNAL(result)) return "the child was killed by a signal";
    return "unknown result";
}
