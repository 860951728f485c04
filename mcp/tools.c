/* tools.c - the tools of `trainscope mcp` (tmcp_tools.h): what an assistant can
 * ask about runs, sized for a model's context: compact JSON, long series
 * reduced to M4 buckets with the reduction stated, lists capped with the
 * number left out said.
 *
 * report and compare_runs answer with the document of `trainscope report
 * --json` (docs/report-schema.md), built by the same function
 * (tda_report_json): in this process on a store file, by the collector's
 * `report` op on a collector, so the store file need not be readable here.
 *
 * Knobs: WAIT_TICK_MS (how often wait_for looks at the source; on a store
 * a look that finds no commit costs one PRAGMA), WAIT_STATUS_MS (how often
 * it asks a collector for the run's status: its runs op sums every run's
 * chunks, too much to ask every tick), WAIT_MAX_S, the default
 * and largest max_points of get_series, LIST_CAP for events and findings
 * in describe_run.
 */
#include "tmcp_tools.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WAIT_TICK_MS 150
#define WAIT_STATUS_MS 1000
#define WAIT_MAX_S 600
#define WAIT_DEFAULT_S 60
#define SERIES_DEFAULT_POINTS 200
#define SERIES_MAX_POINTS 5000
#define SERIES_MAX_VALUES 10000     /* points or buckets in one get_series answer */
#define LIST_CAP 50
#define REPORT_TOLERANCE 0.05      /* compare_runs, as `trainscope report --against` */

/* ---- results --------------------------------------------------------------- */

static cJSON *text_result(char *text, int is_error)
{
    cJSON *r = cJSON_CreateObject(), *content = cJSON_AddArrayToObject(r, "content");
    cJSON *item = cJSON_CreateObject();
    cJSON_AddStringToObject(item, "type", "text");
    cJSON_AddStringToObject(item, "text", text ? text : "out of memory");
    cJSON_AddItemToArray(content, item);
    cJSON_AddBoolToObject(r, "isError", is_error || !text);
    free(text);
    return r;
}

static cJSON *tool_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static cJSON *tool_error(const char *fmt, ...)
{
    char *msg = malloc(2048);
    va_list ap;
    va_start(ap, fmt);
    if (msg)
        vsnprintf(msg, 2048, fmt, ap);
    va_end(ap);
    return text_result(msg, 1);
}

/* The tool's answer: body (consumed) as compact JSON text. */
static cJSON *json_result(cJSON *body)
{
    char *text = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    return text_result(text, 0);
}

/* ---- JSON helpers ---------------------------------------------------------- */

static void add_i64(cJSON *o, const char *k, int64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    cJSON_AddRawToObject(o, k, buf);
}

static cJSON *i64_item(int64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    return cJSON_CreateRaw(buf);
}

/* JSON has no NaN or infinity: "nan", "inf", "-inf" (docs/report-schema.md).
 * Finite values are printed with the fewest digits that parse back to the
 * same 64 bits (cJSON's own printing accepts 15 digits that are merely
 * close, which would change values). */
static cJSON *num_item(double v)
{
    char buf[40];
    if (isnan(v))
        return cJSON_CreateString("nan");
    if (isinf(v))
        return cJSON_CreateString(v < 0 ? "-inf" : "inf");
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    return cJSON_CreateRaw(buf);
}

static void add_num(cJSON *o, const char *k, double v)
{
    cJSON_AddItemToObject(o, k, num_item(v));
}

/* Wall time for a model to read: ISO 8601 in UTC, milliseconds. */
static void add_time(cJSON *o, const char *k, int64_t ns)
{
    if (ns <= 0) {
        cJSON_AddNullToObject(o, k);
        return;
    }
    time_t sec = (time_t)(ns / 1000000000);
    struct tm tm;
    char buf[48];
    gmtime_r(&sec, &tm);
    size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof buf - n, ".%03dZ", (int)(ns / 1000000 % 1000));
    cJSON_AddStringToObject(o, k, buf);
}

static cJSON *step_pair(int64_t a, int64_t b)
{
    cJSON *p = cJSON_CreateArray();
    cJSON_AddItemToArray(p, i64_item(a));
    cJSON_AddItemToArray(p, i64_item(b));
    return p;
}

/* ---- arguments ------------------------------------------------------------- */

/* The tool's arguments, read with one error sentence for the first bad one. */
typedef struct args {
    const cJSON *obj;
    char err[512];
} args;

static const cJSON *arg(args *a, const char *k)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(a->obj, k);
    return cJSON_IsNull(it) ? NULL : it;
}

