/* collector.c - ingest: the ROUTER that receives publisher messages, applies
 * them to the store exactly once and in order per stream, and acknowledges
 * what is durable (PROTOCOL.md "Reliability"). Live fan-out is in live.c,
 * the query API in api.c, the command line in collect_cmd.c.
 *
 * Per stream the collector keeps, in a hash table keyed by the stream id:
 * the next expected seq, the durable seq, run and rank, the ROUTER identity
 * to ACK, and its metric id -> series table. A stream not in memory (after a
 * restart) is loaded from the store the first time it speaks, so sequencing
 * resumes from exactly what was committed.
 *
 * Durability: a stream's seq is written with tss_stream_set_seq just before
 * tss_commit, so it lands in the same transaction as the data it covers; only
 * after the commit succeeds does the stream's ACK go out. Duplicates and gaps
 * are answered at once (they change nothing).
 *
 * Knobs: INGEST_RCVHWM (messages queued per publisher in libzmq),
 * INGEST_BURST (messages applied per poll round, so commits and the monitor
 * get their turn; the ROUTER's fair queueing interleaves publishers, so one
 * flooding peer cannot starve the others), LOG_* (rate limit of rejection
 * log lines), RESUME_EVENTS_MAX.
 */
#include "collector.h"
#include "collector_int.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "security.h"
#include "store.h"
#include "tda_online.h"
#include "wire.h"

/* Messages queued per publisher in libzmq: 8 BATCHes of 64K samples (about
 * 15 MiB) keep ingest busy for a commit interval, and bound what a fast
 * publisher parks in the collector (64 let the resident size swing by
 * 100 MiB per publisher while ingesting; bench_ingest --watch); a flooder of
 * 16 MiB messages parks at most 128 MiB. */
#define INGEST_RCVHWM 8
#define INGEST_BURST 64         /* messages per poll round */
#define INGEST_LINGER_MS 1000   /* how long close waits for the last ACKs to leave */
#define MAX_IDENTITY 255        /* ZeroMQ routing ids are 1..255 bytes */
#define ROUTE_HOPS 3            /* relays (ROUTER-DEALER proxies) in front of a publisher */
#define ROUTE_MAX ((1 + ROUTE_HOPS) * (1 + MAX_IDENTITY))  /* [u8 len][routing id] per hop */
#define RESUME_EVENTS_MAX 256   /* distinct resume steps recorded per stream */
#define LOG_PEERS 256           /* peers tracked by the log limiter (hashed) */
#define LOG_REASONS 16          /* TSW_E_* codes, plus the two below */
#define LOG_TRANSPORT 14        /* connection dropped by the transport */
#define LOG_STORE 15            /* commit failures */
#define LOG_GLOBAL_PER_S 20     /* rejection lines per second, all peers together */
#define MONITOR_EP_FMT "inproc://tcl-ingest-monitor-%p"
#define MAX_TRACKED_FD 65536    /* connections above this fd are not told apart in disconnect logs */

/* ---- small utilities ---------------------------------------------------- */

void tcl__log(const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "[collector] %s\n", line);
}

int64_t tcl__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t tcl__wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Grow an array to hold at least `need` elements of `size` bytes. */
static int grow(void **arr, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 16;
    while (n < need)
        n *= 2;
    void *p = realloc(*arr, n * size);
    if (!p)
        return -ENOMEM;
    *arr = p;
    *cap = n;
    return 0;
}

/* u64 -> pointer hash table, open addressing with linear probing. Entries
 * are never removed (streams, runs and metric ids live as long as the
 * collector), which keeps probing trivial. A NULL value marks a free slot. */
typedef struct tcl_map {
    uint64_t *keys;
    void **vals;
    size_t cap;     /* power of two */
    size_t len;
} tcl_map;

static size_t map_hash(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return (size_t)k;
}

static void *map_get(const tcl_map *m, uint64_t k)
{
    if (!m->cap)
        return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = map_hash(k) & mask;; i = (i + 1) & mask) {
        if (!m->vals[i])
            return NULL;
        if (m->keys[i] == k)
            return m->vals[i];
    }
}

static void map_insert(tcl_map *m, uint64_t k, void *v)
{
    size_t mask = m->cap - 1;
    size_t i = map_hash(k) & mask;
    while (m->vals[i])
        i = (i + 1) & mask;
    m->keys[i] = k;
    m->vals[i] = v;
    m->len++;
}

/* k must not be present yet. */
static int map_put(tcl_map *m, uint64_t k, void *v)
{
    if ((m->len + 1) * 2 > m->cap) {
        tcl_map n = { .cap = m->cap ? m->cap * 2 : 16 };
        n.keys = malloc(n.cap * sizeof *n.keys);
        n.vals = calloc(n.cap, sizeof *n.vals);
        if (!n.keys || !n.vals) {
            free(n.keys);
            free(n.vals);
            return -ENOMEM;
        }
        for (size_t i = 0; i < m->cap; i++)
            if (m->vals[i])
                map_insert(&n, m->keys[i], m->vals[i]);
        free(m->keys);
        free(m->vals);
        *m = n;
    }
    map_insert(m, k, v);
    return 0;
}

