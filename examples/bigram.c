/* bigram.c - a character bigram language model that really learns, logging
 * every step to a trainscope collector through libtrainscope.
 *
 * The model is one V x V table of logits: row c scores which character
 * follows c (V = the distinct characters of the text, 27..96). Each step
 * draws a minibatch of (char, next char) pairs from the first 90% of the
 * text, takes the softmax cross-entropy and its exact gradient, and applies
 * Adam with a linear warmup and a cosine decay of the learning rate. Every
 * 50 steps the loss on the last 10% (never trained on) is measured.
 * Loss starts at ln V (3.93 nats on the shipped text) and settles near 2.26,
 * about the entropy of English letter pairs; 2000 steps take well under a
 * second.
 *
 * Logged: train/loss, train/grad_norm, train/lr, perf/samples_per_s every
 * step, eval/loss every 50 steps, an event "config" at the start and "done"
 * at the end.
 *
 * Usage: bigram [--endpoint E] [--run NAME] [--steps N] [--text PATH] [--seed S]
 * Without a collector it trains all the same; at the end it waits
 * CLOSE_TIMEOUT_MS for acknowledgements and says they did not come.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "trainscope.h"

#ifndef BIGRAM_TEXT
#define BIGRAM_TEXT "tiny.txt"
#endif

#define BATCH 128
#define PEAK_LR 0.02
#define MIN_LR_RATIO 0.1 /* the cosine ends at 10% of the peak */
#define WARMUP 100
#define EVAL_EVERY 50
#define PRINT_EVERY 100
#define CLOSE_TIMEOUT_MS 2000
#define MAX_VOCAB 256

typedef struct args {
    const char *endpoint; /* NULL: TRAINSCOPE_ENDPOINT or the library default */
    const char *run;
    const char *text;
    long steps;
    uint64_t seed;
} args;

typedef struct corpus {
    uint8_t *ids;  /* the text as vocabulary indices */
    size_t n;      /* characters */
    size_t n_train;/* pairs (ids[i], ids[i+1]) with i + 1 < n_train are for training */
    int vocab;
    char chars[MAX_VOCAB];
} corpus;

typedef struct model {
    int v;
    double *w, *grad, *m, *s; /* logits, gradient, Adam moments; v * v each */
    long t;                   /* Adam step count */
} model;

typedef struct metrics {
    int loss, grad_norm, lr, speed, eval;
} metrics;

/* ---- command line ---- */

static void usage(void)
{
    fprintf(stderr, "usage: bigram [--endpoint E] [--run NAME] [--steps N] [--text PATH] "
                    "[--seed S]\n");
    exit(2);
}

static args parse_args(int argc, char **argv)
{
    args a = {.run = "bigram", .text = BIGRAM_TEXT, .steps = 2000, .seed = 1};
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            usage();
        const char *k = argv[i], *v = argv[++i];
        if (strcmp(k, "--endpoint") == 0)
            a.endpoint = v;
        else if (strcmp(k, "--run") == 0)
            a.run = v;
        else if (strcmp(k, "--steps") == 0)
            a.steps = strtol(v, NULL, 10);
        else if (strcmp(k, "--text") == 0)
            a.text = v;
        else if (strcmp(k, "--seed") == 0)
            a.seed = strtoull(v, NULL, 10);
        else
            usage();
    }
    if (a.steps <= 0)
        usage();
    return a;
}

/* ---- data ---- */

static uint64_t rng_state;

/* splitmix64: small, good enough to draw minibatches. */
static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static int load_corpus(const char *path, corpus *c)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    rewind(f);
    memset(c, 0, sizeof *c);
    c->ids = malloc(size > 0 ? (size_t)size : 1);
    if (!c->ids || size < 100 || fread(c->ids, 1, (size_t)size, f) != (size_t)size) {
        fprintf(stderr, "%s: cannot read a text of at least 100 bytes\n", path);
        fclose(f);
        free(c->ids);
        return -1;
    }
    fclose(f);
    c->n = (size_t)size;
    int index[256];
    memset(index, -1, sizeof index);
    for (size_t i = 0; i < c->n; i++) {
        uint8_t b = c->ids[i];
        if (index[b] < 0) {
            index[b] = c->vocab;
            c->chars[c->vocab++] = (char)b;
        }
        c->ids[i] = (uint8_t)index[b];
    }
    c->n_train = c->n * 9 / 10;
    return 0;
}

