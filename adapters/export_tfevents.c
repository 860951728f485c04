/* export_tfevents.c - `trainscope export STORE RUN --format tfevents --out DIR`:
 * a run as a TensorBoard event file, so nobody is locked in.
 *
 * DIR/events.out.tfevents.<secs>.<host> starts with the file_version record
 * TensorBoard expects, then one Event per point (wall_time, step, one
 * summary value). Values are written as DT_DOUBLE scalar tensors of the
 * "scalars" plugin, which TensorBoard plots like simple_value, so that
 * `trainscope import tfevents` gives back the same 64 bits; --simple-value
 * writes float32 simple_value instead (for readers that know nothing else;
 * lossy). Metrics of rank r > 0 get the tag NAME/rank<r>.
 */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "adapters.h"
#include "store.h"
#include "tfevents.h"
#include "tfrecord.h"

int tad_export_wants_tfevents(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--format=tfevents") == 0)
            return 1;
        if (strcmp(argv[i], "--format") == 0 && i + 1 < argc && strcmp(argv[i + 1], "tfevents") == 0)
            return 1;
    }
    return 0;
}

static void export_usage(FILE *out)
{
    fprintf(out,
            "usage: trainscope export STORE RUN --format tfevents --out DIR [--metric GLOB] [--simple-value]\n"
            "  --out DIR         where the event file goes (created if missing)\n"
            "  --metric GLOB     only metrics whose name matches\n"
            "  --simple-value    float32 simple_value instead of exact double tensors\n");
}

/* Creates DIR/events.out.tfevents.<secs>.<host>[.<n>] exclusively. */
static FILE *create_event_file(const char *dir, char *path, size_t cap)
{
    if (mkdir(dir, 0777) < 0 && errno != EEXIST) {
        fprintf(stderr, "trainscope export: cannot create %s: %s\n", dir, strerror(errno));
        return NULL;
    }
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = 0;
    long secs = (long)time(NULL);
    for (int n = 0; n < 1000; n++) {
        if (n == 0)
            snprintf(path, cap, "%s/events.out.tfevents.%ld.%s", dir, secs, host);
        else
            snprintf(path, cap, "%s/events.out.tfevents.%ld.%s.%d", dir, secs, host, n);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0) {
            FILE *f = fdopen(fd, "wb");
            if (!f)
                close(fd);
            return f;
        }
        if (errno != EEXIST) {
            fprintf(stderr, "trainscope export: cannot create %s: %s\n", path, strerror(errno));
            return NULL;
        }
    }
    fprintf(stderr, "trainscope export: %s has too many event files of this second\n", dir);
    return NULL;
}

static int write_series(FILE *f, tss_store *st, const tss_series *s, int simple, uint64_t *count)
{
    tss_point *pts = NULL;
    size_t n = 0;
    if (tss_read_points(st, s->id, INT64_MIN, INT64_MAX, 0, &pts, &n) < 0) {
        fprintf(stderr, "trainscope export: %s\n", tss_errmsg(st));
        return -1;
    }
    char tag[1100];
    if (s->rank > 0)
        snprintf(tag, sizeof tag, "%s/rank%d", s->name, s->rank);
    else
        snprintf(tag, sizeof tag, "%s", s->name);
    uint8_t rec[2400];
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = tad_event_encode_scalar(rec, sizeof rec, (double)pts[i].t_ns / 1e9,
                                             pts[i].step, tag, pts[i].value, simple);
        if (len == 0 || tad_tfr_write(f, rec, len) < 0) {
            fprintf(stderr, "trainscope export: writing failed: %s\n",
                    len ? strerror(errno) : "tag too long");
            rc = -1;
            break;
        }
        (*count)++;
    }
    free(pts);
    return rc;
}

int tad_export_tfevents_main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"format", required_argument, NULL, 'f'}, {"out", required_argument, NULL, 'o'},
        {"metric", required_argument, NULL, 'm'}, {"simple-value", no_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    const char *out_dir = NULL, *glob = NULL;
    int simple = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'f':
            if (strcmp(optarg, "tfevents") != 0) {
                fprintf(stderr, "trainscope export: --format %s does not go with tfevents options\n", optarg);
                return 2;
            }
            break;
        case 'o': out_dir = optarg; break;
        case 'm': glob = optarg; break;
        case 's': simple = 1; break;
        case 'h': export_usage(stdout); return 0;
        default:
            fprintf(stderr, "trainscope export: unknown option or missing value: %s\n",
                    argv[optind - 1]);
            export_usage(stderr);
            return 2;
        }
    }
    if (argc - optind != 2) {
        export_usage(stderr);
        return 2;
    }
    if (!out_dir) {
        fprintf(stderr, "trainscope export: --format tfevents needs --out DIR (TensorBoard reads a directory)\n");
        return 2;
    }
    const char *store_path = argv[optind], *run = argv[optind + 1];
    tss_store *st = NULL;
    tss_series *series = NULL;
    size_t nseries = 0;
    FILE *f = NULL;
    int status = 1;
    char err[512], path[PATH_MAX + 600];
    tss_open_opts ro = {0};
    if (tss_open(&st, store_path, &ro, err, sizeof err) < 0) {
        fprintf(stderr, "trainscope: %s\n", err);
        return 1;
    }
    int64_t run_id;
    int rc = tss_find_run(st, run, &run_id);
    if (rc < 0) {
        if (rc == -ENOENT)
            fprintf(stderr, "trainscope: no run named '%s' in %s (see `trainscope ls %s`)\n", run,
                    store_path, store_path);
        else
            fprintf(stderr, "trainscope: %s\n", tss_errmsg(st));
        goto out;
    }
    if (tss_list_series(st, run_id, &series, &nseries) < 0) {
        fprintf(stderr, "trainscope: %s\n", tss_errmsg(st));
        goto out;
    }
    f = create_event_file(out_dir, path, sizeof path);
    if (!f)
        goto out;
    uint8_t rec[64];
    size_t len = tad_event_encode_file_version(rec, sizeof rec, (double)time(NULL));
    if (tad_tfr_write(f, rec, len) < 0) {
        fprintf(stderr, "trainscope export: writing %s failed: %s\n", path, strerror(errno));
        goto out;
    }
    uint64_t count = 0;
    for (size_t i = 0; i < nseries; i++) {
        if (glob && fnmatch(glob, series[i].name, 0) != 0)
            continue;
        if (write_series(f, st, &series[i], simple, &count) < 0)
            goto out;
    }
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        fprintf(stderr, "trainscope export: writing %s failed: %s\n", path, strerror(errno));
        goto out;
    }
    printf("%s: %" PRIu64 " scalars\n", path, count);
    status = 0;
out:
    if (f && fclose(f) != 0 && status == 0) {
        fprintf(stderr, "trainscope export: closing %s failed: %s\n", path, strerror(errno));
        status = 1;
    }
    tss_free_series(series, nseries);
    tss_close(st);
    return status;
}
