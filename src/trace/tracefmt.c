/* tracefmt.c -- encoding the neap trace format (tracefmt.h,
 * docs/trace-format.md), and the CRC-32 its chunks carry.  The decoder
 * lives with its only user, the neap command (cli/trace_read.c).
 *
 * Encoder: records go into the caller's buffer after 12 bytes kept for the
 * chunk header; a record is first encoded into a small scratch array on the
 * stack (or measured, for stacks and modules) so that a record that does not
 * fit changes nothing.  finish() fills the header and resets the deltas.
 *
 *   enc.buf  [ "CHNK" | len | crc ][ 'S' ... | 'A' ... | 'F' ... ][  free  ]
 *
 * Records with bytes of their own ('M' path, 'S' frames, 'K' label) are
 * measured first and written in place only when they fit whole.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "trace/tracefmt.h"

#include <pthread.h>
#include <string.h>

/* --- CRC-32 (IEEE, reflected), eight bytes at a time ----------------------
 *
 * "Slicing by 8": table[k][b] is the CRC of byte b followed by k zero bytes,
 * so eight table lookups fold eight bytes at once (about 1 cycle a byte,
 * against 5 for a byte at a time).  The 8 KiB of tables are computed once,
 * on first use. */

static uint32_t neap_crc_table[8][256];
static pthread_once_t neap_crc_once = PTHREAD_ONCE_INIT;

static void neap_crc_init(void) {
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t c = b;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
        neap_crc_table[0][b] = c;
    }
    for (uint32_t b = 0; b < 256; b++) {
        for (int k = 1; k < 8; k++) {
            uint32_t c = neap_crc_table[k - 1][b];
            neap_crc_table[k][b] = (c >> 8) ^ neap_crc_table[0][c & 0xff];
        }
    }
}

