/* model.c - the viewer's data model: sources, runs, series, events, gaps
 * (contract in model.h; the internal seam for backends in model_int.h).
 *
 * A source is a store file (file.c) or a collector's API (net.c, when
 * built). Both keep the same arrays here; tvm_columns and tvm_points
 * (columns.c) read chunks the same way whatever filled them.
 *
 * Knobs: TVM_CACHE_BLOCKS decoded chunks kept (about 100 KiB each).
 */
#include "model_int.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TVM_CACHE_BLOCKS 384     /* decoded chunks: 384 x 100 KiB */
#define TVM_CACHE_SUBS 16384     /* their sub-summaries: 16384 x 4.6 KiB */

int tvm__fail(tvm_source *src, int rc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(src->err, sizeof src->err, fmt, ap);
    va_end(ap);
    return rc;
}

void tvm__set_state(tvm_source *src, enum tvm_state state, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    if (fmt)
        vsnprintf(src->state_msg, sizeof src->state_msg, fmt, ap);
    else
        src->state_msg[0] = 0;
    va_end(ap);
    src->state = state;
}

/* Grow *p (capacity *cap elements of size elem) to hold need. */
static int tvm_reserve(void **p, size_t *cap, size_t need, size_t elem)
{
    size_t ncap = *cap ? *cap : 16;
    void *np;

    if (need <= *cap)
        return 0;
    while (ncap < need)
        ncap *= 2;
    np = realloc(*p, ncap * elem);
    if (!np)
        return -ENOMEM;
    *p = np;
    *cap = ncap;
    return 0;
}

static int tvm_strset(const char **dst, const char *s)
{
    char *c;

    if (!s)
        return 0;
    if (*dst && strcmp(*dst, s) == 0)
        return 0;
    c = strdup(s);
    if (!c)
        return -ENOMEM;
    free((char *)*dst);
    *dst = c;
    return 0;
}

/* ---- open / close ----------------------------------------------------------- */

static int tvm_is_endpoint(const char *where)
{
    return strncmp(where, "tcp://", 6) == 0 || strncmp(where, "ipc://", 6) == 0;
}

#ifndef TVM_HAVE_NET
int tvm__net_open(tvm_source *src, const char *where, const tvm_open_opts *opts)
{
    (void)opts;
    return tvm__fail(src, -EPROTONOSUPPORT, "%s: this viewer was built without network sources", where);
}
#endif

int tvm_open(tvm_source **out, const char *where, const tvm_open_opts *opts, char *err, size_t errlen)
{
    tvm_source *src;
    int rc;

    if (out)
        *out = NULL;
    if (!out || !where) {
        if (err && errlen)
            snprintf(err, errlen, "tvm_open: no source given");
        return -EINVAL;
    }
    src = calloc(1, sizeof *src);
    if (!src || !(src->where = strdup(where)) || !(src->cache = tvm__cache_new(TVM_CACHE_BLOCKS, sizeof(tvm_block))) ||
        !(src->subs = tvm__cache_new(TVM_CACHE_SUBS, sizeof(tvm_subs)))) {
        if (err && errlen)
            snprintf(err, errlen, "%s: out of memory", where);
        tvm_close(src);
        return -ENOMEM;
    }
    src->t_limit = INT64_MAX;
    src->state = TVM_READY;
    rc = tvm_is_endpoint(where) ? tvm__net_open(src, where, opts) : tvm__file_open(src, where, opts, 1);
    for (size_t i = 0; rc == 0 && i < src->nser; i++)
        rc = tvm__series_recount(src, i);
    if (rc < 0) {
        if (err && errlen)
            snprintf(err, errlen, "%s", src->err);
        tvm_close(src);
        return rc;
    }
    src->changed = 0;   /* the first tvm_poll reports what came after the open */
    *out = src;
    return 0;
}

