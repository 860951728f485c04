/* store_findings.c - the findings table of the trainscope store: what the
 * analysis detectors found in a run (contract: the "findings" section at the
 * end of store.h; schema in docs/store.md).
 *
 * Why a table of its own, created lazily: stores written before the
 * detectors existed stay valid without a format change, and readers of such
 * a store simply see no findings. The writer creates the table the first
 * time it records a finding (CREATE TABLE IF NOT EXISTS, inside its open
 * transaction, so the table and its first row commit with the points they
 * describe).
 *
 * Findings are rare (the detectors report one per excursion, the collector
 * rate-limits what it stores), so statements are prepared per call rather
 * than cached in store.c's statement table.
 */
#include "store_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char tsf_schema[] =
    "CREATE TABLE IF NOT EXISTS findings(\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  run_id INTEGER NOT NULL REFERENCES runs(id),\n"
    "  series_id INTEGER,             -- NULL for run-level findings\n"
    "  rank INTEGER NOT NULL,         -- -1 for run-level findings\n"
    "  series TEXT NOT NULL DEFAULT '',\n"
    "  kind TEXT NOT NULL,\n"
    "  severity TEXT NOT NULL,\n"
    "  step_first INTEGER NOT NULL,\n"
    "  step_last INTEGER NOT NULL,\n"
    "  t_ns INTEGER NOT NULL,\n"
    "  source TEXT NOT NULL,          -- 'online' (collector) or 'offline'\n"
    "  detail TEXT NOT NULL);         -- the finding as JSON, docs/report-schema.md\n"
    "CREATE INDEX IF NOT EXISTS findings_by_run ON findings(run_id, step_first);\n";

