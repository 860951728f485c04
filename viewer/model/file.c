/* file.c - the store-file backend of the viewer's model: reads a store
 * read-only (also while a collector writes it) into the model's arrays
 * (model_int.h), and keeps them current from tvm_poll.
 *
 * Opening reads the runs, series, events and gaps, and every chunk's
 * summary (one row read per chunk of up to 4096 points; never a blob).
 * A poll first asks SQLite whether anybody committed since the last one
 * (PRAGMA data_version, no page read); only then it reads what is new: rows
 * with ids above the highest held, and the last chunk row of each series
 * (the writer rewrites its open chunk in place, only ever appending).
 */
#include "model_int.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int tvm_file_fail(tvm_source *src, int rc)
{
    return tvm__fail(src, rc, "%s", tss_errmsg(src->st));
}

static void tvm_chunk_from_row(const tss_chunk_row *r, tvm_chunk *c)
{
    *c = (tvm_chunk){.id = r->id, .gen = r->gen, .n = (uint32_t)r->n,
                     .step_first = r->step_first, .step_last = r->step_last,
                     .t_first = r->t_first_ns, .t_last = r->t_last_ns,
                     .min = r->vmin, .max = r->vmax, .first = r->vfirst, .last = r->vlast,
                     .n_nan = (uint32_t)r->n_nan, .n_inf = (uint32_t)r->n_inf,
                     .time_sorted = 1};
    /* without an Inf, the extrema over finite values are the row's */
    c->fvalid = r->n_inf == 0;
    c->fmin = c->fvalid ? r->vmin : NAN;
    c->fmax = c->fvalid ? r->vmax : NAN;
}

/* ---- the memory tail of an attached source ------------------------------------ */

/* Take the trailing memory chunks off series s (an attached store's chunks
 * go before them). *tail gets them (caller frees), NULL when none. */
static size_t tvm_tail_take(tvm_ser *s, tvm_chunk **tail)
{
    size_t k = s->nchunks;

    *tail = NULL;
    while (k > 0 && s->chunks[k - 1].mem)
        k--;
    if (k == s->nchunks)
        return 0;
    *tail = malloc((s->nchunks - k) * sizeof **tail);
    if (!*tail)
        return 0;   /* keep them where they are: order suffers, nothing is lost */
    memcpy(*tail, &s->chunks[k], (s->nchunks - k) * sizeof **tail);
    k = s->nchunks - k;
    s->nchunks -= k;
    return k;
}

/* Put back the points of the tail that the store does not hold yet (one
 * append per block: the model folds a batch at once). */
static int tvm_tail_put(tvm_source *src, size_t si, tvm_chunk *tail, size_t n)
{
    tvm_ser *s = &src->ser[si];
    int64_t last_step = s->nchunks ? s->chunks[s->nchunks - 1].step_last : 0;
    int last_gen = s->nchunks ? s->chunks[s->nchunks - 1].gen : -1;
    tss_point *p = malloc(TVM_BLOCK_POINTS * sizeof *p);
    int rc = p ? 0 : tvm__fail(src, -ENOMEM, "out of memory");

    for (size_t c = 0; c < n; c++) {
        const tvm_block *b = tail[c].mem;
        size_t np = 0;
        for (uint32_t i = 0; rc == 0 && i < b->n; i++) {
            tss_point q = {b->step[i], b->t_ns[i], b->value[i], tail[c].gen};
            if (q.generation < last_gen || (q.generation == last_gen && q.step <= last_step))
                continue;
            p[np++] = q;
        }
        if (rc == 0 && np)
            rc = tvm__series_append(src, si, p, np);
        free(tail[c].mem);
    }
    free(p);
    free(tail);
    return rc;
}

/* ---- rows ------------------------------------------------------------------------ */

typedef struct tvm_sync {
    tvm_source *src;
    int one_series;             /* listing one series' rows: max_chunk stays (other series' rows above it) */
    size_t *tail_n;             /* per series: memory chunks taken off (attached source) */
    tvm_chunk **tail;
} tvm_sync;

static int tvm_row_new(void *ctx, const tss_chunk_row *r)
{
    tvm_sync *y = ctx;
    tvm_source *src = y->src;
    size_t si = tvm__series_find(src, r->series_id);
    tvm_chunk c;

    if (r->id > src->max_chunk && !y->one_series)
        src->max_chunk = r->id;
    if (si == SIZE_MAX || r->id <= src->ser[si].max_store_id)
        return 0;
    if (y->tail && !y->tail[si] && src->ser[si].nchunks && src->ser[si].chunks[src->ser[si].nchunks - 1].mem)
        y->tail_n[si] = tvm_tail_take(&src->ser[si], &y->tail[si]);
    tvm_chunk_from_row(r, &c);
    return tvm__series_add_chunk(src, si, &c);
}

