/* tracefmt.h -- the neap trace file format: its constants and record tags,
 * and the encoder the tracing layer (src/trace/trace.c) calls to fill its
 * buffers.  The streaming decoder is not part of the library: it serves only
 * the neap command (`neap report`), in cli/trace_read.h.  The full
 * specification is docs/trace-format.md.
 *
 *   file    = header chunk*
 *   header  = "NEAPTRC\0" u32 version u32 flags u64 sample_interval
 *             u64 start_ns u32 pid u32 max_frames u32 cmdline_len cmdline
 *             (little-endian, 44 bytes + cmdline_len)
 *   chunk   = "CHNK" u32 payload_len u32 crc32(payload) payload
 *   payload = record*        a record never spans two chunks
 *   record  = tag varint...  'C' 'M' 'S' 'A' 'F' 'G' 'R' 'T' 'E' 'P' 'K' (see below)
 *
 * Each thread of the traced program fills chunks of its own, so chunks of
 * different threads interleave in the file.  A 'C' record sets the clock of
 * the records after it in its chunk (a chunk without one starts at 0); the
 * reader merges the chunks by (clock, position in the file):
 *
 *   file:   [T1: C5 A A F][T2: C4 A F C6 A][T1: C6 F A]...
 *   merged:  T2 C4 A F | T1 C5 A A F | T2 C6 A | T1 C6 F A ...
 *
 * Invariants the writer keeps and the reader relies on:
 *   - within a chunk, the clock never goes down, and a thread's chunks are
 *     in the file in the order it filled them;
 *   - when one record must replay before another of another thread (a block
 *     freed by one thread and allocated again by another; a stack defined
 *     by one thread and used by another), its clock is smaller: so the
 *     merged order replays addresses exactly.  Records with the same clock
 *     in different threads are concurrent: their order does not matter;
 *   - a free is logged before the block is freed, an allocation after it is
 *     made;
 *   - a stack ('S') is defined once, before (in the merged order) the first
 *     record that uses it; so is a Python frame ('P', version 4) before
 *     the first stack that has it;
 *   - the delta bases (previous 'A' address, previous 'F' address) are 0 at
 *     the start of every chunk, so a chunk decodes on its own except for the
 *     stacks and modules defined before it;
 *   - 'E' ends a finished trace; the reader returns it last whatever its
 *     place in the file.
 * Version 1 files have no 'C' record: their merged order is the file's.
 * Version 4 added 'P', a Python frame, and 'K', a moment the program or
 * `neap mark` named (a mark); files of versions 1 to 3 have neither.
 *
 * The module depends on nothing but libc.  The encoder never allocates and
 * never does I/O: the caller owns the buffer and writes the finished chunk.
 */
#ifndef NEAP_TRACEFMT_H
#define NEAP_TRACEFMT_H

#include <stddef.h>
#include <stdint.h>

#define NEAP_TRACE_MAGIC "NEAPTRC"         /* 8 bytes with its NUL */
#define NEAP_TRACE_MAGIC_LEN 8
#define NEAP_TRACE_VERSION 4
#define NEAP_TRACE_FLAG_SAMPLED 1u         /* flags bit 0: 'A' records are samples */
#define NEAP_TRACE_HEADER_FIXED 44         /* header bytes before the command line */
#define NEAP_TRACE_CMDLINE_MAX (1u << 20)  /* a longer command line is a corrupt header */
#define NEAP_TRACE_CHUNK_MAGIC "CHNK"
#define NEAP_TRACE_CHUNK_HEADER 12         /* magic, payload length, CRC */
#define NEAP_TRACE_CHUNK_MAX (64u << 20)   /* a longer payload is a corrupt chunk */
#define NEAP_TRACE_FRAMES_MAX 1024         /* most frames a stack may have */
#define NEAP_TRACE_VARINT_MAX 10           /* bytes of a 64-bit LEB128 varint */
/* Most bytes one record takes, for sizing buffers: a stack of n frames, a
 * module with a path of n bytes; every other record fits in NEAP_TRACE_REC_SMALL. */
#define NEAP_TRACE_REC_SMALL (1 + 4 * NEAP_TRACE_VARINT_MAX)
#define NEAP_TRACE_REC_STACK(n) (1 + (2 + (size_t)(n)) * NEAP_TRACE_VARINT_MAX)
#define NEAP_TRACE_REC_MODULE(n) (1 + 4 * NEAP_TRACE_VARINT_MAX + (size_t)(n))
#define NEAP_TRACE_PYNAME_MAX 1024         /* a longer name in a 'P' record is corrupt */
/* A stack's frame with this bit set is a Python frame: the rest is the id
 * of its 'P' record (no user-space return address has it). */
