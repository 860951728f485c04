/* store_chunks.c - chunk-level readers of the trainscope store, for the
 * viewer's data model (contract: the "chunk-level readers" section at the
 * end of store.h; schema in docs/store.md).
 *
 * Why not tss_read_buckets: the viewer draws 64 series at 60 frames a
 * second, so it keeps every chunk summary in memory, caches decoded chunks
 * and whole columns, and asks the store only for what changed (rows with an
 * id above the highest it has, and the rows that can still grow). These
 * functions are that narrow interface: rows and blobs, nothing aggregated.
 *
 * Statements are prepared once per tss_chunks (on a reader handle of its
 * own, so store.c's statement cache is untouched). Every statement runs in
 * autocommit, i.e. its own snapshot; the caller copes with a row that grew
 * in between (tss_chunks_decode takes the count it knows).
 */
#include "store_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

enum {
    TSQ_VERSION,
    TSQ_MAX_IDS,
    TSQ_LIST_SERIES,
    TSQ_LIST_ALL,
    TSQ_ROW,
    TSQ_RUNS,
    TSQ_SERIES,
    TSQ_EVENTS,
    TSQ_GAPS,
    TSQ_DATA,
    TSQ_GROUPS,
    TSQ_COUNT
};

#define TSQ_ROW_COLS "id, series_id, gen, n, step_first, step_last, t_first, t_last, " \
                     "vmin, vmax, vfirst, vlast, n_nan, n_inf"

static const char *const tsq_sql[TSQ_COUNT] = {
    [TSQ_VERSION] = "PRAGMA data_version",
    [TSQ_MAX_IDS] = "SELECT (SELECT COALESCE(MAX(id), 0) FROM chunks), "
                    "(SELECT COALESCE(MAX(id), 0) FROM series), "
                    "(SELECT COALESCE(MAX(id), 0) FROM events), "
                    "(SELECT COALESCE(MAX(id), 0) FROM gaps)",
    /* chunks_by_series finds the series' rows; they come sorted by id after
     * a small sort (a few thousand rows per series). */
    [TSQ_LIST_SERIES] = "SELECT " TSQ_ROW_COLS " FROM chunks WHERE series_id = ?1 AND id > ?2 ORDER BY id",
    [TSQ_LIST_ALL] = "SELECT " TSQ_ROW_COLS " FROM chunks WHERE id > ?2 ORDER BY id",
    [TSQ_ROW] = "SELECT " TSQ_ROW_COLS " FROM chunks WHERE id = ?1",
    [TSQ_RUNS] = "SELECT id, project, name, status, world_size, created_ns, updated_ns, "
                 "COALESCE(ended_ns, 0) FROM runs ORDER BY id",
    [TSQ_SERIES] = "SELECT id, run_id, rank, name FROM series WHERE id > ?1 ORDER BY id",
    [TSQ_EVENTS] = "SELECT id, run_id, rank, step, t_ns, kind, text FROM events WHERE id > ?1 ORDER BY id",
    [TSQ_GAPS] = "SELECT id, run_id, rank, count, step_first, step_last, t_first_ns, t_last_ns "
                 "FROM gaps WHERE id > ?1 ORDER BY id",
    [TSQ_DATA] = "SELECT data FROM chunks WHERE id = ?1",
    [TSQ_GROUPS] = "SELECT groups FROM chunks WHERE id = ?1",
};

struct tss_chunks {
    tss_store *st;
    sqlite3_stmt *q[TSQ_COUNT];
    int64_t data_version;       /* -1 before the first tss_chunks_changed */
};

static int64_t tsq_from_unit(int64_t t, int64_t unit)
{
    int64_t ns;

    if (__builtin_mul_overflow(t, unit, &ns))
        return t < 0 ? INT64_MIN : INT64_MAX;
    return ns;
}

