/* trace_read.c -- decoding the neap trace format (trace_read.h,
 * src/trace/tracefmt.h, docs/trace-format.md) for `neap report`.
 *
 * Open reads the header, then indexes the chunks: each one's header
 * (magic, length) and first record, its clock when that is 'C'.  The index
 * ends at the end of the file or at the first damaged header, and is sorted
 * by (clock, offset).  Reading merges:
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
 *   open --no file, a directory, no header, a bad one--> -1 (nothing read)
 *   open --header ok--> READING --merged, 'E' seen--> CLEAN
 *                          |--merged, no 'E', the file ends at a chunk
 *                          |  boundary--> EOF
 *                          |--merged, the index stopped inside a chunk--> TRUNCATED
 *                          \--a bad magic (where the index stopped), CRC or
 *                             record--> CORRUPT
 *
 * A stop comes after every record before it in the merged order, with a
 * message naming the byte offset of the problem.  A bad record is one cut
 * short by its chunk's end, or one holding a value no writer can have
 * written, even under a correct CRC (a damaged file re-signed, a writer
 * bug): a clock going back, more than NEAP_TRACE_FRAMES_MAX frames, a
 * module ending before it starts, or a block whose bytes run past the end
 * of the address space (an 'A' or 'G' whose address + offset + size wraps,
 * an address of 2^64-1 in 'F' or 'R'), a mark's label longer than
 * NEAP_TRACE_LABEL_MAX.  A tag newer than the file's version ('K' in a
 * file of version 1 to 3) is an unknown tag.  So the records returned hold
 * blocks whose ends are 64-bit numbers: their users may add without
 * checking.  The CRC-32 is the
 * library's (_neap_trace_crc32, src/trace/tracefmt.c), the one the encoder
 * signs chunks with.
 */
#define _GNU_SOURCE
#include "trace_read.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* --- little-endian and varint primitives of the decoder ------------------- */

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

/* The inverse of _neap_trace_zigzag_delta's encoding. */
static uint64_t neap_unzigzag(uint64_t z) {
    return (z >> 1) ^ (uint64_t)-(int64_t)(z & 1);
}

/* --- the reader --------------------------------------------------------------- */

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
    if (fstat(fileno(r->f), &st) == 0) {
        /* a directory opens, then fails every read: say what it is */
        if (S_ISDIR(st.st_mode)) return neap_stop(r, NEAP_TRACE_NOFILE, "is a directory");
        r->file_size = (uint64_t)st.st_size;
    }
    uint8_t h[NEAP_TRACE_HEADER_FIXED];
    size_t got = neap_read(r, h, sizeof h);
    if (ferror(r->f)) {
        /* no header read: nothing to report (an open failure, not a stop) */
        neap_stop(r, NEAP_TRACE_IOERROR, "read error at byte 0: %s", strerror(errno));
        return -1;
    }
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

/* Whether `size` bytes from addr (0 bytes taken as 1: the block still has
 * an address) end inside the 64-bit address space: their one-past-the-end
 * address, which every consumer of a block computes (page and arena
 * ranges, a grown block's end), must not wrap to 0.  A real block always
 * fits (the top of the address space is the kernel's); a damaged size or
 * offset, or an address delta of -1 from a chunk's base of 0 (2^64-1), does
 * not, and would have the report walk 2^52 pages or loop on a wrapped end. */
static int neap_fits(uint64_t addr, uint64_t size) {
    return (size ? size : 1) <= UINT64_MAX - addr;
}

/* The corrupt-record stop for a block that does not fit (neap_fits): what
 * was found, with its values. */