/* 1 present, 0 absent (dflt kept), -1 bad. */
static int arg_str(args *a, const char *k, int required, const char **out)
{
    const cJSON *it = arg(a, k);
    if (!it) {
        if (required && !a->err[0])
            snprintf(a->err, sizeof a->err, "missing argument '%s' (a string)", k);
        return required ? -1 : 0;
    }
    if (!cJSON_IsString(it) || !it->valuestring[0]) {
        if (!a->err[0])
            snprintf(a->err, sizeof a->err, "argument '%s' must be a non-empty string", k);
        return -1;
    }
    *out = it->valuestring;
    return 1;
}

static int arg_int(args *a, const char *k, int required, int64_t lo, int64_t hi, int64_t *out)
{
    const cJSON *it = arg(a, k);
    if (!it) {
        if (required && !a->err[0])
            snprintf(a->err, sizeof a->err, "missing argument '%s' (an integer)", k);
        return required ? -1 : 0;
    }
    double d = cJSON_IsNumber(it) ? it->valuedouble : NAN;
    if (!(d == floor(d)) || d < (double)lo || d > (double)hi) {
        if (!a->err[0])
            snprintf(a->err, sizeof a->err, "argument '%s' must be an integer from %" PRId64 " to %" PRId64, k,
                     lo, hi);
        return -1;
    }
    *out = d >= 9223372036854775807.0 ? INT64_MAX : (int64_t)d;
    return 1;
}

static int arg_bool(args *a, const char *k, int *out)
{
    const cJSON *it = arg(a, k);
    if (!it)
        return 0;
    if (!cJSON_IsBool(it)) {
        if (!a->err[0])
            snprintf(a->err, sizeof a->err, "argument '%s' must be true or false", k);
        return -1;
    }
    *out = cJSON_IsTrue(it);
    return 1;
}

static int arg_number(args *a, const char *k, double lo, double hi, double *out)
{
    const cJSON *it = arg(a, k);
    if (!it)
        return 0;
    if (!cJSON_IsNumber(it) || !(it->valuedouble >= lo && it->valuedouble <= hi)) {
        if (!a->err[0])
            snprintf(a->err, sizeof a->err, "argument '%s' must be a number from %g to %g", k, lo, hi);
        return -1;
    }
    *out = it->valuedouble;
    return 1;
}

/* ---- list_runs ------------------------------------------------------------- */

static int matches(const char *pattern, const char *s)
{
    if (!pattern)
        return 1;
    if (strpbrk(pattern, "*?["))
        return fnmatch(pattern, s, 0) == 0;
    return strstr(s, pattern) != NULL;
}

static cJSON *run_summary(const tss_run *r)
{
    char label[1100];
    cJSON *o = cJSON_CreateObject();
    tmcp_run_label(r, label, sizeof label);
    cJSON_AddStringToObject(o, "run", label);
    cJSON_AddStringToObject(o, "status", r->status);
    add_time(o, "started", r->created_ns);
    add_time(o, "last_update", r->updated_ns);
    add_time(o, "ended", r->ended_ns);
    int64_t end = r->ended_ns > 0 ? r->ended_ns : r->updated_ns;
    /* Milliseconds are all a reader needs (and what a collector's API,
     * whose times arrive as JSON doubles, keeps exactly). */
    add_num(o, "duration_s", end > r->created_ns ? (double)((end - r->created_ns) / 1000000) / 1e3 : 0);
    cJSON_AddNumberToObject(o, "world_size", r->world_size);
    add_i64(o, "metrics", r->series);
    add_i64(o, "points", r->points);
    add_i64(o, "dropped", r->dropped);
    add_i64(o, "resumes", r->resumes);
    return o;
}

static cJSON *tool_list_runs(tmcp_tools *t, args *a)
{
    const char *name = NULL, *project = NULL, *status = NULL;
    int64_t limit = LIST_CAP;
    if (arg_str(a, "name", 0, &name) < 0 || arg_str(a, "project", 0, &project) < 0 ||
        arg_str(a, "status", 0, &status) < 0 || arg_int(a, "limit", 0, 1, 1000, &limit) < 0)
        return tool_error("%s", a->err);
    tss_run *runs;
    size_t n;
    if (tmcp_src_runs(t->src, &runs, &n) < 0)
        return tool_error("%s", tmcp_src_errmsg(t->src));
    cJSON *body = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(body, "runs");
    int64_t hits = 0;
    for (size_t i = 0; i < n; i++) {
        char label[1100];
        tmcp_run_label(&runs[i], label, sizeof label);
        if (!matches(name, label) || (project && strcmp(project, runs[i].project) != 0) ||
            (status && strcmp(status, runs[i].status) != 0))
            continue;
        if (hits++ < limit)
            cJSON_AddItemToArray(arr, run_summary(&runs[i]));
    }
    add_i64(body, "matching", hits);
    if (hits > limit)
        add_i64(body, "left_out", hits - limit);
    cJSON_AddStringToObject(body, "order", "newest first");
    tss_free_runs(runs, n);
    return json_result(body);
}

/* ---- describe_run ------------------------------------------------------------ */

