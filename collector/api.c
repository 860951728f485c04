/* api.c - the query API (PROTOCOL.md "Query API"): a ROUTER that answers one
 * JSON request frame with one JSON frame, plus one binary frame for points
 * and buckets. REQ peers put an empty delimiter frame before the request;
 * the reply repeats it, so REQ and DEALER clients both work.
 *
 * It runs in its own thread with its own read-only store handle: readers see
 * what the collector has committed, and a large query never delays ingest,
 * commits or ACKs (which run in the collector's thread).
 *
 * The one op that writes, `annotate` (an event into a run), does not write
 * here: the store has a single writer, the collector's thread. The API
 * thread checks the request, hands it over an inproc PAIR channel (the
 * "write channel") and waits for the collector thread, which applies it to
 * its writer handle, commits, and answers (tcl__api_serve_writes).
 *
 * Knobs: API_MAX_REQUEST bounds a request message; API_MAX_POINTS bounds a
 * `points` reply (beyond it the client is told to ask for buckets);
 * API_MAX_BUCKETS is the protocol's limit on `n`; API_WRITE_WAIT_MS how long
 * an annotate waits for the collector thread.
 */
#include "collector_int.h"

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
#include <zmq.h>

#include "security.h"
#include "store.h"
#include "tda_report.h"
#include "wire.h"

#define API_MAX_REQUEST (1 << 20)
#define API_MAX_POINTS 50000000
#define API_MAX_BUCKETS 100000
#define API_BURST 64             /* requests served before the stop flag is checked again */
#define API_WRITE_WAIT_MS 5000

struct tcl__api {
    void *router;
    tss_store *st;          /* read-only handle, used only by the thread */
    char *store_path;
    char live[256];         /* the live endpoint a viewer can connect to, or "" */
    char endpoint[256];
    pthread_t thread;
    int started;
    atomic_int stop;
    void *writes;           /* write channel, the API thread's end (PAIR) */
    void *writes_peer;      /* its other end, used only by the collector thread */
    uint64_t write_seq;     /* numbers write requests, so a late answer is not taken for the next */
};

/* One request being answered. */
typedef struct api_req {
    cJSON *req;
    cJSON *reply;           /* the JSON reply under construction */
    void *bin;              /* optional binary frame, malloc'd, handed to zmq */
    size_t bin_len;
    char err[512];          /* set => reply {"ok":false,"error":err} */
} api_req;

/* ---- JSON helpers ------------------------------------------------------ */

/* int64 as an exact JSON number: cJSON holds numbers as doubles, which would
 * round nanosecond timestamps (> 2^53). */
static void add_i64(cJSON *obj, const char *key, int64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    cJSON_AddRawToObject(obj, key, buf);
}

/* Non-finite floats are not JSON: written as null. Finite ones with the
 * fewest digits that parse back to the same bits: cJSON's own printing
 * settles for 15 digits that are merely close. */
static void add_f64(cJSON *obj, const char *key, double v)
{
    char buf[40];
    if (!isfinite(v)) {
        cJSON_AddNullToObject(obj, key);
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    cJSON_AddRawToObject(obj, key, buf);
}

static void fail(api_req *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(api_req *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, sizeof r->err, fmt, ap);
    va_end(ap);
}

/* An optional integer field; 1 when present and valid, 0 when absent, -1 on
 * error (r->err set). JSON numbers are doubles: values past the int64 range
 * are clamped to it. */
static int get_int(api_req *r, const char *key, int64_t *out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(r->req, key);
    if (!it || cJSON_IsNull(it))
        return 0;
    double d = it->valuedouble;
    if (!cJSON_IsNumber(it) || d != floor(d) || isnan(d)) {
        fail(r, "\"%s\" must be an integer", key);
        return -1;
    }
    if (d >= 9223372036854775808.0)
        *out = INT64_MAX;
    else if (d <= -9223372036854775808.0)
        *out = INT64_MIN;
    else
        *out = (int64_t)d;
    return 1;
}

static int get_series(api_req *r, int64_t *series)
{
    int rc = get_int(r, "series", series);
    if (rc == 0)
        fail(r, "this op needs \"series\" (a series id from the series op)");
    if (rc == 1 && *series <= 0) {
        fail(r, "\"series\" must be a positive series id");
        rc = -1;
    }
    return rc == 1 ? 0 : -1;
}

static int get_run(api_req *r, tss_store *st, int64_t *run_id)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(r->req, "run");
    if (!cJSON_IsString(it)) {
        fail(r, "this op needs \"run\" (a run name, or project/name)");
        return -1;
    }
    int rc = tss_find_run(st, it->valuestring, run_id);
    if (rc == -ENOENT)
        fail(r, "unknown run '%s'", it->valuestring);
    else if (rc < 0)
        fail(r, "store error: %s", tss_errmsg(st));
    return rc;
}

