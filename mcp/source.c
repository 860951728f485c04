/* source.c - the runs behind the MCP tools: a store file (store.h readers)
 * or a collector's query API (PROTOCOL.md), both as store.h types.
 *
 * Knobs: API_TIMEOUT_MS, how long a query may go unanswered before the
 * collector counts as unreachable (the socket is then made anew, so a late
 * reply cannot be taken for the answer to the next request).
 */
#include "tmcp_source.h"

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

#include "keys.h"
#include "tda_report.h"
#include "wire.h"

#define API_TIMEOUT_MS 5000

struct tmcp_src {
    int remote;
    char *target;           /* as given */
    char *store_path;       /* the file, absolute when the collector named it */
    char err[1024];
    /* store file */
    tss_store *st;
    tss_chunks *chunks;     /* for the cheap change check */
    /* collector */
    void *zctx, *sock;
    int keyed;              /* CURVE was set up from the environment */
};

static int fail(tmcp_src *s, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(tmcp_src *s, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err, sizeof s->err, fmt, ap);
    va_end(ap);
    return rc;
}

static int store_fail(tmcp_src *s, int rc)
{
    return fail(s, rc == -ENOENT ? -ENOENT : -EIO, "%s", tss_errmsg(s->st));
}

const char *tmcp_src_errmsg(const tmcp_src *s) { return s->err; }
int tmcp_src_remote(const tmcp_src *s) { return s->remote; }
const char *tmcp_src_store_path(const tmcp_src *s) { return s->store_path; }

void tmcp_run_label(const tss_run *r, char *buf, size_t cap)
{
    if (r->project && r->project[0])
        snprintf(buf, cap, "%s/%s", r->project, r->name);
    else
        snprintf(buf, cap, "%s", r->name ? r->name : "");
}

void tmcp_run_clear(tss_run *run)
{
    free(run->project);
    free(run->name);
    free(run->status);
    free(run->config);
    memset(run, 0, sizeof *run);
}

/* ---- the collector's query API ----------------------------------------- */

static int api_socket(tmcp_src *s)
{
    char err[512];
    int zero = 0, rc;
    if (s->sock)
        zmq_close(s->sock);
    s->sock = zmq_socket(s->zctx, ZMQ_DEALER);
    if (!s->sock)
        return fail(s, -EIO, "cannot create a ZeroMQ socket: %s", zmq_strerror(zmq_errno()));
    zmq_setsockopt(s->sock, ZMQ_LINGER, &zero, sizeof zero);
    if ((rc = tkey_client_setup(s->sock, NULL, NULL, err, sizeof err)) < 0)
        return fail(s, -EINVAL, "%s", err);
    s->keyed = rc == 1;
    if (zmq_connect(s->sock, s->target) != 0)
        return fail(s, -EINVAL, "cannot connect to %s: %s", s->target, zmq_strerror(zmq_errno()));
    return 0;
}

/* Send req (consumed) and take the reply: *reply the JSON object with ok
 * true, *bin (may be NULL) the binary frame that follows, malloc'ed. An
 * {"ok":false} reply fails with its error sentence, -ENOENT when it names
 * an unknown run or series. text_out (may be NULL): the JSON frame's own
 * text, malloc'ed and NUL-terminated, for a caller that must pass numbers
 * on exactly, which the parsed doubles would not. */
