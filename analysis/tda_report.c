/* tda_report.c - the `report` command: offline analysis (tda_analyze.c),
 * run comparison, text and JSON output (contract: tda_report.h; JSON
 * schema: docs/report-schema.md). */
#include "tda_report.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tda_analyze.h"

#define REPORT_SCHEMA "trainscope.report/1"
#define EMA_SPAN 16

/* ---- comparison ------------------------------------------------------------ */

/* Walk the common steps of a and b (both in step order, newest timeline). */
static void compare_points(const tss_point *a, size_t na, const tss_point *b, size_t nb, double tol,
                           tda_compare *c)
{
    double alpha = 2.0 / (EMA_SPAN + 1.0), ea = 0, eb = 0;
    int64_t first_out = 0;
    int out = 0;
    size_t i = 0, j = 0;
    c->max_abs_diff = NAN;
    c->diff_at_end = NAN;
    while (i < na && j < nb) {
        if (a[i].step < b[j].step) {
            i++;
            continue;
        }
        if (b[j].step < a[i].step) {
            j++;
            continue;
        }
        double x = a[i].value, y = b[j].value;
        int64_t step = a[i].step;
        i++;
        j++;
        if (!isfinite(x) || !isfinite(y))
            continue;
        ea = c->common_steps == 0 ? x : ea + alpha * (x - ea);
        eb = c->common_steps == 0 ? y : eb + alpha * (y - eb);
        c->common_steps++;
        double d = fabs(x - y);
        if (isnan(c->max_abs_diff) || d > c->max_abs_diff) {
            c->max_abs_diff = d;
            c->max_abs_diff_step = step;
        }
        double mag = fmax(fabs(ea), fabs(eb));
        int apart = fabs(ea - eb) > tol * mag && mag > 0;
        if (apart && !out)
            first_out = step;
        out = apart;
        c->diff_at_end = ea - eb;
    }
    c->diverged = out;
    c->diverge_step = out ? first_out : 0;
}

int tda_compare_runs(tss_store *st, int64_t run_a, int64_t run_b, double tolerance, tda_compare **out,
                     size_t *n, char *err, size_t errlen)
{
    tss_series *sa = NULL, *sb = NULL;
    size_t na = 0, nb = 0, k = 0;
    tda_compare *v = NULL;
    int rc;
    *out = NULL;
    *n = 0;
    if ((rc = tss_list_series(st, run_a, &sa, &na)) < 0 || (rc = tss_list_series(st, run_b, &sb, &nb)) < 0) {
        snprintf(err, errlen, "%s", tss_errmsg(st));
        goto done;
    }
    if (na && !(v = calloc(na, sizeof *v))) {
        rc = -ENOMEM;
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < na; i++) {
        size_t j = 0;
        while (j < nb && (sb[j].rank != sa[i].rank || strcmp(sb[j].name, sa[i].name) != 0))
            j++;
        if (j == nb)
            continue;
        tss_point *pa = NULL, *pb = NULL;
        size_t npa = 0, npb = 0;
        if ((rc = tss_read_points(st, sa[i].id, INT64_MIN, INT64_MAX, 0, &pa, &npa)) < 0 ||
            (rc = tss_read_points(st, sb[j].id, INT64_MIN, INT64_MAX, 0, &pb, &npb)) < 0) {
            snprintf(err, errlen, "%s", tss_errmsg(st));
            free(pa);
            goto done;
        }
        tda_compare *c = &v[k++];
        tda_metric_stats ma = {.best_is_max = tda_role_of(sa[i].name) == TDA_ROLE_THROUGHPUT};
        tda_metric_stats mb = ma;
        tda_stats_of(pa, npa, &ma);
        tda_stats_of(pb, npb, &mb);
        snprintf(c->name, sizeof c->name, "%s", sa[i].name);
        c->rank = sa[i].rank;
        c->final_a = ma.final;
        c->final_b = mb.final;
        c->best_a = ma.best;
        c->best_b = mb.best;
        compare_points(pa, npa, pb, npb, tolerance, c);
        free(pa);
        free(pb);
    }
    *out = v;
    *n = k;
    v = NULL;
done:
    free(v);
    tss_free_series(sa, na);
    tss_free_series(sb, nb);
    return rc;
}

/* ---- output --------------------------------------------------------------- */

static void add_i64(cJSON *o, const char *k, int64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    cJSON_AddRawToObject(o, k, buf);
}

static void add_num(cJSON *o, const char *k, double v)
{
    cJSON_AddItemToObject(o, k, tda_json_number(v));
}

