/* test_report_fuzz.c -- `neap report` on damaged traces whose CRCs are
 * correct (labels: cli, unit).  Built from the neap command's subcommands
 * (neap_cli_objs): the report runs in-process, in a forked child per input.
 *
 *   test_report_fuzz fuzz MAKE_TRACE [N]   N mutants (default 3000, times
 *                                          NEAP_TEST_SCALE) of the valid
 *                                          traces make_trace writes
 *   test_report_fuzz regress FILE...       the same checks on kept inputs
 *                                          (tests/cli/damaged/: mutants that
 *                                          crashed or hung neap report once)
 *   test_report_fuzz pinning               _neap_pinning bounds its work by
 *                                          the blocks, not by their sizes
 *
 * A mutant is a base trace with 1 to 4 deterministic pseudo-random changes
 * (xorshift64* from a fixed seed; NEAP_FUZZ_SEED picks another): bit flips,
 * bytes set to 0x00, 0xFF or anything, extreme varints inserted or written
 * over (2^64-1, -1 as a zigzag delta, 2^63), a record's field (a stack id,
 * size, offset, address delta, frame count, a Python frame's id, line or
 * name length...) set to an extreme or to a
 * value whose sum with another field of the record wraps (the record
 * encoded again around it), payloads cut, ranges of a
 * payload duplicated or dropped, whole chunks duplicated, dropped or
 * swapped, a header byte changed, the file cut anywhere.  Every chunk is
 * then signed again (its length and CRC recomputed) unless the file is
 * cut inside it, so that the decoder's checks, not the CRC, meet the
 * damage:
 *
 *   base trace --parse--> header | payload0 | payload1 | ...
 *              --mutate-> header'| payload0'| payload2 | payload1' ...
 *              --sign---> header' CHNK len crc payload0' CHNK ... [cut]
 *
 * Each input must pass two checks:
 *   1. the decoder (trace_read.c), in this process: the records it returns
 *      are never more than the file's bytes (every record takes at least
 *      one: more means it loops), and a stop other than a clean end or EOF
 *      says why;
 *   2. `neap report --no-progress FILE` (every fourth with --html too,
 *      the others with --json; four in five with --at: peak, mark:1,
 *      mark:phase1 or 0.06s, a moment the marks trace has, and its
 *      mutants may not) returns 0, 1 or 2, with nothing from a sanitizer
 *      on stderr, and when not 0 a message naming the file; the JSON
 *      document, written whenever the trace could be opened (always when
 *      0), is one well-formed JSON value of valid UTF-8 (check_json: a
 *      strict parser, no raw control byte in a string).
 * Both run in a forked child, for 100 inputs at a time (a fork costs more
 * than a report), with its CPU time limited to NEAP_FUZZ_CPU seconds
 * (default 20; a report of these files takes a millisecond or so): the
 * child must end by exit 0, not by a signal (a crash; SIGXCPU: unbounded
 * work, a hang).  The limit is on the work done, CPU time, not on the wall
 * clock: a busy machine does not make it fire.  When a child fails, each
 * of its inputs is run again in a child of its own, and each failing one is
 * kept as fail-N.trc in the work directory, which is then left in place,
 * and named.
 *
 * The symbol tables are read without libdw (NEAP_SYMBOLS_NO_LIBDW=1): the
 * base traces' frames are make_trace's, and loading its DWARF for every
 * mutant would cost more than the rest of the report.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "trace/pinning.h"
#include "trace_read.h"
#include "neap_fuzz.h"
#include "neap_test.h"

static char dir[256];

/* dir/name */
static const char *wpath(const char *name) {
    static char buf[4][512];
    static int which;
    which = (which + 1) & 3;
    snprintf(buf[which], sizeof buf[which], "%s/%s", dir, name);
    return buf[which];
}

/* --- the checks ------------------------------------------------------------ */

