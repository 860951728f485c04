/* store.c - the trainscope store: opening, the schema, and the writer.
 *
 * The contract is store.h; the schema, with the reason for every column, is
 * docs/store.md; the readers are in store_read.c. The writer keeps one open
 * chunk per series in memory (a tsc_enc and its summary, in an array indexed
 * by series id) and writes it as a chunk row when it fills up, when the
 * series resumes from an earlier step, and on every tss_commit (the open
 * chunk's row is then rewritten in place, INSERT once and UPDATE after).
 *
 * Knobs:
 *   TSS_BUSY_TIMEOUT_MS  how long a statement waits for a lock (readers wait
 *                        out a writer's WAL reset or recovery instead of failing)
 *   TSS_DEFAULT_UNIT_NS  time unit of a new store when the opener gives none (1 ms)
 *   TSS_MAX_SERIES_ID    largest series id the writer's array will grow to
 *   TSS_PAGE_SIZE        SQLite page size of a new store (1 KiB: a chunk blob of
 *                        about 14 KiB spills into overflow pages, and its last
 *                        page is half empty on average; at 4 KiB that cost 0.5
 *                        byte per point, 15% of a noisy loss curve's file)
 */
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define TSS_BUSY_TIMEOUT_MS 5000
#define TSS_DEFAULT_UNIT_NS 1000000
#define TSS_MAX_SERIES_ID (1 << 24)
#define TSS_PAGE_SIZE 1024
#define TSS_STR_(x) #x /* a number in SQL text */
#define TSS_STR(x) TSS_STR_(x)

/* ---- errors ------------------------------------------------------------ */

int tss__fail(tss_store *st, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->err, sizeof st->err, fmt, ap);
    va_end(ap);
    return rc;
}

static int tss_errno_of(int sqlrc)
{
    switch (sqlrc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return -EBUSY;
    case SQLITE_NOMEM: return -ENOMEM;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: return -EINVAL;
    case SQLITE_FULL: return -ENOSPC;
    case SQLITE_READONLY: return -EROFS;
    case SQLITE_PERM:
    case SQLITE_AUTH: return -EACCES;
    default: return -EIO;
    }
}

int tss__sqlfail(tss_store *st, int sqlrc, const char *what)
{
    int rc = tss_errno_of(sqlrc);

    st->sqlrc = sqlrc;
    tss__fail(st, rc, "%s: %s: %s", st->path, what, st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(sqlrc));
    /* SQLite rolls a transaction back by itself on some errors (disk full,
     * I/O). Chunk rows inserted in it are gone while the open chunks still
     * carry their ids, so the writer refuses to go on rather than lose data
     * silently. */
    if (st->writer && st->in_txn && sqlite3_get_autocommit(st->db)) {
        st->in_txn = 0;
        st->broken = rc;
    }
    return rc;
}

static int tss_broken(tss_store *st)
{
    return tss__fail(st, st->broken,
                     "%s: an earlier write failed and SQLite rolled back the open transaction; "
                     "close and reopen the store", st->path);
}

/* ---- statements -------------------------------------------------------- */

/* Times in runs, streams, events and gaps are nanoseconds; chunk times are
 * store units (see meta.time_unit_ns). Chunk summaries vmin..vlast are NULL
 * where the value is NaN (SQLite cannot store NaN). */