static cJSON *run_json(const tda_analysis *a)
{
    cJSON *r = cJSON_CreateObject();
    add_i64(r, "id", a->run.id);
    cJSON_AddStringToObject(r, "name", a->display);
    cJSON_AddStringToObject(r, "status", a->run.status);
    cJSON_AddNumberToObject(r, "world_size", a->run.world_size);
    add_i64(r, "created_ns", a->run.created_ns);
    add_i64(r, "updated_ns", a->run.updated_ns);
    add_i64(r, "ended_ns", a->run.ended_ns);
    add_i64(r, "step_first", a->step_first);
    add_i64(r, "step_last", a->step_last);
    add_i64(r, "t_first_ns", a->t_first_ns);
    add_i64(r, "t_last_ns", a->t_last_ns);
    add_num(r, "duration_s", a->t_last_ns > a->t_first_ns ? (double)(a->t_last_ns - a->t_first_ns) / 1e9 : 0);
    add_num(r, "steps_per_s", a->steps_per_s);
    add_i64(r, "points", a->run.points);
    add_i64(r, "dropped", a->run.dropped);
    return r;
}

static cJSON *metric_json(const tda_metric_stats *m)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", m->name);
    cJSON_AddNumberToObject(o, "rank", m->rank);
    cJSON_AddStringToObject(o, "role", tda_role_name(m->role));
    add_i64(o, "count", m->count);
    add_i64(o, "step_first", m->step_first);
    add_i64(o, "step_last", m->step_last);
    add_num(o, "final", m->final);
    add_num(o, "best", m->best);
    add_i64(o, "best_step", m->best_step);
    cJSON_AddStringToObject(o, "best_is", m->best_is_max ? "max" : "min");
    add_num(o, "min", m->min);
    add_num(o, "max", m->max);
    add_num(o, "mean", m->mean);
    add_num(o, "std", m->std);
    add_num(o, "median", m->median);
    add_i64(o, "n_nan", m->n_nan);
    add_i64(o, "n_inf", m->n_inf);
    return o;
}

static cJSON *compare_json(const tda_analysis *b, const tda_compare *c, size_t n)
{
    cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "metrics");
    cJSON_AddItemToObject(o, "against", run_json(b));
    for (size_t i = 0; i < n; i++) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "name", c[i].name);
        cJSON_AddNumberToObject(m, "rank", c[i].rank);
        add_i64(m, "common_steps", c[i].common_steps);
        add_num(m, "final", c[i].final_a);
        add_num(m, "final_against", c[i].final_b);
        add_num(m, "final_diff", c[i].final_a - c[i].final_b);
        add_num(m, "best", c[i].best_a);
        add_num(m, "best_against", c[i].best_b);
        add_num(m, "max_abs_diff", c[i].max_abs_diff);
        add_i64(m, "max_abs_diff_step", c[i].max_abs_diff_step);
        if (c[i].diverged)
            add_i64(m, "diverge_step", c[i].diverge_step);
        else
            cJSON_AddNullToObject(m, "diverge_step");
        add_num(m, "smoothed_diff_at_end", c[i].diff_at_end);
        cJSON_AddItemToArray(arr, m);
    }
    return o;
}

static cJSON *report_doc(const tda_analysis *a, const tda_analysis *b, const tda_compare *c, size_t nc)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "schema", REPORT_SCHEMA);
    cJSON_AddItemToObject(root, "run", run_json(a));
    cJSON *ms = cJSON_AddArrayToObject(root, "metrics"), *fs = cJSON_AddArrayToObject(root, "findings");
    for (size_t i = 0; i < a->nmetrics; i++)
        cJSON_AddItemToArray(ms, metric_json(&a->metrics[i]));
    for (size_t i = 0; i < a->nfindings; i++) {
        cJSON *f = tda_finding_json(&a->findings[i]);
        if (f)
            cJSON_AddStringToObject(f, "source", a->source[i]);
        cJSON_AddItemToArray(fs, f);
    }
    if (b)
        cJSON_AddItemToObject(root, "comparison", compare_json(b, c, nc));
    return root;
}

/* The store's sentence for a run that cannot be found, except that a
 * missing one says "unknown run" as the query API does everywhere (callers
 * and MCP clients key on it). */
static int find_run(tss_store *st, const char *name, int64_t *id, char *err, size_t errlen)
{
    int rc = tss_find_run(st, name, id);
    if (rc == -ENOENT)
        snprintf(err, errlen, "unknown run '%s'", name);
    else if (rc < 0)
        snprintf(err, errlen, "%s", tss_errmsg(st));
    return rc;
}

