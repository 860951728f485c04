/* tda_analyze.c - offline analysis of a stored run (contract: tda_analyze.h). */
#include "tda_analyze.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void tda_analyze_opts_init(tda_analyze_opts *o)
{
    *o = (tda_analyze_opts){.straggle = 0.15, .stall_s = 60};
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int best_is_max(const char *name, tda_role role)
{
    return role == TDA_ROLE_THROUGHPUT || strstr(name, "acc") || strstr(name, "mfu") ||
           strstr(name, "score");
}

void tda_stats_of(const tss_point *pts, size_t n, tda_metric_stats *m)
{
    double sum = 0, sum2 = 0;
    int64_t k = 0;
    m->count = (int64_t)n;
    m->final = n ? pts[n - 1].value : NAN;
    m->min = m->max = m->mean = m->std = m->median = m->best = NAN;
    m->best_step = 0;
    m->n_nan = m->n_inf = 0;
    if (n) {
        m->step_first = pts[0].step;
        m->step_last = pts[n - 1].step;
        m->t_first_ns = pts[0].t_ns;
        m->t_last_ns = pts[n - 1].t_ns;
    }
    for (size_t i = 0; i < n; i++) {
        double v = pts[i].value;
        if (isnan(v)) {
            m->n_nan++;
            continue;
        }
        if (isinf(v)) {
            m->n_inf++;
            continue;
        }
        if (k == 0 || v < m->min)
            m->min = v;
        if (k == 0 || v > m->max)
            m->max = v;
        if (k == 0 || (m->best_is_max ? v > m->best : v < m->best)) {
            m->best = v;
            m->best_step = pts[i].step;
        }
        /* Welford: stable for long series of similar values. */
        k++;
        double d = v - sum;
        sum += d / (double)k;
        sum2 += d * (v - sum);
    }
    if (k) {
        m->mean = sum;
        m->std = k > 1 ? sqrt(sum2 / (double)(k - 1)) : 0;
    }
}

/* Median of the finite values (NaN when none); scratch holds n doubles. */
static double median_of(const tss_point *pts, size_t n, double *scratch)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(pts[i].value))
            scratch[k++] = pts[i].value;
    if (!k)
        return NAN;
    qsort(scratch, k, sizeof *scratch, cmp_double);
    return k & 1 ? scratch[k / 2] : 0.5 * (scratch[k / 2 - 1] + scratch[k / 2]);
}

static int add_finding(tda_analysis *a, const tda_finding *f, const char *source)
{
    if (a->nfindings == a->capfindings) {
        size_t nc = a->capfindings ? 2 * a->capfindings : 16;
        tda_finding *nf = realloc(a->findings, nc * sizeof *nf);
        if (!nf)
            return -ENOMEM;
        a->findings = nf;
        char (*ns)[8] = realloc(a->source, nc * sizeof *ns);
        if (!ns)
            return -ENOMEM;
        a->source = ns;
        a->capfindings = nc;
    }
    a->findings[a->nfindings] = *f;
    snprintf(a->source[a->nfindings], sizeof a->source[0], "%s", source);
    a->nfindings++;
    return 0;
}

/* Fill the identity of a finding about series m (or the run, m NULL). */
static void identify(const tda_analysis *a, const tda_metric_stats *m, tda_finding *f)
{
    f->run_id = a->run.id;
    snprintf(f->run, sizeof f->run, "%s", a->display);
    if (m) {
        f->series_id = m->series_id;
        snprintf(f->series, sizeof f->series, "%s", m->name);
        f->rank = m->rank;
    }
}