static const char *const tss_sql[TSS_Q_COUNT] = {
    [TSS_Q_BEGIN] = "BEGIN",
    [TSS_Q_COMMIT] = "COMMIT",
    [TSS_Q_RUN_UPSERT] =
        "INSERT INTO runs(project, name, status, config, world_size, created_ns, updated_ns) "
        "VALUES(?1, ?2, 'running', ?3, ?4, ?5, ?5) "
        "ON CONFLICT(project, name) DO UPDATE SET status = 'running', "
        "config = COALESCE(excluded.config, config), world_size = excluded.world_size, "
        "updated_ns = MAX(updated_ns, excluded.updated_ns), ended_ns = NULL",
    [TSS_Q_RUN_ID] = "SELECT id FROM runs WHERE project = ?1 AND name = ?2",
    [TSS_Q_RUN_STATUS] =
        "UPDATE runs SET status = ?2, updated_ns = MAX(updated_ns, ?3), "
        "ended_ns = CASE WHEN ?2 = 'running' THEN NULL ELSE ?3 END WHERE id = ?1",
    [TSS_Q_RUN_TOUCH] = "UPDATE runs SET updated_ns = MAX(updated_ns, ?2) WHERE id = ?1",
    [TSS_Q_STREAM_UPSERT] =
        "INSERT INTO streams(id, run_id, rank, hello, started_ns) VALUES(?1, ?2, ?3, ?4, ?5) "
        "ON CONFLICT(id) DO UPDATE SET run_id = excluded.run_id, rank = excluded.rank, "
        "hello = excluded.hello, ended_ns = NULL",
    [TSS_Q_STREAM_FIND] =
        "SELECT run_id, rank, last_seq, ended_ns IS NOT NULL FROM streams WHERE id = ?1",
    [TSS_Q_STREAM_SEQ] = "UPDATE streams SET last_seq = ?2 WHERE id = ?1",
    [TSS_Q_STREAM_END] = "UPDATE streams SET ended_ns = ?2 WHERE id = ?1",
    [TSS_Q_SERIES_FIND] = "SELECT id FROM series WHERE run_id = ?1 AND rank = ?2 AND name = ?3",
    [TSS_Q_SERIES_INSERT] = "INSERT INTO series(run_id, rank, name) VALUES(?1, ?2, ?3)",
    [TSS_Q_SERIES_RUN] = "SELECT run_id FROM series WHERE id = ?1",
    [TSS_Q_BIND] =
        "INSERT OR REPLACE INTO stream_metrics(stream_id, metric_id, series_id) VALUES(?1, ?2, ?3)",
    [TSS_Q_BINDINGS] =
        "SELECT metric_id, series_id FROM stream_metrics WHERE stream_id = ?1 ORDER BY metric_id",
    [TSS_Q_CHUNK_INSERT] =
        "INSERT INTO chunks(series_id, gen, step_first, step_last, t_first, t_last, n, "
        "vmin, vmax, vfirst, vlast, n_nan, n_inf, groups, data) "
        "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?15, ?14)",
    [TSS_Q_CHUNK_UPDATE] =
        "UPDATE chunks SET gen = ?2, step_first = ?3, step_last = ?4, t_first = ?5, t_last = ?6, "
        "n = ?7, vmin = ?8, vmax = ?9, vfirst = ?10, vlast = ?11, n_nan = ?12, n_inf = ?13, "
        "groups = ?15, data = ?14 WHERE id = ?1",
    /* version 1: no groups column */
    [TSS_Q_CHUNK_INSERT1] =
        "INSERT INTO chunks(series_id, gen, step_first, step_last, t_first, t_last, n, "
        "vmin, vmax, vfirst, vlast, n_nan, n_inf, data) "
        "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    [TSS_Q_CHUNK_UPDATE1] =
        "UPDATE chunks SET gen = ?2, step_first = ?3, step_last = ?4, t_first = ?5, t_last = ?6, "
        "n = ?7, vmin = ?8, vmax = ?9, vfirst = ?10, vlast = ?11, n_nan = ?12, n_inf = ?13, "
        "data = ?14 WHERE id = ?1",
    /* The latest chunk of the newest generation, in the order of the index. */
    [TSS_Q_CHUNK_LATEST] =
        "SELECT gen, step_last FROM chunks WHERE series_id = ?1 "
        "ORDER BY gen DESC, step_first DESC, step_last DESC, id DESC LIMIT 1",
    [TSS_Q_CHUNK_DATA] = "SELECT data FROM chunks WHERE id = ?1",
    [TSS_Q_GROUPS_GET] = "SELECT groups FROM chunks WHERE id = ?1",
    [TSS_Q_EVENT_INSERT] =
        "INSERT INTO events(run_id, rank, step, t_ns, kind, text) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
    [TSS_Q_GAP_INSERT] =
        "INSERT INTO gaps(run_id, rank, count, step_first, step_last, t_first_ns, t_last_ns) "
        "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [TSS_Q_RUNS_LIST] =
        "SELECT r.id, r.project, r.name, r.status, r.config, r.world_size, r.created_ns, "
        "r.updated_ns, r.ended_ns, "
        "(SELECT COALESCE(SUM(c.n), 0) FROM series s JOIN chunks c ON c.series_id = s.id "
        " WHERE s.run_id = r.id), "
        "(SELECT COUNT(*) FROM series s WHERE s.run_id = r.id), "
        "(SELECT COALESCE(SUM(g.count), 0) FROM gaps g WHERE g.run_id = r.id), "
        "(SELECT COUNT(*) FROM events e WHERE e.run_id = r.id AND e.kind = 'resume') "
        "FROM runs r ORDER BY r.created_ns DESC, r.id DESC",
    [TSS_Q_RUN_FIND] =
        "SELECT id, project FROM runs WHERE name = ?1 "
        "OR (project <> '' AND project || '/' || name = ?1) ORDER BY project, id",
    [TSS_Q_SERIES_LIST] =
        "SELECT s.id, s.run_id, s.rank, s.name, COALESCE(SUM(c.n), 0), MIN(c.step_first), "
        "MAX(c.step_last), MIN(c.t_first), MAX(c.t_last), MIN(c.vmin), MAX(c.vmax), "
        "COALESCE(SUM(c.n_nan), 0), COALESCE(SUM(c.n_inf), 0), COALESCE(MAX(c.gen) + 1, 0) "
        "FROM series s LEFT JOIN chunks c ON c.series_id = s.id WHERE s.run_id = ?1 "
        "GROUP BY s.id ORDER BY s.rank, s.name",
    /* The first chunk of the first timeline after ?2: one index seek per
     * timeline (a GROUP BY gen read every chunk entry of the series). */
    [TSS_Q_GENS] =
        "SELECT gen, step_first FROM chunks WHERE series_id = ?1 AND gen > ?2 "
        "ORDER BY gen, step_first LIMIT 1",
    /* Chunk order = the order the points arrived in: by generation, and
     * within one, steps never go back (ties: the older row first). */
    [TSS_Q_CHUNKS_RANGE] =
        "SELECT id, gen, step_first, step_last, n, vmin, vmax, vfirst, vlast, n_nan, n_inf "
        "FROM chunks WHERE series_id = ?1 AND step_first <= ?3 AND step_last >= ?2 "
        "ORDER BY gen, step_first, step_last, id",
    [TSS_Q_EVENTS_LIST] =
        "SELECT id, run_id, rank, step, t_ns, kind, text FROM events WHERE run_id = ?1 "
        "ORDER BY t_ns, id",
    [TSS_Q_GAPS_LIST] =
        "SELECT run_id, rank, count, step_first, step_last, t_first_ns, t_last_ns FROM gaps "
        "WHERE run_id = ?1 ORDER BY t_first_ns, id",
};

/* Cached statements are always reset after use, so a cached one is ready. */
int tss__stmt(tss_store *st, enum tss_q q, sqlite3_stmt **out)
{
    int rc;

    *out = NULL;
    if (!st->q[q]) {
        rc = sqlite3_prepare_v3(st->db, tss_sql[q], -1, SQLITE_PREPARE_PERSISTENT, &st->q[q], NULL);
        if (rc != SQLITE_OK)
            return tss__sqlfail(st, rc, "prepare");
    }
    *out = st->q[q];
    return 0;
}

int tss__exec(tss_store *st, sqlite3_stmt *s, const char *what)
{
    int rc = sqlite3_step(s);

    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        rc = tss__sqlfail(st, rc, what);
        sqlite3_reset(s);
        return rc;
    }
    sqlite3_reset(s);
    return 0;
}

/* One-off statement returning at most one integer: 1 and *val when a row
 * came back, 0 when none, negative on error. */
static int tss_query_int(tss_store *st, const char *sql, int64_t *val, const char *what)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);

    if (rc != SQLITE_OK)
        return tss__sqlfail(st, rc, what);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *val = sqlite3_column_int64(s, 0);
        rc = 1;
    } else if (rc == SQLITE_DONE) {
        rc = 0;
    } else {
        rc = tss__sqlfail(st, rc, what);
    }
    sqlite3_finalize(s);
    return rc;
}

/* ---- the writer lock --------------------------------------------------- */

/* Writer handles of this process, by the identity of the file they lock.
 * Closing any descriptor of a file drops every POSIX lock the process holds
 * on it, SQLite's included, so a second writer in the same process must be
 * refused before it opens the file, not by the flock that would fail after. */
static pthread_mutex_t tss_writers_mu = PTHREAD_MUTEX_INITIALIZER;
static tss_store *tss_writers;

static int tss_writer_in_process(dev_t dev, ino_t ino)
{
    for (tss_store *w = tss_writers; w; w = w->next_writer)
        if (w->dev == dev && w->ino == ino)
            return 1;
    return 0;
}

static int tss_busy(tss_store *st)
{
    return tss__fail(st, -EBUSY, "store %s is already being written by another collector (lock held)",
                     st->path);
}

static int tss_open_errno(tss_store *st, int e, const char *what)
{
    int rc = e == ENOENT ? -ENOENT : e == EACCES || e == EPERM ? -EACCES : -EIO;

    return tss__fail(st, rc, "cannot %s %s: %s", what, st->path, strerror(e));
}

/* Open (creating) the file and take the exclusive lock that makes this
 * handle the only writer, before SQLite sees the file. */
