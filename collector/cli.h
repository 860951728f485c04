/* cli.h - the store-reading commands of `trainscope`: ls, show, export.
 *
 * Each takes (argc, argv) with argv[0] the command name and returns the
 * process exit status: 0 success, 1 a runtime error (store missing or
 * corrupt, run not found), 2 a usage error. Errors go to stderr as one
 * sentence naming what was wrong; results go to stdout.
 */
#ifndef TRAINSCOPE_CLI_H
#define TRAINSCOPE_CLI_H

#include <stddef.h>

int tcli_ls_main(int argc, char **argv);
int tcli_show_main(int argc, char **argv);
int tcli_export_main(int argc, char **argv);

/* Format v so that strtod() gives back the same 64 bits: the shortest of
 * %.15g/%.16g/%.17g that round-trips; "inf"/"-inf"; "nan" for the default
 * quiet NaN and "nan(0x...)"/"-nan(0x...)" with the payload otherwise.
 * Returns the length written (buf of at least 40 bytes). */
size_t tcli_format_double(char *buf, size_t cap, double v);

#endif
