/* tda_detect.c - per-series detectors and their rules (contract and the
 * table of detectors: tda_detect.h). */
#include "tda_detect.h"

#include <errno.h>
#include <float.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PLATEAU_GAIN 1e-3   /* relative improvement of the EMA that ends a plateau */

/* ---- roles and parameters ------------------------------------------------ */

static const char *const role_names[] = {"other", "loss", "grad", "throughput", "steptime"};

const char *tda_role_name(tda_role r)
{
    return (unsigned)r <= TDA_ROLE_STEPTIME ? role_names[r] : "other";
}

static int has(const char *name, const char *part)
{
    return strstr(name, part) != NULL;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

tda_role tda_role_of(const char *name)
{
    if (has(name, "loss"))
        return TDA_ROLE_LOSS;
    if (has(name, "grad_norm") || has(name, "gradnorm") || ends_with(name, "norm"))
        return TDA_ROLE_GRAD;
    if (has(name, "tok_per_s") || has(name, "tokens_per_s") || has(name, "per_sec") ||
        has(name, "throughput") || has(name, "samples_per_s") || has(name, "speed"))
        return TDA_ROLE_THROUGHPUT;
    if (has(name, "step_time") || has(name, "time_ms") || has(name, "step_avg"))
        return TDA_ROLE_STEPTIME;
    return TDA_ROLE_OTHER;
}

static void params_default(tda_role role, tda_params *p)
{
    *p = (tda_params){
        .role = role,
        .window = 128,
        .spike = role == TDA_ROLE_LOSS || role == TDA_ROLE_GRAD || role == TDA_ROLE_THROUGHPUT ? 6.0 : 0,
        .explode = 2.0,
        .drop = 0.3,
        .drop_points = 25,
        .diverge = role == TDA_ROLE_LOSS ? 0.25 : 0,
        .plateau = 0,
        .nonfinite = 1,
    };
}

/* Apply "key=value,..." to p. Returns 0, or -EINVAL with err filled. */
static int apply_keys(const char *keys, tda_params *p, char *err, size_t errlen)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", keys);
    for (char *save = NULL, *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '='), *end;
        if (!eq) {
            snprintf(err, errlen, "'%s' is not key=value", kv);
            return -EINVAL;
        }
        *eq = 0;
        const char *k = kv, *v = eq + 1;
        if (strcmp(k, "role") == 0) {
            int r = -1;
            for (int i = 0; i <= TDA_ROLE_STEPTIME; i++)
                if (strcmp(v, role_names[i]) == 0)
                    r = i;
            if (r < 0) {
                snprintf(err, errlen, "role '%s': use loss, grad, throughput, steptime or other", v);
                return -EINVAL;
            }
            /* A role brings its own defaults; keys after it override them. */
            params_default((tda_role)r, p);
            continue;
        }
        static const char *const known[] = {"window", "spike", "explode", "drop", "drop_points",
                                            "diverge", "plateau", "nonfinite"};
        size_t ki = 0;
        while (ki < sizeof known / sizeof *known && strcmp(k, known[ki]) != 0)
            ki++;
        if (ki == sizeof known / sizeof *known) {
            snprintf(err, errlen, "unknown key '%s' (keys: role, window, spike, explode, drop, "
                     "drop_points, diverge, plateau, nonfinite)", k);
            return -EINVAL;
        }
        errno = 0;
        double x = strtod(v, &end);
        if (errno || end == v || *end || !isfinite(x) || x < 0) {
            snprintf(err, errlen, "%s=%s: the value must be a number >= 0", k, v);
            return -EINVAL;
        }
        if (strcmp(k, "window") == 0) {
            if (x < 8 || x > 4096 || x != floor(x)) {
                snprintf(err, errlen, "window=%s: an integer from 8 to 4096", v);
                return -EINVAL;
            }
            p->window = (uint32_t)x;
        } else if (strcmp(k, "spike") == 0) {
            p->spike = x;
        } else if (strcmp(k, "explode") == 0) {
            p->explode = x;
        } else if (strcmp(k, "drop") == 0) {
            if (x >= 1) {
                snprintf(err, errlen, "drop=%s: a fraction below 1", v);
                return -EINVAL;
            }
            p->drop = x;
        } else if (strcmp(k, "drop_points") == 0 && x >= 1 && x <= 1e6) {
            p->drop_points = (uint32_t)x;
        } else if (strcmp(k, "diverge") == 0) {
            p->diverge = x;
        } else if (strcmp(k, "plateau") == 0 && x <= 1e12) {
            p->plateau = (uint32_t)(x > UINT32_MAX ? UINT32_MAX : x);
        } else if (strcmp(k, "nonfinite") == 0 && (x == 0 || x == 1)) {
            p->nonfinite = (int)x;
        } else {
            snprintf(err, errlen, "%s=%s: drop_points is 1..1e6, plateau 0..1e12, nonfinite 0 or 1", k, v);
            return -EINVAL;
        }
    }
    return 0;
}