uint32_t _neap_trace_crc32(uint32_t crc, const void *p, size_t n) {
    const uint8_t *b = p;
    pthread_once(&neap_crc_once, neap_crc_init);
    const uint32_t(*t)[256] = (const uint32_t(*)[256])neap_crc_table;
    crc = ~crc;
    while (n >= 8) {
        uint32_t lo = crc ^ ((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                             (uint32_t)b[3] << 24);
        uint32_t hi = (uint32_t)b[4] | (uint32_t)b[5] << 8 | (uint32_t)b[6] << 16 |
                      (uint32_t)b[7] << 24;
        crc = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^ t[5][(lo >> 16) & 0xff] ^ t[4][lo >> 24] ^
              t[3][hi & 0xff] ^ t[2][(hi >> 8) & 0xff] ^ t[1][(hi >> 16) & 0xff] ^ t[0][hi >> 24];
        b += 8;
        n -= 8;
    }
    while (n-- > 0)
        crc = (crc >> 8) ^ t[0][(crc ^ *b++) & 0xff];
    return ~crc;
}

/* --- little-endian and varint primitives of the encoder ------------------- */

static void neap_put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void neap_put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Bytes _neap_trace_put_varint would write. */
static size_t neap_varint_len(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* --- encoder ----------------------------------------------------------------- */

size_t _neap_trace_header_encode(uint8_t *buf, size_t cap, const _neap_trace_header_t *h) {
    size_t need = NEAP_TRACE_HEADER_FIXED + (size_t)h->cmdline_len;
    if (cap < need) return 0;
    memcpy(buf, NEAP_TRACE_MAGIC, NEAP_TRACE_MAGIC_LEN);  /* the magic's NUL included */
    neap_put32(buf + 8, NEAP_TRACE_VERSION);
    neap_put32(buf + 12, h->flags);
    neap_put64(buf + 16, h->sample_interval);
    neap_put64(buf + 24, h->start_ns);
    neap_put32(buf + 32, h->pid);
    neap_put32(buf + 36, h->max_frames);
    neap_put32(buf + 40, h->cmdline_len);
    if (h->cmdline_len) memcpy(buf + NEAP_TRACE_HEADER_FIXED, h->cmdline, h->cmdline_len);
    return need;
}

void _neap_trace_enc_init(_neap_trace_enc_t *e, uint8_t *buf, size_t cap) {
    e->buf = buf;
    e->cap = cap;
    e->len = NEAP_TRACE_CHUNK_HEADER;
    e->prev_alloc = 0;
    e->prev_free = 0;
}

/* Appends a small record from scratch (tag, then n varints): 0, or -1 when
 * it does not fit. */
static inline int neap_enc_small(_neap_trace_enc_t *e, int tag, const uint64_t *v, int n) {
    if (e->cap - e->len >= NEAP_TRACE_REC_SMALL) {
        /* room for the longest: encode in place (the usual case) */
        uint8_t *p = e->buf + e->len;
        size_t len = 0;
        p[len++] = (uint8_t)tag;
        for (int i = 0; i < n; i++) len += _neap_trace_put_varint(p + len, v[i]);
        e->len += len;
        return 0;
    }
    uint8_t tmp[NEAP_TRACE_REC_SMALL];
    size_t len = 0;
    tmp[len++] = (uint8_t)tag;
    for (int i = 0; i < n; i++) len += _neap_trace_put_varint(tmp + len, v[i]);
    if (e->cap - e->len < len) return -1;
    memcpy(e->buf + e->len, tmp, len);
    e->len += len;
    return 0;
}

int _neap_trace_enc_clock(_neap_trace_enc_t *e, uint64_t clock) {
    return neap_enc_small(e, NEAP_TREC_CLOCK, &clock, 1);
}

int _neap_trace_enc_module(_neap_trace_enc_t *e, uint64_t start, uint64_t end, uint64_t offset,
                           const char *path, size_t path_len) {
    size_t need = 1 + neap_varint_len(start) + neap_varint_len(end) + neap_varint_len(offset) +
                  neap_varint_len(path_len) + path_len;
    if (e->cap - e->len < need) return -1;
    uint8_t *p = e->buf + e->len;
    *p++ = NEAP_TREC_MODULE;
    p += _neap_trace_put_varint(p, start);
    p += _neap_trace_put_varint(p, end);
    p += _neap_trace_put_varint(p, offset);
    p += _neap_trace_put_varint(p, path_len);
    memcpy(p, path, path_len);
    e->len += need;
    return 0;
}

int _neap_trace_enc_stack(_neap_trace_enc_t *e, uint64_t id, const uint64_t *frames,
                          size_t nframes) {
    if (nframes > NEAP_TRACE_FRAMES_MAX) nframes = NEAP_TRACE_FRAMES_MAX;
    size_t need = 1 + neap_varint_len(id) + neap_varint_len(nframes);
    uint64_t prev = 0;
    for (size_t i = 0; i < nframes; i++) {
        need += neap_varint_len(_neap_trace_zigzag_delta(frames[i], prev));
        prev = frames[i];
    }
    if (e->cap - e->len < need) return -1;
    uint8_t *p = e->buf + e->len;
    *p++ = NEAP_TREC_STACK;
    p += _neap_trace_put_varint(p, id);
    p += _neap_trace_put_varint(p, nframes);
    prev = 0;
    for (size_t i = 0; i < nframes; i++) {
        p += _neap_trace_put_varint(p, _neap_trace_zigzag_delta(frames[i], prev));
        prev = frames[i];
    }
    e->len += need;
    return 0;
}

int _neap_trace_enc_alloc_tight(_neap_trace_enc_t *e, uint64_t stack, uint64_t size, uint64_t addr) {
    uint64_t v[3] = {stack, size, _neap_trace_zigzag_delta(addr, e->prev_alloc)};
    if (neap_enc_small(e, NEAP_TREC_ALLOC, v, 3) != 0) return -1;
    e->prev_alloc = addr;
    return 0;
}

int _neap_trace_enc_grow(_neap_trace_enc_t *e, uint64_t stack, uint64_t size, uint64_t offset,
                         uint64_t addr) {
    uint64_t v[4] = {stack, size, offset, _neap_trace_zigzag_delta(addr, e->prev_alloc)};
    if (neap_enc_small(e, NEAP_TREC_GROW, v, 4) != 0) return -1;
    e->prev_alloc = addr;
    return 0;
}

int _neap_trace_enc_move(_neap_trace_enc_t *e, uint64_t old_addr, uint64_t new_addr) {
    uint64_t v[2] = {_neap_trace_zigzag_delta(old_addr, e->prev_free),
                     _neap_trace_zigzag_delta(new_addr, e->prev_alloc)};
    if (neap_enc_small(e, NEAP_TREC_MOVE, v, 2) != 0) return -1;
    e->prev_free = old_addr;
    e->prev_alloc = new_addr;
    return 0;
}

int _neap_trace_enc_free_tight(_neap_trace_enc_t *e, uint64_t addr) {
    uint64_t v[1] = {_neap_trace_zigzag_delta(addr, e->prev_free)};
    if (neap_enc_small(e, NEAP_TREC_FREE, v, 1) != 0) return -1;
    e->prev_free = addr;
    return 0;
}

int _neap_trace_enc_tick(_neap_trace_enc_t *e, uint64_t ms, uint64_t rss, uint64_t live) {
    uint64_t v[3] = {ms, rss, live};
    return neap_enc_small(e, NEAP_TREC_TICK, v, 3);
}

int _neap_trace_enc_pyframe(_neap_trace_enc_t *e, uint64_t id, uint64_t line, const char *file,
                            size_t file_len, const char *func, size_t func_len) {
    if (file_len > NEAP_TRACE_PYNAME_MAX) file_len = NEAP_TRACE_PYNAME_MAX;
    if (func_len > NEAP_TRACE_PYNAME_MAX) func_len = NEAP_TRACE_PYNAME_MAX;
    size_t need = 1 + neap_varint_len(id) + neap_varint_len(line) + neap_varint_len(file_len) +
                  file_len + neap_varint_len(func_len) + func_len;
    if (e->cap - e->len < need) return -1;
    uint8_t *p = e->buf + e->len;
    *p++ = NEAP_TREC_PYFRAME;
    p += _neap_trace_put_varint(p, id);
    p += _neap_trace_put_varint(p, line);
    p += _neap_trace_put_varint(p, file_len);
    memcpy(p, file, file_len);
    p += file_len;
    p += _neap_trace_put_varint(p, func_len);
    memcpy(p, func, func_len);
    e->len += need;
    return 0;
}

int _neap_trace_enc_end(_neap_trace_enc_t *e, uint32_t how, int64_t value) {
    uint64_t v[2] = {how, _neap_trace_zigzag_delta((uint64_t)value, 0)};
    return neap_enc_small(e, NEAP_TREC_END, v, 2);
}

int _neap_trace_enc_mark(_neap_trace_enc_t *e, uint64_t ms, const char *label, size_t len) {
    if (len > NEAP_TRACE_LABEL_MAX) len = NEAP_TRACE_LABEL_MAX;
    size_t need = 1 + neap_varint_len(ms) + neap_varint_len(len) + len;
    if (e->cap - e->len < need) return -1;
    uint8_t *p = e->buf + e->len;
    *p++ = NEAP_TREC_MARK;
    p += _neap_trace_put_varint(p, ms);
    p += _neap_trace_put_varint(p, len);
    if (len) memcpy(p, label, len);
    e->len += need;
    return 0;
}

size_t _neap_trace_enc_payload(const _neap_trace_enc_t *e) {
    return e->len - NEAP_TRACE_CHUNK_HEADER;
}

size_t _neap_trace_enc_seal(_neap_trace_enc_t *e) {
    size_t payload = _neap_trace_enc_payload(e);
    size_t total = e->len;
    e->len = NEAP_TRACE_CHUNK_HEADER;
    e->prev_alloc = 0;
    e->prev_free = 0;
    if (payload == 0) return 0;
    memcpy(e->buf, NEAP_TRACE_CHUNK_MAGIC, 4);
    neap_put32(e->buf + 4, (uint32_t)payload);
    neap_put32(e->buf + 8, 0);
    return total;
}

void _neap_trace_chunk_sign(uint8_t *chunk, size_t total) {
    size_t payload = total - NEAP_TRACE_CHUNK_HEADER;
    neap_put32(chunk + 8, _neap_trace_crc32(0, chunk + NEAP_TRACE_CHUNK_HEADER, payload));
}

size_t _neap_trace_enc_finish(_neap_trace_enc_t *e) {
    size_t total = _neap_trace_enc_seal(e);
    if (total > 0) _neap_trace_chunk_sign(e->buf, total);
    return total;
}
