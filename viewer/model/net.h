/* net.h - the network half of a viewer source: attaches to a running
 * collector's query API (a DEALER) and live feed (a SUB), from a background
 * thread, and hands what it learns to the UI thread through a queue.
 *
 * Use (the model's network backend does this; see model_int.h):
 *     tvn_conn *c;
 *     if (tvn_open(&c, "tcp://127.0.0.1:5558", NULL, err, sizeof err) < 0) ...;
 *     every frame: tvn_drain(c, &sink, ctx);    // never blocks on the network
 *     tvn_close(c);
 *
 * What the thread does (PROTOCOL.md "Query API" and "LIVE"):
 *   1. asks `info`; a collector speaking another protocol version makes the
 *      connection FAILED with a sentence saying both versions; no answer
 *      within TVN_REQ_TIMEOUT_MS leaves it CONNECTING (or RECONNECTING) with
 *      a sentence naming the endpoint, and it tries again;
 *   2. subscribes to LIVE (every run, or the runs asked for) and holds what
 *      arrives;
 *   3. lists runs, series, events, gaps and findings, and fetches each
 *      series' history (`points`, after the last step it already has);
 *   4. once the subscription has certainly reached the collector (its
 *      handshake plus TVN_SETTLE_MS), fetches history again after the last
 *      step it has, then releases the held LIVE points: together they cover
 *      every point with no hole (what was committed before the subscription
 *      took effect is in the history) and no duplicate (see "Merging");
 *   5. READY: LIVE points go to the queue as they arrive; `info` is asked
 *      every TVN_PING_MS as a heartbeat, runs every TVN_REFRESH_MS (new
 *      runs, status, and for the runs that changed: series, new events,
 *      gaps, findings); every run's findings every TVN_FINDINGS_ALL_MS (a
 *      detector may find something in a run that got no points: stalled);
 *      a findings list goes to the queue only when it differs from the one
 *      delivered last; a series id LIVE names that we do not know makes it
 *      list that run's series again;
 *   6. a request unanswered for TVN_REQ_TIMEOUT_MS, or the live connection
 *      dropping (the SUB's monitor; ZMTP heartbeats on both sockets catch a
 *      peer that vanished silently), means the collector went away:
 *      RECONNECTING (what was delivered stays), new sockets, and from 1.
 *      again; step 3 then fills the gap after the last step seen of every
 *      series.
 *
 * Merging (per series, in the thread): a point is delivered when its step is
 * above the highest step delivered. A LIVE point at or below it is a
 * duplicate when its wall time is not after the newest delivered point's
 * (history overlapping LIVE, or points the publisher sent again to a
 * collector that restarted before committing them), otherwise the series
 * went back in steps (a resumed run): it starts a new timeline and is
 * delivered. Wall times are floored to the store's unit (`time_unit_ns`), so
 * delivered points equal the stored ones bit for bit. History asks only for
 * the newest timeline; when the collector reports more timelines than we
 * have seen (a resume while we were away), the series is reset and fetched
 * again whole.
 *
 * History: from `points` requests as above (held in memory by the model),
 * by default. With "?history=file", when the `info` reply names a store
 * file this process can open read-only (same machine), the model reads
 * history from that file (exact, and bounded in memory by its chunk cache)
 * and the network carries only LIVE, runs, events and gaps.
 *
 * Live endpoint: the `live` field of the `info` reply when the collector
 * gives one; else "?live=EP" appended to the API endpoint
 * ("tcp://h:5558?live=tcp://h:5559"); else derived: tcp port + 1 (the
 * default ports are 5558 and 5559), or an ipc path ending in "api" with
 * "live" in its place.
 *
 * Threads: tvn_open/tvn_drain/tvn_state/tvn_close from one thread (the
 * UI's); the callbacks run inside tvn_drain on that thread. Everything
 * passed to a callback is owned by the queue and valid only during the call.
 * Errors: 0 or a negative errno-style code with a sentence in err.
 */
#ifndef TRAINSCOPE_VIEWER_NET_H
#define TRAINSCOPE_VIEWER_NET_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"   /* enum tvm_state */
#include "store.h"   /* tss_run, tss_series, tss_event, tss_point */

#define TVN_REQ_TIMEOUT_MS 3000  /* an API request unanswered this long: collector gone */
#define TVN_POINTS_TIMEOUT_MS 20000  /* the same for a page of points (up to TVN_PAGE_POINTS) */
#define TVN_PING_MS 500          /* heartbeat `info` while idle */
#define TVN_REFRESH_MS 1000      /* runs (status, new runs) and events while READY */
#define TVN_FINDINGS_ALL_MS 5000 /* findings of runs that did not change (stalled runs) */
#define TVN_SETTLE_MS 200        /* after the SUB handshake, before trusting the subscription */
#define TVN_RETRY_MS 500         /* between connection attempts */
#define TVN_PAGE_POINTS 1000000  /* points asked for per `points` request (estimated) */
#define TVN_DRAIN_MS 4           /* one tvn_drain stops handing over points after this long */
#define TVN_DRAIN_STEP 4096      /* points handed over between two looks at the clock */

