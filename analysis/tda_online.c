/* tda_online.c - detectors in the collector's ingest path (contract and the
 * why: tda_online.h). */
#include "tda_online.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tda_alert.h"
#include "wire.h"

#define STORE_CAP_PER_SERIES 100

/* Detector state and identity of one series, by series id. */
typedef struct ser {
    tda_series det;
    tss_series_name id;         /* run, rank, metric name */
    uint32_t stored;            /* findings stored for it */
    uint8_t ready;              /* det initialised */
    uint8_t compare;            /* steptime or throughput: compared across ranks */
    uint8_t straggling;         /* a straggler finding was made; re-armed when it recovers */
    uint32_t since_check;       /* points since the last comparison */
    int64_t sid;
} ser;

#define STRAGGLE 0.15           /* slower than the other ranks' median by this much */
#define STRAGGLE_EVERY 128      /* points of a series between two comparisons */

/* A run the watcher looks after: when it last sent points. */
typedef struct watched {
    int64_t run_id;
    int64_t last_ms;            /* monotonic ms of its last BATCH */
    int64_t last_step, last_t_ns;
    int reported;               /* a stall was reported since its last BATCH */
    char name[2 * TDA_NAME_MAX];
} watched;

#define PENDING_MAX 64

struct tda_online {
    tda_rules rules;
    /* Stall watcher: a thread that notices runs without data for stall_s
     * while their status in the store is still "running" (no BYE). It reads
     * the store through a reader handle of its own; the findings it makes
     * are alerted at once and stored by the ingest thread (the writer) at
     * its next BATCH. */
    char *store_path;
    double stall_s;
    pthread_t watcher;
    int watcher_started, stop;
    pthread_mutex_t mu;         /* runs, pending, stop */
    pthread_cond_t cv;
    watched *runs;
    size_t nruns, capruns;
    tda_finding pending[PENDING_MAX];
    int npending;
    tda_alert *alert;
    int quiet;
    ser **sers;                 /* indexed by series id */
    size_t nsers;
    tda_online_stats stats;
};

void tda_online_opts_init(tda_online_opts *o)
{
    *o = (tda_online_opts){.alert_interval_s = 1, .alert_burst = 5, .stall_s = 60};
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Ingest thread, once per BATCH: the run is alive. */
static void watch_touch(tda_online *d, const ser *s, int64_t step, int64_t t_ns)
{
    if (d->stall_s <= 0)
        return;
    pthread_mutex_lock(&d->mu);
    size_t i = 0;
    while (i < d->nruns && d->runs[i].run_id != s->id.run_id)
        i++;
    if (i == d->nruns && d->nruns == d->capruns) {
        size_t nc = d->capruns ? 2 * d->capruns : 16;
        watched *nr = realloc(d->runs, nc * sizeof *nr);
        if (!nr) {
            pthread_mutex_unlock(&d->mu);
            return;
        }
        d->runs = nr;
        d->capruns = nc;
    }
    if (i == d->nruns) {
        d->nruns++;
        d->runs[i] = (watched){.run_id = s->id.run_id};
        snprintf(d->runs[i].name, sizeof d->runs[i].name, "%s", s->id.run);
    }
    d->runs[i].last_ms = mono_ms();
    d->runs[i].last_step = step;
    d->runs[i].last_t_ns = t_ns;
    d->runs[i].reported = 0;
    pthread_mutex_unlock(&d->mu);
}

typedef struct status_ctx {
    int64_t run_id;
    int running;
} status_ctx;

static int on_run(void *ctx, const tss_run *r)
{
    status_ctx *c = ctx;
    if (r->id == c->run_id)
        c->running = strcmp(r->status, "running") == 0;
    return 0;
}

/* 1 when the store says the run is still running (it has not said BYE). */
static int still_running(tda_online *d, tss_store **rd, tss_chunks **q, int64_t run_id)
{
    char err[256];
    if (!*rd && tss_open(rd, d->store_path, NULL, err, sizeof err) < 0)
        return 0;
    if (!*q && tss_chunks_open(*rd, q) < 0)
        return 0;
    status_ctx c = {.run_id = run_id};
    if (tss_chunks_runs(*q, on_run, &c) < 0)
        return 0;
    return c.running;
}

static void *watch_thread(void *arg)
{
    tda_online *d = arg;
    tss_store *rd = NULL;
    tss_chunks *q = NULL;
    pthread_mutex_lock(&d->mu);
    while (!d->stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 250 * 1000000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&d->cv, &d->mu, &until);
        int64_t now = mono_ms();
        for (size_t i = 0; i < d->nruns && !d->stop; i++) {
            watched w = d->runs[i];
            double silent = (double)(now - w.last_ms) / 1000;
            if (w.reported || silent < d->stall_s)
                continue;
            /* The store read happens without the lock: ingest never waits on it. */
            pthread_mutex_unlock(&d->mu);
            int running = still_running(d, &rd, &q, w.run_id);
            pthread_mutex_lock(&d->mu);
            if (i >= d->nruns || d->runs[i].run_id != w.run_id || d->runs[i].last_ms != w.last_ms)
                continue;   /* data arrived meanwhile */
            d->runs[i].reported = 1;
            if (!running)
                continue;
            tda_finding f = {.kind = TDA_STALLED, .severity = TDA_CRITICAL, .run_id = w.run_id, .rank = -1,
                             .step_first = w.last_step, .step_last = w.last_step, .t_ns = w.last_t_ns,
                             .value = silent, .baseline = NAN, .scale = NAN, .score = silent,
                             .threshold = d->stall_s};
            snprintf(f.run, sizeof f.run, "%s", w.name);
            snprintf(f.message, sizeof f.message,
                     "stalled: still running but no data for %.0f s (last step %" PRId64 ")", silent,
                     w.last_step);
            if (d->npending < PENDING_MAX)
                d->pending[d->npending++] = f;
            char *json = tda_finding_json_text(&f);
            if (json && d->alert)
                tda_alert_push(d->alert, json);
            if (json && !d->quiet)
                fprintf(stderr, "trainscope collect: finding: critical %s: %s\n", w.name, f.message);
            free(json);
        }
    }
    pthread_mutex_unlock(&d->mu);
    tss_chunks_close(q);
    tss_close(rd);
    return NULL;
}

