/* test_tracefmt.c -- the trace format's encoder and decoder (label: unit).
 *
 * Built from src/tracefmt.c alone (the format depends on nothing else).
 *
 *   crc        the CRC-32 check value of "123456789" (0xCBF43926)
 *   roundtrip  every record type, with extreme values (0, 2^64-1, addresses
 *              going down as well as up), across three chunks, decodes to
 *              what was encoded; the delta bases restart at every chunk
 *   full       an appender that does not fit returns -1 and changes nothing
 *   errors     each damage gives its status and its exact message: missing
 *              file, non-trace, empty, short header, version from the
 *              future, truncated chunk header and payload, CRC mismatch,
 *              unknown tag, a record running past its chunk; the records
 *              before the damage are all returned
 *   eof        a trace without 'E' ends with status EOF after its records
 *   merge      chunks of three threads, out of order in the file, come out
 *              merged by clock: an address freed by one thread and
 *              allocated by another replays in the right order, a stack
 *              defined by one thread comes before another's use, 'E' at
 *              the start of the file comes last; a clock going back is
 *              corrupt
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "neap_test.h"
#include "tracefmt.h"

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
    CHECK(_neap_trace_enc_alloc(&t->enc, big, big, big) == 0);
    CHECK(_neap_trace_enc_free(&t->enc, 0x100) == 0);
    CHECK(_neap_trace_enc_tick(&t->enc, 50, 1 << 20, 4096) == 0);
    trace_flush(t);
    CHECK(_neap_trace_enc_free(&t->enc, big) == 0);
    CHECK(_neap_trace_enc_tick(&t->enc, big, 0, big) == 0);
    trace_flush(t);
    if (end) {
        CHECK(_neap_trace_enc_end(&t->enc, NEAP_TRACE_EXIT_SIGNAL, -9) == 0);
        trace_flush(t);
    }
}

#define NREF 11  /* records of the reference trace, 'E' included */

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
        case 7: CHECK(rec.tag == 'A' && rec.alloc.stack == big && rec.alloc.size == big && rec.alloc.addr == big); break;
        case 8: CHECK(rec.tag == 'F' && rec.free.addr == 0x100); break;
        case 9: CHECK(rec.tag == 'T' && rec.tick.ms == 50 && rec.tick.rss == 1 << 20 && rec.tick.live == 4096); break;
        case 10: CHECK(rec.tag == 'F' && rec.free.addr == big); break;
        case 11: CHECK(rec.tag == 'T' && rec.tick.ms == big && rec.tick.rss == 0 && rec.tick.live == big); break;
        case 12: CHECK(rec.tag == 'E' && rec.end.how == NEAP_TRACE_EXIT_SIGNAL && rec.end.value == -9); break;
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

int main(void) {
    snprintf(dir, sizeof dir, "%s/neap-tracefmt.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    CHECK(mkdtemp(dir) != NULL);
    test_crc();
    test_roundtrip();
    test_full();
    test_errors();
    test_sampled_header();
    test_merge();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    printf("test_tracefmt: ok\n");
    return test_status();
}