/* The last store chunk of a series may have grown since it was read. */
static int tvm_row_refresh(tvm_source *src, size_t si)
{
    tvm_ser *s = &src->ser[si];
    size_t k = s->nchunks;
    tss_chunk_row r;
    tvm_chunk *c, *tail;
    int64_t from_step, from_t;
    size_t ntail;
    int rc;

    while (k > 0 && s->chunks[k - 1].mem)
        k--;
    if (k == 0 || s->chunks[k - 1].n >= TVM_BLOCK_POINTS)
        return 0;
    c = &s->chunks[k - 1];
    rc = tss_chunks_row(src->stq, c->id, &r);
    if (rc < 0)
        return tvm_file_fail(src, rc);
    if ((uint32_t)r.n == c->n)
        return 0;
    if ((uint32_t)r.n < c->n || r.step_first != c->step_first || r.gen != c->gen)
        return tvm__fail(src, -EINVAL, "%s: chunk %lld: corrupt chunk row (it shrank or moved)", src->where,
                         (long long)c->id);
    from_step = c->step_last;
    from_t = c->t_last;
    /* the memory tail after it (an attached source's LIVE points) may hold
     * points the row now has: off, and back without those (as tvm_row_new) */
    ntail = tvm_tail_take(s, &tail);
    tvm_chunk_from_row(&r, c);
    tvm__cache_forget(src->cache, c->id);
    tvm__cache_forget(src->subs, c->id);
    tvm__series_changed(src, si, from_step, from_t);
    src->changed |= TVM_CHANGED_POINTS;
    return ntail ? tvm_tail_put(src, si, tail, ntail) : 0;
}

/* ---- runs, series, events, gaps ------------------------------------------------------ */

static int tvm_run_row(void *ctx, const tss_run *r)
{
    tvm_source *src = ctx;
    size_t i = tvm__run_find(src, r->id);
    tvm_run d = {.id = r->id, .project = r->project, .name = r->name, .status = r->status,
                 .world_size = r->world_size, .created_ns = r->created_ns, .updated_ns = r->updated_ns,
                 .ended_ns = r->ended_ns};

    if (i != SIZE_MAX) {    /* counted from the events and gaps */
        d.resumes = src->runs[i].resumes;
        d.dropped = src->runs[i].dropped;
    }
    return tvm__run_upsert(src, &d, NULL) < 0 ? -ENOMEM : 0;
}

static int tvm_series_row(void *ctx, const tss_series_row *r)
{
    tvm_source *src = ctx;
    size_t run = tvm__run_find(src, r->run_id);

    if (r->id > src->max_series)
        src->max_series = r->id;
    if (run == SIZE_MAX)
        return 0;
    return tvm__series_upsert(src, run, r->id, r->rank, r->name, NULL);
}

static int tvm_event_row(void *ctx, const tss_event *e)
{
    tvm_source *src = ctx;
    size_t run = tvm__run_find(src, e->run_id);

    if (e->id > src->max_event)
        src->max_event = e->id;
    if (run == SIZE_MAX)
        return 0;
    if (strcmp(e->kind, "resume") == 0)
        src->runs[run].resumes++;
    return tvm__event_add(src, run, e->rank, e->step, e->t_ns, e->kind, e->text);
}

static int tvm_gap_row(void *ctx, int64_t id, const tss_gap *g)
{
    tvm_source *src = ctx;
    size_t run = tvm__run_find(src, g->run_id);
    tvm_gap d;

    if (id > src->max_gap)
        src->max_gap = id;
    if (run == SIZE_MAX)
        return 0;
    src->runs[run].dropped += g->count;
    d = (tvm_gap){.run = run, .rank = g->rank, .count = g->count, .step_first = g->step_first,
                  .step_last = g->step_last, .t_first_ns = g->t_first_ns, .t_last_ns = g->t_last_ns};
    return tvm__gap_add(src, &d);
}

/* ---- findings ------------------------------------------------------------------------ */