/* The statement k, reset, bindings cleared, prepared on first use. */
static int tsq_stmt(tss_chunks *q, int k, sqlite3_stmt **out)
{
    int rc;

    if (!q->q[k]) {
        rc = sqlite3_prepare_v3(q->st->db, tsq_sql[k], -1, SQLITE_PREPARE_PERSISTENT, &q->q[k], NULL);
        if (rc != SQLITE_OK)
            return tss__sqlfail(q->st, rc, "prepare a chunk query");
    }
    sqlite3_reset(q->q[k]);
    sqlite3_clear_bindings(q->q[k]);
    *out = q->q[k];
    return 0;
}

int tss_chunks_open(tss_store *st, tss_chunks **out)
{
    tss_chunks *q;

    if (!st || !out)
        return -EINVAL;
    *out = NULL;
    q = calloc(1, sizeof *q);
    if (!q)
        return tss__fail(st, -ENOMEM, "%s: out of memory", st->path);
    q->st = st;
    q->data_version = -1;
    *out = q;
    return 0;
}

void tss_chunks_close(tss_chunks *q)
{
    if (!q)
        return;
    for (int k = 0; k < TSQ_COUNT; k++)
        sqlite3_finalize(q->q[k]);
    free(q);
}

int tss_chunks_changed(tss_chunks *q)
{
    sqlite3_stmt *s = NULL;
    int64_t v;
    int rc = tsq_stmt(q, TSQ_VERSION, &s);

    if (rc < 0)
        return rc;
    rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        rc = tss__sqlfail(q->st, rc, "check for new data");
        sqlite3_reset(s);
        return rc;
    }
    v = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    rc = v != q->data_version;
    q->data_version = v;
    return rc;
}

int tss_chunks_max_ids(tss_chunks *q, int64_t *chunk, int64_t *series, int64_t *event, int64_t *gap)
{
    sqlite3_stmt *s = NULL;
    int rc = tsq_stmt(q, TSQ_MAX_IDS, &s);

    if (rc < 0)
        return rc;
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *chunk = sqlite3_column_int64(s, 0);
        *series = sqlite3_column_int64(s, 1);
        *event = sqlite3_column_int64(s, 2);
        *gap = sqlite3_column_int64(s, 3);
        rc = 0;
    } else {
        rc = tss__sqlfail(q->st, rc, "read the highest ids");
    }
    sqlite3_reset(s);
    return rc;
}

static void tsq_row(tss_chunks *q, sqlite3_stmt *s, tss_chunk_row *r)
{
    r->id = sqlite3_column_int64(s, 0);
    r->series_id = sqlite3_column_int64(s, 1);
    r->gen = sqlite3_column_int(s, 2);
    r->n = sqlite3_column_int64(s, 3);
    r->step_first = sqlite3_column_int64(s, 4);
    r->step_last = sqlite3_column_int64(s, 5);
    r->t_first_ns = tsq_from_unit(sqlite3_column_int64(s, 6), q->st->unit);
    r->t_last_ns = tsq_from_unit(sqlite3_column_int64(s, 7), q->st->unit);
    r->vmin = tss__column_real(s, 8);
    r->vmax = tss__column_real(s, 9);
    r->vfirst = tss__column_real(s, 10);
    r->vlast = tss__column_real(s, 11);
    r->n_nan = sqlite3_column_int64(s, 12);
    r->n_inf = sqlite3_column_int64(s, 13);
}

/* A row is checked before anyone trusts it: counts in range, steps ordered. */
static int tsq_row_check(tss_chunks *q, const tss_chunk_row *r)
{
    if (r->n < 1 || r->n > TSC_MAX_POINTS || r->step_first > r->step_last || r->n_nan < 0 ||
        r->n_inf < 0 || r->n_nan + r->n_inf > r->n || r->gen < 0)
        return tss__fail(q->st, -EINVAL, "%s: series %" PRId64 ", chunk %" PRId64 ": corrupt chunk row",
                         q->st->path, r->series_id, r->id);
    return 0;
}