static int tss_lock_take(tss_store *st)
{
    struct stat sb;
    int fd, rc = 0;

    pthread_mutex_lock(&tss_writers_mu);
    if (stat(st->path, &sb) == 0 && tss_writer_in_process(sb.st_dev, sb.st_ino)) {
        rc = tss_busy(st);
        goto out;
    }
    fd = open(st->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = tss_open_errno(st, errno, "open");
        goto out;
    }
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        rc = tss__fail(st, -EINVAL, "%s is not a regular file, not a trainscope store", st->path);
        goto fail_fd;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        rc = errno == EWOULDBLOCK ? tss_busy(st) : tss_open_errno(st, errno, "lock");
        goto fail_fd;
    }
    st->lock_fd = fd;
    st->dev = sb.st_dev;
    st->ino = sb.st_ino;
    st->next_writer = tss_writers;
    tss_writers = st;
    goto out;
fail_fd:
    close(fd);
out:
    pthread_mutex_unlock(&tss_writers_mu);
    return rc;
}

static void tss_lock_release(tss_store *st)
{
    pthread_mutex_lock(&tss_writers_mu);
    for (tss_store **p = &tss_writers; *p; p = &(*p)->next_writer) {
        if (*p == st) {
            *p = st->next_writer;
            break;
        }
    }
    close(st->lock_fd);
    st->lock_fd = -1;
    pthread_mutex_unlock(&tss_writers_mu);
}

/* ---- schema ------------------------------------------------------------ */

/* docs/store.md explains every column. The summary values are declared
 * without a type on purpose: a REAL column stores an integral double as an
 * integer and -0.0 would come back as 0.0. */
static const char tss_schema[] =
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value NOT NULL);\n"
    "CREATE TABLE runs(\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  project TEXT NOT NULL DEFAULT '',\n"
    "  name TEXT NOT NULL,\n"
    "  status TEXT NOT NULL DEFAULT 'running',\n"
    "  config TEXT,\n"
    "  world_size INTEGER NOT NULL DEFAULT 1,\n"
    "  created_ns INTEGER NOT NULL,\n"
    "  updated_ns INTEGER NOT NULL,\n"
    "  ended_ns INTEGER,\n"
    "  UNIQUE(project, name));\n"
    "CREATE TABLE streams(\n"
    "  id INTEGER PRIMARY KEY,        -- u64 stream id as a signed 64-bit integer\n"
    "  run_id INTEGER NOT NULL REFERENCES runs(id),\n"
    "  rank INTEGER NOT NULL,\n"
    "  hello TEXT,\n"
    "  started_ns INTEGER NOT NULL,\n"
    "  ended_ns INTEGER,\n"
    "  last_seq INTEGER NOT NULL DEFAULT 0);\n"
    "CREATE TABLE series(\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  run_id INTEGER NOT NULL REFERENCES runs(id),\n"
    "  rank INTEGER NOT NULL,\n"
    "  name TEXT NOT NULL,\n"
    "  UNIQUE(run_id, rank, name));\n"
    "CREATE TABLE stream_metrics(\n"
    "  stream_id INTEGER NOT NULL REFERENCES streams(id),\n"
    "  metric_id INTEGER NOT NULL,\n"
    "  series_id INTEGER NOT NULL REFERENCES series(id),\n"
    "  PRIMARY KEY(stream_id, metric_id)) WITHOUT ROWID;\n"
    "CREATE TABLE chunks(\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  series_id INTEGER NOT NULL REFERENCES series(id),\n"
    "  gen INTEGER NOT NULL,          -- timeline: +1 each time the step went back\n"
    "  step_first INTEGER NOT NULL,\n"
    "  step_last INTEGER NOT NULL,\n"
    "  t_first INTEGER NOT NULL,      -- in meta.time_unit_ns units\n"
    "  t_last INTEGER NOT NULL,\n"
    "  n INTEGER NOT NULL,\n"
    "  vmin, vmax, vfirst, vlast,     -- no type: keeps -0.0; NULL = NaN\n"
    "  n_nan INTEGER NOT NULL,\n"
    "  n_inf INTEGER NOT NULL,\n"
    "  groups BLOB,                   -- format 2: M4 of step-aligned groups; before data,\n"
    "                                 -- so that it is read without the blob's pages\n"
    "  data BLOB NOT NULL);           -- codec blob, docs/codec.md\n"
    /* covering: the readers of summaries never read a chunk row (a row is
     * about a page, interleaved with the blobs' overflow pages); id right
     * after the steps, so that arrival order is index order (no sort) */
    "CREATE INDEX chunks_by_series ON chunks(series_id, gen, step_first, step_last, id, n, t_first,\n"
    "  t_last, vmin, vmax, vfirst, vlast, n_nan, n_inf);\n"
    "CREATE TABLE events(\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  run_id INTEGER NOT NULL REFERENCES runs(id),\n"
    "  rank INTEGER NOT NULL,\n"
    "  step INTEGER NOT NULL,\n"
    "  t_ns INTEGER NOT NULL,\n"
    "  kind TEXT NOT NULL,\n"
    "  text TEXT NOT NULL DEFAULT '');\n"
    "CREATE INDEX events_by_run ON events(run_id, kind);\n"
    "CREATE TABLE gaps(\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  run_id INTEGER NOT NULL REFERENCES runs(id),\n"
    "  rank INTEGER NOT NULL,\n"
    "  count INTEGER NOT NULL,\n"
    "  step_first INTEGER NOT NULL,\n"
    "  step_last INTEGER NOT NULL,\n"
    "  t_first_ns INTEGER NOT NULL,\n"
    "  t_last_ns INTEGER NOT NULL);\n"
    "CREATE INDEX gaps_by_run ON gaps(run_id);\n";

static int tss_exec_sql(tss_store *st, const char *sql, const char *what)
{
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);

    return rc == SQLITE_OK ? 0 : tss__sqlfail(st, rc, what);
}

static int tss_schema_create(tss_store *st, int64_t unit)
{
    char sql[256];
    int rc;

    snprintf(sql, sizeof sql,
             "PRAGMA application_id = %d;\n"
             "INSERT INTO meta VALUES('format_version', %d), ('time_unit_ns', %" PRId64 ");\n",
             TSS_APPLICATION_ID, TSS_FORMAT_VERSION, unit);
    rc = tss_exec_sql(st, "BEGIN IMMEDIATE", "create the schema");
    if (rc < 0)
        return rc;
    rc = tss_exec_sql(st, tss_schema, "create the schema");
    if (rc == 0)
        rc = tss_exec_sql(st, sql, "create the schema");
    if (rc == 0)
        rc = tss_exec_sql(st, "COMMIT", "create the schema");
    if (rc < 0)
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    st->unit = unit;
    st->version = TSS_FORMAT_VERSION;
    return rc;
}

static int tss_not_ours(tss_store *st)
{
    return tss__fail(st, -EINVAL, "%s is a SQLite database but not a trainscope store", st->path);
}

