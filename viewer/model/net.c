/* net.c - a collector's query API and live feed, followed from a background
 * thread (see net.h for the sequence, the merging rule and the knobs).
 *
 * The thread owns every ZeroMQ socket: a DEALER to the API (one request in
 * flight at a time, answered or timed out), a SUB to the LIVE PUB, and a
 * PAIR reading the SUB's monitor (its handshake tells when the subscription
 * is on its way). It talks to the UI thread only through the queue: items
 * appended under a mutex, taken all at once by tvn_drain. An atomic count
 * lets tvn_drain return without touching the lock when nothing is queued,
 * so an idle frame costs one atomic load.
 *
 * A session is one connection: it ends when a request times out (the
 * collector went away), when the peer is unusable (FAILED, the thread then
 * idles until tvn_close), or on stop. Sockets are made anew for each
 * session, so no stale request or reply survives into the next one.
 */
#include "net.h"
#include "keys.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "wire.h"

#define TVN_SUB_RCVHWM 100000    /* LIVE messages queued here before the SUB drops */
#define TVN_MAX_REPLY (1 << 30)  /* bytes of one API reply (ZMQ_MAXMSGSIZE) */
#define TVN_ENDPOINT_MAX 256

/* ---- queue items -------------------------------------------------------- */

enum item_kind { IT_STATE, IT_INFO, IT_RUNS, IT_SERIES, IT_EVENTS, IT_GAPS, IT_FINDINGS, IT_RESET,
                 IT_POINTS, IT_LISTED };

typedef struct item {
    struct item *next;
    enum item_kind kind;
    enum tvm_state st;
    int64_t id;              /* run id (series, events, findings) or series id (reset, points) */
    int64_t unit;            /* IT_INFO: time unit, and whether to read the store file */
    int use_file;
    char *text;              /* state message or store path */
    void *arr;               /* tss_run / tss_series / tss_event / tss_gap / tss_finding array, or NULL */
    size_t n;
    size_t off;              /* IT_POINTS: points handed over so far */
    tss_point *reset_pts;    /* IT_RESET: the series' new history (n points), owned */
    tss_point pts[];         /* IT_POINTS: n points, allocated with the item */
} item;

/* ---- what the thread knows about each series ----------------------------- */

typedef struct nseries {
    int64_t id, run_id;
    int known;               /* the UI was given its metadata (a series list naming it) */
    int has;                 /* at least one point delivered */
    int64_t hi_step;         /* step of the last point delivered (current timeline) */
    int64_t hi_t;            /* newest wall time delivered */
    int gen;                 /* generation of the current timeline */
    int gens_seen;           /* timelines accounted for (collector's count + resumes seen) */
    int64_t step_last;       /* from the last series reply, for paging */
    int64_t step_first, count;
    tss_point *held;         /* LIVE points not delivered yet (hold mode, or unknown series) */
    size_t nheld, capheld;
    int collecting;          /* history being fetched whole after a reset: kept in coll */
    tss_point *coll;
    size_t ncoll, capcoll;
} nseries;

typedef struct nrun {
    int64_t id;
    char *display;           /* topic of its LIVE messages */
    int64_t updated_ns;
    int stale;               /* series and events to be listed again */
    int64_t max_event_id;    /* events delivered: those with a higher id are new */
    size_t nevents, ngaps;   /* events (when ids are missing) and gaps delivered */
    int findings_sent;       /* the run's findings were delivered once: nfindings/max_finding_id hold */
    size_t nfindings;        /* how many, and the highest id, in the list delivered last */
    int64_t max_finding_id;
} nrun;

struct tvn_conn {
    /* fixed at open */
    char api_ep[TVN_ENDPOINT_MAX];
    char live_opt[TVN_ENDPOINT_MAX];   /* from "?live=", or "" */
    int history_file;                  /* "?history=file": read history from the store file when readable */
    char **filter;                     /* runs to follow, NULL = all */
    size_t nfilter;
    size_t page_points;                /* points per `points` request */
    void *zctx;
    pthread_t thread;
    int started;
    atomic_int stop;
    atomic_int file_failed;            /* the UI could not open the store file */

    /* shared: the queue, the state, the counters */
    pthread_mutex_t mu;
    item *head, **tailp;
    atomic_size_t queued;
    enum tvm_state st;
    char msg[1024];
    tvn_stats stats;

    /* UI thread only */
    char ui_msg[1024];
    item *ui_list;                     /* taken from the queue, not all handed over yet */

