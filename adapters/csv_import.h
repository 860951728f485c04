/* csv_import.h - import points from CSV (tad_ prefix).
 *
 * Layout, told by the header row (names case-insensitive, any order):
 *   long:  metric, step, value  [, run] [, rank] [, wall_ns] [, timeline]
 *          one point per row; exactly what `trainscope export --format csv`
 *          writes, so an export imports back value- and time-exact.
 *   wide:  step, A, B, ...      [, wall_ns]
 *          one row per step, one column per metric; empty cells are skipped.
 * Values are read with strtod (and the exact NaN payloads export prints).
 * The run is --run, else the run column (one run per distinct value). The
 * whole file is checked before anything is sent: a bad row is reported with
 * its line number and nothing is imported.
 */
#ifndef TRAINSCOPE_CSV_IMPORT_H
#define TRAINSCOPE_CSV_IMPORT_H

#include "sink.h"

/* Exit status: 0, 1 (unreadable file, bad rows, sink failure; messages on
 * stderr). run may be NULL when the file has a run column. */
int tad_import_csv(const tad_sink_opts *so, const char *path, const char *run);

#endif