/* Read meta: format version and time unit. */
static int tss_read_meta(tss_store *st)
{
    int64_t version = 0, unit = 0;
    int rc;

    rc = tss_query_int(st, "SELECT value FROM meta WHERE key = 'format_version'", &version,
                       "read meta");
    if (rc <= 0)
        return rc < 0 ? rc : tss_not_ours(st);
    if (version < TSS_FORMAT_MIN || version > TSS_FORMAT_VERSION)
        return tss__fail(st, -EINVAL,
                         "%s is a trainscope store of format version %" PRId64
                         "; this trainscope reads versions %d to %d", st->path, version, TSS_FORMAT_MIN,
                         TSS_FORMAT_VERSION);
    st->version = (int)version;
    rc = tss_query_int(st, "SELECT value FROM meta WHERE key = 'time_unit_ns'", &unit, "read meta");
    if (rc < 0)
        return rc;
    if (rc == 0 || unit <= 0)
        return tss__fail(st, -EINVAL, "%s: corrupt trainscope store (no valid meta.time_unit_ns)",
                         st->path);
    st->unit = unit;
    return 0;
}

/* Is this one of ours? *is_new when it is a database without any table
 * (an empty file is one) that a writer may turn into a store. The first read
 * is where SQLite finds out a file is not a database at all. */
static int tss_verify(tss_store *st, int *is_new)
{
    int64_t tables = 0, has_meta = 0, appid = 0;
    int rc;

    *is_new = 0;
    rc = tss_query_int(st, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'", &tables,
                       "read the schema");
    if (rc == -EINVAL)
        return tss__fail(st, -EINVAL, "%s is not a trainscope store (not a SQLite database, or corrupt: %s)",
                         st->path, sqlite3_errmsg(st->db));
    if (rc < 0)
        return rc;
    rc = tss_query_int(st, "PRAGMA application_id", &appid, "read the schema");
    if (rc < 0)
        return rc;
    if (tables == 0 && (appid == 0 || appid == TSS_APPLICATION_ID)) {
        *is_new = 1;
        return 0;
    }
    if (appid != TSS_APPLICATION_ID)
        return tss_not_ours(st);
    rc = tss_query_int(st, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
                       &has_meta, "read the schema");
    if (rc < 0)
        return rc;
    return has_meta ? tss_read_meta(st) : tss_not_ours(st);
}

/* ---- open and close ---------------------------------------------------- */

/* NOMUTEX: a handle is used by one thread at a time (store.h), so SQLite's
 * per-call connection mutex buys nothing; an M4 read over 24k chunk rows
 * makes about 300k sqlite3_column calls, each of which took it. */
static int tss_db_open(tss_store *st, const char *name, int flags)
{
    int rc = sqlite3_open_v2(name, &st->db, flags | SQLITE_OPEN_NOMUTEX, NULL);

    if (rc != SQLITE_OK) {
        rc = tss__sqlfail(st, rc, "open");
        sqlite3_close(st->db);
        st->db = NULL;
        return rc;
    }
    sqlite3_extended_result_codes(st->db, 1);
    sqlite3_busy_timeout(st->db, TSS_BUSY_TIMEOUT_MS);
    return 0;
}

static int tss_wal_on(tss_store *st, int sync_full)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(st->db, "PRAGMA journal_mode = WAL", -1, &s, NULL);

    if (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        const unsigned char *mode = sqlite3_column_text(s, 0);
        rc = mode && strcmp((const char *)mode, "wal") == 0 ? 0 : -EIO;
        sqlite3_finalize(s);
        if (rc < 0)
            return tss__fail(st, rc, "%s: cannot switch the database to WAL mode", st->path);
    } else {
        rc = tss__sqlfail(st, rc, "set WAL mode");
        sqlite3_finalize(s);
        return rc;
    }
    /* In WAL mode NORMAL survives a crash of the process; FULL also a power
     * loss, at the price of an fsync per commit. */
    return tss_exec_sql(st, sync_full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL",
                        "set synchronous");
}

/* The lock first, so that a second writer changes nothing; then the check
 * that the file is ours before WAL mode (which rewrites the header); then the
 * schema of a new store. */
static int tss_open_writer(tss_store *st, const tss_open_opts *o)
{
    int is_new, rc;

    if (o->time_unit_ns < 0)
        return tss__fail(st, -EINVAL, "%s: time unit %" PRId64 " ns is not positive", st->path,
                         o->time_unit_ns);
    st->writer = 1;
    rc = tss_lock_take(st);
    if (rc < 0)
        return rc;
    rc = tss_db_open(st, st->path, SQLITE_OPEN_READWRITE);
    if (rc < 0)
        return rc;
    rc = tss_verify(st, &is_new);
    if (rc == 0 && is_new)
        rc = tss_exec_sql(st, "PRAGMA page_size = " TSS_STR(TSS_PAGE_SIZE), "set the page size");
    if (rc < 0)
        return rc;
    rc = tss_wal_on(st, o->sync_full);
    if (rc < 0)
        return rc;
    return is_new ? tss_schema_create(st, o->time_unit_ns ? o->time_unit_ns : TSS_DEFAULT_UNIT_NS) : 0;
}

/* "file:" URI of path with immutable=1. */
static char *tss_immutable_uri(const char *path)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t len = strlen(path);
    char *uri = malloc(3 * len + 32), *p = uri;

    if (!uri)
        return NULL;
    p += sprintf(p, path[0] == '/' ? "file://" : "file:");
    for (const unsigned char *c = (const unsigned char *)path; *c; c++) {
        if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
            strchr("/-._~", *c)) {
            *p++ = (char)*c;
        } else {
            *p++ = '%';
            *p++ = hex[*c >> 4];
            *p++ = hex[*c & 15];
        }
    }
    strcpy(p, "?immutable=1");
    return uri;
}

/* A read-only connection to a WAL database needs the -wal and -shm files,
 * and creates them when the directory is writable. When they are missing and
 * cannot be created, no writer is active (it would have them open), so the
 * file is read as an immutable snapshot. */
static int tss_wal_unreachable(tss_store *st)
{
    char wal[4096];
    int code = st->sqlrc & 0xff;

    if (code != SQLITE_CANTOPEN && code != SQLITE_READONLY)
        return 0;
    if ((size_t)snprintf(wal, sizeof wal, "%s-wal", st->path) >= sizeof wal)
        return 0;
    return access(wal, F_OK) < 0 && errno == ENOENT;
}

static int tss_reopen_immutable(tss_store *st)
{
    char *uri = tss_immutable_uri(st->path);
    int rc;

    if (!uri)
        return tss__fail(st, -ENOMEM, "%s: out of memory", st->path);
    sqlite3_close(st->db);
    st->db = NULL;
    rc = tss_db_open(st, uri, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI);
    free(uri);
    return rc;
}