static cJSON *finding_item(const tss_finding *f)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "kind", f->kind);
    cJSON_AddStringToObject(o, "severity", f->severity);
    cJSON_AddStringToObject(o, "metric", f->series);
    cJSON_AddNumberToObject(o, "rank", f->rank);
    cJSON_AddItemToObject(o, "steps", step_pair(f->step_first, f->step_last));
    cJSON *d = f->detail ? cJSON_Parse(f->detail) : NULL;
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(d, "message");
    if (cJSON_IsString(msg))
        cJSON_AddStringToObject(o, "message", msg->valuestring);
    cJSON_Delete(d);
    return o;
}

static cJSON *tool_describe_run(tmcp_tools *t, args *a)
{
    const char *name;
    tss_run run;
    tss_series *ser = NULL;
    tss_event *ev = NULL;
    tss_gap *gaps = NULL;
    tss_finding *fi = NULL;
    size_t ns = 0, ne = 0, ng = 0, nf = 0;
    cJSON *res = NULL;
    if (arg_str(a, "run", 1, &name) < 0)
        return tool_error("%s", a->err);
    if (tmcp_src_find_run(t->src, name, &run) < 0)
        return tool_error("%s", tmcp_src_errmsg(t->src));
    if (tmcp_src_series(t->src, &run, &ser, &ns) < 0 || tmcp_src_events(t->src, &run, &ev, &ne) < 0 ||
        tmcp_src_gaps(t->src, &run, &gaps, &ng) < 0 || tmcp_src_findings(t->src, &run, &fi, &nf) < 0) {
        res = tool_error("%s", tmcp_src_errmsg(t->src));
        goto done;
    }
    cJSON *body = run_summary(&run);
    cJSON_AddStringToObject(body, "project", run.project);
    cJSON_AddStringToObject(body, "name", run.name);
    cJSON *cfg = run.config ? cJSON_Parse(run.config) : NULL;
    cJSON_AddItemToObject(body, "config", cfg ? cfg : cJSON_CreateNull());

    /* Ranks, the step span and the metrics. */
    cJSON *ranks = cJSON_AddArrayToObject(body, "ranks"), *metrics = cJSON_CreateArray();
    int64_t sf = INT64_MAX, sl = INT64_MIN;
    for (size_t i = 0; i < ns; i++) {
        const tss_series *s = &ser[i];
        if (i == 0 || s->rank != ser[i - 1].rank)
            cJSON_AddItemToArray(ranks, cJSON_CreateNumber(s->rank));
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "metric", s->name);
        cJSON_AddNumberToObject(m, "rank", s->rank);
        add_i64(m, "count", s->count);
        if (s->count > 0) {
            cJSON_AddItemToObject(m, "steps", step_pair(s->step_first, s->step_last));
            sf = s->step_first < sf ? s->step_first : sf;
            sl = s->step_last > sl ? s->step_last : sl;
        }
        add_num(m, "min", s->vmin);
        add_num(m, "max", s->vmax);
        if (s->n_nan)
            add_i64(m, "nan", s->n_nan);
        if (s->n_inf)
            add_i64(m, "inf", s->n_inf);
        if (s->generations > 1)
            cJSON_AddNumberToObject(m, "timelines", s->generations);
        cJSON_AddItemToArray(metrics, m);
    }
    cJSON_AddItemToObject(body, "steps", sf <= sl ? step_pair(sf, sl) : cJSON_CreateNull());
    cJSON_AddItemToObject(body, "metrics", metrics);

    /* Drops: what publishers reported discarding, as gaps in steps. */
    cJSON *drops = cJSON_AddObjectToObject(body, "drops"), *garr = cJSON_AddArrayToObject(drops, "gaps");
    add_i64(drops, "samples", run.dropped);
    for (size_t i = 0; i < ng && i < LIST_CAP; i++) {
        cJSON *g = cJSON_CreateObject();
        cJSON_AddNumberToObject(g, "rank", gaps[i].rank);
        add_i64(g, "count", gaps[i].count);
        cJSON_AddItemToObject(g, "steps", step_pair(gaps[i].step_first, gaps[i].step_last));
        add_time(g, "from", gaps[i].t_first_ns);
        add_time(g, "to", gaps[i].t_last_ns);
        cJSON_AddItemToArray(garr, g);
    }

    /* Resumes and the other events, newest last, the latest LIST_CAP. */
    cJSON *resumes = cJSON_AddArrayToObject(body, "resume_events"), *events = cJSON_CreateArray();
    size_t nother = 0;
    for (size_t i = 0; i < ne; i++)
        nother += strcmp(ev[i].kind, "resume") != 0;
    for (size_t i = 0, k = 0; i < ne; i++) {
        int resume = strcmp(ev[i].kind, "resume") == 0;
        if (!resume && k++ + LIST_CAP < nother)
            continue;
        cJSON *e = cJSON_CreateObject();
        add_i64(e, "step", ev[i].step);
        if (!resume)
            cJSON_AddStringToObject(e, "kind", ev[i].kind);
        cJSON_AddNumberToObject(e, "rank", ev[i].rank);
        cJSON_AddStringToObject(e, "text", ev[i].text);
        add_time(e, "time", ev[i].t_ns);
        cJSON_AddItemToArray(resume ? resumes : events, e);
    }
    cJSON_AddItemToObject(body, "events", events);
    if (nother > LIST_CAP)
        add_i64(body, "events_left_out", (int64_t)(nother - LIST_CAP));

    /* The stored findings (the collector's detectors); report runs them again. */
    cJSON *farr = cJSON_AddArrayToObject(body, "findings");
    for (size_t i = 0; i < nf && i < LIST_CAP; i++)
        cJSON_AddItemToArray(farr, finding_item(&fi[i]));
    if (nf > LIST_CAP)
        add_i64(body, "findings_left_out", (int64_t)(nf - LIST_CAP));
    res = json_result(body);
