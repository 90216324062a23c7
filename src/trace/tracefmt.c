/* tracefmt.c -- encoding and decoding the neap trace format (tracefmt.h,
 * docs/trace-format.md).
 *
 * Encoder: records go into the caller's buffer after 12 bytes kept for the
 * chunk header; a record is first encoded into a small scratch array on the
 * stack (or measured, for stacks and modules) so that a record that does not
 * fit changes nothing.  finish() fills the header and resets the deltas.
 *
 *   enc.buf  [ "CHNK" | len | crc ][ 'S' ... | 'A' ... | 'F' ... ][  free  ]
 *
 * Decoder: open reads the header, then indexes the chunks: each one's
 * header (magic, length) and first record, its clock when that is 'C'.
 * The index ends at the end of the file or at the first damaged header,
 * and is sorted by (clock, offset).  Reading merges:
 *
 *   index, sorted         open chunks: a min-heap on (the clock of the
 *   [c0][c1][c2]...       chunk's next record, offset)
 *        next_open ---->  a chunk is read whole and its CRC checked when its
 *                         key is below the heap's top; the top gives the
 *                         next record; a 'C' moves its chunk's key up; a
 *                         chunk is freed after its last record
 *
 * A single-threaded program's chunks have increasing clocks: one is open at
 * a time.  'E' is kept and returned after every other record.  States:
 *
 *   open --header ok--> READING --merged, 'E' seen--> CLEAN
 *                          |--merged, no 'E', the file ends at a chunk
 *                          |  boundary--> EOF
 *                          |--merged, the index stopped inside a chunk--> TRUNCATED
 *                          \--a bad magic (where the index stopped), CRC or
 *                             record--> CORRUPT
 *
 * A stop comes after every record before it in the merged order, with a
 * message naming the byte offset of the problem.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "trace/tracefmt.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* --- little-endian and varint primitives ----------------------------------- */

