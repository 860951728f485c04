/* tmcp_source.h - where the MCP tools read runs from (private to mcp/): a store
 * file opened read-only, or a collector's query API (PROTOCOL.md "Query
 * API") over ZeroMQ with CURVE keys from TRAINSCOPE_SERVER_KEY/CLIENT_KEY.
 * Both hand back the store's own types (store.h), so the tools do not care
 * which one they talk to; arrays are freed with the tss_free_* functions.
 *
 * Runs are named as everywhere in trainscope: `name`, or `project/name`
 * when the trainer set a project; a bare name in several projects is an
 * error listing them.
 *
 * Errors: 0 or a negative errno-style code, with a sentence for a person in
 * tmcp_src_errmsg() (-ENOENT unknown run or series, -EINVAL bad arguments,
 * -EIO the store or the collector failed, -ETIMEDOUT no reply, -EBUSY a
 * collector holds the store, -EPERM writing needs the collector's API).
 */
#ifndef TRAINSCOPE_TMCP_SOURCE_H
#define TRAINSCOPE_TMCP_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

typedef struct tmcp_src tmcp_src;

/* target: a store path, or a tcp:// / ipc:// endpoint of a query API (an
 * `info` request is made at once, so a wrong endpoint fails here). */
int tmcp_src_open(tmcp_src **out, const char *target, char *err, size_t errlen);
void tmcp_src_close(tmcp_src *s);   /* NULL-safe */
const char *tmcp_src_errmsg(const tmcp_src *s);
/* 1 for a collector's API, 0 for a store file. */
int tmcp_src_remote(const tmcp_src *s);
/* The store file (absolute for a collector: from its `info`; for messages
 * only, it may be on another machine). */
const char *tmcp_src_store_path(const tmcp_src *s);

/* Every run, newest first, with config (the API's runs op carries it too). */
int tmcp_src_runs(tmcp_src *s, tss_run **runs, size_t *n);
/* One run by name, with its counts and config; *run owns its strings
 * (tmcp_run_clear frees them and zeroes it, also after a failure). */
int tmcp_src_find_run(tmcp_src *s, const char *name, tss_run *run);
void tmcp_run_clear(tss_run *run);
/* The display name of a run: project/name, or name. */
void tmcp_run_label(const tss_run *r, char *buf, size_t cap);

/* The run's current status ("running", "finished", ...) into buf. On a
 * store this reads the runs table alone, not the chunk counts that
 * tmcp_src_find_run sums, so that wait_for can ask often. */
int tmcp_src_run_status(tmcp_src *s, const tss_run *run, char *buf, size_t cap);
int tmcp_src_series(tmcp_src *s, const tss_run *run, tss_series **out, size_t *n);
int tmcp_src_events(tmcp_src *s, const tss_run *run, tss_event **out, size_t *n);
int tmcp_src_gaps(tmcp_src *s, const tss_run *run, tss_gap **out, size_t *n);
int tmcp_src_findings(tmcp_src *s, const tss_run *run, tss_finding **out, size_t *n);
/* Newest-timeline points of a series with from <= step <= to. */
int tmcp_src_points(tmcp_src *s, int64_t series_id, int64_t from, int64_t to, tss_point **pts,
                    size_t *n);
/* M4 buckets as tss_read_buckets (out holds nb). */
int tmcp_src_buckets(tmcp_src *s, int64_t series_id, int64_t from, int64_t to, size_t nb,
                     tss_bucket *out);
/* 1 when the source may have changed since the last call (the first call
 * returns 1); 0 when certainly not. A store answers from PRAGMA
 * data_version without reading a page; a collector always says 1. */
int tmcp_src_changed(tmcp_src *s);
/* The report of run (against: NULL, or a run to compare with, at relative
 * tolerance > 0) as the minified JSON document of `trainscope report --json`
 * (docs/report-schema.md), *json malloc'ed. A store builds it here
 * (tda_report_json); a collector answers its `report` op, so the store file
 * need not be readable on this machine. */
int tmcp_src_report(tmcp_src *s, const char *run, const char *against, double tolerance, char **json);
/* Record an event (kind, text) at step of rank in the run, durably. A
 * collector applies it with its own writer; a store is opened as the writer
 * for this one event, which fails with -EBUSY when a collector holds it. */
int tmcp_src_annotate(tmcp_src *s, const tss_run *run, int rank, int64_t step, const char *kind,
                      const char *text);

#endif