/* ---- model ---- */

static int model_init(model *md, int v)
{
    size_t n = (size_t)v * v;
    md->v = v;
    md->t = 0;
    md->w = calloc(n, sizeof(double));
    md->grad = calloc(n, sizeof(double));
    md->m = calloc(n, sizeof(double));
    md->s = calloc(n, sizeof(double));
    return md->w && md->grad && md->m && md->s ? 0 : -1;
}

static void model_free(model *md)
{
    free(md->w);
    free(md->grad);
    free(md->m);
    free(md->s);
}

/* Softmax of row x into p; returns -log p[y]. */
static double row_loss(const model *md, int x, int y, double *p)
{
    const double *row = md->w + (size_t)x * md->v;
    double mx = row[0], sum = 0;
    for (int j = 1; j < md->v; j++)
        mx = row[j] > mx ? row[j] : mx;
    for (int j = 0; j < md->v; j++)
        sum += p[j] = exp(row[j] - mx);
    for (int j = 0; j < md->v; j++)
        p[j] /= sum;
    return -log(p[y] > 1e-300 ? p[y] : 1e-300);
}

/* Mean loss over a random minibatch, accumulating its gradient. */
static double forward_backward(model *md, const corpus *c)
{
    double p[MAX_VOCAB], loss = 0;
    memset(md->grad, 0, (size_t)md->v * md->v * sizeof(double));
    for (int b = 0; b < BATCH; b++) {
        size_t i = rng_next() % (c->n_train - 1);
        int x = c->ids[i], y = c->ids[i + 1];
        loss += row_loss(md, x, y, p);
        double *g = md->grad + (size_t)x * md->v;
        /* d(-log softmax_y)/d logit_j = p_j - [j == y] */
        for (int j = 0; j < md->v; j++)
            g[j] += (p[j] - (j == y)) / BATCH;
    }
    return loss / BATCH;
}

static double grad_norm(const model *md)
{
    double sum = 0;
    for (size_t k = 0; k < (size_t)md->v * md->v; k++)
        sum += md->grad[k] * md->grad[k];
    return sqrt(sum);
}

static void adam_step(model *md, double lr)
{
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    md->t++;
    double c1 = 1 - pow(b1, (double)md->t), c2 = 1 - pow(b2, (double)md->t);
    for (size_t k = 0; k < (size_t)md->v * md->v; k++) {
        double g = md->grad[k];
        md->m[k] = b1 * md->m[k] + (1 - b1) * g;
        md->s[k] = b2 * md->s[k] + (1 - b2) * g * g;
        md->w[k] -= lr * (md->m[k] / c1) / (sqrt(md->s[k] / c2) + eps);
    }
}

/* Mean loss over every pair of the held-out tail of the text. */
static double eval_loss(const model *md, const corpus *c)
{
    double p[MAX_VOCAB], loss = 0;
    size_t pairs = 0;
    for (size_t i = c->n_train; i + 1 < c->n; i++, pairs++)
        loss += row_loss(md, c->ids[i], c->ids[i + 1], p);
    return loss / (double)pairs;
}

