/* tda_finding.h - a finding of the analysis detectors (analysis/), and its
 * JSON form. docs/report-schema.md documents the JSON for programs.
 *
 * A finding names a run, a series (metric and rank; empty for run-level
 * findings such as "stalled"), a step range, a severity, and the evidence:
 * the value that triggered it, the baseline it was compared with, the scale
 * (robust sigma) of that comparison, the score and the threshold it crossed.
 * Fixed-size fields, so a finding is copied into queues without allocation.
 */
#ifndef TRAINSCOPE_TDA_FINDING_H
#define TRAINSCOPE_TDA_FINDING_H

#include <stdint.h>

struct cJSON;

typedef enum tda_kind {
    TDA_SPIKE,              /* value far above the rolling median (robust z) */
    TDA_NAN,                /* first NaN of the series */
    TDA_INF,                /* first +-Inf of the series */
    TDA_DIVERGENCE,         /* smoothed value rose well above its best and stayed */
    TDA_PLATEAU,            /* no new best for a window of steps */
    TDA_GRAD_EXPLOSION,     /* a gradient norm (global or one layer) far above its median */
    TDA_THROUGHPUT_DROP,    /* throughput well below its median for several points */
    TDA_STRAGGLER,          /* one rank consistently slower than the others */
    TDA_STALLED,            /* no data for a while, the run has not said goodbye */
    TDA_KIND_COUNT
} tda_kind;

typedef enum tda_severity { TDA_INFO, TDA_WARNING, TDA_CRITICAL } tda_severity;

#define TDA_NAME_MAX 256

typedef struct tda_finding {
    tda_kind kind;
    tda_severity severity;
    int64_t run_id;
    char run[2 * TDA_NAME_MAX]; /* display name (project/name) */
    int64_t series_id;          /* 0 for run-level findings */
    char series[TDA_NAME_MAX];  /* metric name; "" for run-level findings */
    int rank;                   /* -1 for run-level findings */
    int64_t step_first, step_last;
    int64_t t_ns;               /* wall time of the point that triggered it (0 if unknown) */
    double value;               /* evidence: the triggering value (or a rate, a duration) */
    double baseline;            /* what it was compared with (rolling median, best, others' median) */
    double scale;               /* robust sigma of the comparison (NaN when not a z-score) */
    double score;               /* z-score, ratio or seconds, per kind (docs/report-schema.md) */
    double threshold;           /* the threshold score crossed */
    char message[256];          /* one sentence for people */
} tda_finding;

const char *tda_kind_name(tda_kind k);
const char *tda_severity_name(tda_severity s);
/* -1 for an unknown name. */
int tda_kind_parse(const char *name);
int tda_severity_parse(const char *name);

/* The finding as a JSON object (NULL when out of memory); the caller frees
 * it with cJSON_Delete. Non-finite numbers are written as strings "nan",
 * "inf", "-inf" (JSON has no such numbers). */
struct cJSON *tda_finding_json(const tda_finding *f);
/* The same, printed on one line into a malloc'ed string (NULL: no memory). */
char *tda_finding_json_text(const tda_finding *f);
/* A number for a JSON document: a number, or the strings above. */
struct cJSON *tda_json_number(double v);

#endif