done:
    tss_free_series(ser, ns);
    tss_free_events(ev, ne);
    tss_free_gaps(gaps);
    tss_free_findings(fi, nf);
    tmcp_run_clear(&run);
    return res;
}

/* ---- get_series ---------------------------------------------------------------- */

/* Which metrics: names or glob patterns; each must match something. */
static int select_series(const cJSON *want, int64_t rank, const tss_series *s, size_t n, char *sel,
                         char *err, size_t errlen)
{
    const cJSON *w;
    for (size_t i = 0; i < n; i++)
        sel[i] = !want && (rank < 0 || s[i].rank == rank);
    cJSON_ArrayForEach(w, want) {
        int hit = 0;
        for (size_t i = 0; i < n; i++) {
            if ((rank < 0 || s[i].rank == rank) && fnmatch(w->valuestring, s[i].name, 0) == 0) {
                sel[i] = 1;
                hit = 1;
            }
        }
        if (!hit) {
            size_t used = (size_t)snprintf(err, errlen, "no metric matches '%s'%s in this run; it has:",
                                           w->valuestring, rank >= 0 ? " at that rank" : "");
            for (size_t i = 0; i < n && used < errlen; i++)
                if (i == 0 || strcmp(s[i].name, s[i - 1].name) != 0)
                    used += (size_t)snprintf(err + used, errlen - used, "%s %s", i ? "," : "", s[i].name);
            return -1;
        }
    }
    return 0;
}

static cJSON *series_points(tmcp_tools *t, const tss_series *s, int64_t from, int64_t to, size_t maxp,
                            int *failed)
{
    tss_bucket all;
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "metric", s->name);
    cJSON_AddNumberToObject(m, "rank", s->rank);
    if (tmcp_src_buckets(t->src, s->id, from, to, 1, &all) < 0) {
        *failed = 1;
        return m;
    }
    add_i64(m, "points_in_range", all.count);
    if (all.count <= (int64_t)maxp) {
        tss_point *p;
        size_t n;
        if (tmcp_src_points(t->src, s->id, from, to, &p, &n) < 0) {
            *failed = 1;
            return m;
        }
        cJSON_AddStringToObject(m, "reduction", "none: every point, as [step, value]");
        cJSON *arr = cJSON_AddArrayToObject(m, "points");
        for (size_t i = 0; i < n; i++) {
            cJSON *pt = cJSON_CreateArray();
            cJSON_AddItemToArray(pt, i64_item(p[i].step));
            cJSON_AddItemToArray(pt, num_item(p[i].value));
            cJSON_AddItemToArray(arr, pt);
        }
        free(p);
        return m;
    }
    tss_bucket *b = calloc(maxp, sizeof *b);
    if (!b || tmcp_src_buckets(t->src, s->id, from, to, maxp, b) < 0) {
        free(b);
        *failed = 1;
        return m;
    }
    char how[256];
    double width = ((double)to - (double)from + 1) / (double)maxp;
    snprintf(how, sizeof how, "m4: the step range cut into %zu buckets of %.6g steps; each non-empty bucket "
             "as [step_first, step_last, count, min, max, first, last] of its points", maxp, width);
    cJSON_AddStringToObject(m, "reduction", how);
    cJSON *arr = cJSON_AddArrayToObject(m, "buckets");
    for (size_t i = 0; i < maxp; i++) {
        if (!b[i].count)
            continue;
        cJSON *x = cJSON_CreateArray();
        cJSON_AddItemToArray(x, i64_item(b[i].step_first));
        cJSON_AddItemToArray(x, i64_item(b[i].step_last));
        cJSON_AddItemToArray(x, i64_item(b[i].count));
        cJSON_AddItemToArray(x, num_item(b[i].min));
        cJSON_AddItemToArray(x, num_item(b[i].max));
        cJSON_AddItemToArray(x, num_item(b[i].first));
        cJSON_AddItemToArray(x, num_item(b[i].last));
        cJSON_AddItemToArray(arr, x);
    }
    free(b);
    return m;
}