/* from/to: both optional (whole series) unless required; from <= to. */
static int get_range(api_req *r, int required, int64_t *from, int64_t *to)
{
    int hf, ht;
    *from = INT64_MIN;
    *to = INT64_MAX;
    if ((hf = get_int(r, "from", from)) < 0 || (ht = get_int(r, "to", to)) < 0)
        return -1;
    if (required && (!hf || !ht)) {
        fail(r, "this op needs \"from\" and \"to\" (steps)");
        return -1;
    }
    if (*from > *to) {
        fail(r, "bad range: \"from\" is after \"to\"");
        return -1;
    }
    return 0;
}

static void store_fail(api_req *r, tss_store *st, int rc, int64_t series)
{
    if (rc == -ENOENT) {
        fail(r, "unknown series %" PRId64, series);
    } else {
        fail(r, "store error: %s", tss_errmsg(st));
    }
}

/* ---- ops ---------------------------------------------------------------- */

static void op_info(tcl__api *a, api_req *r)
{
    cJSON_AddNumberToObject(r->reply, "protocol", TSW_VERSION);
    cJSON_AddStringToObject(r->reply, "version", TCL_VERSION);
    cJSON_AddStringToObject(r->reply, "store", a->store_path);
    add_i64(r->reply, "time_unit_ns", tss_time_unit_ns(a->st));
    if (a->live[0])
        cJSON_AddStringToObject(r->reply, "live", a->live);
}

