/* bench_detect.c - quality and cost of the analysis detectors.
 *
 *   bench_detect [--check] [--seed S] [--spike Z] [--repeat R] [--detect RULE]... FILE.csv[.gz]...
 *
 * FILEs are long-format CSV with a header naming at least `metric`, `step`
 * and `value` (optionally `run` and `rank`): `trainscope export --format csv`
 * output, or /work/shared/data/pytorch-char-transformer-lr3e-2.csv.gz. Every
 * loss series (role loss, tda_detect.h) with at least 1000 points is part of
 * the evaluation set:
 *
 *   clean      the series as recorded, through the detectors with default
 *              parameters: every finding is a false finding;
 *   spikes     the same series with a spike every 150..450 steps (after the
 *              first 256), of k robust sigma, k uniform in [3, 12], where the
 *              robust sigma (1.4826 x MAD) and the median are those of the
 *              128 clean points before it: value = median + k x sigma. A
 *              spike is found when a spike or grad_explosion finding starts
 *              at its step; recall counts the spikes of 6 sigma or more,
 *              smaller ones are reported per 1-sigma bin for reference;
 *   nan        the same series with one NaN at a random step: it must be
 *              reported at that step.
 *
 * Injections use a fixed pseudo-random sequence (--seed), so the figures are
 * deterministic. --check exits 1 unless recall >= 99%, false findings <= 1 per
 * 100,000 clean steps (and there are >= 100,000 of them), every NaN found at
 * its step. The cost is measured as ns per point of tda_series_feed (the
 * detectors) and of tda_online_batch (the collector's hook: reading the BATCH,
 * series lookup, detectors) on a real store, over the clean series repeated R
 * times.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store.h"
#include "tda_detect.h"
#include "tda_online.h"
#include "wire.h"

typedef struct series {
    char key[512];          /* file | run | rank | metric */
    char metric[256];
    int64_t *steps;
    double *values;
    size_t n, cap;
} series;

static series *all;
static size_t nall, capall;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng_state;
static tda_rules rules;   /* --detect RULE */
static int verbose_findings;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
static double urand(void) { return (double)(rng() >> 11) / 9007199254740992.0; }

static series *series_for(const char *key, const char *metric)
{
    for (size_t i = nall; i-- > 0;)
        if (strcmp(all[i].key, key) == 0)
            return &all[i];
    if (nall == capall) {
        capall = capall ? 2 * capall : 64;
        all = realloc(all, capall * sizeof *all);
        if (!all)
            exit(1);
    }
    series *s = &all[nall++];
    memset(s, 0, sizeof *s);
    snprintf(s->key, sizeof s->key, "%s", key);
    snprintf(s->metric, sizeof s->metric, "%s", metric);
    return s;
}

/* Split a CSV line in place (no quoted fields in these files). */
static int split(char *line, char **f, int max)
{
    int n = 0;
    line[strcspn(line, "\r\n")] = 0;
    for (char *p = line; n < max;) {
        f[n++] = p;
        p = strchr(p, ',');
        if (!p)
            break;
        *p++ = 0;
    }
    return n;
}

