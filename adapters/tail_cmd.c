/* tail_cmd.c - `trainscope tail`: follow a trainer's text output and publish
 * every metric line to a collector, with no change to the trainer.
 *
 *   python train.py | trainscope tail --format nanogpt - --run shakespeare
 *   trainscope tail --format llmc train.log --run gpt2-124M --endpoint tcp://host:5557
 *
 * Lines are parsed by formats.c and read by follow.c; points go through
 * libtrainscope, so the collector may be down or restart meanwhile and
 * nothing is lost. On SIGINT/SIGTERM, at the end of a pipe, or at end of
 * file with --once, the run is closed and tail waits (--timeout-ms) until
 * every point is durable.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters.h"
#include "follow.h"
#include "formats.h"
#include "sink.h"

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void tail_usage(FILE *out)
{
    fprintf(out,
            "usage: trainscope tail --format FORMAT [FILE | -] --run NAME [options]\n"
            "  --format F         %s\n"
            "  --pattern RE       a regex with named groups, e.g. 'step (?<step>\\d+) loss (?<loss>\\S+)'\n"
            "                     (implies --format pattern; may be given several times)\n"
            "  --run NAME         the run to publish to (required)\n"
            "  --project P        its project\n"
            "  --endpoint EP      collector ingest endpoint (default tcp://127.0.0.1:5557)\n"
            "  --once             stop at the end of FILE instead of following it\n"
            "  --echo / --no-echo copy every input line to stdout (default: on for stdin)\n"
            "  --hf-logging-steps N   hf: the Trainer's logging_steps (step of the n-th dict = n*N)\n"
            "  --poll-ms N        how often a file at its end is checked (default 100)\n"
            "  --timeout-ms N     how long to wait for the collector at exit (default 10000)\n"
            "  --dry-run          publish nothing: print 'step metric value' for each parsed point\n"
            "FILE is followed like `tail -F` (growth, rotation, truncation); - or no FILE reads stdin.\n"
            "Patterns: POSIX extended regex; (?<name>...) or (?P<name>...) names a group, (?:...)\n"
            "groups, \\d \\s \\w \\S work; group 'step' is the step, every other named group a metric.\n",
            tad_format_names());
}

typedef struct tail_args {
    const char *format, *run, *project, *endpoint, *path;
    const char *patterns[16];
    int npatterns;
    int once, echo, hf_steps, poll_ms, timeout_ms, dry_run;
} tail_args;

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *e;
    errno = 0;
    long v = strtol(s, &e, 10);
    if (errno || e == s || *e || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

/* 0, or the exit status of a usage error. */
static int parse_tail_args(int argc, char **argv, tail_args *a)
{
    static const struct option longopts[] = {
        {"format", required_argument, NULL, 'f'},   {"pattern", required_argument, NULL, 'p'},
        {"run", required_argument, NULL, 'r'},      {"project", required_argument, NULL, 'P'},
        {"endpoint", required_argument, NULL, 'e'}, {"once", no_argument, NULL, 'o'},
        {"echo", no_argument, NULL, 'E'},           {"no-echo", no_argument, NULL, 'N'},
        {"hf-logging-steps", required_argument, NULL, 'H'},
        {"poll-ms", required_argument, NULL, 'l'},  {"timeout-ms", required_argument, NULL, 't'},
        {"dry-run", no_argument, NULL, 'D'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    memset(a, 0, sizeof *a);
    a->echo = -1;
    a->hf_steps = 1;
    a->timeout_ms = 10000;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': a->format = optarg; break;
        case 'p':
            if (a->npatterns == 16) {
                fprintf(stderr, "trainscope tail: at most 16 --pattern options\n");
                return 2;
            }
            a->patterns[a->npatterns++] = optarg;
            break;
        case 'r': a->run = optarg; break;
        case 'P': a->project = optarg; break;
        case 'e': a->endpoint = optarg; break;
        case 'o': a->once = 1; break;
        case 'D': a->dry_run = 1; break;
        case 'E': a->echo = 1; break;
        case 'N': a->echo = 0; break;
        case 'H':
        case 'l':
        case 't': {
            int *dst = c == 'H' ? &a->hf_steps : c == 'l' ? &a->poll_ms : &a->timeout_ms;
            if (parse_int(optarg, c == 't' ? -1 : 1, 100000000, dst) < 0) {
                fprintf(stderr, "trainscope tail: %s needs a number, not '%s'\n", argv[optind - 1],
                        optarg);
                return 2;
            }
            break;
        }
        case 'h': tail_usage(stdout); return -1;
        default:
            fprintf(stderr, "trainscope tail: unknown option or missing value: %s\n",
                    argv[optind - 1]);
            tail_usage(stderr);
            return 2;
        }
    }
    if (argc - optind > 1) {
        fprintf(stderr, "trainscope tail: one input at a time (got '%s' and '%s')\n", argv[optind],
                argv[optind + 1]);
        return 2;
    }
    a->path = argc - optind == 1 ? argv[optind] : "-";
    if (!a->format && a->npatterns)
        a->format = "pattern";
    if (!a->format) {
        fprintf(stderr, "trainscope tail: say which trainer prints the log: --format %s\n",
                tad_format_names());
        return 2;
    }
    if (strcmp(a->format, "pattern") == 0 && a->npatterns == 0) {
        fprintf(stderr, "trainscope tail: --format pattern needs at least one --pattern REGEX\n");
        return 2;
    }
    if (strcmp(a->format, "pattern") != 0 && a->npatterns) {
        fprintf(stderr, "trainscope tail: --pattern goes with --format pattern, not '%s'\n",
                a->format);
        return 2;
    }
    if ((!a->run || !a->run[0]) && !a->dry_run) {
        fprintf(stderr, "trainscope tail: --run NAME is required (the run the metrics go to)\n");
        return 2;
    }
    return 0;
}