void tvm_close(tvm_source *src)
{
    if (!src)
        return;
    if (src->be && src->be->close)
        src->be->close(src);
    tvm__file_close(src);
    for (size_t i = 0; i < src->nruns; i++) {
        free((char *)src->runs[i].project);
        free((char *)src->runs[i].name);
        free((char *)src->runs[i].display);
        free((char *)src->runs[i].status);
    }
    free(src->runs);
    for (size_t i = 0; i < src->nser; i++) {
        tvm_ser *s = &src->ser[i];
        free((char *)s->pub.name);
        for (size_t c = 0; c < s->nchunks; c++)
            free(s->chunks[c].mem);
        free(s->chunks);
        for (int a = 0; a < TVM_NVIEWS; a++)
            free(s->view[a].v);
        for (int k = 0; k < 2; k++)
            free(s->cc[k].col);
    }
    free(src->ser);
    for (size_t i = 0; i < src->nevents; i++) {
        free((char *)src->events[i].kind);
        free((char *)src->events[i].text);
    }
    free(src->events);
    tvm__findings_clear(src);
    free(src->gaps);
    free(src->run_filter);
    free(src->lo);
    free(src->tmp);
    tvm__cache_free(src->cache);
    tvm__cache_free(src->subs);
    free(src->subs_tmp);
    free(src->where);
    free(src);
}

const char *tvm_errmsg(const tvm_source *src)
{
    return src ? src->err : "no source";
}

enum tvm_state tvm_state(const tvm_source *src, const char **message)
{
    if (message)
        *message = src->state_msg[0] ? src->state_msg : src->state == TVM_FAILED ? src->err : "";
    return src->state;
}

int tvm_poll(tvm_source *src)
{
    unsigned changed;
    int rc = 0;

    if (!src)
        return -EINVAL;
    if (src->be && src->be->poll)
        rc = src->be->poll(src);
    if (rc >= 0 && src->st)
        rc = tvm__file_poll(src);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < src->nser; i++)
        if (!src->ser[i].stats_valid && (rc = tvm__series_recount(src, i)) < 0)
            return rc;
    changed = src->changed;
    src->changed = 0;
    return (int)changed;
}

/* ---- runs and series ----------------------------------------------------------- */

size_t tvm__run_find(const tvm_source *src, int64_t run_id)
{
    for (size_t i = 0; i < src->nruns; i++)
        if (src->runs[i].id == run_id)
            return i;
    return SIZE_MAX;
}

int tvm__run_upsert(tvm_source *src, const tvm_run *r, size_t *idx)
{
    size_t i = tvm__run_find(src, r->id);
    tvm_run *d;
    int rc = 0;

    if (idx)
        *idx = SIZE_MAX;
    if (i == SIZE_MAX && src->run_filter) {
        size_t k;
        for (k = 0; k < src->nrun_filter && src->run_filter[k] != r->id; k++)
            ;
        if (k == src->nrun_filter)
            return 1;
    }
    if (i == SIZE_MAX) {
        if (tvm_reserve((void **)&src->runs, &src->runs_cap, src->nruns + 1, sizeof *src->runs) < 0)
            return tvm__fail(src, -ENOMEM, "out of memory");
        i = src->nruns++;
        memset(&src->runs[i], 0, sizeof src->runs[i]);
        src->runs[i].id = r->id;
    }
    d = &src->runs[i];
    if (tvm_strset(&d->project, r->project ? r->project : d->project ? NULL : "") < 0 ||
        tvm_strset(&d->name, r->name ? r->name : d->name ? NULL : "") < 0 ||
        tvm_strset(&d->status, r->status ? r->status : d->status ? NULL : "") < 0)
        rc = -ENOMEM;
    if (rc == 0 && (r->project || r->name || !d->display)) {
        char buf[1024];
        snprintf(buf, sizeof buf, "%s%s%s", d->project, *d->project ? "/" : "", d->name);
        rc = tvm_strset(&d->display, buf);
    }
    if (rc < 0)
        return tvm__fail(src, -ENOMEM, "out of memory");
    if (r->world_size != d->world_size || r->created_ns != d->created_ns || r->updated_ns != d->updated_ns ||
        r->ended_ns != d->ended_ns || r->resumes != d->resumes || r->dropped != d->dropped)
        src->changed |= TVM_CHANGED_RUNS;
    d->world_size = r->world_size;
    d->created_ns = r->created_ns;
    d->updated_ns = r->updated_ns;
    d->ended_ns = r->ended_ns;
    d->resumes = r->resumes;
    d->dropped = r->dropped;
    if (idx)
        *idx = i;
    return 0;
}

size_t tvm__series_find(const tvm_source *src, int64_t id)
{
    for (size_t i = src->nser; i-- > 0;)
        if (src->ser[i].pub.id == id)
            return i;
    return SIZE_MAX;
}

