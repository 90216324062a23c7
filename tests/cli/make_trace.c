/* make_trace.c -- writes synthetic traces with known content for
 * tests/cli/report.sh (the library's writer is not needed).
 *
 *   make_trace KIND OUT     KIND: basic, killed, truncated, corrupt, sampled,
 *                           grow, grow-freed, pinning, base, extremes, marks,
 *                           damaged-addr, damaged-grow, damaged-move,
 *                           damaged-stack, python, notrace, future
 *
 * The stacks are real: their frames are return addresses inside this
 * program's own functions (site_alpha ... site_delta, called from main or
 * from outer_caller), and the module map is this program's mappings from
 * /proc/self/maps, so `neap report` can symbolize them.  Every stack's
 * innermost frame is in a fake "libneap.so.0" module (a file that does not
 * exist), as a real trace's would be inside neap's malloc: the report must
 * skip it.
 *
 * The contents, and the figures report.sh expects from them:
 *
 *   basic (exact, clean end, status 0):
 *     S1 alpha<main  S2 beta<main  S3 gamma<main  S4 alpha<outer_caller<main
 *     A S1 1000 @0x10000   A S1 1000 @0x11000   A S2 5000 @0x20000
 *     A S4 3500 @0x30000   F 0x999000 (unknown)   T 50 ms   -- chunk --
 *     A S3 20000 @0x40000 (peak: 30500)   F 0x40000   F 0x11000
 *     A S2 2000 @0x50000   T 100 ms   -- chunk --   E 0
 *     total 32500 B in 6; at exit 11500 B in 4: beta 7000 (2), alpha 4500 (2)
 *     at the peak: gamma 20000 (1), alpha 5500 (3), beta 5000 (1)
 *   marks: basic with three marks ('K'): "phase1" at 60 ms after the first
 *     chunk's records (10500 B live in 4 blocks: alpha 5500 (3), beta 5000
 *     (1); 5 pages pinned: 20480 B), "esc\x1b[2J" (an escape sequence in
 *     its label) at 70 ms after gamma's 20000 B (the peak: 30500 B, 10
 *     pages, 40960 B; gamma alone in 5 pages), "phase1" again at 100 ms,
 *     after the tick of 100 ms (11500 B as at exit, 5 pages)
 *   killed: basic without 'E'.  truncated: basic cut inside its second
 *     chunk (prints the expected message); corrupt: a payload byte of the
 *     second chunk flipped (prints the expected message).
 *   sampled (interval 1000): A alpha 1000, A beta 100000, F unknown: alpha
 *     stands for 1000/(1-e^-1) = 1582 B, 1.6 blocks; beta 100000 B, 1 block
 *   grow (interval 4096): A alpha 8192 @X, G beta 4096 at offset 8192 @X
 *     (a part of the block), R X -> Y, never freed: at exit alpha stands for
 *     8192/(1-e^-2) = 9474 B, 1.2 blocks, beta for 4096/(1-e^-1) = 6480 B,
 *     1.6 blocks.  Y is a quarter page in: alpha is in 3/4 of a page (alone
 *     there), a whole one and 1/4 of a third, shared with beta (at Y + 8192),
 *     in 3/4 of it and 1/4 of a fourth (alone): alpha pins 2.25 pages, beta
 *     1.75, one shared each.
 *     grow-freed: the same, then F Y: nothing live at exit
 *   extremes (exact): stack ids and addresses at the ends of their range,
 *     the values a hash table could take for its empty marker:
 *     S(2^64-1) alpha<main  S0 beta<main
 *     A S(2^64-1) 1000 @0x0   A S(2^64-1) 300 @0x10000   A S0 2000 @0x20000
 *     A S0 700 @0x0 (replaces the block at 0)   F 0x10000   E 0
 *     total 4000 B in 4; at exit 2700 B in 2: beta 2700 (2)
 *   pinning: alpha 3 x 100 B in one page (arena a) and 1000 B in a page it
 *     shares with gamma's 3000 B block; beta 200 B alone in a page of arena
 *     a+2; delta one huge block of 2 MiB (512 pages, no arena)
 *   base: at exit alpha 1000 (1), beta 3 x 1000, gamma 500 (1)
 *   python (exact): Python frames ('P'), names a JSON writer must escape:
 *     P1 raw_decode, /usr/lib/python3.11/json/decoder.py line 12 (shown
 *     as json/decoder.py); P2 "main\x01" in "app\xff\"q\\.py" (a control
 *     byte, a byte that is not UTF-8, a quote, a backslash) line 3; P3
 *     <module> in <string>, line 0 (unknown)
 *     S1 P1<P2  S2 P2<P3 (each under the fake libneap frame)
 *     A S1 1000   A S2 3000   A S2 500   E 0: at exit P2's line 3500 B in
 *     2 blocks, P1's 1000 B in 1
 *   damaged-*: values no writer writes, under correct CRCs (what a fuzzer
 *     makes by changing bytes and signing the chunks again).  The first
 *     chunk is good: S1..S5, A S1 1000 @0x10000, A S2 5000 @0x20000,
 *     T 50 ms (6000 B live); the second starts with the damage, then A S3
 *     700 @0x30000 and E 0.  Each kind prints the message `neap report`
 *     must give, or nothing when the trace must be read whole:
 *     damaged-addr   A S3 20000 at 2^64-1 (a delta of -1 from the chunk's
 *                    base 0): its end wraps; corrupt
 *     damaged-grow   (sampled, interval 4096) G S2 2^62+1 bytes at offset
 *                    3 * 2^62 of 0x20000: offset + size wraps to 1, which
 *                    once made pinning walk 2^50 pages; corrupt
 *     damaged-move   (sampled) G S3 4096 at offset 8192 of 0x20000, then
 *                    R 0x20000 -> 2^64-8192: each record is in range, but
 *                    the block moved (12288 bytes) runs past the end of the
 *                    address space; corrupt (the 'G' replayed before it)
 *     damaged-stack  A by stack 2^64-1 (once the hash map's empty marker),
 *                    never defined: not corrupt (ids are any 64-bit
 *                    number); read whole, one undefined stack, at exit
 *                    7700 B in 4 blocks, 1000 B of them the undefined stack's
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "trace/tracefmt.h"

#define FAKE_NEAP_START 0x10000000u
#define FAKE_NEAP_PC (FAKE_NEAP_START + 0x100)

static uint8_t file[1 << 20];
static size_t file_len;
static uint8_t chunk[1 << 16];
static _neap_trace_enc_t enc;
static size_t chunk_at[8];
static int nchunks;

static void die(const char *what) {
    fprintf(stderr, "make_trace: %s\n", what);
    exit(1);
}
static void ok(int r) {
    if (r != 0) die("chunk buffer full");
}

/* The return address of its call: a pc inside the caller. */
static __attribute__((noinline)) uint64_t caller_pc(void) {
    return (uint64_t)(uintptr_t)__builtin_return_address(0);
}
static __attribute__((noinline)) uint64_t site_alpha(void) {
    uint64_t pc = caller_pc();
    __asm__ volatile("" ::: "memory");
    return pc;
}
static __attribute__((noinline)) uint64_t site_beta(void) {
    uint64_t pc = caller_pc();
    __asm__ volatile("" ::: "memory");
    return pc;
}
static __attribute__((noinline)) uint64_t site_gamma(void) {
    uint64_t pc = caller_pc();
    __asm__ volatile("" ::: "memory");
    return pc;
}
static __attribute__((noinline)) uint64_t site_delta(void) {
    uint64_t pc = caller_pc();
    __asm__ volatile("" ::: "memory");
    return pc;
}
static __attribute__((noinline)) uint64_t outer_caller(void) {
    uint64_t pc = caller_pc();
    __asm__ volatile("" ::: "memory");
    return pc;
}

