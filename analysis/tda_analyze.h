/* tda_analyze.h - offline analysis of one stored run: every series' points
 * through the detectors of tda_detect.h (the same code the collector runs
 * online), per-metric statistics, and the findings that need several series
 * or the clock: stragglers across ranks and stalls.
 *
 *   straggler  for a steptime (or throughput) metric logged by >= 2 ranks: a
 *              rank whose median is above (below) the median of the other
 *              ranks' medians by more than `straggle` (default 15%)
 *   stalled    a gap of more than `stall_s` (default 60 s) between two
 *              consecutive points of a rank's densest series, or a run still
 *              "running" whose newest point is older than that
 *
 * Errors: 0 or a negative errno-style code with a sentence in err.
 */
#ifndef TRAINSCOPE_TDA_ANALYZE_H
#define TRAINSCOPE_TDA_ANALYZE_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"
#include "tda_detect.h"
#include "tda_finding.h"

typedef struct tda_metric_stats {
    int64_t series_id;
    char name[TDA_NAME_MAX];
    int rank;
    tda_role role;
    int64_t count;              /* points on the newest timeline */
    int64_t step_first, step_last;
    int64_t t_first_ns, t_last_ns;
    double final;               /* the last value (NaN when none) */
    double best;                /* min, or max for throughput and names with acc/mfu/score */
    int64_t best_step;
    int best_is_max;
    double min, max, mean, std, median;   /* over finite values; NaN when none */
    int64_t n_nan, n_inf;
} tda_metric_stats;

typedef struct tda_analysis {
    tss_run run;                /* strings owned by the analysis */
    char display[TDA_NAME_MAX * 2];   /* project/name or name */
    tda_metric_stats *metrics;
    size_t nmetrics;
    tda_finding *findings;
    char (*source)[8];          /* per finding: "offline" or "online" (stored, not reproduced) */
    size_t nfindings, capfindings;
    double steps_per_s;         /* of the densest series; NaN when unknown */
    int64_t step_first, step_last, t_first_ns, t_last_ns;
} tda_analysis;

typedef struct tda_analyze_opts {
    const tda_rules *rules;     /* NULL: defaults */
    double straggle;            /* default 0.15 */
    double stall_s;             /* default 60 */
    int64_t now_ns;             /* for "still running but silent"; 0 = the clock */
} tda_analyze_opts;

void tda_analyze_opts_init(tda_analyze_opts *o);
/* Analyse run_id of st into *a (free with tda_analysis_free). Stored
 * findings (tss_list_findings) that the offline pass did not reproduce are
 * added with source "online". */
int tda_analyze_run(tss_store *st, int64_t run_id, const tda_analyze_opts *o, tda_analysis *a,
                    char *err, size_t errlen);
void tda_analysis_free(tda_analysis *a);

/* Statistics of a series' newest-timeline points (also used by the report's
 * comparison); pts is not modified. */
void tda_stats_of(const tss_point *pts, size_t n, tda_metric_stats *m);

#endif
