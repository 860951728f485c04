/* tda_report.h - `trainscope report STORE RUN [--json] [--against RUN2]`:
 * a run's time span, steps per second, per-metric statistics (final and
 * best values), its findings, and a comparison with a second run, for
 * people (text) or programs (JSON, schema in docs/report-schema.md).
 *
 * The comparison pairs metrics by name and rank and, per pair, gives the
 * final and best values of both runs, their difference, the largest
 * difference at a common step, and where the runs diverge: the first common
 * step from which the smoothed values (EMA over 16 points) differ by more
 * than --tolerance (default 5%) of their magnitude up to the last common step.
 */
#ifndef TRAINSCOPE_TDA_REPORT_H
#define TRAINSCOPE_TDA_REPORT_H

#include <stdint.h>

#include "store.h"
#include "tda_analyze.h"

struct cJSON;

typedef struct tda_compare {
    char name[256];
    int rank;
    int64_t common_steps;
    double final_a, final_b, best_a, best_b;
    double max_abs_diff;        /* at a common step; NaN without common steps */
    int64_t max_abs_diff_step;
    int diverged;               /* 1: diverge_step is set */
    int64_t diverge_step;
    double diff_at_end;         /* a - b at the last common step (smoothed) */
} tda_compare;

/* Compare the series of two runs pairwise; *out is malloc'ed. */
int tda_compare_runs(tss_store *st, int64_t run_a, int64_t run_b, double tolerance, tda_compare **out,
                     size_t *n, char *err, size_t errlen);

/* The report of `run` as the JSON document of `trainscope report --json`
 * (docs/report-schema.md), built in memory, so the command, the collector's
 * `report` op and `trainscope mcp` give one and the same document. against
 * (NULL: none) adds the comparison with that run, at relative tolerance
 * (> 0; the command's default is 0.05). o: NULL for the defaults.
 *
 * st is only read (a read-only handle is fine). Runs are named as
 * tss_find_run names them. On success *out is the document (the caller
 * cJSON_Delete's it; its 64-bit integers are raw items, exact when printed).
 * Errors: -ENOENT "unknown run 'x'", -EEXIST an ambiguous name, -EINVAL bad
 * arguments, -ENOMEM, or the store's error; err holds a sentence for a
 * person and *out is NULL. */
int tda_report_json(tss_store *st, const char *run, const char *against, double tolerance,
                    const tda_analyze_opts *o, struct cJSON **out, char *err, size_t errlen);

/* The command; argv[0] is "report". Returns the exit status: 0, 1 when the
 * store or a run cannot be read, 2 for a bad command line. */
int tda_report_main(int argc, char **argv);

#endif