int tss_finding_add(tss_store *st, const tss_finding *f)
{
    sqlite3_stmt *s = NULL;
    int rc;

    if (!st || !f || !f->kind || !f->severity || !f->source || !f->detail)
        return -EINVAL;
    if (!st->writer)
        return tss__fail(st, -EPERM, "findings are written by the collector (a reader handle cannot)");
    if (st->broken)
        return st->broken;
    /* Join the writer's transaction (begun as store.c begins it), so the
     * finding is durable with the next tss_commit, with the points it is
     * about, and never before them. */
    if (!st->in_txn) {
        sqlite3_stmt *b;
        rc = tss__stmt(st, TSS_Q_BEGIN, &b);
        if (rc == 0)
            rc = tss__exec(st, b, "begin a transaction");
        if (rc < 0)
            return rc;
        st->in_txn = 1;
    }
    rc = sqlite3_exec(st->db, tsf_schema, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return tss__sqlfail(st, rc, "create the findings table");
    rc = sqlite3_prepare_v2(st->db,
                            "INSERT INTO findings(run_id, series_id, rank, series, kind, severity, "
                            "step_first, step_last, t_ns, source, detail) "
                            "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)", -1, &s, NULL);
    if (rc != SQLITE_OK)
        return tss__sqlfail(st, rc, "record a finding");
    sqlite3_bind_int64(s, 1, f->run_id);
    if (f->series_id > 0)
        sqlite3_bind_int64(s, 2, f->series_id);
    sqlite3_bind_int(s, 3, f->rank);
    sqlite3_bind_text(s, 4, f->series ? f->series : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 5, f->kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 6, f->severity, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 7, f->step_first);
    sqlite3_bind_int64(s, 8, f->step_last);
    sqlite3_bind_int64(s, 9, f->t_ns);
    sqlite3_bind_text(s, 10, f->source, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 11, f->detail, -1, SQLITE_STATIC);
    rc = sqlite3_step(s);
    rc = rc == SQLITE_DONE ? 0 : tss__sqlfail(st, rc, "record a finding");
    sqlite3_finalize(s);
    return rc;
}

static char *col_dup(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    return strdup(t ? (const char *)t : "");
}

void tss_free_findings(tss_finding *f, size_t n)
{
    for (size_t i = 0; f && i < n; i++) {
        free(f[i].series);
        free(f[i].kind);
        free(f[i].severity);
        free(f[i].source);
        free(f[i].detail);
    }
    free(f);
}

int tss_list_findings(tss_store *st, int64_t run_id, tss_finding **out, size_t *n)
{
    sqlite3_stmt *s = NULL;
    tss_finding *v = NULL;
    size_t cnt = 0, cap = 0;
    int rc;

    *out = NULL;
    *n = 0;
    rc = sqlite3_prepare_v2(st->db,
                            "SELECT id, run_id, COALESCE(series_id, 0), rank, series, kind, severity, "
                            "step_first, step_last, t_ns, source, detail FROM findings "
                            "WHERE run_id = ?1 ORDER BY step_first, id", -1, &s, NULL);
    if (rc != SQLITE_OK) {
        /* A store no collector with detectors ever wrote has no such table. */
        if (strstr(sqlite3_errmsg(st->db), "no such table"))
            return 0;
        return tss__sqlfail(st, rc, "read the findings");
    }
    sqlite3_bind_int64(s, 1, run_id);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (cnt == cap) {
            size_t nc = cap ? 2 * cap : 16;
            tss_finding *nv = realloc(v, nc * sizeof *v);
            if (!nv) {
                rc = tss__fail(st, -ENOMEM, "out of memory reading findings");
                goto fail;
            }
            v = nv;
            cap = nc;
        }
        tss_finding *f = &v[cnt++];
        *f = (tss_finding){
            .id = sqlite3_column_int64(s, 0),
            .run_id = sqlite3_column_int64(s, 1),
            .series_id = sqlite3_column_int64(s, 2),
            .rank = sqlite3_column_int(s, 3),
            .series = col_dup(s, 4),
            .kind = col_dup(s, 5),
            .severity = col_dup(s, 6),
            .step_first = sqlite3_column_int64(s, 7),
            .step_last = sqlite3_column_int64(s, 8),
            .t_ns = sqlite3_column_int64(s, 9),
            .source = col_dup(s, 10),
            .detail = col_dup(s, 11),
        };
        if (!f->series || !f->kind || !f->severity || !f->source || !f->detail) {
            rc = tss__fail(st, -ENOMEM, "out of memory reading findings");
            goto fail;
        }
    }
    if (rc != SQLITE_DONE) {
        rc = tss__sqlfail(st, rc, "read the findings");
        goto fail;
    }
    sqlite3_finalize(s);
    *out = v;
    *n = cnt;
    return 0;
fail:
    sqlite3_finalize(s);
    tss_free_findings(v, cnt);
    return rc;
}

int tss_series_get(tss_store *st, int64_t series_id, tss_series_name *out)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(st->db,
                                "SELECT s.run_id, s.rank, s.name, r.project, r.name FROM series s "
                                "JOIN runs r ON r.id = s.run_id WHERE s.id = ?1", -1, &s, NULL);
    if (rc != SQLITE_OK)
        return tss__sqlfail(st, rc, "read a series");
    sqlite3_bind_int64(s, 1, series_id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        const char *proj = (const char *)sqlite3_column_text(s, 3);
        out->run_id = sqlite3_column_int64(s, 0);
        out->rank = sqlite3_column_int(s, 1);
        snprintf(out->name, sizeof out->name, "%s", (const char *)sqlite3_column_text(s, 2));
        snprintf(out->run, sizeof out->run, "%s%s%s", proj && *proj ? proj : "", proj && *proj ? "/" : "",
                 (const char *)sqlite3_column_text(s, 4));
        rc = 0;
    } else {
        rc = rc == SQLITE_DONE ? tss__fail(st, -ENOENT, "no series %lld", (long long)series_id)
                               : tss__sqlfail(st, rc, "read a series");
    }
    sqlite3_finalize(s);
    return rc;
}
