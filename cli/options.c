/* options.c -- the helpers every subcommand of the `neap` command parses
 * its options with (cli.h): neap_cli_getopt (getopt_long with messages that
 * name the option), neap_cli_number (a numeric value checked against its
 * range) and neap_cli_parse_count.  Apart from main.c so that the
 * subcommands link without the dispatcher (the report fuzz test calls
 * neap_cli_report in-process).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* The digits at *p (at least one) into *v, *p moved past them: 0, or -1
 * when there is no digit or the number overflows. */
static int cli_digits(const char **p, unsigned long long *v) {
    const char *q = *p;
    unsigned long long n = 0;
    if (*q < '0' || *q > '9') return -1;
    for (; *q >= '0' && *q <= '9'; q++) {
        unsigned d = (unsigned)(*q - '0');
        if (n > (ULLONG_MAX - d) / 10) return -1;
        n = n * 10 + d;
    }
    *p = q;
    *v = n;
    return 0;
}

int neap_cli_parse_count(const char *text, unsigned long long min, unsigned long long max,
                         unsigned long long *out) {
    const char *p = text;
    unsigned long long v;
    if (cli_digits(&p, &v) != 0) return -1;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p < '0' || *p > '9') return -1;
        unsigned exp = 0;
        for (; *p >= '0' && *p <= '9'; p++) {
            exp = exp * 10 + (unsigned)(*p - '0');
            if (exp > 30) return -1;
        }
        for (unsigned k = 0; k < exp && v != 0; k++) {
            if (v > ULLONG_MAX / 10) return -1;
            v *= 10;
        }
    }
    if (*p != '\0' || v < min || v > max) return -1;
    *out = v;
    return 0;
}

/* "4G", "512K", "3M" when v is a whole number of them, else the digits. */
static void cli_size_text(char *buf, size_t cap, unsigned long long v) {
    static const char units[] = "GMK";
    for (int k = 0; k < 3; k++) {
        unsigned long long u = 1ULL << (10 * (3 - k));
        if (v != 0 && v % u == 0) {
            snprintf(buf, cap, "%llu%c", v / u, units[k]);
            return;
        }
    }
    snprintf(buf, cap, "%llu", v);
}

/* Digits with an optional K, M or G suffix (powers of 1024), itself
 * optionally followed by "B" or "iB" in either case: 0 and *out, or -1. */
static int cli_parse_bytes(const char *text, unsigned long long *out) {
    const char *p = text;
    unsigned long long v;
    if (cli_digits(&p, &v) != 0) return -1;
    if (*p != '\0') {
        const char *units = "kmg";
        const char *u = strchr(units, *p | 0x20);
        if (u == NULL || *p == '\0') return -1;
        unsigned shift = 10 * (unsigned)(u - units + 1);
        if (v > (ULLONG_MAX >> shift)) return -1;
        v <<= shift;
        p++;
        if ((p[0] | 0x20) == 'i' && (p[1] | 0x20) == 'b' && p[2] == '\0') p += 2;
        else if ((p[0] | 0x20) == 'b' && p[1] == '\0') p += 1;
        if (*p != '\0') return -1;
    }
    *out = v;
    return 0;
}

int neap_cli_number(const char *command, const char *option, const char *text,
                    neap_cli_unit_t unit, unsigned long long min, unsigned long long max,
                    unsigned long long *out) {
    unsigned long long v;
    int ok = unit == NEAP_CLI_BYTES ? cli_parse_bytes(text, &v) == 0
                                    : neap_cli_parse_count(text, 0, ULLONG_MAX, &v) == 0;
    char lo[32], hi[32];
    if (unit == NEAP_CLI_BYTES) {
        cli_size_text(lo, sizeof lo, min);
        cli_size_text(hi, sizeof hi, max);
    } else {
        snprintf(lo, sizeof lo, "%llu", min);
        snprintf(hi, sizeof hi, "%llu", max);
    }
    if (!ok && (text[0] == '\0' || strncmp(text, "--", 2) == 0)) {
        /* "--frames --trace F": the next option was taken as the value */
        fprintf(stderr, "neap %s: %s needs a value (%s from %s to %s), not '%s'\n", command,
                option, unit == NEAP_CLI_BYTES ? "a size" : "a whole number", lo, hi, text);
        return -1;
    }
    if (!ok) {
        fprintf(stderr, "neap %s: %s wants %s from %s to %s, not '%s'\n", command, option,
                unit == NEAP_CLI_BYTES ? "a size (bytes, with an optional K, M or G)"
                                       : "a whole number",
                lo, hi, text);
        return -1;
    }
    if (v < min || v > max) {
        fprintf(stderr, "neap %s: %s %s is out of range: it must be from %s to %s\n", command,
                option, text, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

/* The long option whose val is `val`, or NULL. */
static const struct option *cli_long_by_val(const struct option *longopts, int val) {
    for (const struct option *o = longopts; o != NULL && o->name != NULL; o++)
        if (o->flag == NULL && o->val == val) return o;
    return NULL;
}

int neap_cli_getopt(const char *command, int argc, char **argv, const char *shortopts,
                    const struct option *longopts, int in_order) {
    char spec[128];
    /* '+': stop at the first operand; ':': a missing value returns ':' */
    snprintf(spec, sizeof spec, "%s:%s", in_order ? "+" : "", shortopts);
    char who[64];
    snprintf(who, sizeof who, "neap%s%s", command ? " " : "", command ? command : "");
    opterr = 0;
    int c = getopt_long(argc, argv, spec, longopts, NULL);
    if (c != '?' && c != ':') return c;
    /* Long options are whole elements, already passed: argv[optind - 1].
     * A short option may sit inside a cluster ("-qz"): named by optopt.
     * optopt is 0 for an unknown long option, else the option's val (long-
     * only options have vals above 255, so a char in optopt that no long
     * option has as val is an unknown short option). */
    const char *elem = optind > 0 && optind <= argc ? argv[optind - 1] : "";
    int is_long = strncmp(elem, "--", 2) == 0;
    int eq = is_long ? (int)strcspn(elem, "=") : 0;
    const struct option *lo = optopt != 0 ? cli_long_by_val(longopts, optopt) : NULL;
    if (c == ':') {
        if (is_long)
            fprintf(stderr, "%s: option '%.*s' needs a value\n", who, eq, elem);
        else
            fprintf(stderr, "%s: option '-%c' needs a value\n", who, optopt);
    } else if (optopt == 0) {
        size_t matches = 0;
        for (const struct option *o = longopts; is_long && o->name != NULL; o++)
            matches += strncmp(o->name, elem + 2, (size_t)eq - 2) == 0;
        fprintf(stderr, "%s: %s option '%.*s'\n", who, matches > 1 ? "ambiguous" : "unknown",
                is_long ? eq : (int)strlen(elem), elem);
    } else if (lo != NULL) {
        fprintf(stderr, "%s: option '--%s' takes no value\n", who, lo->name);
    } else {
        fprintf(stderr, "%s: unknown option '-%c'\n", who, optopt);
    }
    fprintf(stderr, "%s: see '%s --help'\n", who, who);
    return '?';
}
