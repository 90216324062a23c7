/* test_tracefmt.c -- the trace format's encoder and decoder (label: unit).
 *
 * Built from the encoder, src/trace/tracefmt.c, and the neap command's
 * decoder, cli/trace_read.c, alone (the format depends on nothing else).
 *
 *   crc        the CRC-32 check value of "123456789" (0xCBF43926)
 *   roundtrip  every record type, with extreme values (0, 2^64-1; blocks
 *              at the ends of the address space; addresses going down as
 *              well as up), across three chunks, decodes to what was
 *              encoded; the delta bases restart at every chunk
 *   full       an appender that does not fit returns -1 and changes nothing
 *   errors     each damage gives its status and its exact message: missing
 *              file, non-trace, empty, short header, version from the
 *              future, truncated chunk header and payload, CRC mismatch,
 *              unknown tag, a record running past its chunk; the records
 *              before the damage are all returned
 *   eof        a trace without 'E' ends with status EOF after its records
 *   grow       'G' and 'R' (sampled traces): their exact bytes and the delta
 *              bases they share with 'A' and 'F' (A X, G X, R X->Y, F Y, A
 *              below Y ...), extreme values, the bases restarting at the next
 *              chunk; an appender that does not fit returns -1 and changes
 *              nothing (a 'G' of the longest fields fits in
 *              NEAP_TRACE_REC_SMALL); each cut short at its chunk's end is a
 *              corrupt record
 *   extents    blocks past the end of the address space under a valid
 *              CRC: an 'A' whose address + size wraps, an address of 2^64-1
 *              (a delta of -1 from a chunk's base 0) in 'A', 'F' and 'R', a
 *              'G' whose offset + size wraps: each a corrupt record with
 *              its values, the records before it returned
 *   merge      chunks of three threads, out of order in the file, come out
 *              merged by clock: an address freed by one thread and
 *              allocated by another replays in the right order, a stack
 *              defined by one thread comes before another's use, 'E' at
 *              the start of the file comes last; a clock going back is
 *              corrupt
 *   mark       'K' (version 4): time and label read back (empty, the
 *              longest, a longer one cut by the encoder); no room changes
 *              nothing; a label over NEAP_TRACE_LABEL_MAX or past its
 *              chunk is corrupt; a 'K' in a version 3 file is an unknown tag
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "neap_test.h"
#include "trace_read.h"

static char dir[256];

/* dir/name */
static const char *tpath(const char *name) {
    static char buf[2][512];
    static int which;
    which ^= 1;
    snprintf(buf[which], sizeof buf[which], "%s/%s", dir, name);
    return buf[which];
}

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    CHECK(fwrite(data, 1, n, f) == n);
    CHECK(fclose(f) == 0);
}

/* A trace in memory: header then chunks appended by flush(). */
typedef struct {
    uint8_t data[1 << 16];
    size_t len;
    uint8_t chunk[4096];
    _neap_trace_enc_t enc;
    size_t chunk_at[16];  /* file offsets of the chunks */
    int nchunks;
} trace_t;

static void trace_begin(trace_t *t, uint32_t flags, uint64_t interval) {
    static const char cmd[] = "prog\0--flag\0";
    _neap_trace_header_t h = {.version = 1, .flags = flags, .sample_interval = interval,
                              .start_ns = 1700000000123456789ull, .pid = 4242, .max_frames = 64,
                              .cmdline_len = sizeof cmd - 1, .cmdline = cmd};
    t->len = _neap_trace_header_encode(t->data, sizeof t->data, &h);
    CHECK(t->len == NEAP_TRACE_HEADER_FIXED + sizeof cmd - 1);
    CHECK(_neap_trace_header_encode(t->data, 10, &h) == 0);
    t->nchunks = 0;
    _neap_trace_enc_init(&t->enc, t->chunk, sizeof t->chunk);
}

static void trace_flush(trace_t *t) {
    size_t n = _neap_trace_enc_finish(&t->enc);
    if (n == 0) return;
    CHECK(t->len + n <= sizeof t->data);
    t->chunk_at[t->nchunks++] = t->len;
    memcpy(t->data + t->len, t->chunk, n);
    t->len += n;
}

static const uint64_t frames_a[] = {0x7f0000001234, 0x5555000010, 0x7f0000001000, 0, UINT64_MAX};
static const uint64_t big = UINT64_MAX;

/* The reference trace: three chunks (then 'E' in a fourth when `end`). */
static void trace_reference(trace_t *t, int end) {
    trace_begin(t, 0, 0);
    CHECK(_neap_trace_enc_module(&t->enc, 0x555500000000, 0x555500010000, 0x1000, "/bin/prog", 9) == 0);
    CHECK(_neap_trace_enc_stack(&t->enc, 1, frames_a, 5) == 0);
    CHECK(_neap_trace_enc_stack(&t->enc, 2, frames_a, 0) == 0);
    CHECK(_neap_trace_enc_alloc(&t->enc, 1, 16, 0x7f0000100000) == 0);
    CHECK(_neap_trace_enc_alloc(&t->enc, 2, 0, 0x100) == 0);  /* down */
    CHECK(_neap_trace_enc_free(&t->enc, 0x7f0000100000) == 0);
    trace_flush(t);
    /* the extremes a block can have: the stack id, the size from address
     * 0, the address of a 1-byte block ending at the last address (its
     * one-past-the-end, 2^64-1, still a 64-bit number) */
    CHECK(_neap_trace_enc_alloc(&t->enc, big, big, 0) == 0);
    CHECK(_neap_trace_enc_alloc(&t->enc, big, 1, big - 1) == 0);
    CHECK(_neap_trace_enc_free(&t->enc, 0x100) == 0);
    CHECK(_neap_trace_enc_tick(&t->enc, 50, 1 << 20, 4096) == 0);
    trace_flush(t);
    CHECK(_neap_trace_enc_free(&t->enc, big - 1) == 0);
    CHECK(_neap_trace_enc_tick(&t->enc, big, 0, big) == 0);
    trace_flush(t);
    if (end) {
        CHECK(_neap_trace_enc_end(&t->enc, NEAP_TRACE_EXIT_SIGNAL, -9) == 0);
        trace_flush(t);
    }
}

#define NREF 12  /* records of the reference trace, 'E' included */

/* Reads path and checks it holds the first `expect` reference records, then
 * stops with status `status` and message `msg` ("" for none). */