#define NEAP_TRACE_PYFRAME_TAG ((uint64_t)1 << 63)
#define NEAP_TRACE_REC_PYFRAME(a, b) (1 + 4 * NEAP_TRACE_VARINT_MAX + (size_t)(a) + (size_t)(b))
/* A mark's label: at most this many bytes (the encoder cuts a longer one,
 * the reader refuses it as corrupt). */
#define NEAP_TRACE_LABEL_MAX 1024
#define NEAP_TRACE_REC_MARK(n) (1 + 2 * NEAP_TRACE_VARINT_MAX + (size_t)(n))

/* Record tags. */
enum {
    NEAP_TREC_CLOCK = 'C',   /* clock: of the chunk's records that follow */
    NEAP_TREC_MODULE = 'M',  /* start end offset path: a mapped ELF file */
    NEAP_TREC_STACK = 'S',   /* id nframes frame-deltas... */
    NEAP_TREC_ALLOC = 'A',   /* stack size addr-delta */
    NEAP_TREC_FREE = 'F',    /* addr-delta */
    NEAP_TREC_GROW = 'G',    /* stack size offset addr-delta: a sampled block's growth */
    NEAP_TREC_MOVE = 'R',    /* old-delta new-delta: a sampled block moved by realloc */
    NEAP_TREC_TICK = 'T',    /* ms rss live */
    NEAP_TREC_END = 'E',     /* how value: the clean end */
    NEAP_TREC_PYFRAME = 'P', /* id line file-len file func-len func: a Python frame (version 4) */
    NEAP_TREC_MARK = 'K'     /* ms label_len label: a moment named (version 4) */
};

/* How the traced process ended, in an 'E' record. */
enum {
    NEAP_TRACE_EXIT_UNKNOWN = 0,  /* value is 0 */
    NEAP_TRACE_EXIT_STATUS = 1,   /* value is the exit status */
    NEAP_TRACE_EXIT_SIGNAL = 2    /* value is the signal number */
};

/* The file header. */
typedef struct _neap_trace_header {
    uint32_t version;          /* NEAP_TRACE_VERSION */
    uint32_t flags;            /* NEAP_TRACE_FLAG_* */
    uint64_t sample_interval;  /* mean bytes between samples; 0 when exact */
    uint64_t start_ns;         /* wall clock at start, ns since 1970 */
    uint32_t pid;              /* the traced process */
    uint32_t max_frames;       /* most frames the writer keeps per stack */
    uint32_t cmdline_len;      /* bytes of cmdline */
    const char *cmdline;       /* the arguments, each ended by a NUL (as in
                                  /proc/PID/cmdline); not NUL-terminated as a whole */
} _neap_trace_header_t;

/* --- CRC-32 (IEEE 802.3, the one of zlib and gzip) ------------------------ */

/* The CRC-32 of n bytes at p, continuing from crc (0 to start). */
uint32_t _neap_trace_crc32(uint32_t crc, const void *p, size_t n);

/* --- encoder --------------------------------------------------------------- */

/* Writes the file header into buf.  Returns the bytes written
 * (NEAP_TRACE_HEADER_FIXED + h->cmdline_len), or 0 if cap is too small.
 * h->version is written as NEAP_TRACE_VERSION whatever it holds. */
size_t _neap_trace_header_encode(uint8_t *buf, size_t cap, const _neap_trace_header_t *h);

/* A chunk being filled: records are appended after room left for the
 * chunk header, which _neap_trace_enc_finish fills in.
 *
 *   buf: [CHNK len crc][record record ...............][ free ]
 *        0             12                             len     cap
 *
 * Not thread-safe: the caller serialises (the writer holds its lock). */
typedef struct _neap_trace_enc {
    uint8_t *buf;         /* the caller's buffer */
    size_t cap;           /* its size, at least NEAP_TRACE_CHUNK_HEADER */
    size_t len;           /* bytes used, the chunk header's 12 included */
    uint64_t prev_alloc;  /* address of the chunk's previous 'A', 0 at first */
    uint64_t prev_free;   /* address of the chunk's previous 'F', 0 at first */
} _neap_trace_enc_t;

/* Starts an empty chunk in buf[0..cap).  cap >= NEAP_TRACE_CHUNK_HEADER. */
void _neap_trace_enc_init(_neap_trace_enc_t *e, uint8_t *buf, size_t cap);

/* The record appenders.  Each returns 0 and appends the record, or returns
 * -1 and changes nothing when the buffer has no room for it (the caller
 * finishes the chunk, writes it out and appends again).  Never allocate. */
int _neap_trace_enc_clock(_neap_trace_enc_t *e, uint64_t clock);
int _neap_trace_enc_module(_neap_trace_enc_t *e, uint64_t start, uint64_t end,
                           uint64_t offset, const char *path, size_t path_len);
/* nframes <= NEAP_TRACE_FRAMES_MAX; the writer truncates deeper stacks. */
int _neap_trace_enc_stack(_neap_trace_enc_t *e, uint64_t id, const uint64_t *frames,
                          size_t nframes);