static int load(const char *path)
{
    char cmd[1200], line[4096], *f[16];
    size_t len = strlen(path);
    int gz = len > 3 && strcmp(path + len - 3, ".gz") == 0;
    FILE *in;
    if (gz) {
        snprintf(cmd, sizeof cmd, "gzip -dc '%s'", path);
        in = popen(cmd, "r");
    } else {
        in = fopen(path, "r");
    }
    if (!in || !fgets(line, sizeof line, in)) {
        fprintf(stderr, "bench_detect: cannot read %s\n", path);
        return -1;
    }
    int nf = split(line, f, 16), cm = -1, cs = -1, cv = -1, cr = -1, ck = -1;
    for (int i = 0; i < nf; i++) {
        cm = strcmp(f[i], "metric") == 0 ? i : cm;
        cs = strcmp(f[i], "step") == 0 ? i : cs;
        cv = strcmp(f[i], "value") == 0 ? i : cv;
        cr = strcmp(f[i], "run") == 0 ? i : cr;
        ck = strcmp(f[i], "rank") == 0 ? i : ck;
    }
    if (cm < 0 || cs < 0 || cv < 0) {
        fprintf(stderr, "bench_detect: %s: the header must name metric, step and value\n", path);
        return -1;
    }
    while (fgets(line, sizeof line, in)) {
        char key[512];
        int k = split(line, f, 16);
        if (k <= cm || k <= cs || k <= cv)
            continue;
        snprintf(key, sizeof key, "%.200s|%.100s|%s|%.180s", path, cr >= 0 && cr < k ? f[cr] : "",
                 ck >= 0 && ck < k ? f[ck] : "0", f[cm]);
        series *s = series_for(key, f[cm]);
        if (s->n == s->cap) {
            s->cap = s->cap ? 2 * s->cap : 1024;
            s->steps = realloc(s->steps, s->cap * sizeof *s->steps);
            s->values = realloc(s->values, s->cap * sizeof *s->values);
            if (!s->steps || !s->values)
                return -1;
        }
        s->steps[s->n] = strtoll(f[cs], NULL, 10);
        s->values[s->n] = strtod(f[cv], NULL);
        s->n++;
    }
    if (gz)
        pclose(in);
    else
        fclose(in);
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median and robust sigma of v[0..n) by sorting a copy: the reference the
 * injections are sized with, independent of tda_roll. */
static void reference(const double *v, size_t n, double *med, double *sigma)
{
    double a[256], d[256];
    memcpy(a, v, n * sizeof *a);
    qsort(a, n, sizeof *a, cmp_double);
    *med = n & 1 ? a[n / 2] : 0.5 * (a[n / 2 - 1] + a[n / 2]);
    for (size_t i = 0; i < n; i++)
        d[i] = fabs(a[i] - *med);
    qsort(d, n, sizeof *d, cmp_double);
    *sigma = TDA_MAD_SIGMA * (n & 1 ? d[n / 2] : 0.5 * (d[n / 2 - 1] + d[n / 2]));
}

typedef struct tally {
    uint64_t clean_steps, false_findings, false_by_kind[TDA_KIND_COUNT];
    uint64_t spikes, found;             /* of 6 robust sigma or more */
    uint64_t bin_spikes[3], bin_found[3];   /* below 6: [3,4), [4,5), [5,6) sigma */
    uint64_t nans, nans_found;
    double feed_ns;
} tally;

/* Feed v through a fresh detector; calls back per finding. Returns the
 * number of findings; *marks (n bytes, may be NULL) gets 1 at each step
 * index where a spike or explosion finding starts; *first_nan the index of the
 * first nan finding. */
static uint64_t run_detector(const series *s, const double *v, double spike, uint8_t *marks, size_t *first_nan,
                             uint64_t *by_kind)
{
    tda_params p;
    tda_series det;
    tda_finding out[TDA_FEED_MAX];
    uint64_t nf = 0;
    tda_params_for(&rules, s->metric, &p);
    if (spike > 0)
        p.spike = spike;
    if (tda_series_init(&det, &p) < 0)
        exit(1);
    for (size_t i = 0; i < s->n; i++) {
        int k = tda_series_feed(&det, s->steps[i], 0, v[i], out);
        for (int j = 0; j < k; j++) {
            nf++;
            if (by_kind) {
                by_kind[out[j].kind]++;
                if (verbose_findings)
                    printf("  clean %s: step %" PRId64 ": %s\n", s->key, out[j].step_first, out[j].message);
            }
            if (marks && (out[j].kind == TDA_SPIKE || out[j].kind == TDA_GRAD_EXPLOSION) &&
                out[j].step_first == s->steps[i])
                marks[i] = 1;
            if (first_nan && out[j].kind == TDA_NAN && *first_nan == SIZE_MAX)
                *first_nan = i;
        }
    }
    tda_series_free(&det);
    return nf;
}

static int evaluated(const series *s)
{
    return s->n >= 1000 && tda_role_of(s->metric) == TDA_ROLE_LOSS;
}

static void evaluate(const series *s, double spike, tally *t, int verbose)
{
    uint8_t *marks = calloc(s->n, 1);
    double *v = malloc(s->n * sizeof *v);
    size_t *at = malloc(s->n * sizeof *at), nat = 0;
    double *size = malloc(s->n * sizeof *size);
    if (!marks || !v || !at || !size)
        exit(1);
    uint64_t by_kind[TDA_KIND_COUNT] = {0};
    uint64_t f = run_detector(s, s->values, spike, NULL, NULL, by_kind);
    t->clean_steps += s->n;
    t->false_findings += f;
    for (int k = 0; k < TDA_KIND_COUNT; k++)
        t->false_by_kind[k] += by_kind[k];
    if (verbose && f)
        printf("  clean %s: %" PRIu64 " findings\n", s->key, f);
    /* spikes */
    memcpy(v, s->values, s->n * sizeof *v);
    for (size_t i = 256 + rng() % 150; i < s->n; i += 150 + rng() % 301) {
        double med, sigma;
        int finite = 1;
        for (size_t j = i - 128; j < i; j++)
            finite &= isfinite(s->values[j]);
        if (!finite)
            continue;
        reference(s->values + i - 128, 128, &med, &sigma);
        if (!(sigma > 0))
            continue;
        size[nat] = 3 + 9 * urand();
        v[i] = med + size[nat] * sigma;
        at[nat++] = i;
    }
    run_detector(s, v, spike, marks, NULL, NULL);
    for (size_t j = 0; j < nat; j++) {
        if (size[j] < 6) {
            int b = (int)size[j] - 3;
            t->bin_spikes[b]++;
            t->bin_found[b] += marks[at[j]];
            continue;
        }
        t->spikes++;
        t->found += marks[at[j]];
        if (verbose && !marks[at[j]])
            printf("  missed spike %s step %" PRId64 " (%.2f sigma)\n", s->key, s->steps[at[j]], size[j]);
    }
    /* one NaN */
    memcpy(v, s->values, s->n * sizeof *v);
    size_t pos = rng() % s->n, first = SIZE_MAX;
    v[pos] = NAN;
    run_detector(s, v, spike, NULL, &first, NULL);
    t->nans++;
    t->nans_found += first == pos;
    free(marks);
    free(v);
    free(at);
    free(size);
}

/* ns per point of the detectors alone. */
static double cost_feed(int repeat)
{
    uint64_t points = 0;
    double t0 = now_s();
    for (int r = 0; r < repeat; r++)
        for (size_t i = 0; i < nall; i++)
            if (evaluated(&all[i])) {
                run_detector(&all[i], all[i].values, 0, NULL, NULL, NULL);
                points += all[i].n;
            }
    return points ? (now_s() - t0) * 1e9 / (double)points : NAN;
}

/* ns per point of the collector's hook on a real store: every evaluated
 * series is a metric of one stream, BATCHes of up to 4096 samples with the
 * metrics interleaved step by step, as a trainer logs them. */
static double cost_online(int repeat)
{
    char path[] = "/tmp/bench_detect_XXXXXX", err[512], db[64];
    if (!mkdtemp(path))
        return NAN;
    snprintf(db, sizeof db, "%s/b.db", path);
    tss_store *st;
    tss_open_opts so = {.writer = 1};
    if (tss_open(&st, db, &so, err, sizeof err) < 0) {
        fprintf(stderr, "bench_detect: %s\n", err);
        return NAN;
    }
    int64_t run;
    tss_run_open(st, NULL, "bench", NULL, 1, 1, &run);
    tss_stream_open(st, 1, run, 0, "{}", 1);
    size_t idx[256], ns = 0, maxn = 0;
    int64_t sid_of[256];
    for (size_t i = 0; i < nall && ns < 256; i++)
        if (evaluated(&all[i])) {
            int64_t sid;
            char name[300];
            snprintf(name, sizeof name, "%s#%zu", all[i].metric, ns);
            tss_series_open(st, run, 0, name, &sid);
            tss_stream_bind(st, 1, (uint32_t)ns, sid);
            sid_of[ns] = sid;
            idx[ns++] = i;
            maxn = all[i].n > maxn ? all[i].n : maxn;
        }
    tda_online_opts oo;
    tda_online *d;
    tda_online_opts_init(&oo);
    oo.quiet = 1;
    oo.rules = &rules;
    tda_online_open(&d, &oo, err, sizeof err);
    uint8_t *batch = malloc(tsw_batch_size(4096));
    int64_t sids[4096];
    uint64_t points = 0;
    double spent = 0;
    for (int r = 0; r < repeat; r++) {
        uint32_t n = 0;
        for (size_t step = 0; step < maxn; step++)
            for (size_t k = 0; k < ns; k++) {
                const series *s = &all[idx[k]];
                if (step >= s->n)
                    continue;
                uint8_t *q = batch + TSW_BATCH_HEAD + (size_t)n * TSW_SAMPLE_SIZE;
                uint64_t bits;
                memcpy(&bits, &s->values[step], sizeof bits);
                tsw_put_u32(q, (uint32_t)k);
                tsw_put_u64(q + 4, (uint64_t)(s->steps[step] + (int64_t)r * 10000000));
                tsw_put_u64(q + 12, 0);
                tsw_put_u64(q + 20, bits);
                sids[n] = sid_of[k];
                if (++n == 4096) {
                    double t1 = now_s();
                    tda_online_batch(d, st, sids, batch, n);
                    spent += now_s() - t1;
                    points += n;
                    n = 0;
                }
            }
        if (n) {
            double t1 = now_s();
            tda_online_batch(d, st, sids, batch, n);
            spent += now_s() - t1;
            points += n;
        }
    }
    double ns_per = points ? spent * 1e9 / (double)points : NAN;
    tda_online_close(d);
    free(batch);
    tss_close(st);
    unlink(db);
    char wal[80];
    snprintf(wal, sizeof wal, "%s-wal", db);
    unlink(wal);
    snprintf(wal, sizeof wal, "%s-shm", db);
    unlink(wal);
    rmdir(path);
    return ns_per;
}

int main(int argc, char **argv)
{
    int check = 0, verbose = 0, repeat = 5, nfiles = 0;
    double spike = 0;
    rng_state = 0x9E3779B97F4A7C15ull;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--check") == 0)
            check = 1;
        else if (strcmp(argv[i], "-v") == 0)
            verbose = verbose_findings = 1;
        else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
            rng_state = strtoull(argv[++i], NULL, 10) * 0x9E3779B97F4A7C15ull | 1;
        else if (strcmp(argv[i], "--spike") == 0 && i + 1 < argc)
            spike = strtod(argv[++i], NULL);
        else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc)
            repeat = atoi(argv[++i]);
        else if (strcmp(argv[i], "--detect") == 0 && i + 1 < argc) {
            char err[512];
            if (tda_rules_add(&rules, argv[++i], err, sizeof err) < 0) {
                fprintf(stderr, "bench_detect: %s\n", err);
                return 2;
            }
        }
        else if (load(argv[i]) < 0)
            return 2;
        else
            nfiles++;
    }
    if (!nfiles) {
        fprintf(stderr, "usage: bench_detect [--check] [--seed S] [--spike Z] [--repeat R] FILE.csv[.gz]...\n");
        return 2;
    }
    tally t = {0};
    size_t nser = 0;
    for (size_t i = 0; i < nall; i++)
        if (evaluated(&all[i])) {
            evaluate(&all[i], spike, &t, verbose);
            nser++;
        }
    double recall = t.spikes ? (double)t.found / (double)t.spikes : NAN;
    double fp_per_100k = t.clean_steps ? 1e5 * (double)t.false_findings / (double)t.clean_steps : NAN;
    printf("evaluation set: %zu series, %" PRIu64 " clean steps\n", nser, t.clean_steps);
    printf("false findings on clean series: %" PRIu64 " (%.3f per 100k steps)", t.false_findings, fp_per_100k);
    for (int k = 0; k < TDA_KIND_COUNT; k++)
        if (t.false_by_kind[k])
            printf(" %s=%" PRIu64, tda_kind_name((tda_kind)k), t.false_by_kind[k]);
    printf("\nspikes of 6..12 robust sigma: %" PRIu64 " of %" PRIu64 " found (recall %.4f)\n", t.found, t.spikes,
           recall);
    printf("smaller spikes (below the threshold, for reference):");
    for (int b = 0; b < 3; b++)
        printf(" %d-%d sigma %" PRIu64 "/%" PRIu64, b + 3, b + 4, t.bin_found[b], t.bin_spikes[b]);
    printf("\n");
    printf("NaN found at its first step: %" PRIu64 " of %" PRIu64 "\n", t.nans_found, t.nans);
    if (repeat > 0) {
        printf("cost: detectors %.1f ns/point, collector hook (tda_online_batch) %.1f ns/point\n",
               cost_feed(repeat), cost_online(repeat));
    }
    int ok = t.clean_steps >= 100000 && recall >= 0.99 && t.false_findings * 100000 <= t.clean_steps &&
             t.nans_found == t.nans && t.spikes > 0;
    if (check)
        printf("check: %s\n", ok ? "PASS" : "FAIL (need >= 100000 clean steps, recall >= 0.99, "
                                           "<= 1 false finding per 100k steps, every NaN at its step)");
    for (size_t i = 0; i < nall; i++) {
        free(all[i].steps);
        free(all[i].values);
    }
    free(all);
    return check && !ok ? 1 : 0;
}