static cJSON *tool_get_series(tmcp_tools *t, args *a)
{
    const char *name;
    int64_t rank = -1, from = 0, to = 0, maxp = SERIES_DEFAULT_POINTS;
    int hf, ht, failed = 0;
    const cJSON *want = arg(a, "metrics"), *w;
    if (arg_str(a, "run", 1, &name) < 0 || arg_int(a, "rank", 0, 0, INT32_MAX, &rank) < 0 ||
        (hf = arg_int(a, "from", 0, INT64_MIN, INT64_MAX, &from)) < 0 ||
        (ht = arg_int(a, "to", 0, INT64_MIN, INT64_MAX, &to)) < 0 ||
        arg_int(a, "max_points", 0, 2, SERIES_MAX_POINTS, &maxp) < 0)
        return tool_error("%s", a->err);
    if (want && !cJSON_IsArray(want))
        return tool_error("argument 'metrics' must be an array of metric names or glob patterns");
    cJSON_ArrayForEach(w, want)
        if (!cJSON_IsString(w) || !w->valuestring[0])
            return tool_error("argument 'metrics' must hold non-empty strings (names or glob patterns)");
    if (hf && ht && from > to)
        return tool_error("bad range: from (%" PRId64 ") is after to (%" PRId64 ")", from, to);

    tss_run run;
    tss_series *s = NULL;
    size_t n = 0;
    char *sel = NULL, err[2048];
    cJSON *res = NULL;
    if (tmcp_src_find_run(t->src, name, &run) < 0)
        return tool_error("%s", tmcp_src_errmsg(t->src));
    if (tmcp_src_series(t->src, &run, &s, &n) < 0) {
        res = tool_error("%s", tmcp_src_errmsg(t->src));
        goto done;
    }
    if (!(sel = calloc(n + 1, 1))) {
        res = tool_error("out of memory");
        goto done;
    }
    if (select_series(want, rank, s, n, sel, err, sizeof err) < 0) {
        res = tool_error("%s", err);
        goto done;
    }
    /* Sized for a model's context: a run with many series wants a choice. */
    size_t nsel = 0;
    for (size_t i = 0; i < n; i++)
        nsel += sel[i];
    if (nsel * (size_t)maxp > SERIES_MAX_VALUES) {
        res = tool_error("that is %zu series of up to %" PRId64 " points each, more than fits a model's context "
                         "(%d in all): name fewer metrics (names or globs; describe_run lists them), a rank, "
                         "or a smaller max_points", nsel, maxp, SERIES_MAX_VALUES);
        goto done;
    }
    /* The default range: every selected series' steps. */
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    for (size_t i = 0; i < n; i++) {
        if (sel[i] && s[i].count > 0) {
            lo = s[i].step_first < lo ? s[i].step_first : lo;
            hi = s[i].step_last > hi ? s[i].step_last : hi;
        }
    }
    if (!hf)
        from = lo <= hi ? lo : 0;
    if (!ht)
        to = lo <= hi ? hi : 0;
    if (from > to) {
        res = tool_error("bad range: from (%" PRId64 ") is after to (%" PRId64 "); the run's steps are %" PRId64
                         "..%" PRId64, from, to, lo, hi);
        goto done;
    }
    cJSON *body = cJSON_CreateObject(), *arr;
    char label[1100];
    tmcp_run_label(&run, label, sizeof label);
    cJSON_AddStringToObject(body, "run", label);
    cJSON_AddItemToObject(body, "steps", step_pair(from, to));
    cJSON_AddNumberToObject(body, "max_points", (double)maxp);
    arr = cJSON_AddArrayToObject(body, "series");
    for (size_t i = 0; i < n && !failed; i++)
        if (sel[i])
            cJSON_AddItemToArray(arr, series_points(t, &s[i], from, to, (size_t)maxp, &failed));
    if (failed) {
        cJSON_Delete(body);
        res = tool_error("%s", tmcp_src_errmsg(t->src));
    } else {
        res = json_result(body);
    }
done:
    free(sel);
    tss_free_series(s, n);
    tmcp_run_clear(&run);
    return res;
}

/* ---- report, compare_runs ------------------------------------------------------ */

/* The report's own document (docs/report-schema.md), built in this process
 * from a store or by the collector's `report` op: the analysis lives in one
 * place (tda_report_json), and its text is passed on as built, because
 * re-printing it through cJSON would round its 64-bit integers. */
static cJSON *report(tmcp_tools *t, const char *run, const char *against, double tolerance)
{
    char *json;
    if (tmcp_src_report(t->src, run, against, tolerance, &json) < 0)
        return tool_error("%s", tmcp_src_errmsg(t->src));
    return text_result(json, 0);
}