int tda_rules_add(tda_rules *rules, const char *text, char *err, size_t errlen)
{
    const char *colon = strrchr(text, ':');
    tda_params scratch;
    if (!colon || colon == text || !colon[1]) {
        snprintf(err, errlen, "detector rule '%s': expected GLOB:key=value[,key=value...], "
                 "e.g. 'train/loss:spike=8,window=256'", text);
        return -EINVAL;
    }
    if ((size_t)(colon - text) >= sizeof rules->r[0].glob || strlen(colon + 1) >= sizeof rules->r[0].keys) {
        snprintf(err, errlen, "detector rule '%s' is too long", text);
        return -EINVAL;
    }
    params_default(TDA_ROLE_OTHER, &scratch);
    char why[200];
    if (apply_keys(colon + 1, &scratch, why, sizeof why) < 0) {
        snprintf(err, errlen, "detector rule '%s': %s", text, why);
        return -EINVAL;
    }
    if (rules->n >= TDA_RULES_MAX) {
        snprintf(err, errlen, "at most %d detector rules", TDA_RULES_MAX);
        return -ENOSPC;
    }
    tda_rule *r = &rules->r[rules->n++];
    memcpy(r->glob, text, (size_t)(colon - text));
    r->glob[colon - text] = 0;
    snprintf(r->keys, sizeof r->keys, "%s", colon + 1);
    return 0;
}

void tda_params_for(const tda_rules *rules, const char *name, tda_params *p)
{
    char ignored[200];
    params_default(tda_role_of(name), p);
    for (int i = 0; rules && i < rules->n; i++)
        if (fnmatch(rules->r[i].glob, name, 0) == 0)
            apply_keys(rules->r[i].keys, p, ignored, sizeof ignored);   /* checked when added */
}

/* ---- state --------------------------------------------------------------- */

int tda_series_init(tda_series *s, const tda_params *p)
{
    memset(s, 0, sizeof *s);
    s->p = *p;
    if (!(s->buf = malloc(tda_roll_buf_len(p->window) * sizeof *s->buf)))
        return -ENOMEM;
    tda_roll_init(&s->roll, s->buf, p->window);
    s->band_merges = UINT32_MAX;   /* computed at the first full window */
    s->score = p->spike > 0;
    /* The window is what spike detection and the online straggler check
     * read; a series neither looks at (most metrics, with the default
     * rules) skips it: pushing costs more than the rest of ingest per point. */
    s->keep = p->spike > 0 || p->role == TDA_ROLE_STEPTIME || p->role == TDA_ROLE_THROUGHPUT;
    s->trend = p->role == TDA_ROLE_LOSS && (p->diverge > 0 || p->plateau > 0);
    s->alpha = 2.0 / (p->window + 1.0);     /* a division per point costs more than the rest */
    return 0;
}

void tda_series_free(tda_series *s)
{
    if (s) {
        free(s->buf);
        s->buf = NULL;
    }
}

static tda_finding *emit(tda_finding *f, tda_kind kind, tda_severity sev, int64_t first, int64_t last,
                         int64_t t_ns, double value, double baseline, double scale, double score,
                         double threshold)
{
    *f = (tda_finding){.kind = kind, .severity = sev, .rank = -1, .step_first = first,
                       .step_last = last, .t_ns = t_ns, .value = value, .baseline = baseline,
                       .scale = scale, .score = score, .threshold = threshold};
    return f;
}

/* The scale of a robust z-score: 1.4826 x MAD, but never so small that a
 * series constant over the window (MAD 0) turns every change into an
 * infinite score: at least 1e-9 of the median's magnitude. */
static double robust_sigma(double mad, double median)
{
    double s = TDA_MAD_SIGMA * mad, floor_ = 1e-9 * fabs(median);
    return s > floor_ ? s : (floor_ > 0 ? floor_ : 1e-300);
}

