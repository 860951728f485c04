#!/usr/bin/python3
"""bench_log.py - what run.log({...}, step=s) of the Python client costs the
training loop, in ns per call, with 1 and with 8 metrics per call.

Two situations: no collector (the library keeps trying to connect, nothing
is acknowledged; the ring is large enough that nothing drops) and a live
collector (`trainscope collect` on a temporary store over ipc://, the I/O
thread sending and receiving ACKs while we log). Calls are timed in batches
of 100 with perf_counter_ns; median and p99 are over the per-call cost of
the batches (as bench_log.c does), mean over all calls. The garbage
collector stays on, as in a real training loop. Values are Python floats
that change every call; the dict is the same object with new values, as a
training loop that refills it would have (a new dict literal per call costs
the caller ~100 ns more, whatever library it logs to).

Output: one summary line (the live collector's figures, the target beside
them), a table, and one line `json: {...}` with every figure.

usage: /usr/bin/python3 bench/bench_log.py [--calls N] [--lib SO] [--trainscope EXE]
       (defaults: 200000 calls per case; the library and collector of
        $BUILD, else build-bench/, else build/)
"""
import argparse
import contextlib
import gc
import io
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH = 100


def pick_build():
    for b in (os.environ.get("BUILD"), "build-bench", "build"):
        if b:
            d = b if os.path.isabs(b) else os.path.join(ROOT, b)
            if os.path.isfile(os.path.join(d, "proto", "libtrainscope.so")):
                return d
    return None


def measure(run, n_metrics, calls):
    """(median, p99, mean) ns per call of run.log(d, step=s)."""
    names = ["train/loss"] if n_metrics == 1 else [f"m{i}/value" for i in range(n_metrics)]
    d = dict.fromkeys(names, 0.0)
    log = run.log
    for s in range(1000):                      # registration and warm-up
        log(d, step=s)
    per_call = []
    perf = time.perf_counter_ns
    step = 1000
    total = 0
    x = 0.5
    for _ in range(calls // BATCH):
        # refresh the values outside the timed region, as a trainer would
        for k in names:
            x = x * 1.000001 + 1e-9
            d[k] = x
        t0 = perf()
        for s in range(step, step + BATCH):
            log(d, step=s)
        dt = perf() - t0
        total += dt
        per_call.append(dt / BATCH)
        step += BATCH
    per_call.sort()
    n = len(per_call)
    return per_call[n // 2], per_call[n * 99 // 100], total / (n * BATCH)


def start_collector(exe, tmp):
    ep = {k: f"ipc://{tmp}/{k}" for k in ("ingest", "api", "live")}
    proc = subprocess.Popen([exe, "collect", "--store", os.path.join(tmp, "bench.db"), "--quiet",
                             "--ingest", ep["ingest"], "--api", ep["api"], "--live", ep["live"]])
    deadline = time.time() + 10
    while not os.path.exists(os.path.join(tmp, "ingest")) and time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"collector exited with {proc.returncode}")
        time.sleep(0.05)
    return proc, ep["ingest"]


def main():
    ap = argparse.ArgumentParser(description="ns per Python run.log call")
    ap.add_argument("--calls", type=int, default=200000, help="timed calls per case")
    ap.add_argument("--lib", help="libtrainscope.so (default: from the build directory)")
    ap.add_argument("--trainscope", help="the trainscope executable (default: from the build directory)")
    a = ap.parse_args()
    build = pick_build()
    lib = a.lib or (build and os.path.join(build, "proto", "libtrainscope.so"))
    exe = a.trainscope or (build and os.path.join(build, "collector", "trainscope"))
    if not lib or not os.path.isfile(lib) or not exe or not os.path.isfile(exe):
        sys.exit("bench_log.py: no build found; run `meson setup build && ninja -C build` "
                 "or pass --lib and --trainscope")
    os.environ["TRAINSCOPE_LIB"] = os.path.abspath(lib)
    sys.path.insert(0, os.path.join(ROOT, "python"))
    import trainscope

    tmp = tempfile.mkdtemp(prefix="ts-bench-log-")
    results = []
    col = None
    try:
        for situation in ("no collector", "live collector"):
            if situation == "no collector":
                endpoint = f"ipc://{tmp}/nobody"
            else:
                col, endpoint = start_collector(exe, tmp)
            for n in (1, 8):
                # Big enough that nothing drops without a collector.
                run = trainscope.init(endpoint, f"bench-py-{n}-{situation.split()[0]}",
                                      buffer_samples=1 << 21, close_timeout=0 if col is None else 30)
                gc.collect()
                med, p99, mean = measure(run, n, a.calls)
                st = run.stats()
                flushed = run.flush(timeout=30) if col is not None else None
                st2 = run.stats()
                with contextlib.redirect_stderr(io.StringIO()):   # "not acknowledged": expected
                    run.close(timeout=0 if col is None else 30)
                results.append({"case": situation, "metrics": n, "median_ns": round(med, 1),
                                "p99_ns": round(p99, 1), "mean_ns": round(mean, 1),
                                "calls": a.calls, "logged": st["logged"], "dropped": st["dropped"],
                                "acked": st2["acked"] if flushed else None})
    finally:
        if col is not None:
            col.send_signal(signal.SIGTERM)
            col.wait(timeout=30)
        subprocess.run(["rm", "-rf", tmp])

    live = {r["metrics"]: r for r in results if r["case"] == "live collector"}
    idle = {r["metrics"]: r for r in results if r["case"] == "no collector"}
    print(f"Python run.log, live collector: median {live[1]['median_ns'] / 1000:.2f} us / "
          f"p99 {live[1]['p99_ns'] / 1000:.2f} us with 1 metric, median {live[8]['median_ns'] / 1000:.2f} us / "
          f"p99 {live[8]['p99_ns'] / 1000:.2f} us with 8 (no collector: {idle[1]['median_ns'] / 1000:.2f} / "
          f"{idle[8]['median_ns'] / 1000:.2f} us); target <= 1.5 us")
    print()
    print(f"{'case':16} {'metrics':>7} {'median ns':>10} {'p99 ns':>9} {'mean ns':>9} {'per metric':>10}"
          f" {'dropped':>8} {'acked':>9}")
    for r in results:
        print(f"{r['case']:16} {r['metrics']:>7} {r['median_ns']:>10.0f} {r['p99_ns']:>9.0f} "
              f"{r['mean_ns']:>9.0f} {r['median_ns'] / r['metrics']:>10.0f} {r['dropped']:>8} "
              f"{'-' if r['acked'] is None else r['acked']:>9}")
    print()
    print("json: " + json.dumps({"bench": "bench_log.py", "python": platform.python_version(),
                                 "library": trainscope.library_path, "batch": BATCH,
                                 "results": results}, separators=(",", ":")))


if __name__ == "__main__":
    main()