int tss_chunks_list(tss_chunks *q, int64_t sid, int64_t after_id, tss_chunk_row_fn fn, void *ctx)
{
    sqlite3_stmt *s = NULL;
    tss_chunk_row r;
    int rc = tsq_stmt(q, sid ? TSQ_LIST_SERIES : TSQ_LIST_ALL, &s);

    if (rc < 0)
        return rc;
    if (sid)
        sqlite3_bind_int64(s, 1, sid);
    sqlite3_bind_int64(s, 2, after_id);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        tsq_row(q, s, &r);
        if ((rc = tsq_row_check(q, &r)) < 0 || (rc = fn(ctx, &r)) < 0)
            break;
    }
    rc = rc == SQLITE_DONE ? 0 : rc < 0 ? rc : tss__sqlfail(q->st, rc, "read the chunk summaries");
    sqlite3_reset(s);
    return rc;
}

int tss_chunks_row(tss_chunks *q, int64_t id, tss_chunk_row *row)
{
    sqlite3_stmt *s = NULL;
    int rc = tsq_stmt(q, TSQ_ROW, &s);

    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        tsq_row(q, s, row);
        rc = tsq_row_check(q, row);
    } else if (rc == SQLITE_DONE) {
        rc = tss__fail(q->st, -ENOENT, "%s: chunk %" PRId64 " is gone", q->st->path, id);
    } else {
        rc = tss__sqlfail(q->st, rc, "read a chunk summary");
    }
    sqlite3_reset(s);
    return rc;
}

int tss_chunks_runs(tss_chunks *q, tss_run_fn fn, void *ctx)
{
    sqlite3_stmt *s = NULL;
    tss_run r;
    int rc = tsq_stmt(q, TSQ_RUNS, &s);

    if (rc < 0)
        return rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *project = (const char *)sqlite3_column_text(s, 1);
        const char *name = (const char *)sqlite3_column_text(s, 2);
        const char *status = (const char *)sqlite3_column_text(s, 3);
        r = (tss_run){.id = sqlite3_column_int64(s, 0),
                      .project = (char *)(project ? project : ""),
                      .name = (char *)(name ? name : ""),
                      .status = (char *)(status ? status : ""),
                      .world_size = sqlite3_column_int(s, 4),
                      .created_ns = sqlite3_column_int64(s, 5),
                      .updated_ns = sqlite3_column_int64(s, 6),
                      .ended_ns = sqlite3_column_int64(s, 7)};
        if ((rc = fn(ctx, &r)) < 0)
            break;
    }
    rc = rc == SQLITE_DONE ? 0 : rc < 0 ? rc : tss__sqlfail(q->st, rc, "list the runs");
    sqlite3_reset(s);
    return rc;
}

int tss_chunks_series(tss_chunks *q, int64_t after_id, tss_series_row_fn fn, void *ctx)
{
    sqlite3_stmt *s = NULL;
    tss_series_row r;
    int rc = tsq_stmt(q, TSQ_SERIES, &s);

    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, after_id);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(s, 3);
        r = (tss_series_row){.id = sqlite3_column_int64(s, 0),
                             .run_id = sqlite3_column_int64(s, 1),
                             .rank = sqlite3_column_int(s, 2),
                             .name = name ? name : ""};
        if ((rc = fn(ctx, &r)) < 0)
            break;
    }
    rc = rc == SQLITE_DONE ? 0 : rc < 0 ? rc : tss__sqlfail(q->st, rc, "list the series");
    sqlite3_reset(s);
    return rc;
}

int tss_chunks_events(tss_chunks *q, int64_t after_id, tss_event_fn fn, void *ctx)
{
    sqlite3_stmt *s = NULL;
    tss_event e;
    int rc = tsq_stmt(q, TSQ_EVENTS, &s);

    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, after_id);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *kind = (const char *)sqlite3_column_text(s, 5);
        const char *text = (const char *)sqlite3_column_text(s, 6);
        e = (tss_event){.id = sqlite3_column_int64(s, 0),
                        .run_id = sqlite3_column_int64(s, 1),
                        .rank = sqlite3_column_int(s, 2),
                        .step = sqlite3_column_int64(s, 3),
                        .t_ns = sqlite3_column_int64(s, 4),
                        .kind = (char *)(kind ? kind : ""),
                        .text = (char *)(text ? text : "")};
        if ((rc = fn(ctx, &e)) < 0)
            break;
    }
    rc = rc == SQLITE_DONE ? 0 : rc < 0 ? rc : tss__sqlfail(q->st, rc, "list the events");
    sqlite3_reset(s);
    return rc;
}