static void check_reference(const char *path, int expect, _neap_trace_status_t status,
                            const char *msg) {
    _neap_trace_reader_t r;
    _neap_trace_rec_t rec;
    CHECKF(_neap_trace_open(&r, path) == 0, "%s", r.message);
    CHECK(r.hdr.version == NEAP_TRACE_VERSION && r.hdr.flags == 0 && r.hdr.pid == 4242 && r.hdr.max_frames == 64);
    CHECK(r.hdr.start_ns == 1700000000123456789ull);
    CHECK(r.hdr.cmdline_len == 12 && memcmp(r.hdr.cmdline, "prog\0--flag\0", 12) == 0);
    int n = 0;
    while (_neap_trace_next(&r, &rec)) {
        n++;
        switch (n) {
        case 1:
            CHECK(rec.tag == 'M' && rec.module.start == 0x555500000000 &&
                  rec.module.end == 0x555500010000 && rec.module.offset == 0x1000);
            CHECK(rec.module.path_len == 9 && memcmp(rec.module.path, "/bin/prog", 9) == 0);
            CHECK(rec.offset == NEAP_TRACE_HEADER_FIXED + 12 + NEAP_TRACE_CHUNK_HEADER);
            break;
        case 2:
            CHECK(rec.tag == 'S' && rec.stack.id == 1 && rec.stack.nframes == 5);
            CHECK(memcmp(rec.stack.frames, frames_a, sizeof frames_a) == 0);
            break;
        case 3: CHECK(rec.tag == 'S' && rec.stack.id == 2 && rec.stack.nframes == 0); break;
        case 4:
            CHECK(rec.tag == 'A' && rec.alloc.stack == 1 && rec.alloc.size == 16 &&
                  rec.alloc.addr == 0x7f0000100000);
            break;
        case 5: CHECK(rec.tag == 'A' && rec.alloc.stack == 2 && rec.alloc.size == 0 && rec.alloc.addr == 0x100); break;
        case 6: CHECK(rec.tag == 'F' && rec.free.addr == 0x7f0000100000); break;
        case 7: CHECK(rec.tag == 'A' && rec.alloc.stack == big && rec.alloc.size == big && rec.alloc.addr == 0); break;
        case 8: CHECK(rec.tag == 'A' && rec.alloc.stack == big && rec.alloc.size == 1 && rec.alloc.addr == big - 1); break;
        case 9: CHECK(rec.tag == 'F' && rec.free.addr == 0x100); break;
        case 10: CHECK(rec.tag == 'T' && rec.tick.ms == 50 && rec.tick.rss == 1 << 20 && rec.tick.live == 4096); break;
        case 11: CHECK(rec.tag == 'F' && rec.free.addr == big - 1); break;
        case 12: CHECK(rec.tag == 'T' && rec.tick.ms == big && rec.tick.rss == 0 && rec.tick.live == big); break;
        case 13: CHECK(rec.tag == 'E' && rec.end.how == NEAP_TRACE_EXIT_SIGNAL && rec.end.value == -9); break;
        default: CHECKF(0, "record %d is one too many", n);
        }
    }
    CHECKF(n == expect, "%d records read, expected %d", n, expect);
    CHECKF(r.status == status, "status %s, expected %s (%s)", _neap_trace_status_name(r.status),
           _neap_trace_status_name(status), r.message);
    CHECKF(strcmp(r.message, msg) == 0, "message \"%s\", expected \"%s\"", r.message, msg);
    CHECK(_neap_trace_next(&r, &rec) == 0 && r.status == status);
    _neap_trace_close(&r);
}

/* Open fails with `status` and exactly `msg`. */
static void check_open_fails(const char *path, _neap_trace_status_t status, const char *msg) {
    _neap_trace_reader_t r;
    CHECK(_neap_trace_open(&r, path) == -1);
    CHECKF(r.status == status, "status %s, expected %s (%s)", _neap_trace_status_name(r.status),
           _neap_trace_status_name(status), r.message);
    CHECKF(strcmp(r.message, msg) == 0, "message \"%s\", expected \"%s\"", r.message, msg);
    _neap_trace_close(&r);
}

static void test_crc(void) {
    CHECK(_neap_trace_crc32(0, "123456789", 9) == 0xCBF43926u);
    CHECK(_neap_trace_crc32(_neap_trace_crc32(0, "1234", 4), "56789", 5) == 0xCBF43926u);
    CHECK(_neap_trace_crc32(0, "", 0) == 0);
}

static void test_roundtrip(void) {
    static trace_t t;
    trace_reference(&t, 1);
    CHECK(t.nchunks == 4);
    write_file(tpath("ref.trace"), t.data, t.len);
    check_reference(tpath("ref.trace"), NREF + 1, NEAP_TRACE_CLEAN, "");
    /* bytes after 'E' are noted, the trace is still clean */
    memcpy(t.data + t.len, "xyz", 3);
    write_file(tpath("trail.trace"), t.data, t.len + 3);
    char msg[128];
    snprintf(msg, sizeof msg, "3 bytes after the end record (byte %zu) ignored",
             t.chunk_at[3] + NEAP_TRACE_CHUNK_HEADER);
    check_reference(tpath("trail.trace"), NREF + 1, NEAP_TRACE_CLEAN, msg);
}

static void test_full(void) {
    uint8_t buf[NEAP_TRACE_CHUNK_HEADER + 6];
    _neap_trace_enc_t e;
    _neap_trace_enc_init(&e, buf, sizeof buf);
    CHECK(_neap_trace_enc_finish(&e) == 0);  /* nothing to write */
    CHECK(_neap_trace_enc_alloc(&e, 1, 100, 0x1000) == 0);  /* 1+1+1+2 = 5 bytes */
    size_t len = e.len;
    CHECK(_neap_trace_enc_alloc(&e, 1, 100, 0x7f0000000000) == -1);
    CHECK(e.len == len && e.prev_alloc == 0x1000);
    CHECK(_neap_trace_enc_stack(&e, 1, frames_a, 5) == -1);
    CHECK(_neap_trace_enc_module(&e, 1, 2, 3, "/x", 2) == -1);
    CHECK(e.len == len);
    CHECK(_neap_trace_enc_free(&e, 0x1000) == -1);  /* 3 bytes; 1 left */
    CHECK(_neap_trace_enc_free(&e, 0) == -1);       /* 2 bytes */
    CHECK(_neap_trace_enc_finish(&e) == len && memcmp(buf, "CHNK", 4) == 0);
    CHECK(e.len == NEAP_TRACE_CHUNK_HEADER && e.prev_alloc == 0);
}