static void op_runs(tcl__api *a, api_req *r)
{
    tss_run *runs = NULL;
    size_t n = 0;
    int rc = tss_list_runs(a->st, &runs, &n);
    if (rc < 0) {
        fail(r, "store error: %s", tss_errmsg(a->st));
        return;
    }
    cJSON *arr = cJSON_AddArrayToObject(r->reply, "runs");
    for (size_t i = 0; i < n; i++) {
        const tss_run *u = &runs[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(arr, o);
        add_i64(o, "id", u->id);
        cJSON_AddStringToObject(o, "project", u->project ? u->project : "");
        cJSON_AddStringToObject(o, "name", u->name ? u->name : "");
        cJSON_AddStringToObject(o, "status", u->status ? u->status : "");
        add_i64(o, "world_size", u->world_size);
        add_i64(o, "created_ns", u->created_ns);
        add_i64(o, "updated_ns", u->updated_ns);
        add_i64(o, "ended_ns", u->ended_ns);
        add_i64(o, "points", u->points);
        add_i64(o, "series", u->series);
        add_i64(o, "dropped", u->dropped);
        add_i64(o, "resumes", u->resumes);
        cJSON *cfg = u->config ? cJSON_Parse(u->config) : NULL;
        cJSON_AddItemToObject(o, "config", cfg ? cfg : cJSON_CreateNull());
    }
    tss_free_runs(runs, n);
}

static void op_series(tcl__api *a, api_req *r)
{
    int64_t run_id;
    tss_series *s = NULL;
    size_t n = 0;
    if (get_run(r, a->st, &run_id) < 0)
        return;
    if (tss_list_series(a->st, run_id, &s, &n) < 0) {
        fail(r, "store error: %s", tss_errmsg(a->st));
        return;
    }
    cJSON *arr = cJSON_AddArrayToObject(r->reply, "series");
    for (size_t i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(arr, o);
        add_i64(o, "id", s[i].id);
        add_i64(o, "rank", s[i].rank);
        cJSON_AddStringToObject(o, "name", s[i].name ? s[i].name : "");
        add_i64(o, "count", s[i].count);
        add_i64(o, "step_first", s[i].step_first);
        add_i64(o, "step_last", s[i].step_last);
        add_i64(o, "t_first_ns", s[i].t_first_ns);
        add_i64(o, "t_last_ns", s[i].t_last_ns);
        add_f64(o, "min", s[i].vmin);
        add_f64(o, "max", s[i].vmax);
        add_i64(o, "n_nan", s[i].n_nan);
        add_i64(o, "n_inf", s[i].n_inf);
        add_i64(o, "generations", s[i].generations);
    }
    tss_free_series(s, n);
}

static void op_events(tcl__api *a, api_req *r)
{
    int64_t run_id;
    tss_event *ev = NULL;
    size_t n = 0;
    if (get_run(r, a->st, &run_id) < 0)
        return;
    if (tss_list_events(a->st, run_id, &ev, &n) < 0) {
        fail(r, "store error: %s", tss_errmsg(a->st));
        return;
    }
    cJSON *arr = cJSON_AddArrayToObject(r->reply, "events");
    for (size_t i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(arr, o);
        add_i64(o, "id", ev[i].id);
        add_i64(o, "step", ev[i].step);
        add_i64(o, "t_ns", ev[i].t_ns);
        add_i64(o, "rank", ev[i].rank);
        cJSON_AddStringToObject(o, "kind", ev[i].kind ? ev[i].kind : "");
        cJSON_AddStringToObject(o, "text", ev[i].text ? ev[i].text : "");
    }
    tss_free_events(ev, n);
}

/* Samples publishers reported dropped (DROPS), so viewers break lines. */
/* The run's findings (analysis/): each with its detail, the finding as the
 * JSON of docs/report-schema.md, parsed so the reply stays one document. */
static void op_findings(tcl__api *a, api_req *r)
{
    int64_t run_id;
    tss_finding *f = NULL;
    size_t n = 0;
    if (get_run(r, a->st, &run_id) < 0)
        return;
    if (tss_list_findings(a->st, run_id, &f, &n) < 0) {
        fail(r, "store error: %s", tss_errmsg(a->st));
        return;
    }
    cJSON *arr = cJSON_AddArrayToObject(r->reply, "findings");
    for (size_t i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(arr, o);
        add_i64(o, "id", f[i].id);
        add_i64(o, "series", f[i].series_id);
        add_i64(o, "rank", f[i].rank);
        cJSON_AddStringToObject(o, "metric", f[i].series ? f[i].series : "");
        cJSON_AddStringToObject(o, "kind", f[i].kind ? f[i].kind : "");
        cJSON_AddStringToObject(o, "severity", f[i].severity ? f[i].severity : "");
        add_i64(o, "step_first", f[i].step_first);
        add_i64(o, "step_last", f[i].step_last);
        add_i64(o, "t_ns", f[i].t_ns);
        cJSON_AddStringToObject(o, "source", f[i].source ? f[i].source : "");
        cJSON *detail = f[i].detail ? cJSON_Parse(f[i].detail) : NULL;
        if (detail)
            cJSON_AddItemToObject(o, "detail", detail);
        else
            cJSON_AddNullToObject(o, "detail");
    }
    tss_free_findings(f, n);
}

/* The run's report, the document of `trainscope report --json`
 * (docs/report-schema.md) under "report", built by the same function from
 * this thread's read-only handle, so a client on another machine gets it
 * without the store file. The offline pass uses the report command's
 * default detector settings; it reads every point of the run (and of
 * "against"), so a large run holds the other queries back while it runs. */
static void op_report(tcl__api *a, api_req *r)
{
    const cJSON *run = cJSON_GetObjectItemCaseSensitive(r->req, "run");
    const cJSON *against = cJSON_GetObjectItemCaseSensitive(r->req, "against");
    const cJSON *tol = cJSON_GetObjectItemCaseSensitive(r->req, "tolerance");
    double tolerance = 0.05;
    cJSON *doc;
    if (!cJSON_IsString(run)) {
        fail(r, "this op needs \"run\" (a run name, or project/name)");
        return;
    }
    if (against && !cJSON_IsNull(against) && !cJSON_IsString(against)) {
        fail(r, "\"against\" must be a run name");
        return;
    }
    if (tol && !cJSON_IsNull(tol)) {
        if (!cJSON_IsNumber(tol) || !(tol->valuedouble > 0) || !isfinite(tol->valuedouble)) {
            fail(r, "\"tolerance\" must be a positive number (relative difference, e.g. 0.05)");
            return;
        }
        tolerance = tol->valuedouble;
    }
    if (tda_report_json(a->st, run->valuestring, cJSON_IsString(against) ? against->valuestring : NULL,
                        tolerance, NULL, &doc, r->err, sizeof r->err) < 0) {
        if (!r->err[0])
            fail(r, "the report failed");
        return;
    }
    cJSON_AddItemToObject(r->reply, "report", doc);
}

static void op_gaps(tcl__api *a, api_req *r)
{
    int64_t run_id;
    tss_gap *g = NULL;
    size_t n = 0;
    if (get_run(r, a->st, &run_id) < 0)
        return;
    if (tss_list_gaps(a->st, run_id, &g, &n) < 0) {
        fail(r, "store error: %s", tss_errmsg(a->st));
        return;
    }
    cJSON *arr = cJSON_AddArrayToObject(r->reply, "gaps");
    for (size_t i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(arr, o);
        add_i64(o, "rank", g[i].rank);
        add_i64(o, "count", g[i].count);
        add_i64(o, "step_first", g[i].step_first);
        add_i64(o, "step_last", g[i].step_last);
        add_i64(o, "t_first_ns", g[i].t_first_ns);
        add_i64(o, "t_last_ns", g[i].t_last_ns);
    }
    tss_free_gaps(g);
}

static void op_points(tcl__api *a, api_req *r)
{
    int64_t series, from, to;
    tss_bucket all;
    tss_point *pts = NULL;
    size_t n = 0;
    int rc;
    if (get_series(r, &series) < 0 || get_range(r, 0, &from, &to) < 0)
        return;
    int flags = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r->req, "all_timelines"))
                ? TSS_ALL_TIMELINES : 0;
    /* Count first from the chunk summaries, so an enormous request is
     * refused before anything is decoded or allocated. */
    if ((rc = tss_read_buckets(a->st, series, from, to, 1, &all)) < 0) {
        store_fail(r, a->st, rc, series);
        return;
    }
    if (all.count <= API_MAX_POINTS &&
        (rc = tss_read_points(a->st, series, from, to, flags, &pts, &n)) < 0) {
        store_fail(r, a->st, rc, series);
        return;
    }
    if (all.count > API_MAX_POINTS || n > API_MAX_POINTS) {
        free(pts);
        fail(r, "too many points in that range (limit 50000000): ask for buckets, or a narrower range");
        return;
    }
    /* Encode in place: entry i (24 bytes) never overtakes tss_point i+1. */
    uint8_t *out = (uint8_t *)pts;
    for (size_t i = 0; i < n; i++) {
        tss_point p = pts[i];
        tsw_live_point_encode(out + i * TSW_LIVE_POINT, p.step, p.t_ns, p.value);
    }
    add_i64(r->reply, "count", (int64_t)n);
    r->bin = pts;
    r->bin_len = n * TSW_LIVE_POINT;
}

