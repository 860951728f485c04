/* server.c - `trainscope mcp`: the MCP stdio transport and JSON-RPC 2.0
 * (tmcp.h describes the command). One message per line on stdin, one per
 * line on stdout; every diagnostic goes to stderr, because a byte on stdout
 * that is not a frame would break the client.
 *
 * Requests are answered one at a time, in order. While wait_for blocks, the
 * server keeps reading stdin (tmcp_tools.h's interrupted hook): a ping is answered
 * at once, a notifications/cancelled for the waiting request ends the wait
 * (and, as the protocol asks, no answer is sent for it), anything else is
 * queued and served after the wait.
 *
 * Knobs: MAX_LINE, the longest message taken (a longer line is answered
 * with a parse error and skipped up to its newline).
 */
#include "tmcp.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tmcp_source.h"
#include "tmcp_tools.h"

#ifndef TMCP_VERSION
#define TMCP_VERSION "0.0.0"
#endif

#define MAX_LINE (16u << 20)

/* JSON-RPC error codes. */
#define E_PARSE (-32700)
#define E_INVALID_REQUEST (-32600)
#define E_METHOD (-32601)
#define E_PARAMS (-32602)

/* Newest first: the answer to a client that asks for something else. */
static const char *const VERSIONS[] = { "2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05" };

typedef struct server {
    tmcp_tools tools;
    char *buf;              /* bytes read from stdin, not yet split into lines */
    size_t len, cap;
    int skipping;           /* inside a line longer than MAX_LINE */
    int eof;
    char **queue;           /* lines read during a wait, served after it */
    size_t nqueue, qhead, qcap;
    const cJSON *waiting_id;    /* the request being served (for cancellation) */
    int cancelled;
} server;

/* ---- output -------------------------------------------------------------- */

static void send_frame(cJSON *msg)
{
    char *text = cJSON_PrintUnformatted(msg);
    cJSON_Delete(msg);
    if (!text) {
        fprintf(stderr, "trainscope mcp: out of memory writing a reply\n");
        return;
    }
    /* One write of the whole line and a flush: the client reads lines. */
    fputs(text, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    free(text);
}

static cJSON *envelope(const cJSON *id)
{
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "jsonrpc", "2.0");
    cJSON_AddItemToObject(m, "id", id ? cJSON_Duplicate(id, 1) : cJSON_CreateNull());
    return m;
}

static void send_result(const cJSON *id, cJSON *result)
{
    cJSON *m = envelope(id);
    cJSON_AddItemToObject(m, "result", result ? result : cJSON_CreateObject());
    send_frame(m);
}

static void send_error(const cJSON *id, int code, const char *message)
{
    cJSON *m = envelope(id), *e = cJSON_AddObjectToObject(m, "error");
    cJSON_AddNumberToObject(e, "code", code);
    cJSON_AddStringToObject(e, "message", message);
    send_frame(m);
}

/* ---- methods ------------------------------------------------------------- */

static void on_initialize(server *s, const cJSON *id, const cJSON *params)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, "protocolVersion");
    if (!cJSON_IsString(v)) {
        send_error(id, E_PARAMS, "initialize needs params.protocolVersion (a string such as \"2025-06-18\")");
        return;
    }
    const char *chosen = VERSIONS[0];
    for (size_t i = 0; i < sizeof VERSIONS / sizeof VERSIONS[0]; i++)
        if (strcmp(v->valuestring, VERSIONS[i]) == 0)
            chosen = VERSIONS[i];
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "protocolVersion", chosen);
    cJSON *caps = cJSON_AddObjectToObject(r, "capabilities");
    cJSON_AddFalseToObject(cJSON_AddObjectToObject(caps, "tools"), "listChanged");
    cJSON *info = cJSON_AddObjectToObject(r, "serverInfo");
    cJSON_AddStringToObject(info, "name", "trainscope");
    cJSON_AddStringToObject(info, "version", TMCP_VERSION);
    cJSON_AddStringToObject(r, "instructions",
        "trainscope monitors machine-learning training runs. Start with list_runs, then describe_run "
        "for one run's config, metrics and status; get_series returns a metric's points, reduced to "
        "min/max/first/last buckets when long; report gives final/best values, statistics and the "
        "detectors' findings (spikes, NaN, divergence, plateaus, stragglers, stalls); compare_runs "
        "compares two runs; wait_for blocks until a live run reaches a step or a new finding appears."
        " Runs are named 'name' or 'project/name'; steps are integers.");
    send_result(id, r);
}

static void on_tools_call(server *s, const cJSON *id, const cJSON *params)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(params, "name");
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(params, "arguments");
    if (!cJSON_IsObject(params) || !cJSON_IsString(name)) {
        send_error(id, E_PARAMS, "tools/call needs params.name, the name of a tool from tools/list");
        return;
    }
    if (args && !cJSON_IsNull(args) && !cJSON_IsObject(args)) {
        send_error(id, E_PARAMS, "tools/call params.arguments must be an object");
        return;
    }
    s->waiting_id = id;
    s->cancelled = 0;
    cJSON *r = tmcp_tools_call(&s->tools, name->valuestring, cJSON_IsObject(args) ? args : NULL);
    s->waiting_id = NULL;
    if (!r) {
        char msg[600];
        snprintf(msg, sizeof msg, "unknown tool '%.500s' (tools/list lists them)", name->valuestring);
        send_error(id, E_PARAMS, msg);
    } else if (s->cancelled) {
        cJSON_Delete(r);    /* a cancelled request gets no answer */
    } else {
        send_result(id, r);
    }
}