static void test_errors(void) {
    static trace_t t;
    trace_reference(&t, 1);
    char msg[200];

    check_open_fails(tpath("missing.trace"), NEAP_TRACE_NOFILE, "cannot open: No such file or directory");
    write_file(tpath("text.trace"), "hello, world\n", 13);
    check_open_fails(tpath("text.trace"), NEAP_TRACE_NOTTRACE,
                     "not a neap trace: the file does not start with \"NEAPTRC\"");
    write_file(tpath("empty.trace"), "", 0);
    check_open_fails(tpath("empty.trace"), NEAP_TRACE_BADHEADER,
                     "empty file: no trace header (the traced program may not have started)");
    write_file(tpath("short.trace"), t.data, 20);
    check_open_fails(tpath("short.trace"), NEAP_TRACE_BADHEADER,
                     "trace header truncated: 20 of its 44 fixed bytes present");
    write_file(tpath("short2.trace"), t.data, NEAP_TRACE_HEADER_FIXED + 5);
    check_open_fails(tpath("short2.trace"), NEAP_TRACE_BADHEADER,
                     "trace header truncated: command line of 12 bytes, only 5 present");
    static trace_t v;
    v = t;
    v.data[8] = NEAP_TRACE_VERSION + 1;
    write_file(tpath("future.trace"), v.data, v.len);
    snprintf(msg, sizeof msg, "trace format version %d is newer than this neap reads (version %d): use a newer neap",
             NEAP_TRACE_VERSION + 1, NEAP_TRACE_VERSION);
    check_open_fails(tpath("future.trace"), NEAP_TRACE_BADHEADER, msg);

    /* the file cut inside the second chunk's payload: the first chunk's 6 records */
    size_t c1 = t.chunk_at[1], c2 = t.chunk_at[2];
    write_file(tpath("cut.trace"), t.data, c1 + NEAP_TRACE_CHUNK_HEADER + 3);
    snprintf(msg, sizeof msg, "trace truncated at byte %zu: chunk of %zu bytes, only 3 present", c1,
             c2 - c1 - NEAP_TRACE_CHUNK_HEADER);
    check_reference(tpath("cut.trace"), 6, NEAP_TRACE_TRUNCATED, msg);
    /* cut inside the chunk header */
    write_file(tpath("cuthdr.trace"), t.data, c1 + 7);
    snprintf(msg, sizeof msg, "trace truncated at byte %zu: chunk header of 12 bytes, only 7 present", c1);
    check_reference(tpath("cuthdr.trace"), 6, NEAP_TRACE_TRUNCATED, msg);
    /* cut at a chunk boundary, before 'E': EOF, no message */
    write_file(tpath("noend.trace"), t.data, t.chunk_at[3]);
    check_reference(tpath("noend.trace"), NREF, NEAP_TRACE_EOF, "");

    /* a flipped payload byte in chunk 2: CRC mismatch, chunk 1 kept */
    v = t;
    v.data[c1 + NEAP_TRACE_CHUNK_HEADER + 1] ^= 0x40;
    write_file(tpath("crc.trace"), v.data, v.len);
    uint32_t stored = (uint32_t)v.data[c1 + 8] | (uint32_t)v.data[c1 + 9] << 8 |
                      (uint32_t)v.data[c1 + 10] << 16 | (uint32_t)v.data[c1 + 11] << 24;
    uint32_t computed = _neap_trace_crc32(0, v.data + c1 + NEAP_TRACE_CHUNK_HEADER,
                                          c2 - c1 - NEAP_TRACE_CHUNK_HEADER);
    snprintf(msg, sizeof msg, "CRC mismatch in chunk at byte %zu (stored 0x%08x, computed 0x%08x)",
             c1, stored, computed);
    check_reference(tpath("crc.trace"), 6, NEAP_TRACE_CORRUPT, msg);
    /* a bad chunk magic */
    v = t;
    v.data[c1] = 'X';
    write_file(tpath("magic.trace"), v.data, v.len);
    snprintf(msg, sizeof msg, "bad chunk at byte %zu: does not start with \"CHNK\"", c1);
    check_reference(tpath("magic.trace"), 6, NEAP_TRACE_CORRUPT, msg);

    /* an unknown tag with a valid CRC, after two good records */
    static trace_t u;
    trace_begin(&u, 0, 0);
    CHECK(_neap_trace_enc_stack(&u.enc, 1, frames_a, 5) == 0);
    CHECK(_neap_trace_enc_alloc(&u.enc, 1, 16, 0x1000) == 0);
    size_t tag_at = u.len + u.enc.len;
    u.chunk[u.enc.len++] = 'Q';
    CHECK(_neap_trace_enc_free(&u.enc, 0x1000) == 0);
    trace_flush(&u);
    write_file(tpath("tag.trace"), u.data, u.len);
    _neap_trace_reader_t r;
    _neap_trace_rec_t rec;
    CHECK(_neap_trace_open(&r, tpath("tag.trace")) == 0);
    CHECK(_neap_trace_next(&r, &rec) == 1 && rec.tag == 'S');
    CHECK(_neap_trace_next(&r, &rec) == 1 && rec.tag == 'A');
    CHECK(_neap_trace_next(&r, &rec) == 0 && r.status == NEAP_TRACE_CORRUPT);
    snprintf(msg, sizeof msg, "unknown record tag 0x51 at byte %zu (chunk at byte %zu)", tag_at,
             u.chunk_at[0]);
    CHECKF(strcmp(r.message, msg) == 0, "\"%s\"", r.message);
    _neap_trace_close(&r);

    /* a record cut by its chunk's end (valid CRC: a writer bug) */
    trace_begin(&u, 0, 0);
    CHECK(_neap_trace_enc_alloc(&u.enc, 1, 300, 0x1000) == 0);
    u.enc.len -= 1;  /* drop the address's last byte */
    trace_flush(&u);
    write_file(tpath("short-rec.trace"), u.data, u.len);
    CHECK(_neap_trace_open(&r, tpath("short-rec.trace")) == 0);
    CHECK(_neap_trace_next(&r, &rec) == 0 && r.status == NEAP_TRACE_CORRUPT);
    snprintf(msg, sizeof msg, "corrupt record 'A' at byte %zu (chunk at byte %zu): runs past the end of its chunk",
             u.chunk_at[0] + NEAP_TRACE_CHUNK_HEADER, u.chunk_at[0]);
    CHECKF(strcmp(r.message, msg) == 0, "\"%s\"", r.message);
    _neap_trace_close(&r);
}