/* Check 1: the decoder alone, in this process. */
static void check_decoder(const char *path, const char *label) {
    _neap_trace_reader_t r;
    _neap_trace_rec_t rec;
    if (_neap_trace_open(&r, path) == 0) {
        uint64_t n = 0;
        while (_neap_trace_next(&r, &rec)) {
            n++;
            CHECKF(n <= r.file_size, "%s: %llu records from a file of %llu bytes: the decoder loops",
                   label, (unsigned long long)n, (unsigned long long)r.file_size);
        }
        CHECKF(r.status == NEAP_TRACE_CLEAN || r.status == NEAP_TRACE_EOF ||
                   r.status == NEAP_TRACE_TRUNCATED || r.status == NEAP_TRACE_CORRUPT ||
                   r.status == NEAP_TRACE_IOERROR,
               "%s: stopped with status %d", label, (int)r.status);
        CHECKF(r.status == NEAP_TRACE_CLEAN || r.status == NEAP_TRACE_EOF || r.message[0] != '\0',
               "%s: stopped (%s) without a message", label, _neap_trace_status_name(r.status));
    } else {
        CHECKF(r.message[0] != '\0', "%s: open failed without a message", label);
    }
    _neap_trace_close(&r);
}

static unsigned cpu_limit = 20;

/* --- a strict JSON checker (RFC 8259's grammar, UTF-8 checked) ------------- */

typedef struct {
    const unsigned char *p, *end;
    int depth;
} json_in_t;