static int api_call_text(tmcp_src *s, cJSON *req, cJSON **reply, void **bin, size_t *binlen, char **text_out)
{
    char *text = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    *reply = NULL;
    if (bin)
        *bin = NULL;
    if (text_out)
        *text_out = NULL;
    if (!text)
        return fail(s, -ENOMEM, "out of memory");
    int rc = zmq_send(s->sock, text, strlen(text), 0);
    free(text);
    if (rc < 0)
        return fail(s, -EIO, "cannot send to %s: %s", s->target, zmq_strerror(zmq_errno()));
    zmq_pollitem_t it = { .socket = s->sock, .events = ZMQ_POLLIN };
    if (zmq_poll(&it, 1, API_TIMEOUT_MS) <= 0) {
        rc = fail(s, -ETIMEDOUT, "no reply from the collector at %s within %d ms (is it running? %s)",
                  s->target, API_TIMEOUT_MS,
                  s->keyed ? "does it allow this client's key?"
                           : "does it use CURVE? then set TRAINSCOPE_SERVER_KEY and TRAINSCOPE_CLIENT_KEY");
        api_socket(s);
        return rc;
    }
    zmq_msg_t m;
    zmq_msg_init(&m);
    int part = 0, more = 1;
    rc = 0;
    while (more && zmq_msg_recv(&m, s->sock, 0) >= 0) {
        more = zmq_msg_more(&m);
        if (part++ == 0) {
            *reply = cJSON_ParseWithLength(zmq_msg_data(&m), zmq_msg_size(&m));
            if (text_out && (*text_out = malloc(zmq_msg_size(&m) + 1))) {
                memcpy(*text_out, zmq_msg_data(&m), zmq_msg_size(&m));
                (*text_out)[zmq_msg_size(&m)] = 0;
            }
        } else if (bin && part == 2 && (*bin = malloc(zmq_msg_size(&m) + 1))) {
            memcpy(*bin, zmq_msg_data(&m), zmq_msg_size(&m));
            *binlen = zmq_msg_size(&m);
        }
    }
    zmq_msg_close(&m);
    if (!cJSON_IsObject(*reply)) {
        rc = fail(s, -EIO, "the collector at %s sent a reply that is not JSON", s->target);
    } else if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(*reply, "ok"))) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(*reply, "error");
        const char *msg = cJSON_IsString(e) ? e->valuestring : "error without a message";
        rc = fail(s, strncmp(msg, "unknown ", 8) == 0 ? -ENOENT : -EIO, "%s", msg);
    }
    if (rc == 0 && text_out && !*text_out)
        rc = fail(s, -ENOMEM, "out of memory");
    if (rc < 0) {
        cJSON_Delete(*reply);
        *reply = NULL;
        if (text_out) {
            free(*text_out);
            *text_out = NULL;
        }
        if (bin) {
            free(*bin);
            *bin = NULL;
        }
    }
    return rc;
}

static int api_call(tmcp_src *s, cJSON *req, cJSON **reply, void **bin, size_t *binlen)
{
    return api_call_text(s, req, reply, bin, binlen, NULL);
}

static cJSON *api_req(const char *op, const tss_run *run)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "op", op);
    if (run) {
        char label[1100];
        tmcp_run_label(run, label, sizeof label);
        cJSON_AddStringToObject(r, "run", label);
    }
    return r;
}

/* JSON numbers of a reply; int64 fields are written exactly by the
 * collector but parsed by cJSON as doubles, exact up to 2^53 (steps and
 * nanosecond times of this century are below 2^63 but may exceed 2^53: a
 * time keeps microsecond precision, which is all a reader here needs). */
static int64_t jint(const cJSON *o, const char *k)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(it) ? (int64_t)it->valuedouble : 0;
}

static double jnum(const cJSON *o, const char *k)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(it) ? it->valuedouble : NAN;
}

static char *jstr(const cJSON *o, const char *k)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, k);
    return strdup(cJSON_IsString(it) ? it->valuestring : "");
}

/* The array `key` of a reply, as n zeroed elements of size sz. */
static void *api_array(tmcp_src *s, const cJSON *reply, const char *key, size_t sz, size_t *n,
                       const cJSON **arr)
{
    *arr = cJSON_GetObjectItemCaseSensitive(reply, key);
    *n = (size_t)cJSON_GetArraySize(*arr);
    void *v = calloc(*n ? *n : 1, sz);
    if (!v)
        fail(s, -ENOMEM, "out of memory");
    return v;
}