/* One JSON-RPC message (a parsed line). */
static void handle(server *s, const cJSON *m)
{
    if (cJSON_IsArray(m)) {
        send_error(NULL, E_INVALID_REQUEST, "batches (JSON arrays) are not supported: send one message per line");
        return;
    }
    if (!cJSON_IsObject(m)) {
        send_error(NULL, E_INVALID_REQUEST, "a message must be a JSON object");
        return;
    }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "id");
    const cJSON *method = cJSON_GetObjectItemCaseSensitive(m, "method");
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(m, "jsonrpc");
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(m, "params");
    if (id && !cJSON_IsString(id) && !cJSON_IsNumber(id)) {
        send_error(NULL, E_INVALID_REQUEST, "\"id\" must be a string or a number");
        return;
    }
    if (!cJSON_IsString(ver) || strcmp(ver->valuestring, "2.0") != 0) {
        send_error(id, E_INVALID_REQUEST, "\"jsonrpc\" must be \"2.0\"");
        return;
    }
    if (!method) {
        /* A response to a request of ours: this server sends none. */
        if (!cJSON_GetObjectItemCaseSensitive(m, "result") && !cJSON_GetObjectItemCaseSensitive(m, "error"))
            send_error(id, E_INVALID_REQUEST, "a request needs a \"method\"");
        return;
    }
    if (!cJSON_IsString(method)) {
        send_error(id, E_INVALID_REQUEST, "\"method\" must be a string");
        return;
    }
    const char *name = method->valuestring;
    if (!id)
        return;     /* notifications: initialized, cancelled (outside a wait), others unknown */
    if (params && !cJSON_IsObject(params)) {
        send_error(id, E_PARAMS, "\"params\" must be an object");
        return;
    }
    if (strcmp(name, "initialize") == 0) {
        on_initialize(s, id, params);
    } else if (strcmp(name, "ping") == 0) {
        send_result(id, NULL);
    } else if (strcmp(name, "tools/list") == 0) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddItemToObject(r, "tools", tmcp_tools_list(&s->tools));
        send_result(id, r);
    } else if (strcmp(name, "tools/call") == 0) {
        on_tools_call(s, id, params);
    } else {
        char msg[600];
        snprintf(msg, sizeof msg, "method not found: '%.500s' (this server has tools only: "
                 "initialize, ping, tools/list, tools/call)", name);
        send_error(id, E_METHOD, msg);
    }
}

static void handle_line(server *s, const char *line)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
        n--;
    if (n == 0)
        return;
    cJSON *m = cJSON_ParseWithLength(line, n);
    if (!m) {
        const char *at = cJSON_GetErrorPtr();
        char msg[200];
        snprintf(msg, sizeof msg, "parse error: the line is not JSON (at byte %zu of %zu)",
                 at && at >= line && at <= line + n ? (size_t)(at - line) : (size_t)0, n);
        send_error(NULL, E_PARSE, msg);
        return;
    }
    handle(s, m);
    cJSON_Delete(m);
}

/* ---- input --------------------------------------------------------------- */

/* Read what stdin has, waiting up to timeout_ms (-1: until something comes).
 * Returns 1 when bytes came, 0 on timeout, -1 at the end of input. */
static int read_more(server *s, int timeout_ms)
{
    struct pollfd p = { .fd = 0, .events = POLLIN };
    int rc = poll(&p, 1, timeout_ms);
    if (rc < 0)
        return errno == EINTR ? 0 : -1;
    if (rc == 0)
        return 0;
    if (s->cap - s->len < 65536) {
        size_t cap = s->cap ? s->cap * 2 : 131072;
        char *b = realloc(s->buf, cap);
        if (!b)
            return -1;
        s->buf = b;
        s->cap = cap;
    }
    ssize_t got = read(0, s->buf + s->len, s->cap - s->len - 1);
    if (got < 0)
        return errno == EINTR || errno == EAGAIN ? 0 : -1;
    if (got == 0)
        return -1;
    s->len += (size_t)got;
    return 1;
}

/* Take one complete line out of the buffer (malloc'ed, without '\n'), or
 * NULL when none is complete. Overlong lines are answered and dropped. */