static void test_sampled_header(void) {
    static trace_t t;
    trace_begin(&t, NEAP_TRACE_FLAG_SAMPLED, 512 * 1024);
    CHECK(_neap_trace_enc_end(&t.enc, NEAP_TRACE_EXIT_STATUS, 3) == 0);
    trace_flush(&t);
    write_file(tpath("sampled.trace"), t.data, t.len);
    _neap_trace_reader_t r;
    _neap_trace_rec_t rec;
    CHECK(_neap_trace_open(&r, tpath("sampled.trace")) == 0);
    CHECK(r.hdr.flags == NEAP_TRACE_FLAG_SAMPLED && r.hdr.sample_interval == 512 * 1024);
    CHECK(_neap_trace_next(&r, &rec) == 1 && rec.tag == 'E' && rec.end.how == 1 && rec.end.value == 3);
    CHECK(_neap_trace_next(&r, &rec) == 0 && r.status == NEAP_TRACE_CLEAN && r.message[0] == 0);
    _neap_trace_close(&r);
    /* sampled with interval 0 is refused */
    t.data[16] = t.data[17] = t.data[18] = 0;
    write_file(tpath("sampled0.trace"), t.data, t.len);
    check_open_fails(tpath("sampled0.trace"), NEAP_TRACE_BADHEADER,
                     "bad trace header: sampled, but the sample interval (byte 16) is 0");
}

static void test_merge(void) {
    static trace_t t;
    const uint64_t X = 0x7f0000001000, Y = 0x7f0000002000, Z = 0x7f0000003000;
    trace_begin(&t, 0, 0);
    CHECK(_neap_trace_enc_end(&t.enc, NEAP_TRACE_EXIT_STATUS, 0) == 0);  /* neap run's, first */
    trace_flush(&t);
    /* thread 2: reuses X after thread 1 freed it, frees Y thread 1 made */
    CHECK(_neap_trace_enc_clock(&t.enc, 2) == 0);
    CHECK(_neap_trace_enc_alloc(&t.enc, 1, 32, X) == 0);
    CHECK(_neap_trace_enc_clock(&t.enc, 5) == 0);
    CHECK(_neap_trace_enc_free(&t.enc, Y) == 0);
    trace_flush(&t);
    /* thread 1 */
    CHECK(_neap_trace_enc_clock(&t.enc, 0) == 0);
    CHECK(_neap_trace_enc_stack(&t.enc, 1, frames_a, 5) == 0);
    CHECK(_neap_trace_enc_alloc(&t.enc, 1, 16, X) == 0);
    CHECK(_neap_trace_enc_free(&t.enc, X) == 0);
    CHECK(_neap_trace_enc_clock(&t.enc, 2) == 0);
    CHECK(_neap_trace_enc_alloc(&t.enc, 1, 8, Y) == 0);
    CHECK(_neap_trace_enc_clock(&t.enc, 4) == 0);
    CHECK(_neap_trace_enc_tick(&t.enc, 100, 1, 2) == 0);
    trace_flush(&t);
    /* thread 1's next chunk */
    CHECK(_neap_trace_enc_clock(&t.enc, 4) == 0);
    CHECK(_neap_trace_enc_free(&t.enc, Z) == 0);
    trace_flush(&t);
    write_file(tpath("merge.trace"), t.data, t.len);

    static const struct { int tag; uint64_t addr, size; } want[] = {
        {'S', 0, 0},  {'A', X, 16}, {'F', X, 0}, {'A', X, 32}, {'A', Y, 8},
        {'T', 0, 0},  {'F', Z, 0},  {'F', Y, 0}, {'E', 0, 0},
    };
    _neap_trace_reader_t r;
    _neap_trace_rec_t rec;
    CHECK(_neap_trace_open(&r, tpath("merge.trace")) == 0);
    size_t n = 0;
    while (_neap_trace_next(&r, &rec)) {
        CHECKF(n < sizeof want / sizeof *want, "record %zu is one too many", n);
        CHECKF(rec.tag == want[n].tag, "record %zu: '%c', expected '%c'", n, rec.tag, want[n].tag);
        if (rec.tag == 'A') CHECK(rec.alloc.addr == want[n].addr && rec.alloc.size == want[n].size);
        if (rec.tag == 'F') CHECK(rec.free.addr == want[n].addr);
        n++;
    }
    CHECKF(n == sizeof want / sizeof *want, "%zu records", n);
    CHECKF(r.status == NEAP_TRACE_CLEAN && r.message[0] == 0, "%s", r.message);
    CHECK(r.chunks == 4 && r.consumed == t.len);
    _neap_trace_close(&r);

    /* a clock that goes back inside a chunk */
    trace_begin(&t, 0, 0);
    CHECK(_neap_trace_enc_clock(&t.enc, 5) == 0);
    CHECK(_neap_trace_enc_free(&t.enc, X) == 0);
    size_t back_at = t.len + t.enc.len;
    CHECK(_neap_trace_enc_clock(&t.enc, 3) == 0);
    CHECK(_neap_trace_enc_free(&t.enc, Y) == 0);
    trace_flush(&t);
    write_file(tpath("back.trace"), t.data, t.len);
    CHECK(_neap_trace_open(&r, tpath("back.trace")) == 0);
    CHECK(_neap_trace_next(&r, &rec) == 1 && rec.tag == 'F' && rec.free.addr == X);
    CHECK(_neap_trace_next(&r, &rec) == 0 && r.status == NEAP_TRACE_CORRUPT);
    char msg[200];
    snprintf(msg, sizeof msg, "corrupt record 'C' at byte %zu (chunk at byte %zu): the clock goes back",
             back_at, t.chunk_at[0]);
    CHECKF(strcmp(r.message, msg) == 0, "\"%s\"", r.message);
    _neap_trace_close(&r);
}

/* The zigzag encoding of the difference d (a - b, written out by hand). */
#define ZZ(d) ((uint64_t)(d) << 1 ^ (uint64_t)((int64_t)(d) >> 63))

/* A record of the grow trace: tag (0: the chunk ends here), its fields as
 * the decoder returns them ('A' stack size addr, 'G' stack size offset
 * addr, 'R' old new, 'F' addr), and the varints expected in the file. */
typedef struct {
    int tag;
    uint64_t f[4];
    uint64_t z[4];
    int nz;
} grow_rec_t;

