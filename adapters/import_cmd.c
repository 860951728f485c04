/* import_cmd.c - `trainscope import tfevents|csv`: bring existing runs in.
 *
 *   trainscope import tfevents runs/ [--endpoint EP | --store FILE]
 *   trainscope import csv points.csv --run NAME
 *
 * tfevents: every file whose name contains "tfevents" under each PATH (a
 * directory, searched recursively, or a file) is read; the files of one
 * directory make one run, named by the directory relative to PATH (PATH's
 * own name for files directly in it), read in name order (the names start
 * with the creation time). Scalars (simple_value and numeric scalar
 * tensors) become points with their step and wall time (kept to the
 * microsecond: a double of seconds holds no more); file_version, graphs and
 * other records are skipped; damaged records are reported with file, offset
 * and what is wrong, skipped, and the rest imported (exit status 1 then).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adapters.h"
#include "csv_import.h"
#include "sink.h"
#include "tfevents.h"
#include "tfrecord.h"

static void import_usage(FILE *out)
{
    fprintf(out,
            "usage: trainscope import tfevents PATH... [options]\n"
            "       trainscope import csv FILE [--run NAME] [options]\n"
            "  --endpoint EP     publish to the collector at EP (default tcp://127.0.0.1:5557)\n"
            "  --store FILE      or write straight into a store no collector is writing\n"
            "  --run NAME        the run name (tfevents: for a single run; csv: required\n"
            "                    unless the file has a run column)\n"
            "  --project P       the runs' project\n"
            "  --timeout-ms N    how long to wait for the collector's acknowledgements (default 60000)\n"
            "tfevents: one run per directory, named by its path below PATH.\n"
            "csv: long (metric,step,value[,run,rank,wall_ns]) or wide (step,A,B,...) layout.\n");
}

/* ---- finding event files ------------------------------------------------ */

typedef struct evfile {
    char *run;     /* run name */
    char *path;
} evfile;

typedef struct evlist {
    evfile *v;
    size_t n, cap;
} evlist;

static int add_file(evlist *l, const char *run, const char *path)
{
    if (l->n == l->cap) {
        size_t ncap = l->cap ? 2 * l->cap : 16;
        evfile *g = realloc(l->v, ncap * sizeof *g);
        if (!g)
            return -1;
        l->v = g;
        l->cap = ncap;
    }
    l->v[l->n].run = strdup(run);
    l->v[l->n].path = strdup(path);
    if (!l->v[l->n].run || !l->v[l->n].path) {
        free(l->v[l->n].run);
        free(l->v[l->n].path);
        return -1;
    }
    l->n++;
    return 0;
}

static const char *base_name(const char *path, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", path);
    size_t n = strlen(buf);
    while (n > 1 && buf[n - 1] == '/')
        buf[--n] = 0;
    const char *slash = strrchr(buf, '/');
    return slash && slash[1] ? slash + 1 : buf;
}

/* Walks dir (rel is its path below the root, "" for the root). */
static int walk(evlist *l, const char *dir, const char *rel, const char *root_name, int depth)
{
    if (depth > 64)
        return 0;
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "trainscope import: cannot read directory %s: %s\n", dir, strerror(errno));
        return -1;
    }
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[PATH_MAX], sub[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path)
            continue;
        struct stat st;
        if (stat(path, &st) < 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            snprintf(sub, sizeof sub, "%s%s%s", rel, rel[0] ? "/" : "", e->d_name);
            rc = walk(l, path, sub, root_name, depth + 1);
        } else if (S_ISREG(st.st_mode) && strstr(e->d_name, "tfevents")) {
            rc = add_file(l, rel[0] ? rel : root_name, path);
        }
    }
    closedir(d);
    return rc;
}

static int cmp_files(const void *a, const void *b)
{
    const evfile *x = a, *y = b;
    int c = strcmp(x->run, y->run);
    return c ? c : strcmp(x->path, y->path);
}

/* ---- reading them ------------------------------------------------------- */

typedef struct import_ctx {
    tad_sink *sink;
    uint64_t points;
    int failed;
    char err[1024];
} import_ctx;