#define BUCKET_WIRE 56   /* i64 count, i64 step_first, i64 step_last, f64 min, max, first, last */

static void op_buckets(tcl__api *a, api_req *r)
{
    int64_t series, from, to, nb = 0;
    int rc;
    if (get_series(r, &series) < 0 || get_range(r, 1, &from, &to) < 0)
        return;
    if ((rc = get_int(r, "n", &nb)) <= 0 || nb < 1 || nb > API_MAX_BUCKETS) {
        if (rc >= 0)
            fail(r, "\"n\" must be an integer from 1 to 100000");
        return;
    }
    tss_bucket *b = calloc((size_t)nb, sizeof *b);
    uint8_t *out = malloc((size_t)nb * BUCKET_WIRE);
    if (!b || !out) {
        fail(r, "out of memory");
        goto done;
    }
    if ((rc = tss_read_buckets(a->st, series, from, to, (size_t)nb, b)) < 0) {
        store_fail(r, a->st, rc, series);
        goto done;
    }
    for (int64_t i = 0; i < nb; i++) {
        uint8_t *p = out + i * BUCKET_WIRE;
        tsw_put_u64(p, (uint64_t)b[i].count);
        tsw_put_u64(p + 8, (uint64_t)b[i].step_first);
        tsw_put_u64(p + 16, (uint64_t)b[i].step_last);
        tsw_put_u64(p + 24, tsw_double_bits(b[i].min));
        tsw_put_u64(p + 32, tsw_double_bits(b[i].max));
        tsw_put_u64(p + 40, tsw_double_bits(b[i].first));
        tsw_put_u64(p + 48, tsw_double_bits(b[i].last));
    }
    add_i64(r->reply, "count", nb);
    r->bin = out;
    r->bin_len = (size_t)nb * BUCKET_WIRE;
    out = NULL;
done:
    free(out);
    free(b);
}