__attribute__((format(printf, 5, 6))) static int neap_bad_extent(_neap_trace_reader_t *r,
                                                                 const _neap_trace_chunk_t *c,
                                                                 int tag, uint64_t at,
                                                                 const char *fmt, ...) {
    char what[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return neap_bad_record(r, c, tag, at, what);
}

/* Decodes the next record of the chunk at the top of the heap: 1, a record
 * for the caller; 2, one the reader keeps ('C', 'E'); 0, a stop.  Every
 * address, size and offset is checked here, once, so that the records the
 * caller gets describe blocks inside the address space (neap_fits). */
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
        if (!neap_fits(c->prev_alloc, v[1]))
            return neap_bad_extent(r, c, tag, at,
                                   "block of %" PRIu64 " bytes at 0x%" PRIx64
                                   " runs past the end of the address space",
                                   v[1], c->prev_alloc);
        rec->alloc.stack = v[0];
        rec->alloc.size = v[1];
        rec->alloc.addr = c->prev_alloc;
        return 1;
    case NEAP_TREC_FREE:
        if (neap_get_varint(c, &v[0]) != 0) return neap_bad_record(r, c, tag, at, truncated);
        c->prev_free += neap_unzigzag(v[0]);
        if (!neap_fits(c->prev_free, 0))
            return neap_bad_extent(r, c, tag, at,
                                   "address 0x%" PRIx64 " is the last of the address space: "
                                   "no block starts there",
                                   c->prev_free);
        rec->free.addr = c->prev_free;
        return 1;
    case NEAP_TREC_GROW:
        for (int i = 0; i < 4; i++)
            if (neap_get_varint(c, &v[i]) != 0) return neap_bad_record(r, c, tag, at, truncated);
        c->prev_alloc += neap_unzigzag(v[3]);
        /* the part, size bytes at addr + offset, and so the block up to its end */
        if (v[2] > UINT64_MAX - c->prev_alloc || !neap_fits(c->prev_alloc + v[2], v[1]))
            return neap_bad_extent(r, c, tag, at,
                                   "growth of %" PRIu64 " bytes at offset %" PRIu64
                                   " of the block at 0x%" PRIx64
                                   " runs past the end of the address space",
                                   v[1], v[2], c->prev_alloc);
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
        if (!neap_fits(c->prev_free, 0) || !neap_fits(c->prev_alloc, 0))
            return neap_bad_extent(r, c, tag, at,
                                   "%s address 0x%" PRIx64 " is the last of the address space: "
                                   "no block starts there",
                                   neap_fits(c->prev_free, 0) ? "new" : "old",
                                   neap_fits(c->prev_free, 0) ? c->prev_alloc : c->prev_free);
        rec->move.old_addr = c->prev_free;
        rec->move.new_addr = c->prev_alloc;
        return 1;
    case NEAP_TREC_PYFRAME: {
        if (r->hdr.version < 4) break; /* not a tag of older versions */
        if (neap_get_varint(c, &v[0]) != 0 || neap_get_varint(c, &v[1]) != 0)
            return neap_bad_record(r, c, tag, at, truncated);
        if (v[0] == 0) return neap_bad_record(r, c, tag, at, "Python frame id 0");
        if (v[1] > INT32_MAX) return neap_bad_record(r, c, tag, at, "line number out of range");
        const char *name[2];
        uint64_t len[2];
        for (int i = 0; i < 2; i++) {
            if (neap_get_varint(c, &len[i]) != 0) return neap_bad_record(r, c, tag, at, truncated);
            if (len[i] > NEAP_TRACE_PYNAME_MAX)
                return neap_bad_record(r, c, tag, at, "a name longer than a Python frame's may be");
            if (len[i] > c->len - c->pos)
                return neap_bad_record(r, c, tag, at, "name runs past the end of its chunk");
            name[i] = (const char *)c->payload + c->pos;
            c->pos += (size_t)len[i];
        }
        rec->pyframe.id = v[0];
        rec->pyframe.line = (uint32_t)v[1];
        rec->pyframe.file = name[0];
        rec->pyframe.file_len = (size_t)len[0];
        rec->pyframe.func = name[1];
        rec->pyframe.func_len = (size_t)len[1];
        return 1;
    }
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
    case NEAP_TREC_MARK:
        if (r->hdr.version < 4) break; /* not a tag of older versions */
        for (int i = 0; i < 2; i++)
            if (neap_get_varint(c, &v[i]) != 0) return neap_bad_record(r, c, tag, at, truncated);
        if (v[1] > NEAP_TRACE_LABEL_MAX) {
            char what[96];
            snprintf(what, sizeof what, "label of %" PRIu64 " bytes, more than the %d a mark may have",
                     v[1], NEAP_TRACE_LABEL_MAX);
            return neap_bad_record(r, c, tag, at, what);
        }
        if (v[1] > c->len - c->pos)
            return neap_bad_record(r, c, tag, at, "label runs past the end of its chunk");
        rec->mark.ms = v[0];
        rec->mark.label = (const char *)c->payload + c->pos;
        rec->mark.label_len = (size_t)v[1];
        c->pos += (size_t)v[1];
        return 1;
    default:
        break;
    }
    return neap_stop(r, NEAP_TRACE_CORRUPT,
                     "unknown record tag 0x%02x at byte %" PRIu64 " (chunk at byte %" PRIu64 ")",
                     (unsigned)tag, at, c->offset);
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