static int on_scalar(void *vctx, const tad_event *ev, const char *tag, size_t tag_len, double v)
{
    import_ctx *c = vctx;
    char name[1024];
    if (tag_len >= sizeof name) {
        fprintf(stderr, "trainscope import: a tag of %zu bytes is too long; skipped\n", tag_len);
        return 0;
    }
    memcpy(name, tag, tag_len);
    name[tag_len] = 0;
    /* Microseconds: all a double of Unix seconds resolves; rounding there
     * gives back exactly the time an exporter wrote. */
    int64_t t_ns = ev->wall_time > 0 ? (int64_t)llround(ev->wall_time * 1e6) * 1000 : 0;
    if (tad_sink_log(c->sink, name, ev->step, t_ns, v, c->err, sizeof c->err) < 0) {
        c->failed = 1;
        return 1;
    }
    c->points++;
    return 0;
}

typedef struct file_stats {
    uint64_t records, corrupt, skipped_values;
} file_stats;

/* -1 when the sink failed (stop everything); damage is counted in fs. */
static int import_file(import_ctx *c, const char *path, file_stats *fs)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "trainscope import: cannot open %s: %s\n", path, strerror(errno));
        fs->corrupt++;
        return 0;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || st.st_size == 0) {
        close(fd);
        return 0;
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        fprintf(stderr, "trainscope import: cannot map %s: %s\n", path, strerror(errno));
        fs->corrupt++;
        return 0;
    }
    tad_tfr_reader r = {map, (size_t)st.st_size, 0};
    const uint8_t *data;
    size_t len, off;
    char why[256];
    int rc = 0, k;
    while ((k = tad_tfr_next(&r, &data, &len, &off, why, sizeof why)) != TAD_TFR_END) {
        if (k == TAD_TFR_CORRUPT) {
            fprintf(stderr, "trainscope import: %s: offset %zu: %s\n", path, off, why);
            fs->corrupt++;
            continue;
        }
        fs->records++;
        tad_event ev;
        int d = tad_event_decode(data, len, &ev, on_scalar, c, why, sizeof why);
        if (c->failed) {
            fprintf(stderr, "trainscope import: %s\n", c->err);
            rc = -1;
            break;
        }
        if (d < 0) {
            fprintf(stderr, "trainscope import: %s: offset %zu: record with valid checksums but %s; skipped\n",
                    path, off, why);
            fs->corrupt++;
            continue;
        }
        fs->skipped_values += ev.skipped;
    }
    munmap(map, (size_t)st.st_size);
    return rc;
}