int tda_report_json(tss_store *st, const char *run, const char *against, double tolerance,
                    const tda_analyze_opts *o, cJSON **out, char *err, size_t errlen)
{
    tda_analysis a = {0}, b = {0};
    tda_analyze_opts defaults;
    tda_compare *cmp = NULL;
    size_t ncmp = 0;
    int64_t ida, idb;
    int rc;
    *out = NULL;
    if (!st || !run || !(tolerance > 0) || !isfinite(tolerance)) {
        snprintf(err, errlen, "the report needs a store, a run and a positive tolerance");
        return -EINVAL;
    }
    if (!o) {
        tda_analyze_opts_init(&defaults);
        o = &defaults;
    }
    if ((rc = find_run(st, run, &ida, err, errlen)) < 0 ||
        (against && (rc = find_run(st, against, &idb, err, errlen)) < 0))
        goto done;
    if ((rc = tda_analyze_run(st, ida, o, &a, err, errlen)) < 0 ||
        (against && ((rc = tda_analyze_run(st, idb, o, &b, err, errlen)) < 0 ||
                     (rc = tda_compare_runs(st, ida, idb, tolerance, &cmp, &ncmp, err, errlen)) < 0)))
        goto done;
    if (!(*out = report_doc(&a, against ? &b : NULL, cmp, ncmp))) {
        snprintf(err, errlen, "out of memory");
        rc = -ENOMEM;
    }
done:
    free(cmp);
    tda_analysis_free(&a);
    tda_analysis_free(&b);
    return rc < 0 ? rc : 0;
}

static int print_json(tss_store *st, const char *run, const char *against, double tol,
                      const tda_analyze_opts *o)
{
    char err[512];
    cJSON *root;
    if (tda_report_json(st, run, against, tol, o, &root, err, sizeof err) < 0) {
        fprintf(stderr, "trainscope report: %s\n", err);
        return 1;
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) {
        fprintf(stderr, "trainscope report: out of memory\n");
        return 1;
    }
    puts(text);
    free(text);
    return 0;
}

static void print_text(const tda_analysis *a, const tda_analysis *b, const tda_compare *c, size_t nc)
{
    printf("run %s  (%s, %" PRId64 " points)\n", a->display, a->run.status, a->run.points);
    double dur = a->t_last_ns > a->t_first_ns ? (double)(a->t_last_ns - a->t_first_ns) / 1e9 : 0;
    printf("steps %" PRId64 "..%" PRId64 " in %.1f s, %.3g steps/s\n\n", a->step_first, a->step_last, dur,
           a->steps_per_s);
    printf("%-32s %4s %8s %12s %12s %10s %12s %12s %6s\n", "metric", "rank", "points", "final", "best",
           "best step", "mean", "std", "nan");
    for (size_t i = 0; i < a->nmetrics; i++) {
        const tda_metric_stats *m = &a->metrics[i];
        printf("%-32s %4d %8" PRId64 " %12.6g %12.6g %10" PRId64 " %12.6g %12.6g %6" PRId64 "\n", m->name,
               m->rank, m->count, m->final, m->best, m->best_step, m->mean, m->std, m->n_nan + m->n_inf);
    }
    printf("\n%zu finding%s\n", a->nfindings, a->nfindings == 1 ? "" : "s");
    for (size_t i = 0; i < a->nfindings; i++) {
        const tda_finding *f = &a->findings[i];
        printf("  %-8s %-15s %-24s steps %" PRId64 "..%" PRId64 "  %s%s\n", tda_severity_name(f->severity),
               tda_kind_name(f->kind), *f->series ? f->series : "(run)", f->step_first, f->step_last,
               f->message, strcmp(a->source[i], "offline") ? "  [online]" : "");
    }
    if (!b)
        return;
    printf("\nagainst %s  (%s)\n", b->display, b->run.status);
    printf("%-32s %4s %8s %12s %12s %12s %14s\n", "metric", "rank", "common", "final", "against",
           "max |diff|", "diverges at");
    for (size_t i = 0; i < nc; i++) {
        char div[32] = "-";
        if (c[i].diverged)
            snprintf(div, sizeof div, "%" PRId64, c[i].diverge_step);
        printf("%-32s %4d %8" PRId64 " %12.6g %12.6g %12.4g %14s\n", c[i].name, c[i].rank, c[i].common_steps,
               c[i].final_a, c[i].final_b, c[i].max_abs_diff, div);
    }
}

