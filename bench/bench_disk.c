/* bench_disk.c - bytes per point on disk, step and time included, for a real
 * noisy loss curve, a smooth learning-rate schedule and an integer counter,
 * in a real store, beside the TensorBoard event file (TFRecord of Event
 * protos) that tensorboardX would write for the same points.
 *
 *   zcat /work/shared/data/pytorch-char-transformer-lr3e-2.csv.gz | bench_disk [--repeat R] [--dir D]
 *
 * Input: the CSV `step,wall_ns,metric,value` of a real run. Series:
 *   train/loss    the real loss (float32 values, noisy)
 *   train/lr      the real learning-rate schedule (float64, warmup + cosine)
 *   tokens_seen   an integer counter, 1024 tokens per step (16 x 64
 *                 characters, as in that run), at the loss's real times
 * Each series is the real run repeated R times back to back (default 400,
 * 1M points: steps and times continue, each copy starts one mean step
 * interval after the previous one ends), because a 2,500-point run is
 * smaller than a store's fixed cost. It is written into its own new store
 * through the store API (tss_append, a commit every 1000 points, as the
 * collector does every 50 ms) with the default millisecond time unit.
 * Reported: the chunk blobs' bytes per point, the groups column's (format 2:
 * sub-chunk M4 summaries), the whole file's (after the
 * writer closed, so the WAL is checkpointed; schema and empty store
 * included), and the same points written as a TensorBoard event file: one
 * TFRecord per point (length, masked CRC32C of it, the Event bytes, masked
 * CRC32C of them) holding Event{wall_time (s, double), step, summary {value
 * {tag, simple_value (float32)}}}, after the file_version record, exactly
 * as tensorboardX's add_scalar encodes them. The event file is written to D
 * and its size taken with stat. Every file is deleted at the end.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sqlite3.h>

#include "store.h"
#include "bench_util.h"

typedef struct series {
    const char *name;
    size_t n, cap;
    int64_t *step, *t_ns;
    double *value;
} series;

static int push(series *s, int64_t step, int64_t t_ns, double v)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 4096;
        int64_t *a = realloc(s->step, cap * sizeof *a);
        if (a)
            s->step = a;
        int64_t *b = realloc(s->t_ns, cap * sizeof *b);
        if (b)
            s->t_ns = b;
        double *c = realloc(s->value, cap * sizeof *c);
        if (c)
            s->value = c;
        if (!a || !b || !c)
            return -ENOMEM;
        s->cap = cap;
    }
    s->step[s->n] = step;
    s->t_ns[s->n] = t_ns;
    s->value[s->n] = v;
    s->n++;
    return 0;
}

/* Repeat the n points of s R times; steps and times continue. */
static int repeat(series *s, int r)
{
    size_t n = s->n;
    if (n < 2)
        return -EINVAL;
    int64_t dstep = s->step[n - 1] - s->step[0] + 1;
    int64_t gap = (s->t_ns[n - 1] - s->t_ns[0]) / (int64_t)(n - 1);
    int64_t dt = s->t_ns[n - 1] - s->t_ns[0] + gap;
    for (int k = 1; k < r; k++)
        for (size_t i = 0; i < n; i++)
            if (push(s, s->step[i] + k * dstep, s->t_ns[i] + k * dt, s->value[i]) < 0)
                return -ENOMEM;
    return 0;
}

/* ---- the store ---------------------------------------------------------- */

typedef struct sizes {
    double blob_bpp, file_bpp;
    double groups_bpp;      /* the groups table's blobs (format 2) */
    int64_t chunks;
} sizes;