static uint64_t pc_alpha, pc_beta, pc_gamma, pc_delta, pc_outer, pc_main;

static void flush(void) {
    size_t n = _neap_trace_enc_finish(&enc);
    if (n == 0) return;
    chunk_at[nchunks++] = file_len;
    memcpy(file + file_len, chunk, n);
    file_len += n;
}

/* The header and the module map: this program's mappings and the fake libneap. */
static void begin(uint32_t flags, uint64_t interval) {
    static const char cmd[] = "./synthetic\0--kind\0";
    _neap_trace_header_t h = {.version = NEAP_TRACE_VERSION, .flags = flags,
                              .sample_interval = interval, .start_ns = 1700000000000000000ull,
                              .pid = 4242, .max_frames = 64, .cmdline_len = sizeof cmd - 1,
                              .cmdline = cmd};
    file_len = _neap_trace_header_encode(file, sizeof file, &h);
    _neap_trace_enc_init(&enc, chunk, sizeof chunk);
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) die("cannot read /proc/self/exe");
    exe[n] = '\0';
    FILE *maps = fopen("/proc/self/maps", "r");
    if (maps == NULL) die("cannot read /proc/self/maps");
    char line[8192];
    while (fgets(line, sizeof line, maps)) {
        unsigned long long start, end, off;
        int pos = 0;
        if (sscanf(line, "%llx-%llx %*s %llx %*s %*s %n", &start, &end, &off, &pos) < 3 || pos == 0)
            continue;
        char *path = line + pos;
        path[strcspn(path, "\n")] = '\0';
        if (strcmp(path, exe) == 0) ok(_neap_trace_enc_module(&enc, start, end, off, path, strlen(path)));
    }
    fclose(maps);
    const char *fake = "/nonexistent/libneap.so.0";
    ok(_neap_trace_enc_module(&enc, FAKE_NEAP_START, FAKE_NEAP_START + 0x10000, 0, fake, strlen(fake)));
}