static void json_ws(json_in_t *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\t' || *j->p == '\r')) j->p++;
}
static int json_lit(json_in_t *j, const char *w) {
    size_t n = strlen(w);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n) != 0) return -1;
    j->p += n;
    return 0;
}
static int json_string(json_in_t *j) {
    if (j->p >= j->end || *j->p != '"') return -1;
    j->p++;
    while (j->p < j->end) {
        unsigned c = *j->p;
        if (c == '"') {
            j->p++;
            return 0;
        }
        if (c < 0x20) return -1; /* a raw control byte */
        if (c == '\\') {
            if (++j->p >= j->end) return -1;
            c = *j->p++;
            if (c == 'u') {
                for (int i = 0; i < 4; i++, j->p++)
                    if (j->p >= j->end || !strchr("0123456789abcdefABCDEF", *j->p) || *j->p == 0) return -1;
            } else if (!strchr("\"\\/bfnrt", (int)c) || c == 0) {
                return -1;
            }
            continue;
        }
        if (c < 0x80) {
            j->p++;
            continue;
        }
        /* a well-formed UTF-8 character */
        size_t len = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
        if (len == 0 || (size_t)(j->end - j->p) < len) return -1;
        unsigned cp = c & (len == 2 ? 0x1f : len == 3 ? 0x0f : 0x07);
        for (size_t i = 1; i < len; i++) {
            if ((j->p[i] & 0xc0) != 0x80) return -1;
            cp = cp << 6 | (j->p[i] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return -1;
        j->p += len;
    }
    return -1;
}
static int json_number(json_in_t *j) {
    const unsigned char *s = j->p;
    if (j->p < j->end && *j->p == '-') j->p++;
    if (j->p >= j->end || *j->p < '0' || *j->p > '9') return -1;
    if (*j->p == '0') j->p++;
    else while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (j->p >= j->end || *j->p < '0' || *j->p > '9') return -1;
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-')) j->p++;
        if (j->p >= j->end || *j->p < '0' || *j->p > '9') return -1;
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
    }
    return j->p > s ? 0 : -1;
}
static int json_value(json_in_t *j) {
    json_ws(j);
    if (j->p >= j->end) return -1;
    unsigned char c = *j->p;
    if (c == '{' || c == '[') {
        if (++j->depth > 64) return -1;
        unsigned char close = c == '{' ? '}' : ']';
        j->p++;
        json_ws(j);
        if (j->p < j->end && *j->p == close) {
            j->p++;
            j->depth--;
            return 0;
        }
        for (;;) {
            if (c == '{') {
                json_ws(j);
                if (json_string(j) != 0) return -1;
                json_ws(j);
                if (j->p >= j->end || *j->p++ != ':') return -1;
            }
            if (json_value(j) != 0) return -1;
            json_ws(j);
            if (j->p >= j->end) return -1;
            if (*j->p == ',') {
                j->p++;
                continue;
            }
            if (*j->p++ != close) return -1;
            j->depth--;
            return 0;
        }
    }
    if (c == '"') return json_string(j);
    if (c == 't') return json_lit(j, "true");
    if (c == 'f') return json_lit(j, "false");
    if (c == 'n') return json_lit(j, "null");
    return json_number(j);
}
/* 0 when text[0..n) is one JSON value (an object), else -1 with where. */
static int check_json(const char *text, size_t n, char *why, size_t cap) {
    json_in_t j = {(const unsigned char *)text, (const unsigned char *)text + n, 0};
    json_ws(&j);
    int rc = j.p < j.end && *j.p == '{' ? json_value(&j) : -1;
    json_ws(&j);
    if (rc != 0 || j.p != j.end) {
        snprintf(why, cap, "the JSON document is not well-formed at byte %zu of %zu",
                 (size_t)(j.p - (const unsigned char *)text), n);
        return -1;
    }
    return 0;
}

/* Check 2: neap report on path, in this process (a child of the test's):
 * 0, or -1 with why in `why`.  Its stdout goes to /dev/null, its stderr to
 * a file read back, fd 2 restored after. */
static int check_report(const char *path, int html, int at, char *why, size_t cap) {
    char errpath[512]; /* a copy: wpath's buffers are reused */
    snprintf(errpath, sizeof errpath, "%s", wpath("stderr.txt"));
    /* the moments of --at (at: 0 none): each takes the replay's snapshot
     * another way (a first replay for the peak and a time) */
    static const char *const moments[] = {NULL, "peak", "mark:1", "mark:phase1", "0.06s"};
    char *argv[8] = {(char *)"report", (char *)"--no-progress", (char *)path};
    int argc = 3;
    if (html) {
        argv[argc++] = (char *)"--html";
        argv[argc++] = (char *)wpath("out.html");
    } else {
        argv[argc++] = (char *)"--json";
        argv[argc++] = (char *)wpath("out.json");
    }
    if (at > 0 && at < (int)(sizeof moments / sizeof *moments)) {
        argv[argc++] = (char *)"--at";
        argv[argc++] = (char *)moments[at];
    }
    argv[argc] = NULL;
    fflush(NULL);
    unlink(errpath); /* new files, not truncated ones (write_file) */
    unlink(wpath("out.html"));
    unlink(wpath("out.json"));
    int saved = dup(2), err = open(errpath, O_WRONLY | O_CREAT | O_EXCL, 0644);
    CHECK(saved >= 0 && err >= 0);
    CHECK(dup2(err, 2) == 2);
    close(err);
    int st = neap_cli_report(argc, argv);
    fflush(NULL);
    FILE *tally = fopen(wpath("tally.txt"), "a"); /* the statuses, for the summary */
    if (tally != NULL) {
        fprintf(tally, "%d", st);
        fclose(tally);
    }
    CHECK(dup2(saved, 2) == 2);
    close(saved);
    size_t n;
    char *text = fuzz_read(errpath, &n);
    int rc = 0;
    if (st < 0 || st > 2) {
        snprintf(why, cap, "neap report returned %d", st);
        rc = -1;
    } else if (strstr(text, "Sanitizer") != NULL || strstr(text, "runtime error") != NULL) {
        snprintf(why, cap, "a sanitizer reported an error");
        rc = -1;
    } else if (st != 0 && strstr(text, path) == NULL) {
        snprintf(why, cap, "neap report returned %d without a message naming the file", st);
        rc = -1;
    }
    if (rc == 0 && !html) {
        /* the document: whenever the trace could be read (always on 0) */
        if (access(wpath("out.json"), F_OK) == 0) {
            size_t jn;
            char *js = fuzz_read(wpath("out.json"), &jn);
            rc = check_json(js, jn, why, cap);
            free(js);
        } else if (st == 0) {
            snprintf(why, cap, "neap report returned 0 without writing its --json document");
            rc = -1;
        }
    }
    if (rc != 0) fprintf(stderr, "--- its stderr:\n%.2000s\n", text);
    free(text);
    return rc;
}

/* An input: a file, a label for messages, and whether to write HTML too. */
typedef struct {
    char path[512];
    char label[128];
    int html;
    int at;       /* a moment for --at (check_report's list), 0 none */
} input_t;

/* Runs both checks on inputs[0..n) in a forked child whose CPU time is
 * limited: 0 when every input passed, else -1 with why in `why` (a failed
 * check, a signal: a crash, or SIGXCPU: unbounded work). */
static int run_child(const input_t *inputs, size_t n, char *why, size_t cap) {
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        struct rlimit rl = {cpu_limit, cpu_limit + 5};
        setrlimit(RLIMIT_CPU, &rl);
        int out = open("/dev/null", O_WRONLY);
        if (out < 0 || dup2(out, 1) != 1) _exit(100);
        for (size_t i = 0; i < n; i++) {
            char w[256];
            check_decoder(inputs[i].path, inputs[i].label);
            if (check_report(inputs[i].path, inputs[i].html, inputs[i].at, w, sizeof w) != 0) {
                fprintf(stderr, "%s: %s\n", inputs[i].label, w);
                _exit(3);
            }
        }
        _exit(0);
    }
    return fuzz_wait(pid, why, cap);
}