static int api_runs(tmcp_src *s, tss_run **out, size_t *n)
{
    cJSON *reply;
    const cJSON *arr, *o;
    int rc = api_call(s, api_req("runs", NULL), &reply, NULL, NULL);
    if (rc < 0)
        return rc;
    tss_run *v = api_array(s, reply, "runs", sizeof *v, n, &arr);
    size_t i = 0;
    if (!v) {
        cJSON_Delete(reply);
        return -ENOMEM;
    }
    cJSON_ArrayForEach(o, arr) {
        tss_run *r = &v[i++];
        r->id = jint(o, "id");
        r->project = jstr(o, "project");
        r->name = jstr(o, "name");
        r->status = jstr(o, "status");
        const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(o, "config");
        r->config = cfg && !cJSON_IsNull(cfg) ? cJSON_PrintUnformatted(cfg) : NULL;
        r->world_size = (int)jint(o, "world_size");
        r->created_ns = jint(o, "created_ns");
        r->updated_ns = jint(o, "updated_ns");
        r->ended_ns = jint(o, "ended_ns");
        r->points = jint(o, "points");
        r->series = jint(o, "series");
        r->dropped = jint(o, "dropped");
        r->resumes = jint(o, "resumes");
    }
    cJSON_Delete(reply);
    *out = v;
    return 0;
}

static int api_series(tmcp_src *s, const tss_run *run, tss_series **out, size_t *n)
{
    cJSON *reply;
    const cJSON *arr, *o;
    int rc = api_call(s, api_req("series", run), &reply, NULL, NULL);
    if (rc < 0)
        return rc;
    tss_series *v = api_array(s, reply, "series", sizeof *v, n, &arr);
    size_t i = 0;
    if (!v) {
        cJSON_Delete(reply);
        return -ENOMEM;
    }
    cJSON_ArrayForEach(o, arr) {
        tss_series *x = &v[i++];
        x->id = jint(o, "id");
        x->run_id = run->id;
        x->rank = (int)jint(o, "rank");
        x->name = jstr(o, "name");
        x->count = jint(o, "count");
        x->step_first = jint(o, "step_first");
        x->step_last = jint(o, "step_last");
        x->t_first_ns = jint(o, "t_first_ns");
        x->t_last_ns = jint(o, "t_last_ns");
        x->vmin = jnum(o, "min");
        x->vmax = jnum(o, "max");
        x->n_nan = jint(o, "n_nan");
        x->n_inf = jint(o, "n_inf");
        x->generations = (int)jint(o, "generations");
    }
    cJSON_Delete(reply);
    *out = v;
    return 0;
}

static int api_events(tmcp_src *s, const tss_run *run, tss_event **out, size_t *n)
{
    cJSON *reply;
    const cJSON *arr, *o;
    int rc = api_call(s, api_req("events", run), &reply, NULL, NULL);
    if (rc < 0)
        return rc;
    tss_event *v = api_array(s, reply, "events", sizeof *v, n, &arr);
    size_t i = 0;
    if (!v) {
        cJSON_Delete(reply);
        return -ENOMEM;
    }
    cJSON_ArrayForEach(o, arr) {
        tss_event *e = &v[i++];
        e->id = jint(o, "id");
        e->run_id = run->id;
        e->rank = (int)jint(o, "rank");
        e->step = jint(o, "step");
        e->t_ns = jint(o, "t_ns");
        e->kind = jstr(o, "kind");
        e->text = jstr(o, "text");
    }
    cJSON_Delete(reply);
    *out = v;
    return 0;
}

static int api_gaps(tmcp_src *s, const tss_run *run, tss_gap **out, size_t *n)
{
    cJSON *reply;
    const cJSON *arr, *o;
    int rc = api_call(s, api_req("gaps", run), &reply, NULL, NULL);
    if (rc < 0)
        return rc;
    tss_gap *v = api_array(s, reply, "gaps", sizeof *v, n, &arr);
    size_t i = 0;
    if (!v) {
        cJSON_Delete(reply);
        return -ENOMEM;
    }
    cJSON_ArrayForEach(o, arr) {
        tss_gap *g = &v[i++];
        g->run_id = run->id;
        g->rank = (int)jint(o, "rank");
        g->count = jint(o, "count");
        g->step_first = jint(o, "step_first");
        g->step_last = jint(o, "step_last");
        g->t_first_ns = jint(o, "t_first_ns");
        g->t_last_ns = jint(o, "t_last_ns");
    }
    cJSON_Delete(reply);
    *out = v;
    return 0;
}

