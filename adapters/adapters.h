/* adapters.h - the `trainscope` subcommands of adapters/ (tad_ prefix).
 *
 * Each takes (argc, argv) with argv[0] the command name and returns the
 * process exit status: 0 success, 1 a runtime error (missing file, collector
 * unreachable, corrupt input that left nothing to import), 2 a usage error.
 * Messages go to stderr as sentences naming the file and the cause.
 */
#ifndef TRAINSCOPE_ADAPTERS_H
#define TRAINSCOPE_ADAPTERS_H

/* trainscope tail --format F [FILE|-] --run NAME ...   (tail_cmd.c) */
int tad_tail_main(int argc, char **argv);
/* trainscope import tfevents|csv ...                     (import_cmd.c) */
int tad_import_main(int argc, char **argv);
/* trainscope export STORE RUN --format tfevents --out DIR (export_tfevents.c) */
int tad_export_tfevents_main(int argc, char **argv);
/* 1 when an export command line asks for --format tfevents, so the CSV/JSONL
 * exporter can hand it over. */
int tad_export_wants_tfevents(int argc, char **argv);

#endif