/* Checks inputs[0..n): one child for them all, and when it fails one per
 * input, to name each failing one; a failing input is kept as fail-N.trc. */
static int failures;
static void check_inputs(const input_t *inputs, size_t n) {
    char why[256];
    if (run_child(inputs, n, why, sizeof why) == 0) return;
    for (size_t i = 0; i < n; i++) {
        if (run_child(&inputs[i], 1, why, sizeof why) == 0) continue;
        char name[64];
        snprintf(name, sizeof name, "fail-%d.trc", failures++);
        size_t len;
        char *data = fuzz_read(inputs[i].path, &len);
        fuzz_write(wpath(name), data, len);
        free(data);
        fprintf(stderr, "%s: %s (kept as %s)\n", inputs[i].label, why, wpath(name));
    }
}

/* --- traces as header and payloads ------------------------------------------- */

typedef fuzz_buf_t buf_t; /* neap_fuzz.h's */

typedef struct {
    buf_t hdr;          /* the file header, command line included */
    buf_t chunk[64];    /* the payloads */
    int n;
} trace_t;

static void trace_free(trace_t *t) {
    free(t->hdr.p);
    for (int i = 0; i < t->n; i++) free(t->chunk[i].p);
    t->n = 0;
    t->hdr.p = NULL;
}

static buf_t buf_of(const uint8_t *p, size_t len) {
    buf_t b = {malloc(len ? len : 1), len};
    CHECK(b.p != NULL);
    if (len) memcpy(b.p, p, len);
    return b;
}

static uint32_t get32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Splits a valid trace. */
static void trace_parse(trace_t *t, const uint8_t *d, size_t len, const char *what) {
    CHECKF(len >= NEAP_TRACE_HEADER_FIXED, "%s: no header", what);
    size_t at = NEAP_TRACE_HEADER_FIXED + get32(d + 40);
    CHECKF(at <= len, "%s: short header", what);
    t->hdr = buf_of(d, at);
    t->n = 0;
    while (at < len) {
        CHECKF(len - at >= NEAP_TRACE_CHUNK_HEADER && memcmp(d + at, "CHNK", 4) == 0, "%s: bad chunk", what);
        size_t n = get32(d + at + 4);
        CHECKF(n <= len - at - NEAP_TRACE_CHUNK_HEADER, "%s: short chunk", what);
        CHECKF(t->n < (int)(sizeof t->chunk / sizeof *t->chunk), "%s: too many chunks", what);
        t->chunk[t->n++] = buf_of(d + at + NEAP_TRACE_CHUNK_HEADER, n);
        at += NEAP_TRACE_CHUNK_HEADER + n;
    }
}

static void trace_copy(trace_t *to, const trace_t *from) {
    to->hdr = buf_of(from->hdr.p, from->hdr.len);
    to->n = from->n;
    for (int i = 0; i < from->n; i++) to->chunk[i] = buf_of(from->chunk[i].p, from->chunk[i].len);
}