static cJSON *tool_report(tmcp_tools *t, args *a)
{
    const char *name;
    tss_run run;
    if (arg_str(a, "run", 1, &name) < 0)
        return tool_error("%s", a->err);
    /* Resolve here first, for the same unknown-run sentence as every tool. */
    if (tmcp_src_find_run(t->src, name, &run) < 0)
        return tool_error("%s", tmcp_src_errmsg(t->src));
    tmcp_run_clear(&run);
    return report(t, name, NULL, REPORT_TOLERANCE);
}

static cJSON *tool_compare_runs(tmcp_tools *t, args *a)
{
    const char *name, *other;
    double tol = REPORT_TOLERANCE;
    tss_run run;
    if (arg_str(a, "run", 1, &name) < 0 || arg_str(a, "against", 1, &other) < 0 ||
        arg_number(a, "tolerance", 1e-9, 1e9, &tol) < 0)
        return tool_error("%s", a->err);
    if (tmcp_src_find_run(t->src, name, &run) < 0)
        return tool_error("%s", tmcp_src_errmsg(t->src));
    tmcp_run_clear(&run);
    if (tmcp_src_find_run(t->src, other, &run) < 0)
        return tool_error("%s", tmcp_src_errmsg(t->src));
    tmcp_run_clear(&run);
    return report(t, name, other, tol);
}

/* ---- wait_for ------------------------------------------------------------------ */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* What wait_for watches: the run's status, its highest step, its findings. */
typedef struct watch {
    tss_run run;                /* found once; status is read again each look */
    char status[64];
    int64_t status_ms;          /* when status was read (monotonic ms) */
    int64_t step_last;          /* INT64_MIN without points */
    tss_finding *f;
    size_t nf;
} watch;

/* One look: status, the run's series (for the highest step), findings. */
static int watch_read(tmcp_tools *t, watch *w)
{
    tss_series *s;
    size_t n;
    tss_free_findings(w->f, w->nf);
    w->f = NULL;
    w->nf = 0;
    int64_t now = mono_ms();
    if (!w->status_ms || !tmcp_src_remote(t->src) || now - w->status_ms >= WAIT_STATUS_MS) {
        if (tmcp_src_run_status(t->src, &w->run, w->status, sizeof w->status) < 0)
            return -1;
        w->status_ms = now;
    }
    if (tmcp_src_series(t->src, &w->run, &s, &n) < 0)
        return -1;
    w->step_last = INT64_MIN;
    for (size_t i = 0; i < n; i++)
        if (s[i].count > 0 && s[i].step_last > w->step_last)
            w->step_last = s[i].step_last;
    tss_free_series(s, n);
    return tmcp_src_findings(t->src, &w->run, &w->f, &w->nf);
}

static cJSON *tool_wait_for(tmcp_tools *t, args *a)
{
    const char *name;
    int64_t step = 0;
    int has_step, new_finding = 0;
    double timeout = WAIT_DEFAULT_S;
    if (arg_str(a, "run", 1, &name) < 0 || (has_step = arg_int(a, "step", 0, INT64_MIN, INT64_MAX, &step)) < 0 ||
        arg_bool(a, "new_finding", &new_finding) < 0 || arg_number(a, "timeout_s", 0, WAIT_MAX_S, &timeout) < 0)
        return tool_error("%s", a->err);
    if (!has_step && !new_finding)
        return tool_error("wait_for needs 'step' (wait until the run logs that step) and/or 'new_finding': true "
                          "(wait until the detectors report something new)");
    watch w = {0};
    cJSON *res = NULL;
    if (tmcp_src_find_run(t->src, name, &w.run) < 0 || watch_read(t, &w) < 0) {
        res = tool_error("%s", tmcp_src_errmsg(t->src));
        goto done;
    }
    int64_t seen = 0, t0 = mono_ms(), deadline = t0 + (int64_t)(timeout * 1000);
    for (size_t i = 0; i < w.nf; i++)
        seen = w.f[i].id > seen ? w.f[i].id : seen;
    const char *why = NULL;
    tmcp_src_changed(t->src);
    for (;;) {
        int64_t nfresh = 0;
        for (size_t i = 0; i < w.nf; i++)
            nfresh += w.f[i].id > seen;
        if (has_step && w.step_last != INT64_MIN && w.step_last >= step)
            why = "step";
        else if (new_finding && nfresh)
            why = "new_finding";
        else if (strcmp(w.status, "running") != 0)
            why = "run_ended";
        else if (mono_ms() >= deadline)
            why = "timeout";
        if (why)
            break;
        /* Sleep in the server's stdin wait, so pings are answered meanwhile. */
        int64_t left = deadline - mono_ms();
        if (t->interrupted && t->interrupted(t->interrupted_ctx, (int)(left < WAIT_TICK_MS ? left : WAIT_TICK_MS))) {
            why = "cancelled";
            break;
        }
        if (!t->interrupted)
            poll(NULL, 0, WAIT_TICK_MS);
        if (tmcp_src_changed(t->src) && watch_read(t, &w) < 0) {
            res = tool_error("%s", tmcp_src_errmsg(t->src));
            goto done;
        }
    }
    cJSON *body = cJSON_CreateObject(), *arr;
    char label[1100];
    tmcp_run_label(&w.run, label, sizeof label);
    cJSON_AddStringToObject(body, "reached", why);
    cJSON_AddStringToObject(body, "run", label);
    cJSON_AddStringToObject(body, "status", w.status);
    if (w.step_last != INT64_MIN)
        add_i64(body, "step_last", w.step_last);
    else
        cJSON_AddNullToObject(body, "step_last");
    add_num(body, "waited_s", (double)(mono_ms() - t0) / 1e3);
    arr = cJSON_AddArrayToObject(body, "new_findings");
    for (size_t i = 0; i < w.nf; i++)
        if (w.f[i].id > seen)
            cJSON_AddItemToArray(arr, finding_item(&w.f[i]));
    res = json_result(body);
done:
    tmcp_run_clear(&w.run);
    tss_free_findings(w.f, w.nf);
    return res;
}

