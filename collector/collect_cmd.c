/* collect_cmd.c - `trainscope collect`: parse the command line, run the
 * collector until SIGINT or SIGTERM, then commit, send the last ACKs and
 * exit 0.
 *
 * Exit status: 0 after a signal, 1 when the store cannot be opened (another
 * collector writes it, not a store, ...) or an endpoint cannot be bound,
 * 2 for a bad command line.
 */
#include "collector.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector_int.h"
#include "security.h"
#include "tda_online.h"
#include "wire.h"

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: trainscope collect [--store PATH] [--ingest EP] [--api EP] [--live EP]\n"
            "                          [--bind-all] [--commit-ms N] [--sync full|normal]\n"
            "                          [--time-unit ns|us|ms] [--status-interval S] [--quiet]\n"
            "                          [--detect RULE|off]... [--on-finding CMD] [--alert-interval S]\n"
            "                          [--stall-s S]\n"
            "                          [--curve-secret FILE --allow DIR|FILE | --insecure]\n"
            "\n"
            "Receive runs from trainers and store them.\n"
            "\n"
            "  --store PATH         store file (default ./runs.db, created if missing)\n"
            "  --ingest EP          publishers connect here (default %s)\n"
            "  --api EP             query API (default %s)\n"
            "  --live EP            live points for viewers (default %s)\n"
            "  --bind-all           default endpoints on 0.0.0.0 instead of 127.0.0.1\n"
            "  --commit-ms N        commit and acknowledge every N ms while data arrives (default 50)\n"
            "  --sync full|normal   full: every commit survives power loss (default normal)\n"
            "  --time-unit U        ns, us or ms: time resolution of a new store (default ms)\n"
            "  --status-interval S  seconds between status lines (default 5, 0 = none)\n"
            "  --quiet              no banner and no status lines\n"
            "  --detect RULE        detector parameters for matching metrics, repeatable, e.g.\n"
            "                       'train/loss:spike=8,window=256' (docs/report-schema.md);\n"
            "                       'off': no online detectors. Findings are stored with the run\n"
            "  --on-finding CMD     run `sh -c CMD` with each finding as JSON on stdin\n"
            "                       (rate-limited; never delays ingest)\n"
            "  --alert-interval S   at most one CMD per S seconds after a burst of 5 (default 1)\n"
            "  --stall-s S          a run that sends nothing for S seconds without saying goodbye\n"
            "                       is a 'stalled' finding (default 60, 0 = off)\n"
            TSEC_USAGE
            "An endpoint beyond loopback (--bind-all, tcp://0.0.0.0:..., an address) needs the\n"
            "keys or --insecure. With keys, all three sockets use CURVE (README: Remote attach).\n",
            TSW_DEFAULT_INGEST, TSW_DEFAULT_API, TSW_DEFAULT_LIVE);
}

/* "--name VALUE" or "--name=VALUE": 1 and *val set when argv[*i] is that
 * option (advancing *i past a separate value), 0 when it is not, -1 when
 * its value is missing. */