/* The file: the header, then every payload signed (length and CRC). */
static uint8_t *trace_sign(const trace_t *t, size_t *len) {
    size_t n = t->hdr.len;
    for (int i = 0; i < t->n; i++) n += NEAP_TRACE_CHUNK_HEADER + t->chunk[i].len;
    uint8_t *d = malloc(n ? n : 1), *p = d;
    CHECK(d != NULL);
    memcpy(p, t->hdr.p, t->hdr.len);
    p += t->hdr.len;
    for (int i = 0; i < t->n; i++) {
        const buf_t *c = &t->chunk[i];
        memcpy(p, "CHNK", 4);
        put32(p + 4, (uint32_t)c->len);
        put32(p + 8, _neap_trace_crc32(0, c->p, c->len));
        memcpy(p + NEAP_TRACE_CHUNK_HEADER, c->p, c->len);
        p += NEAP_TRACE_CHUNK_HEADER + c->len;
    }
    *len = n;
    return d;
}

/* --- mutations ------------------------------------------------------------------ */

static uint64_t rng;

static size_t pick(size_t n) { return n ? (size_t)(xs_next(&rng) % n) : 0; }

/* The varint fields of the record at p[0..len) (its tag at p[0]): up to max
 * of their offsets and lengths in off[], flen[]; returns how many, and the
 * record's length in *reclen, or -1 when it does not parse. */
static int record_fields(const uint8_t *p, size_t len, size_t *off, size_t *flen, int max,
                         size_t *reclen) {
    int nfixed;
    switch (p[0]) {
    case 'P': nfixed = 4; break; /* id, line, file's length (file), function's (function) */
    case 'C': case 'F': nfixed = 1; break;
    case 'S': case 'R': case 'E': case 'K': nfixed = 2; break;
    case 'A': case 'T': nfixed = 3; break;
    case 'M': case 'G': nfixed = 4; break;
    default: return -1;
    }
    size_t at = 1;
    uint64_t v = 0, extra = 0;
    int n = 0;
    for (int k = 0; k < nfixed + (int)extra; k++) {
        size_t start = at;
        v = 0;
        for (int shift = 0;; shift += 7) {
            if (at >= len || shift > 63) return -1;
            uint8_t b = p[at++];
            v |= (uint64_t)(b & 0x7f) << shift;
            if ((b & 0x80) == 0) break;
        }
        if (n < max) {
            off[n] = start;
            flen[n] = at - start;
            n++;
        }
        if (p[0] == 'S' && k == 1) extra = v > 1024 ? 1024 : v; /* the frames */
        if (p[0] == 'P' && k == 2) {
            if (v > len - at) return -1;
            at += (size_t)v; /* the file's name, before the function's length */
        }
    }
    if (p[0] == 'P') {
        if (v > len - at) return -1;
        at += (size_t)v; /* the function's name */
    }
    if (p[0] == 'M' || p[0] == 'K') {
        if (v > len - at) return -1;
        at += (size_t)v; /* the path, the label */
    }
    *reclen = at;
    return n;
}

/* A value for a field: an extreme, or one that makes it wrap with another
 * field of its record (old values in f[0..n)): what the decoder must check. */
static uint64_t field_value(uint64_t old, const uint64_t *f, int n) {
    switch (pick(8)) {
    case 0: return UINT64_MAX;
    case 1: return 1;                       /* -1 as a zigzag delta */
    case 2: return (uint64_t)1 << 63;
    case 3: return 0;
    case 4: case 5: return 0 - f[pick((size_t)n)] + pick(4); /* its sum with another wraps */
    case 6: return old ^ (uint64_t)1 << pick(64);
    default: return xs_next(&rng) >> pick(64);
    }
}

/* One record's field of a payload set to field_value, the record encoded
 * again around it. */
