/* tda_finding.c - names of kinds and severities, and a finding as JSON
 * (contract: tda_finding.h; schema: docs/report-schema.md). */
#include "tda_finding.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const kind_names[TDA_KIND_COUNT] = {
    [TDA_SPIKE] = "spike",
    [TDA_NAN] = "nan",
    [TDA_INF] = "inf",
    [TDA_DIVERGENCE] = "divergence",
    [TDA_PLATEAU] = "plateau",
    [TDA_GRAD_EXPLOSION] = "grad_explosion",
    [TDA_THROUGHPUT_DROP] = "throughput_drop",
    [TDA_STRAGGLER] = "straggler",
    [TDA_STALLED] = "stalled",
};
static const char *const severity_names[] = {"info", "warning", "critical"};

const char *tda_kind_name(tda_kind k)
{
    return (unsigned)k < TDA_KIND_COUNT ? kind_names[k] : "unknown";
}

const char *tda_severity_name(tda_severity s)
{
    return (unsigned)s <= TDA_CRITICAL ? severity_names[s] : "unknown";
}

int tda_kind_parse(const char *name)
{
    for (int k = 0; k < TDA_KIND_COUNT; k++)
        if (strcmp(name, kind_names[k]) == 0)
            return k;
    return -1;
}

int tda_severity_parse(const char *name)
{
    for (int s = 0; s <= TDA_CRITICAL; s++)
        if (strcmp(name, severity_names[s]) == 0)
            return s;
    return -1;
}

cJSON *tda_json_number(double v)
{
    if (isnan(v))
        return cJSON_CreateString("nan");
    if (isinf(v))
        return cJSON_CreateString(v > 0 ? "inf" : "-inf");
    return cJSON_CreateNumber(v);
}

/* cJSON_Add*ToObject return NULL on failure; one check at the end is
 * enough because cJSON_Print of an incomplete object is never reached. */
static int add_num(cJSON *o, const char *k, double v)
{
    cJSON *n = tda_json_number(v);
    return n && cJSON_AddItemToObject(o, k, n) ? 0 : -1;
}

/* 64-bit integers printed exactly (a cJSON number is a double: wall times
 * in nanoseconds would lose their last digits). */
static int add_i64(cJSON *o, const char *k, int64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    return cJSON_AddRawToObject(o, k, buf) ? 0 : -1;
}

cJSON *tda_finding_json(const tda_finding *f)
{
    cJSON *o = cJSON_CreateObject(), *ev = NULL;
    int bad = !o;
    if (bad)
        return NULL;
    bad |= !cJSON_AddStringToObject(o, "kind", tda_kind_name(f->kind));
    bad |= !cJSON_AddStringToObject(o, "severity", tda_severity_name(f->severity));
    bad |= add_i64(o, "run_id", f->run_id) < 0;
    bad |= !cJSON_AddStringToObject(o, "run", f->run);
    bad |= !cJSON_AddStringToObject(o, "series", f->series);
    bad |= !cJSON_AddNumberToObject(o, "rank", f->rank);
    bad |= add_i64(o, "step_first", f->step_first) < 0;
    bad |= add_i64(o, "step_last", f->step_last) < 0;
    bad |= add_i64(o, "t_ns", f->t_ns) < 0;
    bad |= !(ev = cJSON_AddObjectToObject(o, "evidence"));
    if (!bad) {
        bad |= add_num(ev, "value", f->value) < 0;
        bad |= add_num(ev, "baseline", f->baseline) < 0;
        bad |= add_num(ev, "scale", f->scale) < 0;
        bad |= add_num(ev, "score", f->score) < 0;
        bad |= add_num(ev, "threshold", f->threshold) < 0;
    }
    bad |= !cJSON_AddStringToObject(o, "message", f->message);
    if (bad) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

char *tda_finding_json_text(const tda_finding *f)
{
    cJSON *o = tda_finding_json(f);
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return s;
}