/* Gaps in time between consecutive points of the series; pts in step order. */
static int find_stalls(tda_analysis *a, const tda_metric_stats *m, const tss_point *pts, size_t n,
                       double stall_s)
{
    for (size_t i = 1; i < n; i++) {
        double gap = (double)(pts[i].t_ns - pts[i - 1].t_ns) / 1e9;
        if (gap <= stall_s)
            continue;
        tda_finding f = {.kind = TDA_STALLED, .severity = TDA_WARNING, .step_first = pts[i - 1].step,
                         .step_last = pts[i].step, .t_ns = pts[i - 1].t_ns, .value = gap,
                         .baseline = NAN, .scale = NAN, .score = gap, .threshold = stall_s};
        identify(a, m, &f);
        snprintf(f.message, sizeof f.message, "rank %d stalled: no data for %.0f s after step %" PRId64,
                 m->rank, gap, pts[i - 1].step);
        if (add_finding(a, &f, "offline") < 0)
            return -ENOMEM;
    }
    return 0;
}

/* One series: statistics, detectors, median (for stragglers). */
static int analyze_series(tss_store *st, tda_analysis *a, const tss_series *s, const tda_analyze_opts *o,
                          tda_metric_stats *m, tss_point **pts, size_t *n, char *err, size_t errlen)
{
    tda_params p;
    tda_series det;
    tda_finding out[TDA_FEED_MAX];
    int rc = tss_read_points(st, s->id, INT64_MIN, INT64_MAX, 0, pts, n);
    if (rc < 0) {
        snprintf(err, errlen, "%s", tss_errmsg(st));
        return rc;
    }
    memset(m, 0, sizeof *m);
    m->series_id = s->id;
    m->rank = s->rank;
    snprintf(m->name, sizeof m->name, "%s", s->name);
    tda_params_for(o->rules, s->name, &p);
    m->role = p.role;
    m->best_is_max = best_is_max(s->name, p.role);
    tda_stats_of(*pts, *n, m);
    double *scratch = malloc((*n ? *n : 1) * sizeof *scratch);
    if (!scratch || tda_series_init(&det, &p) < 0) {
        free(scratch);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    m->median = median_of(*pts, *n, scratch);
    free(scratch);
    for (size_t i = 0; i < *n && rc == 0; i++) {
        int k = tda_series_feed(&det, (*pts)[i].step, (*pts)[i].t_ns, (*pts)[i].value, out);
        for (int j = 0; j < k && rc == 0; j++) {
            identify(a, m, &out[j]);
            rc = add_finding(a, &out[j], "offline");
        }
    }
    tda_series_free(&det);
    if (rc < 0)
        snprintf(err, errlen, "out of memory");
    return rc;
}

/* Stragglers: per metric name with a steptime or throughput role on >= 2 ranks. */
static int find_stragglers(tda_analysis *a, double straggle)
{
    size_t nm = a->nmetrics;
    double *others = malloc((nm ? nm : 1) * sizeof *others);
    if (!others)
        return -ENOMEM;
    for (size_t i = 0; i < nm; i++) {
        const tda_metric_stats *m = &a->metrics[i];
        if ((m->role != TDA_ROLE_STEPTIME && m->role != TDA_ROLE_THROUGHPUT) || !isfinite(m->median))
            continue;
        size_t k = 0;
        for (size_t j = 0; j < nm; j++)
            if (j != i && a->metrics[j].rank != m->rank && strcmp(a->metrics[j].name, m->name) == 0 &&
                isfinite(a->metrics[j].median))
                others[k++] = a->metrics[j].median;
        if (k == 0)
            continue;
        qsort(others, k, sizeof *others, cmp_double);
        double base = k & 1 ? others[k / 2] : 0.5 * (others[k / 2 - 1] + others[k / 2]);
        if (base <= 0)
            continue;
        /* slowness > 1 means slower: a longer step time or a lower throughput */
        double slow = m->role == TDA_ROLE_STEPTIME ? m->median / base : base / m->median;
        if (!(slow > 1 + straggle))
            continue;
        tda_finding f = {.kind = TDA_STRAGGLER, .severity = TDA_WARNING, .step_first = m->step_first,
                         .step_last = m->step_last, .t_ns = m->t_last_ns, .value = m->median,
                         .baseline = base, .scale = NAN, .score = slow, .threshold = 1 + straggle};
        identify(a, m, &f);
        snprintf(f.message, sizeof f.message,
                 "rank %d is %.0f%% slower than the other ranks (%.100s median %.4g vs %.4g)", m->rank,
                 100 * (slow - 1), m->name, m->median, base);
        if (add_finding(a, &f, "offline") < 0) {
            free(others);
            return -ENOMEM;
        }
    }
    free(others);
    return 0;
}

/* The same finding found online and offline. A straggler is about a rank
 * over the whole run: online it is found at some step, offline over all of
 * them, so its steps are not compared. */
static int same_finding(const tda_finding *f, const tss_finding *s)
{
    return strcmp(tda_kind_name(f->kind), s->kind) == 0 && strcmp(f->series, s->series) == 0 &&
           f->rank == s->rank && (f->step_first == s->step_first || f->kind == TDA_STRAGGLER);
}

/* A JSON number, or the strings tda_json_number writes for non-finite ones. */
static double json_num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (cJSON_IsNumber(v))
        return v->valuedouble;
    if (cJSON_IsString(v))
        return strtod(v->valuestring, NULL);   /* "nan", "inf", "-inf" */
    return NAN;
}