typedef struct tvn_conn tvn_conn;

typedef struct tvn_opts {
    const char *const *runs;     /* run names (or project/name) to follow; NULL = all */
    size_t nruns;
    size_t page_points;          /* points per `points` request; 0 = TVN_PAGE_POINTS */
} tvn_opts;

/* What tvn_drain delivers, in the order the thread produced it. Any callback
 * may be NULL. ids are the store's run and series ids. */
typedef struct tvn_sink {
    /* The connection state changed; message is a sentence for the window. */
    void (*state)(void *ctx, enum tvm_state st, const char *message);
    /* The collector's `info`: its store file, its time unit, and use_file 1
     * when this process can read that file: then no `points` history comes
     * (LIVE still does); open the file for history, or call
     * tvn_history_from_api when that fails. */
    void (*info)(void *ctx, const char *store_path, int64_t time_unit_ns, int use_file);
    /* Every run followed (all of them, newest first), replacing the last list. */
    void (*runs)(void *ctx, const tss_run *runs, size_t n);
    /* Every series of one run, replacing the last list for that run. Counts
     * and ranges are the collector's committed view; points come apart. */
    void (*series)(void *ctx, int64_t run_id, const tss_series *s, size_t n);
    /* Events of one run not delivered before (in the collector's order). */
    void (*events)(void *ctx, int64_t run_id, const tss_event *ev, size_t n);
    /* Drop reports (DROPS) of one run not delivered before. */
    void (*gaps)(void *ctx, int64_t run_id, const tss_gap *g, size_t n);
    /* Every finding of one run (the `findings` op; detail as JSON text),
     * replacing the last list for that run. Not in file mode (the model
     * reads them from the store file) nor from a collector without the op. */
    void (*findings)(void *ctx, int64_t run_id, const tss_finding *f, size_t n);
    /* Replace every point of this series with p (its newest timeline, in
     * step order): what we had missed a resume. p may be modified. */
    void (*reset)(void *ctx, int64_t series_id, tss_point *p, size_t n);
    /* Points to append to a series, in order; generation numbers the
     * timeline (0 for the first one this connection has seen). */
    void (*points)(void *ctx, int64_t series_id, const tss_point *p, size_t n);
    /* Every run and series of the collector has been delivered once (each
     * connection, after its first listing). */
    void (*listed)(void *ctx);
} tvn_sink;

/* Parse where and start the thread; returns at once, the state is
 * CONNECTING. where: "tcp://..." or "ipc://..." (the API endpoint),
 * optionally followed by "?" and options joined by "&": live=ENDPOINT (the
 * live feed, when it is not the default one), history=file (read history
 * from the collector's store file when this process can), history=api (the
 * default). -EINVAL: anything else. */
int tvn_open(tvn_conn **out, const char *where, const tvn_opts *opts, char *err, size_t errlen);

/* Stop the thread (it notices within 50 ms), drop what is queued. NULL-safe. */
void tvn_close(tvn_conn *c);

/* Deliver what is queued to the sink, in order, for about TVN_DRAIN_MS
 * (the rest on the next call: a long history costs several frames a few ms
 * each, not one long one). Never blocks on the network (only on the
 * queue's lock, held by the thread for a pointer swap). Returns the number
 * of items finished. */
size_t tvn_drain(tvn_conn *c, const tvn_sink *sink, void *ctx);

/* The current state and its sentence (valid until the next tvn_ call). */
enum tvm_state tvn_state(tvn_conn *c, const char **message);

/* Counters, for tests and the status line. */
typedef struct tvn_stats {
    uint64_t live_msgs;          /* LIVE messages accepted */
    uint64_t live_points;        /* points in them */
    uint64_t live_bad;           /* LIVE messages ignored: malformed frames */
    uint64_t live_dups;          /* LIVE points already delivered (history overlap, resends) */
    uint64_t history_points;     /* points fetched with `points` */
    uint64_t requests;           /* API requests sent */
    uint64_t reconnects;         /* times the collector went away and came back */
    uint64_t resets;             /* series fetched again whole (a resume we did not see) */
} tvn_stats;
void tvn_get_stats(tvn_conn *c, tvn_stats *s);

/* The store file the info callback offered could not be opened: from now on
 * fetch history over the API (series that got LIVE points are reset first). */
void tvn_history_from_api(tvn_conn *c);

/* The counters of a network source opened with tvm_open (remote.c): 0, or
 * -EINVAL when src is not one. */
int tvm__net_stats(tvm_source *src, tvn_stats *s);

#endif