void tvm__findings_clear(tvm_source *src)
{
    for (size_t i = 0; i < src->nfindings; i++) {
        free((char *)src->findings[i].kind);
        free((char *)src->findings[i].severity);
        free((char *)src->findings[i].message);
    }
    free(src->findings);
    src->findings = NULL;
    src->nfindings = 0;
}

/* The one sentence of a finding's detail JSON, "" when it has none. */
static char *tvm_finding_message(const char *detail)
{
    cJSON *j = detail ? cJSON_Parse(detail) : NULL;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
    char *out = strdup(cJSON_IsString(m) ? m->valuestring : "");
    cJSON_Delete(j);
    return out;
}

static int tvm_finding_cmp(const void *a, const void *b)
{
    const tvm_finding *x = a, *y = b;
    if (x->step_first != y->step_first)
        return x->step_first < y->step_first ? -1 : 1;
    return x->run < y->run ? -1 : x->run > y->run;
}

/* Findings are few and added rarely: read them all again, for every run
 * held, whenever the store changed. The new list replaces the old whole. */
static int tvm_file_findings(tvm_source *src)
{
    tvm_finding *all = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;

    for (size_t r = 0; r < src->nruns && rc >= 0; r++) {
        tss_finding *f = NULL;
        size_t nf = 0;
        rc = tss_list_findings(src->st, src->runs[r].id, &f, &nf);
        if (rc < 0)
            break;
        if (n + nf > cap) {
            size_t want = (n + nf) * 2;
            tvm_finding *grown = realloc(all, want * sizeof *all);
            if (!grown) {
                tss_free_findings(f, nf);
                rc = -ENOMEM;
                break;
            }
            all = grown;
            cap = want;
        }
        for (size_t i = 0; i < nf; i++) {
            size_t si = f[i].series_id ? tvm__series_find(src, f[i].series_id) : SIZE_MAX;
            tvm_finding *d = &all[n];
            *d = (tvm_finding){.run = r, .rank = f[i].rank, .series = si == SIZE_MAX ? -1 : (ptrdiff_t)si,
                               .kind = strdup(f[i].kind), .severity = strdup(f[i].severity),
                               .message = tvm_finding_message(f[i].detail),
                               .step_first = f[i].step_first, .step_last = f[i].step_last, .t_ns = f[i].t_ns};
            n++;
            if (!d->kind || !d->severity || !d->message)
                rc = -ENOMEM;
        }
        tss_free_findings(f, nf);
    }
    if (rc < 0) {
        tvm_source tmp = {.findings = all, .nfindings = n};
        tvm__findings_clear(&tmp);
        return rc == -ENOMEM ? tvm__fail(src, rc, "out of memory") : tvm_file_fail(src, rc);
    }
    if (n)
        qsort(all, n, sizeof *all, tvm_finding_cmp);
    if (n != src->nfindings)
        src->changed |= TVM_CHANGED_EVENTS;
    src->findings_nruns = src->nruns;
    src->findings_nser = src->nser;
    tvm__findings_clear(src);
    src->findings = all;
    src->nfindings = n;
    return 0;
}

/* ---- sync --------------------------------------------------------------------------- */