    /* thread only */
    void *dealer, *sub, *mon;
    char live_ep[TVN_ENDPOINT_MAX];
    int64_t unit;                      /* store time unit, ns */
    int hold;                          /* LIVE held until the subscription is trusted */
    int ever_connected;                /* a collector answered `info` once: later losses are RECONNECTING */
    int64_t sub_ready_ms;              /* handshake + settle; 0 = no handshake yet */
    int live_lost;                     /* the live connection dropped: the collector went away */
    unsigned session;
    nseries *ser;                      /* sorted by id */
    size_t nser, capser;
    nrun *runs;
    size_t nruns;
    int need_runs;                     /* a LIVE message named an unknown series */
    int file_mode;                     /* history comes from the store file, not `points` */
    int no_gaps;                       /* the collector has no `gaps` op */
    int no_findings;                   /* the collector has no `findings` op */
    int64_t next_findings_all;         /* now_ms() when every run's findings are asked again */
    tss_point *scratch;                /* decoded LIVE points of one message */
    size_t scratch_cap;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- queue (thread side) ------------------------------------------------- */

static void push(tvn_conn *c, item *it)
{
    it->next = NULL;
    pthread_mutex_lock(&c->mu);
    *c->tailp = it;
    c->tailp = &it->next;
    atomic_fetch_add(&c->queued, 1);
    pthread_mutex_unlock(&c->mu);
}

static void item_free(item *it)
{
    switch (it->kind) {
    case IT_RUNS: tss_free_runs(it->arr, it->n); break;
    case IT_SERIES: tss_free_series(it->arr, it->n); break;
    case IT_EVENTS: tss_free_events(it->arr, it->n); break;
    case IT_GAPS: tss_free_gaps(it->arr); break;
    case IT_FINDINGS: tss_free_findings(it->arr, it->n); break;
    default: break;
    }
    free(it->reset_pts);
    free(it->text);
    free(it);
}

static item *item_new(enum item_kind kind, int64_t id)
{
    item *it = calloc(1, sizeof *it);
    if (it) {
        it->kind = kind;
        it->id = id;
    }
    return it;
}

/* Set the state seen by tvn_state and queue it for the sink. */
static void set_state(tvn_conn *c, enum tvm_state st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_state(tvn_conn *c, enum tvm_state st, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&c->mu);
    int same = c->st == st && strcmp(c->msg, buf) == 0;
    c->st = st;
    snprintf(c->msg, sizeof c->msg, "%s", buf);
    pthread_mutex_unlock(&c->mu);
    if (same)
        return;
    item *it = item_new(IT_STATE, 0);
    if (!it || !(it->text = strdup(buf))) {
        free(it);
        return;
    }
    it->st = st;
    push(c, it);
}

static void stat_add(tvn_conn *c, uint64_t *field, uint64_t n)
{
    pthread_mutex_lock(&c->mu);
    *field += n;
    pthread_mutex_unlock(&c->mu);
}

/* ---- series bookkeeping ------------------------------------------------- */

static nseries *series_find(tvn_conn *c, int64_t id)
{
    size_t lo = 0, hi = c->nser;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->ser[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < c->nser && c->ser[lo].id == id ? &c->ser[lo] : NULL;
}

/* Find or add (sorted insert: new series are rare). NULL when out of memory. */
static nseries *series_get(tvn_conn *c, int64_t id)
{
    nseries *s = series_find(c, id);
    if (s)
        return s;
    if (c->nser == c->capser) {
        size_t cap = c->capser ? c->capser * 2 : 64;
        nseries *ns = realloc(c->ser, cap * sizeof *ns);
        if (!ns)
            return NULL;
        c->ser = ns;
        c->capser = cap;
    }
    size_t at = 0;
    while (at < c->nser && c->ser[at].id < id)
        at++;
    memmove(&c->ser[at + 1], &c->ser[at], (c->nser - at) * sizeof *c->ser);
    c->nser++;
    s = &c->ser[at];
    memset(s, 0, sizeof *s);
    s->id = id;
    return s;
}

/* Floor t to the store's unit, as the store does (also below zero). */
static int64_t floor_unit(int64_t t, int64_t unit)
{
    if (unit <= 1)
        return t;
    int64_t q = t / unit;
    if (t % unit != 0 && t < 0)
        q--;
    return q * unit;
}

/* The merging rule of net.h: keep in p[0..n) the points to deliver (in
 * place, order kept), update the series' high-water marks, return how many. */
static size_t merge(tvn_conn *c, nseries *s, tss_point *p, size_t n, int live)
{
    size_t k = 0, dups = 0;
    for (size_t i = 0; i < n; i++) {
        tss_point q = p[i];
        if (s->has && q.step <= s->hi_step) {
            if (!live || q.t_ns <= s->hi_t) {
                dups++;
                continue;
            }
            if (q.step < s->hi_step) {   /* steps went back: a resumed run */
                s->gen++;
                s->gens_seen++;
            }
        }
        q.generation = s->gen;
        if (!s->has || q.t_ns > s->hi_t)
            s->hi_t = q.t_ns;
        s->has = 1;
        s->hi_step = q.step;
        p[k++] = q;
    }
    if (dups && live)
        stat_add(c, &c->stats.live_dups, dups);
    return k;
}

static int points_put(tss_point **arr, size_t *len, size_t *cap, const tss_point *p, size_t n);

/* Queue points of a series the UI knows (after merging), or keep them for
 * the reset being collected. */
static int deliver(tvn_conn *c, nseries *s, const tss_point *p, size_t n, int live)
{
    if (n == 0)
        return 0;
    if (s->collecting) {
        size_t at = s->ncoll;
        int rc = points_put(&s->coll, &s->ncoll, &s->capcoll, p, n);
        if (rc == 0)
            s->ncoll = at + merge(c, s, s->coll + at, n, live);
        return rc;
    }
    item *it = malloc(sizeof *it + n * sizeof *p);
    if (!it)
        return -ENOMEM;
    memset(it, 0, sizeof *it);
    it->kind = IT_POINTS;
    it->id = s->id;
    memcpy(it->pts, p, n * sizeof *p);
    it->n = merge(c, s, it->pts, n, live);
    if (it->n == 0) {
        free(it);
        return 0;
    }
    push(c, it);
    return 0;
}

/* Append n points to a growing array (held LIVE points, collected history). */
static int points_put(tss_point **arr, size_t *len, size_t *cap, const tss_point *p, size_t n)
{
    if (*len + n > *cap) {
        size_t c = *cap ? *cap : 1024;
        while (c < *len + n)
            c *= 2;
        tss_point *np = realloc(*arr, c * sizeof *np);
        if (!np)
            return -ENOMEM;
        *arr = np;
        *cap = c;
    }
    memcpy(*arr + *len, p, n * sizeof *p);
    *len += n;
    return 0;
}

static int hold_points(nseries *s, const tss_point *p, size_t n)
{
    return points_put(&s->held, &s->nheld, &s->capheld, p, n);
}

/* Deliver what a series held, if the UI knows it and we are not holding. */
static void release(tvn_conn *c, nseries *s)
{
    if (c->hold || !s->known || s->nheld == 0)
        return;
    deliver(c, s, s->held, s->nheld, 1);
    s->nheld = 0;
}

static void forget_all(tvn_conn *c)
{
    for (size_t i = 0; i < c->nser; i++) {
        free(c->ser[i].held);
        free(c->ser[i].coll);
    }
    free(c->ser);
    c->ser = NULL;
    c->nser = c->capser = 0;
    for (size_t i = 0; i < c->nruns; i++)
        free(c->runs[i].display);
    free(c->runs);
    c->runs = NULL;
    c->nruns = 0;
}

/* ---- LIVE ----------------------------------------------------------------- */

static int followed(const tvn_conn *c, const char *display, size_t len)
{
    if (!c->filter)
        return 1;
    for (size_t i = 0; i < c->nruns; i++)
        if (strlen(c->runs[i].display) == len && memcmp(c->runs[i].display, display, len) == 0)
            return 1;
    return 0;
}

/* Take one LIVE message: [topic][header][payload]. Anything else is counted
 * as malformed and dropped. */
static void live_message(tvn_conn *c, zmq_msg_t f[3], int nframes)
{
    tsw_header h;
    tsw_live l;
    if (nframes != 3 ||
        tsw_header_decode(zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), &h) < 0 || h.type != TSW_LIVE ||
        tsw_live_decode(zmq_msg_data(&f[2]), zmq_msg_size(&f[2]), &l) < 0 || h.stream != l.series ||
        l.series == 0 || l.series > INT64_MAX || !tsw_utf8_valid(l.metric, l.metric_len)) {
        stat_add(c, &c->stats.live_bad, 1);
        return;
    }
    if (!followed(c, zmq_msg_data(&f[0]), zmq_msg_size(&f[0])))
        return;
    nseries *s = series_get(c, (int64_t)l.series);
    /* Decoded into a buffer kept across messages: the copy that goes to
     * the queue is the only allocation per message. */
    if (!s)
        return;
    if (l.count > c->scratch_cap) {
        tss_point *np = realloc(c->scratch, l.count * sizeof *np);
        if (!np)
            return;
        c->scratch = np;
        c->scratch_cap = l.count;
    }
    tss_point *p = c->scratch;
    for (uint32_t i = 0; i < l.count; i++) {
        tsw_live_point_decode(l.points + (size_t)i * TSW_LIVE_POINT, &p[i].step, &p[i].t_ns, &p[i].value);
        p[i].t_ns = floor_unit(p[i].t_ns, c->unit);
        p[i].generation = 0;
    }
    pthread_mutex_lock(&c->mu);
    c->stats.live_msgs++;
    c->stats.live_points += l.count;
    pthread_mutex_unlock(&c->mu);
    if (!s->known) {   /* a new series (maybe a new run): list it again */
        for (size_t i = 0; i < c->nruns; i++)
            if (strlen(c->runs[i].display) == zmq_msg_size(&f[0]) &&
                memcmp(c->runs[i].display, zmq_msg_data(&f[0]), zmq_msg_size(&f[0])) == 0)
                c->runs[i].stale = 1;
        c->need_runs = 1;
    }
    if (c->hold || !s->known || s->nheld)
        hold_points(s, p, l.count);
    else
        deliver(c, s, p, l.count, 1);
}

static void live_readable(tvn_conn *c)
{
    zmq_msg_t f[3], extra;
    for (int i = 0; i < 3; i++)
        zmq_msg_init(&f[i]);
    zmq_msg_init(&extra);
    for (int burst = 0; burst < 256; burst++) {
        int n = 0, more = 1;
        if (zmq_msg_recv(&f[0], c->sub, ZMQ_DONTWAIT) < 0)
            break;
        n = 1;
        more = zmq_msg_more(&f[0]);
        while (more) {
            zmq_msg_t *m = n < 3 ? &f[n] : &extra;
            if (zmq_msg_recv(m, c->sub, 0) < 0)
                break;
            n++;
            more = zmq_msg_more(m);
        }
        live_message(c, f, n);
    }
    for (int i = 0; i < 3; i++)
        zmq_msg_close(&f[i]);
    zmq_msg_close(&extra);
}

/* The SUB's monitor: a handshake means the subscription is being sent; a
 * disconnection that the collector went away (also one that came back at
 * once: LIVE published before the SUB reconnected would be lost unseen). */
static void monitor_readable(tvn_conn *c)
{
    zmq_msg_t ev, addr;
    zmq_msg_init(&ev);
    zmq_msg_init(&addr);
    while (zmq_msg_recv(&ev, c->mon, ZMQ_DONTWAIT) >= 0) {
        if (zmq_msg_more(&ev))
            zmq_msg_recv(&addr, c->mon, 0);
        uint16_t event = 0;
        if (zmq_msg_size(&ev) >= 2)
            memcpy(&event, zmq_msg_data(&ev), 2);   /* host byte order, says zmq */
        if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED && !c->sub_ready_ms)
            c->sub_ready_ms = now_ms() + TVN_SETTLE_MS;
        if (event == ZMQ_EVENT_DISCONNECTED)
            c->live_lost = 1;
    }
    zmq_msg_close(&ev);
    zmq_msg_close(&addr);
}