/* A stored finding back into a struct, from its columns and JSON detail. */
static void from_stored(const tss_finding *s, tda_finding *f)
{
    int kind = tda_kind_parse(s->kind), sev = tda_severity_parse(s->severity);
    *f = (tda_finding){.kind = kind < 0 ? TDA_SPIKE : (tda_kind)kind,
                       .severity = sev < 0 ? TDA_WARNING : (tda_severity)sev, .run_id = s->run_id,
                       .series_id = s->series_id, .rank = s->rank, .step_first = s->step_first,
                       .step_last = s->step_last, .t_ns = s->t_ns, .value = NAN, .baseline = NAN,
                       .scale = NAN, .score = NAN, .threshold = NAN};
    snprintf(f->series, sizeof f->series, "%s", s->series);
    cJSON *d = cJSON_Parse(s->detail);
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(d, "evidence");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(d, "message");
    if (ev) {
        f->value = json_num(ev, "value");
        f->baseline = json_num(ev, "baseline");
        f->scale = json_num(ev, "scale");
        f->score = json_num(ev, "score");
        f->threshold = json_num(ev, "threshold");
    }
    if (cJSON_IsString(msg))
        snprintf(f->message, sizeof f->message, "%s", msg->valuestring);
    cJSON_Delete(d);
}

static int merge_stored(tss_store *st, tda_analysis *a, char *err, size_t errlen)
{
    tss_finding *sf;
    size_t ns;
    int rc = tss_list_findings(st, a->run.id, &sf, &ns);
    if (rc < 0) {
        snprintf(err, errlen, "%s", tss_errmsg(st));
        return rc;
    }
    size_t offline = a->nfindings;
    for (size_t i = 0; i < ns && rc == 0; i++) {
        size_t j = 0;
        while (j < offline && !same_finding(&a->findings[j], &sf[i]))
            j++;
        if (j < offline)
            continue;
        tda_finding f;
        from_stored(&sf[i], &f);
        snprintf(f.run, sizeof f.run, "%s", a->display);
        rc = add_finding(a, &f, sf[i].source);
    }
    tss_free_findings(sf, ns);
    if (rc < 0)
        snprintf(err, errlen, "out of memory");
    return rc;
}