int tvm__series_upsert(tvm_source *src, size_t run, int64_t id, int rank, const char *name, size_t *idx)
{
    size_t i = tvm__series_find(src, id);
    tvm_ser *s;

    if (i == SIZE_MAX) {
        if (tvm_reserve((void **)&src->ser, &src->ser_cap, src->nser + 1, sizeof *src->ser) < 0)
            return tvm__fail(src, -ENOMEM, "out of memory");
        i = src->nser++;
        s = &src->ser[i];
        memset(s, 0, sizeof *s);
        s->pub.id = id;
        s->pub.vmin = s->pub.vmax = NAN;
        s->cc[0].flags = s->cc[1].flags = -1;
        src->changed |= TVM_CHANGED_RUNS;
    }
    s = &src->ser[i];
    if (s->pub.run != run || s->pub.rank != rank || !s->pub.name || strcmp(s->pub.name, name) != 0)
        src->changed |= TVM_CHANGED_RUNS;
    s->pub.run = run;
    s->pub.rank = rank;
    if (tvm_strset(&s->pub.name, name ? name : "") < 0)
        return tvm__fail(src, -ENOMEM, "out of memory");
    if (idx)
        *idx = i;
    return 0;
}

int tvm__series_add_chunk(tvm_source *src, size_t series, const tvm_chunk *c)
{
    tvm_ser *s = &src->ser[series];
    int64_t from_step = c->step_first, from_t = c->t_first;

    if (tvm_reserve((void **)&s->chunks, &s->cap, s->nchunks + 1, sizeof *s->chunks) < 0)
        return tvm__fail(src, -ENOMEM, "out of memory for chunk summaries");
    if (s->nchunks) {
        const tvm_chunk *p = &s->chunks[s->nchunks - 1];
        if (c->gen != p->gen)
            from_step = from_t = INT64_MIN;   /* a new timeline hides points of the older ones */
        else {
            from_step = p->step_last;
            from_t = p->t_last;
        }
    }
    s->chunks[s->nchunks++] = *c;
    if (c->id > s->max_store_id)
        s->max_store_id = c->id;
    tvm__series_changed(src, series, from_step, from_t);
    src->changed |= TVM_CHANGED_POINTS;
    return 0;
}

size_t tvm_run_count(const tvm_source *src)
{
    return src->nruns;
}

const tvm_run *tvm_run_at(const tvm_source *src, size_t i)
{
    return i < src->nruns ? &src->runs[i] : NULL;
}

size_t tvm_series_count(const tvm_source *src)
{
    return src->nser;
}

const tvm_series *tvm_series_at(const tvm_source *src, size_t i)
{
    return i < src->nser ? &src->ser[i].pub : NULL;
}

/* ---- memory points (network) ------------------------------------------------------ */

static tvm_chunk *tvm_mem_tail(tvm_source *src, tvm_ser *s, int gen)
{
    tvm_chunk *c = s->nchunks ? &s->chunks[s->nchunks - 1] : NULL;
    tvm_chunk nc = {0};

    if (c && c->mem && c->gen == gen && c->n < TVM_BLOCK_POINTS)
        return c;
    nc.mem = malloc(sizeof *nc.mem);
    if (!nc.mem)
        return NULL;
    nc.mem->n = 0;
    nc.gen = gen;
    nc.min = nc.max = nc.first = nc.last = nc.fmin = nc.fmax = NAN;
    nc.exact = nc.time_sorted = nc.fvalid = 1;
    if (tvm__series_add_chunk(src, (size_t)(s - src->ser), &nc) < 0) {
        free(nc.mem);
        return NULL;
    }
    return &s->chunks[s->nchunks - 1];
}