/* Wait up to timeout_ms, taking LIVE and monitor messages meanwhile.
 * Returns 1 when the DEALER has a reply, 0 on timeout, -EINTR on stop,
 * -ECONNRESET when the live connection dropped. */
static int pump(tvn_conn *c, int timeout_ms)
{
    zmq_pollitem_t it[3] = {
        { .socket = c->dealer, .events = ZMQ_POLLIN },
        { .socket = c->sub, .events = ZMQ_POLLIN },
        { .socket = c->mon, .events = ZMQ_POLLIN },
    };
    int nit = c->mon ? 3 : c->sub ? 2 : 1;
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        if (atomic_load(&c->stop))
            return -EINTR;
        if (c->live_lost)
            return -ECONNRESET;
        int64_t left = deadline - now_ms();
        if (left < 0)
            left = 0;
        /* Short waits, so stop is noticed within 50 ms. */
        int rc = zmq_poll(it, nit, left > 50 ? 50 : (long)left);
        if (rc > 0) {
            if (nit > 1 && (it[1].revents & ZMQ_POLLIN))
                live_readable(c);
            if (nit > 2 && (it[2].revents & ZMQ_POLLIN))
                monitor_readable(c);
            if (it[0].revents & ZMQ_POLLIN)
                return 1;
        }
        if (now_ms() >= deadline)
            return 0;
    }
}

/* ---- API requests ------------------------------------------------------- */

typedef struct reply {
    cJSON *json;
    zmq_msg_t bin;           /* the binary frame (points), size 0 when none */
} reply;

static void reply_free(reply *r)
{
    cJSON_Delete(r->json);
    r->json = NULL;
    zmq_msg_close(&r->bin);
}

/* Send one JSON request and wait for its answer (LIVE keeps flowing).
 * 0 and r filled with an "ok" reply; -ETIMEDOUT (the session is over),
 * -EINTR (stop), -EPROTO (a reply that is not JSON: not a collector),
 * -EREMOTEIO (the collector refused: ok false). The sentence is in err. */
static int request(tvn_conn *c, cJSON *req, reply *r, char *err, size_t errlen)
{
    /* A page of points may take the collector a while to read and send;
     * everything else is small. */
    const cJSON *opname = cJSON_GetObjectItemCaseSensitive(req, "op");
    int timeout = cJSON_IsString(opname) && strcmp(opname->valuestring, "points") == 0
                  ? TVN_POINTS_TIMEOUT_MS : TVN_REQ_TIMEOUT_MS;
    zmq_msg_init(&r->bin);
    r->json = NULL;
    char *text = cJSON_PrintUnformatted(req);
    if (!text)
        return -ENOMEM;
    int rc = zmq_send(c->dealer, text, strlen(text), ZMQ_DONTWAIT);
    free(text);
    stat_add(c, &c->stats.requests, 1);
    if (rc < 0)
        return -ETIMEDOUT;   /* nothing to send to: as if unanswered */
    if ((rc = pump(c, timeout)) <= 0)
        return rc < 0 ? rc : -ETIMEDOUT;
    zmq_msg_t head;
    zmq_msg_init(&head);
    if (zmq_msg_recv(&head, c->dealer, 0) < 0) {
        zmq_msg_close(&head);
        return -ETIMEDOUT;
    }
    /* Skip a REQ-style empty delimiter, if a peer sends one. */
    while (zmq_msg_size(&head) == 0 && zmq_msg_more(&head))
        zmq_msg_recv(&head, c->dealer, 0);
    if (zmq_msg_more(&head))
        zmq_msg_recv(&r->bin, c->dealer, 0);
    while (zmq_msg_more(&r->bin)) {   /* more frames than the protocol has: drain */
        zmq_msg_t x;
        zmq_msg_init(&x);
        zmq_msg_recv(&x, c->dealer, 0);
        int more = zmq_msg_more(&x);
        zmq_msg_close(&x);
        if (!more)
            break;
    }
    r->json = cJSON_ParseWithLength(zmq_msg_data(&head), zmq_msg_size(&head));
    zmq_msg_close(&head);
    if (!cJSON_IsObject(r->json)) {
        snprintf(err, errlen, "the peer at %s answered with something that is not JSON: "
                 "is it a trainscope collector's API endpoint?", c->api_ep);
        reply_free(r);
        return -EPROTO;
    }
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r->json, "ok"))) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(r->json, "error");
        snprintf(err, errlen, "the collector at %s refused a request: %s", c->api_ep,
                 cJSON_IsString(e) ? e->valuestring : "(no reason given)");
        reply_free(r);
        return -EREMOTEIO;
    }
    return 0;
}

static cJSON *op(const char *name)
{
    cJSON *o = cJSON_CreateObject();
    if (o)
        cJSON_AddStringToObject(o, "op", name);
    return o;
}

/* JSON numbers are doubles: exact up to 2^53, which covers ids and steps;
 * nanosecond times in JSON lose their last digits (points carry exact
 * times in binary). */
static int64_t jint(const cJSON *o, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(it) || isnan(it->valuedouble))
        return 0;
    double d = it->valuedouble;
    if (d >= 9223372036854775807.0)
        return INT64_MAX;
    if (d <= -9223372036854775808.0)
        return INT64_MIN;
    return (int64_t)llround(d);
}

static double jnum(const cJSON *o, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(it) ? it->valuedouble : NAN;
}

static char *jstr(const cJSON *o, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    return strdup(cJSON_IsString(it) ? it->valuestring : "");
}

/* ---- the session's steps ------------------------------------------------ */

/* `info`: the protocol check, the store's unit, the live endpoint.
 * 0, -EPROTONOSUPPORT (FAILED, err set), or a request error. */