/* Linear warmup to PEAK_LR, then cosine down to MIN_LR_RATIO of it. */
static double lr_at(long step, long steps)
{
    if (step < WARMUP)
        return PEAK_LR * (double)(step + 1) / WARMUP;
    double progress = (double)(step - WARMUP) / (double)(steps > WARMUP ? steps - WARMUP : 1);
    double cosine = 0.5 * (1 + cos(M_PI * progress));
    return PEAK_LR * (MIN_LR_RATIO + (1 - MIN_LR_RATIO) * cosine);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- trainscope ---- */

static ts_run *open_run(const args *a, const corpus *c)
{
    char config[256];
    snprintf(config, sizeof config,
             "{\"model\":\"char-bigram\",\"vocab\":%d,\"batch\":%d,\"steps\":%ld,"
             "\"peak_lr\":%g,\"warmup\":%d,\"schedule\":\"cosine\",\"seed\":%llu,"
             "\"text_bytes\":%zu}",
             c->vocab, BATCH, a->steps, PEAK_LR, WARMUP, (unsigned long long)a->seed, c->n);
    ts_options o = ts_options_default();
    o.endpoint = a->endpoint;
    o.run = a->run;
    o.project = "examples";
    o.config_json = config;
    ts_run *run;
    int rc = ts_open(&run, &o);
    if (rc < 0) {
        fprintf(stderr, "bigram: trainscope: %s\n", ts_strerror(rc));
        return NULL;
    }
    ts_event(run, 0, "config", config);
    return run;
}

static metrics register_metrics(ts_run *run)
{
    return (metrics){
        .loss = ts_metric(run, "train/loss"),
        .grad_norm = ts_metric(run, "train/grad_norm"),
        .lr = ts_metric(run, "train/lr"),
        .speed = ts_metric(run, "perf/samples_per_s"),
        .eval = ts_metric(run, "eval/loss"),
    };
}

static void train(const args *a, const corpus *c, model *md, ts_run *run)
{
    metrics id = register_metrics(run);
    double window = 0, eval = eval_loss(md, c);
    printf("vocab %d, %zu training chars, initial eval loss %.4f (ln V = %.4f)\n", c->vocab,
           c->n_train, eval, log((double)c->vocab));
    for (long step = 0; step < a->steps; step++) {
        double t0 = now_s(), lr = lr_at(step, a->steps);
        double loss = forward_backward(md, c);
        double gn = grad_norm(md);
        adam_step(md, lr);
        double dt = now_s() - t0;
        ts_log_id(run, id.loss, step, loss);
        ts_log_id(run, id.grad_norm, step, gn);
        ts_log_id(run, id.lr, step, lr);
        ts_log_id(run, id.speed, step, dt > 0 ? BATCH / dt : 0);
        if ((step + 1) % EVAL_EVERY == 0) {
            eval = eval_loss(md, c);
            ts_log_id(run, id.eval, step, eval);
        }
        window += loss;
        if ((step + 1) % PRINT_EVERY == 0 || step + 1 == a->steps) {
            long n = (step + 1) % PRINT_EVERY ? (step + 1) % PRINT_EVERY : PRINT_EVERY;
            printf("step %5ld  train loss %.4f  eval loss %.4f  lr %.4f  grad norm %.4f\n",
                   step + 1, window / (double)n, eval, lr, gn);
            window = 0;
        }
    }
    char done[128];
    snprintf(done, sizeof done, "final eval loss %.4f after %ld steps", eval, a->steps);
    ts_event(run, a->steps, "done", done);
}

/* A few characters the model would write, starting from 'T'. */
static void sample_text(const model *md, const corpus *c)
{
    double p[MAX_VOCAB];
    int x = 0;
    for (int k = 0; k < c->vocab; k++)
        if (c->chars[k] == 'T')
            x = k;
    printf("sample: %c", c->chars[x]);
    for (int i = 0; i < 80; i++) {
        row_loss(md, x, 0, p);
        double u = (double)(rng_next() >> 11) / 9007199254740992.0, acc = 0;
        int y = md->v - 1;
        for (int j = 0; j < md->v; j++)
            if ((acc += p[j]) > u) {
                y = j;
                break;
            }
        putchar(c->chars[y] == '\n' ? ' ' : c->chars[y]);
        x = y;
    }
    putchar('\n');
}

int main(int argc, char **argv)
{
    args a = parse_args(argc, argv);
    rng_state = a.seed;
    corpus c;
    model md;
    int status = 1;
    if (load_corpus(a.text, &c) < 0)
        return 1;
    if (model_init(&md, c.vocab) < 0)
        goto out_model;
    ts_run *run = open_run(&a, &c);
    if (!run)
        goto out_model;
    double t0 = now_s();
    train(&a, &c, &md, run);
    printf("trained %ld steps in %.2f s\n", a.steps, now_s() - t0);
    sample_text(&md, &c);
    /* Flush first so the counters below are final, then say goodbye. */
    int rc = ts_flush(run, CLOSE_TIMEOUT_MS);
    ts_stats st;
    ts_get_stats(run, &st);
    printf("trainscope: %llu samples logged, %llu acknowledged%s\n",
           (unsigned long long)st.logged, (unsigned long long)st.acked,
           rc == 0 ? ", all durable" : " (no collector? not everything was acknowledged)");
    ts_close(run, rc == 0 ? CLOSE_TIMEOUT_MS : 0);
    status = 0;
out_model:
    model_free(&md);
    free(c.ids);
    return status;
}