/* The write channel carries one JSON object per message: a request
 * {"seq","run_id","rank","step","t_ns","kind","text"} to the collector
 * thread, {"seq","error"?} back. */
static void op_annotate(tcl__api *a, api_req *r)
{
    int64_t run_id, step, rank = 0;
    int rc;
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(r->req, "kind");
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(r->req, "text");
    if (get_run(r, a->st, &run_id) < 0 || (rc = get_int(r, "step", &step)) < 0 ||
        get_int(r, "rank", &rank) < 0)
        return;
    if (rc == 0) {
        fail(r, "annotate needs \"step\" (the step the event belongs to)");
        return;
    }
    if (rank < 0 || rank > INT32_MAX) {
        fail(r, "\"rank\" must be from 0 to 2147483647");
        return;
    }
    if (!cJSON_IsString(text) || strlen(text->valuestring) > TSW_MAX_TEXT) {
        fail(r, "annotate needs \"text\", a string of at most %d bytes", TSW_MAX_TEXT);
        return;
    }
    if (kind && (!cJSON_IsString(kind) || !kind->valuestring[0] || strlen(kind->valuestring) > TSW_MAX_KIND)) {
        fail(r, "\"kind\" must be a string of 1 to %d bytes (default \"note\")", TSW_MAX_KIND);
        return;
    }
    cJSON *w = cJSON_CreateObject();
    uint64_t seq = ++a->write_seq;
    add_i64(w, "seq", (int64_t)seq);
    add_i64(w, "run_id", run_id);
    add_i64(w, "rank", rank);
    add_i64(w, "step", step);
    add_i64(w, "t_ns", tcl__wall_ns());
    cJSON_AddStringToObject(w, "kind", kind ? kind->valuestring : "note");
    cJSON_AddStringToObject(w, "text", text->valuestring);
    char *msg = cJSON_PrintUnformatted(w);
    cJSON_Delete(w);
    if (!msg || zmq_send(a->writes, msg, strlen(msg), 0) < 0) {
        free(msg);
        fail(r, "cannot hand the event to the collector's writer");
        return;
    }
    free(msg);
    /* Wait for the answer to this request; a stopping collector ends the
     * wait within 100 ms. */
    zmq_pollitem_t it = { .socket = a->writes, .events = ZMQ_POLLIN };
    for (int64_t until = tcl__now_ms() + API_WRITE_WAIT_MS; !atomic_load(&a->stop) && tcl__now_ms() < until;) {
        if (zmq_poll(&it, 1, 100) <= 0)
            continue;
        zmq_msg_t m;
        zmq_msg_init(&m);
        cJSON *ans = zmq_msg_recv(&m, a->writes, 0) >= 0
                     ? cJSON_ParseWithLength(zmq_msg_data(&m), zmq_msg_size(&m)) : NULL;
        zmq_msg_close(&m);
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(ans, "seq");
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(ans, "error");
        int mine = cJSON_IsNumber(s) && (uint64_t)s->valuedouble == seq;
        if (mine && cJSON_IsString(e))
            fail(r, "%s", e->valuestring);
        cJSON_Delete(ans);
        if (mine)
            return;
    }
    fail(r, "the collector's writer did not answer within %d ms; the event may still be written",
         API_WRITE_WAIT_MS);
}