static int tss_open_reader(tss_store *st)
{
    struct stat sb;
    int is_new, rc;

    if (stat(st->path, &sb) < 0)
        return errno == ENOENT ? tss__fail(st, -ENOENT, "no store at %s (no such file)", st->path)
                               : tss_open_errno(st, errno, "read");
    if (!S_ISREG(sb.st_mode))
        return tss__fail(st, -EINVAL, "%s is not a regular file, not a trainscope store", st->path);
    if (sb.st_size == 0)
        return tss__fail(st, -EINVAL, "%s is an empty file, not a trainscope store", st->path);
    rc = tss_db_open(st, st->path, SQLITE_OPEN_READONLY);
    if (rc < 0)
        return rc;
    rc = tss_verify(st, &is_new);
    if (rc < 0 && tss_wal_unreachable(st)) {
        rc = tss_reopen_immutable(st);
        if (rc == 0)
            rc = tss_verify(st, &is_new);
    }
    if (rc == 0 && is_new)
        rc = tss__fail(st, -EINVAL, "%s is a SQLite database without tables, not a trainscope store",
                       st->path);
    return rc;
}

/* Everything but the commit: for tss_close and for a failed open. */
static void tss_release(tss_store *st)
{
    for (int i = 0; i < TSS_Q_COUNT; i++)
        sqlite3_finalize(st->q[i]);
    /* Closing the last connection checkpoints the WAL and deletes it; the
     * lock is still held meanwhile, so no other writer can start in between. */
    sqlite3_close(st->db);
    if (st->lock_fd >= 0)
        tss_lock_release(st);
    for (size_t i = 0; i < st->nser; i++)
        if (st->ser[i].loaded) {
            tsc_enc_free(&st->ser[i].enc);
            free(st->ser[i].grps);
        }
    free(st->ser);
    free(st->dirty);
    free(st->strm);
    free(st->touch);
    free(st->scr_steps);
    free(st->scr_times);
    free(st->scr_values);
    free(st->gens);
    free(st->grp);
    free(st->path);
    free(st);
}

int tss_open(tss_store **out, const char *path, const tss_open_opts *opts, char *err, size_t errlen)
{
    static const tss_open_opts reader = {0};
    tss_store *st;
    int rc;

    if (err && errlen)
        err[0] = '\0';
    if (!out || !path || !*path) {
        if (err && errlen)
            snprintf(err, errlen, "tss_open: no store path given");
        return -EINVAL;
    }
    *out = NULL;
    st = calloc(1, sizeof *st);
    if (!st || !(st->path = strdup(path))) {
        if (err && errlen)
            snprintf(err, errlen, "%s: out of memory", path);
        free(st);
        return -ENOMEM;
    }
    st->lock_fd = -1;
    st->unit = TSS_DEFAULT_UNIT_NS;
    rc = (opts ? opts : &reader)->writer ? tss_open_writer(st, opts) : tss_open_reader(st);
    if (rc < 0) {
        if (err && errlen)
            snprintf(err, errlen, "%s", st->err);
        tss_release(st);
        return rc;
    }
    *out = st;
    return 0;
}

int tss_close(tss_store *st)
{
    int rc = 0;

    if (!st)
        return 0;
    if (st->writer)
        rc = st->broken ? st->broken : tss_commit(st);
    tss_release(st);
    return rc;
}

const char *tss_errmsg(const tss_store *st)
{
    return st ? st->err : "no store handle";
}

int64_t tss_time_unit_ns(const tss_store *st)
{
    return st ? st->unit : 0;
}

/* ---- writer: transactions ---------------------------------------------- */

/* Every write runs inside the one open transaction; it begins with the
 * first write after a commit. */
static int tss_begin(tss_store *st)
{
    sqlite3_stmt *s;
    int rc;

    if (st->in_txn)
        return 0;
    rc = tss__stmt(st, TSS_Q_BEGIN, &s);
    if (rc == 0)
        rc = tss__exec(st, s, "begin a transaction");
    if (rc == 0)
        st->in_txn = 1;
    return rc;
}

/* The guard of every writer call: a writer handle, not broken, in a transaction. */
static int tss_writable(tss_store *st)
{
    if (!st)
        return -EINVAL;
    if (!st->writer)
        return tss__fail(st, -EPERM, "%s is open read-only", st->path);
    if (st->broken)
        return tss_broken(st);
    return tss_begin(st);
}

/* Run a write statement whose parameters are bound; *changes gets the
 * number of rows it changed when wanted. */
static int tss_write(tss_store *st, sqlite3_stmt *s, const char *what, int *changes)
{
    int rc = tss__exec(st, s, what);

    if (rc == 0 && changes)
        *changes = sqlite3_changes(st->db);
    return rc;
}

static void tss_bind_text(sqlite3_stmt *s, int i, const char *text)
{
    if (text)
        sqlite3_bind_text(s, i, text, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(s, i);
}

/* The cached statement q with its parameters bound in order, as sig says
 * of each argument: 'l' an int64_t, 'i' an int, 't' a text (NULL binds
 * NULL). Every writer and reader call of one row goes through here. */
static int tss_prepare(tss_store *st, enum tss_q q, sqlite3_stmt **out, const char *sig, ...)
{
    va_list ap;
    int rc = tss__stmt(st, q, out);

    if (rc < 0)
        return rc;
    va_start(ap, sig);
    for (int i = 1; sig[i - 1]; i++) {
        switch (sig[i - 1]) {
        case 'l': sqlite3_bind_int64(*out, i, va_arg(ap, int64_t)); break;
        case 'i': sqlite3_bind_int(*out, i, va_arg(ap, int)); break;
        default: tss_bind_text(*out, i, va_arg(ap, const char *)); break;
        }
    }
    va_end(ap);
    return 0;
}

/* ---- writer: runs, streams, series ------------------------------------- */

/* Step a query expected to return one integer in column 0 and reset it:
 * 1 and *val, 0 when no row, negative on error. */
static int tss_step_int(tss_store *st, sqlite3_stmt *s, int64_t *val, const char *what)
{
    int rc = sqlite3_step(s);

    if (rc == SQLITE_ROW) {
        *val = sqlite3_column_int64(s, 0);
        rc = 1;
    } else if (rc == SQLITE_DONE) {
        rc = 0;
    } else {
        rc = tss__sqlfail(st, rc, what);
    }
    sqlite3_reset(s);
    return rc;
}

int tss_run_open(tss_store *st, const char *project, const char *name, const char *config_json,
                 int world_size, int64_t t_ns, int64_t *run_id)
{
    sqlite3_stmt *s;
    int rc = tss_writable(st);

    if (rc < 0)
        return rc;
    if (!name || !*name || !run_id)
        return tss__fail(st, -EINVAL, "tss_run_open: a run needs a name");
    if (!project)
        project = "";
    rc = tss_prepare(st, TSS_Q_RUN_UPSERT, &s, "tttil", project, name, config_json, world_size, t_ns);
    if (rc == 0)
        rc = tss_write(st, s, "record the run", NULL);
    if (rc == 0)
        rc = tss_prepare(st, TSS_Q_RUN_ID, &s, "tt", project, name);
    if (rc < 0)
        return rc;
    rc = tss_step_int(st, s, run_id, "find the run");
    return rc < 0 ? rc : rc == 0 ? tss__fail(st, -EIO, "%s: run %s vanished", st->path, name) : 0;
}

int tss_run_set_status(tss_store *st, int64_t run_id, const char *status, int64_t t_ns)
{
    sqlite3_stmt *s;
    int changes = 0, rc = tss_writable(st);

    if (rc < 0)
        return rc;
    if (!status || !*status)
        return tss__fail(st, -EINVAL, "tss_run_set_status: no status");
    rc = tss_prepare(st, TSS_Q_RUN_STATUS, &s, "ltl", run_id, status, t_ns);
    if (rc == 0)
        rc = tss_write(st, s, "set the run status", &changes);
    if (rc == 0 && changes == 0)
        rc = tss__fail(st, -ENOENT, "%s: no run with id %" PRId64, st->path, run_id);
    return rc;
}

/* Stream table: open addressing on the 64-bit id, at most half full. */
static size_t tss_strm_slot(const tss_store *st, uint64_t id)
{
    uint64_t h = id * 0x9E3779B97F4A7C15ull;
    size_t i = (size_t)(h ^ (h >> 29)) & (st->strm_cap - 1);

    while (st->strm[i].used && st->strm[i].id != id)
        i = (i + 1) & (st->strm_cap - 1);
    return i;
}

static tss_strm *tss_strm_find(const tss_store *st, uint64_t id)
{
    size_t i;

    if (!st->strm_cap)
        return NULL;
    i = tss_strm_slot(st, id);
    return st->strm[i].used ? &st->strm[i] : NULL;
}

static int tss_strm_grow(tss_store *st)
{
    size_t cap = st->strm_cap ? 2 * st->strm_cap : 64;
    tss_strm *old = st->strm, *nw = calloc(cap, sizeof *nw);
    size_t oldcap = st->strm_cap;

    if (!nw)
        return tss__fail(st, -ENOMEM, "%s: out of memory", st->path);
    st->strm = nw;
    st->strm_cap = cap;
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].used)
            st->strm[tss_strm_slot(st, old[i].id)] = old[i];
    free(old);
    return 0;
}