int tss_chunks_gaps(tss_chunks *q, int64_t after_id, tss_gap_fn fn, void *ctx)
{
    sqlite3_stmt *s = NULL;
    tss_gap g;
    int rc = tsq_stmt(q, TSQ_GAPS, &s);

    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, after_id);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        g = (tss_gap){.run_id = sqlite3_column_int64(s, 1),
                      .rank = sqlite3_column_int(s, 2),
                      .count = sqlite3_column_int64(s, 3),
                      .step_first = sqlite3_column_int64(s, 4),
                      .step_last = sqlite3_column_int64(s, 5),
                      .t_first_ns = sqlite3_column_int64(s, 6),
                      .t_last_ns = sqlite3_column_int64(s, 7)};
        if ((rc = fn(ctx, sqlite3_column_int64(s, 0), &g)) < 0)
            break;
    }
    rc = rc == SQLITE_DONE ? 0 : rc < 0 ? rc : tss__sqlfail(q->st, rc, "list the gaps");
    sqlite3_reset(s);
    return rc;
}

int64_t tss_chunks_decode(tss_chunks *q, int64_t id, int64_t n, int64_t step_first, int64_t *steps,
                          int64_t *t_ns, double *values)
{
    sqlite3_stmt *s = NULL;
    const uint8_t *blob;
    const char *why = NULL;
    size_t len;
    int64_t cnt = 0;
    int rc = tsq_stmt(q, TSQ_DATA, &s);

    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        blob = sqlite3_column_blob(s, 0);
        len = (size_t)sqlite3_column_bytes(s, 0);
        cnt = blob ? tsc_blob_count(blob, len) : -EINVAL;
        if (cnt < 0)
            why = "bad header";
        else if (cnt < n || cnt > TSC_MAX_POINTS)
            why = "point count differs from the chunk row";
        else if (tsc_decode(blob, len, steps, t_ns, values) != cnt)
            why = "undecodable";
        else if (cnt == 0 || steps[0] != step_first)
            why = "steps differ from the chunk row";
    } else if (rc == SQLITE_DONE) {
        why = "row vanished";
    } else {
        rc = tss__sqlfail(q->st, rc, "read a chunk");
        sqlite3_reset(s);
        return rc;
    }
    sqlite3_reset(s);
    if (why)
        return tss__fail(q->st, -EINVAL, "%s: chunk %" PRId64 ": corrupt chunk data (%s)", q->st->path, id,
                         why);
    for (int64_t i = 0; i < cnt; i++)
        t_ns[i] = tsq_from_unit(t_ns[i], q->st->unit);
    return cnt;
}

int tss_chunks_groups(tss_chunks *q, int64_t id, int64_t n, int64_t step_first, int64_t step_last,
                      tss_bucket *out, size_t max)
{
    sqlite3_stmt *s = NULL;
    const uint8_t *blob;
    uint32_t g;
    int rc;

    if (q->st->version < 2)
        return 0;
    rc = tsq_stmt(q, TSQ_GROUPS, &s);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        blob = sqlite3_column_blob(s, 0);
        rc = !blob ? 0
                   : tss__grps_decode(blob, (size_t)sqlite3_column_bytes(s, 0), n, step_first, step_last, out,
                                      max, &g);
        /* a row that grew since the caller's summary, or a bad blob: the
         * caller decodes the chunk, which checks everything */
        if (rc < 0)
            rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = 0;
    } else {
        rc = tss__sqlfail(q->st, rc, "read a chunk's groups");
    }
    sqlite3_reset(s);
    return rc;
}