static char *take_line(server *s)
{
    for (;;) {
        char *nl = s->len ? memchr(s->buf, '\n', s->len) : NULL;
        if (!nl) {
            if (s->len > MAX_LINE) {
                if (!s->skipping)
                    send_error(NULL, E_PARSE, "parse error: a message longer than 16 MiB was skipped");
                s->skipping = 1;
                s->len = 0;
            }
            return NULL;
        }
        size_t n = (size_t)(nl - s->buf);
        char *line = NULL;
        if (s->skipping)
            s->skipping = 0;
        else if ((line = malloc(n + 1))) {
            memcpy(line, s->buf, n);
            line[n] = 0;
        }
        memmove(s->buf, nl + 1, s->len - n - 1);
        s->len -= n + 1;
        if (line)
            return line;
    }
}

static int queue_push(server *s, char *line)
{
    if (s->nqueue == s->qcap) {
        size_t cap = s->qcap ? s->qcap * 2 : 16;
        char **q = realloc(s->queue, cap * sizeof *q);
        if (!q)
            return -1;
        s->queue = q;
        s->qcap = cap;
    }
    s->queue[s->nqueue++] = line;
    return 0;
}

/* During a wait: answer pings, notice the cancellation of the waiting
 * request and the end of input; queue everything else. */
static int wait_interrupted(void *ctx, int wait_ms)
{
    server *s = ctx;
    if (s->eof)
        poll(NULL, 0, wait_ms);
    else if (read_more(s, wait_ms < 0 ? 0 : wait_ms) < 0)
        s->eof = 1;
    char *line;
    while ((line = take_line(s))) {
        cJSON *m = cJSON_Parse(line);
        const cJSON *method = cJSON_GetObjectItemCaseSensitive(m, "method");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "id");
        const cJSON *params = cJSON_GetObjectItemCaseSensitive(m, "params");
        const cJSON *rid = cJSON_GetObjectItemCaseSensitive(params, "requestId");
        if (cJSON_IsString(method) && strcmp(method->valuestring, "ping") == 0 && id) {
            send_result(id, NULL);
            free(line);
        } else if (cJSON_IsString(method) && strcmp(method->valuestring, "notifications/cancelled") == 0) {
            if (rid && s->waiting_id && cJSON_Compare(rid, s->waiting_id, 1))
                s->cancelled = 1;
            free(line);
        } else if (queue_push(s, line) < 0) {
            free(line);
        }
        cJSON_Delete(m);
    }
    return s->cancelled || s->eof;
}

int tmcp_main(int argc, char **argv)
{
    const char *target = NULL;
    int allow_write = 0;
    char err[1024];
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: trainscope mcp (STORE | tcp://HOST:PORT) [--allow-write]\n"
                   "\n"
                   "An MCP (Model Context Protocol) server on stdin/stdout for AI assistants:\n"
                   "tools list_runs, describe_run, get_series, report, compare_runs, wait_for,\n"
                   "and with --allow-write annotate (see docs/mcp.md). STORE is a store file\n"
                   "(read-only); tcp://HOST:PORT a collector's query API (keys from\n"
                   "TRAINSCOPE_SERVER_KEY / TRAINSCOPE_CLIENT_KEY when it uses CURVE).\n"
                   "Register it with a client as {\"command\": \"trainscope\", \"args\": [\"mcp\", \"runs.db\"]}.\n");
            return 0;
        }
        if (strcmp(argv[i], "--allow-write") == 0) {
            allow_write = 1;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "trainscope mcp: unknown option '%s' (try --help)\n", argv[i]);
            return 2;
        } else if (!target) {
            target = argv[i];
        } else {
            fprintf(stderr, "trainscope mcp: one STORE or endpoint, got '%s' and '%s'\n", target, argv[i]);
            return 2;
        }
    }
    if (!target) {
        fprintf(stderr, "usage: trainscope mcp (STORE | tcp://HOST:PORT) [--allow-write]\n");
        return 2;
    }
    /* A client that goes away while a reply is written must not kill us
     * with SIGPIPE before the store is closed; the write just fails. */
    signal(SIGPIPE, SIG_IGN);
    server s = { .tools = { .allow_write = allow_write } };
    if (tmcp_src_open(&s.tools.src, target, err, sizeof err) < 0) {
        fprintf(stderr, "trainscope mcp: %s\n", err);
        return 1;
    }
    s.tools.interrupted = wait_interrupted;
    s.tools.interrupted_ctx = &s;
    fprintf(stderr, "trainscope mcp: serving %s%s over stdio\n", target, allow_write ? " (writes allowed)" : "");
    for (;;) {
        char *line = NULL;
        if (s.qhead < s.nqueue) {
            line = s.queue[s.qhead++];
            if (s.qhead == s.nqueue)
                s.qhead = s.nqueue = 0;
        } else if (!(line = take_line(&s))) {
            if (s.eof)
                break;
            if (read_more(&s, -1) < 0)
                s.eof = 1;
            continue;
        }
        handle_line(&s, line);
        free(line);
    }
    /* The last line may come without a newline. */
    if (s.len && !s.skipping) {
        s.buf[s.len] = 0;
        handle_line(&s, s.buf);
    }
    for (size_t i = s.qhead; i < s.nqueue; i++)
        free(s.queue[i]);
    free(s.queue);
    free(s.buf);
    tmcp_src_close(s.tools.src);
    return 0;
}