static const struct {
    const char *name;
    void (*fn)(tcl__api *, api_req *);
} OPS[] = {
    { "info", op_info }, { "runs", op_runs }, { "series", op_series },
    { "events", op_events }, { "gaps", op_gaps }, { "findings", op_findings },
    { "points", op_points },
    { "buckets", op_buckets },
    { "report", op_report },
    { "annotate", op_annotate },
};

/* Fill r->reply or r->err from the request text. */
static void dispatch(tcl__api *a, api_req *r, const char *text, size_t len)
{
    r->req = cJSON_ParseWithLength(text, len);
    if (!cJSON_IsObject(r->req)) {
        fail(r, "the request is not a JSON object");
        return;
    }
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(r->req, "op");
    if (!cJSON_IsString(op)) {
        fail(r, "the request has no \"op\" string");
        return;
    }
    for (size_t i = 0; i < sizeof OPS / sizeof OPS[0]; i++) {
        if (strcmp(op->valuestring, OPS[i].name) == 0) {
            cJSON_AddTrueToObject(r->reply, "ok");
            OPS[i].fn(a, r);
            return;
        }
    }
    fail(r, "unknown op '%s' (info, runs, series, events, gaps, findings, report, points, buckets, annotate)", op->valuestring);
}

static void free_bin(void *data, void *hint)
{
    (void)hint;
    free(data);
}

/* Send [identity][delimiter?][json][binary?]. Replies to a peer that has
 * gone are dropped by the ROUTER (ROUTER_MANDATORY is off). */
static void send_reply(tcl__api *a, zmq_msg_t *ident, int delim, api_req *r)
{
    cJSON *out = r->reply;
    cJSON *errobj = NULL;
    if (r->err[0]) {
        errobj = cJSON_CreateObject();
        cJSON_AddFalseToObject(errobj, "ok");
        cJSON_AddStringToObject(errobj, "error", r->err);
        out = errobj;
        free(r->bin);
        r->bin = NULL;
    }
    char *json = cJSON_PrintUnformatted(out);
    cJSON_Delete(errobj);
    const char *text = json ? json : "{\"ok\":false,\"error\":\"out of memory\"}";
    zmq_msg_send(ident, a->router, ZMQ_SNDMORE);
    if (delim)
        zmq_send(a->router, "", 0, ZMQ_SNDMORE);
    zmq_send(a->router, text, strlen(text), r->bin ? ZMQ_SNDMORE : 0);
    free(json);
    if (r->bin) {
        zmq_msg_t m;
        if (zmq_msg_init_data(&m, r->bin, r->bin_len, free_bin, NULL) == 0) {
            if (zmq_msg_send(&m, a->router, 0) < 0)
                zmq_msg_close(&m);
        } else {
            free(r->bin);
        }
        r->bin = NULL;
    }
}

/* Receive one request (identity + frames) and answer it. Returns 0, or -1
 * when nothing was waiting. */
static int serve_one(tcl__api *a, zmq_msg_t *ident, zmq_msg_t *f0, zmq_msg_t *f1, zmq_msg_t *extra)
{
    int nframes = 0, more;
    if (zmq_msg_recv(ident, a->router, ZMQ_DONTWAIT) < 0)
        return -1;
    more = zmq_msg_more(ident);
    zmq_msg_t *slots[2] = { f0, f1 };
    while (more) {
        zmq_msg_t *m = nframes < 2 ? slots[nframes] : extra;
        if (zmq_msg_recv(m, a->router, 0) < 0)
            break;
        nframes++;
        more = zmq_msg_more(m);
    }
    api_req r = { .reply = cJSON_CreateObject() };
    int delim = nframes >= 1 && zmq_msg_size(f0) == 0;
    zmq_msg_t *body = delim ? f1 : f0;
    if (nframes != 1 + delim)
        fail(&r, "a request is one JSON frame (after an empty delimiter for REQ)");
    else if (!r.reply)
        fail(&r, "out of memory");
    else
        dispatch(a, &r, zmq_msg_data(body), zmq_msg_size(body));
    send_reply(a, ident, delim, &r);
    cJSON_Delete(r.req);
    cJSON_Delete(r.reply);
    return 0;
}