static void test_grow(void) {
    static trace_t t;
    const uint64_t X = 0x7f0000100000, Y = 0x7f0000200000, Z = Y - 0x40, W = X + 0x1000;
    const uint64_t top = (uint64_t)1 << 63;
    /* the bases after each record: A (previous 'A' address), F (previous 'F') */
    const grow_rec_t recs[] = {
        {'A', {1, 8192, X}, {1, 8192, ZZ(X)}, 3},          /* A X */
        {'G', {2, 4096, 8192, X}, {2, 4096, 8192, 0}, 4},  /* A X */
        {'R', {X, Y}, {ZZ(X), ZZ(Y - X)}, 2},              /* F X, A Y */
        {'F', {Y}, {ZZ(Y - X)}, 1},                        /* F Y */
        {'A', {1, 16, Z}, {1, 16, ZZ(-0x40)}, 3},          /* A Z, below Y */
        {'G', {2, 100, 16, Z}, {2, 100, 16, 0}, 4},
        {'G', {1, 50, 0, W}, {1, 50, 0, ZZ(W - Z)}, 4},    /* a part without an 'A'; A W */
        {'R', {Z, X}, {ZZ(Z - Y), ZZ(X - W)}, 2},          /* both down; F Z, A X */
        {'F', {X}, {ZZ(X - Z)}, 1},
        {0, {0}, {0}, 0},                                  /* next chunk: bases 0 */
        /* each field at the most a block inside the address space allows */
        {'G', {big, big, 0, 0}, {big, big, 0, 0}, 4},
        {'G', {big, 0, big - 1, 0}, {big, 0, big - 1, 0}, 4},
        {'G', {big, 1, 0, big - 1}, {big, 1, 0, ZZ(big - 1)}, 4},
        {'R', {big - 1, 0}, {ZZ(big - 1), ZZ(0 - (big - 1))}, 2},
        {'R', {0, big - 1}, {ZZ(0 - (big - 1)), ZZ(big - 1)}, 2},
        {'G', {0, 0, 0, top}, {0, 0, 0, ZZ(top - (big - 1))}, 4},
        {'F', {big - 1}, {ZZ(big - 1)}, 1},
        {'A', {1, 1, 0}, {1, 1, ZZ(0 - top)}, 3},
    };
    enum { NGROW = sizeof recs / sizeof *recs };
    size_t at[NGROW];
    trace_begin(&t, NEAP_TRACE_FLAG_SAMPLED, 4096);
    CHECK(_neap_trace_enc_stack(&t.enc, 1, frames_a, 5) == 0);
    CHECK(_neap_trace_enc_stack(&t.enc, 2, frames_a, 2) == 0);
    for (size_t i = 0; i < NGROW; i++) {
        const grow_rec_t *g = &recs[i];
        at[i] = t.len + t.enc.len;
        switch (g->tag) {
        case 0: trace_flush(&t); break;
        case 'A': CHECK(_neap_trace_enc_alloc(&t.enc, g->f[0], g->f[1], g->f[2]) == 0); break;
        case 'F': CHECK(_neap_trace_enc_free(&t.enc, g->f[0]) == 0); break;
        case 'G': CHECK(_neap_trace_enc_grow(&t.enc, g->f[0], g->f[1], g->f[2], g->f[3]) == 0); break;
        case 'R': CHECK(_neap_trace_enc_move(&t.enc, g->f[0], g->f[1]) == 0); break;
        }
    }
    CHECK(_neap_trace_enc_end(&t.enc, NEAP_TRACE_EXIT_STATUS, 0) == 0);
    trace_flush(&t);
    CHECK(t.nchunks == 2);
    /* the bytes: each record's tag and varints, back to back */
    for (size_t i = 0; i < NGROW; i++) {
        const grow_rec_t *g = &recs[i];
        if (g->tag == 0) continue;
        uint8_t want[NEAP_TRACE_REC_SMALL];
        size_t n = 0;
        want[n++] = (uint8_t)g->tag;
        for (int k = 0; k < g->nz; k++) n += _neap_trace_put_varint(want + n, g->z[k]);
        CHECKF(memcmp(t.data + at[i], want, n) == 0, "record %zu ('%c'): bytes differ", i, g->tag);
        if (i + 1 < NGROW && recs[i + 1].tag != 0)
            CHECKF(at[i + 1] == at[i] + n, "record %zu ('%c'): %zu bytes, expected %zu", i, g->tag,
                   at[i + 1] - at[i], n);
    }
    write_file(tpath("grow.trace"), t.data, t.len);

    _neap_trace_reader_t r;
    _neap_trace_rec_t rec;
    CHECK(_neap_trace_open(&r, tpath("grow.trace")) == 0);
    CHECK(r.hdr.flags == NEAP_TRACE_FLAG_SAMPLED && r.hdr.sample_interval == 4096);
    CHECK(_neap_trace_next(&r, &rec) == 1 && rec.tag == 'S' && rec.stack.id == 1);
    CHECK(_neap_trace_next(&r, &rec) == 1 && rec.tag == 'S' && rec.stack.id == 2);
    for (size_t i = 0; i < NGROW; i++) {
        const grow_rec_t *g = &recs[i];
        if (g->tag == 0) continue;
        CHECKF(_neap_trace_next(&r, &rec) == 1, "record %zu: %s", i, r.message);
        CHECKF(rec.tag == g->tag && rec.offset == at[i], "record %zu: '%c' at %llu, expected '%c' at %zu",
               i, rec.tag, (unsigned long long)rec.offset, g->tag, at[i]);
        switch (g->tag) {
        case 'A':
            CHECKF(rec.alloc.stack == g->f[0] && rec.alloc.size == g->f[1] && rec.alloc.addr == g->f[2],
                   "record %zu: A %#llx", i, (unsigned long long)rec.alloc.addr);
            break;
        case 'F':
            CHECKF(rec.free.addr == g->f[0], "record %zu: F %#llx", i, (unsigned long long)rec.free.addr);
            break;
        case 'G':
            CHECKF(rec.grow.stack == g->f[0] && rec.grow.size == g->f[1] && rec.grow.offset == g->f[2] &&
                   rec.grow.addr == g->f[3], "record %zu: G %#llx", i, (unsigned long long)rec.grow.addr);
            break;
        case 'R':
            CHECKF(rec.move.old_addr == g->f[0] && rec.move.new_addr == g->f[1], "record %zu: R %#llx -> %#llx",
                   i, (unsigned long long)rec.move.old_addr, (unsigned long long)rec.move.new_addr);
            break;
        }
    }
    CHECK(_neap_trace_next(&r, &rec) == 1 && rec.tag == 'E');
    CHECKF(_neap_trace_next(&r, &rec) == 0 && r.status == NEAP_TRACE_CLEAN && r.message[0] == 0, "%s",
           r.message);
    _neap_trace_close(&r);

    /* no room: -1, and neither the buffer nor the bases change */
    uint8_t buf[NEAP_TRACE_CHUNK_HEADER + 8];
    _neap_trace_enc_t e;
    memset(buf, 0xaa, sizeof buf);
    _neap_trace_enc_init(&e, buf, sizeof buf);
    CHECK(_neap_trace_enc_alloc(&e, 1, 100, 0x1000) == 0);  /* 5 bytes; 3 left */
    size_t len = e.len;
    CHECK(_neap_trace_enc_grow(&e, 2, 100, 8, 0x1000) == -1);  /* 5 bytes */
    CHECK(_neap_trace_enc_move(&e, 0x1000, 0x2000) == -1);     /* 1 + 2 + 2 */
    CHECK(e.len == len && e.prev_alloc == 0x1000 && e.prev_free == 0);
    for (size_t i = len; i < sizeof buf; i++) CHECKF(buf[i] == 0xaa, "byte %zu written", i);
    CHECK(_neap_trace_enc_move(&e, 1, 0x1000) == 0);  /* 'R' 2 0: the 3 bytes left */
    CHECK(e.len == sizeof buf && e.prev_free == 1 && e.prev_alloc == 0x1000);
    CHECK(_neap_trace_enc_grow(&e, 0, 0, 0, 0x1000) == -1 && _neap_trace_enc_move(&e, 1, 0x1000) == -1);
    CHECK(e.len == sizeof buf && e.prev_free == 1 && e.prev_alloc == 0x1000);
    /* the longest 'G' (the address delta 2^63 from 0) is NEAP_TRACE_REC_SMALL bytes */
    uint8_t gbuf[NEAP_TRACE_CHUNK_HEADER + NEAP_TRACE_REC_SMALL];
    _neap_trace_enc_init(&e, gbuf, sizeof gbuf - 1);
    CHECK(_neap_trace_enc_grow(&e, big, big, big, top) == -1);
    CHECK(e.len == NEAP_TRACE_CHUNK_HEADER && e.prev_alloc == 0);
    _neap_trace_enc_init(&e, gbuf, sizeof gbuf);
    CHECK(_neap_trace_enc_grow(&e, big, big, big, top) == 0);
    CHECK(e.len == sizeof gbuf && e.prev_alloc == top);

    /* a 'G' or 'R' cut by its chunk's end (valid CRC): corrupt, the 'A' before it returned */
    static const char tags[] = {'G', 'R'};
    for (int k = 0; k < 2; k++) {
        trace_begin(&t, NEAP_TRACE_FLAG_SAMPLED, 4096);
        CHECK(_neap_trace_enc_alloc(&t.enc, 1, 8192, X) == 0);
        size_t rec_at = t.len + t.enc.len;
        if (tags[k] == 'G') {
            CHECK(_neap_trace_enc_grow(&t.enc, 2, 4096, 8192, X) == 0);
            t.enc.len -= 1;  /* drop the address delta (one byte) */
        } else {
            CHECK(_neap_trace_enc_move(&t.enc, X, Y) == 0);
            t.enc.len = rec_at - t.len + 2;  /* the tag and one byte of the old address's */
        }
        trace_flush(&t);
        write_file(tpath("grow-cut.trace"), t.data, t.len);
        CHECK(_neap_trace_open(&r, tpath("grow-cut.trace")) == 0);
        CHECK(_neap_trace_next(&r, &rec) == 1 && rec.tag == 'A' && rec.alloc.addr == X);
        CHECK(_neap_trace_next(&r, &rec) == 0 && r.status == NEAP_TRACE_CORRUPT);
        char msg[200];
        snprintf(msg, sizeof msg,
                 "corrupt record '%c' at byte %zu (chunk at byte %zu): runs past the end of its chunk",
                 tags[k], rec_at, t.chunk_at[0]);
        CHECKF(strcmp(r.message, msg) == 0, "\"%s\", expected \"%s\"", r.message, msg);
        _neap_trace_close(&r);
    }
}

