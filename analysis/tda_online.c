/* tda_online.c - detectors in the collector's ingest path (contract and the
 * why: tda_online.h). */
#include "tda_online.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tda_alert.h"
#include "wire.h"

#define STORE_CAP_PER_SERIES 100
#define DENSE 1024

/* Detector state and identity of one series, by series id. */
typedef struct ser {
    tda_series det;
    tss_series_name id;         /* run, rank, metric name */
    uint32_t stored;            /* findings stored for it */
    uint8_t ready;              /* det initialised */
} ser;

/* (stream, metric id) -> series id, open addressing, at most half full. */
typedef struct bind {
    uint64_t stream;
    uint32_t metric;
    uint32_t used;
    int64_t series;
} bind;

struct tda_online {
    tda_rules rules;
    tda_alert *alert;
    int quiet;
    ser **sers;                 /* indexed by series id */
    size_t nsers;
    bind *binds;
    size_t bcap, bused;
    /* The series of metric ids below DENSE of the stream of the last BATCH:
     * an array index per point instead of a hash probe. */
    uint64_t dense_stream;
    ser *dense[DENSE];
    int64_t dense_id[DENSE];
    tda_online_stats stats;
};

void tda_online_opts_init(tda_online_opts *o)
{
    *o = (tda_online_opts){.alert_interval_s = 1, .alert_burst = 5};
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
    if (o->on_finding) {
        int rc = tda_alert_open(&d->alert, o->on_finding, o->alert_interval_s, o->alert_burst, err, errlen);
        if (rc < 0) {
            free(d);
            return rc;
        }
    }
    *out = d;
    return 0;
}

static size_t bind_hash(uint64_t stream, uint32_t metric)
{
    uint64_t k = stream * 0x9E3779B97F4A7C15ull ^ (uint64_t)metric * 0xC2B2AE3D27D4EB4Full;
    return (size_t)(k ^ k >> 29);
}

static bind *bind_find(tda_online *d, uint64_t stream, uint32_t metric)
{
    if (!d->bcap)
        return NULL;
    for (size_t i = bind_hash(stream, metric) & (d->bcap - 1);; i = (i + 1) & (d->bcap - 1)) {
        bind *b = &d->binds[i];
        if (!b->used)
            return NULL;
        if (b->stream == stream && b->metric == metric)
            return b;
    }
}

typedef struct load_ctx {
    tda_online *d;
    uint64_t stream;
    int failed;
} load_ctx;

static int bind_insert(tda_online *d, uint64_t stream, uint32_t metric, int64_t series)
{
    if (2 * (d->bused + 1) > d->bcap) {
        size_t nc = d->bcap ? 2 * d->bcap : 64;
        bind *nb = calloc(nc, sizeof *nb), *old = d->binds;
        if (!nb)
            return -ENOMEM;
        for (size_t i = 0; i < d->bcap; i++) {
            if (!old[i].used)
                continue;
            size_t j = bind_hash(old[i].stream, old[i].metric) & (nc - 1);
            while (nb[j].used)
                j = (j + 1) & (nc - 1);
            nb[j] = old[i];
        }
        free(old);
        d->binds = nb;
        d->bcap = nc;
    }
    bind *b = bind_find(d, stream, metric);
    if (!b) {
        size_t j = bind_hash(stream, metric) & (d->bcap - 1);
        while (d->binds[j].used)
            j = (j + 1) & (d->bcap - 1);
        b = &d->binds[j];
        d->bused++;
    }
    *b = (bind){.stream = stream, .metric = metric, .used = 1, .series = series};
    return 0;
}

static void on_binding(void *ctx, uint32_t metric, int64_t series)
{
    load_ctx *l = ctx;
    if (bind_insert(l->d, l->stream, metric, series) < 0)
        l->failed = 1;
}

/* The series of (stream, metric): from the table, or read from the store
 * once (a stream's bindings are written at DEFINE, before any BATCH). */
static int64_t series_of(tda_online *d, tss_store *st, uint64_t stream, uint32_t metric)
{
    bind *b = bind_find(d, stream, metric);
    if (b)
        return b->series;
    load_ctx l = {.d = d, .stream = stream};
    if (tss_stream_bindings(st, stream, on_binding, &l) < 0 || l.failed)
        return 0;
    b = bind_find(d, stream, metric);
    if (!b && bind_insert(d, stream, metric, 0) == 0)   /* remember the miss: no SQL per point */
        return 0;
    return b ? b->series : 0;
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

/* The slow path of a point's series: the binding table, the store. */
static ser *lookup(tda_online *d, tss_store *st, uint64_t stream, uint32_t metric, int64_t *sid)
{
    *sid = series_of(d, st, stream, metric);
    ser *s = *sid > 0 ? ser_get(d, st, *sid) : NULL;
    if (s && metric < DENSE) {
        d->dense[metric] = s;
        d->dense_id[metric] = *sid;
    }
    return s;
}

void tda_online_batch(tda_online *d, tss_store *st, uint64_t stream, const uint8_t *payload, uint32_t n)
{
    tda_finding out[TDA_FEED_MAX];
    if (stream != d->dense_stream) {
        memset(d->dense, 0, sizeof d->dense);
        d->dense_stream = stream;
    }
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *q = payload + TSW_BATCH_HEAD + (size_t)i * TSW_SAMPLE_SIZE;
        uint32_t metric = tsw_get_u32(q);
        int64_t sid;
        ser *s;
        if (metric < DENSE && d->dense[metric]) {
            s = d->dense[metric];
            sid = d->dense_id[metric];
        } else if (!(s = lookup(d, st, stream, metric, &sid))) {
            continue;
        }
        uint64_t vbits = tsw_get_u64(q + 20);
        double v;
        memcpy(&v, &vbits, sizeof v);
        int k = tda_series_feed(&s->det, (int64_t)tsw_get_u64(q + 4), (int64_t)tsw_get_u64(q + 12), v, out);
        for (int j = 0; j < k; j++)
            report(d, st, s, sid, &out[j]);
    }
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
    tda_alert_close(d->alert);
    for (size_t i = 0; i < d->nsers; i++) {
        if (d->sers[i])
            tda_series_free(&d->sers[i]->det);
        free(d->sers[i]);
    }
    free(d->sers);
    free(d->binds);
    free(d);
}