/* 1 when |robust z| of v is surely below the spike threshold, from the
 * window's bounds alone (lo <= median <= hi, mad_lo <= MAD; tda_roll.h):
 * robust_sigma is monotone in the MAD and in |median|, so its value at the
 * bounds is a lower bound, and |v - median| <= max(v - lo, hi - v). The
 * threshold distance changes only when the window merges (the MAD bound
 * does; |median| is bounded with the bounds that hold until then). The
 * factor 1 - 1e-12 absorbs the rounding of the subtraction and division of
 * the exact z (a few ulps), so a point passed here is one the exact test
 * rejects too: the findings are those of scoring every point exactly. */
static int surely_below(tda_series *s, double v)
{
    const tda_roll *r = &s->roll;
    if (s->band_merges != r->merges) {
        double lo, hi;
        tda_roll_range(r, &lo, &hi);
        double mag = lo > 0 ? lo : hi < 0 ? -hi : 0;   /* the least |median| can be */
        double sigma = TDA_MAD_SIGMA * r->mad_lo, floor_ = 1e-9 * mag;
        double t = s->p.spike * (sigma > floor_ ? sigma : floor_) * (1 - 1e-12);
        /* A band beyond DBL_MAX is capped: a finite v - lo below DBL_MAX
         * is still below the true band. Middle values beyond DBL_MAX/4 may
         * make the median itself overflow (the mean of the two middle
         * ones), out of [lo, hi]: no band then, every point is scored
         * exactly. */
        s->band = t < DBL_MAX ? t : DBL_MAX;
        if (fabs(lo) > DBL_MAX / 4 || fabs(hi) > DBL_MAX / 4)
            s->band = -1;
        s->band_merges = r->merges;
    }
    double lo, hi, mad_lo, t = s->band;
    if (t < 0)
        return 0;
    tda_roll_bounds(r, &lo, &hi, &mad_lo);
    /* A flat window (the MAD and the median 0) leaves t = 0: a value equal
     * to the median then scores 0, which is no spike either. */
    return (v - lo < t && hi - v < t) || (v == lo && v == hi);
}

__attribute__((noinline)) static int feed_nonfinite(tda_series *s, int64_t step, int64_t t_ns, double v, tda_finding *out)
{
    if (!s->p.nonfinite)
        return 0;
    if (isnan(v) && !s->seen_nan) {
        s->seen_nan = 1;
        snprintf(emit(out, TDA_NAN, TDA_CRITICAL, step, step, t_ns, v, NAN, NAN, NAN, NAN)->message,
                 sizeof out->message, "first NaN at step %" PRId64, step);
        return 1;
    }
    if (isinf(v) && !s->seen_inf) {
        s->seen_inf = 1;
        snprintf(emit(out, TDA_INF, TDA_CRITICAL, step, step, t_ns, v, NAN, NAN, NAN, NAN)->message,
                 sizeof out->message, "first %s at step %" PRId64, v > 0 ? "+Inf" : "-Inf", step);
        return 1;
    }
    return 0;
}

/* Spikes (loss, grad) and drops (throughput) against the window. */
static int feed_z(tda_series *s, int64_t step, int64_t t_ns, double v, double med, double sigma,
                  tda_finding *out)
{
    const tda_params *p = &s->p;
    double z = (v - med) / sigma;
    if (p->role == TDA_ROLE_THROUGHPUT) {
        int low = z <= -p->spike && v <= (1 - p->drop) * med;
        if (!low) {
            s->low_run = 0;
            return 0;
        }
        if (s->low_run++ == 0)
            s->low_first = step;
        if (s->low_run != p->drop_points)
            return 0;
        snprintf(emit(out, TDA_THROUGHPUT_DROP, TDA_WARNING, s->low_first, step, t_ns, v, med, sigma, z,
                      -p->spike)->message, sizeof out->message,
                 "throughput %.4g is %.0f%% below its median %.4g for %" PRIu32 " points",
                 v, 100 * (1 - v / med), med, p->drop_points);
        return 1;
    }
    if (z < p->spike) {
        s->in_spike = 0;
        return 0;
    }
    if (s->in_spike)        /* one finding per excursion */
        return 0;
    /* A gradient norm is heavy-tailed: only a jump by a factor counts. */
    int explosion = p->role == TDA_ROLE_GRAD && med > 0 && v >= p->explode * med;
    if (p->role == TDA_ROLE_GRAD && !explosion)
        return 0;
    s->in_spike = 1;
    tda_severity sev = explosion || z >= 3 * p->spike ? TDA_CRITICAL : TDA_WARNING;
    emit(out, explosion ? TDA_GRAD_EXPLOSION : TDA_SPIKE, sev, step, step, t_ns, v, med, sigma, z, p->spike);
    if (explosion)
        snprintf(out->message, sizeof out->message,
                 "gradient norm %.4g is %.1fx its median %.4g (robust z %.1f)", v, v / med, med, z);
    else
        snprintf(out->message, sizeof out->message,
                 "spike: %.6g is %.1f robust sigma above the median %.6g", v, z, med);
    return 1;
}