/* Append one point to the memory tail, in generation gen. */
static int tvm_mem_add(tvm_source *src, tvm_ser *s, int gen, const tss_point *p)
{
    tvm_chunk *c = tvm_mem_tail(src, s, gen);
    tvm_block *b;
    double v = p->value;

    if (!c)
        return tvm__fail(src, -ENOMEM, "out of memory for live points");
    b = c->mem;
    if (c->n == 0) {
        c->step_first = p->step;
        c->t_first = p->t_ns;
        c->first = v;
    } else if (p->t_ns < c->t_last) {
        c->time_sorted = 0;
    }
    b->step[b->n] = p->step;
    b->t_ns[b->n] = p->t_ns;
    b->value[b->n] = v;
    b->n++;
    c->n = b->n;
    c->step_last = p->step;
    c->t_last = p->t_ns > c->t_last || c->n == 1 ? p->t_ns : c->t_last;
    c->last = v;
    if (isnan(v)) {
        c->n_nan++;
    } else {
        if (isinf(v))
            c->n_inf++;
        else {
            c->fmin = isnan(c->fmin) || v < c->fmin ? v : c->fmin;
            c->fmax = isnan(c->fmax) || v > c->fmax ? v : c->fmax;
        }
        c->min = isnan(c->min) || v < c->min ? v : c->min;
        c->max = isnan(c->max) || v > c->max ? v : c->max;
    }
    /* the point's 64-point group, folded as tvm__block_resum would */
    if (((b->n - 1) & (TVM_SUB_POINTS - 1)) == 0)
        tss_bucket_init(&b->sub[(b->n - 1) >> TVM_SUB_SHIFT]);
    tss_bucket_add(&b->sub[(b->n - 1) >> TVM_SUB_SHIFT], p->step, v);
    return 0;
}

int tvm__series_append(tvm_source *src, size_t series, const tss_point *pts, size_t n)
{
    tvm_ser *s;
    int rc = 0;

    if (series >= src->nser)
        return tvm__fail(src, -EINVAL, "no series %zu", series);
    s = &src->ser[series];
    if (n == 0)
        return 0;
    /* what changes: from the series' last point on (steps and the newest
     * time only grow), or everything after a resume; told once per batch */
    const tvm_chunk *last = s->nchunks ? &s->chunks[s->nchunks - 1] : NULL;
    int64_t from_step = last ? last->step_last : pts[0].step, from_t = last ? last->t_last : pts[0].t_ns;
    for (size_t i = 0; i < n; i++) {
        last = s->nchunks ? &s->chunks[s->nchunks - 1] : NULL;
        int gen = last ? last->gen : 0;
        if (last && pts[i].step < last->step_last) {
            gen++;
            from_step = from_t = INT64_MIN;
        }
        rc = tvm_mem_add(src, s, gen, &pts[i]);
        if (rc < 0)
            break;
    }
    tvm__series_changed(src, series, from_step, from_t);
    src->changed |= TVM_CHANGED_POINTS;
    return rc < 0 ? rc : 0;
}

int tvm__series_set_history(tvm_source *src, size_t series, const tss_point *pts, size_t n)
{
    tvm_ser *s;
    tvm_chunk *old;
    size_t nold;
    int rc = 0;

    if (series >= src->nser)
        return tvm__fail(src, -EINVAL, "no series %zu", series);
    s = &src->ser[series];
    old = s->chunks;
    nold = s->nchunks;
    s->chunks = NULL;
    s->nchunks = s->cap = 0;
    s->max_store_id = 0;
    tvm__series_changed(src, series, INT64_MIN, INT64_MIN);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = tvm_mem_add(src, s, pts[i].generation, &pts[i]);
    /* the live tail that the history does not contain yet */
    for (size_t c = 0; rc == 0 && c < nold; c++) {
        const tvm_block *b = old[c].mem;
        for (uint32_t i = 0; b && rc == 0 && i < b->n; i++) {
            tss_point p = {b->step[i], b->t_ns[i], b->value[i], old[c].gen};
            if (n && (p.generation < pts[n - 1].generation ||
                      (p.generation == pts[n - 1].generation && p.step <= pts[n - 1].step)))
                continue;
            rc = tvm__series_append(src, series, &p, 1);
        }
    }
    for (size_t c = 0; c < nold; c++) {
        if (!old[c].mem) {
            tvm__cache_forget(src->cache, old[c].id);
            tvm__cache_forget(src->subs, old[c].id);
        }
        free(old[c].mem);
    }
    free(old);
    src->changed |= TVM_CHANGED_POINTS;
    return rc;
}

/* ---- events and gaps ---------------------------------------------------------------- */

