/* tmcp_tools.h - the MCP tools of `trainscope mcp` (private to mcp/): their
 * JSON Schemas for tools/list and their handlers for tools/call. The
 * descriptions and schemas are documented for people in docs/mcp.md.
 *
 * Every handler answers with a CallToolResult: one text content item
 * holding compact JSON (numbers that JSON cannot hold, NaN and infinities,
 * are the strings "nan", "inf", "-inf", as in docs/report-schema.md), or
 * isError true and one sentence saying what was wrong.
 */
#ifndef TRAINSCOPE_TMCP_TOOLS_H
#define TRAINSCOPE_TMCP_TOOLS_H

#include "tmcp_source.h"

struct cJSON;

typedef struct tmcp_tools {
    tmcp_src *src;              /* not owned */
    int allow_write;            /* --allow-write: annotate is listed and works */
    /* Called while wait_for blocks, in place of sleeping: waits up to
     * wait_ms for the client; 1 stops the wait (the request was cancelled,
     * or the client went away). */
    int (*interrupted)(void *ctx, int wait_ms);
    void *interrupted_ctx;
} tmcp_tools;

/* The tools array of a tools/list result (caller owns it). */
struct cJSON *tmcp_tools_list(const tmcp_tools *t);

/* Call tool `name` with args (an object, or NULL for none). Returns the
 * CallToolResult (caller owns it), or NULL when there is no such tool. */
struct cJSON *tmcp_tools_call(tmcp_tools *t, const char *name, const struct cJSON *args);

#endif