/* Bring the arrays up to the store's newest commit. first: the open. */
static int tvm_file_sync(tvm_source *src, int first)
{
    int64_t mc, ms, me, mg;
    size_t nser_before = src->nser;
    tvm_sync y = {.src = src};
    int rc;

    if (src->import_meta && (rc = tss_chunks_runs(src->stq, tvm_run_row, src)) < 0)
        return rc == -ENOMEM ? rc : tvm_file_fail(src, rc);
    rc = tss_chunks_max_ids(src->stq, &mc, &ms, &me, &mg);
    if (rc < 0)
        return tvm_file_fail(src, rc);
    if (src->import_meta && ms > src->max_series && (rc = tss_chunks_series(src->stq, src->max_series, tvm_series_row, src)) < 0)
        return src->err[0] ? rc : tvm_file_fail(src, rc);
    if (src->import_meta && me > src->max_event && (rc = tss_chunks_events(src->stq, src->max_event, tvm_event_row, src)) < 0)
        return src->err[0] ? rc : tvm_file_fail(src, rc);
    if (src->import_meta && mg > src->max_gap && (rc = tss_chunks_gaps(src->stq, src->max_gap, tvm_gap_row, src)) < 0)
        return src->err[0] ? rc : tvm_file_fail(src, rc);
    /* also for a network source reading the store: its run and series ids are the store's */
    if ((rc = tvm_file_findings(src)) < 0)
        return rc;
    /* rows that grew: only the last of each series held before this sync */
    for (size_t i = 0; !first && i < nser_before; i++)
        if ((rc = tvm_row_refresh(src, i)) < 0)
            return rc;
    /* series a network source learnt of since the last sync: their rows
     * below max_chunk were skipped then, as nobody knew them */
    int catch_up = !first && !src->import_meta && src->file_nser < src->nser;
    if (mc <= src->max_chunk && !catch_up) {
        src->file_nser = src->nser;
        return 0;
    }
    if (!src->import_meta) {
        y.tail = calloc(src->nser ? src->nser : 1, sizeof *y.tail);
        y.tail_n = calloc(src->nser ? src->nser : 1, sizeof *y.tail_n);
        if (!y.tail || !y.tail_n) {
            free(y.tail);
            free(y.tail_n);
            return tvm__fail(src, -ENOMEM, "out of memory");
        }
    }
    y.one_series = 1;
    for (size_t i = src->file_nser; catch_up && i < src->nser && rc >= 0; i++)
        rc = tss_chunks_list(src->stq, src->ser[i].pub.id, 0, tvm_row_new, &y);
    y.one_series = 0;
    if (rc >= 0 && first && src->run_filter) {
        /* a few runs of a big store: only their series' rows */
        for (size_t i = 0; i < src->nser && rc >= 0; i++)
            rc = tss_chunks_list(src->stq, src->ser[i].pub.id, 0, tvm_row_new, &y);
        src->max_chunk = mc;
    } else if (rc >= 0 && mc > src->max_chunk) {
        rc = tss_chunks_list(src->stq, 0, src->max_chunk, tvm_row_new, &y);
    }
    if (rc < 0 && !src->err[0])
        rc = tvm_file_fail(src, rc);
    for (size_t i = 0; y.tail && i < src->nser; i++) {
        int rc2 = y.tail[i] ? tvm_tail_put(src, i, y.tail[i], y.tail_n[i]) : 0;
        if (rc >= 0 && rc2 < 0)
            rc = rc2;
    }
    free(y.tail);
    free(y.tail_n);
    if (rc >= 0)
        src->file_nser = src->nser;
    return rc < 0 ? rc : 0;
}

int tvm__file_open(tvm_source *src, const char *path, const tvm_open_opts *opts, int import_meta)
{
    char err[512];
    int rc;

    rc = tss_open(&src->st, path, NULL, err, sizeof err);
    if (rc < 0)
        return tvm__fail(src, rc, "%s", err);
    rc = tss_chunks_open(src->st, &src->stq);
    if (rc < 0)
        return tvm_file_fail(src, rc);
    src->import_meta = import_meta;
    if (opts && opts->nruns) {
        src->run_filter = calloc(opts->nruns, sizeof *src->run_filter);
        if (!src->run_filter)
            return tvm__fail(src, -ENOMEM, "out of memory");
        for (size_t i = 0; i < opts->nruns; i++) {
            rc = tss_find_run(src->st, opts->runs[i], &src->run_filter[i]);
            if (rc < 0)
                return tvm_file_fail(src, rc);
        }
        src->nrun_filter = opts->nruns;
    }
    rc = tss_chunks_changed(src->stq);  /* the baseline of the first poll */
    if (rc < 0)
        return tvm_file_fail(src, rc);
    src->err[0] = 0;
    return tvm_file_sync(src, 1);
}

int tvm__file_poll(tvm_source *src)
{
    int rc = tss_chunks_changed(src->stq);

    if (rc < 0)
        return tvm_file_fail(src, rc);
    /* a network source may have learnt of runs and series the file had before */
    if (rc == 0 && !src->import_meta && src->file_nser < src->nser) {
        src->err[0] = 0;
        return tvm_file_sync(src, 0);
    }
    if (rc == 0)
        return src->nruns != src->findings_nruns || src->nser != src->findings_nser ? tvm_file_findings(src) : 0;
    src->err[0] = 0;
    return tvm_file_sync(src, 0);
}

void tvm__file_close(tvm_source *src)
{
    tss_chunks_close(src->stq);
    src->stq = NULL;
    tss_close(src->st);
    src->st = NULL;
}

int tvm__attach_store(tvm_source *src, const char *path)
{
    int rc;

    if (src->st)
        return 0;
    rc = tvm__file_open(src, path, NULL, 0);
    if (rc < 0) {
        tvm__file_close(src);
        return rc;
    }
    return 0;
}
