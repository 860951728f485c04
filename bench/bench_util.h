/* bench_util.h - what the benchmark programs share: a monotonic clock, a
 * comparator for medians, the removal of a scratch SQLite file with its WAL
 * and shared-memory files, and (for programs that include store.h first) a
 * new writer store holding one run and one series. Header-only: each
 * benchmark is one file plus this.
 */
#ifndef TRAINSCOPE_BENCH_UTIL_H
#define TRAINSCOPE_BENCH_UTIL_H

#include <stdio.h>
#include <time.h>
#include <unistd.h>

/* Seconds on the monotonic clock. */
static inline double bench_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* qsort comparator of doubles, for medians and percentiles. */
static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Remove a SQLite file and its -wal and -shm files. */
static inline void bench_unlink_db(const char *path)
{
    char side[4200];
    unlink(path);
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
}

#ifdef TRAINSCOPE_STORE_H
/* Create the store at path as its writer with run "bench/<run>" and one
 * series; 0 and *st, *sid, or a negative error already printed for `who`. */
static inline int bench_store_series(const char *who, const char *path, const char *run, const char *series,
                                     tss_store **st, int64_t *sid)
{
    tss_open_opts o = {.writer = 1};
    char err[512];
    int64_t run_id;
    int rc = tss_open(st, path, &o, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", who, err);
        return rc;
    }
    rc = tss_run_open(*st, "bench", run, NULL, 1, 0, &run_id);
    if (rc == 0)
        rc = tss_series_open(*st, run_id, 0, series, sid);
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", who, tss_errmsg(*st));
        tss_close(*st);
        *st = NULL;
    }
    return rc;
}
#endif

#endif