/* ---- annotate ------------------------------------------------------------------- */

static cJSON *tool_annotate(tmcp_tools *t, args *a)
{
    const char *name, *text, *kind = "note";
    int64_t step, rank = 0;
    tss_run run;
    if (!t->allow_write)
        return tool_error("annotate writes into the store, and this server is read-only: start it with "
                          "`trainscope mcp ... --allow-write` to let it annotate runs");
    if (arg_str(a, "run", 1, &name) < 0 || arg_int(a, "step", 1, INT64_MIN, INT64_MAX, &step) < 0 ||
        arg_str(a, "text", 1, &text) < 0 || arg_str(a, "kind", 0, &kind) < 0 ||
        arg_int(a, "rank", 0, 0, INT32_MAX, &rank) < 0)
        return tool_error("%s", a->err);
    if (strlen(kind) > 64 || strlen(text) > 65536)
        return tool_error("'kind' is at most 64 bytes and 'text' at most 65536");
    if (tmcp_src_find_run(t->src, name, &run) < 0)
        return tool_error("%s", tmcp_src_errmsg(t->src));
    cJSON *res;
    if (tmcp_src_annotate(t->src, &run, (int)rank, step, kind, text) < 0) {
        res = tool_error("%s", tmcp_src_errmsg(t->src));
    } else {
        char label[1100];
        cJSON *body = cJSON_CreateObject();
        tmcp_run_label(&run, label, sizeof label);
        cJSON_AddTrueToObject(body, "written");
        cJSON_AddStringToObject(body, "run", label);
        add_i64(body, "step", step);
        cJSON_AddNumberToObject(body, "rank", (double)rank);
        cJSON_AddStringToObject(body, "kind", kind);
        cJSON_AddStringToObject(body, "text", text);
        res = json_result(body);
    }
    tmcp_run_clear(&run);
    return res;
}

/* ---- the table ------------------------------------------------------------------- */

#define RUN_PROP "\"run\":{\"type\":\"string\",\"description\":\"run name, or project/name\"}"

