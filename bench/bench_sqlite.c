/* bench_sqlite.c - anchor: what SQLite in WAL mode takes on this machine,
 * rows of 3 KiB blobs per second, measured in the same run as trainscope.
 *
 *   bench_sqlite [--dir D] [--rows N] [--size BYTES] [--batch B]
 *
 * Creates D/trainscope-bench-sqlite-PID.db (deleted at the end), WAL mode,
 * synchronous=FULL as the collector's default, a table (id INTEGER PRIMARY
 * KEY, data BLOB) and inserts N rows of SIZE bytes with one prepared
 * statement, committing every B rows (B = 1: a transaction per row, the way
 * a naive logger would store one record per call). Prints rows/s and MB/s.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sqlite3.h>

#include "bench_util.h"

static int run(sqlite3 *db, long rows, int size, long batch)
{
    sqlite3_stmt *ins = NULL;
    char *blob = malloc((size_t)size);
    int rc = blob ? SQLITE_OK : SQLITE_NOMEM;
    for (int i = 0; blob && i < size; i++)
        blob[i] = (char)(i * 131 + 7);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, "INSERT INTO t(data) VALUES (?)", -1, &ins, NULL);
    for (long r = 0; rc == SQLITE_OK && r < rows; r++) {
        if (r % batch == 0 && batch > 1)
            rc = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
        memcpy(blob, &r, sizeof r); /* distinct rows */
        sqlite3_bind_blob(ins, 1, blob, size, SQLITE_STATIC);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(ins) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
        sqlite3_reset(ins);
        if (rc == SQLITE_OK && batch > 1 && (r % batch == batch - 1 || r == rows - 1))
            rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    }
    sqlite3_finalize(ins);
    free(blob);
    return rc;
}

int main(int argc, char **argv)
{
    const char *dir = "/tmp";
    long rows = 20000, batch = 1;
    int size = 3072;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--dir")) dir = argv[i + 1];
        else if (!strcmp(argv[i], "--rows")) rows = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--size")) size = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch")) batch = atol(argv[i + 1]);
        else {
            fprintf(stderr, "usage: bench_sqlite [--dir D] [--rows N] [--size BYTES] [--batch B]\n");
            return 2;
        }
    }
    if (rows < 1 || size < 1 || batch < 1) {
        fprintf(stderr, "bench_sqlite: bad arguments\n");
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/trainscope-bench-sqlite-%ld.db", dir, (long)getpid());
    sqlite3 *db;
    int rc = sqlite3_open(path, &db);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                              "CREATE TABLE t(id INTEGER PRIMARY KEY, data BLOB)", NULL, NULL, NULL);
    double t0 = bench_now_s();
    if (rc == SQLITE_OK)
        rc = run(db, rows, size, batch);
    double secs = bench_now_s() - t0;
    if (rc != SQLITE_OK)
        fprintf(stderr, "bench_sqlite: %s\n", sqlite3_errmsg(db));
    else
        printf("sqlite WAL synchronous=FULL, %d-byte blobs, %ld row%s per transaction: "
               "%.0f rows/s, %.1f MB/s\n", size, batch, batch == 1 ? "" : "s",
               (double)rows / secs, (double)rows * size / secs / 1e6);
    sqlite3_close(db);
    bench_unlink_db(path);
    return rc == SQLITE_OK ? 0 : 1;
}