/* Defines stack id with frames: the fake libneap pc, then the given pcs. */
static void stack(uint64_t id, uint64_t a, uint64_t b, uint64_t c) {
    uint64_t f[4] = {FAKE_NEAP_PC, a, b, c};
    ok(_neap_trace_enc_stack(&enc, id, f, c ? 4 : 3));
}

static void standard_stacks(void) {
    stack(1, pc_alpha, pc_main, 0);
    stack(2, pc_beta, pc_main, 0);
    stack(3, pc_gamma, pc_main, 0);
    stack(4, pc_alpha, pc_outer, pc_main);
    stack(5, pc_delta, pc_main, 0);
}

static void mark(uint64_t ms, const char *label) {
    ok(_neap_trace_enc_mark(&enc, ms, label, strlen(label)));
}

/* basic, and with marks the marks kind's three marks */
static void basic_marks(int end, int marks) {
    begin(0, 0);
    standard_stacks();
    ok(_neap_trace_enc_alloc(&enc, 1, 1000, 0x10000));
    ok(_neap_trace_enc_alloc(&enc, 1, 1000, 0x11000));
    ok(_neap_trace_enc_alloc(&enc, 2, 5000, 0x20000));
    ok(_neap_trace_enc_alloc(&enc, 4, 3500, 0x30000));
    ok(_neap_trace_enc_free(&enc, 0x999000));
    ok(_neap_trace_enc_tick(&enc, 50, 1 << 20, 10500));
    if (marks) mark(60, "phase1");
    flush();
    ok(_neap_trace_enc_alloc(&enc, 3, 20000, 0x40000));
    if (marks) mark(70, "esc\x1b[2J");
    ok(_neap_trace_enc_free(&enc, 0x40000));
    ok(_neap_trace_enc_free(&enc, 0x11000));
    ok(_neap_trace_enc_alloc(&enc, 2, 2000, 0x50000));
    ok(_neap_trace_enc_tick(&enc, 100, 2 << 20, 11500));
    if (marks) mark(100, "phase1");
    flush();
    if (end) {
        ok(_neap_trace_enc_end(&enc, NEAP_TRACE_EXIT_STATUS, 0));
        flush();
    }
}

static void basic(int end) { basic_marks(end, 0); }