static int store_size(const char *path, const series *s, sizes *out)
{
    tss_store *st;
    int64_t sid;
    int rc = bench_store_series("bench_disk", path, s->name, s->name, &st, &sid);
    if (rc < 0)
        return rc;
    for (size_t i = 0; rc >= 0 && i < s->n; i++) {
        rc = tss_append(st, sid, s->step[i], s->t_ns[i], s->value[i]);
        if (rc >= 0 && i % 1000 == 999)
            rc = tss_commit(st);
    }
    if (rc < 0)
        fprintf(stderr, "bench_disk: %s\n", tss_errmsg(st));
    int rc2 = tss_close(st);
    if (rc < 0 || rc2 < 0)
        return rc < 0 ? rc : rc2;

    /* The blob bytes, read with SQLite itself: nothing of ours in between. */
    sqlite3 *db;
    sqlite3_stmt *q = NULL;
    struct stat sb;
    rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, "SELECT sum(length(data)), sum(n), count(*) FROM chunks", -1, &q, NULL);
    if (rc == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW) {
        out->blob_bpp = (double)sqlite3_column_int64(q, 0) / (double)sqlite3_column_int64(q, 1);
        out->chunks = sqlite3_column_int64(q, 2);
        rc = sqlite3_column_int64(q, 1) == (int64_t)s->n ? 0 : -EIO;
    } else {
        rc = -EIO;
    }
    sqlite3_finalize(q);
    q = NULL;
    if (rc == 0 && sqlite3_prepare_v2(db, "SELECT COALESCE(sum(length(groups)), 0) FROM chunks", -1, &q, NULL) ==
                       SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
        out->groups_bpp = (double)sqlite3_column_int64(q, 0) / (double)s->n;
    sqlite3_finalize(q);
    sqlite3_close(db);
    if (rc == 0 && stat(path, &sb) == 0)
        out->file_bpp = (double)sb.st_size / (double)s->n;
    return rc;
}

/* ---- the TensorBoard event file -------------------------------------- */

static uint32_t crc_table[256];

static void crc32c_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        crc_table[i] = c;
    }
}

static uint32_t masked_crc32c(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++)
        c = crc_table[(c ^ p[i]) & 0xff] ^ (c >> 8);
    c ^= 0xffffffffu;
    return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

static size_t put_le(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
    return (size_t)bytes;
}

static int write_record(FILE *f, const uint8_t *data, size_t n)
{
    uint8_t head[12], tail[4];
    put_le(head, n, 8);
    put_le(head + 8, masked_crc32c(head, 8), 4);
    put_le(tail, masked_crc32c(data, n), 4);
    return fwrite(head, 1, 12, f) == 12 && fwrite(data, 1, n, f) == n && fwrite(tail, 1, 4, f) == 4 ? 0 : -EIO;
}

/* A length-delimited protobuf field: key byte, varint length, bytes. */
static size_t put_field(uint8_t *p, uint8_t key, const void *data, size_t n)
{
    size_t k = 0;
    p[k++] = key;
    k += put_varint(p + k, n);
    memcpy(p + k, data, n);
    return k + n;
}

/* Event field 1 wall_time (double, seconds), 2 step (int64; proto3 leaves
 * out 0), 3 file_version (string), 5 summary (Summary: 1 value (Value: 1 tag,
 * 2 simple_value float)). */
static size_t event_scalar(uint8_t *p, double wall_s, int64_t step, const char *tag, float v)
{
    uint8_t val[300], sum[310];
    size_t vn = put_field(val, 0x0a, tag, strlen(tag)), n = 0;
    uint64_t wb;
    uint32_t fb;
    val[vn++] = 0x15;
    memcpy(&fb, &v, 4);
    vn += put_le(val + vn, fb, 4);
    size_t sn = put_field(sum, 0x0a, val, vn);
    p[n++] = 0x09;
    memcpy(&wb, &wall_s, 8);
    n += put_le(p + n, wb, 8);
    if (step) {
        p[n++] = 0x10;
        n += put_varint(p + n, (uint64_t)step);
    }
    return n + put_field(p + n, 0x2a, sum, sn);
}

