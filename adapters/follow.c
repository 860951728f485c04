/* follow.c - line reader for pipes and growing, rotating log files (see
 * follow.h).
 *
 * Polling rather than inotify: it works the same on every file system
 * (NFS, overlay, bind mounts) where training logs live, and at 100 ms it
 * costs one fstat and one stat per poll. Lines are cut in one buffer that
 * grows to TAD_LINE_MAX, so a steady stream costs no allocation per line.
 */
#include "follow.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct tad_follow {
    char *path;               /* NULL for stdin */
    int fd;
    int stream;               /* pipe, FIFO or terminal: no polling, no rotation */
    int once;
    int poll_ms;
    dev_t dev;
    ino_t ino;
    off_t offset;             /* bytes read from the current file */
    char *buf;
    size_t cap, start, end;   /* unread bytes are buf[start, end) */
    int pending;              /* an event to report after the line just delivered */
};

static int open_path(tad_follow *f, char *err, size_t errlen)
{
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", f->path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s is a directory, not a log file", f->path);
        close(fd);
        return -1;
    }
    f->fd = fd;
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    f->offset = 0;
    f->stream = S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode) || S_ISSOCK(st.st_mode);
    return 0;
}

tad_follow *tad_follow_open(const char *path, int once, int poll_ms, char *err, size_t errlen)
{
    tad_follow *f = calloc(1, sizeof *f);
    if (!f)
        goto fail_alloc;
    f->cap = 64 * 1024;
    f->buf = malloc(f->cap);
    if (!f->buf)
        goto fail_alloc;
    f->once = once;
    f->poll_ms = poll_ms > 0 ? poll_ms : 100;
    if (strcmp(path, "-") == 0) {
        f->fd = STDIN_FILENO;
        f->stream = 1;
        return f;
    }
    f->path = strdup(path);
    if (!f->path)
        goto fail_alloc;
    if (open_path(f, err, errlen) < 0)
        goto fail;
    return f;
fail_alloc:
    snprintf(err, errlen, "out of memory");
fail:
    if (f) {
        free(f->path);
        free(f->buf);
        free(f);
    }
    return NULL;
}

int tad_follow_is_stream(const tad_follow *f)
{
    return f->stream;
}

void tad_follow_close(tad_follow *f)
{
    if (!f)
        return;
    if (f->path && f->fd >= 0)
        close(f->fd);
    free(f->path);
    free(f->buf);
    free(f);
}

/* Reads more bytes into the buffer: >0 read, 0 at end, -1 error, -2 a
 * signal interrupted a blocking read. */
static ssize_t fill(tad_follow *f)
{
    if (f->start > 0 && f->start == f->end)
        f->start = f->end = 0;
    if (f->end + 1 >= f->cap) {
        if (f->start > 0) {
            memmove(f->buf, f->buf + f->start, f->end - f->start);
            f->end -= f->start;
            f->start = 0;
        } else if (f->cap < TAD_LINE_MAX) {
            size_t ncap = f->cap * 2;
            char *nb = realloc(f->buf, ncap);
            if (!nb) {
                errno = ENOMEM;
                return -1;
            }
            f->buf = nb;
            f->cap = ncap;
        }
    }
    ssize_t n = read(f->fd, f->buf + f->end, f->cap - f->end - 1);
    if (n < 0 && errno == EINTR)
        return -2;
    if (n > 0) {
        f->end += (size_t)n;
        f->offset += n;
    }
    return n;
}

/* Hands out buf[start, cut) as a line. */
static int deliver(tad_follow *f, size_t cut, int newline, char **line, size_t *len, int *had_nl)
{
    size_t l = cut - f->start;
    f->buf[cut] = 0;
    *line = f->buf + f->start;
    *len = l;
    *had_nl = newline;
    f->start = cut + (newline ? 1 : 0);
    return TAD_FOLLOW_LINE;
}

/* At the end of the current file: truncated, rotated, or just no news. */
static int check_file(tad_follow *f, char *err, size_t errlen)
{
    struct stat cur, named;
    if (fstat(f->fd, &cur) == 0 && cur.st_size < f->offset) {
        lseek(f->fd, 0, SEEK_SET);
        f->offset = 0;
        f->start = f->end = 0;
        return TAD_FOLLOW_TRUNCATED;
    }
    if (stat(f->path, &named) != 0)
        return 0; /* renamed away and not recreated yet: keep the old one */
    if (named.st_dev == f->dev && named.st_ino == f->ino)
        return 0;
    int old = f->fd;
    if (open_path(f, err, errlen) < 0)
        return 0; /* it vanished again between stat and open: try next poll */
    close(old);
    return TAD_FOLLOW_ROTATED;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL); /* a signal ends it early: the caller checks stop */
}

int tad_follow_next(tad_follow *f, volatile sig_atomic_t *stop, char **line, size_t *len,
                    int *had_newline, char *err, size_t errlen)
{
    if (f->pending) {
        int ev = f->pending;
        f->pending = 0;
        return ev;
    }
    for (;;) {
        char *nl = memchr(f->buf + f->start, '\n', f->end - f->start);
        if (nl)
            return deliver(f, (size_t)(nl - f->buf), 1, line, len, had_newline);
        if (f->end - f->start >= TAD_LINE_MAX - 1)
            return deliver(f, f->end, 0, line, len, had_newline);
        if (*stop)
            return TAD_FOLLOW_END;
        ssize_t n = fill(f);
        if (n > 0)
            continue;
        if (n == -2)
            continue; /* interrupted: loop checks stop */
        if (n < 0) {
            snprintf(err, errlen, "reading %s: %s", f->path ? f->path : "stdin", strerror(errno));
            return -1;
        }
        /* End of what is there now. */
        if (f->stream || f->once) {
            if (f->end > f->start)
                return deliver(f, f->end, 0, line, len, had_newline);
            return TAD_FOLLOW_END;
        }
        int ev = check_file(f, err, errlen);
        if (ev == TAD_FOLLOW_ROTATED && f->end > f->start) {
            /* the old file ended without a newline: its last line is whole;
             * report the rotation on the next call */
            f->pending = ev;
            return deliver(f, f->end, 0, line, len, had_newline);
        }
        if (ev)
            return ev;
        sleep_ms(f->poll_ms);
    }
}