static int api_findings(tmcp_src *s, const tss_run *run, tss_finding **out, size_t *n)
{
    cJSON *reply;
    const cJSON *arr, *o;
    int rc = api_call(s, api_req("findings", run), &reply, NULL, NULL);
    if (rc < 0)
        return rc;
    tss_finding *v = api_array(s, reply, "findings", sizeof *v, n, &arr);
    size_t i = 0;
    if (!v) {
        cJSON_Delete(reply);
        return -ENOMEM;
    }
    cJSON_ArrayForEach(o, arr) {
        tss_finding *f = &v[i++];
        f->id = jint(o, "id");
        f->run_id = run->id;
        f->series_id = jint(o, "series");
        f->rank = (int)jint(o, "rank");
        f->series = jstr(o, "metric");
        f->kind = jstr(o, "kind");
        f->severity = jstr(o, "severity");
        f->step_first = jint(o, "step_first");
        f->step_last = jint(o, "step_last");
        f->t_ns = jint(o, "t_ns");
        f->source = jstr(o, "source");
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "detail");
        f->detail = d && !cJSON_IsNull(d) ? cJSON_PrintUnformatted(d) : NULL;
    }
    cJSON_Delete(reply);
    *out = v;
    return 0;
}

static cJSON *api_range_req(const char *op, int64_t series_id, int64_t from, int64_t to)
{
    cJSON *r = api_req(op, NULL);
    cJSON_AddNumberToObject(r, "series", (double)series_id);
    cJSON_AddNumberToObject(r, "from", (double)from);
    cJSON_AddNumberToObject(r, "to", (double)to);
    return r;
}

/* The API's binary records are little-endian (PROTOCOL.md), as wire.h reads them. */
static int64_t get_i64(const uint8_t *p) { return (int64_t)tsw_get_u64(p); }
static double get_f64(const uint8_t *p) { return tsw_bits_double(tsw_get_u64(p)); }