static inline int _neap_trace_enc_alloc(_neap_trace_enc_t *e, uint64_t stack, uint64_t size,
                                        uint64_t addr);
static inline int _neap_trace_enc_free(_neap_trace_enc_t *e, uint64_t addr);
/* 'G': size bytes added at offset to the block at addr, by stack ('A''s
 * delta base); 'R': the block at old_addr ('F''s base) is now at new_addr
 * ('A''s base).  Sampled traces only (docs/trace-format.md). */
int _neap_trace_enc_grow(_neap_trace_enc_t *e, uint64_t stack, uint64_t size, uint64_t offset,
                         uint64_t addr);
int _neap_trace_enc_move(_neap_trace_enc_t *e, uint64_t old_addr, uint64_t new_addr);
int _neap_trace_enc_tick(_neap_trace_enc_t *e, uint64_t ms, uint64_t rss, uint64_t live);
/* 'P': Python frame id (>= 1; a stack's frame NEAP_PYFRAME_TAG | id names
 * it) is line `line` of function func in file; names of at most
 * NEAP_TRACE_PYNAME_MAX bytes (longer ones are cut there). */
int _neap_trace_enc_pyframe(_neap_trace_enc_t *e, uint64_t id, uint64_t line, const char *file,
                            size_t file_len, const char *func, size_t func_len);
/* how: NEAP_TRACE_EXIT_*; value: the exit status or signal number. */
int _neap_trace_enc_end(_neap_trace_enc_t *e, uint32_t how, int64_t value);

/* 'K': a mark at ms (since the start, as 'T'), named by len bytes of
 * label (cut to NEAP_TRACE_LABEL_MAX). */
int _neap_trace_enc_mark(_neap_trace_enc_t *e, uint64_t ms, const char *label, size_t len);

/* 'A' and 'F', the records of nearly every call, inline: encoded in place
 * when the longest fits; near the end of the buffer, the careful way. */
int _neap_trace_enc_alloc_tight(_neap_trace_enc_t *e, uint64_t stack, uint64_t size, uint64_t addr);
int _neap_trace_enc_free_tight(_neap_trace_enc_t *e, uint64_t addr);

static inline size_t _neap_trace_put_varint(uint8_t *p, uint64_t v) {
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/* The signed difference a - b, zigzag-encoded (small either way). */
static inline uint64_t _neap_trace_zigzag_delta(uint64_t a, uint64_t b) {
    int64_t d = (int64_t)(a - b);
    return ((uint64_t)d << 1) ^ (uint64_t)(d >> 63);
}

static inline int _neap_trace_enc_alloc(_neap_trace_enc_t *e, uint64_t stack, uint64_t size,
                                        uint64_t addr) {
    if (__builtin_expect(e->cap - e->len < NEAP_TRACE_REC_SMALL, 0))
        return _neap_trace_enc_alloc_tight(e, stack, size, addr);
    uint8_t *p = e->buf + e->len;
    size_t n = 1;
    p[0] = NEAP_TREC_ALLOC;
    n += _neap_trace_put_varint(p + n, stack);
    n += _neap_trace_put_varint(p + n, size);
    n += _neap_trace_put_varint(p + n, _neap_trace_zigzag_delta(addr, e->prev_alloc));
    e->len += n;
    e->prev_alloc = addr;
    return 0;
}

static inline int _neap_trace_enc_free(_neap_trace_enc_t *e, uint64_t addr) {
    if (__builtin_expect(e->cap - e->len < NEAP_TRACE_REC_SMALL, 0))
        return _neap_trace_enc_free_tight(e, addr);
    uint8_t *p = e->buf + e->len;
    p[0] = NEAP_TREC_FREE;
    e->len += 1 + _neap_trace_put_varint(p + 1, _neap_trace_zigzag_delta(addr, e->prev_free));
    e->prev_free = addr;
    return 0;
}

/* Bytes of records appended since the chunk started (0: nothing to write). */
size_t _neap_trace_enc_payload(const _neap_trace_enc_t *e);

/* Closes the chunk: fills in its header (magic, payload length, CRC) and
 * returns the bytes to write, buf[0..n); 0 when no record was appended.
 * The encoder is then ready for the next chunk in the same buffer: the
 * caller writes buf[0..n) out before appending again. */
size_t _neap_trace_enc_finish(_neap_trace_enc_t *e);

/* _neap_trace_enc_finish in two steps, for a writer that computes the CRC
 * in another thread: seal fills in the magic and length (CRC 0) and resets
 * the encoder like finish; sign computes the CRC of the sealed chunk of
 * `total` bytes at chunk. */
size_t _neap_trace_enc_seal(_neap_trace_enc_t *e);
void _neap_trace_chunk_sign(uint8_t *chunk, size_t total);

#endif /* NEAP_TRACEFMT_H */