int tvm__event_add(tvm_source *src, size_t run, int rank, int64_t step, int64_t t_ns, const char *kind,
                   const char *text)
{
    tvm_event e = {.run = run, .rank = rank, .step = step, .t_ns = t_ns};
    size_t at;

    if (tvm_reserve((void **)&src->events, &src->events_cap, src->nevents + 1, sizeof *src->events) < 0 ||
        tvm_strset(&e.kind, kind ? kind : "") < 0 || tvm_strset(&e.text, text ? text : "") < 0) {
        free((char *)e.kind);
        return tvm__fail(src, -ENOMEM, "out of memory");
    }
    /* ordered by time, arrival order among equal times */
    for (at = src->nevents; at > 0 && src->events[at - 1].t_ns > t_ns; at--)
        ;
    memmove(&src->events[at + 1], &src->events[at], (src->nevents - at) * sizeof e);
    src->events[at] = e;
    src->nevents++;
    src->changed |= TVM_CHANGED_EVENTS;
    return 0;
}

int tvm__gap_add(tvm_source *src, const tvm_gap *g)
{
    size_t at;

    if (tvm_reserve((void **)&src->gaps, &src->gaps_cap, src->ngaps + 1, sizeof *src->gaps) < 0)
        return tvm__fail(src, -ENOMEM, "out of memory");
    for (at = src->ngaps; at > 0 && src->gaps[at - 1].t_first_ns > g->t_first_ns; at--)
        ;
    memmove(&src->gaps[at + 1], &src->gaps[at], (src->ngaps - at) * sizeof *g);
    src->gaps[at] = *g;
    src->ngaps++;
    src->changed |= TVM_CHANGED_EVENTS;
    return 0;
}

/* Under a time limit only the events and gaps up to it exist: both arrays
 * are ordered by time, so that is a prefix. */
size_t tvm_event_count(const tvm_source *src)
{
    size_t n = src->nevents;

    while (n > 0 && src->events[n - 1].t_ns > src->t_limit)
        n--;
    return n;
}

const tvm_event *tvm_event_at(const tvm_source *src, size_t i)
{
    return i < tvm_event_count(src) ? &src->events[i] : NULL;
}

size_t tvm_finding_count(const tvm_source *src)
{
    return src->nfindings;
}

const tvm_finding *tvm_finding_at(const tvm_source *src, size_t i)
{
    return i < src->nfindings ? &src->findings[i] : NULL;
}

size_t tvm_gap_count(const tvm_source *src)
{
    size_t n = src->ngaps;

    while (n > 0 && src->gaps[n - 1].t_first_ns > src->t_limit)
        n--;
    return n;
}

const tvm_gap *tvm_gap_at(const tvm_source *src, size_t i)
{
    return i < tvm_gap_count(src) ? &src->gaps[i] : NULL;
}

/* Replay moving forward only adds points logged in (old, t]: columns before
 * the first of them stay valid, unless one of them starts a timeline (which
 * hides older points) or the clock went back somewhere (then all go). */
static void tvm_limit_changed(tvm_source *src, size_t i, int64_t old, int64_t t)
{
    tvm_ser *s = &src->ser[i];
    int64_t from_step = INT64_MAX;
    size_t k = s->nchunks;
    int gen = -1;

    if (t < old || !s->view[0].t_sorted || !s->view[1].t_sorted) {
        tvm__series_changed(src, i, INT64_MIN, INT64_MIN);
        return;
    }
    while (k > 0 && s->chunks[k - 1].t_last > old)
        k--;
    if (k > 0)
        gen = s->chunks[k - 1].gen;     /* the timeline visible at old */
    for (size_t c = k; c < s->nchunks && s->chunks[c].t_first <= t; c++) {
        if (gen >= 0 && s->chunks[c].gen != gen) {
            tvm__series_changed(src, i, INT64_MIN, INT64_MIN);
            return;
        }
        if (s->chunks[c].step_first < from_step)
            from_step = s->chunks[c].step_first;
        gen = s->chunks[c].gen;
    }
    if (from_step != INT64_MAX)
        tvm__series_changed(src, i, from_step, old == INT64_MAX ? old : old + 1);
}

void tvm_set_time_limit(tvm_source *src, int64_t t_ns)
{
    int64_t old;

    if (!src || src->t_limit == t_ns)
        return;
    old = src->t_limit;
    src->t_limit = t_ns;
    for (size_t i = 0; i < src->nser; i++)
        tvm_limit_changed(src, i, old, t_ns);
    for (size_t i = 0; i < src->nser; i++)
        tvm__series_recount(src, i);
    src->changed |= TVM_CHANGED_POINTS | TVM_CHANGED_EVENTS;
}