static const struct tool {
    const char *name, *title, *description, *schema;
    cJSON *(*fn)(tmcp_tools *, args *);
    int writes;
} TOOLS[] = {
    { "list_runs", "List runs",
      "The runs in the store, newest first: status (running, finished, failed...), start, last update, "
      "duration, number of metrics and points, dropped samples, resumes. Filter by name (substring or glob), "
      "project, status.",
      "{\"type\":\"object\",\"properties\":{"
      "\"name\":{\"type\":\"string\",\"description\":\"substring of the run name, or a glob such as 'gpt2-*'\"},"
      "\"project\":{\"type\":\"string\",\"description\":\"only runs of this project\"},"
      "\"status\":{\"type\":\"string\",\"description\":\"only runs with this status, e.g. running\"},"
      "\"limit\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":1000,\"default\":50}}}",
      tool_list_runs, 0 },
    { "describe_run", "Describe a run",
      "One run in detail: config (hyperparameters), status, time span, ranks, every metric with its point "
      "count, step range, min/max and NaN/Inf counts, dropped samples and their step gaps, resume events "
      "(restarts from a checkpoint), the latest events, and the findings the collector's detectors stored.",
      "{\"type\":\"object\",\"properties\":{" RUN_PROP "},\"required\":[\"run\"]}",
      tool_describe_run, 0 },
    { "get_series", "Get metric values",
      "Values of one or more metrics of a run over a step range. When a metric has at most max_points points "
      "in the range they come raw as [step, value]; otherwise the range is cut into max_points buckets of "
      "equal step width and each non-empty bucket gives [step_first, step_last, count, min, max, first, last] "
      "(exact M4 reduction: spikes stay visible). Each series says which reduction it got. NaN and infinities "
      "are the strings \"nan\", \"inf\", \"-inf\".",
      "{\"type\":\"object\",\"properties\":{" RUN_PROP ","
      "\"metrics\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"description\":\"metric names or glob "
      "patterns such as 'train/*'; default every metric\"},"
      "\"rank\":{\"type\":\"integer\",\"minimum\":0,\"description\":\"only this rank; default every rank\"},"
      "\"from\":{\"type\":\"integer\",\"description\":\"first step (inclusive); default the first logged\"},"
      "\"to\":{\"type\":\"integer\",\"description\":\"last step (inclusive); default the last logged\"},"
      "\"max_points\":{\"type\":\"integer\",\"minimum\":2,\"maximum\":5000,\"default\":200,"
      "\"description\":\"raw points up to this many per metric, else this many buckets\"}},"
      "\"required\":[\"run\"]}",
      tool_get_series, 0 },
    { "report", "Report on a run",
      "The run's report (the JSON of `trainscope report --json`): time span, steps per second, per metric "
      "final, best, min, max, mean, std, median, and the findings of the detectors (spike, nan, inf, "
      "divergence, plateau, grad_explosion, throughput_drop, straggler, stalled) with severity, steps and a "
      "message.",
      "{\"type\":\"object\",\"properties\":{" RUN_PROP "},\"required\":[\"run\"]}",
      tool_report, 0 },
    { "compare_runs", "Compare two runs",
      "The report of run plus a comparison against a second run: per metric (paired by name and rank) the "
      "final and best values of both, their difference, the largest difference at a common step, and the "
      "step from which the smoothed curves diverge by more than the tolerance.",
      "{\"type\":\"object\",\"properties\":{" RUN_PROP ","
      "\"against\":{\"type\":\"string\",\"description\":\"the run to compare with\"},"
      "\"tolerance\":{\"type\":\"number\",\"exclusiveMinimum\":0,\"default\":0.05,"
      "\"description\":\"relative difference that counts as diverged\"}},"
      "\"required\":[\"run\",\"against\"]}",
      tool_compare_runs, 0 },
    { "wait_for", "Wait for a run",
      "Block until a live run reaches a step, or until the detectors report a new finding for it, or the run "
      "ends, or timeout_s passes (the result says which, with the run's last step and the new findings). "
      "How to watch a run without polling in a loop.",
      "{\"type\":\"object\",\"properties\":{" RUN_PROP ","
      "\"step\":{\"type\":\"integer\",\"description\":\"return once the run has logged this step\"},"
      "\"new_finding\":{\"type\":\"boolean\",\"description\":\"return once a finding appears that was not "
      "there when the call began\"},"
      "\"timeout_s\":{\"type\":\"number\",\"minimum\":0,\"maximum\":600,\"default\":60}},"
      "\"required\":[\"run\"]}",
      tool_wait_for, 0 },
    { "annotate", "Annotate a run",
      "Write an event into a run at a step, e.g. a note on a suspected data problem; it shows in the viewer, "
      "in describe_run and in exports.",
      "{\"type\":\"object\",\"properties\":{" RUN_PROP ","
      "\"step\":{\"type\":\"integer\"},"
      "\"text\":{\"type\":\"string\",\"maxLength\":65536},"
      "\"kind\":{\"type\":\"string\",\"maxLength\":64,\"default\":\"note\"},"
      "\"rank\":{\"type\":\"integer\",\"minimum\":0,\"default\":0}},"
      "\"required\":[\"run\",\"step\",\"text\"]}",
      tool_annotate, 1 },
};

cJSON *tmcp_tools_list(const tmcp_tools *t)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < sizeof TOOLS / sizeof TOOLS[0]; i++) {
        if (TOOLS[i].writes && !t->allow_write)
            continue;
        cJSON *o = cJSON_CreateObject(), *ann;
        cJSON_AddStringToObject(o, "name", TOOLS[i].name);
        cJSON_AddStringToObject(o, "title", TOOLS[i].title);
        cJSON_AddStringToObject(o, "description", TOOLS[i].description);
        cJSON_AddItemToObject(o, "inputSchema", cJSON_Parse(TOOLS[i].schema));
        ann = cJSON_AddObjectToObject(o, "annotations");
        cJSON_AddBoolToObject(ann, "readOnlyHint", !TOOLS[i].writes);
        cJSON_AddFalseToObject(ann, "destructiveHint");
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

cJSON *tmcp_tools_call(tmcp_tools *t, const char *name, const cJSON *obj)
{
    args a = { .obj = obj };
    for (size_t i = 0; i < sizeof TOOLS / sizeof TOOLS[0]; i++)
        if (strcmp(name, TOOLS[i].name) == 0)
            return TOOLS[i].fn(t, &a);
    return NULL;
}