static tad_parser *make_parser(const tail_args *a)
{
    char err[512];
    tad_parser *p = tad_parser_new(a->format, a->hf_steps, err, sizeof err);
    if (!p) {
        fprintf(stderr, "trainscope tail: %s\n", err);
        return NULL;
    }
    for (int i = 0; i < a->npatterns; i++) {
        if (tad_parser_add_pattern(p, a->patterns[i], err, sizeof err) < 0) {
            fprintf(stderr, "trainscope tail: %s\n", err);
            tad_parser_free(p);
            return NULL;
        }
    }
    return p;
}

/* The run's I/O thread (and ZeroMQ's) must not take SIGINT/SIGTERM: only
 * this thread's blocking read is to be interrupted by them. */
static tad_sink *open_sink_signals_blocked(const tail_args *a, int stream, char *err,
                                           size_t errlen)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    tad_sink_opts so = {.endpoint = a->endpoint, .project = a->project, .timeout_ms = a->timeout_ms,
                        .wait_when_behind = !stream, .stop = &stop_flag};
    tad_sink *s = tad_sink_open(&so, err, errlen);
    if (s && tad_sink_begin(s, a->run, 0, 1, err, errlen) < 0) {
        tad_sink_close(s);
        s = NULL;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return s;
}

static void install_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: a blocking read returns EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int tad_tail_main(int argc, char **argv)
{
    tail_args a;
    int rc = parse_tail_args(argc, argv, &a);
    if (rc)
        return rc < 0 ? 0 : rc;
    int status = 1;
    char err[1024];
    tad_follow *f = NULL;
    tad_sink *sink = NULL;
    tad_parser *p = make_parser(&a);
    if (!p)
        return 2;
    f = tad_follow_open(a.path, a.once, a.poll_ms, err, sizeof err);
    if (!f) {
        fprintf(stderr, "trainscope tail: %s\n", err);
        goto out;
    }
    /* --dry-run prints what it parsed; the echo would drown it */
    int echo = a.echo >= 0 ? a.echo : tad_follow_is_stream(f) && !a.dry_run;
    install_handlers();
    if (!a.dry_run)
        sink = open_sink_signals_blocked(&a, tad_follow_is_stream(f), err, sizeof err);
    if (!sink && !a.dry_run) {
        fprintf(stderr, "trainscope tail: %s\n", err);
        goto out;
    }
    uint64_t lines = 0, parsed = 0;
    int64_t last_step = 0;
    for (;;) {
        char *line;
        size_t len;
        int nl;
        int ev = tad_follow_next(f, &stop_flag, &line, &len, &nl, err, sizeof err);
        if (ev == TAD_FOLLOW_END)
            break;
        if (ev < 0) {
            fprintf(stderr, "trainscope tail: %s\n", err);
            break;
        }
        if (ev == TAD_FOLLOW_ROTATED || ev == TAD_FOLLOW_TRUNCATED) {
            const char *what = ev == TAD_FOLLOW_ROTATED ? "was replaced by a new file (rotated)"
                                                        : "was truncated";
            fprintf(stderr, "trainscope tail: %s %s; reading it from the start\n", a.path, what);
            snprintf(err, sizeof err, "log %s %s", a.path, what);
            if (sink)
                tad_sink_event(sink, last_step, "note", err);
            continue;
        }
        lines++;
        if (echo) {
            /* byte for byte what came in; a closed stdout stops the echo only */
            if (fwrite(line, 1, len, stdout) != len || (nl && putchar('\n') == EOF) ||
                fflush(stdout) == EOF)
                echo = 0;
        }
        int64_t step;
        tad_sample s[TAD_MAX_SAMPLES];
        int n = tad_parse_line(p, line, &step, s, TAD_MAX_SAMPLES);
        if (n <= 0)
            continue;
        parsed++;
        last_step = step;
        for (int i = 0; i < n; i++) {
            if (!sink)
                printf("%" PRId64 " %s %.17g\n", step, s[i].name, s[i].value);
            else if (tad_sink_log(sink, s[i].name, step, 0, s[i].value, err, sizeof err) < 0)
                fprintf(stderr, "trainscope tail: %s\n", err);
        }
    }
    if (!sink) {
        status = 0;
        goto out;
    }
    uint64_t points = tad_sink_points(sink), dropped = tad_sink_dropped(sink);
    int ok = tad_sink_end(sink, stop_flag ? "detached" : "finished", err, sizeof err) == 0;
    fprintf(stderr,
            "trainscope tail: %" PRIu64 " lines, %" PRIu64 " with metrics, %" PRIu64
            " points published to run '%s'%s%s\n",
            lines, parsed, points, a.run, dropped ? " (some dropped: collector unreachable)" : "",
            ok ? "" : "; NOT all acknowledged");
    if (!ok)
        fprintf(stderr, "trainscope tail: %s\n", err);
    status = ok ? 0 : 1;
out:
    tad_sink_close(sink);
    tad_follow_close(f);
    tad_parser_free(p);
    return status;
}