static int opt_value(int argc, char **argv, int *i, const char *name, const char **val)
{
    size_t n = strlen(name);
    const char *a = argv[*i];
    if (strncmp(a, name, n) != 0)
        return 0;
    if (a[n] == '=') {
        *val = a + n + 1;
        return 1;
    }
    if (a[n] != 0)
        return 0;
    if (*i + 1 >= argc)
        return -1;
    *val = argv[++*i];
    return 1;
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

/* Endpoint defaults on all interfaces: "127.0.0.1" becomes "0.0.0.0". */
static const char *bind_all(const char *def, char *buf, size_t cap)
{
    const char *p = strstr(def, "127.0.0.1");
    if (!p)
        return def;
    snprintf(buf, cap, "%.*s0.0.0.0%s", (int)(p - def), def, p + strlen("127.0.0.1"));
    return buf;
}

/* The detector options (analysis/tda_online.h). */
typedef struct detect_args {
    int off;
    tda_rules rules;
    tda_online_opts o;
} detect_args;

/* --detect, --on-finding, --alert-interval: 1 when argv[*i] was one of them,
 * 0 when not, -1 after printing what is wrong. */
static int parse_detect(int argc, char **argv, int *i, detect_args *d)
{
    const char *v = NULL;
    char err[512];
    int r;
    if ((r = opt_value(argc, argv, i, "--detect", &v)) != 0) {
        if (r > 0 && strcmp(v, "off") == 0) {
            d->off = 1;
            return 1;
        }
        if (r > 0 && tda_rules_add(&d->rules, v, err, sizeof err) == 0)
            return 1;
        fprintf(stderr, "trainscope collect: %s\n\n", r < 0 ? "--detect needs a value" : err);
        return -1;
    }
    if ((r = opt_value(argc, argv, i, "--on-finding", &v)) != 0) {
        if (r > 0 && *v) {
            d->o.on_finding = v;
            return 1;
        }
        fprintf(stderr, "trainscope collect: --on-finding needs a command\n\n");
        return -1;
    }
    if ((r = opt_value(argc, argv, i, "--stall-s", &v)) != 0) {
        char *end;
        double s = r > 0 ? strtod(v, &end) : -1;
        if (r > 0 && end != v && !*end && s >= 0 && s <= 86400 * 7) {
            d->o.stall_s = s;
            return 1;
        }
        fprintf(stderr, "trainscope collect: --stall-s wants seconds from 0 (off) to 604800\n\n");
        return -1;
    }
    if ((r = opt_value(argc, argv, i, "--alert-interval", &v)) != 0) {
        char *end;
        double s = r > 0 ? strtod(v, &end) : -1;
        if (r > 0 && end != v && !*end && s >= 0 && s <= 86400) {
            d->o.alert_interval_s = s;
            return 1;
        }
        fprintf(stderr, "trainscope collect: --alert-interval wants seconds from 0 to 86400\n\n");
        return -1;
    }
    return 0;
}

/* Fill o from argv. Returns 0, or -1 after printing what is wrong. */
static int parse_args(int argc, char **argv, tcl_options *o, int *all, detect_args *det,
                      tsec_args *sec)
{
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int r = parse_detect(argc, argv, &i, det);
        if (r < 0)
            return -1;
        if (r > 0)
            continue;
        if ((r = tsec_parse_arg(argc, argv, &i, sec, "trainscope collect")) != 0) {
            if (r < 0)
                return -1;
            continue;
        }
        if (strcmp(argv[i], "--bind-all") == 0) {
            *all = 1;
        } else if (strcmp(argv[i], "--quiet") == 0 || strcmp(argv[i], "-q") == 0) {
            o->quiet = 1;
        } else if ((r = opt_value(argc, argv, &i, "--store", &v)) != 0) {
            if (r < 0 || !*v)
                goto missing;
            o->store_path = v;
        } else if ((r = opt_value(argc, argv, &i, "--ingest", &v)) != 0) {
            if (r < 0 || !*v)
                goto missing;
            o->ingest_ep = v;
        } else if ((r = opt_value(argc, argv, &i, "--api", &v)) != 0) {
            if (r < 0 || !*v)
                goto missing;
            o->api_ep = v;
        } else if ((r = opt_value(argc, argv, &i, "--live", &v)) != 0) {
            if (r < 0 || !*v)
                goto missing;
            o->live_ep = v;
        } else if ((r = opt_value(argc, argv, &i, "--commit-ms", &v)) != 0) {
            if (r < 0 || parse_int(v, 1, 60000, &o->commit_ms) < 0)
                goto bad;
        } else if ((r = opt_value(argc, argv, &i, "--status-interval", &v)) != 0) {
            if (r < 0 || parse_int(v, 0, 86400, &o->status_interval_s) < 0)
                goto bad;
        } else if ((r = opt_value(argc, argv, &i, "--sync", &v)) != 0) {
            if (r < 0 || (strcmp(v, "full") != 0 && strcmp(v, "normal") != 0))
                goto bad;
            o->sync_full = strcmp(v, "full") == 0;
        } else if ((r = opt_value(argc, argv, &i, "--time-unit", &v)) != 0) {
            if (r < 0)
                goto bad;
            if (strcmp(v, "ns") == 0)
                o->time_unit_ns = 1;
            else if (strcmp(v, "us") == 0)
                o->time_unit_ns = 1000;
            else if (strcmp(v, "ms") == 0)
                o->time_unit_ns = 1000000;
            else
                goto bad;
        } else {
            fprintf(stderr, "trainscope collect: unknown option '%s'\n\n", argv[i]);
            return -1;
        }
        continue;
missing:
        fprintf(stderr, "trainscope collect: %s needs a value\n\n", argv[i]);
        return -1;
bad:
        fprintf(stderr, "trainscope collect: bad or missing value for %s\n\n", argv[i]);
        return -1;
    }
    return 0;
}

