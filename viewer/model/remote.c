/* remote.c - the model's network backend: tvm_open("tcp://..." or
 * "ipc://...") lands here (tvm__net_open, model_int.h). net.c does the I/O
 * in its own thread; this file only turns what it queued into model updates,
 * inside tvm_poll on the UI thread, so no tvm_ call waits for the network.
 *
 * History: from the API's `points` (held in memory chunks) by default. With
 * "?history=file" and a store file this process can read, the model reads
 * history from the file instead (tvm__attach_store) and the network brings
 * only LIVE points, runs, events and gaps (findings then come from the file too).
 *
 * Findings: net.c delivers a run's whole list over the API when it changed;
 * it replaces that run's part of the model's findings (src->findings, the
 * array file.c fills for a file source; tvm__findings_clear frees it).
 */
#include "model_int.h"
#include "net.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct remote {
    tvn_conn *conn;
    tvm_source *src;
    int rc;                     /* first model error of this drain */
    char *store_path;           /* history=file: the store to attach once the series are known */
} remote;

static void keep_err(remote *r, int rc)
{
    if (rc < 0 && r->rc == 0)
        r->rc = rc;
}

static void on_state(void *ctx, enum tvm_state st, const char *message)
{
    remote *r = ctx;
    tvm__set_state(r->src, st, "%s", message);
    if (st == TVM_FAILED)
        snprintf(r->src->err, sizeof r->src->err, "%s", message);
}

static void on_info(void *ctx, const char *store_path, int64_t time_unit_ns, int use_file)
{
    remote *r = ctx;
    (void)time_unit_ns;
    if (!use_file || r->src->st)
        return;
    free(r->store_path);
    r->store_path = strdup(store_path);
}

/* The store file serves the chunks of the series the model knows when it
 * is attached: attach it once the first listing is in. */
static void on_listed(void *ctx)
{
    remote *r = ctx;
    if (!r->store_path || r->src->st)
        return;
    if (tvm__attach_store(r->src, r->store_path) < 0)
        tvn_history_from_api(r->conn);
    free(r->store_path);
    r->store_path = NULL;
}

static void on_runs(void *ctx, const tss_run *runs, size_t n)
{
    remote *r = ctx;
    for (size_t i = 0; i < n; i++) {
        const tss_run *u = &runs[i];
        char *display = NULL;
        if (asprintf(&display, "%s%s%s", u->project, u->project[0] ? "/" : "", u->name) < 0) {
            keep_err(r, -ENOMEM);
            return;
        }
        tvm_run d = { .id = u->id, .project = u->project, .name = u->name, .display = display,
                      .status = u->status, .world_size = u->world_size,
                      .created_ns = u->created_ns, .updated_ns = u->updated_ns,
                      .ended_ns = u->ended_ns, .resumes = u->resumes, .dropped = u->dropped };
        keep_err(r, tvm__run_upsert(r->src, &d, NULL));
        free(display);
    }
}

static void on_series(void *ctx, int64_t run_id, const tss_series *s, size_t n)
{
    remote *r = ctx;
    size_t run = tvm__run_find(r->src, run_id);
    if (run == SIZE_MAX)
        return;
    for (size_t i = 0; i < n; i++) {
        int known = tvm__series_find(r->src, s[i].id) != SIZE_MAX;
        keep_err(r, tvm__series_upsert(r->src, run, s[i].id, s[i].rank, s[i].name, NULL));
        /* A series new to an attached store: its chunks committed before now
         * were passed over by the file's polling (it skips series it does
         * not know); have the next poll list every chunk again (those held
         * are recognised by id and skipped). */
        if (!known && r->src->st)
            r->src->max_chunk = 0;
    }
}

static void on_events(void *ctx, int64_t run_id, const tss_event *ev, size_t n)
{
    remote *r = ctx;
    size_t run = tvm__run_find(r->src, run_id);
    if (run == SIZE_MAX)
        return;
    for (size_t i = 0; i < n; i++)
        keep_err(r, tvm__event_add(r->src, run, ev[i].rank, ev[i].step, ev[i].t_ns, ev[i].kind,
                                   ev[i].text));
}

static void on_gaps(void *ctx, int64_t run_id, const tss_gap *g, size_t n)
{
    remote *r = ctx;
    size_t run = tvm__run_find(r->src, run_id);
    if (run == SIZE_MAX)
        return;
    for (size_t i = 0; i < n; i++) {
        tvm_gap d = { .run = run, .rank = g[i].rank, .count = g[i].count,
                      .step_first = g[i].step_first, .step_last = g[i].step_last,
                      .t_first_ns = g[i].t_first_ns, .t_last_ns = g[i].t_last_ns };
        keep_err(r, tvm__gap_add(r->src, &d));
    }
}

static void on_reset(void *ctx, int64_t series_id, tss_point *p, size_t n)
{
    remote *r = ctx;
    size_t si = tvm__series_find(r->src, series_id);
    if (si == SIZE_MAX)
        return;
    /* One generation above anything held, so the model keeps none of the
     * old points: the history replaces them all. */
    const tvm_ser *s = &r->src->ser[si];
    int gen = s->nchunks ? s->chunks[s->nchunks - 1].gen + 1 : 0;
    for (size_t i = 0; i < n; i++)
        p[i].generation = gen;
    keep_err(r, tvm__series_set_history(r->src, si, p, n));
}

