/* main.c - the `trainscope` command: dispatches to its subcommands.
 *
 *   trainscope collect [--store runs.db] ...   run the collector (collect_cmd.c)
 *   trainscope ls STORE                        list runs (cli.c)
 *   trainscope show STORE RUN                  one run in detail (cli.c)
 *   trainscope export STORE RUN ...            points as CSV or JSON lines (cli.c),
 *                                              or TensorBoard events (adapters/)
 *   trainscope tail --format F [FILE|-] ...    publish a trainer's log lines (adapters/)
 *   trainscope import tfevents|csv ...         bring existing runs in (adapters/)
 *   trainscope relay --upstream EP ...         fan a node's ranks into one connection (relay.c)
 *   trainscope keygen [--out NAME]             a CURVE key pair for remote attach (security.c)
 *   trainscope query API_EP [JSON]             one query-API request, keys from the env (query_cmd.c)
 *   trainscope mcp STORE|API_EP                an MCP server on stdio for AI assistants (mcp/)
 */
#include <stdio.h>
#include <string.h>

#include "adapters.h"
#include "cli.h"
#include "collector.h"
#include "tda_report.h"
#include "query_cmd.h"
#include "relay.h"
#include "security.h"
#include "tmcp.h"
#include "trainscope.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: trainscope COMMAND [ARGS]\n"
            "\n"
            "commands:\n"
            "  collect [--store PATH] [options]   receive runs from trainers and store them\n"
            "  ls STORE                           list the runs in a store\n"
            "  show STORE RUN                     config, metrics, time span, status, drops\n"
            "  export STORE RUN [--metric GLOB] [--format csv|jsonl] [--all-timelines]\n"
            "                                     every point, values printed round-trip exact\n"
            "  export STORE RUN --format tfevents --out DIR\n"
            "                                     a TensorBoard event file, values exact\n"
            "  tail --format F [FILE|-] --run NAME   publish the metrics a trainer prints\n"
            "  report STORE RUN [--json] [--against RUN2]\n"
            "                                     final/best values, statistics, findings, comparison\n"
            "  import tfevents PATH... | import csv FILE --run NAME\n"
            "                                     bring TensorBoard or CSV runs in\n"
            "  relay --upstream tcp://HOST:PORT   one per node: its ranks share one connection\n"
            "  keygen [--out NAME]                a CURVE key pair for encrypted remote attach\n"
            "  query API_EP [JSON]                ask a (remote) collector's query API, with keys\n"
            "  mcp STORE|API_EP [--allow-write]   an MCP server on stdio: AI assistants read and watch runs\n"
            "  version                            print the version\n"
            "\n"
            "`trainscope COMMAND --help` describes a command.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "collect") == 0)
        return tcl_collect_main(argc - 1, argv + 1);
    if (strcmp(cmd, "ls") == 0)
        return tcli_ls_main(argc - 1, argv + 1);
    if (strcmp(cmd, "show") == 0)
        return tcli_show_main(argc - 1, argv + 1);
    if (strcmp(cmd, "export") == 0)
        return tcli_export_main(argc - 1, argv + 1);
    if (strcmp(cmd, "report") == 0)
        return tda_report_main(argc - 1, argv + 1);
    if (strcmp(cmd, "tail") == 0)
        return tad_tail_main(argc - 1, argv + 1);
    if (strcmp(cmd, "import") == 0)
        return tad_import_main(argc - 1, argv + 1);
    if (strcmp(cmd, "relay") == 0)
        return trl_relay_main(argc - 1, argv + 1);
    if (strcmp(cmd, "keygen") == 0)
        return tsec_keygen_main(argc - 1, argv + 1);
    if (strcmp(cmd, "query") == 0)
        return trc_query_main(argc - 1, argv + 1);
    if (strcmp(cmd, "mcp") == 0)
        return tmcp_main(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("trainscope %s (protocol 1)\n", TS_VERSION_STRING);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "trainscope: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