static int import_tfevents(const tad_sink_opts *so, char **paths, int npaths, const char *run_opt)
{
    evlist l = {0};
    int status = 1;
    tad_sink *sink = NULL;
    for (int i = 0; i < npaths; i++) {
        struct stat st;
        char bn[PATH_MAX];
        if (stat(paths[i], &st) < 0) {
            fprintf(stderr, "trainscope import: %s: %s\n", paths[i], strerror(errno));
            goto out;
        }
        if (S_ISDIR(st.st_mode)) {
            if (walk(&l, paths[i], "", base_name(paths[i], bn, sizeof bn), 0) < 0)
                goto out;
        } else {
            char dir[PATH_MAX];
            snprintf(dir, sizeof dir, "%s", paths[i]);
            char *slash = strrchr(dir, '/');
            if (slash)
                *slash = 0;
            else
                snprintf(dir, sizeof dir, ".");
            char cwd[PATH_MAX];
            const char *d = strcmp(dir, ".") == 0 && getcwd(cwd, sizeof cwd) ? cwd : dir;
            if (add_file(&l, base_name(d, bn, sizeof bn), paths[i]) < 0)
                goto oom;
        }
    }
    if (l.n == 0) {
        fprintf(stderr, "trainscope import: no event files (names containing 'tfevents') under the given paths\n");
        goto out;
    }
    qsort(l.v, l.n, sizeof *l.v, cmp_files);
    size_t nruns = 0;
    for (size_t i = 0; i < l.n; i++)
        nruns += i == 0 || strcmp(l.v[i].run, l.v[i - 1].run) != 0;
    char err[1024];
    sink = tad_sink_open(so, err, sizeof err);
    if (!sink) {
        fprintf(stderr, "trainscope import: %s\n", err);
        goto out;
    }
    uint64_t total_corrupt = 0;
    for (size_t i = 0; i < l.n;) {
        size_t j = i;
        while (j < l.n && strcmp(l.v[j].run, l.v[i].run) == 0)
            j++;
        char name[PATH_MAX + 600];
        if (run_opt && nruns == 1)
            snprintf(name, sizeof name, "%s", run_opt);
        else if (run_opt)
            snprintf(name, sizeof name, "%s/%s", run_opt, l.v[i].run);
        else
            snprintf(name, sizeof name, "%s", l.v[i].run);
        import_ctx c = {.sink = sink};
        file_stats fs = {0};
        if (tad_sink_begin(sink, name, 0, 1, err, sizeof err) < 0) {
            fprintf(stderr, "trainscope import: %s\n", err);
            goto out;
        }
        for (size_t k = i; k < j; k++)
            if (import_file(&c, l.v[k].path, &fs) < 0)
                goto out;
        if (tad_sink_end(sink, "finished", err, sizeof err) < 0) {
            fprintf(stderr, "trainscope import: %s\n", err);
            goto out;
        }
        fprintf(stderr,
                "trainscope import: run '%s': %" PRIu64 " points from %zu file%s, %" PRIu64
                " records%s",
                name, c.points, j - i, j - i == 1 ? "" : "s", fs.records,
                fs.corrupt || fs.skipped_values ? "" : "\n");
        if (fs.corrupt || fs.skipped_values)
            fprintf(stderr, " (%" PRIu64 " damaged records skipped, %" PRIu64
                            " non-scalar values skipped)\n",
                    fs.corrupt, fs.skipped_values);
        total_corrupt += fs.corrupt;
        i = j;
    }
    if (total_corrupt)
        fprintf(stderr, "trainscope import: %" PRIu64 " damaged record%s skipped (listed above); everything else was imported\n",
                total_corrupt, total_corrupt == 1 ? "" : "s");
    status = total_corrupt ? 1 : 0;
    goto out;
oom:
    fprintf(stderr, "trainscope import: out of memory\n");
out:
    tad_sink_close(sink);
    for (size_t i = 0; i < l.n; i++) {
        free(l.v[i].run);
        free(l.v[i].path);
    }
    free(l.v);
    return status;
}

int tad_import_main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"endpoint", required_argument, NULL, 'e'}, {"store", required_argument, NULL, 's'},
        {"run", required_argument, NULL, 'r'},      {"project", required_argument, NULL, 'P'},
        {"timeout-ms", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    tad_sink_opts so = {.timeout_ms = 60000, .connect_ms = 5000};
    const char *run = NULL;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'e': so.endpoint = optarg; break;
        case 's': so.store = optarg; break;
        case 'r': run = optarg; break;
        case 'P': so.project = optarg; break;
        case 't': {
            char *e;
            long v = strtol(optarg, &e, 10);
            if (e == optarg || *e || v < -1 || v > 100000000) {
                fprintf(stderr, "trainscope import: --timeout-ms needs a number of ms, not '%s'\n", optarg);
                return 2;
            }
            so.timeout_ms = (int)v;
            break;
        }
        case 'h': import_usage(stdout); return 0;
        default:
            fprintf(stderr, "trainscope import: unknown option or missing value: %s\n",
                    argv[optind - 1]);
            import_usage(stderr);
            return 2;
        }
    }
    if (so.endpoint && so.store) {
        fprintf(stderr, "trainscope import: --endpoint and --store exclude each other: publish to a collector, or write a store no collector is writing\n");
        return 2;
    }
    if (argc - optind < 2) {
        import_usage(stderr);
        return 2;
    }
    const char *kind = argv[optind];
    if (strcmp(kind, "tfevents") == 0)
        return import_tfevents(&so, argv + optind + 1, argc - optind - 1, run);
    if (strcmp(kind, "csv") == 0) {
        if (argc - optind != 2) {
            fprintf(stderr, "trainscope import csv: one FILE at a time\n");
            return 2;
        }
        return tad_import_csv(&so, argv[optind + 1], run);
    }
    fprintf(stderr, "trainscope import: unknown kind '%s' (use tfevents or csv)\n", kind);
    import_usage(stderr);
    return 2;
}
