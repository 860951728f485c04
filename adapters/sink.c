/* sink.c - a run written through libtrainscope or straight into a store
 * (see sink.h).
 */
#include "sink.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store.h"
#include "trainscope.h"

/* Publishing in bulk: wait for acknowledgements every so many points, well
 * below the ring's 2^20 samples, so a fast importer never drops one. */
#define FLUSH_EVERY (1u << 17)
/* Direct store writes: commit every so many points. */
#define COMMIT_EVERY (1u << 16)

typedef struct series_slot {
    char *name;
    int64_t id;
} series_slot;

struct tad_sink {
    tad_sink_opts o;
    ts_run *run;                /* publishing */
    tss_store *st;              /* direct */
    int64_t run_id;
    int rank;
    series_slot *series;
    size_t nseries, capseries;
    uint64_t since_sync;
    uint64_t points, dropped;
    int open;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

tad_sink *tad_sink_open(const tad_sink_opts *opts, char *err, size_t errlen)
{
    tad_sink *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->o = *opts;
    if (opts->store) {
        tss_open_opts so = {.writer = 1, .sync_full = 1};
        char why[512];
        int rc = tss_open(&s->st, opts->store, &so, why, sizeof why);
        if (rc < 0) {
            snprintf(err, errlen, "%s%s", why,
                     rc == -EBUSY ? " (publish to that collector with --endpoint instead of --store)"
                                  : "");
            free(s);
            return NULL;
        }
    }
    return s;
}

static void free_series(tad_sink *s)
{
    for (size_t i = 0; i < s->nseries; i++)
        free(s->series[i].name);
    s->nseries = 0;
}

int tad_sink_begin(tad_sink *s, const char *name, int rank, int world_size, char *err,
                   size_t errlen)
{
    s->rank = rank;
    s->since_sync = 0;
    free_series(s);
    if (s->st) {
        if (tss_run_open(s->st, s->o.project, name, NULL, world_size, now_ns(), &s->run_id) < 0) {
            snprintf(err, errlen, "creating run '%s': %s", name, tss_errmsg(s->st));
            return -1;
        }
        s->open = 1;
        return 0;
    }
    ts_options o = ts_options_default();
    o.endpoint = s->o.endpoint;
    o.run = name;
    o.project = s->o.project;
    o.rank = rank;
    o.world_size = world_size;
    int rc = ts_open(&s->run, &o);
    if (rc < 0) {
        snprintf(err, errlen, "cannot start run '%s'%s%s: %s", name, s->o.endpoint ? " on " : "",
                 s->o.endpoint ? s->o.endpoint : "", ts_strerror(rc));
        return -1;
    }
    /* ts_flush also waits for the collector to have stored the run. */
    if (s->o.connect_ms > 0 && ts_flush(s->run, s->o.connect_ms) < 0) {
        snprintf(err, errlen,
                 "no collector answered at %s within %d ms (start one with `trainscope collect`, "
                 "or write a store directly with --store FILE)",
                 s->o.endpoint ? s->o.endpoint : "the default endpoint", s->o.connect_ms);
        ts_close(s->run, 0);
        s->run = NULL;
        return -1;
    }
    s->open = 1;
    return 0;
}

static int64_t series_for(tad_sink *s, const char *metric, char *err, size_t errlen)
{
    for (size_t i = 0; i < s->nseries; i++)
        if (strcmp(s->series[i].name, metric) == 0)
            return s->series[i].id;
    if (s->nseries == s->capseries) {
        size_t ncap = s->capseries ? s->capseries * 2 : 16;
        series_slot *g = realloc(s->series, ncap * sizeof *g);
        if (!g) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        s->series = g;
        s->capseries = ncap;
    }
    int64_t id;
    if (tss_series_open(s->st, s->run_id, s->rank, metric, &id) < 0) {
        snprintf(err, errlen, "creating series '%s': %s", metric, tss_errmsg(s->st));
        return -1;
    }
    char *copy = strdup(metric);
    if (!copy) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->series[s->nseries].name = copy;
    s->series[s->nseries].id = id;
    s->nseries++;
    return id;
}

static int log_store(tad_sink *s, const char *metric, int64_t step, int64_t t, double v, char *err,
                     size_t errlen)
{
    int64_t id = series_for(s, metric, err, errlen);
    if (id < 0)
        return -1;
    int rc = tss_append(s->st, id, step, t, v);
    if (rc < 0) {
        snprintf(err, errlen, "storing %s at step %" PRId64 ": %s", metric, step, tss_errmsg(s->st));
        return -1;
    }
    if (rc == 1) {
        /* Same record the collector keeps when a publisher's steps go back. */
        char text[1200];
        snprintf(text, sizeof text, "steps went back to %" PRId64 " (%s)", step, metric);
        tss_event_add(s->st, s->run_id, s->rank, step, t, "resume", text);
    }
    if (++s->since_sync >= COMMIT_EVERY) {
        s->since_sync = 0;
        if (tss_commit(s->st) < 0) {
            snprintf(err, errlen, "commit failed: %s", tss_errmsg(s->st));
            return -1;
        }
    }
    return 0;
}

/* Reading a backlog (a long log file) can outrun the collector; the ring
 * holds 2^20 samples, so past half of that wait for acknowledgements, in
 * slices that let a signal end the wait. */
static void wait_until_caught_up(tad_sink *s)
{
    ts_stats st;
    ts_get_stats(s->run, &st);
    if (st.logged - st.acked < (1u << 19))
        return;
    while (ts_flush(s->run, 200) == TS_ETIMEDOUT && !(s->o.stop && *s->o.stop))
        ;
}

int tad_sink_log(tad_sink *s, const char *metric, int64_t step, int64_t t_ns, double value,
                 char *err, size_t errlen)
{
    if (s->st) {
        if (log_store(s, metric, step, t_ns ? t_ns : now_ns(), value, err, errlen) < 0)
            return -1;
        s->points++;
        return 0;
    }
    int id = ts_metric(s->run, metric);
    if (id < 0) {
        snprintf(err, errlen, "metric name '%s': %s", metric, ts_strerror(id));
        return -1;
    }
    if (t_ns && ++s->since_sync >= FLUSH_EVERY) {
        s->since_sync = 0;
        int rc = ts_flush(s->run, s->o.timeout_ms);
        if (rc < 0) {
            snprintf(err, errlen, "the collector%s%s did not acknowledge in time: %s",
                     s->o.endpoint ? " at " : "", s->o.endpoint ? s->o.endpoint : "",
                     ts_strerror(rc));
            return -1;
        }
    }
    if (!t_ns && s->o.wait_when_behind && (++s->since_sync & 4095) == 0)
        wait_until_caught_up(s);
    int rc = t_ns ? ts_log_at(s->run, id, step, t_ns, value) : ts_log_id(s->run, id, step, value);
    if (rc == TS_EDROPPED) {
        s->dropped++; /* counted by the library too and stored as a gap */
        return 0;
    }
    if (rc < 0) {
        snprintf(err, errlen, "logging %s: %s", metric, ts_strerror(rc));
        return -1;
    }
    s->points++;
    return 0;
}

int tad_sink_event(tad_sink *s, int64_t step, const char *kind, const char *text)
{
    if (s->st)
        return tss_event_add(s->st, s->run_id, s->rank, step, now_ns(), kind, text) < 0 ? -1 : 0;
    return ts_event(s->run, step, kind, text) < 0 ? -1 : 0;
}

int tad_sink_end(tad_sink *s, const char *status, char *err, size_t errlen)
{
    if (!s->open)
        return 0;
    s->open = 0;
    if (s->st) {
        if (tss_run_set_status(s->st, s->run_id, status, now_ns()) < 0 || tss_commit(s->st) < 0) {
            snprintf(err, errlen, "finishing the run: %s", tss_errmsg(s->st));
            return -1;
        }
        return 0;
    }
    ts_run *run = s->run;
    s->run = NULL;
    int rc = ts_close_status(run, s->o.timeout_ms, status);
    if (rc < 0) {
        snprintf(err, errlen,
                 "the collector%s%s did not acknowledge everything within %d ms (%s); "
                 "is it running?",
                 s->o.endpoint ? " at " : "", s->o.endpoint ? s->o.endpoint : "", s->o.timeout_ms,
                 ts_strerror(rc));
        return -1;
    }
    return 0;
}

uint64_t tad_sink_points(const tad_sink *s)
{
    return s->points;
}

uint64_t tad_sink_dropped(const tad_sink *s)
{
    return s->dropped;
}

void tad_sink_close(tad_sink *s)
{
    if (!s)
        return;
    char err[256];
    if (s->open)
        tad_sink_end(s, "interrupted", err, sizeof err);
    free_series(s);
    free(s->series);
    tss_close(s->st);
    free(s);
}
