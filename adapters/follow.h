/* follow.h - read a trainer's output line by line: a pipe or stdin until it
 * ends, or a log file followed like `tail -F` (tad_ prefix).
 *
 * A followed file is read from its start and then polled as it grows. When
 * its path names another file (a new inode: logrotate, or a trainer that
 * recreated it) the old file is drained and the new one is read from its
 * start; when the file gets shorter than what was read (truncated in place,
 * `> log`) reading restarts at offset 0. Both are reported to the caller.
 * A line longer than TAD_LINE_MAX is delivered in pieces.
 *
 * Stopping: tad_follow_next returns 0 when *stop becomes non-zero (checked
 * after every poll and after any read interrupted by a signal; install the
 * handler without SA_RESTART), at the end of a pipe, or at end of file with
 * once set.
 */
#ifndef TRAINSCOPE_FOLLOW_H
#define TRAINSCOPE_FOLLOW_H

#include <signal.h>
#include <stddef.h>

#define TAD_LINE_MAX (1 << 20)

enum {
    TAD_FOLLOW_END = 0,        /* no more lines */
    TAD_FOLLOW_LINE = 1,       /* *line holds one line */
    TAD_FOLLOW_ROTATED = 2,    /* the path now names a new file, read from its start */
    TAD_FOLLOW_TRUNCATED = 3,  /* the file shrank; reading restarts at 0 */
};

typedef struct tad_follow tad_follow;

/* path "-" is stdin. once: stop at end of file instead of waiting for more
 * (files only; a pipe always ends at its end). poll_ms: how often a file at
 * its end is checked, <= 0 means 100. Returns NULL with a sentence in err
 * when the file cannot be opened or is a directory. */
tad_follow *tad_follow_open(const char *path, int once, int poll_ms, char *err, size_t errlen);

/* The next event (enum above), or -1 on a read error (err holds why). For
 * TAD_FOLLOW_LINE: *line is NUL-terminated without its newline, *len its
 * length, *had_newline whether a newline ended it (the last line of a
 * stream may have none); valid until the next call. */
int tad_follow_next(tad_follow *f, volatile sig_atomic_t *stop, char **line, size_t *len,
                    int *had_newline, char *err, size_t errlen);

/* 1 when reading a pipe or terminal (stdin or a FIFO path), 0 for a file. */
int tad_follow_is_stream(const tad_follow *f);
void tad_follow_close(tad_follow *f);

#endif
