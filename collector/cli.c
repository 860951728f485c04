/* cli.c - `trainscope ls | show | export`: read a store and print it.
 *
 * These commands open the store read-only through store.h, so they work on a
 * store that a collector is writing at the same moment, and on a copy days
 * later. Exported values are printed so that parsing them gives back the same
 * 64 bits (see tcli_format_double).
 */
#include "cli.h"

#include <errno.h>
#include <fnmatch.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "adapters.h"
#include "store.h"

#define CANONICAL_NAN 0x7ff8000000000000ull

size_t tcli_format_double(char *buf, size_t cap, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    int n;
    if (isnan(v)) {
        const char *sign = (bits >> 63) ? "-" : "";
        uint64_t mant = bits & 0x000fffffffffffffull;
        if ((bits & ~(1ull << 63)) == CANONICAL_NAN)
            n = snprintf(buf, cap, "%snan", sign);
        else
            n = snprintf(buf, cap, "%snan(0x%" PRIx64 ")", sign, mant);
    } else if (isinf(v)) {
        n = snprintf(buf, cap, v < 0 ? "-inf" : "inf");
    } else {
        /* The shortest precision that survives a round trip keeps exports
         * readable (0.1, not 0.10000000000000001) without losing a bit. */
        n = 0;
        for (int prec = 15; prec <= 17; prec++) {
            n = snprintf(buf, cap, "%.*g", prec, v);
            if (strtod(buf, NULL) == v)
                break;
        }
    }
    return n < 0 ? 0 : (size_t)n;
}

static tss_store *open_reader(const char *path)
{
    tss_open_opts opts = {0};
    tss_store *st = NULL;
    char err[512];
    if (tss_open(&st, path, &opts, err, sizeof err) < 0) {
        fprintf(stderr, "trainscope: %s\n", err);
        return NULL;
    }
    return st;
}

static int find_run(tss_store *st, const char *store_path, const char *name, int64_t *run_id)
{
    int rc = tss_find_run(st, name, run_id);
    if (rc == -ENOENT)
        fprintf(stderr, "trainscope: no run named '%s' in %s (see `trainscope ls %s`)\n",
                name, store_path, store_path);
    else if (rc < 0)
        fprintf(stderr, "trainscope: %s\n", tss_errmsg(st));
    return rc;
}

static void format_time(char *buf, size_t cap, int64_t t_ns)
{
    if (t_ns <= 0) {
        snprintf(buf, cap, "-");
        return;
    }
    time_t secs = (time_t)(t_ns / 1000000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(buf, cap, "%Y-%m-%d %H:%M:%SZ", &tm);
}

static void format_duration(char *buf, size_t cap, int64_t ns)
{
    double s = (double)ns / 1e9;
    if (s < 120)
        snprintf(buf, cap, "%.1fs", s);
    else if (s < 7200)
        snprintf(buf, cap, "%.1fm", s / 60);
    else
        snprintf(buf, cap, "%.1fh", s / 3600);
}

static const char *run_label(const tss_run *r, char *buf, size_t cap)
{
    if (r->project[0])
        snprintf(buf, cap, "%s/%s", r->project, r->name);
    else
        snprintf(buf, cap, "%s", r->name);
    return buf;
}

int tcli_ls_main(int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: trainscope ls STORE\n");
        return 2;
    }
    tss_store *st = open_reader(argv[1]);
    if (!st)
        return 1;
    tss_run *runs = NULL;
    size_t n = 0;
    int status = 1;
    if (tss_list_runs(st, &runs, &n) < 0) {
        fprintf(stderr, "trainscope: %s\n", tss_errmsg(st));
        goto out;
    }
    if (n == 0) {
        printf("no runs in %s\n", argv[1]);
        status = 0;
        goto out;
    }
    printf("%-32s %-9s %7s %12s %8s  %-20s %9s\n", "RUN", "STATUS", "SERIES", "POINTS", "DROPPED",
           "STARTED", "DURATION");
    for (size_t i = 0; i < n; i++) {
        char label[1100], started[32], dur[32];
        const tss_run *r = &runs[i];
        int64_t end = r->ended_ns ? r->ended_ns : r->updated_ns;
        format_time(started, sizeof started, r->created_ns);
        format_duration(dur, sizeof dur, end - r->created_ns);
        printf("%-32s %-9s %7" PRId64 " %12" PRId64 " %8" PRId64 "  %-20s %9s\n",
               run_label(r, label, sizeof label), r->status, r->series, r->points, r->dropped,
               started, dur);
    }
    status = 0;
out:
    tss_free_runs(runs, n);
    tss_close(st);
    return status;
}