/* Points after what the series holds. net.c already merged them against
 * what it delivered; an attached store file may hold some of them too (it
 * is read apart from LIVE), so the same rule is applied to the series'
 * last chunk: a point at or below its last step and not newer than its
 * last time is already there. */
static void on_points(void *ctx, int64_t series_id, const tss_point *p, size_t n)
{
    remote *r = ctx;
    size_t si = tvm__series_find(r->src, series_id);
    if (si == SIZE_MAX)
        return;
    const tvm_ser *s = &r->src->ser[si];
    if (s->nchunks) {
        const tvm_chunk *last = &s->chunks[s->nchunks - 1];
        while (n > 0 && p->step <= last->step_last && p->t_ns <= last->t_last) {
            p++;
            n--;
        }
    }
    keep_err(r, tvm__series_append(r->src, si, p, n));
}

/* The one sentence of a finding's detail JSON, "" when it has none (as
 * file.c reads it from the store). */
static char *finding_message(const char *detail)
{
    cJSON *j = detail && detail[0] ? cJSON_Parse(detail) : NULL;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
    char *out = strdup(cJSON_IsString(m) ? m->valuestring : "");
    cJSON_Delete(j);
    return out;
}

/* model.h's order: step_first, then run. */
static int finding_cmp(const void *a, const void *b)
{
    const tvm_finding *x = a, *y = b;
    if (x->step_first != y->step_first)
        return x->step_first < y->step_first ? -1 : 1;
    return x->run < y->run ? -1 : x->run > y->run;
}

/* Replace the run's findings with f[0..n): the other runs' kept, the new
 * ones converted, all sorted again. Built aside, so out of memory leaves
 * the old list whole. */
static void on_findings(void *ctx, int64_t run_id, const tss_finding *f, size_t n)
{
    remote *r = ctx;
    tvm_source *src = r->src;
    size_t run = tvm__run_find(src, run_id);
    if (run == SIZE_MAX || src->st)   /* unknown run; or the store file serves findings */
        return;
    size_t keep = 0;
    for (size_t i = 0; i < src->nfindings; i++)
        keep += src->findings[i].run != run;
    tvm_finding *all = calloc(keep + n ? keep + n : 1, sizeof *all);
    size_t m = 0;
    int rc = all ? 0 : -ENOMEM;
    for (size_t i = 0; i < n && rc == 0; i++) {
        size_t si = f[i].series_id > 0 ? tvm__series_find(src, f[i].series_id) : SIZE_MAX;
        tvm_finding *d = &all[m++];
        *d = (tvm_finding){ .run = run, .rank = f[i].rank, .series = si == SIZE_MAX ? -1 : (ptrdiff_t)si,
                            .kind = strdup(f[i].kind), .severity = strdup(f[i].severity),
                            .message = finding_message(f[i].detail), .step_first = f[i].step_first,
                            .step_last = f[i].step_last, .t_ns = f[i].t_ns };
        if (!d->kind || !d->severity || !d->message)
            rc = -ENOMEM;
    }
    if (rc < 0) {
        tvm_source tmp = { .findings = all, .nfindings = m };
        tvm__findings_clear(&tmp);
        keep_err(r, tvm__fail(src, rc, "out of memory"));
        return;
    }
    /* The other runs' findings move over, strings and all. */
    for (size_t i = 0; i < src->nfindings; i++) {
        if (src->findings[i].run != run) {
            all[m++] = src->findings[i];
        } else {
            free((char *)src->findings[i].kind);
            free((char *)src->findings[i].severity);
            free((char *)src->findings[i].message);
        }
    }
    free(src->findings);
    qsort(all, m, sizeof *all, finding_cmp);
    src->findings = all;
    src->nfindings = m;
    src->changed |= TVM_CHANGED_EVENTS;
}

static const tvn_sink SINK = {
    .state = on_state, .info = on_info, .runs = on_runs, .series = on_series,
    .events = on_events, .gaps = on_gaps, .findings = on_findings, .reset = on_reset,
    .points = on_points, .listed = on_listed,
};

static int remote_poll(tvm_source *src)
{
    remote *r = src->be_state;
    r->rc = 0;
    tvn_drain(r->conn, &SINK, r);
    return r->rc;
}

static void remote_close(tvm_source *src)
{
    remote *r = src->be_state;
    if (!r)
        return;
    tvn_close(r->conn);
    free(r->store_path);
    free(r);
    src->be_state = NULL;
}

static const tvm_backend NET_BACKEND = { .name = "net", .poll = remote_poll, .close = remote_close };

int tvm__net_open(tvm_source *src, const char *where, const tvm_open_opts *opts)
{
    char err[512];
    remote *r = calloc(1, sizeof *r);
    if (!r)
        return tvm__fail(src, -ENOMEM, "%s: out of memory", where);
    r->src = src;
    tvn_opts o = { .runs = opts ? opts->runs : NULL, .nruns = opts ? opts->nruns : 0 };
    int rc = tvn_open(&r->conn, where, &o, err, sizeof err);
    if (rc < 0) {
        free(r);
        return tvm__fail(src, rc, "%s", err);
    }
    src->be = &NET_BACKEND;
    src->be_state = r;
    const char *msg;
    enum tvm_state st = tvn_state(r->conn, &msg);
    tvm__set_state(src, st, "%s", msg);
    return 0;
}

int tvm__net_stats(tvm_source *src, tvn_stats *s)
{
    if (!src || src->be != &NET_BACKEND)
        return -EINVAL;
    tvn_get_stats(((remote *)src->be_state)->conn, s);
    return 0;
}