static void mutate_field(buf_t *c) {
    size_t nrec = 0, at = 0, off[16], flen[16], reclen;
    /* count the records that parse, but the module map's (many, and only
     * shown), then pick one */
    while (at < c->len && record_fields(c->p + at, c->len - at, off, flen, 16, &reclen) >= 0) {
        nrec += c->p[at] != 'M';
        at += reclen;
    }
    if (nrec == 0) return;
    size_t want = pick(nrec);
    at = 0;
    for (size_t i = 0;; i += c->p[at] != 'M', at += reclen) {
        if (at >= c->len) return;
        int n = record_fields(c->p + at, c->len - at, off, flen, 16, &reclen);
        if (n <= 0) return;
        if (i < want || c->p[at] == 'M') continue;
        uint64_t f[16];
        for (int k = 0; k < n; k++) {
            f[k] = 0;
            for (size_t b = 0; b < flen[k]; b++)
                f[k] |= (uint64_t)(c->p[at + off[k] + b] & 0x7f) << (7 * b);
        }
        int k = (int)pick((size_t)n);
        uint8_t enc[NEAP_TRACE_VARINT_MAX];
        size_t elen = _neap_trace_put_varint(enc, field_value(f[k], f, n));
        fuzz_splice(c, at + off[k], flen[k], enc, elen);
        return;
    }
}

/* One change; *cut set when the file is to be cut (at *cut_at of the signed file's bytes, a
 * fraction in 1/65536ths). */