static int ask_info(tvn_conn *c, char *err, size_t errlen)
{
    reply r;
    cJSON *req = op("info");
    int rc = request(c, req, &r, err, errlen);
    cJSON_Delete(req);
    if (rc == -EREMOTEIO)
        rc = -EPROTO;   /* a collector that refuses `info` is of no use */
    if (rc < 0)
        return rc;
    const cJSON *proto = cJSON_GetObjectItemCaseSensitive(r.json, "protocol");
    if (!cJSON_IsNumber(proto) || proto->valuedouble != TSW_VERSION) {
        if (cJSON_IsNumber(proto))
            snprintf(err, errlen, "the collector at %s speaks protocol version %g; this viewer "
                     "speaks version %d: use a viewer and collector of the same release",
                     c->api_ep, proto->valuedouble, TSW_VERSION);
        else
            snprintf(err, errlen, "the peer at %s does not say which protocol it speaks "
                     "(no \"protocol\" in its info reply): is it a trainscope collector?", c->api_ep);
        reply_free(&r);
        return -EPROTONOSUPPORT;
    }
    int64_t unit = jint(r.json, "time_unit_ns");
    c->unit = unit > 0 ? unit : 1;
    const cJSON *live = cJSON_GetObjectItemCaseSensitive(r.json, "live");
    if (cJSON_IsString(live) && live->valuestring[0] && !c->live_opt[0])
        snprintf(c->live_ep, sizeof c->live_ep, "%s", live->valuestring);
    /* A store file this process can read gives history faster and exactly,
     * from the UI thread; the API then serves runs, events and LIVE. */
    char *path = jstr(r.json, "store");
    tss_store *probe = NULL;
    c->file_mode = 0;
    if (c->history_file && path && path[0] && !atomic_load(&c->file_failed) &&
        tss_open(&probe, path, NULL, NULL, 0) == 0) {
        c->file_mode = 1;
        tss_close(probe);
    }
    item *it = item_new(IT_INFO, 0);
    if (it) {
        it->unit = c->unit;
        it->text = path;
        it->use_file = c->file_mode;
        push(c, it);
    } else {
        free(path);
    }
    reply_free(&r);
    return 0;
}

/* Does this run pass the filter (by name or project/name)? */
static int wanted_run(const tvn_conn *c, const char *name, const char *display)
{
    if (!c->filter)
        return 1;
    for (size_t i = 0; i < c->nfilter; i++)
        if (strcmp(c->filter[i], name) == 0 || strcmp(c->filter[i], display) == 0)
            return 1;
    return 0;
}

static nrun *run_find(tvn_conn *c, int64_t id)
{
    for (size_t i = 0; i < c->nruns; i++)
        if (c->runs[i].id == id)
            return &c->runs[i];
    return NULL;
}

/* `runs`: queue the followed runs, mark those that changed as stale. */
static int list_runs(tvn_conn *c, char *err, size_t errlen)
{
    reply r;
    cJSON *req = op("runs");
    int rc = request(c, req, &r, err, errlen);
    cJSON_Delete(req);
    if (rc < 0)
        return rc;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(r.json, "runs");
    int total = cJSON_GetArraySize(arr);
    tss_run *out = calloc(total ? (size_t)total : 1, sizeof *out);
    nrun *nr = calloc(total ? (size_t)total : 1, sizeof *nr);
    size_t n = 0;
    if (!out || !nr) {
        rc = -ENOMEM;
        goto done;
    }
    const cJSON *o;
    cJSON_ArrayForEach(o, arr) {
        tss_run u = {
            .id = jint(o, "id"), .project = jstr(o, "project"), .name = jstr(o, "name"),
            .status = jstr(o, "status"), .world_size = (int)jint(o, "world_size"),
            .created_ns = jint(o, "created_ns"), .updated_ns = jint(o, "updated_ns"),
            .ended_ns = jint(o, "ended_ns"), .points = jint(o, "points"),
            .series = jint(o, "series"), .dropped = jint(o, "dropped"),
            .resumes = jint(o, "resumes"),
        };
        char *display = NULL;
        if (u.project && u.name &&
            asprintf(&display, "%s%s%s", u.project, u.project[0] ? "/" : "", u.name) < 0)
            display = NULL;
        if (!display || !u.status || !wanted_run(c, u.name, display)) {
            free(display);
            free(u.project);
            free(u.name);
            free(u.status);
            continue;
        }
        const nrun *old = run_find(c, u.id);
        nr[n] = (nrun){ .id = u.id, .display = display, .updated_ns = u.updated_ns,
                        .stale = !old || old->updated_ns != u.updated_ns || old->stale };
        if (old) {
            nr[n].max_event_id = old->max_event_id;
            nr[n].nevents = old->nevents;
            nr[n].ngaps = old->ngaps;
            nr[n].findings_sent = old->findings_sent;
            nr[n].nfindings = old->nfindings;
            nr[n].max_finding_id = old->max_finding_id;
        }
        out[n++] = u;
    }
    for (size_t i = 0; i < c->nruns; i++)
        free(c->runs[i].display);
    free(c->runs);
    c->runs = nr;
    c->nruns = n;
    nr = NULL;
    item *it = item_new(IT_RUNS, 0);
    if (!it) {
        rc = -ENOMEM;
        goto done;
    }
    it->arr = out;
    it->n = n;
    out = NULL;
    push(c, it);
done:
    tss_free_runs(out, n);
    free(nr);
    reply_free(&r);
    return rc;
}

/* One `points` request: [from, to] (INT64_MIN / INT64_MAX: open). Delivers
 * the points after what the series has. */
static int fetch_page(tvn_conn *c, nseries *s, int64_t from, int64_t to, char *err, size_t errlen)
{
    reply r;
    cJSON *req = op("points");
    cJSON_AddNumberToObject(req, "series", (double)s->id);
    if (from != INT64_MIN)
        cJSON_AddNumberToObject(req, "from", (double)from);
    if (to != INT64_MAX)
        cJSON_AddNumberToObject(req, "to", (double)to);
    int rc = request(c, req, &r, err, errlen);
    cJSON_Delete(req);
    if (rc == -EREMOTEIO)   /* e.g. the series went away: nothing to add */
        return 0;
    if (rc < 0)
        return rc;
    size_t n = zmq_msg_size(&r.bin) / TSW_LIVE_POINT;
    if ((int64_t)n != jint(r.json, "count") || zmq_msg_size(&r.bin) % TSW_LIVE_POINT) {
        snprintf(err, errlen, "the collector at %s sent a points frame of %zu bytes for %" PRId64
                 " points", c->api_ep, zmq_msg_size(&r.bin), jint(r.json, "count"));
        reply_free(&r);
        return -EPROTO;
    }
    tss_point *p = n ? malloc(n * sizeof *p) : NULL;
    if (n && !p) {
        reply_free(&r);
        return -ENOMEM;
    }
    const uint8_t *b = zmq_msg_data(&r.bin);
    for (size_t i = 0; i < n; i++) {
        tsw_live_point_decode(b + i * TSW_LIVE_POINT, &p[i].step, &p[i].t_ns, &p[i].value);
        p[i].generation = 0;
    }
    reply_free(&r);
    rc = deliver(c, s, p, n, 0);
    free(p);
    stat_add(c, &c->stats.history_points, n);
    return rc;
}

/* Everything committed after the last step delivered: one open-ended
 * request, or pages of about page_points (TVN_PAGE_POINTS) steps-worth (estimated from the
 * series' density) when much is missing. */