/* The findings of feed_trend, out of its line (rare; snprintf is large). */
__attribute__((noinline)) static void emit_divergence(tda_series *s, int64_t step, int64_t t_ns, double rise,
                                                       tda_finding *out)
{
    s->diverged = 1;
    snprintf(emit(out, TDA_DIVERGENCE, TDA_CRITICAL, s->div_first, step, t_ns, s->ema, s->best_ema, NAN,
                  rise / fabs(s->best_ema), s->p.diverge)->message,
             sizeof out->message,
             "diverging: smoothed value %.6g is %.0f%% above its best %.6g (step %" PRId64 ")",
             s->ema, 100 * rise / fabs(s->best_ema), s->best_ema, s->best_step);
}

__attribute__((noinline)) static void emit_plateau(tda_series *s, int64_t step, int64_t t_ns, tda_finding *out)
{
    s->plateau_fired = 1;
    snprintf(emit(out, TDA_PLATEAU, TDA_INFO, s->best_step, step, t_ns, s->ema, s->plateau_best, NAN,
                  (double)(step - s->best_step), (double)s->p.plateau)->message,
             sizeof out->message, "plateau: no new best since step %" PRId64 " (%" PRId64 " steps)",
             s->best_step, step - s->best_step);
}

/* Divergence and plateau on the EMA of a loss. */
static int feed_trend(tda_series *s, int64_t step, int64_t t_ns, double v, tda_finding *out)
{
    const tda_params *p = &s->p;
    s->ema = s->seen == 1 ? v : s->ema + s->alpha * (v - s->ema);
    if (s->seen < p->window)
        return 0;
    if (s->seen == p->window || s->ema < s->best_ema)
        s->best_ema = s->ema;
    /* For plateaus only an improvement by 0.1% counts: the EMA of a flat
     * noisy loss sets tiny new records now and then. */
    if (s->seen == p->window || s->ema < s->plateau_best - PLATEAU_GAIN * fabs(s->plateau_best)) {
        s->plateau_best = s->ema;
        s->best_step = step;
        s->plateau_fired = 0;
    }
    int n = 0;
    if (p->diverge > 0) {
        double margin = p->diverge * fabs(s->best_ema);
        double rise = s->ema - s->best_ema;
        if (rise > margin && margin > 0) {
            if (s->div_run++ == 0)
                s->div_first = step;
            if (s->div_run == p->window && !s->diverged) {
                emit_divergence(s, step, t_ns, rise, out);
                n++;
            }
        } else {
            s->div_run = 0;
            if (rise < margin / 2)
                s->diverged = 0;
        }
    }
    if (p->plateau > 0 && !s->plateau_fired && step - s->best_step >= (int64_t)p->plateau) {
        emit_plateau(s, step, t_ns, out + n);
        n++;
    }
    return n;
}

/* The rare point that might pass the threshold: scored against the exact
 * median and MAD. Kept out of line, so that the path of every other point
 * stays short. */
__attribute__((noinline)) static int feed_exact(tda_series *s, int64_t step, int64_t t_ns, double v,
                                                 tda_finding *out)
{
    double med = tda_roll_median(&s->roll);
    return feed_z(s, step, t_ns, v, med, robust_sigma(tda_roll_mad(&s->roll, med), med), out);
}

int tda_series_feed(tda_series *s, int64_t step, int64_t t_ns, double v, tda_finding out[TDA_FEED_MAX])
{
    s->last_step = step;
    if (!isfinite(v))
        return feed_nonfinite(s, step, t_ns, v, out);
    int n = 0;
    if (s->score && tda_roll_full(&s->roll)) {
        /* Almost every point is far from the threshold even against the
         * window's guaranteed bounds (tda_roll.h); only the others pay for
         * the exact median and MAD. */
        if (surely_below(s, v)) {
            s->in_spike = 0;
            s->low_run = 0;
        } else {
            n = feed_exact(s, step, t_ns, v, out);
        }
    }
    if (s->keep)
        tda_roll_push(&s->roll, v);
    s->seen++;
    if (s->trend)
        n += feed_trend(s, step, t_ns, v, out + n);
    return n;
}