static void *api_thread(void *arg)
{
    tcl__api *a = arg;
    zmq_msg_t ident, f0, f1, extra;
    zmq_msg_init(&ident);
    zmq_msg_init(&f0);
    zmq_msg_init(&f1);
    zmq_msg_init(&extra);
    zmq_pollitem_t item = { .socket = a->router, .events = ZMQ_POLLIN };
    while (!atomic_load(&a->stop)) {
        /* The timeout bounds how long tcl__api_stop waits for us. */
        if (zmq_poll(&item, 1, 100) <= 0)
            continue;
        for (int i = 0; i < API_BURST && !atomic_load(&a->stop); i++)
            if (serve_one(a, &ident, &f0, &f1, &extra) < 0)
                break;
    }
    zmq_msg_close(&ident);
    zmq_msg_close(&f0);
    zmq_msg_close(&f1);
    zmq_msg_close(&extra);
    return NULL;
}

/* A wildcard address (tcp://0.0.0.0:P, tcp://[::]:P, a '*' host) is where
 * the collector listens, not where a viewer can connect: a viewer then
 * takes the API's host with the live port by itself, so `info` says nothing. */
static int wildcard_endpoint(const char *ep)
{
    return strstr(ep, "://0.0.0.0:") || strstr(ep, "://*:") || strstr(ep, "://[::]:") ||
           strstr(ep, "://::");
}

/* The write channel: a PAIR per end over inproc, named after this api. */
static int write_channel(void *zctx, tcl__api *a, char *err, size_t errlen)
{
    char ep[64];
    int linger = 0;
    snprintf(ep, sizeof ep, "inproc://tcl-api-writes-%p", (void *)a);
    a->writes = zmq_socket(zctx, ZMQ_PAIR);
    a->writes_peer = zmq_socket(zctx, ZMQ_PAIR);
    if (!a->writes || !a->writes_peer || zmq_bind(a->writes, ep) != 0 || zmq_connect(a->writes_peer, ep) != 0) {
        snprintf(err, errlen, "cannot set up the api's write channel: %s", zmq_strerror(zmq_errno()));
        return -EIO;
    }
    zmq_setsockopt(a->writes, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(a->writes_peer, ZMQ_LINGER, &linger, sizeof linger);
    return 0;
}

void *tcl__api_write_socket(tcl__api *a) { return a->writes_peer; }

static void write_answer(tcl__api *a, const cJSON *seq, const char *error)
{
    cJSON *ans = cJSON_CreateObject();
    cJSON_AddItemToObject(ans, "seq", seq ? cJSON_Duplicate(seq, 1) : cJSON_CreateNull());
    if (error)
        cJSON_AddStringToObject(ans, "error", error);
    char *text = cJSON_PrintUnformatted(ans);
    cJSON_Delete(ans);
    if (text)
        zmq_send(a->writes_peer, text, strlen(text), ZMQ_DONTWAIT);
    free(text);
}

static int64_t field_i64(const cJSON *o, const char *k)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(it) ? (int64_t)it->valuedouble : 0;
}