/* The damaged-* kinds: returns 0, or -1 for an unknown one. */
static int damaged(const char *kind) {
    const uint64_t top = UINT64_MAX, q = (uint64_t)1 << 62;
    int sampled = strcmp(kind, "damaged-grow") == 0 || strcmp(kind, "damaged-move") == 0;
    begin(sampled ? NEAP_TRACE_FLAG_SAMPLED : 0, sampled ? 4096 : 0);
    standard_stacks();
    ok(_neap_trace_enc_alloc(&enc, 1, 1000, 0x10000));
    ok(_neap_trace_enc_alloc(&enc, 2, 5000, 0x20000));
    ok(_neap_trace_enc_tick(&enc, 50, 1 << 20, 6000));
    flush();
    size_t c = file_len, at = c + NEAP_TRACE_CHUNK_HEADER; /* the second chunk, its first record */
    if (strcmp(kind, "damaged-addr") == 0) {
        ok(_neap_trace_enc_alloc(&enc, 3, 20000, top));
        printf("corrupt record 'A' at byte %zu (chunk at byte %zu): block of 20000 bytes at "
               "0xffffffffffffffff runs past the end of the address space\n", at, c);
    } else if (strcmp(kind, "damaged-grow") == 0) {
        ok(_neap_trace_enc_grow(&enc, 2, q + 1, 3 * q, 0x20000));
        printf("corrupt record 'G' at byte %zu (chunk at byte %zu): growth of %llu bytes at offset "
               "%llu of the block at 0x20000 runs past the end of the address space\n", at, c,
               (unsigned long long)(q + 1), (unsigned long long)(3 * q));
    } else if (strcmp(kind, "damaged-move") == 0) {
        ok(_neap_trace_enc_grow(&enc, 3, 4096, 8192, 0x20000));
        at = c + NEAP_TRACE_CHUNK_HEADER + _neap_trace_enc_payload(&enc);
        ok(_neap_trace_enc_move(&enc, 0x20000, top - 8191));
        printf("corrupt record 'R' at byte %zu: the block of 12288 bytes at 0x20000, moved to "
               "0x%llx, runs past the end of the address space\n", at,
               (unsigned long long)(top - 8191));
    } else if (strcmp(kind, "damaged-stack") == 0) {
        ok(_neap_trace_enc_alloc(&enc, top, 1000, 0x40000));
    } else {
        return -1;
    }
    ok(_neap_trace_enc_alloc(&enc, 3, 700, 0x30000));
    ok(_neap_trace_enc_end(&enc, NEAP_TRACE_EXIT_STATUS, 0));
    flush();
    return 0;
}

