/* collector.h - the trainscope collector as a library: receives publisher
 * messages on a ZeroMQ ROUTER (ingest), writes them to a store, acknowledges
 * what is durable, fans new points out on a PUB (live) and answers JSON
 * queries on a second ROUTER (api). proto/PROTOCOL.md is the contract it
 * implements; `trainscope collect` (collect_cmd.c) is a thin front end.
 *
 * Use:
 *     tcl_options o;
 *     tcl_options_init(&o);              // defaults: see the fields below
 *     o.store_path = "runs.db";
 *     tcl_collector *c;
 *     char err[512];
 *     if (tcl_open(&c, &o, err, sizeof err) < 0) { fputs(err, stderr); ... }
 *     tcl_run(c, &stop_flag);            // until a signal handler sets stop_flag
 *     tcl_close(c);                      // final commit, final ACKs
 *
 * Threads: tcl_open starts one thread that serves the query API from a
 * read-only store handle, so that a large query never delays ingest, commits
 * or ACKs. Everything else (ingest, store writes, live) runs in the thread
 * that calls tcl_poll/tcl_run. One tcl_collector per store file.
 *
 * Errors: 0 or a negative errno-style code. tcl_open fills err with a sentence
 * that names the store file or the endpoint that failed: -EBUSY another
 * collector writes the store, -EINVAL not a trainscope store, -EADDRINUSE
 * (or another bind errno) an endpoint could not be bound.
 */
#ifndef TRAINSCOPE_COLLECTOR_H
#define TRAINSCOPE_COLLECTOR_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tcl_options {
    const char *store_path;   /* default "runs.db" */
    const char *ingest_ep;    /* default TSW_DEFAULT_INGEST (ROUTER, bound) */
    const char *api_ep;       /* default TSW_DEFAULT_API (ROUTER, bound) */
    const char *live_ep;      /* default TSW_DEFAULT_LIVE (PUB, bound) */
    int commit_ms;            /* commit (then ACK) at most this long after data arrives; default 50 */
    int sync_full;            /* 1: SQLite synchronous=FULL (survives power loss); default 0 */
    int quiet;                /* 1: no start banner and no status lines (rejections are still logged) */
    int status_interval_s;    /* seconds between status lines on stderr; default 5, 0 = never */
    int64_t time_unit_ns;     /* store time unit, used only when the store is created; 0 = store default (1 ms) */
    struct tda_online *online; /* detectors run on every applied BATCH (analysis/tda_online.h); NULL = none. Not owned. */
    const struct tsec_server *security; /* CURVE on all three sockets with its allow-list
                                           (security.h); NULL = plain. Not owned. */
} tcl_options;

/* Counters since tcl_open, for the status line and for embedders. */
typedef struct tcl_stats {
    uint64_t points;          /* samples applied (in memory; durable after the next commit) */
    uint64_t messages;        /* messages applied */
    uint64_t dups;            /* duplicates discarded (q < next expected) */
    uint64_t gaps;            /* messages discarded because an earlier seq was missing */
    uint64_t rejected;        /* ERROR replies + connections the transport dropped */
    uint64_t rejected_by[16]; /* by reason: [TSW_E_* code], [0] = dropped by the transport */
    uint64_t drops;           /* samples publishers reported dropped (DROPS) */
    uint64_t commits;         /* successful store commits */
    uint64_t runs_active;     /* runs with at least one stream that has not said BYE */
    uint64_t streams_active;  /* streams that have not said BYE */
} tcl_stats;

typedef struct tcl_collector tcl_collector;

void tcl_options_init(tcl_options *o);

/* Open the store (writer), bind the three endpoints, start the API thread.
 * The store is opened first, so a second collector on the same store fails
 * with -EBUSY before it binds anything. */
int tcl_open(tcl_collector **out, const tcl_options *o, char *err, size_t errlen);

/* The endpoint actually bound (wildcard ports resolved), for banners and
 * tests. which: "ingest", "api" or "live". NULL for anything else. */
const char *tcl_endpoint(const tcl_collector *c, const char *which);

/* One round: wait up to timeout_ms for messages, apply a bounded number of
 * them, commit and ACK when the commit interval has passed, print the status
 * line when due. Returns 0, or -EINTR when a signal interrupted the wait. */
int tcl_poll(tcl_collector *c, int timeout_ms);

/* tcl_poll until *stop becomes non-zero (checked at least every 100 ms, and
 * at once when a signal interrupts the wait). Returns 0. */
int tcl_run(tcl_collector *c, volatile sig_atomic_t *stop);

void tcl_get_stats(const tcl_collector *c, tcl_stats *s);

/* Commit what is pending, send the last ACKs, stop the API thread, close
 * sockets and store. NULL-safe. Returns the final commit's result. */
int tcl_close(tcl_collector *c);

/* `trainscope collect ...`: argv[0] is "collect". Returns the exit status. */
int tcl_collect_main(int argc, char **argv);

#endif