static void neap_put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void neap_put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t neap_get32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static uint64_t neap_get64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
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
static uint64_t neap_unzigzag(uint64_t z) {
    return (z >> 1) ^ (uint64_t)-(int64_t)(z & 1);
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

int _neap_trace_enc_end(_neap_trace_enc_t *e, uint32_t how, int64_t value) {
    uint64_t v[2] = {how, _neap_trace_zigzag_delta((uint64_t)value, 0)};
    return neap_enc_small(e, NEAP_TREC_END, v, 2);
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

/* --- decoder ----------------------------------------------------------------- */

const char *_neap_trace_status_name(_neap_trace_status_t s) {
    switch (s) {
    case NEAP_TRACE_READING: return "reading";
    case NEAP_TRACE_CLEAN: return "clean end";
    case NEAP_TRACE_EOF: return "no end record";
    case NEAP_TRACE_TRUNCATED: return "truncated";
    case NEAP_TRACE_CORRUPT: return "corrupt";
    case NEAP_TRACE_IOERROR: return "read error";
    case NEAP_TRACE_NOFILE: return "cannot open";
    case NEAP_TRACE_NOTTRACE: return "not a trace";
    case NEAP_TRACE_BADHEADER: return "bad header";
    }
    return "?";
}

/* Stops reading with status s and a printf-style message; returns 0 (the
 * value of _neap_trace_next at a stop) or -1 for open. */
__attribute__((format(printf, 3, 4))) static int neap_stop(_neap_trace_reader_t *r,
                                                           _neap_trace_status_t s,
                                                           const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->message, sizeof r->message, fmt, ap);
    va_end(ap);
    r->status = s;
    return s >= NEAP_TRACE_NOFILE ? -1 : 0;
}

/* Reads up to n bytes; returns how many were read (short only at the end
 * of the file or on an error, which ferror tells). */
static size_t neap_read(_neap_trace_reader_t *r, void *buf, size_t n) {
    size_t got = fread(buf, 1, n, r->f);
    r->consumed += got;
    return got;
}

static int neap_index(_neap_trace_reader_t *r);

int _neap_trace_open(_neap_trace_reader_t *r, const char *path) {
    memset(r, 0, sizeof *r);
    r->f = fopen(path, "rb");
    if (r->f == NULL) return neap_stop(r, NEAP_TRACE_NOFILE, "cannot open: %s", strerror(errno));
    struct stat st;
    if (fstat(fileno(r->f), &st) == 0) r->file_size = (uint64_t)st.st_size;
    uint8_t h[NEAP_TRACE_HEADER_FIXED];
    size_t got = neap_read(r, h, sizeof h);
    if (ferror(r->f)) return neap_stop(r, NEAP_TRACE_IOERROR, "read error at byte 0: %s", strerror(errno));
    size_t cmp = got < NEAP_TRACE_MAGIC_LEN ? got : NEAP_TRACE_MAGIC_LEN;
    if (got == 0)
        return neap_stop(r, NEAP_TRACE_BADHEADER,
                         "empty file: no trace header (the traced program may not have started)");
    if (memcmp(h, NEAP_TRACE_MAGIC, cmp) != 0)
        return neap_stop(r, NEAP_TRACE_NOTTRACE,
                         "not a neap trace: the file does not start with \"NEAPTRC\"");
    if (got < sizeof h)
        return neap_stop(r, NEAP_TRACE_BADHEADER,
                         "trace header truncated: %zu of its %d fixed bytes present", got,
                         NEAP_TRACE_HEADER_FIXED);
    r->hdr.version = neap_get32(h + 8);
    if (r->hdr.version > NEAP_TRACE_VERSION)
        return neap_stop(r, NEAP_TRACE_BADHEADER,
                         "trace format version %" PRIu32 " is newer than this neap reads "
                         "(version %d): use a newer neap",
                         r->hdr.version, NEAP_TRACE_VERSION);
    if (r->hdr.version == 0)
        return neap_stop(r, NEAP_TRACE_BADHEADER, "bad trace format version 0 at byte 8");
    r->hdr.flags = neap_get32(h + 12);
    r->hdr.sample_interval = neap_get64(h + 16);
    r->hdr.start_ns = neap_get64(h + 24);
    r->hdr.pid = neap_get32(h + 32);
    r->hdr.max_frames = neap_get32(h + 36);
    r->hdr.cmdline_len = neap_get32(h + 40);
    if ((r->hdr.flags & NEAP_TRACE_FLAG_SAMPLED) && r->hdr.sample_interval == 0)
        return neap_stop(r, NEAP_TRACE_BADHEADER,
                         "bad trace header: sampled, but the sample interval (byte 16) is 0");
    if (r->hdr.cmdline_len > NEAP_TRACE_CMDLINE_MAX)
        return neap_stop(r, NEAP_TRACE_BADHEADER,
                         "bad trace header: command line of %" PRIu32 " bytes (byte 40), more than %u",
                         r->hdr.cmdline_len, NEAP_TRACE_CMDLINE_MAX);
    r->cmdline = malloc((size_t)r->hdr.cmdline_len + 1);
    if (r->cmdline == NULL) return neap_stop(r, NEAP_TRACE_IOERROR, "out of memory");
    got = neap_read(r, r->cmdline, r->hdr.cmdline_len);
    if (got < r->hdr.cmdline_len)
        return neap_stop(r, ferror(r->f) ? NEAP_TRACE_IOERROR : NEAP_TRACE_BADHEADER,
                         "trace header truncated: command line of %" PRIu32 " bytes, only %zu present",
                         r->hdr.cmdline_len, got);
    r->cmdline[r->hdr.cmdline_len] = '\0';
    r->hdr.cmdline = r->cmdline;
    r->frames = malloc(NEAP_TRACE_FRAMES_MAX * sizeof *r->frames);
    if (r->frames == NULL || neap_index(r) != 0) return neap_stop(r, NEAP_TRACE_IOERROR, "out of memory");
    r->status = NEAP_TRACE_READING;
    return 0;
}

/* Reads n bytes at offset into buf; returns how many were read (short at
 * the end of the file), or -1 on an error (errno says which). */
static ssize_t neap_pread(_neap_trace_reader_t *r, uint64_t offset, void *buf, size_t n) {
    size_t done = 0;
    while (done < n) {
        ssize_t got = pread(fileno(r->f), (char *)buf + done, n - done, (off_t)(offset + done));
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) return -1;
        if (got == 0) break;
        done += (size_t)got;
    }
    return (ssize_t)done;
}