static int tss_strm_add(tss_store *st, uint64_t id, tss_strm **out)
{
    int rc;
    size_t i;

    if (2 * (st->strm_used + 1) > st->strm_cap && (rc = tss_strm_grow(st)) < 0)
        return rc;
    i = tss_strm_slot(st, id);
    if (!st->strm[i].used) {
        st->strm[i] = (tss_strm){.id = id, .used = 1};
        st->strm_used++;
    }
    *out = &st->strm[i];
    return 0;
}

int tss_stream_open(tss_store *st, uint64_t stream, int64_t run_id, int rank, const char *hello_json,
                    int64_t t_ns)
{
    sqlite3_stmt *s;
    int rc = tss_writable(st);

    if (rc < 0)
        return rc;
    rc = tss_prepare(st, TSS_Q_STREAM_UPSERT, &s, "llitl", (int64_t)stream, run_id, rank, hello_json, t_ns);
    return rc < 0 ? rc : tss_write(st, s, "record the stream", NULL);
}

int tss_stream_find(tss_store *st, uint64_t stream, tss_stream_info *info)
{
    sqlite3_stmt *s;
    const tss_strm *e;
    int rc;

    if (!st || !info)
        return -EINVAL;
    rc = tss_prepare(st, TSS_Q_STREAM_FIND, &s, "l", (int64_t)stream);
    if (rc < 0)
        return rc;
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        info->run_id = sqlite3_column_int64(s, 0);
        info->rank = sqlite3_column_int(s, 1);
        info->last_seq = (uint64_t)sqlite3_column_int64(s, 2);
        info->ended = sqlite3_column_int(s, 3);
        rc = 0;
    } else {
        rc = rc == SQLITE_DONE ? tss__fail(st, -ENOENT, "%s: no stream %016" PRIx64, st->path, stream)
                               : tss__sqlfail(st, rc, "find the stream");
    }
    sqlite3_reset(s);
    if (rc == 0 && st->writer && (e = tss_strm_find(st, stream)))
        info->last_seq = e->seq;
    return rc;
}

int tss_stream_set_seq(tss_store *st, uint64_t stream, uint64_t seq)
{
    tss_stream_info info;
    tss_strm *e;
    int rc;

    if (!st)
        return -EINVAL;
    if (!st->writer)
        return tss__fail(st, -EPERM, "%s is open read-only", st->path);
    e = tss_strm_find(st, stream);
    if (!e) {
        rc = tss_stream_find(st, stream, &info);
        if (rc == 0)
            rc = tss_strm_add(st, stream, &e);
        if (rc < 0)
            return rc;
    }
    e->seq = seq;
    e->dirty = 1;
    return 0;
}

int tss_stream_end(tss_store *st, uint64_t stream, int64_t t_ns)
{
    sqlite3_stmt *s;
    int changes = 0, rc = tss_writable(st);

    if (rc < 0)
        return rc;
    rc = tss_prepare(st, TSS_Q_STREAM_END, &s, "ll", (int64_t)stream, t_ns);
    if (rc == 0)
        rc = tss_write(st, s, "end the stream", &changes);
    if (rc == 0 && changes == 0)
        rc = tss__fail(st, -ENOENT, "%s: no stream %016" PRIx64, st->path, stream);
    return rc;
}

int tss_series_open(tss_store *st, int64_t run_id, int rank, const char *name, int64_t *series_id)
{
    sqlite3_stmt *s;
    int rc = tss_writable(st);

    if (rc < 0)
        return rc;
    if (!name || !series_id)
        return tss__fail(st, -EINVAL, "tss_series_open: a series needs a name");
    rc = tss_prepare(st, TSS_Q_SERIES_FIND, &s, "lit", run_id, rank, name);
    if (rc < 0)
        return rc;
    rc = tss_step_int(st, s, series_id, "find the series");
    if (rc != 0)
        return rc < 0 ? rc : 0;
    rc = tss_prepare(st, TSS_Q_SERIES_INSERT, &s, "lit", run_id, rank, name);
    if (rc == 0)
        rc = tss_write(st, s, "record the series", NULL);
    if (rc == 0)
        *series_id = sqlite3_last_insert_rowid(st->db);
    return rc;
}

int tss_stream_bind(tss_store *st, uint64_t stream, uint32_t metric_id, int64_t series_id)
{
    sqlite3_stmt *s;
    int rc = tss_writable(st);

    if (rc < 0)
        return rc;
    rc = tss_prepare(st, TSS_Q_BIND, &s, "lll", (int64_t)stream, (int64_t)metric_id, series_id);
    return rc < 0 ? rc : tss_write(st, s, "bind the metric", NULL);
}

int tss_stream_bindings(tss_store *st, uint64_t stream, tss_bind_fn fn, void *ctx)
{
    sqlite3_stmt *s;
    int rc;

    if (!st || !fn)
        return -EINVAL;
    rc = tss_prepare(st, TSS_Q_BINDINGS, &s, "l", (int64_t)stream);
    if (rc < 0)
        return rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        fn(ctx, (uint32_t)sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1));
    rc = rc == SQLITE_DONE ? 0 : tss__sqlfail(st, rc, "read the metric bindings");
    sqlite3_reset(s);
    return rc;
}