/* ---- command line ------------------------------------------------------- */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: trainscope report STORE RUN [--json] [--against RUN2] [--detect RULE]...\n"
            "                         [--tolerance F] [--stall-s S] [--straggle F]\n"
            "\n"
            "Final and best values, steps per second, time span, per-metric statistics\n"
            "and the findings of the detectors (those the collector stored, and those a\n"
            "pass over the stored points finds now).\n"
            "\n"
            "  --json           the report as JSON (schema: docs/report-schema.md)\n"
            "  --against RUN2   compare with RUN2: per metric, final and best values, the\n"
            "                   largest difference, and the step where they diverge\n"
            "  --detect RULE    detector parameters for matching metrics, e.g.\n"
            "                   'train/loss:spike=8,window=256' or 'val/*:role=loss,plateau=500'\n"
            "                   (keys: role window spike explode drop drop_points diverge\n"
            "                   plateau nonfinite)\n"
            "  --tolerance F    relative difference that counts as diverged (default 0.05)\n"
            "  --stall-s S      seconds without data that count as a stall (default 60)\n"
            "  --straggle F     how much slower than the other ranks is a straggler (default 0.15)\n");
}

static int parse_pos(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v > 0) || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

int tda_report_main(int argc, char **argv)
{
    const char *pos[2] = {NULL, NULL}, *against = NULL;
    int npos = 0, json = 0, status = 1;
    double tol = 0.05;
    tda_rules rules = {0};
    tda_analyze_opts o;
    char err[512];
    tda_analyze_opts_init(&o);
    o.rules = &rules;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int needs = strcmp(a, "--against") == 0 || strcmp(a, "--detect") == 0 ||
                    strcmp(a, "--tolerance") == 0 || strcmp(a, "--stall-s") == 0 || strcmp(a, "--straggle") == 0;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (needs && i + 1 >= argc) {
            fprintf(stderr, "trainscope report: %s needs a value\n\n", a);
            usage(stderr);
            return 2;
        }
        if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (strcmp(a, "--against") == 0) {
            against = argv[++i];
        } else if (strcmp(a, "--detect") == 0) {
            if (tda_rules_add(&rules, argv[++i], err, sizeof err) < 0) {
                fprintf(stderr, "trainscope report: %s\n", err);
                return 2;
            }
        } else if (strcmp(a, "--tolerance") == 0 || strcmp(a, "--stall-s") == 0 || strcmp(a, "--straggle") == 0) {
            double *dst = strcmp(a, "--tolerance") == 0 ? &tol
                          : strcmp(a, "--stall-s") == 0 ? &o.stall_s : &o.straggle;
            if (parse_pos(argv[++i], dst) < 0) {
                fprintf(stderr, "trainscope report: %s wants a positive number, got '%s'\n", a, argv[i]);
                return 2;
            }
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "trainscope report: unknown option '%s'\n\n", a);
            usage(stderr);
            return 2;
        } else if (npos < 2) {
            pos[npos++] = a;
        } else {
            fprintf(stderr, "trainscope report: unexpected argument '%s'\n\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (npos < 2) {
        usage(stderr);
        return 2;
    }
    tss_store *st = NULL;
    tda_analysis a = {0}, b = {0};
    tda_compare *cmp = NULL;
    size_t ncmp = 0;
    int64_t ida, idb;
    if (tss_open(&st, pos[0], NULL, err, sizeof err) < 0) {
        fprintf(stderr, "trainscope report: %s\n", err);
        return 1;
    }
    if (json) {
        /* The one builder that the collector's `report` op and MCP share. */
        status = print_json(st, pos[1], against, tol, &o);
        goto done;
    }
    if (find_run(st, pos[1], &ida, err, sizeof err) < 0 ||
        (against && find_run(st, against, &idb, err, sizeof err) < 0) ||
        tda_analyze_run(st, ida, &o, &a, err, sizeof err) < 0 ||
        (against && (tda_analyze_run(st, idb, &o, &b, err, sizeof err) < 0 ||
                     tda_compare_runs(st, ida, idb, tol, &cmp, &ncmp, err, sizeof err) < 0))) {
        fprintf(stderr, "trainscope report: %s\n", err);
        goto done;
    }
    print_text(&a, against ? &b : NULL, cmp, ncmp);
    status = 0;
done:
    free(cmp);
    tda_analysis_free(&a);
    tda_analysis_free(&b);
    tss_close(st);
    return status;
}