static int fetch_history(tvn_conn *c, nseries *s, char *err, size_t errlen)
{
    if (c->file_mode || (s->has && s->hi_step == INT64_MAX))
        return 0;
    int64_t from = s->has ? s->hi_step + 1 : s->count > 0 ? s->step_first : INT64_MIN;
    double missing = s->count > 0 ? ((double)s->step_last - (double)from + 1) /
                                    ((double)s->step_last - (double)s->step_first + 1) * (double)s->count
                                  : 0;
    double page = (double)c->page_points;
    double width = missing > page
                   ? ((double)s->step_last - (double)s->step_first + 1) / (double)s->count * page
                   : INFINITY;
    if (width < 1)
        width = 1;
    for (;;) {
        int open = (double)from + width - 1 >= (double)s->step_last;
        int64_t to = open ? INT64_MAX : from + (int64_t)width - 1;
        int rc = fetch_page(c, s, from, to, err, errlen);
        if (rc < 0 || open)
            return rc;
        from = to + 1;
    }
}

/* Hand the collected history of a series over as its replacement. */
static int push_reset(tvn_conn *c, nseries *s)
{
    item *it = item_new(IT_RESET, s->id);
    if (!it)
        return -ENOMEM;
    stat_add(c, &c->stats.resets, 1);
    it->reset_pts = s->coll;
    it->n = s->ncoll;
    s->coll = NULL;
    s->ncoll = s->capcoll = 0;
    push(c, it);
    return 0;
}

/* `series` for one run: queue the list, learn the series, and fetch the
 * history of each (again from scratch when timelines appeared that we
 * have not seen). */