int tss_event_add(tss_store *st, int64_t run_id, int rank, int64_t step, int64_t t_ns,
                  const char *kind, const char *text)
{
    sqlite3_stmt *s;
    int rc = tss_writable(st);

    if (rc < 0)
        return rc;
    if (!kind || !*kind)
        return tss__fail(st, -EINVAL, "tss_event_add: an event needs a kind");
    rc = tss_prepare(st, TSS_Q_EVENT_INSERT, &s, "lilltt", run_id, rank, step, t_ns, kind, text ? text : "");
    return rc < 0 ? rc : tss_write(st, s, "record the event", NULL);
}

int tss_gap_add(tss_store *st, int64_t run_id, int rank, uint64_t count, int64_t step_first,
                int64_t step_last, int64_t t_first, int64_t t_last)
{
    sqlite3_stmt *s;
    int rc = tss_writable(st);

    if (rc < 0)
        return rc;
    rc = tss_prepare(st, TSS_Q_GAP_INSERT, &s, "lilllll", run_id, rank,
                     count > INT64_MAX ? INT64_MAX : (int64_t)count, step_first, step_last, t_first, t_last);
    return rc < 0 ? rc : tss_write(st, s, "record the gap", NULL);
}

/* ---- writer: chunks ---------------------------------------------------- */

/* Write the open chunk of series sid: INSERT the first time, UPDATE the same
 * row after, so the row always holds every point of the chunk so far. */
static int tss_chunk_write(tss_store *st, int64_t sid, tss_ser *s)
{
    sqlite3_stmt *q;
    size_t len;
    const uint8_t *blob;
    int changes = 0, rc = tss_begin(st);

    if (rc < 0)
        return rc;
    rc = tss__stmt(st, s->grps ? (s->chunk_id ? TSS_Q_CHUNK_UPDATE : TSS_Q_CHUNK_INSERT)
                               : (s->chunk_id ? TSS_Q_CHUNK_UPDATE1 : TSS_Q_CHUNK_INSERT1), &q);
    if (rc < 0)
        return rc;
    blob = tsc_enc_bytes(&s->enc, &len);
    if (s->grps) {
        tss_bucket_init(&s->sum);
        for (uint32_t i = 0; i < s->grps->n; i++) {
            tss_bucket b = tss__grps_get(s->grps, i);
            tss_bucket_merge(&s->sum, &b);
        }
    }
    sqlite3_bind_int64(q, 1, s->chunk_id ? s->chunk_id : sid);
    sqlite3_bind_int(q, 2, s->gen);
    sqlite3_bind_int64(q, 3, s->sum.step_first);
    sqlite3_bind_int64(q, 4, s->sum.step_last);
    sqlite3_bind_int64(q, 5, s->t_first);
    sqlite3_bind_int64(q, 6, s->t_last);
    sqlite3_bind_int64(q, 7, s->sum.count);
    tss__bind_real(q, 8, s->sum.min);
    tss__bind_real(q, 9, s->sum.max);
    tss__bind_real(q, 10, s->sum.first);
    tss__bind_real(q, 11, s->sum.last);
    sqlite3_bind_int64(q, 12, s->sum.n_nan);
    sqlite3_bind_int64(q, 13, s->sum.n_inf);
    /* Static: the statement runs and is reset before the encoder moves. */
    sqlite3_bind_blob(q, 14, blob, (int)len, SQLITE_STATIC);
    if (s->grps)
        sqlite3_bind_blob(q, 15, st->grp_blob, (int)tss__grps_encode(s->grps, st->grp_blob), SQLITE_STATIC);
    rc = tss_write(st, q, "write a chunk", &changes);
    sqlite3_bind_null(q, 14);
    if (rc < 0)
        return rc;
    if (!s->chunk_id)
        s->chunk_id = sqlite3_last_insert_rowid(st->db);
    else if (changes != 1)
        return tss__fail(st, -EIO, "%s: series %" PRId64 ": chunk row %" PRId64 " vanished", st->path,
                         sid, s->chunk_id);
    s->dirty = 0;
    return 0;
}

static void tss_chunk_start(tss_ser *s)
{
    tsc_enc_reset(&s->enc);
    tss_bucket_init(&s->sum);
    if (s->grps)
        tss__grps_reset(s->grps);
    s->chunk_id = 0;
}

/* Write the open chunk if it changed and start an empty one. */
static int tss_chunk_close(tss_store *st, int64_t sid, tss_ser *s)
{
    int rc = s->dirty ? tss_chunk_write(st, sid, s) : 0;

    if (rc == 0)
        tss_chunk_start(s);
    return rc;
}

static int tss_ser_grow(tss_store *st, size_t need)
{
    size_t cap = st->nser ? st->nser : 64;
    tss_ser *ser;
    int64_t *dirty;

    while (cap < need)
        cap *= 2;
    if (cap == st->nser)
        return 0;
    ser = realloc(st->ser, cap * sizeof *ser);
    if (!ser)
        return tss__fail(st, -ENOMEM, "%s: out of memory", st->path);
    st->ser = ser;
    memset(ser + st->nser, 0, (cap - st->nser) * sizeof *ser);
    /* The dirty list holds each id at most once: nser entries always fit. */
    dirty = realloc(st->dirty, cap * sizeof *dirty);
    if (!dirty)
        return tss__fail(st, -ENOMEM, "%s: out of memory", st->path);
    st->dirty = dirty;
    st->nser = cap;
    return 0;
}

/* First append to a series in this handle (or a bad call): check the
 * series exists, and continue its newest generation from the last step on
 * disk, so that resume detection survives a collector restart. The old
 * chunk row is left as it is; a new one starts. */
static int tss_ser_load(tss_store *st, int64_t sid)
{
    sqlite3_stmt *q;
    tss_ser *s;
    int64_t run_id = 0, gen = 0, last = INT64_MIN;
    int rc;

    if (!st)
        return -EINVAL;
    if (!st->writer)
        return tss__fail(st, -EPERM, "%s is open read-only", st->path);
    if (st->broken)
        return tss_broken(st);
    if (sid <= 0)
        return tss__fail(st, -ENOENT, "%s: no series %" PRId64, st->path, sid);
    if (sid > TSS_MAX_SERIES_ID)
        return tss__fail(st, -ERANGE, "%s: series id %" PRId64 " is above the %d this writer handles",
                         st->path, sid, TSS_MAX_SERIES_ID);
    if ((size_t)sid < st->nser && st->ser[sid].loaded)
        return 0;
    rc = tss_prepare(st, TSS_Q_SERIES_RUN, &q, "l", sid);
    if (rc < 0)
        return rc;
    rc = tss_step_int(st, q, &run_id, "find the series");
    if (rc <= 0)
        return rc < 0 ? rc : tss__fail(st, -ENOENT, "%s: no series %" PRId64, st->path, sid);
    rc = tss_prepare(st, TSS_Q_CHUNK_LATEST, &q, "l", sid);
    if (rc < 0)
        return rc;
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        gen = sqlite3_column_int64(q, 0);
        last = sqlite3_column_int64(q, 1);
    }
    rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : tss__sqlfail(st, rc, "read the latest chunk");
    sqlite3_reset(q);
    if (rc < 0)
        return rc;
    rc = tss_ser_grow(st, (size_t)sid + 1);
    if (rc < 0)
        return rc;
    s = &st->ser[sid];
    /* a version-1 store stays version 1: its chunks have no groups */
    if (st->version >= 2 && !(s->grps = malloc(sizeof *s->grps)))
        return tss__fail(st, -ENOMEM, "%s: out of memory", st->path);
    tsc_enc_init(&s->enc);
    tss_chunk_start(s);
    s->gen = (int)gen;
    s->step_last = last;
    s->run_id = run_id;
    s->t_last_ns = INT64_MIN;
    s->loaded = 1;
    return 0;
}

