/* tmcp.h - `trainscope mcp (STORE | tcp://collector-api)`: a Model Context
 * Protocol server on stdin/stdout, so that an AI assistant can read, watch
 * and analyse training runs (docs/mcp.md lists the tools and their schemas).
 *
 *   trainscope mcp runs.db                      a store file, read-only
 *   trainscope mcp tcp://127.0.0.1:5558         a collector's query API
 *   trainscope mcp runs.db --allow-write        also list the annotate tool
 *
 * The transport is MCP's stdio transport: newline-delimited JSON-RPC 2.0,
 * one message per line. stdout carries protocol frames only; diagnostics go
 * to stderr. The server negotiates the protocol revisions 2024-11-05,
 * 2025-03-26, 2025-06-18 and 2025-11-25 (the client's when it is one of
 * them, else the newest), and serves initialize, ping, tools/list and
 * tools/call. A line that is not JSON gets a -32700 error with id null, an
 * unknown method -32601, bad params -32602; a tool that fails (unknown run,
 * bad range) answers a result with isError true and a sentence saying why.
 * No input ends the server but the end of stdin (exit 0).
 *
 * Read-only unless --allow-write: without it the annotate tool is not
 * listed, and a call to it is refused with a sentence naming the option.
 * With it, annotate writes an event through the collector (tcp://: the
 * `annotate` op of the query API, applied by the collector's single
 * writer) or, on a STORE no collector holds, by opening it as the writer
 * for that one event.
 *
 * Prefix tmcp_. Internal parts (tmcp_source.h: where runs come from; the tools in
 * tools.c, tmcp_tools.h; the JSON-RPC loop in server.c) are private to mcp/.
 */
#ifndef TRAINSCOPE_TMCP_H
#define TRAINSCOPE_TMCP_H

/* The command; argv[0] is "mcp". Returns the exit status: 0 at the end of
 * stdin, 1 when the store or endpoint cannot be used, 2 a bad command line. */
int tmcp_main(int argc, char **argv);

#endif