static int list_series(tvn_conn *c, nrun *run, char *err, size_t errlen)
{
    reply r;
    cJSON *req = op("series");
    cJSON_AddStringToObject(req, "run", run->display);
    int rc = request(c, req, &r, err, errlen);
    cJSON_Delete(req);
    if (rc == -EREMOTEIO) {   /* the run went away, or its name is ambiguous */
        run->stale = 0;
        return 0;
    }
    if (rc < 0)
        return rc;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(r.json, "series");
    int total = cJSON_GetArraySize(arr);
    tss_series *out = calloc(total ? (size_t)total : 1, sizeof *out);
    int64_t run_id = run->id;
    size_t n = 0;
    if (!out) {
        reply_free(&r);
        return -ENOMEM;
    }
    const cJSON *o;
    cJSON_ArrayForEach(o, arr) {
        tss_series v = {
            .id = jint(o, "id"), .run_id = run_id, .rank = (int)jint(o, "rank"),
            .name = jstr(o, "name"), .count = jint(o, "count"),
            .step_first = jint(o, "step_first"), .step_last = jint(o, "step_last"),
            .t_first_ns = jint(o, "t_first_ns"), .t_last_ns = jint(o, "t_last_ns"),
            .vmin = jnum(o, "min"), .vmax = jnum(o, "max"), .n_nan = jint(o, "n_nan"),
            .n_inf = jint(o, "n_inf"), .generations = (int)jint(o, "generations"),
        };
        if (!v.name || v.id <= 0) {
            free(v.name);
            continue;
        }
        out[n++] = v;
    }
    reply_free(&r);
    /* What the loop below needs, copied: out belongs to the UI once queued. */
    struct want { int64_t id, count, first, last; int gens; } *w = malloc((n ? n : 1) * sizeof *w);
    item *it = item_new(IT_SERIES, run_id);
    if (!w || !it) {
        free(w);
        free(it);
        tss_free_series(out, n);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        w[i] = (struct want){ out[i].id, out[i].count, out[i].step_first, out[i].step_last,
                              out[i].generations };
    it->arr = out;
    it->n = n;
    push(c, it);
    for (size_t i = 0; i < n && rc == 0; i++) {
        nseries *s = series_get(c, w[i].id);
        if (!s) {
            rc = -ENOMEM;
            break;
        }
        s->run_id = run_id;
        s->known = 1;
        s->count = w[i].count;
        s->step_first = w[i].first;
        s->step_last = w[i].last;
        int reset = 0;
        if (w[i].gens > s->gens_seen) {
            /* A resume we did not see (while away, or before we came):
             * fetch the newest timeline whole, to replace what we have. */
            reset = s->has && !c->file_mode;
            s->has = 0;
            s->gens_seen = w[i].gens;
            s->gen = w[i].gens > 0 ? w[i].gens - 1 : 0;
        }
        s->collecting = reset;
        rc = fetch_history(c, s, err, errlen);
        s->collecting = 0;
        if (reset && rc == 0)
            rc = push_reset(c, s);
        release(c, s);
    }
    free(w);
    if (rc == 0)
        run->stale = 0;
    return rc;
}

/* `events`: queue those not delivered yet (ids grow with arrival; a
 * collector without ids: those past the count delivered). */
static int list_events(tvn_conn *c, nrun *run, char *err, size_t errlen)
{
    reply r;
    cJSON *req = op("events");
    cJSON_AddStringToObject(req, "run", run->display);
    int rc = request(c, req, &r, err, errlen);
    cJSON_Delete(req);
    if (rc == -EREMOTEIO)
        return 0;
    if (rc < 0)
        return rc;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(r.json, "events");
    int total = cJSON_GetArraySize(arr);
    tss_event *out = calloc(total ? (size_t)total : 1, sizeof *out);
    size_t n = 0, seen = 0;
    if (!out) {
        reply_free(&r);
        return -ENOMEM;
    }
    const cJSON *o;
    cJSON_ArrayForEach(o, arr) {
        int64_t id = jint(o, "id");
        seen++;
        if (id > 0 ? id <= run->max_event_id : seen <= run->nevents)
            continue;
        if (id > run->max_event_id)
            run->max_event_id = id;
        out[n++] = (tss_event){ .id = id, .run_id = run->id, .rank = (int)jint(o, "rank"),
                                .step = jint(o, "step"), .t_ns = jint(o, "t_ns"),
                                .kind = jstr(o, "kind"), .text = jstr(o, "text") };
    }
    run->nevents = seen;
    reply_free(&r);
    if (n == 0) {
        free(out);
        return 0;
    }
    item *it = item_new(IT_EVENTS, run->id);
    if (!it) {
        tss_free_events(out, n);
        return -ENOMEM;
    }
    it->arr = out;
    it->n = n;
    push(c, it);
    return 0;
}

/* `gaps` (samples publishers dropped): queue those past the count delivered. */
static int list_gaps(tvn_conn *c, nrun *run, char *err, size_t errlen)
{
    reply r;
    if (c->no_gaps)
        return 0;
    cJSON *req = op("gaps");
    cJSON_AddStringToObject(req, "run", run->display);
    int rc = request(c, req, &r, err, errlen);
    cJSON_Delete(req);
    if (rc == -EREMOTEIO) {   /* an older collector: no gaps op */
        c->no_gaps = 1;
        return 0;
    }
    if (rc < 0)
        return rc;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(r.json, "gaps");
    size_t total = (size_t)cJSON_GetArraySize(arr);
    tss_gap *out = total > run->ngaps ? calloc(total - run->ngaps, sizeof *out) : NULL;
    size_t n = 0, i = 0;
    const cJSON *o;
    cJSON_ArrayForEach(o, arr) {
        if (i++ < run->ngaps || !out)
            continue;
        out[n++] = (tss_gap){ .run_id = run->id, .rank = (int)jint(o, "rank"),
                              .count = jint(o, "count"), .step_first = jint(o, "step_first"),
                              .step_last = jint(o, "step_last"),
                              .t_first_ns = jint(o, "t_first_ns"), .t_last_ns = jint(o, "t_last_ns") };
    }
    reply_free(&r);
    item *it = n ? item_new(IT_GAPS, run->id) : NULL;
    if (!it) {
        free(out);
        return n ? -ENOMEM : 0;
    }
    run->ngaps += n;
    it->arr = out;
    it->n = n;
    push(c, it);
    return 0;
}

/* The detail's one sentence is all the model keeps, but the item carries
 * the detail as the store has it (JSON text), like tss_list_findings. */
static char *jjson(const cJSON *o, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    return it && !cJSON_IsNull(it) ? cJSON_PrintUnformatted(it) : strdup("");
}

/* `findings`: the run's whole list, queued when it differs from the one
 * delivered last (count or highest id: the detectors only add). A finding
 * of a series we have not listed yet is held back, with the list's
 * signature left as it was, so the next refresh (the series listed by
 * then) delivers it tied to its series rather than to the whole run.
 * In file mode the model reads findings from the store file itself. */
static int list_findings(tvn_conn *c, nrun *run, char *err, size_t errlen)
{
    reply r;
    if (c->no_findings || c->file_mode)
        return 0;
    cJSON *req = op("findings");
    cJSON_AddStringToObject(req, "run", run->display);
    int rc = request(c, req, &r, err, errlen);
    cJSON_Delete(req);
    if (rc == -EREMOTEIO) {
        /* an older collector (no findings op: "unknown op"), or the run went away */
        if (strstr(err, "unknown op"))
            c->no_findings = 1;
        err[0] = 0;
        return 0;
    }
    if (rc < 0)
        return rc;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(r.json, "findings");
    int total = cJSON_GetArraySize(arr);
    size_t n = 0;
    int64_t max_id = 0;
    int held_back = 0;
    tss_finding *out = calloc(total ? (size_t)total : 1, sizeof *out);
    if (!out) {
        reply_free(&r);
        return -ENOMEM;
    }
    const cJSON *o;
    cJSON_ArrayForEach(o, arr) {
        int64_t id = jint(o, "id"), sid = jint(o, "series");
        if (sid > 0) {
            const nseries *s = series_find(c, sid);
            if (!s || !s->known) {
                held_back = 1;
                continue;
            }
        }
        if (id > max_id)
            max_id = id;
        tss_finding f = { .id = id, .run_id = run->id, .series_id = sid, .rank = (int)jint(o, "rank"),
                          .series = jstr(o, "metric"), .kind = jstr(o, "kind"),
                          .severity = jstr(o, "severity"), .step_first = jint(o, "step_first"),
                          .step_last = jint(o, "step_last"), .t_ns = jint(o, "t_ns"),
                          .source = jstr(o, "source"), .detail = jjson(o, "detail") };
        out[n++] = f;
        if (!f.series || !f.kind || !f.severity || !f.source || !f.detail)
            rc = -ENOMEM;
    }
    reply_free(&r);
    if (held_back)
        run->stale = 1;   /* list its series again at the next refresh */
    if (rc < 0 || (!held_back && run->findings_sent && n == run->nfindings && max_id == run->max_finding_id)) {
        tss_free_findings(out, n);
        return rc;
    }
    item *it = item_new(IT_FINDINGS, run->id);
    if (!it) {
        tss_free_findings(out, n);
        return -ENOMEM;
    }
    if (!held_back) {
        run->findings_sent = 1;
        run->nfindings = n;
        run->max_finding_id = max_id;
    }
    it->arr = out;
    it->n = n;
    push(c, it);
    return 0;
}

/* Runs, then series, history, events, gaps and findings of every run that
 * changed. Findings of the others too when all_findings: a detector may
 * find something in a run that got no new points (a stalled run). */
static int sync_all(tvn_conn *c, int everything, int all_findings, char *err, size_t errlen)
{
    int rc = list_runs(c, err, errlen);
    for (size_t i = 0; i < c->nruns && rc == 0; i++) {
        nrun *run = &c->runs[i];
        if (!everything && !run->stale) {
            if (all_findings)
                rc = list_findings(c, run, err, errlen);
            continue;
        }
        if ((rc = list_series(c, run, err, errlen)) == 0 &&
            (rc = list_events(c, run, err, errlen)) == 0 &&
            (rc = list_gaps(c, run, err, errlen)) == 0)
            rc = list_findings(c, run, err, errlen);
    }
    if (rc == 0)
        c->need_runs = 0;
    return rc;
}

/* ---- sockets of one session -------------------------------------------- */

static void close_sockets(tvn_conn *c)
{
    if (c->mon) {
        zmq_close(c->mon);
        c->mon = NULL;
    }
    if (c->sub) {
        zmq_socket_monitor(c->sub, NULL, 0);
        zmq_close(c->sub);
        c->sub = NULL;
    }
    if (c->dealer) {
        zmq_close(c->dealer);
        c->dealer = NULL;
    }
}

static int open_dealer(tvn_conn *c, char *err, size_t errlen)
{
    int linger = 0, ivl = 100, hb = TVN_PING_MS, hbt = TVN_REQ_TIMEOUT_MS;
    int64_t maxmsg = TVN_MAX_REPLY;
    c->dealer = zmq_socket(c->zctx, ZMQ_DEALER);
    if (!c->dealer)
        goto fail;
    zmq_setsockopt(c->dealer, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(c->dealer, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(c->dealer, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    /* ZMTP heartbeats let zmq notice a dead TCP peer and reconnect. */
    zmq_setsockopt(c->dealer, ZMQ_HEARTBEAT_IVL, &hb, sizeof hb);
    zmq_setsockopt(c->dealer, ZMQ_HEARTBEAT_TIMEOUT, &hbt, sizeof hbt);
    /* CURVE from TRAINSCOPE_SERVER_KEY/CLIENT_KEY; a bad key is final (no retry). */
    if (tkey_client_setup(c->dealer, NULL, NULL, err, errlen) < 0)
        return -EINVAL;
    if (zmq_connect(c->dealer, c->api_ep) != 0)
        goto fail;
    return 0;
fail:
    snprintf(err, errlen, "cannot connect to %s: %s", c->api_ep, zmq_strerror(zmq_errno()));
    return -EINVAL;
}

/* Derive the live endpoint when neither "?live=" nor `info` named it. */
static int derive_live(tvn_conn *c, char *err, size_t errlen)
{
    if (c->live_opt[0]) {
        snprintf(c->live_ep, sizeof c->live_ep, "%s", c->live_opt);
        return 0;
    }
    if (c->live_ep[0])
        return 0;
    const char *colon = strrchr(c->api_ep, ':');
    size_t len = strlen(c->api_ep);
    if (strncmp(c->api_ep, "tcp://", 6) == 0 && colon && colon[1]) {
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if (*end == 0 && port > 0 && port < 65535) {
            snprintf(c->live_ep, sizeof c->live_ep, "%.*s:%ld", (int)(colon - c->api_ep),
                     c->api_ep, port + 1);
            return 0;
        }
    } else if (strncmp(c->api_ep, "ipc://", 6) == 0 && len > 9 &&
               strcmp(c->api_ep + len - 3, "api") == 0) {
        snprintf(c->live_ep, sizeof c->live_ep, "%.*slive", (int)(len - 3), c->api_ep);
        return 0;
    }
    snprintf(err, errlen, "cannot tell the live endpoint of the collector at %s: "
             "append ?live=ENDPOINT to the address", c->api_ep);
    return -EINVAL;
}

static int open_sub(tvn_conn *c, char *err, size_t errlen)
{
    int linger = 0, hwm = TVN_SUB_RCVHWM, ivl = 100, hb = TVN_PING_MS, hbt = TVN_REQ_TIMEOUT_MS;
    char mon_ep[64];
    snprintf(mon_ep, sizeof mon_ep, "inproc://tvn-mon-%p-%u", (void *)c, c->session);
    c->sub_ready_ms = 0;
    c->live_lost = 0;
    c->sub = zmq_socket(c->zctx, ZMQ_SUB);
    if (!c->sub)
        goto fail;
    zmq_setsockopt(c->sub, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(c->sub, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(c->sub, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(c->sub, ZMQ_HEARTBEAT_IVL, &hb, sizeof hb);
    zmq_setsockopt(c->sub, ZMQ_HEARTBEAT_TIMEOUT, &hbt, sizeof hbt);
    /* Every run: topics are prefixes, so "name" would also match "name2";
     * the filter is applied to each message's topic instead. */
    zmq_setsockopt(c->sub, ZMQ_SUBSCRIBE, "", 0);
    if (zmq_socket_monitor(c->sub, mon_ep, ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED) != 0)
        goto fail;
    c->mon = zmq_socket(c->zctx, ZMQ_PAIR);
    if (!c->mon || zmq_setsockopt(c->mon, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_connect(c->mon, mon_ep) != 0)
        goto fail;
    if (tkey_client_setup(c->sub, NULL, NULL, err, errlen) < 0)
        return -EINVAL;
    if (zmq_connect(c->sub, c->live_ep) != 0)
        goto fail;
    return 0;
fail:
    snprintf(err, errlen, "cannot connect to the live endpoint %s: %s", c->live_ep,
             zmq_strerror(zmq_errno()));
    return -EINVAL;
}

/* Until the SUB's subscription is certainly at the collector (or a timeout:
 * then the live feed is missing and history is all we get). */
static int wait_subscribed(tvn_conn *c)
{
    int64_t give_up = now_ms() + TVN_REQ_TIMEOUT_MS;
    for (;;) {
        int64_t t = now_ms();
        if (c->sub_ready_ms && t >= c->sub_ready_ms)
            return 1;
        if (t >= give_up)
            return 0;
        int rc = pump(c, 20);
        if (rc < 0)
            return rc;
    }
}

/* The UI could not open the store file after all: forget the points
 * delivered (LIVE only, no history) and fetch every series from the API. */
static void history_from_api(tvn_conn *c)
{
    c->file_mode = 0;
    for (size_t i = 0; i < c->nser; i++)
        c->ser[i].gens_seen = -1;   /* list_series then resets and refetches it whole */
    for (size_t i = 0; i < c->nruns; i++)
        c->runs[i].stale = 1;
    c->need_runs = 1;
}

/* READY: LIVE flows; heartbeat and refresh over the API. */
static int follow(tvn_conn *c, int live_ok, char *err, size_t errlen)
{
    int64_t next_ping = now_ms() + TVN_PING_MS, next_refresh = now_ms() + TVN_REFRESH_MS;
    int64_t last_sync = 0;
    for (;;) {
        int rc = pump(c, 20);
        if (rc < 0)
            return rc;
        int64_t t = now_ms();
        if (c->file_mode && atomic_load(&c->file_failed))
            history_from_api(c);
        /* A series LIVE names may not be committed yet (the API does not
         * list it): ask again, but not more than every 250 ms. */
        if ((c->need_runs && t >= last_sync + 250) || t >= next_refresh) {
            last_sync = t;
            next_refresh = t + TVN_REFRESH_MS;
            next_ping = t + TVN_PING_MS;
            if (!live_ok)   /* no live feed: history is the only source of new points */
                for (size_t i = 0; i < c->nruns; i++)
                    c->runs[i].stale = 1;
            int all_findings = t >= c->next_findings_all;
            if (all_findings)
                c->next_findings_all = t + TVN_FINDINGS_ALL_MS;
            if ((rc = sync_all(c, 0, all_findings, err, errlen)) < 0)
                return rc;
            for (size_t i = 0; i < c->nser; i++)
                release(c, &c->ser[i]);
        } else if (t >= next_ping) {
            next_ping = t + TVN_PING_MS;
            reply r;
            cJSON *req = op("info");
            rc = request(c, req, &r, err, errlen);
            cJSON_Delete(req);
            if (rc < 0)
                return rc;
            reply_free(&r);
        }
    }
}

/* One connection, from `info` to the collector going away. */
static int session(tvn_conn *c, char *err, size_t errlen)
{
    int rc;
    c->session++;
    c->live_lost = 0;
    if ((rc = open_dealer(c, err, errlen)) < 0)
        return rc;
    if ((rc = ask_info(c, err, errlen)) < 0)
        return rc;
    c->hold = !c->file_mode;   /* the file has every committed point: no hole to close */
    int again = c->ever_connected;
    c->ever_connected = 1;
    set_state(c, again ? TVM_RECONNECTING : TVM_CONNECTING,
              "connected to the collector at %s; loading history", c->api_ep);
    if ((rc = derive_live(c, err, errlen)) < 0 || (rc = open_sub(c, err, errlen)) < 0)
        return rc;
    /* First pass: history as it is now, for a quick first picture. */
    if ((rc = sync_all(c, 1, 1, err, errlen)) < 0)
        return rc;
    item *listed = item_new(IT_LISTED, 0);
    if (!listed)
        return -ENOMEM;
    push(c, listed);
    int live_ok = wait_subscribed(c);
    if (live_ok < 0)
        return live_ok;
    /* Second pass: what was committed before the subscription took effect;
     * then the held LIVE points, whose overlap with it the merge drops. */
    if ((rc = sync_all(c, 1, 1, err, errlen)) < 0)
        return rc;
    c->hold = 0;
    for (size_t i = 0; i < c->nser; i++)
        release(c, &c->ser[i]);
    if (again)
        stat_add(c, &c->stats.reconnects, 1);
    if (live_ok)
        set_state(c, TVM_READY, "following the collector at %s live", c->api_ep);
    else
        set_state(c, TVM_READY, "connected to %s, but its live feed %s does not answer: "
                  "new points come from history, once a second", c->api_ep, c->live_ep);
    return follow(c, live_ok, err, errlen);
}

static void *net_thread(void *arg)
{
    tvn_conn *c = arg;
    char err[1024];
    while (!atomic_load(&c->stop)) {
        err[0] = 0;
        int rc = session(c, err, sizeof err);
        close_sockets(c);
        if (rc == -EINTR)
            break;
        if (rc != -ETIMEDOUT && rc != -ECONNRESET) {
            set_state(c, TVM_FAILED, "%s", err[0] ? err : "out of memory");
            break;
        }
        /* Timed out or dropped: the collector is not there (yet, or any more). */
        if (c->ever_connected)
            set_state(c, TVM_RECONNECTING, "lost the collector at %s: reconnecting "
                      "(showing what was received)", c->api_ep);
        else
            set_state(c, TVM_CONNECTING, "no answer from a collector at %s (is it running, is this "
                      "its API endpoint, and if it requires CURVE keys, are TRAINSCOPE_SERVER_KEY "
                      "and TRAINSCOPE_CLIENT_KEY set to an allowed key?); still trying", c->api_ep);
        int64_t until = now_ms() + TVN_RETRY_MS;
        while (!atomic_load(&c->stop) && now_ms() < until) {
            struct timespec ts = { 0, 20 * 1000000L };
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

/* ---- public ------------------------------------------------------------- */

/* "ENDPOINT[?OPT&OPT...]" with OPT live=ENDPOINT, history=api or history=file. */
static int parse_where(tvn_conn *c, const char *where, char *err, size_t errlen)
{
    if (strncmp(where, "tcp://", 6) != 0 && strncmp(where, "ipc://", 6) != 0) {
        snprintf(err, errlen, "'%s' is not a collector endpoint (tcp://HOST:PORT or ipc://PATH)", where);
        return -EINVAL;
    }
    const char *q = strchr(where, '?');
    size_t len = q ? (size_t)(q - where) : strlen(where);
    if (len >= sizeof c->api_ep || len <= 6) {
        snprintf(err, errlen, "'%s' is not a collector endpoint (empty or too long)", where);
        return -EINVAL;
    }
    memcpy(c->api_ep, where, len);
    c->api_ep[len] = 0;
    while (q) {
        const char *opt = q + 1, *end = strchr(opt, '&');
        size_t olen = end ? (size_t)(end - opt) : strlen(opt);
        if (olen == 11 && strncmp(opt, "history=api", 11) == 0) {
            c->history_file = 0;
        } else if (olen == 12 && strncmp(opt, "history=file", 12) == 0) {
            c->history_file = 1;
        } else if (olen > 11 && olen - 5 < sizeof c->live_opt && strncmp(opt, "live=", 5) == 0 &&
                   (strncmp(opt + 5, "tcp://", 6) == 0 || strncmp(opt + 5, "ipc://", 6) == 0)) {
            snprintf(c->live_opt, sizeof c->live_opt, "%.*s", (int)(olen - 5), opt + 5);
        } else {
            snprintf(err, errlen, "'%s': after '?' only live=tcp://... (or ipc://...) and "
                     "history=api or history=file are understood, joined by '&'", where);
            return -EINVAL;
        }
        q = end;
    }
    return 0;
}

int tvn_open(tvn_conn **out, const char *where, const tvn_opts *opts, char *err, size_t errlen)
{
    int rc;
    tvn_conn *c = calloc(1, sizeof *c);
    *out = NULL;
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    pthread_mutex_init(&c->mu, NULL);
    c->tailp = &c->head;
    atomic_init(&c->stop, 0);
    atomic_init(&c->file_failed, 0);
    atomic_init(&c->queued, 0);
    c->st = TVM_CONNECTING;
    c->unit = 1;
    c->page_points = opts && opts->page_points ? opts->page_points : TVN_PAGE_POINTS;
    if ((rc = parse_where(c, where, err, errlen)) < 0)
        goto fail;
    snprintf(c->msg, sizeof c->msg, "connecting to the collector at %s", c->api_ep);
    if (opts && opts->runs && opts->nruns) {
        c->filter = calloc(opts->nruns, sizeof *c->filter);
        if (!c->filter)
            goto oom;
        c->nfilter = opts->nruns;
        for (size_t i = 0; i < opts->nruns; i++)
            if (!(c->filter[i] = strdup(opts->runs[i])))
                goto oom;
    }
    if (!(c->zctx = zmq_ctx_new()))
        goto oom;
    /* The thread must not take the process's signals (SIGINT belongs to
     * the UI), so it starts with every signal blocked. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    rc = -pthread_create(&c->thread, NULL, net_thread, c);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc < 0) {
        snprintf(err, errlen, "cannot start the network thread: %s", strerror(-rc));
        goto fail;
    }
    c->started = 1;
    *out = c;
    return 0;
oom:
    rc = -ENOMEM;
    snprintf(err, errlen, "out of memory");
fail:
    tvn_close(c);
    return rc;
}

void tvn_close(tvn_conn *c)
{
    if (!c)
        return;
    if (c->started) {
        atomic_store(&c->stop, 1);
        pthread_join(c->thread, NULL);
    }
    close_sockets(c);
    if (c->zctx)
        zmq_ctx_term(c->zctx);
    for (item *it = c->head, *next; it; it = next) {
        next = it->next;
        item_free(it);
    }
    for (item *it = c->ui_list, *next; it; it = next) {
        next = it->next;
        item_free(it);
    }
    forget_all(c);
    free(c->scratch);
    for (size_t i = 0; i < c->nfilter; i++)
        free(c->filter[i]);
    free(c->filter);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* Hand one item to the sink; for points, at most *budget of them from
 * it->off on. Returns 1 when the item is done. */
static int hand_over(item *it, const tvn_sink *k, void *ctx, size_t *budget)
{
    switch (it->kind) {
    case IT_STATE: if (k->state) k->state(ctx, it->st, it->text); break;
    case IT_INFO: if (k->info) k->info(ctx, it->text, it->unit, it->use_file); break;
    case IT_RUNS: if (k->runs) k->runs(ctx, it->arr, it->n); break;
    case IT_SERIES: if (k->series) k->series(ctx, it->id, it->arr, it->n); break;
    case IT_EVENTS: if (k->events) k->events(ctx, it->id, it->arr, it->n); break;
    case IT_GAPS: if (k->gaps) k->gaps(ctx, it->id, it->arr, it->n); break;
    case IT_FINDINGS: if (k->findings) k->findings(ctx, it->id, it->arr, it->n); break;
    case IT_RESET: if (k->reset) k->reset(ctx, it->id, it->reset_pts, it->n); break;
    case IT_LISTED: if (k->listed) k->listed(ctx); break;
    case IT_POINTS: {
        size_t m = it->n - it->off < *budget ? it->n - it->off : *budget;
        if (k->points && m)
            k->points(ctx, it->id, it->pts + it->off, m);
        it->off += m;
        *budget -= m;
        return it->off == it->n;
    }
    }
    return 1;
}

size_t tvn_drain(tvn_conn *c, const tvn_sink *k, void *ctx)
{
    if (!c->ui_list && atomic_load(&c->queued) == 0)
        return 0;
    if (!c->ui_list) {
        pthread_mutex_lock(&c->mu);
        c->ui_list = c->head;
        c->head = NULL;
        c->tailp = &c->head;
        atomic_store(&c->queued, 0);
        pthread_mutex_unlock(&c->mu);
    }
    /* A long history arrives in pages of up to TVN_PAGE_POINTS; adding
     * them to the model takes the UI thread's time, so one call stops
     * after TVN_DRAIN_MS (checked every TVN_DRAIN_STEP points) and keeps
     * the rest for the next. */
    size_t n = 0;
    int64_t until = now_ms() + TVN_DRAIN_MS;
    while (c->ui_list) {
        item *it = c->ui_list;
        size_t budget = TVN_DRAIN_STEP;
        if (!hand_over(it, k, ctx, &budget)) {
            if (now_ms() >= until)
                break;
            continue;
        }
        c->ui_list = it->next;
        item_free(it);
        n++;
        if (budget == 0 && now_ms() >= until)
            break;
    }
    return n;
}

enum tvm_state tvn_state(tvn_conn *c, const char **message)
{
    pthread_mutex_lock(&c->mu);
    enum tvm_state st = c->st;
    snprintf(c->ui_msg, sizeof c->ui_msg, "%s", c->msg);
    pthread_mutex_unlock(&c->mu);
    if (message)
        *message = c->ui_msg;
    return st;
}

void tvn_get_stats(tvn_conn *c, tvn_stats *s)
{
    pthread_mutex_lock(&c->mu);
    *s = c->stats;
    pthread_mutex_unlock(&c->mu);
}

void tvn_history_from_api(tvn_conn *c)
{
    atomic_store(&c->file_failed, 1);
}
