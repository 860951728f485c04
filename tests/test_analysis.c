/* test_analysis.c - unit tests of analysis/: the rolling median and MAD
 * against sorting, the MAD lower bound, every per-series detector on
 * deterministic series, detector rules (good and bad), findings as JSON, and
 * the store's findings table (write, commit, read back, old stores). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"
#include "tda_detect.h"
#include "tda_finding.h"
#include "tda_roll.h"

static int failures;
#define CHECK(cond, ...)                                                          \
    do {                                                                          \
        if (!(cond)) {                                                            \
            failures++;                                                           \
            fprintf(stderr, "%s:%d: %s: ", __FILE__, __LINE__, #cond);            \
            fprintf(stderr, __VA_ARGS__);                                         \
            fputc('\n', stderr);                                                  \
        }                                                                         \
    } while (0)

static uint64_t rng_state = 88172645463325252ull;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
/* Roughly normal noise (sum of 4 uniforms, centred, unit variance). */
static double noise(void)
{
    double s = 0;
    for (int i = 0; i < 4; i++)
        s += (double)(rng() >> 11) / 9007199254740992.0;
    return (s - 2) * sqrt(3.0);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median_sorted(double *a, size_t n)
{
    qsort(a, n, sizeof *a, cmp_double);
    return n & 1 ? a[n / 2] : 0.5 * (a[n / 2 - 1] + a[n / 2]);
}

/* Median and MAD of the last min(n, w) values by sorting, at every push;
 * before that, the bounds of a full window (taken while the snapshot lags
 * behind by up to `refresh` pushes) hold the median and stay below the MAD.
 * Values with many ties, too. */
static void test_roll_matches_sorting(uint32_t w, int ties)
{
    double *buf = malloc(tda_roll_buf_len(w) * sizeof *buf), *hist = malloc(5000 * sizeof *hist);
    double a[4096], d[4096];
    tda_roll r;
    size_t bounded = 0;
    tda_roll_init(&r, buf, w);
    for (size_t i = 0; i < 5000; i++) {
        double x = ties ? (double)(rng() % 7) : noise() * (1 + (double)(i % 300) / 30);
        hist[i] = x;
        tda_roll_push(&r, x);
        /* Only every few pushes ask for the exact figures, so that the
         * bounds are seen at every lag of the snapshot. */
        if (i % 7 != 0 && i % 11 != 0)
            continue;
        size_t n = i + 1 < w ? i + 1 : w;
        memcpy(a, hist + i + 1 - n, n * sizeof *a);
        double m = median_sorted(a, n);
        for (size_t j = 0; j < n; j++)
            d[j] = fabs(a[j] - m);
        double mad = median_sorted(d, n);
        if (tda_roll_full(&r)) {
            double lo, hi, mad_lo;
            tda_roll_bounds(&r, &lo, &hi, &mad_lo);
            CHECK(lo <= m && m <= hi, "w %u step %zu: median %g outside the bounds [%g, %g]", w, i, m, lo, hi);
            CHECK(mad_lo <= mad && mad_lo >= 0, "w %u step %zu: MAD bound %g, MAD %g", w, i, mad_lo, mad);
            bounded++;
        }
        CHECK(tda_roll_median(&r) == m, "w %u step %zu: median %g, sorting says %g", w, i, tda_roll_median(&r), m);
        CHECK(tda_roll_mad(&r, m) == mad, "w %u step %zu: MAD %g, sorting says %g", w, i, tda_roll_mad(&r, m), mad);
    }
    CHECK(bounded > (5000 - w) / 5, "w %u: bounds checked %zu times", w, bounded);
    free(buf);
    free(hist);
}

/* The pre-filter loses and adds nothing: spike and throughput-drop
 * findings of tda_series_feed are those of scoring every point against the
 * exact median and MAD of the previous w finite values, computed here by
 * sorting, with the same rules (tda_detect.h), for the same steps and the
 * same scores to the bit. The series is built to hit the corners: heavy
 * tails, a level that drifts, spikes of 2 to 12 sigma and runs of them, a
 * constant stretch and a stretch of zeros (MAD 0), values with ties, NaNs
 * (which never enter the window) and a low threshold that sends many
 * points to the exact path. */
static double series_value(size_t i)
{
    double base = 2 + 3 * exp(-(double)i / 2000) + 0.3 * sin((double)i / 500), x;
    if (i >= 3000 && i < 3400)
        return 1.5;                                     /* flat: MAD 0 */
    if (i >= 3400 && i < 3700)
        return (i % 97 == 0) ? 1e-3 : 0.0;              /* zeros, a few blips */
    if (i >= 5000 && i < 6000)
        return base + 0.05 * (double)(rng() % 5);       /* ties */
    x = base + 0.05 * noise();
    if (rng() % 50 == 0)
        x += 0.05 * noise() * 8;                        /* heavy tail */
    if (rng() % 120 == 0)
        x += 0.05 * (2 + (double)(rng() % 11));         /* spikes of about 2..12 sigma */
    if (rng() % 400 == 0)
        x = -x;                                         /* far below */
    if (i % 613 < 4)
        x = 0.2 * base;                                 /* a few points far below: throughput drops */
    if (rng() % 700 == 0)
        x = NAN;
    return x;
}

static double ref_sigma(double mad, double median)
{
    double sd = TDA_MAD_SIGMA * mad, floor_ = 1e-9 * fabs(median);
    return sd > floor_ ? sd : (floor_ > 0 ? floor_ : 1e-300);
}

static void test_filter_is_exact(const char *name, uint32_t w, double spike, double scale)
{
    char rule[128];
    tda_rules rules = {0};
    tda_params p;
    tda_series s;
    char err[256];
    snprintf(rule, sizeof rule, "%s:window=%u,spike=%g,diverge=0,drop_points=3", name, w, spike);
    CHECK(tda_rules_add(&rules, rule, err, sizeof err) == 0, "%s", err);
    tda_params_for(&rules, name, &p);
    CHECK(tda_series_init(&s, &p) == 0, "init");
    int throughput = p.role == TDA_ROLE_THROUGHPUT;
    double *win = malloc(w * sizeof *win), a[4096], d[4096];
    size_t nwin = 0, head = 0, got = 0, want = 0, exact_path = 0;
    int in_spike = 0;
    uint32_t low_run = 0;
    int64_t low_first = 0;
    for (size_t i = 0; i < 8000; i++) {
        double v = series_value(i) * scale;
        tda_finding out[TDA_FEED_MAX];
        int k = tda_series_feed(&s, (int64_t)i, 0, v, out);
        /* The reference. */
        int64_t ref_step = -1;
        double ref_score = 0;
        if (isfinite(v) && nwin == w) {
            memcpy(a, win, w * sizeof *a);
            double m = median_sorted(a, w);
            for (size_t j = 0; j < w; j++)
                d[j] = fabs(a[j] - m);
            double sg = ref_sigma(median_sorted(d, w), m), z = (v - m) / sg;
            exact_path += fabs(z) >= 0.6 * spike;
            if (throughput) {
                if (z <= -spike && v <= (1 - p.drop) * m) {
                    if (low_run++ == 0)
                        low_first = (int64_t)i;
                    if (low_run == p.drop_points)
                        ref_step = low_first, ref_score = z;
                } else {
                    low_run = 0;
                }
            } else {
                /* As feed_z: "not below the threshold" (a NaN score from
                 * Inf/Inf, values near DBL_MAX, is not below either). */
                int above = !(z < spike);
                if (above && !in_spike)
                    ref_step = (int64_t)i, ref_score = z;
                in_spike = above;
            }
        }
        if (isfinite(v)) {
            win[head] = v;
            head = (head + 1) % w;
            nwin += nwin < w;
        }
        /* Compare. */
        int found = 0;
        for (int j = 0; j < k; j++) {
            if (out[j].kind != TDA_SPIKE && out[j].kind != TDA_THROUGHPUT_DROP)
                continue;
            found = 1;
            got++;
            CHECK(out[j].step_first == ref_step &&
                      (out[j].score == ref_score || (isnan(out[j].score) && isnan(ref_score))),
                  "%s w %u spike %g step %zu: finding from step %" PRId64 " score %.17g, exact scoring says step "
                  "%" PRId64 " score %.17g", name, w, spike, i, out[j].step_first, out[j].score, ref_step, ref_score);
        }
        want += ref_step >= 0;
        CHECK(found || ref_step < 0, "%s w %u spike %g step %zu: exact scoring finds step %" PRId64 " (z %.3g), the "
              "detector nothing", name, w, spike, i, ref_step, ref_score);
    }
    CHECK(got == want && want >= 5, "%s w %u spike %g: %zu findings, exact scoring %zu", name, w, spike, got, want);
    CHECK(exact_path >= 20, "%s w %u spike %g: only %zu points near the threshold", name, w, spike, exact_path);
    tda_series_free(&s);
    free(win);
}

typedef struct fed {
    tda_finding f[64];
    int n;
} fed;

static void feed(tda_series *s, int64_t step, double v, fed *out)
{
    tda_finding tmp[TDA_FEED_MAX];
    int k = tda_series_feed(s, step, step * 1000, v, tmp);
    for (int j = 0; j < k && out->n < 64; j++)
        out->f[out->n++] = tmp[j];
}

static void series_for(const char *name, const char *rule, tda_series *s)
{
    tda_rules rules = {0};
    tda_params p;
    char err[256];
    if (rule)
        CHECK(tda_rules_add(&rules, rule, err, sizeof err) == 0, "rule %s: %s", rule, err);
    tda_params_for(&rules, name, &p);
    CHECK(tda_series_init(s, &p) == 0, "init");
}

/* A decaying loss with noise: a 7-sigma spike at 600 and a 2-point spike at
 * 900 give one finding each at their first step; NaN at 700 and 710, Inf at
 * 720: one nan finding at 700, one inf at 720; nothing else. */
static void test_loss_spike_nan_inf(void)
{
    tda_series s;
    fed out = {0};
    series_for("train/loss", NULL, &s);
    for (int64_t t = 0; t < 1500; t++) {
        double base = 2 + 3 * exp(-(double)t / 300), v = base + 0.02 * noise();
        if (t == 600 || t == 900 || t == 901)
            v = base + 1.0;   /* far above: the window's trend widens its MAD to a few noise sigmas */
        if (t == 700 || t == 710)
            v = NAN;
        if (t == 720)
            v = INFINITY;
        feed(&s, t, v, &out);
    }
    CHECK(out.n == 4, "%d findings, want 4", out.n);
    int spikes = 0;
    for (int i = 0; i < out.n; i++) {
        const tda_finding *f = &out.f[i];
        if (f->kind == TDA_SPIKE) {
            CHECK(f->step_first == 600 || f->step_first == 900, "spike at %" PRId64, f->step_first);
            CHECK(f->score >= f->threshold && f->threshold == 6, "score %g threshold %g", f->score, f->threshold);
            CHECK(isfinite(f->baseline) && f->scale > 0, "evidence baseline %g scale %g", f->baseline, f->scale);
            spikes++;
        } else if (f->kind == TDA_NAN) {
            CHECK(f->step_first == 700, "nan at %" PRId64, f->step_first);
            CHECK(f->t_ns == 700000, "nan t_ns %" PRId64, f->t_ns);
        } else {
            CHECK(f->kind == TDA_INF && f->step_first == 720, "unexpected %s at %" PRId64, tda_kind_name(f->kind),
                  f->step_first);
        }
    }
    CHECK(spikes == 2, "%d spikes", spikes);
    tda_series_free(&s);
}

/* Downward outliers of a loss are not spikes; a rule can raise the threshold. */
static void test_rules_change_thresholds(void)
{
    tda_series s;
    fed out = {0};
    series_for("val/loss", "*loss:spike=50", &s);
    for (int64_t t = 0; t < 600; t++)
        feed(&s, t, t == 400 ? 2 + 0.02 * 20 : (t == 450 ? 0.5 : 2 + 0.02 * noise()), &out);
    CHECK(out.n == 0, "spike=50: %d findings", out.n);
    tda_series_free(&s);

    char err[256];
    tda_rules rules = {0};
    CHECK(tda_rules_add(&rules, "loss", err, sizeof err) == -EINVAL && strstr(err, "GLOB:key=value"), "%s", err);
    CHECK(tda_rules_add(&rules, "x:spike=abc", err, sizeof err) == -EINVAL && strstr(err, "spike=abc"), "%s", err);
    CHECK(tda_rules_add(&rules, "x:window=3", err, sizeof err) == -EINVAL && strstr(err, "8 to 4096"), "%s", err);
    CHECK(tda_rules_add(&rules, "x:colour=red", err, sizeof err) == -EINVAL && strstr(err, "unknown key 'colour'"), "%s", err);
    CHECK(tda_rules_add(&rules, "x:role=weird", err, sizeof err) == -EINVAL && strstr(err, "role 'weird'"), "%s", err);
    CHECK(rules.n == 0, "bad rules were added");
    tda_params p;
    CHECK(tda_rules_add(&rules, "acc/*:role=loss,window=64", err, sizeof err) == 0, "%s", err);
    tda_params_for(&rules, "acc/top1", &p);
    CHECK(p.role == TDA_ROLE_LOSS && p.window == 64 && p.spike == 6, "role %d window %u", p.role, p.window);
    tda_params_for(&rules, "train/lr", &p);
    CHECK(p.role == TDA_ROLE_OTHER && p.spike == 0 && p.nonfinite == 1, "lr role %d spike %g", p.role, p.spike);
    CHECK(tda_role_of("grad_norm/layer.12") == TDA_ROLE_GRAD && tda_role_of("norm") == TDA_ROLE_GRAD &&
          tda_role_of("perf/tokens_per_s") == TDA_ROLE_THROUGHPUT && tda_role_of("time_ms") == TDA_ROLE_STEPTIME,
          "roles by name");
}

/* A grad norm: a 1.5x jump at high z is normal for heavy tails (nothing),
 * a 5x jump is an explosion. */
static void test_grad_explosion(void)
{
    tda_series s;
    fed out = {0};
    series_for("grad_norm/layer.3", NULL, &s);
    for (int64_t t = 0; t < 800; t++)
        feed(&s, t, t == 300 ? 1.5 : t == 500 ? 5.0 : 1 + 0.01 * noise(), &out);
    CHECK(out.n == 1 && out.f[0].kind == TDA_GRAD_EXPLOSION && out.f[0].step_first == 500, "%d findings", out.n);
    if (out.n)
        CHECK(out.f[0].severity == TDA_WARNING || out.f[0].severity == TDA_CRITICAL, "severity");
    tda_series_free(&s);
}

/* Throughput halves from step 400 on: one finding at step 424 covering 400..424;
 * a dip of 10 points is not a drop. */
static void test_throughput_drop(void)
{
    tda_series s;
    fed out = {0};
    series_for("perf/tokens_per_s", NULL, &s);
    for (int64_t t = 0; t < 440; t++)
        feed(&s, t, (t >= 400 || (t >= 300 && t < 310) ? 500 : 1000) + 5 * noise(), &out);
    CHECK(out.n == 1 && out.f[0].kind == TDA_THROUGHPUT_DROP, "%d findings", out.n);
    if (out.n)
        CHECK(out.f[0].step_first == 400 && out.f[0].step_last == 424, "range %" PRId64 "..%" PRId64,
              out.f[0].step_first, out.f[0].step_last);
    tda_series_free(&s);
}

/* A loss that falls, then climbs back for good: one divergence finding;
 * with plateau=200 a flat loss gives one plateau finding. */
static void test_divergence_and_plateau(void)
{
    tda_series s;
    fed out = {0};
    series_for("train/loss", NULL, &s);
    for (int64_t t = 0; t < 2000; t++) {
        double v = t < 800 ? 3 - 2 * (double)t / 800 : 1 + 2 * (double)(t - 800) / 400;
        feed(&s, t, v * (1 + 0.001 * noise()), &out);
    }
    int div = 0;
    for (int i = 0; i < out.n; i++)
        div += out.f[i].kind == TDA_DIVERGENCE;
    CHECK(div == 1, "%d divergence findings of %d", div, out.n);
    tda_series_free(&s);

    fed flat = {0};
    series_for("train/loss", "train/loss:plateau=200", &s);
    for (int64_t t = 0; t < 1000; t++)
        feed(&s, t, (t < 300 ? 3 - (double)t / 300 : 2) + 0.005 * noise(), &flat);
    int plat = 0;
    for (int i = 0; i < flat.n; i++)
        plat += flat.f[i].kind == TDA_PLATEAU;
    CHECK(plat == 1, "%d plateau findings of %d", plat, flat.n);
    tda_series_free(&s);
}

static void test_finding_json(void)
{
    tda_finding f = {.kind = TDA_SPIKE, .severity = TDA_WARNING, .run_id = 3, .rank = 2,
                     .step_first = 41, .step_last = 41, .t_ns = 1795659339871000123, .value = 9.5,
                     .baseline = 2, .scale = NAN, .score = INFINITY, .threshold = 6};
    snprintf(f.run, sizeof f.run, "proj/run \"1\"");
    snprintf(f.series, sizeof f.series, "train/loss");
    snprintf(f.message, sizeof f.message, "spike");
    char *text = tda_finding_json_text(&f);
    cJSON *j = cJSON_Parse(text);
    CHECK(j != NULL, "not JSON: %s", text);
    CHECK(strstr(text, "\"t_ns\":1795659339871000123") != NULL, "t_ns not exact: %s", text);
    const cJSON *ev = cJSON_GetObjectItem(j, "evidence");
    CHECK(cJSON_IsString(cJSON_GetObjectItem(ev, "scale")) &&
          strcmp(cJSON_GetObjectItem(ev, "scale")->valuestring, "nan") == 0, "scale NaN");
    CHECK(strcmp(cJSON_GetObjectItem(ev, "score")->valuestring, "inf") == 0, "score inf");
    CHECK(cJSON_GetObjectItem(ev, "value")->valuedouble == 9.5, "value");
    CHECK(strcmp(cJSON_GetObjectItem(j, "kind")->valuestring, "spike") == 0 &&
          strcmp(cJSON_GetObjectItem(j, "severity")->valuestring, "warning") == 0 &&
          strcmp(cJSON_GetObjectItem(j, "run")->valuestring, "proj/run \"1\"") == 0 &&
          cJSON_GetObjectItem(j, "rank")->valueint == 2, "fields");
    for (int k = 0; k < TDA_KIND_COUNT; k++)
        CHECK(tda_kind_parse(tda_kind_name((tda_kind)k)) == k, "kind %d round trip", k);
    cJSON_Delete(j);
    free(text);
}

static void test_store_findings(void)
{
    char dir[] = "/tmp/test_analysis_XXXXXX", path[128], err[256];
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(path, sizeof path, "%s/s.db", dir);
    tss_store *w = NULL, *r = NULL;
    tss_open_opts o = {.writer = 1};
    int64_t run, sid;
    CHECK(tss_open(&w, path, &o, err, sizeof err) == 0, "%s", err);
    CHECK(tss_run_open(w, "p", "r1", NULL, 1, 1, &run) == 0 && tss_series_open(w, run, 1, "train/loss", &sid) == 0,
          "run/series");
    CHECK(tss_commit(w) >= 0, "commit");
    /* A store without the table reads as no findings. */
    tss_finding *fs;
    size_t n = 99;
    CHECK(tss_open(&r, path, NULL, err, sizeof err) == 0, "%s", err);
    CHECK(tss_list_findings(r, run, &fs, &n) == 0 && n == 0, "old store: %zu findings", n);
    tss_finding f = {.run_id = run, .series_id = sid, .rank = 1, .series = "train/loss", .kind = "spike",
                     .severity = "warning", .step_first = 5, .step_last = 6, .t_ns = 7, .source = "online",
                     .detail = "{\"kind\":\"spike\"}"};
    CHECK(tss_finding_add(r, &f) == -EPERM, "a reader must not write findings");
    CHECK(tss_finding_add(w, &f) == 0, "%s", tss_errmsg(w));
    f.step_first = 2;
    f.kind = "nan";
    CHECK(tss_finding_add(w, &f) == 0, "%s", tss_errmsg(w));
    f.kind = NULL;
    CHECK(tss_finding_add(w, &f) == -EINVAL, "missing kind accepted");
    CHECK(tss_list_findings(r, run, &fs, &n) == 0 && n == 0, "uncommitted findings visible: %zu", n);
    CHECK(tss_commit(w) >= 0, "commit");
    CHECK(tss_list_findings(r, run, &fs, &n) == 0 && n == 2, "%zu findings after commit", n);
    if (n == 2) {
        CHECK(strcmp(fs[0].kind, "nan") == 0 && fs[0].step_first == 2 && fs[1].step_first == 5, "order");
        CHECK(fs[1].series_id == sid && fs[1].rank == 1 && strcmp(fs[1].series, "train/loss") == 0 &&
              strcmp(fs[1].source, "online") == 0 && strcmp(fs[1].detail, "{\"kind\":\"spike\"}") == 0 &&
              fs[1].t_ns == 7 && fs[1].step_last == 6, "fields");
    }
    tss_free_findings(fs, n);
    tss_series_name sn;
    CHECK(tss_series_get(r, sid, &sn) == 0 && sn.run_id == run && sn.rank == 1 &&
          strcmp(sn.name, "train/loss") == 0 && strcmp(sn.run, "p/r1") == 0, "series_get");
    CHECK(tss_series_get(r, sid + 100, &sn) == -ENOENT, "series_get of a missing series");
    tss_close(r);
    tss_close(w);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0, "rm");
}