static void mutate(trace_t *t, int *cut, unsigned *cut_at) {
    /* varints no writer writes: 2^64-1, -1 as a zigzag delta (1), 2^63, 2^35-1 */
    static const uint8_t extreme[][10] = {
        {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
        {0x01},
        {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01},
        {0xff, 0xff, 0xff, 0xff, 0x7f},
    };
    static const size_t extreme_len[] = {10, 1, 10, 5};
    int what = (int)pick(25);
    if (t->n == 0 && (what < 15 || what > 16)) what = 15;
    buf_t *c = &t->chunk[pick((size_t)t->n)];
    size_t at = pick(c->len), left = c->len - at;
    switch (what) {
    case 0: case 1: case 2: case 3:
        if (c->len) c->p[at] ^= (uint8_t)(1u << pick(8));
        break;
    case 4: if (c->len) c->p[at] = 0x00; break;
    case 5: if (c->len) c->p[at] = 0xff; break;
    case 6: if (c->len) c->p[at] = (uint8_t)xs_next(&rng); break;
    case 7: { /* an extreme varint inserted */
        size_t k = pick(4);
        fuzz_splice(c, at, 0, extreme[k], extreme_len[k]);
        break;
    }
    case 8: { /* an extreme varint written over what is there */
        size_t k = pick(4), n = extreme_len[k] < left ? extreme_len[k] : left;
        if (n) memcpy(c->p + at, extreme[k], n);
        break;
    }
    case 9: c->len = at; break; /* the payload cut (signed again: a record cut short) */
    case 10: { /* a range duplicated */
        size_t n = 1 + pick(left < 24 ? left : 24);
        if (left == 0) break;
        if (n > left) n = left;
        uint8_t tmp[24];
        memcpy(tmp, c->p + at, n);
        fuzz_splice(c, pick(c->len + 1), 0, tmp, n);
        break;
    }
    case 11: /* a range dropped */
        if (left) fuzz_splice(c, at, 1 + pick(left < 24 ? left : 24), NULL, 0);
        break;
    case 12: /* a whole chunk duplicated */
        if (t->n < (int)(sizeof t->chunk / sizeof *t->chunk)) {
            size_t i = pick((size_t)t->n), j = pick((size_t)t->n + 1);
            buf_t copy = buf_of(t->chunk[i].p, t->chunk[i].len);
            memmove(&t->chunk[j + 1], &t->chunk[j], ((size_t)t->n - j) * sizeof *t->chunk);
            t->chunk[j] = copy;
            t->n++;
        }
        break;
    case 13: { /* a whole chunk dropped */
        size_t i = pick((size_t)t->n);
        free(t->chunk[i].p);
        memmove(&t->chunk[i], &t->chunk[i + 1], ((size_t)t->n - i - 1) * sizeof *t->chunk);
        t->n--;
        break;
    }
    case 14: { /* two chunks swapped */
        size_t i = pick((size_t)t->n), j = pick((size_t)t->n);
        buf_t x = t->chunk[i];
        t->chunk[i] = t->chunk[j];
        t->chunk[j] = x;
        break;
    }
    case 15: /* a header byte after the magic */
        t->hdr.p[NEAP_TRACE_MAGIC_LEN + pick(t->hdr.len - NEAP_TRACE_MAGIC_LEN)] =
            (uint8_t)(pick(4) == 0 ? 0xff : xs_next(&rng));
        break;
    case 16: /* the file cut anywhere */
        *cut = 1;
        *cut_at = (unsigned)pick(65536);
        break;
    default: /* a record's field: ids, sizes, offsets, deltas, counts */
        mutate_field(c);
        break;
    }
}

/* --- sections --------------------------------------------------------------------- */

static const char *make_trace;

static void fuzz(size_t count) {
    static const char *const kinds[] = {"basic",     "killed", "sampled", "grow",
                                        "grow-freed", "pinning", "base", "extremes", "marks",
                                        "python"};
    enum { NKINDS = sizeof kinds / sizeof *kinds };
    static trace_t base[NKINDS];
    for (int k = 0; k < NKINDS; k++) {
        char cmd[1200];
        const char *out = wpath("base.trc");
        snprintf(cmd, sizeof cmd, "'%s' %s '%s' >/dev/null", make_trace, kinds[k], out);
        CHECKF(system(cmd) == 0, "%s", cmd);
        size_t n;
        char *d = fuzz_read(out, &n);
        trace_parse(&base[k], (const uint8_t *)d, n, kinds[k]);
        free(d);
    }
    const char *seed_env = getenv("NEAP_FUZZ_SEED");
    uint64_t seed = seed_env ? strtoull(seed_env, NULL, 0) : 20261204;
    rng = xs_seed(seed);
    enum { BATCH = 100 };
    static input_t batch[BATCH];
    size_t nb = 0;
    for (size_t i = 0; i < count; i++) {
        int k = (int)pick(NKINDS), cut = 0;
        unsigned cut_at = 0;
        trace_t m;
        trace_copy(&m, &base[k]);
        for (size_t j = 1 + pick(4); j > 0; j--) mutate(&m, &cut, &cut_at);
        size_t len;
        uint8_t *d = trace_sign(&m, &len);
        if (cut) len = (size_t)((uint64_t)len * cut_at >> 16);
        input_t *in = &batch[nb++];
        char name[64];
        snprintf(name, sizeof name, "mutant-%zu.trc", nb);
        snprintf(in->path, sizeof in->path, "%s", wpath(name));
        snprintf(in->label, sizeof in->label, "mutant %zu of %s (seed %llu)", i, kinds[k],
                 (unsigned long long)seed);
        in->html = i % 4 == 0;
        in->at = (int)(i % 5);
        fuzz_write(in->path, d, len);
        free(d);
        trace_free(&m);
        if (nb == BATCH || i + 1 == count) {
            check_inputs(batch, nb);
            nb = 0;
        }
    }
    for (int k = 0; k < NKINDS; k++) trace_free(&base[k]);
    /* what the reports said (inputs run again after a failed batch count
     * twice): some must be errors (the damage met), some clean */
    size_t n, st[3] = {0, 0, 0};
    char *tally = fuzz_read(wpath("tally.txt"), &n);
    for (size_t i = 0; i < n; i++)
        if (tally[i] >= '0' && tally[i] <= '2') st[tally[i] - '0']++;
    free(tally);
    printf("test_report_fuzz: %zu mutants, %d failed; reports: %zu exit 0, %zu exit 1 (damage), "
           "%zu exit 2 (not a trace)\n", count, failures, st[0], st[1], st[2]);
    CHECKF(count < 100 || (st[0] > 0 && st[1] > 0), "the mutants never met the damage, or always");
}

/* Pinning's work is bounded by the blocks: a block that is not huge and
 * claims 2^62 bytes is refused at once (it was walked page by page: 2^50
 * pages), a huge one of 2^62 bytes is counted, a block at the top of the
 * address space is cut there. */
static void test_pinning(void) {
    _neap_pin_site_t site[2];
    const uint64_t q = (uint64_t)1 << 62;
    _neap_pin_block_t big = {.addr = 0x10000, .size = q, .site = 0, .huge = 0};
    memset(site, 0, sizeof site);
    errno = 0;
    CHECK(_neap_pinning(&big, 1, site, 2) == -1 && errno == EINVAL);
    /* the longest one that is not huge is placed: 1024 pages, 2 arenas */
    _neap_pin_block_t arena = {.addr = 0x7f0000200000, .size = NEAP_PIN_NONHUGE_MAX, .site = 1};
    memset(site, 0, sizeof site);
    CHECK(_neap_pinning(&arena, 1, site, 2) == 0);
    CHECKF(site[1].pages == 1024 && site[1].pages_alone == 1024 && site[1].arenas == 2,
           "%g pages, %llu arenas", site[1].pages, (unsigned long long)site[1].arenas);
    big.huge = 1;
    memset(site, 0, sizeof site);
    CHECK(_neap_pinning(&big, 1, site, 2) == 0);
    CHECK(site[0].pages == (double)(q >> NEAP_PIN_PAGE_SHIFT) && site[0].arenas == 0);
    _neap_pin_block_t top = {.addr = UINT64_MAX - 4095, .size = 8192, .site = 0};
    memset(site, 0, sizeof site);
    CHECK(_neap_pinning(&top, 1, site, 2) == 0);
    CHECKF(site[0].pages == 1 && site[0].pages_alone == 1 && site[0].arenas == 1, "%g pages",
           site[0].pages);
    printf("test_report_fuzz: pinning ok\n");
}

/* check_json itself: what it must take and what it must refuse. */
static void test_check_json(void) {
    static const char *const good[] = {
        "{}", "{\"a\": [1, -2.5, 3e10, true, false, null, \"x\\u001b\\\"\\\\\"]}\n",
        "{\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\": {\"b\": []}}"};
    static const char *const bad[] = {
        "", "[]", "{", "{\"a\": 1,}", "{\"a\" 1}", "{\"a\": 01}", "{\"a\": nan}", "{\"a\": 1.}",
        "{\"a\": \"\x01\"}", "{\"a\": \"\xff\"}", "{\"a\": \"\xed\xa0\x80\"}", "{\"a\": \"\xc0\xaf\"}",
        "{\"a\": \"\\x\"}", "{\"a\": 1} {}", "{\"a\": [1 2]}"};
    char why[128];
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        CHECKF(check_json(good[i], strlen(good[i]), why, sizeof why) == 0, "check_json refuses %s", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECKF(check_json(bad[i], strlen(bad[i]), why, sizeof why) != 0, "check_json takes '%s'", bad[i]);
}

static void usage(void) {
    fprintf(stderr, "usage: test_report_fuzz fuzz MAKE_TRACE [N] | regress FILE... | pinning\n");
    exit(2);
}

int main(int argc, char **argv) {
    if (argc < 2) usage();
    if (strcmp(argv[1], "pinning") == 0) {
        test_pinning();
        return test_status();
    }
    snprintf(dir, sizeof dir, "%s/neap-report-fuzz.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    CHECK(mkdtemp(dir) != NULL);
    setenv("NEAP_SYMBOLS_NO_LIBDW", "1", 1);
    const char *cpu = getenv("NEAP_FUZZ_CPU");
    if (cpu && atoi(cpu) > 0) cpu_limit = (unsigned)atoi(cpu);
    test_check_json();
    if (strcmp(argv[1], "fuzz") == 0 && (argc == 3 || argc == 4)) {
        make_trace = argv[2];
        fuzz(test_scaled(argc == 4 ? strtoul(argv[3], NULL, 10) : 3000));
    } else if (strcmp(argv[1], "regress") == 0 && argc >= 3) {
        for (int i = 2; i < argc; i++) {
            for (int html = 1; html >= 0; html--) { /* --html, then --json */
                input_t in = {.html = html};
                snprintf(in.path, sizeof in.path, "%s", argv[i]);
                snprintf(in.label, sizeof in.label, "%s", argv[i]);
                check_inputs(&in, 1);
            }
        }
        printf("test_report_fuzz: %d inputs, %d failed\n", argc - 2, failures);
    } else {
        usage();
    }
    if (failures) {
        fprintf(stderr, "test_report_fuzz: %d input(s) failed; kept in %s\n", failures, dir);
        return 1;
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return test_status();
}
