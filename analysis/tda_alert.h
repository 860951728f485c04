/* tda_alert.h - run a command for each finding, with the finding as JSON on
 * its stdin (`trainscope collect --on-finding CMD`), without ever making the
 * caller wait.
 *
 * tda_alert_push copies the JSON into a bounded queue under a mutex held for
 * a memcpy (the collector's ingest thread never waits on a child, a pipe or
 * the rate limit) and returns; a full queue drops the alert and counts it.
 * A thread of its own takes alerts from the queue, applies the rate limit (a
 * token bucket: `burst` commands at once, then one per `interval_s`; what
 * exceeds it is dropped and counted, and the next command that runs gets
 * TRAINSCOPE_ALERTS_SUPPRESSED=N in its environment), starts `/bin/sh -c
 * CMD` with posix_spawn with the JSON on a pipe as stdin, and reaps its
 * children (at most 4 run at once; waitpid on their own pids only).
 */
#ifndef TRAINSCOPE_TDA_ALERT_H
#define TRAINSCOPE_TDA_ALERT_H

#include <stddef.h>
#include <stdint.h>

typedef struct tda_alert tda_alert;

typedef struct tda_alert_stats {
    uint64_t queued, run, rate_limited, queue_full, failed;
} tda_alert_stats;

/* 0, or a negative errno (no memory, no thread); err says which. */
int tda_alert_open(tda_alert **out, const char *cmd, double interval_s, int burst, char *err, size_t errlen);
/* Never blocks beyond a memcpy; returns 0, or -ENOSPC when the queue was full. */
int tda_alert_push(tda_alert *a, const char *json);
void tda_alert_get_stats(tda_alert *a, tda_alert_stats *s);
/* Runs the alerts still queued (within the rate limit), waits up to 5 s for
 * the children, stops the thread. NULL-safe. */
void tda_alert_close(tda_alert *a);

#endif
