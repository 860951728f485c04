/* tda_online.h - the detectors inside the collector: one call per applied
 * BATCH (tda_online_batch) scores every point of it as it arrives, records
 * findings in the store with the run, and hands them to the --on-finding
 * command (tda_alert.h).
 *
 * The collector passes the BATCH payload as it came off the wire and the
 * store series of each sample, as it resolved them; this module keeps one
 * tda_series per series id (an array indexed by it), so a resumed
 * trainer's new stream continues the same state. Per point: an array
 * lookup, the detectors (tda_detect.h), no allocation, no system call. Findings (rare) are written with
 * tss_finding_add into the collector's open transaction, so they become
 * durable with the points that caused them; at most 100 per series are
 * stored (the rest are counted), so a pathological series cannot flood the
 * store.
 *
 * Stragglers: every 128 points of a steptime or throughput series, its
 * rolling median is compared with the median of the same metric's rolling
 * medians on the run's other ranks; more than 15% slower is a straggler
 * finding (once, until it is within 7.5% again).
 *
 * Stalls: with store_path and stall_s set, a watcher thread of this module
 * notices a run that sent no BATCH for stall_s seconds while the store
 * (read through a reader handle of its own) still says "running", i.e. it
 * has not said BYE. It alerts at once; the finding is stored by the next
 * tda_online_batch (the ingest thread owns the writer), and `trainscope
 * report` finds the stall from the stored points in any case.
 *
 * Threads: every call from the collector's ingest thread; the watcher and
 * the alert runner (tda_alert.h) are this module's own threads. The only
 * lock the ingest thread takes is the watcher's, once per BATCH, and the
 * watcher never holds it across a store read.
 */
#ifndef TRAINSCOPE_TDA_ONLINE_H
#define TRAINSCOPE_TDA_ONLINE_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"
#include "tda_detect.h"

typedef struct tda_online tda_online;

typedef struct tda_online_opts {
    const tda_rules *rules;     /* copied; NULL = defaults */
    const char *on_finding;     /* shell command for each finding, NULL = none */
    double alert_interval_s;    /* rate limit: one command per this many seconds (default 1) */
    int alert_burst;            /* ... after a burst of this many (default 5) */
    int quiet;                  /* 1: do not log findings on stderr */
    const char *store_path;     /* the collector's store, read by the stall watcher */
    double stall_s;             /* a run silent this long while "running" is stalled; 0 = off */
} tda_online_opts;

typedef struct tda_online_stats {
    uint64_t points;            /* points scored */
    uint64_t findings;          /* findings made */
    uint64_t stored;            /* findings recorded in the store */
    uint64_t not_stored;        /* over the per-series cap, or the store refused */
    uint64_t alerts_run, alerts_rate_limited, alerts_queue_full, alerts_failed;
} tda_online_stats;

void tda_online_opts_init(tda_online_opts *o);
/* 0, or a negative errno with a sentence in err. */
int tda_online_open(tda_online **out, const tda_online_opts *o, char *err, size_t errlen);
/* Score the n samples of a BATCH payload (wire format, proto/PROTOCOL.md)
 * that the collector applied; series_ids[i] is the store series of sample i,
 * as the collector resolved it (the detectors do not map metric ids again).
 * st is the collector's writer handle (it may change between calls when the
 * collector reopens it). */
void tda_online_batch(tda_online *d, tss_store *st, const int64_t *series_ids,
                      const uint8_t *payload, uint32_t n);
void tda_online_get_stats(tda_online *d, tda_online_stats *s);
/* Stops the alert thread after the queued alerts (NULL-safe). */
void tda_online_close(tda_online *d);

#endif