static int api_points(tmcp_src *s, int64_t sid, int64_t from, int64_t to, tss_point **pts, size_t *n)
{
    cJSON *reply;
    uint8_t *bin = NULL;
    size_t len = 0;
    int rc = api_call(s, api_range_req("points", sid, from, to), &reply, (void **)&bin, &len);
    if (rc < 0)
        return rc;
    cJSON_Delete(reply);
    *n = len / TSW_LIVE_POINT;
    *pts = calloc(*n ? *n : 1, sizeof **pts);
    if (!*pts) {
        free(bin);
        return fail(s, -ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < *n; i++)
        tsw_live_point_decode(bin + (size_t)TSW_LIVE_POINT * i, &(*pts)[i].step, &(*pts)[i].t_ns, &(*pts)[i].value);
    free(bin);
    return 0;
}

static int api_buckets(tmcp_src *s, int64_t sid, int64_t from, int64_t to, size_t nb, tss_bucket *out)
{
    cJSON *reply, *req = api_range_req("buckets", sid, from, to);
    uint8_t *bin = NULL;
    size_t len = 0;
    cJSON_AddNumberToObject(req, "n", (double)nb);
    int rc = api_call(s, req, &reply, (void **)&bin, &len);
    if (rc < 0)
        return rc;
    cJSON_Delete(reply);
    if (len != nb * 56) {
        free(bin);
        return fail(s, -EIO, "the collector sent %zu bytes of buckets, expected %zu", len, nb * 56);
    }
    for (size_t i = 0; i < nb; i++) {
        const uint8_t *p = bin + 56 * i;
        tss_bucket_init(&out[i]);
        out[i].count = get_i64(p);
        out[i].step_first = get_i64(p + 8);
        out[i].step_last = get_i64(p + 16);
        out[i].min = get_f64(p + 24);
        out[i].max = get_f64(p + 32);
        out[i].first = get_f64(p + 40);
        out[i].last = get_f64(p + 48);
    }
    free(bin);
    return 0;
}

static int api_open(tmcp_src *s)
{
    cJSON *reply;
    int rc;
    if (!(s->zctx = zmq_ctx_new()))
        return fail(s, -ENOMEM, "cannot create a ZeroMQ context");
    if ((rc = api_socket(s)) < 0 || (rc = api_call(s, api_req("info", NULL), &reply, NULL, NULL)) < 0)
        return rc;
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(reply, "store");
    s->store_path = strdup(cJSON_IsString(st) ? st->valuestring : "");
    cJSON_Delete(reply);
    return s->store_path ? 0 : fail(s, -ENOMEM, "out of memory");
}

/* Just past the JSON value at p, or NULL when the text ends first. It only
 * skips: the text was parsed (so checked) already. */
static const char *json_skip(const char *p)
{
    int depth = 0;
    if (*p != '{' && *p != '[' && *p != '"')
        return p + strcspn(p, ",}] \t\r\n");
    do {
        if (*p == '"') {
            for (p++; *p && *p != '"'; p++)
                if (*p == '\\' && p[1])
                    p++;
            if (!*p)
                return NULL;
        } else if (*p == '{' || *p == '[') {
            depth++;
        } else if (*p == '}' || *p == ']') {
            depth--;
        } else if (!*p) {
            return NULL;
        }
        p++;
    } while (depth > 0);
    return p;
}

/* The text of member `key` of the top-level object in text. */
static int json_member_span(const char *text, const char *key, const char **start, size_t *len)
{
    const char *p = text + strspn(text, " \t\r\n");
    size_t klen = strlen(key);
    if (*p++ != '{')
        return -1;
    for (;;) {
        p += strspn(p, " \t\r\n,");
        const char *k = p + 1, *ke = *p == '"' ? json_skip(p) : NULL;
        if (!ke)
            return -1;
        p = ke + strspn(ke, " \t\r\n");
        if (*p++ != ':')
            return -1;
        p += strspn(p, " \t\r\n");
        const char *v = p, *ve = json_skip(p);
        if (!ve)
            return -1;
        if ((size_t)(ke - 1 - k) == klen && strncmp(k, key, klen) == 0) {
            *start = v;
            *len = (size_t)(ve - v);
            return 0;
        }
        p = ve;
    }
}

/* The collector's `report` op; the document is cut out of the reply's text
 * as sent, so its 64-bit integers (nanosecond times) stay exact. */
static int api_report(tmcp_src *s, const char *run, const char *against, double tolerance, char **json)
{
    cJSON *req = api_req("report", NULL), *reply;
    char *text;
    const char *start;
    size_t len;
    int rc;
    cJSON_AddStringToObject(req, "run", run);
    if (against)
        cJSON_AddStringToObject(req, "against", against);
    cJSON_AddNumberToObject(req, "tolerance", tolerance);
    if ((rc = api_call_text(s, req, &reply, NULL, NULL, &text)) < 0)
        return rc;
    cJSON_Delete(reply);
    if (json_member_span(text, "report", &start, &len) < 0 || *start != '{') {
        free(text);
        return fail(s, -EIO, "the collector at %s answered the report op without a report (is it older "
                    "than this trainscope?)", s->target);
    }
    memmove(text, start, len);
    text[len] = 0;
    *json = text;
    return 0;
}

/* ---- either ------------------------------------------------------------ */

int tmcp_src_open(tmcp_src **out, const char *target, char *err, size_t errlen)
{
    tmcp_src *s = calloc(1, sizeof *s);
    int rc = -ENOMEM;
    *out = NULL;
    if (!s || !(s->target = strdup(target))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    s->remote = strncmp(target, "tcp://", 6) == 0 || strncmp(target, "ipc://", 6) == 0;
    if (s->remote) {
        if ((rc = api_open(s)) < 0) {
            snprintf(err, errlen, "%s", s->err);
            goto fail;
        }
    } else {
        tss_open_opts ro = { .writer = 0 };
        if ((rc = tss_open(&s->st, target, &ro, err, errlen)) < 0)
            goto fail;
        if ((rc = tss_chunks_open(s->st, &s->chunks)) < 0) {
            snprintf(err, errlen, "%s", tss_errmsg(s->st));
            goto fail;
        }
        if (!(s->store_path = strdup(target))) {
            rc = -ENOMEM;
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
    *out = s;
    return 0;
fail:
    tmcp_src_close(s);
    return rc;
}

void tmcp_src_close(tmcp_src *s)
{
    if (!s)
        return;
    tss_chunks_close(s->chunks);
    tss_close(s->st);
    if (s->sock)
        zmq_close(s->sock);
    if (s->zctx)
        zmq_ctx_term(s->zctx);
    free(s->target);
    free(s->store_path);
    free(s);
}

int tmcp_src_runs(tmcp_src *s, tss_run **runs, size_t *n)
{
    *runs = NULL;
    *n = 0;
    if (s->remote)
        return api_runs(s, runs, n);
    int rc = tss_list_runs(s->st, runs, n);
    return rc < 0 ? store_fail(s, rc) : 0;
}

/* The rules of tss_find_run over a list of runs: "project/name" exactly,
 * else a bare name, which must not be a run in several projects. */
static int match_run(tmcp_src *s, const tss_run *v, size_t n, const char *name, size_t *idx)
{
    char label[1100], many[1200] = "";
    size_t hits = 0;
    for (size_t i = 0; i < n; i++) {
        tmcp_run_label(&v[i], label, sizeof label);
        if (strcmp(label, name) == 0) {
            *idx = i;
            return 0;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i].name, name) != 0)
            continue;
        *idx = i;
        tmcp_run_label(&v[i], label, sizeof label);
        size_t used = strlen(many);
        snprintf(many + used, sizeof many - used, "%s%s", hits++ ? ", " : "", label);
    }
    if (hits == 1)
        return 0;
    if (hits > 1)
        return fail(s, -EINVAL, "run name '%s' is ambiguous: it is a run in several projects (%s); "
                    "name it as project/name", name, many);
    return fail(s, -ENOENT, "unknown run '%s' (list_runs lists the runs)", name);
}

int tmcp_src_find_run(tmcp_src *s, const char *name, tss_run *run)
{
    tss_run *v = NULL;
    size_t n = 0, idx = 0;
    int64_t id = 0;
    int rc;
    memset(run, 0, sizeof *run);
    if (!s->remote && (rc = tss_find_run(s->st, name, &id)) < 0) {
        if (rc == -ENOENT)
            return fail(s, rc, "unknown run '%s' (list_runs lists the runs)", name);
        return fail(s, rc == -EEXIST ? -EINVAL : -EIO, "%s", tss_errmsg(s->st));
    }
    if ((rc = tmcp_src_runs(s, &v, &n)) < 0)
        return rc;
    if (s->remote) {
        rc = match_run(s, v, n, name, &idx);
    } else {
        for (idx = 0; idx < n && v[idx].id != id; idx++)
            ;
        rc = idx < n ? 0 : fail(s, -ENOENT, "unknown run '%s'", name);
    }
    if (rc == 0) {
        *run = v[idx];
        memset(&v[idx], 0, sizeof v[idx]);
    }
    tss_free_runs(v, n);
    return rc;
}

typedef struct status_find {
    int64_t id;
    char *buf;
    size_t cap;
    int found;
} status_find;

static int status_of(void *ctx, const tss_run *run)
{
    status_find *f = ctx;
    if (run->id != f->id)
        return 0;
    snprintf(f->buf, f->cap, "%s", run->status ? run->status : "");
    f->found = 1;
    return -1;
}

int tmcp_src_run_status(tmcp_src *s, const tss_run *run, char *buf, size_t cap)
{
    if (s->remote) {
        char label[1100];
        tss_run now;
        tmcp_run_label(run, label, sizeof label);
        int rc = tmcp_src_find_run(s, label, &now);
        if (rc == 0)
            snprintf(buf, cap, "%s", now.status);
        tmcp_run_clear(&now);
        return rc;
    }
    status_find f = { .id = run->id, .buf = buf, .cap = cap };
    int rc = tss_chunks_runs(s->chunks, status_of, &f);
    if (rc < 0 && !f.found)
        return store_fail(s, rc);
    return f.found ? 0 : fail(s, -ENOENT, "the run is no longer in the store");
}

int tmcp_src_series(tmcp_src *s, const tss_run *run, tss_series **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (s->remote)
        return api_series(s, run, out, n);
    int rc = tss_list_series(s->st, run->id, out, n);
    return rc < 0 ? store_fail(s, rc) : 0;
}

int tmcp_src_events(tmcp_src *s, const tss_run *run, tss_event **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (s->remote)
        return api_events(s, run, out, n);
    int rc = tss_list_events(s->st, run->id, out, n);
    return rc < 0 ? store_fail(s, rc) : 0;
}

int tmcp_src_gaps(tmcp_src *s, const tss_run *run, tss_gap **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (s->remote)
        return api_gaps(s, run, out, n);
    int rc = tss_list_gaps(s->st, run->id, out, n);
    return rc < 0 ? store_fail(s, rc) : 0;
}

int tmcp_src_findings(tmcp_src *s, const tss_run *run, tss_finding **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (s->remote)
        return api_findings(s, run, out, n);
    int rc = tss_list_findings(s->st, run->id, out, n);
    return rc < 0 ? store_fail(s, rc) : 0;
}

int tmcp_src_points(tmcp_src *s, int64_t series_id, int64_t from, int64_t to, tss_point **pts,
                    size_t *n)
{
    *pts = NULL;
    *n = 0;
    if (s->remote)
        return api_points(s, series_id, from, to, pts, n);
    int rc = tss_read_points(s->st, series_id, from, to, 0, pts, n);
    return rc < 0 ? store_fail(s, rc) : 0;
}

int tmcp_src_buckets(tmcp_src *s, int64_t series_id, int64_t from, int64_t to, size_t nb,
                     tss_bucket *out)
{
    if (s->remote)
        return api_buckets(s, series_id, from, to, nb, out);
    int rc = tss_read_buckets(s->st, series_id, from, to, nb, out);
    return rc < 0 ? store_fail(s, rc) : 0;
}

int tmcp_src_changed(tmcp_src *s)
{
    if (s->remote)
        return 1;
    int rc = tss_chunks_changed(s->chunks);
    return rc < 0 ? 1 : rc;
}

static int64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A store no collector holds: open it as the writer for this one event, so
 * that the single-writer lock is held only while writing. */
static int store_annotate(tmcp_src *s, const tss_run *run, int rank, int64_t step, const char *kind,
                          const char *text)
{
    tss_open_opts wo = { .writer = 1 };
    tss_store *w = NULL;
    char err[512];
    int rc = tss_open(&w, s->store_path, &wo, err, sizeof err);
    if (rc == -EBUSY)
        return fail(s, -EBUSY, "a collector is writing %s, and a store has one writer: start "
                    "`trainscope mcp` with that collector's API endpoint (e.g. tcp://127.0.0.1:5558) "
                    "and --allow-write to annotate through it", s->store_path);
    if (rc < 0)
        return fail(s, -EIO, "cannot open the store for writing: %s", err);
    if ((rc = tss_event_add(w, run->id, rank, step, wall_ns(), kind, text)) < 0 ||
        (rc = tss_commit(w)) < 0)
        fail(s, -EIO, "cannot write the event: %s", tss_errmsg(w));
    int crc = tss_close(w);
    if (rc == 0 && crc < 0)
        rc = fail(s, -EIO, "cannot write the event: the commit failed");
    return rc < 0 ? -EIO : 0;
}

int tmcp_src_annotate(tmcp_src *s, const tss_run *run, int rank, int64_t step, const char *kind,
                      const char *text)
{
    if (!s->remote)
        return store_annotate(s, run, rank, step, kind, text);
    cJSON *req = api_req("annotate", run), *reply;
    cJSON_AddNumberToObject(req, "rank", rank);
    cJSON_AddNumberToObject(req, "step", (double)step);
    cJSON_AddStringToObject(req, "kind", kind);
    cJSON_AddStringToObject(req, "text", text);
    int rc = api_call(s, req, &reply, NULL, NULL);
    cJSON_Delete(reply);
    return rc;
}

int tmcp_src_report(tmcp_src *s, const char *run, const char *against, double tolerance, char **json)
{
    cJSON *doc;
    int rc;
    *json = NULL;
    if (s->remote)
        return api_report(s, run, against, tolerance, json);
    if ((rc = tda_report_json(s->st, run, against, tolerance, NULL, &doc, s->err, sizeof s->err)) < 0)
        return rc == -ENOENT || rc == -EINVAL || rc == -EEXIST ? rc : -EIO;
    *json = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    return *json ? 0 : fail(s, -ENOMEM, "out of memory");
}
