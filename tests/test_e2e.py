"""test_e2e.py - the whole pipeline with real processes: libtrainscope
publishers (tests/pub_load.c) -> ZeroMQ -> `trainscope collect` -> SQLite ->
`trainscope export`, compared bit for bit with what the publishers logged.

usage: /usr/bin/python3 test_e2e.py TRAINSCOPE PUB_LOAD [case ...]
"""
import os
import signal
import subprocess
import sys
import time

from tslib import Collector, check, cli, export_points, finish, read_truth

TRAINSCOPE, PUB_LOAD = sys.argv[1], sys.argv[2]


def publisher(col, run, rank=0, world=1, steps=1000, metrics=2, seed=1, extra=()):
    truth = os.path.join(col.tmp, f"truth-{run}-{rank}-{seed}.csv")
    args = [PUB_LOAD, "--endpoint", col.ingest, "--run", run, "--rank", str(rank),
            "--world", str(world), "--steps", str(steps), "--metrics", str(metrics),
            "--seed", str(seed), "--truth", truth, *extra]
    proc = subprocess.Popen(args, stderr=subprocess.PIPE)
    return proc, truth


def wait_all(procs, timeout=240):
    ok = True
    for p in procs:
        try:
            rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = -1
        if rc != 0:
            print("  publisher:", p.stderr.read().decode(errors="replace").strip(), flush=True)
            ok = False
    return ok


def four_publishers(transport):
    """1,000,000 points from 4 concurrent publishers (4 ranks of one run)."""
    col = Collector(TRAINSCOPE, transport=transport, extra=["--quiet"]).start()
    pubs = [publisher(col, "e2e-" + transport, rank=r, world=4, steps=125000, seed=r + 1)
            for r in range(4)]
    check(wait_all([p for p, _ in pubs]), f"{transport}: 4 publishers closed with every point acked")
    truth = {}
    for r, (_, path) in enumerate(pubs):
        truth.update(read_truth(path, r)[0])
    got, rows = export_points(TRAINSCOPE, col.store, "e2e-" + transport)
    check(rows == 1_000_000 and len(truth) == 1_000_000,
          f"{transport}: export has {rows} rows for 1,000,000 logged points")
    check(got == truth, f"{transport}: every exported value is bit-identical to what was logged")
    runs = col.query({"op": "runs"})[0]["runs"]
    check(runs[0]["status"] == "finished" and runs[0]["world_size"] == 4,
          f"{transport}: run finished with world size 4 ({runs[0]['status']}, {runs[0]['world_size']})")
    check(col.stop() == 0, f"{transport}: collector exits 0 on SIGTERM")


def crash_and_late_start():
    """Trainer started before its collector; collector killed -9 mid-run."""
    col = Collector(TRAINSCOPE, extra=["--quiet"])
    pub, truth_path = publisher(col, "crash", steps=30000, metrics=3, extra=["--sleep-us", "150"])
    time.sleep(1.0)           # the trainer logs with nobody listening
    col.start()
    time.sleep(1.5)
    col.proc.send_signal(signal.SIGKILL)
    col.proc.wait()
    col.proc = None
    col.log.close()
    time.sleep(0.7)           # the trainer keeps logging while the collector is dead
    col.start()
    check(wait_all([pub]), "crash: publisher finished with every point acked after kill -9 and restart")
    truth, n = read_truth(truth_path, 0)
    got, rows = export_points(TRAINSCOPE, col.store, "crash")
    check(rows == n == 90000, f"crash: {rows} rows stored for {n} logged: none lost, none duplicated")
    check(got == truth, "crash: values bit-identical after the crash")
    col.stop()


def resumed_run():
    """Steps 0..5000, then a new process resumes from step 4000 to 9000."""
    col = Collector(TRAINSCOPE, extra=["--quiet"]).start()
    p1, t1 = publisher(col, "resumed", steps=5001, metrics=1, seed=7)
    check(wait_all([p1]), "resume: first process finished")
    p2, t2 = publisher(col, "resumed", steps=5001, metrics=1, seed=8, extra=["--step-from", "4000"])
    check(wait_all([p2]), "resume: second process finished")
    first, second = read_truth(t1, 0)[0], read_truth(t2, 0)[0]
    newest = {k: v for k, v in first.items() if k[2] < 4000}
    newest.update(second)
    got, rows = export_points(TRAINSCOPE, col.store, "resumed")
    check(rows == 9001 and got == newest, f"resume: default export is the newest timeline ({rows} rows)")
    _, all_rows = export_points(TRAINSCOPE, col.store, "resumed", "--all-timelines")
    check(all_rows == 10002, f"resume: every point kept ({all_rows} of 10002 with --all-timelines)")
    rc, out, _ = cli(TRAINSCOPE, "show", col.store, "resumed")
    check(rc == 0 and "resume" in out and "5000" in out and "4000" in out,
          "resume: `show` lists the resume event with its steps")
    col.stop()