static void write_out(const char *path) {
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(file, 1, file_len, f) != file_len || fclose(f) != 0) die("cannot write the trace");
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: make_trace KIND OUT\n");
        return 2;
    }
    pc_alpha = site_alpha();
    pc_beta = site_beta();
    pc_gamma = site_gamma();
    pc_delta = site_delta();
    pc_outer = outer_caller();
    pc_main = caller_pc();
    const char *kind = argv[1];
    if (strcmp(kind, "basic") == 0) {
        basic(1);
    } else if (strcmp(kind, "marks") == 0) {
        basic_marks(1, 1);
    } else if (strcmp(kind, "killed") == 0) {
        basic(0);
    } else if (strcmp(kind, "truncated") == 0) {
        basic(1);
        size_t c = chunk_at[1], len = chunk_at[2] - c - NEAP_TRACE_CHUNK_HEADER;
        file_len = c + NEAP_TRACE_CHUNK_HEADER + 5;
        printf("trace truncated at byte %zu: chunk of %zu bytes, only 5 present\n", c, len);
    } else if (strcmp(kind, "corrupt") == 0) {
        basic(1);
        file[chunk_at[1] + NEAP_TRACE_CHUNK_HEADER + 2] ^= 0x10;
        printf("CRC mismatch in chunk at byte %zu\n", chunk_at[1]);
    } else if (strcmp(kind, "sampled") == 0) {
        begin(NEAP_TRACE_FLAG_SAMPLED, 1000);
        standard_stacks();
        ok(_neap_trace_enc_alloc(&enc, 1, 1000, 0x10000));
        ok(_neap_trace_enc_alloc(&enc, 2, 100000, 0x20000));
        ok(_neap_trace_enc_free(&enc, 0x777000));
        ok(_neap_trace_enc_tick(&enc, 10, 1 << 20, 101000));
        ok(_neap_trace_enc_end(&enc, NEAP_TRACE_EXIT_STATUS, 0));
        flush();
    } else if (strcmp(kind, "grow") == 0 || strcmp(kind, "grow-freed") == 0) {
        const uint64_t x = 0x7f0000410000ull, y = 0x7f0000820400ull;
        begin(NEAP_TRACE_FLAG_SAMPLED, 4096);
        standard_stacks();
        ok(_neap_trace_enc_alloc(&enc, 1, 8192, x));
        ok(_neap_trace_enc_grow(&enc, 2, 4096, 8192, x));
        ok(_neap_trace_enc_move(&enc, x, y));
        if (strcmp(kind, "grow-freed") == 0) ok(_neap_trace_enc_free(&enc, y));
        ok(_neap_trace_enc_end(&enc, NEAP_TRACE_EXIT_STATUS, 0));
        flush();
    } else if (strcmp(kind, "pinning") == 0) {
        begin(0, 0);
        standard_stacks();
        const uint64_t arena = 0x7f0000400000ull;  /* 4 MiB-aligned */
        ok(_neap_trace_enc_alloc(&enc, 1, 100, arena + 0x100));
        ok(_neap_trace_enc_alloc(&enc, 1, 100, arena + 0x200));
        ok(_neap_trace_enc_alloc(&enc, 1, 100, arena + 0x300));
        ok(_neap_trace_enc_alloc(&enc, 1, 1000, arena + 0x1000));
        ok(_neap_trace_enc_alloc(&enc, 3, 3000, arena + 0x1400));
        ok(_neap_trace_enc_alloc(&enc, 2, 200, arena + (2u << 22) + 0x40));
        ok(_neap_trace_enc_alloc(&enc, 5, 2u << 20, 0x7f0010000000ull));
        ok(_neap_trace_enc_end(&enc, NEAP_TRACE_EXIT_STATUS, 0));
        flush();
    } else if (strcmp(kind, "base") == 0) {
        begin(0, 0);
        standard_stacks();
        ok(_neap_trace_enc_alloc(&enc, 1, 1000, 0x10000));
        ok(_neap_trace_enc_alloc(&enc, 2, 1000, 0x20000));
        ok(_neap_trace_enc_alloc(&enc, 2, 1000, 0x21000));
        ok(_neap_trace_enc_alloc(&enc, 2, 1000, 0x22000));
        ok(_neap_trace_enc_alloc(&enc, 3, 500, 0x30000));
        ok(_neap_trace_enc_end(&enc, NEAP_TRACE_EXIT_STATUS, 0));
        flush();
    } else if (strcmp(kind, "extremes") == 0) {
        begin(0, 0);
        stack(UINT64_MAX, pc_alpha, pc_main, 0);
        stack(0, pc_beta, pc_main, 0);
        ok(_neap_trace_enc_alloc(&enc, UINT64_MAX, 1000, 0));
        ok(_neap_trace_enc_alloc(&enc, UINT64_MAX, 300, 0x10000));
        ok(_neap_trace_enc_alloc(&enc, 0, 2000, 0x20000));
        ok(_neap_trace_enc_alloc(&enc, 0, 700, 0));
        ok(_neap_trace_enc_free(&enc, 0x10000));
        ok(_neap_trace_enc_end(&enc, NEAP_TRACE_EXIT_STATUS, 0));
        flush();
    } else if (strcmp(kind, "python") == 0) {
        static const char f2[] = "app\xff\"q\\.py", fn2[] = "main\x01";
        const uint64_t tag = NEAP_TRACE_PYFRAME_TAG;
        begin(0, 0);
        const char *f1 = "/usr/lib/python3.11/json/decoder.py";
        ok(_neap_trace_enc_pyframe(&enc, 1, 12, f1, strlen(f1), "raw_decode", 10));
        ok(_neap_trace_enc_pyframe(&enc, 2, 3, f2, sizeof f2 - 1, fn2, sizeof fn2 - 1));
        ok(_neap_trace_enc_pyframe(&enc, 3, 0, "<string>", 8, "<module>", 8));
        stack(1, tag | 1, tag | 2, 0);
        stack(2, tag | 2, tag | 3, 0);
        ok(_neap_trace_enc_alloc(&enc, 1, 1000, 0x10000));
        ok(_neap_trace_enc_alloc(&enc, 2, 3000, 0x20000));
        ok(_neap_trace_enc_alloc(&enc, 2, 500, 0x30000));
        ok(_neap_trace_enc_end(&enc, NEAP_TRACE_EXIT_STATUS, 0));
        flush();
    } else if (strcmp(kind, "future") == 0) {
        basic(1);
        file[8] = 9;
    } else if (strncmp(kind, "damaged-", 8) == 0) {
        if (damaged(kind) != 0) {
            fprintf(stderr, "make_trace: unknown kind '%s'\n", kind);
            return 2;
        }
    } else if (strcmp(kind, "notrace") == 0) {
        file_len = (size_t)snprintf((char *)file, sizeof file, "this is not a trace\n");
    } else {
        fprintf(stderr, "make_trace: unknown kind '%s'\n", kind);
        return 2;
    }
    write_out(argv[2]);
    return 0;
}
