/* bench_adapters.c - what adapters/ costs per line and per record, in memory
 * (no collector, no disk): the parse time of one real line of each
 * `trainscope tail` format, CRC-32C throughput, and TFRecord + Event decoding
 * of an exported event file (what `trainscope import tfevents` does before
 * publishing).
 *
 *   build/bench/bench_adapters [ITERATIONS]    default 1000000
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "formats.h"
#include "tfevents.h"
#include "tfrecord.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const struct {
    const char *format, *line;
} LINES[] = {
    {"nanogpt", "iter 100: loss 2.3456, time 31.20ms, mfu 12.34%"},
    {"llmc", "step   42/74 | loss 3.512345 (+0.12z)| norm 1.2345 (+0.50z)| lr 6.00e-04 | 123.45 ms | 42.2% bf16 MFU | 12345 tok/s"},
    {"hf", "{'loss': 2.31, 'grad_norm': 1.2, 'learning_rate': 5e-05, 'epoch': 0.1}"},
    {"modded-nanogpt", "step:125/7500 val_loss:4.5156 train_time:25705ms step_avg:223.52ms"},
    {"kv", "2024-05-01 12:00:01,456 INFO step=100 loss=2.3142 lr=3e-4 throughput=1234.5tok/s"},
    {"pattern", "Epoch 1 | batch 50 | global 150 | avg loss 0.6931 | acc 51.2%"},
};

static int count_scalar(void *ctx, const tad_event *ev, const char *tag, size_t len, double v)
{
    *(double *)ctx += v;
    return 0;
}

int main(int argc, char **argv)
{
    long iters = argc > 1 ? atol(argv[1]) : 1000000;
    char err[256];
    printf("bench_adapters: %ld iterations\n\n", iters);
    printf("%-16s %10s %8s\n", "format", "ns/line", "points");
    for (size_t f = 0; f < sizeof LINES / sizeof LINES[0]; f++) {
        tad_parser *p = tad_parser_new(LINES[f].format, 1, err, sizeof err);
        if (f == 5)
            tad_parser_add_pattern(p, "global (?<step>\\d+) \\| avg loss (?<loss>[0-9.]+) \\| acc (?<acc>[\\d.]+)%",
                                   err, sizeof err);
        tad_sample s[TAD_MAX_SAMPLES];
        int64_t step;
        int n = 0;
        double t0 = now_s();
        for (long i = 0; i < iters; i++)
            n = tad_parse_line(p, LINES[f].line, &step, s, TAD_MAX_SAMPLES);
        double dt = now_s() - t0;
        printf("%-16s %10.0f %8d\n", LINES[f].format, dt / (double)iters * 1e9, n);
        tad_parser_free(p);
    }

    size_t mb = 64;
    uint8_t *buf = malloc(mb << 20);
    for (size_t i = 0; i < (mb << 20); i++)
        buf[i] = (uint8_t)(i * 2654435761u >> 13);
    double t0 = now_s();
    uint32_t crc = tad_crc32c(0, buf, mb << 20);
    double dt = now_s() - t0;
    printf("\ncrc32c: %.2f GB/s (%08x)\n", (double)(mb << 20) / dt / 1e9, crc);

    /* An exported event file in memory: one scalar per record. */
    size_t cap = (size_t)iters * 96 + 64, used = 0;
    uint8_t *file = malloc(cap);
    FILE *mem = fmemopen(file, cap, "wb");
    uint8_t rec[256];
    for (long i = 0; i < iters; i++) {
        size_t len = tad_event_encode_scalar(rec, sizeof rec, 1.7e9 + (double)i, i, "train/loss",
                                             1.0 / (double)(i + 1), 0);
        tad_tfr_write(mem, rec, len);
    }
    fflush(mem);
    used = (size_t)ftell(mem);
    fclose(mem);
    tad_tfr_reader r = {file, used, 0};
    const uint8_t *d;
    size_t len, off;
    double sum = 0;
    long records = 0;
    t0 = now_s();
    while (tad_tfr_next(&r, &d, &len, &off, err, sizeof err) == TAD_TFR_RECORD) {
        tad_event ev;
        tad_event_decode(d, len, &ev, count_scalar, &sum, err, sizeof err);
        records++;
    }
    dt = now_s() - t0;
    printf("tfevents read+decode: %ld records of %zu bytes, %.0f ns/record, %.0f MB/s (sum %.6f)\n",
           records, used / (size_t)(records ? records : 1), dt / (double)records * 1e9,
           (double)used / dt / 1e6, sum);
    free(file);
    free(buf);
    return 0;
}