def drops_are_recorded():
    """A tiny buffer and no collector: drops are counted and stored as a gap."""
    col = Collector(TRAINSCOPE, extra=["--quiet"])
    pub, truth_path = publisher(col, "dropper", steps=20000, metrics=1,
                                extra=["--ring", "1024", "--timeout-ms", "30000"])
    time.sleep(1.0)
    col.start()
    check(wait_all([pub]), "drops: publisher closed cleanly after the collector appeared")
    truth, n = read_truth(truth_path, 0)
    got, rows = export_points(TRAINSCOPE, col.store, "dropper")
    check(got == truth, f"drops: the {n} accepted points are all stored exactly")
    runs = {r["name"]: r for r in col.query({"op": "runs"})[0]["runs"]}
    dropped = runs["dropper"]["dropped"]
    check(dropped == 20000 - n and dropped > 0, f"drops: store says {dropped} dropped, publisher {20000 - n}")
    rc, out, _ = cli(TRAINSCOPE, "show", col.store, "dropper")
    check(rc == 0 and "gaps" in out, "drops: `show` lists the gap")
    col.stop()


def cli_errors():
    """The CLI on good and bad input."""
    col = Collector(TRAINSCOPE, extra=["--quiet"]).start()
    p, _ = publisher(col, "cli-run", steps=100, metrics=3)
    wait_all([p])
    col.stop()
    rc, out, _ = cli(TRAINSCOPE, "ls", col.store)
    check(rc == 0 and "cli-run" in out and "finished" in out, "cli: ls lists the run")
    rc, out, _ = cli(TRAINSCOPE, "show", col.store, "cli-run")
    check(rc == 0 and '"lr":0.001' in out.replace(" ", "") and "load/m2" in out,
          "cli: show prints the config and the metrics")
    rc, out, _ = cli(TRAINSCOPE, "export", col.store, "cli-run", "--metric", "load/m1", "--format", "jsonl")
    lines = out.splitlines()
    check(rc == 0 and len(lines) == 100 and all('"metric":"load/m1"' in l for l in lines),
          "cli: export --metric GLOB --format jsonl selects one metric")
    rc, _, err = cli(TRAINSCOPE, "export", col.store, "cli-run", "--format", "xml")
    check(rc == 2 and "xml" in err, "cli: an unknown format is a usage error naming it")
    rc, _, err = cli(TRAINSCOPE, "export", col.store, "cli-run", "--bogus")
    check(rc == 2 and "--bogus" in err, "cli: an unknown flag is a usage error naming it")
    rc, _, err = cli(TRAINSCOPE, "show", col.store, "no-such-run")
    check(rc == 1 and "no-such-run" in err, "cli: an unknown run is named in the error")
    missing = os.path.join(col.tmp, "missing.db")
    rc, _, err = cli(TRAINSCOPE, "ls", missing)
    check(rc == 1 and "missing.db" in err and not os.path.exists(missing),
          "cli: a missing store is an error and is not created")
    junk = os.path.join(col.tmp, "junk.db")
    with open(junk, "wb") as f:
        f.write(os.urandom(8192))
    rc, _, err = cli(TRAINSCOPE, "ls", junk)
    check(rc == 1 and "junk.db" in err, f"cli: a file that is not a store is refused: {err.strip()}")
    rc, _, err = cli(TRAINSCOPE, "frobnicate")
    check(rc == 2 and "frobnicate" in err, "cli: an unknown command is a usage error")


CASES = {
    "tcp": lambda: four_publishers("tcp"),
    "ipc": lambda: four_publishers("ipc"),
    "crash": crash_and_late_start,
    "resume": resumed_run,
    "drops": drops_are_recorded,
    "cli": cli_errors,
}

if __name__ == "__main__":
    for name in sys.argv[3:] or CASES:
        print(f"== {name}", flush=True)
        try:
            CASES[name]()
        except Exception as e:  # a broken binary must fail the test, not hang it
            check(False, f"{name}: raised {type(e).__name__}: {e}")
    finish()
