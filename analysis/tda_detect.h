/* tda_detect.h - the per-series detectors of trainscope's analysis, the
 * same code online (the collector feeds points as they arrive) and offline
 * (`trainscope report` feeds a stored run).
 *
 * Every series gets a role from its name (tda_role_of) and parameters from
 * the role, then from the rules that match its name (tda_rules_add, syntax
 * below). Per point, tda_series_feed scores the value against the rolling
 * median and MAD of the previous `window` finite values (tda_roll.h) and
 * returns a finding when one is due:
 *
 *   role        detectors (default thresholds)
 *   loss        spike: robust z >= spike (6) upward, once per excursion;
 *               divergence: the EMA (span = window) stays above its best by
 *               diverge (25%) of |best| for `window` points;
 *               plateau: no improvement of the EMA by 0.1% for `plateau`
 *               steps (0 = off)
 *   grad        grad_explosion: z >= spike (6) and value >= explode (2) x
 *               median (gradient norms are heavy-tailed: a high z alone is
 *               common in healthy runs, a jump by a factor is not)
 *   throughput  throughput_drop: value <= (1 - drop) x median (drop 0.3) and
 *               z <= -spike for drop_points (25) consecutive points (a
 *               slow step or two is noise, a slow stretch is a drop)
 *   steptime    none per series (compared across ranks: straggler)
 *   other       none but NaN/Inf
 *   every role  nan, inf: the first NaN and the first Inf of the series
 *
 * Scoring starts once `window` finite values were seen. NaN and Inf never
 * enter the window. A finding from tda_series_feed has everything but the
 * identity (run, series name and id, rank), which the caller fills in.
 *
 * Rules: "GLOB:key=value,key=value", the glob matched against the metric
 * name with fnmatch (so `*loss` matches train/loss and val/loss). Keys: role (loss, grad,
 * throughput, steptime, other), window (8..4096), spike, explode, drop,
 * drop_points, diverge (0 = off), plateau (steps, 0 = off), nonfinite (0/1).
 * Later rules override earlier ones.
 *
 * Cost: no allocation per point. A point is first judged against bounds
 * of the window's median and MAD that cost O(1) (tda_roll.h); only a point
 * that might pass its threshold is scored against the exact median and
 * MAD, so the findings are exactly those of scoring every point exactly.
 * The window's sorted copy is brought up to date every window/8 points in
 * one merge (bench_detect measures ns per point).
 */
#ifndef TRAINSCOPE_TDA_DETECT_H
#define TRAINSCOPE_TDA_DETECT_H

#include <stddef.h>
#include <stdint.h>

#include "tda_finding.h"
#include "tda_roll.h"

typedef enum tda_role {
    TDA_ROLE_OTHER,
    TDA_ROLE_LOSS,
    TDA_ROLE_GRAD,
    TDA_ROLE_THROUGHPUT,
    TDA_ROLE_STEPTIME,
} tda_role;

typedef struct tda_params {
    tda_role role;
    uint32_t window;        /* rolling window of finite values */
    double spike;           /* robust z threshold; 0 = no spike/explosion/drop findings */
    double explode;         /* grad: value/median ratio that makes a spike an explosion */
    double drop;            /* throughput: fraction below the median that counts as a drop */
    uint32_t drop_points;   /* throughput: consecutive low points before a finding */
    double diverge;         /* loss: rise of the EMA above its best, relative to |best|; 0 = off */
    uint32_t plateau;       /* loss: steps without a new best EMA; 0 = off */
    int nonfinite;          /* 1: report the first NaN and the first Inf */
} tda_params;

#define TDA_RULES_MAX 32
typedef struct tda_rule {
    char glob[128];
    char keys[256];         /* "key=value,..." as given, applied in order */
} tda_rule;
typedef struct tda_rules {
    tda_rule r[TDA_RULES_MAX];
    int n;
} tda_rules;

/* Role from the metric name: "loss" anywhere -> loss; grad_norm, gradnorm,
 * or a name ending in "norm" -> grad; tok_per_s, tokens_per_s, per_sec,
 * throughput, samples_per_s, speed -> throughput; step_time, time_ms,
 * step_avg -> steptime; otherwise other. */
tda_role tda_role_of(const char *name);
const char *tda_role_name(tda_role r);

/* Add a rule; checks the syntax and every key and value. Returns 0, or
 * -EINVAL with a sentence in err naming what is wrong, or -ENOSPC. */
int tda_rules_add(tda_rules *rules, const char *text, char *err, size_t errlen);
/* The parameters of metric `name`: its role's defaults, then the matching
 * rules (rules may be NULL). */
void tda_params_for(const tda_rules *rules, const char *name, tda_params *p);

/* State of one series. tda_series_init allocates the window (2 x window
 * doubles); tda_series_free releases it. */
typedef struct tda_series {
    tda_params p;
    tda_roll roll;
    double *buf;
    uint64_t seen;          /* finite values fed */
    uint8_t seen_nan, seen_inf;
    uint8_t in_spike;       /* the previous point was above the threshold */
    uint8_t diverged;       /* divergence reported; re-armed below half the margin */
    uint8_t plateau_fired;
    uint32_t low_run;       /* throughput: consecutive low points */
    uint32_t div_run;       /* loss: consecutive points with the EMA above the margin */
    int64_t low_first, div_first;
    double alpha;           /* EMA weight, 2 / (window + 1) */
    double ema, best_ema;   /* the EMA and its lowest value (divergence) */
    double plateau_best;    /* the EMA's last improvement by 0.1% (plateau) */
    int64_t best_step;      /* ... and its step */
    int64_t last_step;
    uint8_t score, keep, trend;   /* from p: spikes/drops scored, window kept, EMA trend followed */
    uint32_t band_merges;   /* roll.merges when band was computed */
    double band;            /* |v - median| below this is surely no spike until the next merge */
} tda_series;

/* 0, or -ENOMEM. */
int tda_series_init(tda_series *s, const tda_params *p);
void tda_series_free(tda_series *s);   /* NULL-safe, and safe on a zeroed struct */

/* Feed one point (in step order). Returns the number of findings written to
 * out (at most TDA_FEED_MAX: a spike, a divergence and a plateau can end on
 * the same point); their identity fields are zero and rank is -1. */
#define TDA_FEED_MAX 3
int tda_series_feed(tda_series *s, int64_t step, int64_t t_ns, double v, tda_finding out[TDA_FEED_MAX]);

#endif