/* Ingest thread: store the watcher's findings (the writer is ours). */
static void store_pending(tda_online *d, tss_store *st)
{
    tda_finding f[PENDING_MAX];
    int n;
    pthread_mutex_lock(&d->mu);
    n = d->npending;
    memcpy(f, d->pending, (size_t)n * sizeof *f);
    d->npending = 0;
    pthread_mutex_unlock(&d->mu);
    for (int i = 0; i < n; i++) {
        char *json = tda_finding_json_text(&f[i]);
        tss_finding row = {.run_id = f[i].run_id, .rank = -1, .series = "", .kind = "stalled",
                           .severity = "critical", .step_first = f[i].step_first, .step_last = f[i].step_last,
                           .t_ns = f[i].t_ns, .source = "online", .detail = json};
        if (json && tss_finding_add(st, &row) == 0)
            d->stats.stored++;
        else
            d->stats.not_stored++;
        d->stats.findings++;
        free(json);
    }
}

int tda_online_open(tda_online **out, const tda_online_opts *o, char *err, size_t errlen)
{
    tda_online *d = calloc(1, sizeof *d);
    *out = NULL;
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    if (o->rules)
        d->rules = *o->rules;
    d->quiet = o->quiet;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    int rc = 0;
    if (o->on_finding &&
        (rc = tda_alert_open(&d->alert, o->on_finding, o->alert_interval_s, o->alert_burst, err, errlen)) < 0)
        goto fail;
    if (o->store_path && o->stall_s > 0) {
        d->stall_s = o->stall_s;
        if (!(d->store_path = strdup(o->store_path))) {
            rc = -ENOMEM;
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        if ((rc = -pthread_create(&d->watcher, NULL, watch_thread, d)) < 0) {
            snprintf(err, errlen, "cannot start the stall watcher: %s", strerror(-rc));
            goto fail;
        }
        d->watcher_started = 1;
    }
    *out = d;
    return 0;
fail:
    tda_online_close(d);
    return rc;
}

static ser *ser_get(tda_online *d, tss_store *st, int64_t id)
{
    if ((size_t)id >= d->nsers) {
        size_t nc = d->nsers ? d->nsers : 64;
        while (nc <= (size_t)id)
            nc *= 2;
        ser **ns = realloc(d->sers, nc * sizeof *ns);
        if (!ns)
            return NULL;
        memset(ns + d->nsers, 0, (nc - d->nsers) * sizeof *ns);
        d->sers = ns;
        d->nsers = nc;
    }
    ser *s = d->sers[id];
    if (s)
        return s->ready ? s : NULL;
    if (!(s = d->sers[id] = calloc(1, sizeof *s)))
        return NULL;
    tda_params p;
    if (tss_series_get(st, id, &s->id) < 0)
        return NULL;    /* stays not ready: this series is not scored */
    tda_params_for(&d->rules, s->id.name, &p);
    if (tda_series_init(&s->det, &p) < 0)
        return NULL;
    s->compare = p.role == TDA_ROLE_STEPTIME || p.role == TDA_ROLE_THROUGHPUT;
    s->sid = id;
    s->ready = 1;
    return s;
}

static void report(tda_online *d, tss_store *st, ser *s, int64_t series_id, tda_finding *f)
{
    f->run_id = s->id.run_id;
    f->series_id = series_id;
    f->rank = s->id.rank;
    snprintf(f->run, sizeof f->run, "%s", s->id.run);
    snprintf(f->series, sizeof f->series, "%s", s->id.name);
    d->stats.findings++;
    char *json = tda_finding_json_text(f);
    if (!json) {
        d->stats.not_stored++;
        return;
    }
    if (!d->quiet)
        fprintf(stderr, "trainscope collect: finding: %s %s %s rank %d step %" PRId64 ": %s\n",
                tda_severity_name(f->severity), s->id.run, s->id.name, f->rank, f->step_first, f->message);
    tss_finding row = {.run_id = f->run_id, .series_id = series_id, .rank = f->rank, .series = f->series,
                       .kind = (char *)tda_kind_name(f->kind),
                       .severity = (char *)tda_severity_name(f->severity), .step_first = f->step_first,
                       .step_last = f->step_last, .t_ns = f->t_ns, .source = "online", .detail = json};
    if (s->stored < STORE_CAP_PER_SERIES && tss_finding_add(st, &row) == 0) {
        s->stored++;
        d->stats.stored++;
    } else {
        d->stats.not_stored++;
    }
    if (d->alert)
        tda_alert_push(d->alert, json);
    free(json);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Stragglers online: the rolling median of a steptime or throughput series
 * against the median of the same metric's rolling medians on the other
 * ranks of the run, every STRAGGLE_EVERY points (a scan of the series
 * table: amortised, a few ns per point). */
static void straggle_check(tda_online *d, tss_store *st, ser *s, int64_t step, int64_t t_ns)
{
    double others[64];
    size_t k = 0;
    for (size_t i = 0; i < d->nsers && k < 64; i++) {
        ser *o = d->sers[i];   /* the median merges its window first: not const */
        if (o && o != s && o->ready && o->id.run_id == s->id.run_id && o->id.rank != s->id.rank &&
            tda_roll_full(&o->det.roll) && strcmp(o->id.name, s->id.name) == 0)
            others[k++] = tda_roll_median(&o->det.roll);
    }
    if (!k)
        return;
    qsort(others, k, sizeof *others, cmp_double);
    double base = k & 1 ? others[k / 2] : 0.5 * (others[k / 2 - 1] + others[k / 2]);
    double mine = tda_roll_median(&s->det.roll);
    if (!(base > 0) || !(mine > 0))
        return;
    double slow = s->det.p.role == TDA_ROLE_STEPTIME ? mine / base : base / mine;
    if (slow <= 1 + STRAGGLE / 2) {
        s->straggling = 0;
        return;
    }
    if (s->straggling || slow <= 1 + STRAGGLE)
        return;
    s->straggling = 1;
    tda_finding f = {.kind = TDA_STRAGGLER, .severity = TDA_WARNING, .step_first = step, .step_last = step,
                     .t_ns = t_ns, .value = mine, .baseline = base, .scale = NAN, .score = slow,
                     .threshold = 1 + STRAGGLE};
    snprintf(f.message, sizeof f.message,
             "rank %d is %.0f%% slower than the other ranks (%.100s median %.4g vs %.4g)", s->id.rank,
             100 * (slow - 1), s->id.name, mine, base);
    report(d, st, s, s->sid, &f);
}

void tda_online_batch(tda_online *d, tss_store *st, const int64_t *series_ids,
                      const uint8_t *payload, uint32_t n)
{
    tda_finding out[TDA_FEED_MAX];
    ser *last = NULL;
    int64_t last_step = 0, last_t_ns = 0;
    if (d->npending)        /* a racy peek; store_pending takes the lock */
        store_pending(d, st);
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *q = payload + TSW_BATCH_HEAD + (size_t)i * TSW_SAMPLE_SIZE;
        int64_t sid = series_ids[i];
        ser *s = ser_get(d, st, sid);
        if (!s)
            continue;
        uint64_t vbits = tsw_get_u64(q + 20);
        double v;
        memcpy(&v, &vbits, sizeof v);
        int64_t step = (int64_t)tsw_get_u64(q + 4), t_ns = (int64_t)tsw_get_u64(q + 12);
        int k = tda_series_feed(&s->det, step, t_ns, v, out);
        for (int j = 0; j < k; j++)
            report(d, st, s, sid, &out[j]);
        if (s->compare && ++s->since_check >= STRAGGLE_EVERY && tda_roll_full(&s->det.roll)) {
            s->since_check = 0;
            straggle_check(d, st, s, step, t_ns);
        }
        last = s;
        last_step = step;
        last_t_ns = t_ns;
    }
    if (last)
        watch_touch(d, last, last_step, last_t_ns);
    d->stats.points += n;
}

void tda_online_get_stats(tda_online *d, tda_online_stats *s)
{
    *s = d->stats;
    if (d->alert) {
        tda_alert_stats a;
        tda_alert_get_stats(d->alert, &a);
        s->alerts_run = a.run;
        s->alerts_rate_limited = a.rate_limited;
        s->alerts_queue_full = a.queue_full;
        s->alerts_failed = a.failed;
    }
}

void tda_online_close(tda_online *d)
{
    if (!d)
        return;
    if (d->watcher_started) {
        pthread_mutex_lock(&d->mu);
        d->stop = 1;
        pthread_cond_signal(&d->cv);
        pthread_mutex_unlock(&d->mu);
        pthread_join(d->watcher, NULL);
    }
    tda_alert_close(d->alert);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    free(d->runs);
    free(d->store_path);
    for (size_t i = 0; i < d->nsers; i++) {
        if (d->sers[i])
            tda_series_free(&d->sers[i]->det);
        free(d->sers[i]);
    }
    free(d->sers);
    free(d);
}