/* The run's totals, with rejections by reason (PROTOCOL.md's ERROR codes). */
static void print_totals(const tcl_stats *st)
{
    char by[512] = "";
    size_t n = 0;
    for (int code = 0; code < 16 && n < sizeof by; code++) {
        if (!st->rejected_by[code])
            continue;
        n += (size_t)snprintf(by + n, sizeof by - n, "%s%s %" PRIu64, n ? ", " : " (",
                              code ? tsw_strerror(code) : "dropped by the transport",
                              st->rejected_by[code]);
    }
    if (n && n < sizeof by - 1)
        strcat(by, ")");
    tcl__log("total %" PRIu64 " points in %" PRIu64 " messages, %" PRIu64 " duplicates, %" PRIu64
             " gaps, %" PRIu64 " rejected%s", st->points, st->messages, st->dups, st->gaps,
             st->rejected, by);
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    /* No SA_RESTART: the signal interrupts zmq_poll, so the loop sees the
     * flag at once instead of after its timeout. */
    sa.sa_flags = 0;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int tcl_collect_main(int argc, char **argv)
{
    tcl_options o;
    tcl_collector *c;
    char err[1024], ibuf[128], abuf[128], lbuf[128];
    int all = 0;
    detect_args det = {0};
    tda_online *online = NULL;
    tsec_args sa = {0};
    tsec_server *sec = NULL;
    tcl_options_init(&o);
    tda_online_opts_init(&det.o);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
    }
    /* NULL until given, so --bind-all only changes the defaults. */
    o.ingest_ep = o.api_ep = o.live_ep = NULL;
    if (parse_args(argc, argv, &o, &all, &det, &sa) < 0) {
        usage(stderr);
        return 2;
    }
    if (!o.ingest_ep)
        o.ingest_ep = all ? bind_all(TSW_DEFAULT_INGEST, ibuf, sizeof ibuf) : TSW_DEFAULT_INGEST;
    if (!o.api_ep)
        o.api_ep = all ? bind_all(TSW_DEFAULT_API, abuf, sizeof abuf) : TSW_DEFAULT_API;
    if (!o.live_ep)
        o.live_ep = all ? bind_all(TSW_DEFAULT_LIVE, lbuf, sizeof lbuf) : TSW_DEFAULT_LIVE;
    const char *listen[] = { "--ingest", o.ingest_ep, "--api", o.api_ep, "--live", o.live_ep };
    int src = tsec_listen_setup(&sa, listen, 3, &sec, err, sizeof err);
    if (src < 0) {
        fprintf(stderr, "trainscope collect: %s\n", err);
        return src == -EINVAL || src == -EACCES ? 2 : 1;
    }
    o.security = sec;
    /* Handlers before opening, so a signal during start-up is not fatal:
     * the loop below sees the flag and shuts down cleanly. */
    install_signals();
    det.o.rules = &det.rules;
    det.o.quiet = o.quiet;
    det.o.store_path = o.store_path;
    if (!det.off && tda_online_open(&online, &det.o, err, sizeof err) < 0) {
        fprintf(stderr, "trainscope collect: %s\n", err);
        tsec_server_free(sec);
        return 1;
    }
    o.online = online;
    if (tcl_open(&c, &o, err, sizeof err) < 0) {
        fprintf(stderr, "trainscope collect: %s\n", err);
        tda_online_close(online);
        tsec_server_free(sec);
        return 1;
    }
    if (!o.quiet) {
        tcl__log("store %s", o.store_path);
        tcl__log("ingest %s  api %s  live %s", tcl_endpoint(c, "ingest"), tcl_endpoint(c, "api"),
                 tcl_endpoint(c, "live"));
        if (sec)
            tcl__log("CURVE: server public key %s, %zu allowed client keys",
                     tsec_server_public(sec), tsec_server_allowed(sec));
    }
    tcl_run(c, &stop_flag);
    tcl_stats st;
    tcl_get_stats(c, &st);
    int rc = tcl_close(c);
    if (!o.quiet)
        print_totals(&st);
    if (online && !o.quiet) {
        tda_online_stats ds;
        tda_online_get_stats(online, &ds);
        tcl__log("detectors: %" PRIu64 " findings (%" PRIu64 " stored), alerts: %" PRIu64 " run, %" PRIu64
                 " rate-limited, %" PRIu64 " failed to start", ds.findings, ds.stored, ds.alerts_run,
                 ds.alerts_rate_limited + ds.alerts_queue_full, ds.alerts_failed);
    }
    tda_online_close(online);
    tsec_server_free(sec);  /* after tcl_close: the ZAP handler read it until then */
    if (rc < 0) {
        fprintf(stderr, "trainscope collect: the final commit failed (%s); "
                "publishers will resend what was not acknowledged\n", strerror(-rc));
        return 1;
    }
    if (!o.quiet)
        tcl__log("stopped; everything received is committed");
    return 0;
}