static void map_free(tcl_map *m, void (*free_val)(void *))
{
    for (size_t i = 0; free_val && i < m->cap; i++)
        if (m->vals[i])
            free_val(m->vals[i]);
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

/* ---- state ------------------------------------------------------------- */

/* A series as the collector sees it, shared by every stream bound to it. */
typedef struct series_rec {
    int64_t id;
    int64_t last_step;      /* last step appended by this collector */
    int have_last;
} series_rec;

/* One DEFINEd metric id of one stream. */
typedef struct metric_slot {
    series_rec *series;
    uint32_t batch_n;       /* samples of it in the BATCH being applied */
    size_t live_next;       /* where its next LIVE point goes in the live buffer */
    size_t live_off;        /* where its LIVE payload starts */
    uint16_t name_len;
    char name[];            /* NUL-terminated */
} metric_slot;

struct stream;

typedef struct run_rec {
    int64_t id;
    char *topic;            /* display name: project/name, or name */
    size_t topic_len;
    struct stream **streams;
    size_t nstreams, cap;
} run_rec;

typedef struct stream {
    uint64_t id;
    uint64_t next;          /* next expected seq */
    uint64_t durable;       /* highest seq committed (and ACKed) */
    run_rec *run;
    int rank;
    int ended;              /* said BYE */
    int superseded;         /* a newer stream of the same run and rank exists */
    int dirty;              /* in the commit list */
    int fd;                 /* connection of its last message, for disconnect logs */
    uint64_t order;         /* larger = newer, decides `superseded` */
    char status[TSW_MAX_KIND + 1];  /* from BYE */
    tcl_map metrics;        /* metric id -> metric_slot */
    int64_t *resumes;       /* steps a resume event was recorded for */
    size_t nresumes, resumes_cap;
    size_t route_len;
    uint8_t route[ROUTE_MAX];       /* where replies go (send_to), from its last message */
} stream;

/* The message being handled. */
typedef struct msg_ctx {
    const uint8_t *ident;   /* the connection's routing id, for logs */
    size_t ident_len;
    const uint8_t *route;   /* reply route: ident, then the relays' envelope (send_to) */
    size_t route_len;
    uint32_t peer;          /* hash of route, for the log limiter */
    int fd;
    tsw_header h;
    int have_h;             /* header readable: echo stream/seq in replies */
} msg_ctx;

typedef struct log_slot {
    int64_t next_ms[LOG_REASONS];
    uint32_t suppressed[LOG_REASONS];
} log_slot;

struct tcl_collector {
    tcl_options o;
    char *store_path;
    tss_store *st;
    void *zctx, *ingest, *monitor;
    tcl__live *live;
    tcl__api *api;
    tsec_zap *zap;          /* CURVE allow-list checker, when o.security is set */
    char ingest_ep[256];

    tcl_map streams, runs, series;
    stream **dirty;
    size_t ndirty, dirty_cap;
    int64_t commit_due;     /* monotonic ms; 0 while nothing is pending */
    int64_t reopen_due;     /* monotonic ms: next try to reopen a store that failed */
    uint64_t hello_order, load_order;

    zmq_msg_t ident, hdr, payload, extra;   /* reused for every message */
    uint8_t route[ROUTE_MAX];               /* the current message's reply route */
    metric_slot **slots;    /* per sample of the current BATCH */
    size_t slots_cap;
    int64_t *sids;          /* per sample: its series id, for the detectors */
    size_t sids_cap;
    metric_slot **touched;  /* distinct metrics of the current BATCH */
    size_t touched_cap;
    char *text;             /* NUL-terminated copies for the store */
    size_t text_cap;

    uint8_t *fd_spoke;      /* by fd: a message arrived on that connection */
    size_t fd_cap;

    tcl_stats stats;
    int64_t status_due, status_t0;
    uint64_t status_points;
    log_slot logs[LOG_PEERS];
    int64_t log_window_ms;
    int log_window_lines;
};

static const char *type_name(uint8_t t)
{
    switch (t) {
    case TSW_HELLO: return "HELLO";
    case TSW_DEFINE: return "DEFINE";
    case TSW_BATCH: return "BATCH";
    case TSW_EVENT: return "EVENT";
    case TSW_DROPS: return "DROPS";
    case TSW_BYE: return "BYE";
    default: return "message";
    }
}

static uint32_t peer_hash(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

static void hex(char *out, size_t cap, const uint8_t *p, size_t n)
{
    size_t i = 0;
    for (; i < n && 2 * i + 2 < cap; i++)
        snprintf(out + 2 * i, 3, "%02x", p[i]);
    out[2 * i] = 0;
}

static char *text_copy(tcl_collector *c, const void *p, size_t n)
{
    if (grow((void **)&c->text, &c->text_cap, n + 1, 1) < 0)
        return NULL;
    memcpy(c->text, p, n);
    c->text[n] = 0;
    return c->text;
}

/* ---- replies and logging ---------------------------------------------- */

/* route: [u8 len][routing id] for the connection, then for each relay the
 * message came through (ingest_one), so a relay's ROUTER can pass the reply
 * on to the publisher behind it. */
static void send_to(tcl_collector *c, const uint8_t *route, size_t route_len,
                    const tsw_header *h, const void *payload, size_t len)
{
    uint8_t hb[TSW_HEADER_SIZE];
    tsw_header_encode(hb, h);
    /* DONTWAIT: a publisher that stopped reading loses replies (its HWM is
     * full) rather than stalling ingest; it resends and is answered again. */
    for (size_t i = 0; i < route_len; i += 1 + (size_t)route[i])
        if (zmq_send(c->ingest, route + i + 1, route[i], ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
            return;
    zmq_send(c->ingest, hb, sizeof hb, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(c->ingest, payload, len, ZMQ_DONTWAIT);
}

static void send_ack(tcl_collector *c, const uint8_t *route, size_t route_len, uint64_t sid,
                     uint64_t durable, uint64_t next, uint16_t flags)
{
    uint8_t p[TSW_ACK_SIZE];
    tsw_header h = { .version = TSW_VERSION, .type = TSW_ACK, .flags = flags,
                     .stream = sid, .seq = durable };
    tsw_ack_encode(p, next);
    send_to(c, route, route_len, &h, p, sizeof p);
}

/* 1 when a line for (peer, reason) may be printed now; *suppressed is the
 * number of lines held back since the last one. At most one line per second
 * per peer and reason, and LOG_GLOBAL_PER_S for everyone, so a flood cannot
 * flood the log. */
static int log_gate(tcl_collector *c, uint32_t peer, int reason, uint32_t *suppressed)
{
    log_slot *s = &c->logs[peer % LOG_PEERS];
    int64_t now = tcl__now_ms();
    if (now - c->log_window_ms >= 1000) {
        c->log_window_ms = now;
        c->log_window_lines = 0;
    }
    if (now < s->next_ms[reason] || c->log_window_lines >= LOG_GLOBAL_PER_S) {
        s->suppressed[reason]++;
        return 0;
    }
    c->log_window_lines++;
    s->next_ms[reason] = now + 1000;
    *suppressed = s->suppressed[reason];
    s->suppressed[reason] = 0;
    return 1;
}

/* Count a rejected message, answer ERROR (echoing stream and seq when the
 * header was readable) and log one line, rate-limited per peer. */
static void reject_send(tcl_collector *c, const msg_ctx *m, int code, const char *msg)
{
    uint8_t payload[4 + 1024];
    char peer[2 * 16 + 1], more[48] = "";
    uint32_t suppressed;
    c->stats.rejected++;
    c->stats.rejected_by[code & 15]++;
    tsw_header h = { .version = TSW_VERSION, .type = TSW_ERROR };
    if (m->have_h) {
        h.stream = m->h.stream;
        h.seq = m->h.seq;
    }
    size_t n = tsw_error_encode(payload, sizeof payload, (uint32_t)code, msg);
    send_to(c, m->route, m->route_len, &h, payload, n);

    if (!log_gate(c, m->peer, code, &suppressed))
        return;
    hex(peer, sizeof peer, m->ident, m->ident_len);
    if (suppressed)
        snprintf(more, sizeof more, " (%" PRIu32 " more suppressed)", suppressed);
    if (m->have_h)
        tcl__log("rejected %s from stream %016" PRIx64 " seq %" PRIu64 " (peer %s): %s%s",
                 type_name(m->h.type), m->h.stream, m->h.seq, peer, msg, more);
    else
        tcl__log("rejected a message from peer %s: %s%s", peer, msg, more);
}

/* Reject with the code's sentence (tsw_strerror) followed by specifics. */
static void reject(tcl_collector *c, const msg_ctx *m, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void reject(tcl_collector *c, const msg_ctx *m, int code, const char *fmt, ...)
{
    char detail[768], msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    snprintf(msg, sizeof msg, "%s%s%s", tsw_strerror(code), detail[0] ? ": " : "", detail);
    reject_send(c, m, code, msg);
}

/* Reject with a whole sentence of its own, where the code's generic
 * sentence would mislead (a DEFINE conflict under code 8, a HELLO field). */
static void reject_as(tcl_collector *c, const msg_ctx *m, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void reject_as(tcl_collector *c, const msg_ctx *m, int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    reject_send(c, m, code, msg);
}

/* ---- runs and streams ---------------------------------------------------- */

static void run_free(void *p)
{
    run_rec *r = p;
    free(r->topic);
    free(r->streams);
    free(r);
}

static void stream_free(void *p)
{
    stream *s = p;
    map_free(&s->metrics, free);
    free(s->resumes);
    free(s);
}

static run_rec *run_add(tcl_collector *c, int64_t id, const char *project, const char *name)
{
    run_rec *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->id = id;
    size_t plen = project ? strlen(project) : 0, nlen = strlen(name);
    r->topic = malloc(plen + 1 + nlen + 1);
    if (!r->topic || map_put(&c->runs, (uint64_t)id, r) < 0) {
        run_free(r);
        return NULL;
    }
    if (plen)
        sprintf(r->topic, "%s/%s", project, name);
    else
        memcpy(r->topic, name, nlen + 1);
    r->topic_len = strlen(r->topic);
    return r;
}

/* The run of a stream loaded after a restart: its display name comes from
 * the store. */
static run_rec *run_load(tcl_collector *c, int64_t id)
{
    run_rec *r = map_get(&c->runs, (uint64_t)id);
    tss_run *runs = NULL;
    size_t n = 0;
    if (r)
        return r;
    if (tss_list_runs(c->st, &runs, &n) < 0)
        return NULL;
    for (size_t i = 0; i < n && !r; i++)
        if (runs[i].id == id)
            r = run_add(c, id, runs[i].project, runs[i].name);
    tss_free_runs(runs, n);
    return r;
}

/* Attach s to its run and work out which streams are superseded: per rank,
 * only the newest stream decides when the run has ended (an older one may
 * have died without BYE before the job was resumed). */
static int run_attach(run_rec *r, stream *s)
{
    s->run = r;
    if (grow((void **)&r->streams, &r->cap, r->nstreams + 1, sizeof *r->streams) < 0)
        return -ENOMEM;  /* only the end-of-run bookkeeping misses it */
    for (size_t i = 0; i < r->nstreams; i++) {
        stream *t = r->streams[i];
        if (t->rank != s->rank)
            continue;
        if (t->order < s->order)
            t->superseded = 1;
        else
            s->superseded = 1;
    }
    r->streams[r->nstreams++] = s;
    return 0;
}

/* After a BYE: when every current stream of the run has ended, the run takes
 * their status ("finished" unless one of them said otherwise). */
static void run_maybe_end(tcl_collector *c, run_rec *r)
{
    const char *status = "finished";
    for (size_t i = 0; i < r->nstreams; i++) {
        stream *t = r->streams[i];
        if (t->superseded)
            continue;
        if (!t->ended)
            return;
        if (strcmp(t->status, "finished") != 0)
            status = t->status;
    }
    if (tss_run_set_status(c->st, r->id, status, tcl__wall_ns()) < 0)
        tcl__log("could not set the status of run %s: %s", r->topic, tss_errmsg(c->st));
}

static stream *stream_new(tcl_collector *c, uint64_t id, int rank, uint64_t order)
{
    stream *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->id = id;
    s->rank = rank;
    s->order = order;
    s->fd = -1;
    if (map_put(&c->streams, id, s) < 0) {
        free(s);
        return NULL;
    }
    return s;
}

static series_rec *series_get(tcl_collector *c, int64_t id)
{
    series_rec *r = map_get(&c->series, (uint64_t)id);
    if (r)
        return r;
    r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->id = id;
    if (map_put(&c->series, (uint64_t)id, r) < 0) {
        free(r);
        return NULL;
    }
    return r;
}

static int slot_add(tcl_collector *c, stream *s, uint32_t metric, int64_t series,
                    const char *name, size_t len)
{
    metric_slot *m = calloc(1, sizeof *m + len + 1);
    if (!m)
        return -ENOMEM;
    m->series = series_get(c, series);
    m->name_len = (uint16_t)len;
    memcpy(m->name, name, len);
    if (!m->series || map_put(&s->metrics, metric, m) < 0) {
        free(m);
        return -ENOMEM;
    }
    return 0;
}

/* Bindings of a stream loaded from the store: names come from its run's
 * series list. */
typedef struct bind_ctx {
    tcl_collector *c;
    stream *s;
    const tss_series *series;
    size_t n;
    int rc;
} bind_ctx;

static void bind_one(void *ctx, uint32_t metric_id, int64_t series_id)
{
    bind_ctx *b = ctx;
    for (size_t i = 0; i < b->n; i++) {
        if (b->series[i].id == series_id) {
            const char *name = b->series[i].name ? b->series[i].name : "";
            if (slot_add(b->c, b->s, metric_id, series_id, name, strlen(name)) < 0)
                b->rc = -ENOMEM;
            return;
        }
    }
}

/* The stream, from memory or (first message after a restart) from the
 * store. NULL when the store has never seen its HELLO. */
static stream *stream_get(tcl_collector *c, uint64_t id)
{
    stream *s = map_get(&c->streams, id);
    tss_stream_info info;
    tss_series *series = NULL;
    size_t nseries = 0;
    if (s)
        return s;
    int rc = tss_stream_find(c->st, id, &info);
    if (rc < 0) {
        if (rc != -ENOENT)
            tcl__log("cannot look up stream %016" PRIx64 ": %s", id, tss_errmsg(c->st));
        return NULL;
    }
    run_rec *r = run_load(c, info.run_id);
    if (!r || tss_list_series(c->st, info.run_id, &series, &nseries) < 0)
        goto fail;
    /* Streams loaded from disk predate every HELLO of this session. */
    s = stream_new(c, id, info.rank, ++c->load_order);
    if (!s)
        goto fail;
    s->next = info.last_seq + 1;
    s->durable = info.last_seq;
    s->ended = info.ended;
    if (info.ended)
        snprintf(s->status, sizeof s->status, "finished");
    run_attach(r, s);
    bind_ctx b = { .c = c, .s = s, .series = series, .n = nseries };
    if (tss_stream_bindings(c->st, id, bind_one, &b) < 0 || b.rc < 0)
        tcl__log("stream %016" PRIx64 ": could not reload its metric ids: %s", id, tss_errmsg(c->st));
    tss_free_series(series, nseries);
    return s;

fail:
    tss_free_series(series, nseries);
    tcl__log("cannot reload stream %016" PRIx64 " from the store: %s", id, tss_errmsg(c->st));
    return NULL;
}

static void mark_dirty(tcl_collector *c, stream *s)
{
    if (s->dirty)
        return;
    if (grow((void **)&c->dirty, &c->dirty_cap, c->ndirty + 1, sizeof *c->dirty) < 0)
        return;  /* the stream is ACKed after a later commit instead */
    s->dirty = 1;
    c->dirty[c->ndirty++] = s;
    if (!c->commit_due)
        c->commit_due = tcl__now_ms() + c->o.commit_ms;
}

/* ---- HELLO --------------------------------------------------------------- */

/* JSON "\u0000" decodes to a NUL that would silently cut a C string. The
 * pair skip keeps an escaped backslash followed by "u0000" legal. */
static int json_has_nul(const char *s, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        if (s[i] != '\\')
            continue;
        if (s[i + 1] == 'u' && i + 5 < n && memcmp(s + i + 2, "0000", 4) == 0)
            return 1;
        i++;
    }
    return 0;
}

/* An optional integer in [lo, hi]: 0 ok (*out set or left at its default),
 * -1 present but not such an integer. */
static int json_int(const cJSON *obj, const char *key, double lo, double hi, int *out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it)
        return 0;
    double d = it->valuedouble;
    if (!cJSON_IsNumber(it) || d != floor(d) || d < lo || d > hi)
        return -1;
    *out = (int)d;
    return 0;
}

typedef struct hello {
    const char *run, *project;
    int rank, world_size;
    const cJSON *config;
} hello;

/* Fill why[] and return code: the one-line failure of hello_check. */
static int hello_bad(char *why, size_t cap, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int hello_bad(char *why, size_t cap, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
    return code;
}

/* Validate a parsed HELLO (PROTOCOL.md "HELLO"). Returns 0, or a TSW_E code
 * with why[] saying which field is wrong. */
static int hello_check(const cJSON *j, hello *hl, char *why, size_t cap)
{
    if (!cJSON_IsObject(j))
        return hello_bad(why, cap, TSW_E_JSON, "not a JSON object");
    const cJSON *run = cJSON_GetObjectItemCaseSensitive(j, "run");
    const cJSON *project = cJSON_GetObjectItemCaseSensitive(j, "project");
    hl->rank = 0;
    hl->world_size = 1;
    if (!cJSON_IsString(run) || !run->valuestring[0])
        return hello_bad(why, cap, TSW_E_JSON, "\"run\" must be a non-empty string");
    if (strlen(run->valuestring) > TSW_MAX_NAME)
        return hello_bad(why, cap, TSW_E_LENGTH, "run name over %d bytes", TSW_MAX_NAME);
    if (project && !cJSON_IsNull(project) && !cJSON_IsString(project))
        return hello_bad(why, cap, TSW_E_JSON, "\"project\" must be a string");
    if (cJSON_IsString(project) && strlen(project->valuestring) > TSW_MAX_NAME)
        return hello_bad(why, cap, TSW_E_LENGTH, "project name over %d bytes", TSW_MAX_NAME);
    if (json_int(j, "rank", 0, 2147483647.0, &hl->rank) < 0)
        return hello_bad(why, cap, TSW_E_JSON, "\"rank\" must be an integer, 0 <= rank < 2^31");
    if (json_int(j, "world_size", 1, 2147483647.0, &hl->world_size) < 0)
        return hello_bad(why, cap, TSW_E_JSON, "\"world_size\" must be an integer >= 1");
    hl->config = cJSON_GetObjectItemCaseSensitive(j, "config");
    if (hl->config && cJSON_IsNull(hl->config))
        hl->config = NULL;
    if (hl->config && !cJSON_IsObject(hl->config))
        return hello_bad(why, cap, TSW_E_JSON, "\"config\" must be an object");
    hl->run = run->valuestring;
    hl->project = cJSON_IsString(project) && project->valuestring[0] ? project->valuestring : NULL;
    return 0;
}

/* HELLO of a stream the collector has never seen: create it (seq 1). A
 * rejected HELLO creates nothing, so the publisher may send a fixed one. */
static void on_hello(tcl_collector *c, const msg_ctx *m, const uint8_t *p, size_t len)
{
    char why[128] = "";
    hello hl = {0}; /* hello_check fills it; zeroed so -O3 sees no path that reads it unset */
    cJSON *j = NULL;
    char *config = NULL;
    int64_t run_id, now = tcl__wall_ns();
    int code;
    if (len > TSW_MAX_HELLO) {
        reject(c, m, TSW_E_LENGTH, "HELLO is %zu bytes, over the 1 MiB limit", len);
        return;
    }
    if (!tsw_utf8_valid((const char *)p, len)) {
        reject(c, m, TSW_E_UTF8, "in HELLO");
        return;
    }
    if (json_has_nul((const char *)p, len)) {
        reject_as(c, m, TSW_E_JSON, "bad HELLO: a string contains \\u0000");
        return;
    }
    j = cJSON_ParseWithLength((const char *)p, len);
    if (!j) {
        reject_as(c, m, TSW_E_JSON, "bad HELLO: not valid JSON");
        return;
    }
    if ((code = hello_check(j, &hl, why, sizeof why)) != 0) {
        reject_as(c, m, code, "bad HELLO: %s", why);
        goto done;
    }
    if (hl.config && !(config = cJSON_PrintUnformatted(hl.config))) {
        reject(c, m, TSW_E_STORE, "out of memory");
        goto done;
    }
    const char *json = text_copy(c, p, len);
    if (!json || tss_run_open(c->st, hl.project, hl.run, config, hl.world_size, now, &run_id) < 0 ||
        tss_stream_open(c->st, m->h.stream, run_id, hl.rank, json, now) < 0) {
        reject(c, m, TSW_E_STORE, "%s", json ? tss_errmsg(c->st) : "out of memory");
        goto done;
    }
    run_rec *r = map_get(&c->runs, (uint64_t)run_id);
    if (!r)
        r = run_add(c, run_id, hl.project, hl.run);
    stream *s = r ? stream_new(c, m->h.stream, hl.rank, (1ull << 62) + ++c->hello_order) : NULL;
    if (!s) {
        reject(c, m, TSW_E_STORE, "out of memory");
        goto done;
    }
    run_attach(r, s);
    s->next = 2;
    s->fd = m->fd;
    memcpy(s->route, m->route, m->route_len);
    s->route_len = m->route_len;
    c->stats.messages++;
    mark_dirty(c, s);
done:
    free(config);
    cJSON_Delete(j);
}

/* ---- DEFINE, BATCH, EVENT, DROPS, BYE ------------------------------------ */

/* Each returns 0 when applied, or a TSW_E code after calling reject(). */

static int on_define(tcl_collector *c, const msg_ctx *m, stream *s, const uint8_t *p, size_t len)
{
    size_t off = 0, nlen;
    uint32_t id;
    const char *name;
    int rc;
    if (len == 0) {
        reject(c, m, TSW_E_LENGTH, "DEFINE has no entries");
        return TSW_E_LENGTH;
    }
    /* Check the whole frame before binding anything. */
    while ((rc = tsw_define_next(p, len, &off, &id, &name, &nlen)) == 1) {
        metric_slot *old = map_get(&s->metrics, id);
        if (old && (old->name_len != nlen || memcmp(old->name, name, nlen) != 0)) {
            reject_as(c, m, TSW_E_METRIC, "DEFINE: metric id %" PRIu32 " is already defined as '%s'",
                      id, old->name);
            return TSW_E_METRIC;
        }
    }
    if (rc < 0) {
        reject(c, m, -rc, "in DEFINE entry at byte %zu", off);
        return -rc;
    }
    for (off = 0; tsw_define_next(p, len, &off, &id, &name, &nlen) == 1;) {
        metric_slot *old = map_get(&s->metrics, id);
        int64_t series;
        if (old && old->name_len == nlen && memcmp(old->name, name, nlen) == 0)
            continue;
        if (old) {
            reject_as(c, m, TSW_E_METRIC, "DEFINE: metric id %" PRIu32 " defined twice with different names", id);
            return TSW_E_METRIC;
        }
        const char *cname = text_copy(c, name, nlen);
        if (!cname || tss_series_open(c->st, s->run->id, s->rank, cname, &series) < 0 ||
            tss_stream_bind(c->st, s->id, id, series) < 0 ||
            slot_add(c, s, id, series, name, nlen) < 0) {
            reject(c, m, TSW_E_STORE, "%s", tss_errmsg(c->st));
            return TSW_E_STORE;
        }
    }
    return 0;
}

/* A resumed job: record one "resume" event per stream and resume step. */
static void note_resume(tcl_collector *c, stream *s, const metric_slot *slot, const tsw_sample *x)
{
    char text[TSW_MAX_NAME + 128];
    for (size_t i = 0; i < s->nresumes; i++)
        if (s->resumes[i] == x->step)
            return;
    if (s->nresumes >= RESUME_EVENTS_MAX ||
        grow((void **)&s->resumes, &s->resumes_cap, s->nresumes + 1, sizeof *s->resumes) < 0)
        return;
    s->resumes[s->nresumes++] = x->step;
    if (slot->series->have_last)
        snprintf(text, sizeof text, "steps went back from %" PRId64 " to %" PRId64 " (%s)",
                 slot->series->last_step, x->step, slot->name);
    else
        snprintf(text, sizeof text, "steps went back to %" PRId64 " (%s)", x->step, slot->name);
    if (tss_event_add(c->st, s->run->id, s->rank, x->step, x->time_ns, "resume", text) < 0)
        tcl__log("could not record a resume event for %s: %s", s->run->topic, tss_errmsg(c->st));
}

/* Lay out one LIVE payload per metric of the batch in the live buffer.
 * Returns the buffer, or NULL (live skipped for this batch) when out of memory. */
static uint8_t *live_layout(tcl_collector *c, stream *s, size_t ntouched)
{
    size_t total = 0;
    for (size_t i = 0; i < ntouched; i++)
        total += tcl__live_size(c->touched[i]->name_len, c->touched[i]->batch_n);
    uint8_t *buf = tcl__live_buffer(c->live, total);
    if (!buf)
        return NULL;
    size_t off = 0;
    for (size_t i = 0; i < ntouched; i++) {
        metric_slot *m = c->touched[i];
        m->live_off = off;
        m->live_next = tcl__live_head(c->live, off, (uint64_t)m->series->id, (uint32_t)s->rank,
                                      m->name, m->name_len, m->batch_n);
        off += tcl__live_size(m->name_len, m->batch_n);
    }
    return buf;
}

static void live_send(tcl_collector *c, stream *s, size_t ntouched)
{
    for (size_t i = 0; i < ntouched; i++) {
        metric_slot *m = c->touched[i];
        tcl__live_publish(c->live, s->run->topic, s->run->topic_len, (uint64_t)m->series->id,
                          m->live_off, tcl__live_size(m->name_len, m->batch_n));
    }
}

/* Pass 1: every metric id must be defined, or the whole batch is rejected.
 * Returns the number of distinct metrics, or a negative TSW_E code. */
static int batch_resolve(tcl_collector *c, const msg_ctx *m, stream *s, const uint8_t *p, uint32_t n)
{
    size_t ntouched = 0;
    if (grow((void **)&c->slots, &c->slots_cap, n, sizeof *c->slots) < 0 ||
        (c->o.online && grow((void **)&c->sids, &c->sids_cap, n, sizeof *c->sids) < 0) ||
        grow((void **)&c->touched, &c->touched_cap, s->metrics.len + 1, sizeof *c->touched) < 0) {
        reject(c, m, TSW_E_STORE, "out of memory");
        return -TSW_E_STORE;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t id = tsw_get_u32(p + TSW_BATCH_HEAD + (size_t)i * TSW_SAMPLE_SIZE);
        metric_slot *slot = map_get(&s->metrics, id);
        if (!slot) {
            for (size_t k = 0; k < ntouched; k++)
                c->touched[k]->batch_n = 0;
            reject(c, m, TSW_E_METRIC, "metric id %" PRIu32 " in sample %" PRIu32
                   " (the batch of %" PRIu32 " samples is rejected)", id, i, n);
            return -TSW_E_METRIC;
        }
        if (slot->batch_n++ == 0)
            c->touched[ntouched++] = slot;
        c->slots[i] = slot;
        if (c->o.online)
            c->sids[i] = slot->series->id;
    }
    return (int)ntouched;
}

static int on_batch(tcl_collector *c, const msg_ctx *m, stream *s, const uint8_t *p, size_t len)
{
    uint32_t n;
    int rc = tsw_batch_decode(p, len, &n), err = 0;
    if (rc < 0) {
        reject(c, m, -rc, "BATCH of %zu bytes", len);
        return -rc;
    }
    int ntouched = batch_resolve(c, m, s, p, n);
    if (ntouched < 0)
        return -ntouched;
    uint8_t *live = tcl__live_wanted(c->live, s->run->topic, s->run->topic_len)
                    ? live_layout(c, s, (size_t)ntouched) : NULL;
    /* The hot loop: fields are read and written with wire.h's inline
     * accessors rather than the out-of-line sample and LIVE codecs. */
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *q = p + TSW_BATCH_HEAD + (size_t)i * TSW_SAMPLE_SIZE;
        metric_slot *slot = c->slots[i];
        uint64_t vbits = tsw_get_u64(q + 20);
        tsw_sample x = { .step = (int64_t)tsw_get_u64(q + 4), .time_ns = (int64_t)tsw_get_u64(q + 12) };
        memcpy(&x.value, &vbits, sizeof x.value);
        rc = tss_append(c->st, slot->series->id, x.step, x.time_ns, x.value);
        if (rc < 0) {
            err = TSW_E_STORE;
            reject(c, m, err, "after %" PRIu32 " of %" PRIu32 " samples: %s", i, n, tss_errmsg(c->st));
            break;
        }
        if (rc == 1)
            note_resume(c, s, slot, &x);
        slot->series->last_step = x.step;
        slot->series->have_last = 1;
        if (live) {
            uint8_t *o = live + slot->live_next;
            tsw_put_u64(o, (uint64_t)x.step);
            tsw_put_u64(o + 8, (uint64_t)x.time_ns);
            tsw_put_u64(o + 16, vbits);
            slot->live_next += TSW_LIVE_POINT;
        }
    }
    if (live && !err)
        live_send(c, s, (size_t)ntouched);
    for (int k = 0; k < ntouched; k++)
        c->touched[k]->batch_n = 0;
    if (!err)
        c->stats.points += n;
    if (!err && c->o.online)    /* the detectors (analysis/): findings go with this transaction */
        tda_online_batch(c->o.online, c->st, c->sids, p, n);
    return err;
}

static int on_event(tcl_collector *c, const msg_ctx *m, stream *s, const uint8_t *p, size_t len)
{
    tsw_event e;
    char kind[TSW_MAX_KIND + 1];
    int rc = tsw_event_decode(p, len, &e);
    if (rc < 0) {
        reject(c, m, -rc, "EVENT of %zu bytes", len);
        return -rc;
    }
    memcpy(kind, e.kind, e.kind_len);
    kind[e.kind_len] = 0;
    const char *text = text_copy(c, e.text, e.text_len);
    if (!text || tss_event_add(c->st, s->run->id, s->rank, e.step, e.time_ns, kind, text) < 0) {
        reject(c, m, TSW_E_STORE, "%s", text ? tss_errmsg(c->st) : "out of memory");
        return TSW_E_STORE;
    }
    return 0;
}

static int on_drops(tcl_collector *c, const msg_ctx *m, stream *s, const uint8_t *p, size_t len)
{
    tsw_drops d;
    int rc = tsw_drops_decode(p, len, &d);
    if (rc < 0) {
        reject(c, m, -rc, "DROPS must be %d bytes, got %zu", TSW_DROPS_SIZE, len);
        return -rc;
    }
    if (tss_gap_add(c->st, s->run->id, s->rank, d.count, d.step_first, d.step_last,
                    d.t_first, d.t_last) < 0) {
        reject(c, m, TSW_E_STORE, "%s", tss_errmsg(c->st));
        return TSW_E_STORE;
    }
    c->stats.drops += d.count;
    return 0;
}

static int on_bye(tcl_collector *c, const msg_ctx *m, stream *s, const uint8_t *p, size_t len)
{
    if (len > TSW_MAX_KIND) {
        reject(c, m, TSW_E_LENGTH, "BYE status is %zu bytes, the limit is %d", len, TSW_MAX_KIND);
        return TSW_E_LENGTH;
    }
    if (!tsw_utf8_valid((const char *)p, len)) {
        reject(c, m, TSW_E_UTF8, "in the BYE status");
        return TSW_E_UTF8;
    }
    if (tss_stream_end(c->st, s->id, tcl__wall_ns()) < 0) {
        reject(c, m, TSW_E_STORE, "%s", tss_errmsg(c->st));
        return TSW_E_STORE;
    }
    if (len)
        memcpy(s->status, p, len);
    else
        len = (size_t)snprintf(s->status, sizeof s->status, "finished");
    s->status[len] = 0;
    s->ended = 1;
    run_maybe_end(c, s->run);
    return 0;
}

/* Apply message q == next expected of a known stream. Its seq is consumed
 * whether it is valid or not, so one bad message cannot wedge the stream. */
static void apply(tcl_collector *c, const msg_ctx *m, stream *s, int hdr_rc)
{
    const uint8_t *p = zmq_msg_data(&c->payload);
    size_t len = zmq_msg_size(&c->payload);
    int rc;
    s->next++;
    mark_dirty(c, s);
    if (hdr_rc == -TSW_E_TYPE) {
        reject(c, m, TSW_E_TYPE, "type 0x%02x", m->h.type);
        return;
    }
    if (len > TSW_MAX_PAYLOAD) {
        reject(c, m, TSW_E_LENGTH, "payload of %zu bytes, the limit is 16 MiB", len);
        return;
    }
    switch (m->h.type) {
    case TSW_DEFINE: rc = on_define(c, m, s, p, len); break;
    case TSW_BATCH: rc = on_batch(c, m, s, p, len); break;
    case TSW_EVENT: rc = on_event(c, m, s, p, len); break;
    case TSW_DROPS: rc = on_drops(c, m, s, p, len); break;
    case TSW_BYE: rc = on_bye(c, m, s, p, len); break;
    case TSW_HELLO:
        reject(c, m, TSW_E_TYPE, "HELLO is only valid as seq 1 of a new stream");
        return;
    default:
        reject(c, m, TSW_E_TYPE, "type 0x%02x is not sent by publishers", m->h.type);
        return;
    }
    if (rc == 0)
        c->stats.messages++;
}

/* The reliability table of PROTOCOL.md, for a message whose header is read. */
static void sequence(tcl_collector *c, msg_ctx *m, int hdr_rc)
{
    stream *s = stream_get(c, m->h.stream);
    if (!s) {
        if (m->h.seq > 1) {
            c->stats.gaps++;
            send_ack(c, m->route, m->route_len, m->h.stream, 0, 1, TSW_ACK_GAP);
        } else if (m->h.seq < 1) {
            c->stats.dups++;
            send_ack(c, m->route, m->route_len, m->h.stream, 0, 1, 0);
        } else if (hdr_rc == 0 && m->h.type == TSW_HELLO) {
            on_hello(c, m, zmq_msg_data(&c->payload), zmq_msg_size(&c->payload));
        } else {
            reject(c, m, TSW_E_STREAM, "seq 1 must be a HELLO");
        }
        return;
    }
    /* Replies go to whichever connection spoke for the stream last (a
     * publisher that reconnected has a new routing id). */
    memcpy(s->route, m->route, m->route_len);
    s->route_len = m->route_len;
    s->fd = m->fd;
    if (m->h.seq < s->next) {
        c->stats.dups++;
        send_ack(c, m->route, m->route_len, s->id, s->durable, s->next, 0);
    } else if (m->h.seq > s->next) {
        c->stats.gaps++;
        send_ack(c, m->route, m->route_len, s->id, s->durable, s->next, TSW_ACK_GAP);
    } else {
        apply(c, m, s, hdr_rc);
    }
}

/* 1 when a frame followed by two more is a relay's routing id rather than
 * a header: 1..255 bytes and not 24 bytes starting with the magic. */
static int is_envelope(zmq_msg_t *f)
{
    size_t n = zmq_msg_size(f);
    return n >= 1 && n <= MAX_IDENTITY &&
           !(n == TSW_HEADER_SIZE && memcmp(zmq_msg_data(f), "TSCP", 4) == 0);
}

static void route_push(msg_ctx *m, uint8_t *route, zmq_msg_t *f)
{
    size_t n = zmq_msg_size(f);
    route[m->route_len] = (uint8_t)n;
    memcpy(route + m->route_len + 1, zmq_msg_data(f), n);
    m->route_len += 1 + n;
}

/* Receive one message from the ingest ROUTER and handle it. Returns 0, or
 * -1 when nothing was waiting.
 *
 * A publisher behind relays (ZeroMQ ROUTER-DEALER proxies, `trainscope
 * relay`) arrives as [relay][publisher's id at the relay]...[header][payload]:
 * frames in front of the header that are not a header are routing ids
 * (PROTOCOL.md "Relays"). They go into the reply route, so ACKs and ERRORs
 * travel back through the same relays to the same publisher. */
static int ingest_one(tcl_collector *c)
{
    msg_ctx m = { .fd = -1, .route = c->route };
    int nframes = 0, hops = 0, more;
    if (zmq_msg_recv(&c->ident, c->ingest, ZMQ_DONTWAIT) < 0)
        return -1;
    m.ident = zmq_msg_data(&c->ident);
    m.ident_len = zmq_msg_size(&c->ident);
    if (m.ident_len > MAX_IDENTITY)
        m.ident_len = MAX_IDENTITY;
    route_push(&m, c->route, &c->ident);
    more = zmq_msg_more(&c->ident);
    while (more) {
        /* A third frame behind a non-header first frame: that frame was a
         * relay's routing id; slide header and payload down by one. */
        if (nframes == 2 && hops < ROUTE_HOPS && is_envelope(&c->hdr)) {
            route_push(&m, c->route, &c->hdr);
            zmq_msg_move(&c->hdr, &c->payload);
            nframes = 1;
            hops++;
        }
        zmq_msg_t *f = nframes == 0 ? &c->hdr : nframes == 1 ? &c->payload : &c->extra;
        if (zmq_msg_recv(f, c->ingest, 0) < 0)
            break;
        nframes++;
        more = zmq_msg_more(f);
    }
    m.peer = peer_hash(m.route, m.route_len);
    if (nframes == 0) {
        reject(c, &m, TSW_E_FRAMES, "got only a routing id");
        return 0;
    }
    m.fd = zmq_msg_get(&c->hdr, ZMQ_SRCFD);
    if (m.fd >= 0 && m.fd < MAX_TRACKED_FD &&
        grow((void **)&c->fd_spoke, &c->fd_cap, (size_t)m.fd + 1, 1) == 0)
        c->fd_spoke[m.fd] = 1;
    int rc = tsw_header_decode(zmq_msg_data(&c->hdr), zmq_msg_size(&c->hdr), &m.h);
    if (rc == -TSW_E_VERSION) {
        reject(c, &m, TSW_E_VERSION, "got version %u, this collector speaks version %d",
               m.h.version, TSW_VERSION);
        return 0;
    }
    if (rc < 0 && rc != -TSW_E_TYPE) {
        reject(c, &m, -rc, "header frame of %zu bytes", zmq_msg_size(&c->hdr));
        return 0;
    }
    m.have_h = 1;
    if (nframes != 2) {
        reject(c, &m, TSW_E_FRAMES, "got %d", nframes);
        return 0;
    }
    if (m.h.stream == 0) {
        reject(c, &m, TSW_E_STREAM, "stream id 0 is reserved");
        return 0;
    }
    sequence(c, &m, rc);
    return 0;
}

/* ---- commit, ACK, monitor, status ---------------------------------------- */

static int store_open(tcl_collector *c, char *err, size_t errlen)
{
    tss_open_opts so = { .writer = 1, .time_unit_ns = c->o.time_unit_ns, .sync_full = c->o.sync_full };
    return tss_open(&c->st, c->store_path, &so, err, errlen);
}

/* While the store is away (a commit failed), try to get it back once a
 * second; ingest waits meanwhile, so publishers keep their messages. */
static void store_retry(tcl_collector *c)
{
    char err[512];
    int64_t now = tcl__now_ms();
    if (now < c->reopen_due)
        return;
    if (store_open(c, err, sizeof err) == 0) {
        tcl__log("store reopened; publishers resend what was not acknowledged");
        return;
    }
    uint32_t suppressed;
    if (log_gate(c, 0, LOG_STORE, &suppressed))
        tcl__log("cannot reopen the store, retrying every second: %s", err);
    c->reopen_due = now + 1000;
}

/* A failed commit may have been rolled back by SQLite, and the store then
 * refuses further writes. Start over as after a crash: close the store,
 * forget every stream (each is reloaded from what is on disk when it next
 * speaks) and let the publishers resend what was never ACKed. */
static void store_restart(tcl_collector *c)
{
    tss_close(c->st);
    c->st = NULL;
    c->ndirty = 0;
    c->commit_due = 0;
    map_free(&c->streams, stream_free);
    map_free(&c->runs, run_free);
    map_free(&c->series, free);
    c->reopen_due = 0;
    store_retry(c);
}

/* Persist every advanced stream's seq with the data it covers, commit, and
 * only then ACK: an ACK promises the data is on disk. */
/* Commit the store's open transaction; a failure reopens the store (what
 * was not committed is resent by its publishers: nothing was ACKed). */
static int commit_store(tcl_collector *c)
{
    int rc = tss_commit(c->st);
    if (rc < 0) {
        uint32_t suppressed;
        if (log_gate(c, 0, LOG_STORE, &suppressed))
            tcl__log("commit failed, nothing ACKed; reopening the store: %s", tss_errmsg(c->st));
        store_restart(c);
    }
    return rc;
}

static int commit(tcl_collector *c)
{
    if (!c->ndirty)
        return 0;
    for (size_t i = 0; i < c->ndirty; i++)
        tss_stream_set_seq(c->st, c->dirty[i]->id, c->dirty[i]->next - 1);
    int rc = commit_store(c);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < c->ndirty; i++) {
        stream *s = c->dirty[i];
        s->dirty = 0;
        s->durable = s->next - 1;
        send_ack(c, s->route, s->route_len, s->id, s->durable, s->next, 0);
    }
    c->ndirty = 0;
    c->commit_due = 0;
    c->stats.commits++;
    return 0;
}

/* For an API write (the annotate op): make it durable now, through
 * commit() when streams wait for their ACK, else by committing the store. */
static int commit_writes(void *ctx)
{
    tcl_collector *c = ctx;
    return c->ndirty ? commit(c) : commit_store(c);
}

/* A connection the transport closed. libzmq does not say why, so the
 * collector tells the cases apart by what the connection carried:
 *  - nothing at all: the transport refused its first message (over
 *    ZMQ_MAXMSGSIZE) or the peer does not speak ZMTP - counted as rejected;
 *  - a stream that had not said BYE: the publisher died, or its message was
 *    over the limit - logged, not counted (a crash is not bad input);
 *  - otherwise a peer that finished (or was already rejected and logged
 *    for what it sent) - quiet. */
static void on_disconnect(tcl_collector *c, int fd, const char *addr)
{
    int spoke = fd >= 0 && (size_t)fd < c->fd_cap && c->fd_spoke[fd];
    uint64_t open = 0;
    uint32_t suppressed;
    char more[48] = "";
    if (spoke)
        c->fd_spoke[fd] = 0;  /* the fd number will be reused */
    for (size_t i = 0; i < c->streams.cap; i++) {
        stream *s = c->streams.vals[i];
        if (!s || s->fd != fd)
            continue;
        s->fd = -1;
        if (!s->ended)
            open = s->id;
    }
    if (spoke && !open)
        return;
    if (!spoke) {
        c->stats.rejected++;
        c->stats.rejected_by[0]++;
    }
    if (!log_gate(c, (uint32_t)fd, LOG_TRANSPORT, &suppressed))
        return;
    if (suppressed)
        snprintf(more, sizeof more, " (%" PRIu32 " more suppressed)", suppressed);
    if (!spoke)
        tcl__log("connection closed by transport (message over 32 MiB limit, not ZMTP, or a key CURVE refused) on %s%s",
                 addr, more);
    else
        tcl__log("connection of stream %016" PRIx64 " closed before BYE on %s: the publisher "
                 "went away, or the transport dropped a message over the 32 MiB limit%s",
                 open, addr, more);
}

static void drain_monitor(tcl_collector *c)
{
    zmq_msg_t ev, addr;
    zmq_msg_init(&ev);
    zmq_msg_init(&addr);
    while (zmq_msg_recv(&ev, c->monitor, ZMQ_DONTWAIT) >= 0) {
        /* Frame 1: u16 event, u32 value (native byte order); frame 2: address. */
        if (!zmq_msg_more(&ev) || zmq_msg_recv(&addr, c->monitor, 0) < 0)
            continue;
        if (zmq_msg_size(&ev) < 6)
            continue;
        uint16_t event;
        uint32_t value;
        memcpy(&event, zmq_msg_data(&ev), 2);
        memcpy(&value, (uint8_t *)zmq_msg_data(&ev) + 2, 4);
        char where[256];
        size_t n = zmq_msg_size(&addr) < sizeof where - 1 ? zmq_msg_size(&addr) : sizeof where - 1;
        memcpy(where, zmq_msg_data(&addr), n);
        where[n] = 0;
        if (event == ZMQ_EVENT_DISCONNECTED)
            on_disconnect(c, (int)value, where);
    }
    zmq_msg_close(&ev);
    zmq_msg_close(&addr);
}

/* 1234 -> "1234", 1234567 -> "1.23M" */
static const char *si(char *buf, size_t cap, double v)
{
    static const char units[] = " kMGTP";
    int u = 0;
    while (v >= 999.5 && u < 5) {
        v /= 1000;
        u++;
    }
    if (u == 0)
        snprintf(buf, cap, "%.0f", v);
    else
        snprintf(buf, cap, "%.3g%c", v, units[u]);
    return buf;
}

static void count_active(tcl_collector *c)
{
    c->stats.streams_active = 0;
    c->stats.runs_active = 0;
    for (size_t i = 0; i < c->streams.cap; i++) {
        stream *s = c->streams.vals[i];
        if (s && !s->ended)
            c->stats.streams_active++;
    }
    for (size_t i = 0; i < c->runs.cap; i++) {
        run_rec *r = c->runs.vals[i];
        for (size_t k = 0; r && k < r->nstreams; k++) {
            if (!r->streams[k]->ended) {
                c->stats.runs_active++;
                break;
            }
        }
    }
}

static void status_line(tcl_collector *c, int64_t now)
{
    char rate[16], total[16];
    double secs = (double)(now - c->status_t0) / 1000.0;
    double pps = secs > 0 ? (double)(c->stats.points - c->status_points) / secs : 0;
    count_active(c);
    tcl__log("runs %" PRIu64 " streams %" PRIu64 " | %s pts/s | total %s pts | drops %" PRIu64
             " | rejected %" PRIu64 " | dups %" PRIu64,
             c->stats.runs_active, c->stats.streams_active, si(rate, sizeof rate, pps),
             si(total, sizeof total, (double)c->stats.points), c->stats.drops, c->stats.rejected,
             c->stats.dups);
    c->status_t0 = now;
    c->status_points = c->stats.points;
}

/* ---- public ------------------------------------------------------------ */

void tcl_options_init(tcl_options *o)
{
    memset(o, 0, sizeof *o);
    o->store_path = "runs.db";
    o->ingest_ep = TSW_DEFAULT_INGEST;
    o->api_ep = TSW_DEFAULT_API;
    o->live_ep = TSW_DEFAULT_LIVE;
    o->commit_ms = 50;
    o->status_interval_s = 5;
}

static int open_ingest(tcl_collector *c, char *err, size_t errlen)
{
    int64_t maxmsg = TSW_MAX_TRANSPORT_MSG;
    int hwm = INGEST_RCVHWM, off = 0;
    char mon[64];
    size_t eplen = sizeof c->ingest_ep;
    c->ingest = zmq_socket(c->zctx, ZMQ_ROUTER);
    if (!c->ingest)
        goto fail;
    zmq_setsockopt(c->ingest, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    zmq_setsockopt(c->ingest, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(c->ingest, ZMQ_ROUTER_MANDATORY, &off, sizeof off);
    if (tsec_server_socket(c->o.security, c->ingest) < 0)
        goto fail;
    snprintf(mon, sizeof mon, MONITOR_EP_FMT, (void *)c);
    if (zmq_socket_monitor(c->ingest, mon, ZMQ_EVENT_DISCONNECTED) != 0 ||
        !(c->monitor = zmq_socket(c->zctx, ZMQ_PAIR)) || zmq_connect(c->monitor, mon) != 0)
        goto fail;
    if (zmq_bind(c->ingest, c->o.ingest_ep) != 0) {
        int e = zmq_errno();
        snprintf(err, errlen, "cannot bind the ingest endpoint %s: %s", c->o.ingest_ep, zmq_strerror(e));
        return -e;
    }
    if (zmq_getsockopt(c->ingest, ZMQ_LAST_ENDPOINT, c->ingest_ep, &eplen) != 0)
        snprintf(c->ingest_ep, sizeof c->ingest_ep, "%s", c->o.ingest_ep);
    return 0;
fail:;
    int e = zmq_errno();
    snprintf(err, errlen, "cannot create the ingest socket: %s", zmq_strerror(e));
    return -e;
}

int tcl_open(tcl_collector **out, const tcl_options *o, char *err, size_t errlen)
{
    int rc;
    tcl_collector *c = calloc(1, sizeof *c);
    *out = NULL;
    if (!c || !(c->store_path = strdup(o->store_path))) {
        free(c);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    c->o = *o;
    c->o.store_path = c->store_path;
    if (c->o.commit_ms < 1)
        c->o.commit_ms = 1;
    zmq_msg_init(&c->ident);
    zmq_msg_init(&c->hdr);
    zmq_msg_init(&c->payload);
    zmq_msg_init(&c->extra);
    /* The store first: a second collector on the same store must fail with
     * the store's clear -EBUSY before it binds (and steals) any endpoint. */
    if ((rc = store_open(c, err, errlen)) < 0)
        goto fail;
    if (!(c->zctx = zmq_ctx_new())) {
        rc = -ENOMEM;
        snprintf(err, errlen, "cannot create a ZeroMQ context");
        goto fail;
    }
    /* The key checker before any bind: libzmq lets every CURVE client in
     * while no ZAP handler listens (security.h). */
    if ((o->security && (rc = tsec_zap_start(c->zctx, o->security, "collector", &c->zap, err,
                                             errlen)) < 0) ||
        (rc = open_ingest(c, err, errlen)) < 0 ||
        (rc = tcl__live_open(c->zctx, o->live_ep, o->security, &c->live, err, errlen)) < 0 ||
        (rc = tcl__api_start(c->zctx, o->api_ep, o->security, c->store_path,
                             tcl__live_endpoint(c->live), &c->api, err, errlen)) < 0)
        goto fail;
    c->status_t0 = tcl__now_ms();
    if (o->status_interval_s > 0)
        c->status_due = c->status_t0 + o->status_interval_s * 1000;
    *out = c;
    return 0;
fail:
    tcl_close(c);
    return rc;
}

const char *tcl_endpoint(const tcl_collector *c, const char *which)
{
    if (strcmp(which, "ingest") == 0)
        return c->ingest_ep;
    if (strcmp(which, "api") == 0)
        return c->api ? tcl__api_endpoint(c->api) : NULL;
    if (strcmp(which, "live") == 0)
        return c->live ? tcl__live_endpoint(c->live) : NULL;
    return NULL;
}

int tcl_poll(tcl_collector *c, int timeout_ms)
{
    int64_t now = tcl__now_ms();
    int ret = 0;
    if (c->commit_due && c->commit_due - now < timeout_ms)
        timeout_ms = c->commit_due > now ? (int)(c->commit_due - now) : 0;
    if (c->status_due && c->status_due - now < timeout_ms)
        timeout_ms = c->status_due > now ? (int)(c->status_due - now) : 0;
    if (!c->st) {
        store_retry(c);
        if (!c->st && timeout_ms > 100)
            timeout_ms = 100;
    }
    /* Without a store, ingest is left queued (publishers keep resending
     * nothing new until ACKs resume); only the monitor is served. */
    zmq_pollitem_t items[4] = {
        { .socket = c->monitor, .events = ZMQ_POLLIN },
        { .socket = c->ingest, .events = c->st ? ZMQ_POLLIN : 0 },
        { .socket = tcl__live_socket(c->live), .events = ZMQ_POLLIN },
        { .socket = tcl__api_write_socket(c->api), .events = ZMQ_POLLIN },
    };
    if (zmq_poll(items, 4, timeout_ms) < 0)
        ret = zmq_errno() == EINTR ? -EINTR : 0;
    if (items[1].revents & ZMQ_POLLIN) {
        /* A bounded burst, cut short when a commit is due, so ACK latency
         * stays near commit_ms even under a flood. */
        for (int i = 0; i < INGEST_BURST; i++) {
            if (!c->st || ingest_one(c) < 0 || (c->commit_due && tcl__now_ms() >= c->commit_due))
                break;
        }
    }
    if (items[0].revents & ZMQ_POLLIN)
        drain_monitor(c);
    if (items[2].revents & ZMQ_POLLIN)
        tcl__live_readable(c->live);
    if (items[3].revents & ZMQ_POLLIN)
        tcl__api_serve_writes(c->api, c->st, commit_writes, c);
    now = tcl__now_ms();
    if (c->commit_due && now >= c->commit_due)
        commit(c);
    if (c->status_due && now >= c->status_due) {
        if (!c->o.quiet)
            status_line(c, now);
        c->status_due = now + c->o.status_interval_s * 1000;
    }
    return ret;
}

int tcl_run(tcl_collector *c, volatile sig_atomic_t *stop)
{
    while (!*stop)
        tcl_poll(c, 100);
    return 0;
}

void tcl_get_stats(const tcl_collector *c, tcl_stats *s)
{
    *s = c->stats;
}

int tcl_close(tcl_collector *c)
{
    int rc = 0;
    if (!c)
        return 0;
    if (c->st && c->ingest)
        rc = commit(c);
    tcl__api_stop(c->api);
    tcl__live_close(c->live);
    if (c->ingest) {
        int linger = INGEST_LINGER_MS;
        zmq_socket_monitor(c->ingest, NULL, 0);
        zmq_setsockopt(c->ingest, ZMQ_LINGER, &linger, sizeof linger);
        zmq_close(c->ingest);
    }
    if (c->monitor) {
        int linger = 0;
        zmq_setsockopt(c->monitor, ZMQ_LINGER, &linger, sizeof linger);
        zmq_close(c->monitor);
    }
    tsec_zap_stop(c->zap);  /* after every socket it guards is closed */
    if (c->zctx)
        zmq_ctx_term(c->zctx);
    int crc = tss_close(c->st);
    if (rc == 0)
        rc = crc;
    zmq_msg_close(&c->ident);
    zmq_msg_close(&c->hdr);
    zmq_msg_close(&c->payload);
    zmq_msg_close(&c->extra);
    map_free(&c->streams, stream_free);
    map_free(&c->runs, run_free);
    map_free(&c->series, free);
    free(c->dirty);
    free(c->slots);
    free(c->sids);
    free(c->touched);
    free(c->text);
    free(c->fd_spoke);
    free(c->store_path);
    free(c);
    return rc;
}