int tda_analyze_run(tss_store *st, int64_t run_id, const tda_analyze_opts *o, tda_analysis *a,
                    char *err, size_t errlen)
{
    tss_run *runs = NULL;
    tss_series *series = NULL;
    size_t nruns = 0, nseries = 0;
    int rc;

    memset(a, 0, sizeof *a);
    a->steps_per_s = NAN;
    if ((rc = tss_list_runs(st, &runs, &nruns)) < 0 || (rc = tss_list_series(st, run_id, &series, &nseries)) < 0) {
        snprintf(err, errlen, "%s", tss_errmsg(st));
        goto done;
    }
    for (size_t i = 0; i < nruns; i++)
        if (runs[i].id == run_id) {
            a->run = runs[i];
            memset(&runs[i], 0, sizeof runs[i]);    /* the analysis owns its strings now */
        }
    if (!a->run.name) {
        snprintf(err, errlen, "no run with id %" PRId64, run_id);
        rc = -ENOENT;
        goto done;
    }
    snprintf(a->display, sizeof a->display, "%s%s%s", a->run.project, *a->run.project ? "/" : "", a->run.name);
    if (nseries && !(a->metrics = calloc(nseries, sizeof *a->metrics))) {
        snprintf(err, errlen, "out of memory");
        rc = -ENOMEM;
        goto done;
    }
    int64_t densest = -1, now = o->now_ns;
    if (!now) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    }
    for (size_t i = 0; i < nseries; i++) {
        tss_point *pts = NULL;
        size_t n = 0;
        tda_metric_stats *m = &a->metrics[a->nmetrics];
        rc = analyze_series(st, a, &series[i], o, m, &pts, &n, err, errlen);
        if (rc == 0) {
            a->nmetrics++;
            /* The densest series of each rank speaks for its clock. */
            int densest_of_rank = 1;
            for (size_t j = 0; j < nseries; j++)
                if (series[j].rank == series[i].rank &&
                    (series[j].count > series[i].count || (series[j].count == series[i].count && j < i)))
                    densest_of_rank = 0;
            if (densest_of_rank && n > 1)
                rc = find_stalls(a, m, pts, n, o->stall_s);
            if (n > 1 && (densest < 0 || m->count > a->metrics[densest].count))
                densest = (int64_t)(a->nmetrics - 1);
        }
        free(pts);
        if (rc < 0)
            goto done;
    }
    if (densest >= 0) {
        const tda_metric_stats *m = &a->metrics[densest];
        a->step_first = m->step_first;
        a->step_last = m->step_last;
        a->t_first_ns = m->t_first_ns;
        a->t_last_ns = m->t_last_ns;
        if (m->t_last_ns > m->t_first_ns)
            a->steps_per_s = (double)(m->step_last - m->step_first) / ((double)(m->t_last_ns - m->t_first_ns) / 1e9);
        if (strcmp(a->run.status, "running") == 0 && (double)(now - m->t_last_ns) / 1e9 > o->stall_s) {
            double silent = (double)(now - m->t_last_ns) / 1e9;
            tda_finding f = {.kind = TDA_STALLED, .severity = TDA_CRITICAL, .rank = -1,
                             .step_first = m->step_last, .step_last = m->step_last, .t_ns = m->t_last_ns,
                             .value = silent, .baseline = NAN, .scale = NAN, .score = silent,
                             .threshold = o->stall_s};
            identify(a, NULL, &f);
            snprintf(f.message, sizeof f.message,
                     "stalled: still running but no data for %.0f s (last step %" PRId64 ")", silent,
                     m->step_last);
            if ((rc = add_finding(a, &f, "offline")) < 0)
                goto done;
        }
    }
    if ((rc = find_stragglers(a, o->straggle)) < 0 || (rc = merge_stored(st, a, err, errlen)) < 0)
        goto done;
done:
    if (rc == -ENOMEM)
        snprintf(err, errlen, "out of memory");
    tss_free_runs(runs, nruns);
    tss_free_series(series, nseries);
    if (rc < 0)
        tda_analysis_free(a);
    return rc;
}

void tda_analysis_free(tda_analysis *a)
{
    if (!a)
        return;
    free(a->run.project);
    free(a->run.name);
    free(a->run.status);
    free(a->run.config);
    free(a->metrics);
    free(a->findings);
    free(a->source);
    memset(a, 0, sizeof *a);
}