int main(void)
{
    test_roll_matches_sorting(8, 0);
    test_roll_matches_sorting(9, 0);
    test_roll_matches_sorting(128, 0);
    test_roll_matches_sorting(64, 1);
    test_roll_matches_sorting(37, 1);
    test_roll_matches_sorting(1000, 0);
    test_roll_matches_sorting(4096, 1);
    for (int i = 0; i < 2; i++) {
        double spike = i ? 6 : 2;
        test_filter_is_exact("train/loss", 8, spike, 1);
        test_filter_is_exact("train/loss", 37, spike, 1);
        test_filter_is_exact("train/loss", 128, spike, 1);
        test_filter_is_exact("train/loss", 500, spike, 1);
        test_filter_is_exact("tok_per_s", 128, spike, 1);
        test_filter_is_exact("tok_per_s", 64, spike, 1);
        /* Values near DBL_MAX: distances and spans overflow to Inf. */
        test_filter_is_exact("train/loss", 128, spike, 2e307);
        test_filter_is_exact("train/loss", 16, spike, 2e307);
        /* Tiny values: the 1e-9 x |median| floor of the scale matters. */
        test_filter_is_exact("train/loss", 128, spike, 1e-300);
    }
    test_loss_spike_nan_inf();
    test_rules_change_thresholds();
    test_grad_explosion();
    test_throughput_drop();
    test_divergence_and_plateau();
    test_finding_json();
    test_store_findings();
    if (failures) {
        fprintf(stderr, "%d checks failed\n", failures);
        return 1;
    }
    printf("test_analysis: all checks passed\n");
    return 0;
}