/* A block past the end of the address space, with a valid CRC (what a
 * fuzzer makes of a trace by changing a byte and signing the chunk again):
 * each is a corrupt record naming its values, after the good 'A' before it. */
static void test_extents(void) {
    static trace_t t;
    const uint64_t X = 0x7f0000100000, q = (uint64_t)1 << 62;
    static const struct {
        int tag;
        uint64_t f[4];
        const char *what;  /* after "corrupt record 'T' at byte N (chunk at byte C): " */
    } bad[] = {
        {'A', {1, 0x2000, UINT64_MAX - 0xfff},
         "block of 8192 bytes at 0xfffffffffffff000 runs past the end of the address space"},
        /* a delta of -1 from the chunk's base 0 */
        {'A', {1, 0, UINT64_MAX},
         "block of 0 bytes at 0xffffffffffffffff runs past the end of the address space"},
        {'A', {1, UINT64_MAX, 1},
         "block of 18446744073709551615 bytes at 0x1 runs past the end of the address space"},
        {'F', {UINT64_MAX},
         "address 0xffffffffffffffff is the last of the address space: no block starts there"},
        /* offset + size wraps to 1: the block's end, its offset plus its size, looks small */
        {'G', {1, q + 1, 3 * q, X},
         "growth of 4611686018427387905 bytes at offset 13835058055282163712 of the block at "
         "0x7f0000100000 runs past the end of the address space"},
        {'G', {1, 1, UINT64_MAX, X},
         "growth of 1 bytes at offset 18446744073709551615 of the block at 0x7f0000100000 runs "
         "past the end of the address space"},
        {'R', {UINT64_MAX, X},
         "old address 0xffffffffffffffff is the last of the address space: no block starts there"},
        {'R', {X, UINT64_MAX},
         "new address 0xffffffffffffffff is the last of the address space: no block starts there"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        trace_begin(&t, NEAP_TRACE_FLAG_SAMPLED, 4096);
        CHECK(_neap_trace_enc_alloc(&t.enc, 1, 100, X) == 0);
        size_t rec_at = t.len + t.enc.len;
        const uint64_t *f = bad[k].f;
        switch (bad[k].tag) {
        case 'A': CHECK(_neap_trace_enc_alloc(&t.enc, f[0], f[1], f[2]) == 0); break;
        case 'F': CHECK(_neap_trace_enc_free(&t.enc, f[0]) == 0); break;
        case 'G': CHECK(_neap_trace_enc_grow(&t.enc, f[0], f[1], f[2], f[3]) == 0); break;
        case 'R': CHECK(_neap_trace_enc_move(&t.enc, f[0], f[1]) == 0); break;
        }
        CHECK(_neap_trace_enc_end(&t.enc, NEAP_TRACE_EXIT_STATUS, 0) == 0);
        trace_flush(&t);
        write_file(tpath("extent.trace"), t.data, t.len);
        _neap_trace_reader_t r;
        _neap_trace_rec_t rec;
        CHECK(_neap_trace_open(&r, tpath("extent.trace")) == 0);
        CHECK(_neap_trace_next(&r, &rec) == 1 && rec.tag == 'A' && rec.alloc.addr == X);
        CHECKF(_neap_trace_next(&r, &rec) == 0 && r.status == NEAP_TRACE_CORRUPT, "case %zu: %s", k,
               r.message);
        char msg[300];
        snprintf(msg, sizeof msg, "corrupt record '%c' at byte %zu (chunk at byte %zu): %s", bad[k].tag,
                 rec_at, t.chunk_at[0], bad[k].what);
        CHECKF(strcmp(r.message, msg) == 0, "case %zu: \"%s\", expected \"%s\"", k, r.message, msg);
        CHECK(_neap_trace_next(&r, &rec) == 0 && r.status == NEAP_TRACE_CORRUPT);
        _neap_trace_close(&r);
    }
}

/* 'P', a Python frame: the round trip (names up to the limit, line 0 and
 * the largest, a stack naming the frame), then each way a record can be
 * damaged, stopped as corrupt with the reason. */
static void test_pyframe(void) {
    static trace_t t;
    static char longname[NEAP_TRACE_PYNAME_MAX + 100];
    memset(longname, 'n', sizeof longname);
    const uint64_t pyword = NEAP_TRACE_PYFRAME_TAG | 7;
    const uint64_t stack[] = {pyword, 0x7f0000001234};
    trace_begin(&t, 0, 0);
    CHECK(_neap_trace_enc_pyframe(&t.enc, 7, 42, "app.py", 6, "Holder.fill", 11) == 0);
    CHECK(_neap_trace_enc_pyframe(&t.enc, 8, 0, "<string>", 8, "<module>", 8) == 0);
    /* names cut at the limit */
    CHECK(_neap_trace_enc_pyframe(&t.enc, 9, INT32_MAX, longname, sizeof longname, longname,
                                  NEAP_TRACE_PYNAME_MAX) == 0);
    CHECK(_neap_trace_enc_stack(&t.enc, 1, stack, 2) == 0);
    trace_flush(&t);
    const char *path = tpath("pyframe.trace");
    write_file(path, t.data, t.len);
    _neap_trace_reader_t r;
    _neap_trace_rec_t rec;
    CHECK(_neap_trace_open(&r, path) == 0);
    CHECK(_neap_trace_next(&r, &rec) == 1 && rec.tag == NEAP_TREC_PYFRAME);
    CHECK(rec.pyframe.id == 7 && rec.pyframe.line == 42 && rec.pyframe.file_len == 6 &&
          memcmp(rec.pyframe.file, "app.py", 6) == 0 && rec.pyframe.func_len == 11 &&
          memcmp(rec.pyframe.func, "Holder.fill", 11) == 0);
    CHECK(_neap_trace_next(&r, &rec) == 1 && rec.tag == NEAP_TREC_PYFRAME);
    CHECK(rec.pyframe.id == 8 && rec.pyframe.line == 0 && rec.pyframe.file_len == 8);
    CHECK(_neap_trace_next(&r, &rec) == 1 && rec.tag == NEAP_TREC_PYFRAME);
    CHECK(rec.pyframe.line == INT32_MAX && rec.pyframe.file_len == NEAP_TRACE_PYNAME_MAX &&
          rec.pyframe.func_len == NEAP_TRACE_PYNAME_MAX);
    CHECK(_neap_trace_next(&r, &rec) == 1 && rec.tag == NEAP_TREC_STACK);
    CHECK(rec.stack.nframes == 2 && rec.stack.frames[0] == pyword);
    CHECK(_neap_trace_next(&r, &rec) == 0 && r.status == NEAP_TRACE_EOF);
    _neap_trace_close(&r);

    /* damaged records, written by hand: tag, id, line, file, func */
    static const struct {
        uint8_t bytes[16];
        size_t n;
        const char *why;
    } bad[] = {
        {{'P', 0, 1, 1, 'a', 1, 'f'}, 7, "Python frame id 0"},
        {{'P', 1, 0x80, 0x80, 0x80, 0x80, 0x08, 1, 'a', 1, 'f'}, 11, "line number out of range"},
        {{'P', 1, 1, 0x81, 0x08, 'a'}, 6, "a name longer than a Python frame's may be"},
        {{'P', 1, 1, 5, 'a', 'b'}, 6, "name runs past the end of its chunk"},
        {{'P', 1, 1, 1, 'a'}, 5, "runs past the end of its chunk"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        trace_begin(&t, 0, 0);
        memcpy(t.enc.buf + t.enc.len, bad[k].bytes, bad[k].n);
        t.enc.len += bad[k].n;
        trace_flush(&t);
        write_file(path, t.data, t.len);
        CHECK(_neap_trace_open(&r, path) == 0);
        CHECKF(_neap_trace_next(&r, &rec) == 0 && r.status == NEAP_TRACE_CORRUPT,
               "damaged 'P' %zu: status %d", k, (int)r.status);
        CHECKF(strstr(r.message, bad[k].why) != NULL, "damaged 'P' %zu: \"%s\", expected \"%s\"", k,
               r.message, bad[k].why);
        _neap_trace_close(&r);
    }
}

/* 'K', a mark: its time and label read back (an empty label, a label of
 * the longest length, and a longer one cut by the encoder); a label longer
 * than NEAP_TRACE_LABEL_MAX, or one running past its chunk, is a corrupt
 * record; a 'K' in a file of version 3 (which had no marks) an unknown tag. */
static void test_mark(void) {
    static trace_t t;
    static char longest[NEAP_TRACE_LABEL_MAX + 10];
    memset(longest, 'x', sizeof longest);
    trace_begin(&t, 0, 0);
    CHECK(_neap_trace_enc_alloc(&t.enc, 1, 100, 0x1000) == 0);
    CHECK(_neap_trace_enc_mark(&t.enc, 120, "phase1", 6) == 0);
    CHECK(_neap_trace_enc_mark(&t.enc, 0, "", 0) == 0);
    CHECK(_neap_trace_enc_mark(&t.enc, big, longest, sizeof longest) == 0); /* cut */
    CHECK(_neap_trace_enc_free(&t.enc, 0x1000) == 0);
    trace_flush(&t);
    write_file(tpath("mark.trace"), t.data, t.len);
    _neap_trace_reader_t r;
    _neap_trace_rec_t rec;
    CHECK(_neap_trace_open(&r, tpath("mark.trace")) == 0);
    CHECK(r.hdr.version == 4);
    CHECK(_neap_trace_next(&r, &rec) == 1 && rec.tag == 'A');
    CHECK(_neap_trace_next(&r, &rec) == 1 && rec.tag == 'K' && rec.mark.ms == 120 &&
          rec.mark.label_len == 6 && memcmp(rec.mark.label, "phase1", 6) == 0);
    CHECK(_neap_trace_next(&r, &rec) == 1 && rec.tag == 'K' && rec.mark.ms == 0 && rec.mark.label_len == 0);
    CHECK(_neap_trace_next(&r, &rec) == 1 && rec.tag == 'K' && rec.mark.ms == big &&
          rec.mark.label_len == NEAP_TRACE_LABEL_MAX && memcmp(rec.mark.label, longest, NEAP_TRACE_LABEL_MAX) == 0);
    CHECK(_neap_trace_next(&r, &rec) == 1 && rec.tag == 'F' && rec.free.addr == 0x1000);
    CHECK(_neap_trace_next(&r, &rec) == 0 && r.status == NEAP_TRACE_EOF);
    _neap_trace_close(&r);

    /* no room: nothing appended */
    uint8_t small[NEAP_TRACE_CHUNK_HEADER + 8];
    _neap_trace_enc_t e;
    _neap_trace_enc_init(&e, small, sizeof small);
    CHECK(_neap_trace_enc_mark(&e, 1, "a label too long", 16) == -1 && e.len == NEAP_TRACE_CHUNK_HEADER);
    CHECK(_neap_trace_enc_mark(&e, 1, "ok", 2) == 0 && e.len == NEAP_TRACE_CHUNK_HEADER + 5);

    /* written by hand: label_len 1025, then 1025 bytes */
    char msg[300];
    trace_begin(&t, 0, 0);
    size_t at = t.len + t.enc.len;
    uint8_t *p = t.chunk + t.enc.len;
    size_t n = 0;
    p[n++] = 'K';
    n += _neap_trace_put_varint(p + n, 5);
    n += _neap_trace_put_varint(p + n, NEAP_TRACE_LABEL_MAX + 1);
    memset(p + n, 'y', NEAP_TRACE_LABEL_MAX + 1);
    n += NEAP_TRACE_LABEL_MAX + 1;
    t.enc.len += n;
    trace_flush(&t);
    write_file(tpath("longmark.trace"), t.data, t.len);
    CHECK(_neap_trace_open(&r, tpath("longmark.trace")) == 0);
    CHECK(_neap_trace_next(&r, &rec) == 0 && r.status == NEAP_TRACE_CORRUPT);
    snprintf(msg, sizeof msg, "corrupt record 'K' at byte %zu (chunk at byte %zu): label of %d bytes, "
             "more than the %d a mark may have", at, t.chunk_at[0], NEAP_TRACE_LABEL_MAX + 1,
             NEAP_TRACE_LABEL_MAX);
    CHECKF(strcmp(r.message, msg) == 0, "\"%s\", expected \"%s\"", r.message, msg);
    _neap_trace_close(&r);

    /* a label cut by its chunk's end */
    trace_begin(&t, 0, 0);
    at = t.len + t.enc.len;
    CHECK(_neap_trace_enc_mark(&t.enc, 5, "phase2", 6) == 0);
    t.enc.len -= 2;
    trace_flush(&t);
    write_file(tpath("cutmark.trace"), t.data, t.len);
    CHECK(_neap_trace_open(&r, tpath("cutmark.trace")) == 0);
    CHECK(_neap_trace_next(&r, &rec) == 0 && r.status == NEAP_TRACE_CORRUPT);
    snprintf(msg, sizeof msg, "corrupt record 'K' at byte %zu (chunk at byte %zu): label runs past the "
             "end of its chunk", at, t.chunk_at[0]);
    CHECKF(strcmp(r.message, msg) == 0, "\"%s\", expected \"%s\"", r.message, msg);
    _neap_trace_close(&r);

    /* version 3 had no 'K': an unknown tag there; its other records read */
    trace_begin(&t, 0, 0);
    CHECK(_neap_trace_enc_alloc(&t.enc, 1, 100, 0x1000) == 0);
    at = t.len + t.enc.len;
    CHECK(_neap_trace_enc_mark(&t.enc, 5, "phase2", 6) == 0);
    trace_flush(&t);
    t.data[8] = 3;
    write_file(tpath("v3mark.trace"), t.data, t.len);
    CHECK(_neap_trace_open(&r, tpath("v3mark.trace")) == 0);
    CHECK(r.hdr.version == 3);
    CHECK(_neap_trace_next(&r, &rec) == 1 && rec.tag == 'A');
    CHECK(_neap_trace_next(&r, &rec) == 0 && r.status == NEAP_TRACE_CORRUPT);
    snprintf(msg, sizeof msg, "unknown record tag 0x4b at byte %zu (chunk at byte %zu)", at, t.chunk_at[0]);
    CHECKF(strcmp(r.message, msg) == 0, "\"%s\", expected \"%s\"", r.message, msg);
    _neap_trace_close(&r);
}

int main(void) {
    snprintf(dir, sizeof dir, "%s/neap-tracefmt.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    CHECK(mkdtemp(dir) != NULL);
    test_crc();
    test_roundtrip();
    test_full();
    test_errors();
    test_sampled_header();
    test_merge();
    test_grow();
    test_extents();
    test_pyframe();
    test_mark();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    printf("test_tracefmt: ok\n");
    return test_status();
}