static int tfrecord_size(const char *path, const series *s, double *bpp)
{
    uint8_t buf[512];
    FILE *f = fopen(path, "wb");
    struct stat sb;
    int rc = f ? 0 : -errno;
    if (rc == 0) {
        static const char ver[] = "brain.Event:2";
        size_t n = 0;
        double w = (double)s->t_ns[0] / 1e9;
        uint64_t wb;
        buf[n++] = 0x09;
        memcpy(&wb, &w, 8);
        n += put_le(buf + n, wb, 8);
        n += put_field(buf + n, 0x1a, ver, sizeof ver - 1);
        rc = write_record(f, buf, n);
    }
    for (size_t i = 0; rc == 0 && i < s->n; i++) {
        size_t n = event_scalar(buf, (double)s->t_ns[i] / 1e9, s->step[i], s->name, (float)s->value[i]);
        rc = write_record(f, buf, n);
    }
    if (f && fclose(f) != 0 && rc == 0)
        rc = -EIO;
    if (rc == 0 && stat(path, &sb) == 0)
        *bpp = (double)sb.st_size / (double)s->n;
    unlink(path);
    return rc;
}

/* ---- main ----------------------------------------------------------------- */

static int read_csv(FILE *in, series *loss, series *lr, series *tokens)
{
    char line[512], metric[128];
    long long step, wall;
    double v;
    if (!fgets(line, sizeof line, in) || strncmp(line, "step,wall_ns,metric,value", 25) != 0)
        return -EINVAL;
    while (fgets(line, sizeof line, in)) {
        if (sscanf(line, "%lld,%lld,%127[^,],%lf", &step, &wall, metric, &v) != 4)
            return -EINVAL;
        if (!strcmp(metric, loss->name)) {
            if (push(loss, step, wall, v) < 0 || push(tokens, step, wall, (double)(step + 1) * 1024) < 0)
                return -ENOMEM;
        } else if (!strcmp(metric, lr->name) && push(lr, step, wall, v) < 0) {
            return -ENOMEM;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    int reps = 400;
    const char *dir = "/tmp";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--repeat")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dir")) dir = argv[i + 1];
        else {
            fprintf(stderr, "usage: bench_disk [--repeat R] [--dir D] < run.csv\n");
            return 2;
        }
    }
    if (reps < 1 || reps > 100000) {
        fprintf(stderr, "bench_disk: --repeat must be 1..100000\n");
        return 2;
    }
    series all[3] = {{.name = "train/loss"}, {.name = "train/lr"}, {.name = "tokens_seen"}};
    if (read_csv(stdin, &all[0], &all[1], &all[2]) < 0 || all[0].n < 2 || all[1].n < 2) {
        fprintf(stderr, "bench_disk: expected a CSV step,wall_ns,metric,value with train/loss and train/lr on stdin\n");
        return 1;
    }
    crc32c_init();
    size_t once = all[0].n;
    printf("%-12s %9s %7s %12s %12s %12s %14s\n", "series", "points", "chunks", "blob B/pt", "groups B/pt",
           "file B/pt", "TFRecord B/pt");
    int rc = 0;
    for (int i = 0; i < 3 && rc == 0; i++) {
        series *s = &all[i];
        char path[4096];
        sizes z = {0};
        double tf = 0;
        rc = repeat(s, reps);
        snprintf(path, sizeof path, "%s/trainscope-bench-disk-%ld.db", dir, (long)getpid());
        if (rc == 0) {
            bench_unlink_db(path);
            rc = store_size(path, s, &z);
            bench_unlink_db(path);
        }
        snprintf(path, sizeof path, "%s/trainscope-bench-disk-%ld.tfevents", dir, (long)getpid());
        if (rc == 0)
            rc = tfrecord_size(path, s, &tf);
        if (rc == 0)
            printf("%-12s %9zu %7" PRId64 " %12.3f %12.3f %12.3f %14.2f\n", s->name, s->n, z.chunks,
                   z.blob_bpp, z.groups_bpp, z.file_bpp, tf);
    }
    if (rc == 0)
        printf("(the real run has %zu points per series, repeated %d times; time unit 1 ms; "
               "TFRecord values are float32, so lossy for the schedule and the counter past 2^24)\n",
               once, reps);
    for (int i = 0; i < 3; i++) {
        free(all[i].step);
        free(all[i].t_ns);
        free(all[i].value);
    }
    if (rc < 0)
        fprintf(stderr, "bench_disk: failed: %s\n", strerror(-rc));
    return rc < 0 ? 1 : 0;
}