void tcl__api_serve_writes(tcl__api *a, tss_store *st, int (*commit)(void *ctx), void *ctx)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    while (zmq_msg_recv(&m, a->writes_peer, ZMQ_DONTWAIT) >= 0) {
        cJSON *w = cJSON_ParseWithLength(zmq_msg_data(&m), zmq_msg_size(&m));
        const cJSON *seq = cJSON_GetObjectItemCaseSensitive(w, "seq");
        const cJSON *kind = cJSON_GetObjectItemCaseSensitive(w, "kind");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(w, "text");
        char why[600];
        int rc;
        if (!st) {
            write_answer(a, seq, "the collector has lost its store and is reopening it; try again");
        } else if (!cJSON_IsString(kind) || !cJSON_IsString(text)) {
            write_answer(a, seq, "malformed write request");
        } else if ((rc = tss_event_add(st, field_i64(w, "run_id"), (int)field_i64(w, "rank"),
                                       field_i64(w, "step"), field_i64(w, "t_ns"), kind->valuestring,
                                       text->valuestring)) < 0) {
            snprintf(why, sizeof why, "cannot write the event: %s", tss_errmsg(st));
            write_answer(a, seq, why);
        } else if (commit(ctx) < 0) {
            /* The collector has closed st to reopen it: refuse the rest. */
            st = NULL;
            write_answer(a, seq, "the store's commit failed; the event was not written");
        } else {
            write_answer(a, seq, NULL);
        }
        cJSON_Delete(w);
    }
    zmq_msg_close(&m);
}

int tcl__api_start(void *zctx, const char *ep, const struct tsec_server *sec,
                   const char *store_path, const char *live_ep, tcl__api **out, char *err,
                   size_t errlen)
{
    int64_t maxmsg = API_MAX_REQUEST;
    int linger = 0, rc;
    size_t eplen;
    tss_open_opts ro = { .writer = 0 };
    tcl__api *a = calloc(1, sizeof *a);
    *out = NULL;
    /* `info` names the store by its absolute path, so that a viewer in
     * another directory can open it for reading. */
    if (a)
        a->store_path = realpath(store_path, NULL);
    if (a && !a->store_path)
        a->store_path = strdup(store_path);
    if (!a || !a->store_path) {
        snprintf(err, errlen, "out of memory");
        rc = -ENOMEM;
        goto fail;
    }
    if (live_ep && !wildcard_endpoint(live_ep))
        snprintf(a->live, sizeof a->live, "%s", live_ep);
    atomic_init(&a->stop, 0);
    if ((rc = tss_open(&a->st, store_path, &ro, err, errlen)) < 0)
        goto fail;
    if ((rc = write_channel(zctx, a, err, errlen)) < 0)
        goto fail;
    a->router = zmq_socket(zctx, ZMQ_ROUTER);
    if (!a->router) {
        rc = -zmq_errno();
        snprintf(err, errlen, "cannot create the api socket: %s", zmq_strerror(-rc));
        goto fail;
    }
    zmq_setsockopt(a->router, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    zmq_setsockopt(a->router, ZMQ_LINGER, &linger, sizeof linger);
    if (tsec_server_socket(sec, a->router) < 0 || zmq_bind(a->router, ep) != 0) {
        rc = -zmq_errno();
        snprintf(err, errlen, "cannot bind the api endpoint %s: %s", ep, zmq_strerror(-rc));
        goto fail;
    }
    eplen = sizeof a->endpoint;
    if (zmq_getsockopt(a->router, ZMQ_LAST_ENDPOINT, a->endpoint, &eplen) != 0)
        snprintf(a->endpoint, sizeof a->endpoint, "%s", ep);
    /* Thread creation is the memory barrier zmq asks for when a socket
     * moves to another thread; from here on only api_thread touches it.
     * The thread blocks every signal, so SIGINT/SIGTERM reach the ingest
     * thread and interrupt its zmq_poll at once. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    rc = -pthread_create(&a->thread, NULL, api_thread, a);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc < 0) {
        snprintf(err, errlen, "cannot start the api thread: %s", strerror(-rc));
        goto fail;
    }
    a->started = 1;
    *out = a;
    return 0;

fail:
    tcl__api_stop(a);
    return rc;
}

const char *tcl__api_endpoint(const tcl__api *a) { return a->endpoint; }

void tcl__api_stop(tcl__api *a)
{
    if (!a)
        return;
    if (a->started) {
        atomic_store(&a->stop, 1);
        pthread_join(a->thread, NULL);
    }
    if (a->router)
        zmq_close(a->router);
    if (a->writes)
        zmq_close(a->writes);
    if (a->writes_peer)
        zmq_close(a->writes_peer);
    tss_close(a->st);
    free(a->store_path);
    free(a);
}