static const tss_run *run_by_id(const tss_run *runs, size_t n, int64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (runs[i].id == id)
            return &runs[i];
    return NULL;
}

static void show_header(const tss_run *r)
{
    char label[1100], started[32], ended[32], dur[32];
    int64_t end = r->ended_ns ? r->ended_ns : r->updated_ns;
    format_time(started, sizeof started, r->created_ns);
    format_time(ended, sizeof ended, r->ended_ns);
    format_duration(dur, sizeof dur, end - r->created_ns);
    printf("run        %s\n", run_label(r, label, sizeof label));
    printf("status     %s\n", r->status);
    printf("started    %s\n", started);
    printf("ended      %s\n", r->ended_ns ? ended : "(still running or never said goodbye)");
    printf("span       %s\n", dur);
    printf("world size %d\n", r->world_size);
    printf("points     %" PRId64 " in %" PRId64 " series\n", r->points, r->series);
    printf("dropped    %" PRId64 "%s\n", r->dropped,
           r->dropped ? " (publisher buffer was full; gaps listed below)" : "");
    printf("resumes    %" PRId64 "\n", r->resumes);
    printf("config     %s\n", r->config && r->config[0] ? r->config : "{}");
}

static void show_series(const tss_series *s, size_t n)
{
    printf("\n%-40s %4s %10s %21s %13s %13s %6s %6s\n", "METRIC", "RANK", "POINTS", "STEPS",
           "MIN", "MAX", "NAN", "INF");
    for (size_t i = 0; i < n; i++) {
        char steps[48], mn[40], mx[40];
        snprintf(steps, sizeof steps, "%" PRId64 "..%" PRId64, s[i].step_first, s[i].step_last);
        snprintf(mn, sizeof mn, "%.6g", s[i].vmin);
        snprintf(mx, sizeof mx, "%.6g", s[i].vmax);
        printf("%-40s %4d %10" PRId64 " %21s %13s %13s %6" PRId64 " %6" PRId64 "%s\n", s[i].name,
               s[i].rank, s[i].count, steps, mn, mx, s[i].n_nan, s[i].n_inf,
               s[i].generations > 1 ? "  (resumed)" : "");
    }
}

static int show_events_and_gaps(tss_store *st, int64_t run_id)
{
    tss_event *ev = NULL;
    tss_gap *gaps = NULL;
    size_t nev = 0, ngaps = 0;
    int rc = tss_list_events(st, run_id, &ev, &nev);
    if (rc < 0)
        goto out;
    rc = tss_list_gaps(st, run_id, &gaps, &ngaps);
    if (rc < 0)
        goto out;
    if (ngaps) {
        printf("\ngaps (samples dropped by the publisher)\n");
        for (size_t i = 0; i < ngaps; i++)
            printf("  rank %d: %" PRId64 " samples, steps %" PRId64 "..%" PRId64 "\n", gaps[i].rank,
                   gaps[i].count, gaps[i].step_first, gaps[i].step_last);
    }
    if (nev) {
        printf("\nevents\n");
        for (size_t i = 0; i < nev; i++)
            printf("  step %-10" PRId64 " rank %-3d %-12s %s\n", ev[i].step, ev[i].rank, ev[i].kind,
                   ev[i].text);
    }
out:
    if (rc < 0)
        fprintf(stderr, "trainscope: %s\n", tss_errmsg(st));
    tss_free_events(ev, nev);
    tss_free_gaps(gaps);
    return rc;
}

int tcli_show_main(int argc, char **argv)
{
    if (argc != 3 || argv[1][0] == '-') {
        fprintf(stderr, "usage: trainscope show STORE RUN\n");
        return 2;
    }
    tss_store *st = open_reader(argv[1]);
    if (!st)
        return 1;
    int status = 1;
    tss_run *runs = NULL;
    tss_series *series = NULL;
    size_t nruns = 0, nseries = 0;
    int64_t run_id;
    if (find_run(st, argv[1], argv[2], &run_id) < 0)
        goto out;
    if (tss_list_runs(st, &runs, &nruns) < 0 || tss_list_series(st, run_id, &series, &nseries) < 0) {
        fprintf(stderr, "trainscope: %s\n", tss_errmsg(st));
        goto out;
    }
    const tss_run *r = run_by_id(runs, nruns, run_id);
    if (!r)
        goto out;
    show_header(r);
    show_series(series, nseries);
    if (show_events_and_gaps(st, run_id) < 0)
        goto out;
    status = 0;
out:
    tss_free_series(series, nseries);
    tss_free_runs(runs, nruns);
    tss_close(st);
    return status;
}

enum export_format { EXPORT_CSV, EXPORT_JSONL };

