/* diag.c -- formatting into a caller's buffer (no allocation, no locale, no
 * stdio), and the messages neap writes on fd 2: warnings, fatal pointer
 * errors, failed assertions.  Diagnostics never allocate through the
 * allocator they diagnose.
 */
#include "os/os.h"

/* ---------------------------------------------------------------------------
 * Formatting into a caller's buffer: no allocation, no locale, no stdio.
 * ------------------------------------------------------------------------- */
void _neap_buf_str(neap_buf_t *b, const char *s) {
    while (*s && b->len + 1 < b->cap) b->p[b->len++] = *s++;
    b->p[b->len] = 0;
}

void _neap_buf_str_escaped(neap_buf_t *b, const char *s, size_t max) {
    static const char hex[] = "0123456789abcdef";
    size_t i = 0;
    for (; s[i] && i < max; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 32 && c < 127 && c != '\\') {
            char one[2] = {(char)c, 0};
            _neap_buf_str(b, one);
        } else {
            char esc[5] = {'\\', 'x', hex[c >> 4], hex[c & 15], 0};
            _neap_buf_str(b, esc);
        }
    }
    if (s[i]) _neap_buf_str(b, "...");
}

void _neap_buf_u(neap_buf_t *b, unsigned long long v, int width) {
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (int i = n; i < width && b->len + 1 < b->cap; i++) b->p[b->len++] = ' ';
    while (n > 0 && b->len + 1 < b->cap) b->p[b->len++] = tmp[--n];
    b->p[b->len] = 0;
}

void _neap_buf_hex(neap_buf_t *b, uintptr_t v) {
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    _neap_buf_str(b, "0x");
    while (n > 0 && b->len + 1 < b->cap) b->p[b->len++] = tmp[--n];
    b->p[b->len] = 0;
}

/* Bytes with a binary unit, one decimal: "12.5 MiB". */
void _neap_buf_size(neap_buf_t *b, unsigned long long bytes, int width) {
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    unsigned long long whole = bytes, tenth = 0;
    while (whole >= 1024 && u < 4) {
        tenth = (whole % 1024) * 10 / 1024;
        whole /= 1024;
        u++;
    }
    char tmp[48];
    neap_buf_t t = {tmp, 0, sizeof tmp};
    _neap_buf_u(&t, whole, 0);
    if (u > 0) {
        _neap_buf_str(&t, ".");
        _neap_buf_u(&t, tenth, 0);
    }
    _neap_buf_str(&t, " ");
    _neap_buf_str(&t, units[u]);
    for (int i = (int)t.len; i < width && b->len + 1 < b->cap; i++) b->p[b->len++] = ' ';
    _neap_buf_str(b, tmp);
}

/* ---------------------------------------------------------------------------
 * Diagnostics: written straight to fd 2, never through the allocator.
 * ------------------------------------------------------------------------- */
void _neap_fatal_pointer(const char *func, const void *p, const char *what) {
    char msg[256];
    neap_buf_t b = {msg, 0, sizeof msg};
    _neap_buf_str(&b, "neap: ");
    _neap_buf_str(&b, func);
    _neap_buf_str(&b, "(): ");
    _neap_buf_str(&b, what);
    _neap_buf_str(&b, " ");
    _neap_buf_hex(&b, (uintptr_t)p);
    _neap_buf_str(&b, "\n");
    _neap_os_write(2, msg, b.len);
    _neap_os_abort();
}

void _neap_assert_fail(const char *expr, const char *file, int line) {
    char msg[512];
    neap_buf_t b = {msg, 0, sizeof msg};
    _neap_buf_str(&b, "neap: assertion failed: ");
    _neap_buf_str(&b, expr);
    _neap_buf_str(&b, " at ");
    _neap_buf_str(&b, file);
    _neap_buf_str(&b, ":");
    _neap_buf_u(&b, (unsigned)line, 0);
    _neap_buf_str(&b, "\n");
    _neap_os_write(2, msg, b.len);
    _neap_os_abort();
}

void _neap_warning(const char *msg, const char *detail) {
    char out[512];
    neap_buf_t b = {out, 0, sizeof out};
    _neap_buf_str(&b, "neap: warning: ");
    _neap_buf_str(&b, msg);
    if (detail) {
        _neap_buf_str(&b, ": ");
        _neap_buf_str(&b, detail);
    }
    _neap_buf_str(&b, "\n");
    _neap_os_write(2, out, b.len);
}