/* Floor division: -1 ns is in the unit before 0, not in unit 0. */
static inline int64_t tss_to_unit(int64_t t_ns, int64_t unit)
{
    int64_t q = t_ns / unit;

    return q - (t_ns % unit < 0);
}

int tss_append(tss_store *st, int64_t series_id, int64_t step, int64_t t_ns, double value)
{
    tss_ser *s;
    int64_t t;
    int rc, resumed = 0;

    if (TSS_UNLIKELY(!st || st->broken || (uint64_t)series_id >= st->nser || !st->ser[series_id].loaded)) {
        rc = tss_ser_load(st, series_id);
        if (rc < 0)
            return rc;
    }
    s = &st->ser[series_id];
    if (TSS_UNLIKELY(step < s->step_last)) {
        /* The run went back to an earlier step: a new timeline. */
        rc = tss_chunk_close(st, series_id, s);
        if (rc < 0)
            return rc;
        s->gen++;
        resumed = 1;
    } else if (TSS_UNLIKELY(tsc_enc_count(&s->enc) == TSC_MAX_POINTS)) {
        /* Written here rather than when it filled, so that an error always
         * means this point was not taken. */
        rc = tss_chunk_close(st, series_id, s);
        if (rc < 0)
            return rc;
    }
    /* The default unit gets a division by a constant (a multiply): a
     * division by a variable is the slowest instruction on this path. */
    t = st->unit == TSS_DEFAULT_UNIT_NS ? tss_to_unit(t_ns, TSS_DEFAULT_UNIT_NS)
        : st->unit == 1 ? t_ns : tss_to_unit(t_ns, st->unit);
    rc = tsc_enc_append(&s->enc, step, t, value);
    if (TSS_UNLIKELY(rc < 0))
        return tss__fail(st, rc, "%s: series %" PRId64 ": cannot append to its chunk: %s", st->path,
                         series_id, strerror(-rc));
    if (tsc_enc_count(&s->enc) == 1)
        s->t_first = t;
    s->t_last = t;
    /* with groups, the chunk's summary is their merge, made when written */
    if (s->grps)
        tss__grps_add(s->grps, step, value);
    else
        tss_bucket_add(&s->sum, step, value);
    s->step_last = step;
    if (t_ns > s->t_last_ns)
        s->t_last_ns = t_ns;
    s->dirty = 1;
    if (!s->listed) {
        s->listed = 1;
        st->dirty[st->ndirty++] = series_id;
    }
    return resumed;
}

/* ---- writer: commit ---------------------------------------------------- */

/* Remember the newest point time of a run, for runs.updated_ns. */
static int tss_touch_add(tss_store *st, int64_t run_id, int64_t t_ns)
{
    size_t i;

    for (i = 0; i < st->ntouch; i++) {
        if (st->touch[i].run_id == run_id) {
            if (t_ns > st->touch[i].t_ns)
                st->touch[i].t_ns = t_ns;
            return 0;
        }
    }
    if (st->ntouch == st->touch_cap) {
        size_t cap = st->touch_cap ? 2 * st->touch_cap : 8;
        void *p = realloc(st->touch, cap * sizeof *st->touch);
        if (!p)
            return tss__fail(st, -ENOMEM, "%s: out of memory", st->path);
        st->touch = p;
        st->touch_cap = cap;
    }
    st->touch[st->ntouch++] = (struct tss_touch){run_id, t_ns};
    return 0;
}

static int tss_touch_write(tss_store *st)
{
    sqlite3_stmt *s;
    int rc = 0;

    while (st->ntouch && rc == 0) {
        rc = tss_prepare(st, TSS_Q_RUN_TOUCH, &s, "ll", st->touch[st->ntouch - 1].run_id,
                         st->touch[st->ntouch - 1].t_ns);
        if (rc < 0)
            break;
        rc = tss_write(st, s, "update the run", NULL);
        if (rc == 0)
            st->ntouch--;
    }
    return rc;
}

int tss__flush(tss_store *st)
{
    int rc = 0;

    if (st->broken)
        return tss_broken(st);
    for (size_t i = 0; i < st->ndirty; i++) {
        int64_t sid = st->dirty[i];
        tss_ser *s = &st->ser[sid];
        if (s->dirty && (rc = tss_chunk_write(st, sid, s)) < 0)
            return rc;
        if (s->t_last_ns != INT64_MIN && (rc = tss_touch_add(st, s->run_id, s->t_last_ns)) < 0)
            return rc;
        s->t_last_ns = INT64_MIN;
    }
    rc = tss_touch_write(st);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < st->ndirty; i++)
        st->ser[st->dirty[i]].listed = 0;
    st->ndirty = 0;
    return 0;
}

static int tss_seqs_write(tss_store *st)
{
    sqlite3_stmt *s;
    int rc;

    for (size_t i = 0; i < st->strm_cap; i++) {
        tss_strm *e = &st->strm[i];
        if (!e->used || !e->dirty)
            continue;
        rc = tss_begin(st);
        if (rc == 0)
            rc = tss_prepare(st, TSS_Q_STREAM_SEQ, &s, "ll", (int64_t)e->id, (int64_t)e->seq);
        if (rc == 0)
            rc = tss_write(st, s, "write the stream sequence number", NULL);
        if (rc < 0)
            return rc;
        e->dirty = 0;
    }
    return 0;
}

/* Chunks and sequence numbers go in the same transaction: after a crash the
 * store holds exactly the effects of the messages up to each last_seq. */
int tss_commit(tss_store *st)
{
    sqlite3_stmt *s;
    int rc;

    if (!st)
        return -EINVAL;
    if (!st->writer)
        return tss__fail(st, -EPERM, "%s is open read-only", st->path);
    rc = tss__flush(st);
    if (rc == 0)
        rc = tss_seqs_write(st);
    if (rc < 0 || !st->in_txn)
        return rc;
    rc = tss__stmt(st, TSS_Q_COMMIT, &s);
    if (rc == 0)
        rc = tss__exec(st, s, "commit");
    if (rc == 0)
        st->in_txn = 0;
    return rc;
}
