/* trace_read.h -- the streaming decoder of the neap trace format, for
 * `neap report` (cli/report.c) and the command's tests.  The format itself,
 * its record tags and its encoder are src/trace/tracefmt.h, in the library;
 * the decoder is here, in the command, because only the command reads
 * traces: a traced process never does.
 *
 *   _neap_trace_open(path) --header, chunk index--> reader
 *   _neap_trace_next(reader) --> one record at a time, the chunks of every
 *       thread merged by (clock, position in the file); 0 at a stop, with
 *       reader.status saying why (CLEAN, EOF, TRUNCATED, CORRUPT, IOERROR)
 *   _neap_trace_close(reader)
 *
 * Every record before a stop has been returned; the stop's message names
 * the byte offset of the problem.  The decoder allocates with malloc (it
 * runs in the neap command, never inside a traced process).
 */
#ifndef NEAP_CLI_TRACE_READ_H
#define NEAP_CLI_TRACE_READ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "trace/tracefmt.h"

/* Where reading stands, or why it stopped. */
typedef enum {
    NEAP_TRACE_READING = 0,    /* more records may follow */
    NEAP_TRACE_CLEAN,          /* stopped after the 'E' record */
    NEAP_TRACE_EOF,            /* the file ended at a chunk boundary without 'E':
                                  the program was killed, or is still running */
    NEAP_TRACE_TRUNCATED,      /* the file ends inside a chunk */
    NEAP_TRACE_CORRUPT,        /* a bad chunk or record */
    NEAP_TRACE_IOERROR,        /* read error */
    /* _neap_trace_open's failures */
    NEAP_TRACE_NOFILE,         /* cannot open the file */
    NEAP_TRACE_NOTTRACE,       /* does not start with the magic */
    NEAP_TRACE_BADHEADER,      /* short header, or a version this reader does not know */
} _neap_trace_status_t;

/* One decoded record.  Pointers are into the reader and stay valid until
 * the next call of _neap_trace_next. */
typedef struct _neap_trace_rec {
    int tag;           /* NEAP_TREC_* */
    uint64_t offset;   /* byte offset of the record's tag in the file */
    union {
        struct { uint64_t start, end, offset; const char *path; size_t path_len; } module;
        struct { uint64_t id; size_t nframes; const uint64_t *frames; } stack;
        struct { uint64_t stack, size, addr; } alloc;
        struct { uint64_t addr; } free;
        struct { uint64_t stack, size, offset, addr; } grow;
        struct { uint64_t old_addr, new_addr; } move;
        struct { uint64_t ms, rss, live; } tick;
        struct { uint32_t how; int64_t value; } end;
        struct { uint64_t id; uint32_t line; const char *file, *func;
                 size_t file_len, func_len; } pyframe;   /* names not NUL-terminated */
        struct { uint64_t ms; const char *label; size_t label_len; } mark;
    };
} _neap_trace_rec_t;

/* A chunk of the file, as the reader's index knows it, and (while open)
 * where decoding stands in it. */
typedef struct _neap_trace_chunk {
    uint64_t offset;           /* of its header in the file */
    uint64_t clock;            /* its first 'C' record's clock (0 without) */
    uint32_t len, crc;         /* payload bytes, stored CRC */
    uint8_t *payload;          /* malloc'd while open */
    size_t pos;                /* next record in the payload */
    uint64_t prev_alloc;       /* delta bases, as the encoder's */
    uint64_t prev_free;
} _neap_trace_chunk_t;

/* A trace being read.  Opening indexes the chunks (their headers and first
 * bytes only); reading merges them by (clock, file position), holding open
 * only the chunks whose records may come next: one at a time for a
 * single-threaded program, about one per thread otherwise. */
typedef struct _neap_trace_reader {
    FILE *f;                   /* the file, NULL once closed */
    _neap_trace_header_t hdr;  /* hdr.cmdline points to cmdline below */
    char *cmdline;             /* the command line, NUL-terminated copy */
    uint64_t file_size;        /* at open (a file still growing is read to its size then) */
    uint64_t consumed;         /* bytes of the file read so far (header and chunks) */
    uint64_t chunks;           /* chunks read whole */
    _neap_trace_chunk_t *index;   /* every good chunk, sorted by (clock, offset) */
    size_t nindex, next_open;  /* index entries; the first not opened yet */
    size_t *open;              /* a min-heap of open chunks (index positions) */
    size_t nopen;
    uint64_t good_end;         /* file offset where the index stopped */
    _neap_trace_status_t end_status; /* why it stopped there (EOF, TRUNCATED, ...) */
    char end_message[256];
    int has_end;               /* an 'E' was read: returned once the rest is */
    _neap_trace_rec_t end_rec;
    uint64_t end_tail;         /* bytes after 'E' in its chunk */
    uint64_t end_chunk;        /* the offset of E's chunk */
    uint64_t *frames;          /* the last stack's frames */
    _neap_trace_status_t status;
    char message[256];         /* why reading stopped or open failed ("" if clean);
                                  after a clean end, a note on trailing bytes */
} _neap_trace_reader_t;

/* Opens path and reads its header.  Returns 0, or -1 with r->status
 * (NOFILE, NOTTRACE, BADHEADER, IOERROR) and r->message saying what was
 * found where.  _neap_trace_close must be called either way. */
int _neap_trace_open(_neap_trace_reader_t *r, const char *path);

/* The next record: 1 with *rec filled, or 0 when reading stops; then
 * r->status says why (CLEAN, EOF, TRUNCATED, CORRUPT, IOERROR) and
 * r->message describes a TRUNCATED, CORRUPT or IOERROR stop with its byte
 * offset.  Every record before the stop has been returned.  Calls after a
 * stop return 0 again. */
int _neap_trace_next(_neap_trace_reader_t *r, _neap_trace_rec_t *rec);

/* Frees what the reader holds and closes the file. */
void _neap_trace_close(_neap_trace_reader_t *r);

/* "clean end", "truncated", ... for messages. */
const char *_neap_trace_status_name(_neap_trace_status_t s);

#endif /* NEAP_CLI_TRACE_READ_H */