/* A string as a CSV field: quoted (with doubled quotes) only when needed. */
static void csv_field(FILE *out, const char *s)
{
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

/* A string as a JSON string literal. Names are valid UTF-8 (the collector
 * checks), so only quotes, backslashes and control characters need escapes. */
static void json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c < 0x20)
            fprintf(out, "\\u%04x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

static void export_point(FILE *out, enum export_format fmt, const char *run, const tss_series *s,
                         const tss_point *p, int all_timelines)
{
    char val[64];
    tcli_format_double(val, sizeof val, p->value);
    if (fmt == EXPORT_CSV) {
        csv_field(out, run);
        fputc(',', out);
        csv_field(out, s->name);
        fprintf(out, ",%d,%" PRId64 ",%" PRId64 ",%s", s->rank, p->step, p->t_ns, val);
        if (all_timelines)
            fprintf(out, ",%d", p->generation);
        fputc('\n', out);
        return;
    }
    fputs("{\"run\":", out);
    json_string(out, run);
    fputs(",\"metric\":", out);
    json_string(out, s->name);
    /* JSON has no NaN or infinity: those values travel as strings. */
    int finite = isfinite(p->value);
    fprintf(out, ",\"rank\":%d,\"step\":%" PRId64 ",\"t_ns\":%" PRId64 ",\"value\":%s%s%s", s->rank,
            p->step, p->t_ns, finite ? "" : "\"", val, finite ? "" : "\"");
    if (all_timelines)
        fprintf(out, ",\"timeline\":%d", p->generation);
    fputs("}\n", out);
}

static void export_usage(void)
{
    fprintf(stderr,
            "usage: trainscope export STORE RUN [--metric GLOB] [--format csv|jsonl] [--all-timelines]\n"
            "  --metric GLOB     only metrics whose name matches (shell glob, e.g. 'train/*')\n"
            "  --format F        csv (default) or jsonl; tfevents: see --format tfevents --help\n"
            "  --all-timelines   include points superseded by a resume, with their timeline\n");
}

int tcli_export_main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"metric", required_argument, NULL, 'm'},
        {"format", required_argument, NULL, 'f'},
        {"all-timelines", no_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    if (tad_export_wants_tfevents(argc, argv))
        return tad_export_tfevents_main(argc, argv);
    const char *glob = NULL;
    enum export_format fmt = EXPORT_CSV;
    int all = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': glob = optarg; break;
        case 'a': all = 1; break;
        case 'f':
            if (strcmp(optarg, "csv") == 0) {
                fmt = EXPORT_CSV;
            } else if (strcmp(optarg, "jsonl") == 0) {
                fmt = EXPORT_JSONL;
            } else {
                fprintf(stderr, "trainscope export: unknown format '%s' (use csv, jsonl or tfevents)\n", optarg);
                return 2;
            }
            break;
        case 'h': export_usage(); return 0;
        default:
            fprintf(stderr, "trainscope export: unknown option or missing value: %s\n",
                    argv[optind - 1]);
            export_usage();
            return 2;
        }
    }
    if (argc - optind != 2) {
        export_usage();
        return 2;
    }
    const char *path = argv[optind], *run = argv[optind + 1];
    tss_store *st = open_reader(path);
    if (!st)
        return 1;
    int status = 1;
    tss_series *series = NULL;
    size_t nseries = 0;
    int64_t run_id;
    if (find_run(st, path, run, &run_id) < 0)
        goto out;
    if (tss_list_series(st, run_id, &series, &nseries) < 0) {
        fprintf(stderr, "trainscope: %s\n", tss_errmsg(st));
        goto out;
    }
    if (fmt == EXPORT_CSV)
        printf("run,metric,rank,step,wall_ns,value%s\n", all ? ",timeline" : "");
    for (size_t i = 0; i < nseries; i++) {
        if (glob && fnmatch(glob, series[i].name, 0) != 0)
            continue;
        tss_point *pts = NULL;
        size_t npts = 0;
        if (tss_read_points(st, series[i].id, INT64_MIN, INT64_MAX, all ? TSS_ALL_TIMELINES : 0,
                            &pts, &npts) < 0) {
            fprintf(stderr, "trainscope: %s\n", tss_errmsg(st));
            free(pts);
            goto out;
        }
        for (size_t k = 0; k < npts; k++)
            export_point(stdout, fmt, run, &series[i], &pts[k], all);
        free(pts);
    }
    if (fflush(stdout) != 0) {
        fprintf(stderr, "trainscope export: writing the output failed: %s\n", strerror(errno));
        goto out;
    }
    status = 0;
out:
    tss_free_series(series, nseries);
    tss_close(st);
    return status;
}