/* Where the index stops (the end of the good chunks) and why: reported
 * once every record before has been merged. */
__attribute__((format(printf, 4, 5))) static void neap_index_stop(_neap_trace_reader_t *r, uint64_t at,
                                                                  _neap_trace_status_t s,
                                                                  const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->end_message, sizeof r->end_message, fmt, ap);
    va_end(ap);
    r->end_status = s;
    r->good_end = at;
}

static int neap_chunk_cmp(const void *a, const void *b) {
    const _neap_trace_chunk_t *x = a, *y = b;
    if (x->clock != y->clock) return x->clock < y->clock ? -1 : 1;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Indexes the chunks from the end of the header: 0, or -1 when memory ran
 * out.  Damage stops the index; it is reported after the merge. */
static int neap_index(_neap_trace_reader_t *r) {
    uint64_t at = r->consumed;
    size_t cap = 0;
    for (;;) {
        uint8_t h[NEAP_TRACE_CHUNK_HEADER + 1 + NEAP_TRACE_VARINT_MAX];
        ssize_t got = at < r->file_size ? neap_pread(r, at, h, sizeof h) : 0;
        if (got < 0) {
            neap_index_stop(r, at, NEAP_TRACE_IOERROR, "read error at byte %" PRIu64 ": %s", at,
                            strerror(errno));
            break;
        }
        size_t n = (size_t)got;
        if (n == 0) {
            neap_index_stop(r, at, NEAP_TRACE_EOF, "%s", "");
            break;
        }
        if (memcmp(h, NEAP_TRACE_CHUNK_MAGIC, n < 4 ? n : 4) != 0) {
            neap_index_stop(r, at, NEAP_TRACE_CORRUPT,
                            "bad chunk at byte %" PRIu64 ": does not start with \"CHNK\"", at);
            break;
        }
        if (n < NEAP_TRACE_CHUNK_HEADER) {
            neap_index_stop(r, at, NEAP_TRACE_TRUNCATED,
                            "trace truncated at byte %" PRIu64
                            ": chunk header of %d bytes, only %zu present",
                            at, NEAP_TRACE_CHUNK_HEADER, n);
            break;
        }
        uint32_t len = neap_get32(h + 4);
        if (len == 0 || len > NEAP_TRACE_CHUNK_MAX) {
            neap_index_stop(r, at, NEAP_TRACE_CORRUPT,
                            "bad chunk at byte %" PRIu64 ": payload length %" PRIu32
                            " (1 to %u allowed)",
                            at, len, NEAP_TRACE_CHUNK_MAX);
            break;
        }
        uint64_t present = r->file_size - at - NEAP_TRACE_CHUNK_HEADER;
        if (present < len) {
            neap_index_stop(r, at, NEAP_TRACE_TRUNCATED,
                            "trace truncated at byte %" PRIu64 ": chunk of %" PRIu32
                            " bytes, only %" PRIu64 " present",
                            at, len, present);
            break;
        }
        _neap_trace_chunk_t c = {.offset = at, .len = len, .crc = neap_get32(h + 8)};
        /* the clock of a leading 'C' (a bad one is found when the chunk is read) */
        if (n > NEAP_TRACE_CHUNK_HEADER && h[NEAP_TRACE_CHUNK_HEADER] == NEAP_TREC_CLOCK) {
            uint64_t v = 0;
            size_t end = n < NEAP_TRACE_CHUNK_HEADER + len ? n : NEAP_TRACE_CHUNK_HEADER + len;
            for (size_t i = NEAP_TRACE_CHUNK_HEADER + 1, shift = 0; i < end && shift < 64; i++, shift += 7) {
                v |= (uint64_t)(h[i] & 0x7f) << shift;
                if ((h[i] & 0x80) == 0) {
                    c.clock = v;
                    break;
                }
            }
        }
        if (r->nindex == cap) {
            size_t ncap = cap ? cap * 2 : 256;
            _neap_trace_chunk_t *ni = realloc(r->index, ncap * sizeof *ni);
            if (ni == NULL) return -1;
            r->index = ni;
            cap = ncap;
        }
        r->index[r->nindex++] = c;
        at += NEAP_TRACE_CHUNK_HEADER + (uint64_t)len;
    }
    if (r->nindex > 0) qsort(r->index, r->nindex, sizeof *r->index, neap_chunk_cmp);
    r->open = malloc((r->nindex ? r->nindex : 1) * sizeof *r->open);
    return r->open != NULL ? 0 : -1;
}

/* The merge order of open chunks i and j: their next record's clock, then
 * their place in the file. */
static int neap_before(const _neap_trace_reader_t *r, size_t i, size_t j) {
    const _neap_trace_chunk_t *x = &r->index[i], *y = &r->index[j];
    return x->clock != y->clock ? x->clock < y->clock : x->offset < y->offset;
}

static void neap_heap_down(_neap_trace_reader_t *r, size_t k) {
    for (;;) {
        size_t l = 2 * k + 1, m = k;
        if (l < r->nopen && neap_before(r, r->open[l], r->open[m])) m = l;
        if (l + 1 < r->nopen && neap_before(r, r->open[l + 1], r->open[m])) m = l + 1;
        if (m == k) return;
        size_t t = r->open[k];
        r->open[k] = r->open[m];
        r->open[m] = t;
        k = m;
    }
}

static void neap_heap_push(_neap_trace_reader_t *r, size_t i) {
    size_t k = r->nopen++;
    r->open[k] = i;
    while (k > 0 && neap_before(r, r->open[k], r->open[(k - 1) / 2])) {
        size_t p = (k - 1) / 2, t = r->open[k];
        r->open[k] = r->open[p];
        r->open[p] = t;
        k = p;
    }
}

static void neap_heap_pop(_neap_trace_reader_t *r) {
    free(r->index[r->open[0]].payload);
    r->index[r->open[0]].payload = NULL;
    r->open[0] = r->open[--r->nopen];
    neap_heap_down(r, 0);
}

/* Reads index entry i whole, checks its CRC and opens it.  1, or 0: stop. */
static int neap_open_chunk(_neap_trace_reader_t *r, size_t i) {
    _neap_trace_chunk_t *c = &r->index[i];
    c->payload = malloc(c->len);
    if (c->payload == NULL)
        return neap_stop(r, NEAP_TRACE_IOERROR, "out of memory for a chunk of %" PRIu32 " bytes", c->len);
    ssize_t got = neap_pread(r, c->offset + NEAP_TRACE_CHUNK_HEADER, c->payload, c->len);
    int ok = 0;
    if (got < 0)
        neap_stop(r, NEAP_TRACE_IOERROR, "read error in chunk at byte %" PRIu64 ": %s", c->offset,
                  strerror(errno));
    else if ((size_t)got < c->len) /* the file shrank since it was indexed */
        neap_stop(r, NEAP_TRACE_TRUNCATED,
                  "trace truncated at byte %" PRIu64 ": chunk of %" PRIu32 " bytes, only %zd present",
                  c->offset, c->len, got);
    else
        ok = 1;
    if (ok) {
        r->consumed += NEAP_TRACE_CHUNK_HEADER + (uint64_t)c->len;
        uint32_t have = _neap_trace_crc32(0, c->payload, c->len);
        if (have != c->crc) {
            neap_stop(r, NEAP_TRACE_CORRUPT,
                      "CRC mismatch in chunk at byte %" PRIu64 " (stored 0x%08" PRIx32
                      ", computed 0x%08" PRIx32 ")",
                      c->offset, c->crc, have);
            ok = 0;
        }
    }
    if (!ok) {
        free(c->payload);
        c->payload = NULL;
        return 0;
    }
    c->pos = 0;
    c->prev_alloc = c->prev_free = 0;
    r->chunks++;
    neap_heap_push(r, i);
    return 1;
}

/* Decodes a varint at c->pos; 0, or -1 if it runs past the chunk or 64 bits. */
static int neap_get_varint(_neap_trace_chunk_t *c, uint64_t *out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (c->pos >= c->len) return -1;
        uint8_t b = c->payload[c->pos++];
        if (shift == 63 && b > 1) return -1;
        v |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

/* The corrupt-record stop: names the record, its offset and the chunk's. */
static int neap_bad_record(_neap_trace_reader_t *r, const _neap_trace_chunk_t *c, int tag,
                           uint64_t at, const char *what) {
    return neap_stop(r, NEAP_TRACE_CORRUPT,
                     "corrupt record '%c' at byte %" PRIu64 " (chunk at byte %" PRIu64 "): %s",
                     tag, at, c->offset, what);
}

/* Decodes the next record of the chunk at the top of the heap: 1, a record
 * for the caller; 2, one the reader keeps ('C', 'E'); 0, a stop. */
static int neap_decode(_neap_trace_reader_t *r, _neap_trace_rec_t *rec) {
    _neap_trace_chunk_t *c = &r->index[r->open[0]];
    uint64_t at = c->offset + NEAP_TRACE_CHUNK_HEADER + c->pos;
    int tag = c->payload[c->pos++];
    uint64_t v[4];
    memset(rec, 0, sizeof *rec);
    rec->tag = tag;
    rec->offset = at;
    const char *truncated = "runs past the end of its chunk";
    switch (tag) {
    case NEAP_TREC_CLOCK:
        if (neap_get_varint(c, &v[0]) != 0) return neap_bad_record(r, c, tag, at, truncated);
        if (v[0] < c->clock) return neap_bad_record(r, c, tag, at, "the clock goes back");
        c->clock = v[0];
        neap_heap_down(r, 0);
        return 2;
    case NEAP_TREC_MODULE:
        for (int i = 0; i < 4; i++)
            if (neap_get_varint(c, &v[i]) != 0) return neap_bad_record(r, c, tag, at, truncated);
        if (v[3] > c->len - c->pos)
            return neap_bad_record(r, c, tag, at, "path runs past the end of its chunk");
        if (v[1] < v[0]) return neap_bad_record(r, c, tag, at, "module ends before it starts");
        rec->module.start = v[0];
        rec->module.end = v[1];
        rec->module.offset = v[2];
        rec->module.path = (const char *)c->payload + c->pos;
        rec->module.path_len = (size_t)v[3];
        c->pos += (size_t)v[3];
        return 1;
    case NEAP_TREC_STACK: {
        if (neap_get_varint(c, &v[0]) != 0 || neap_get_varint(c, &v[1]) != 0)
            return neap_bad_record(r, c, tag, at, truncated);
        if (v[1] > NEAP_TRACE_FRAMES_MAX) {
            char what[96];
            snprintf(what, sizeof what, "%" PRIu64 " frames, more than the %d a stack may have",
                     v[1], NEAP_TRACE_FRAMES_MAX);
            return neap_bad_record(r, c, tag, at, what);
        }
        uint64_t prev = 0;
        for (uint64_t i = 0; i < v[1]; i++) {
            uint64_t z;
            if (neap_get_varint(c, &z) != 0) return neap_bad_record(r, c, tag, at, truncated);
            prev += neap_unzigzag(z);
            r->frames[i] = prev;
        }
        rec->stack.id = v[0];
        rec->stack.nframes = (size_t)v[1];
        rec->stack.frames = r->frames;
        return 1;
    }
    case NEAP_TREC_ALLOC:
        for (int i = 0; i < 3; i++)
            if (neap_get_varint(c, &v[i]) != 0) return neap_bad_record(r, c, tag, at, truncated);
        c->prev_alloc += neap_unzigzag(v[2]);
        rec->alloc.stack = v[0];
        rec->alloc.size = v[1];
        rec->alloc.addr = c->prev_alloc;
        return 1;
    case NEAP_TREC_FREE:
        if (neap_get_varint(c, &v[0]) != 0) return neap_bad_record(r, c, tag, at, truncated);
        c->prev_free += neap_unzigzag(v[0]);
        rec->free.addr = c->prev_free;
        return 1;
    case NEAP_TREC_GROW:
        for (int i = 0; i < 4; i++)
            if (neap_get_varint(c, &v[i]) != 0) return neap_bad_record(r, c, tag, at, truncated);
        c->prev_alloc += neap_unzigzag(v[3]);
        rec->grow.stack = v[0];
        rec->grow.size = v[1];
        rec->grow.offset = v[2];
        rec->grow.addr = c->prev_alloc;
        return 1;
    case NEAP_TREC_MOVE:
        for (int i = 0; i < 2; i++)
            if (neap_get_varint(c, &v[i]) != 0) return neap_bad_record(r, c, tag, at, truncated);
        c->prev_free += neap_unzigzag(v[0]);
        c->prev_alloc += neap_unzigzag(v[1]);
        rec->move.old_addr = c->prev_free;
        rec->move.new_addr = c->prev_alloc;
        return 1;
    case NEAP_TREC_TICK:
        for (int i = 0; i < 3; i++)
            if (neap_get_varint(c, &v[i]) != 0) return neap_bad_record(r, c, tag, at, truncated);
        rec->tick.ms = v[0];
        rec->tick.rss = v[1];
        rec->tick.live = v[2];
        return 1;
    case NEAP_TREC_END:
        for (int i = 0; i < 2; i++)
            if (neap_get_varint(c, &v[i]) != 0) return neap_bad_record(r, c, tag, at, truncated);
        rec->end.how = (uint32_t)v[0];
        rec->end.value = (int64_t)neap_unzigzag(v[1]);
        /* kept for last; nothing after it in its chunk counts */
        r->end_rec = *rec;
        r->has_end = 1;
        r->end_tail = c->len - c->pos;
        r->end_chunk = c->offset;
        c->pos = c->len;
        return 2;
    default:
        return neap_stop(r, NEAP_TRACE_CORRUPT,
                         "unknown record tag 0x%02x at byte %" PRIu64 " (chunk at byte %" PRIu64 ")",
                         (unsigned)tag, at, c->offset);
    }
}

/* Every chunk merged: the 'E' record if there was one (a clean end), or
 * the stop where the index stopped. */
static int neap_finish(_neap_trace_reader_t *r, _neap_trace_rec_t *rec) {
    if (!r->has_end) {
        neap_stop(r, r->end_status, "%s", r->end_message);
        return 0;
    }
    *rec = r->end_rec;
    r->status = NEAP_TRACE_CLEAN;
    r->message[0] = '\0';
    /* E's chunk the last good one: what follows it is noted */
    uint64_t after = 0;
    for (size_t i = 0; i < r->nindex; i++) {
        const _neap_trace_chunk_t *c = &r->index[i];
        if (c->offset == r->end_chunk && c->offset + NEAP_TRACE_CHUNK_HEADER + c->len == r->good_end)
            after = r->end_tail + (r->file_size - r->good_end);
    }
    if (after > 0)
        snprintf(r->message, sizeof r->message,
                 "%" PRIu64 " bytes after the end record (byte %" PRIu64 ") ignored", after,
                 rec->offset);
    return 1;
}

int _neap_trace_next(_neap_trace_reader_t *r, _neap_trace_rec_t *rec) {
    if (r->status != NEAP_TRACE_READING) return 0;
    for (;;) {
        /* a chunk not opened yet whose first record comes before the top's */
        if (r->next_open < r->nindex &&
            (r->nopen == 0 || neap_chunk_cmp(&r->index[r->next_open], &r->index[r->open[0]]) < 0)) {
            if (!neap_open_chunk(r, r->next_open++)) return 0;
            continue;
        }
        if (r->nopen == 0) return neap_finish(r, rec);
        _neap_trace_chunk_t *c = &r->index[r->open[0]];
        if (c->pos >= c->len) {
            neap_heap_pop(r);
            continue;
        }
        int got = neap_decode(r, rec);
        if (got != 2) return got;
    }
}

void _neap_trace_close(_neap_trace_reader_t *r) {
    if (r->f) fclose(r->f);
    r->f = NULL;
    for (size_t i = 0; i < r->nopen; i++) free(r->index[r->open[i]].payload);
    free(r->index);
    free(r->open);
    free(r->cmdline);
    free(r->frames);
    r->index = NULL;
    r->open = NULL;
    r->nindex = r->nopen = 0;
    r->cmdline = NULL;
    r->frames = NULL;
    r->hdr.cmdline = NULL;
}
