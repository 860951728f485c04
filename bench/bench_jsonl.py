"""bench_jsonl.py - anchor for the Python log call: what the simplest thing a
Python trainer could do instead costs per scalar, measured in the same run.

    /usr/bin/python3 bench/bench_jsonl.py [--calls N] [--dir D]

Appends one JSON line per scalar, {"step": s, "time": time.time(), "name":
..., "value": v}, to a file opened once in D (default /tmp; buffered, as a
logger would keep it; deleted at the end). TensorBoard's own writer
(tensorboardX / torch.utils.tensorboard's SummaryWriter.add_scalar) cannot
run here: neither tensorboardX nor tensorboard is packaged in Debian 12 and
PyPI is not reachable, so this is the anchor that can. Calls are timed in
batches of 1000 (time.perf_counter_ns); prints the median and p99 of the
per-call cost over batches, and the mean, like bench_log.
"""
import json
import os
import sys
import tempfile
import time

BATCH = 1000


def main():
    calls, d = 200000, "/tmp"
    args = sys.argv[1:]
    while args:
        if args[0] == "--calls" and len(args) > 1:
            calls = int(args[1])
        elif args[0] == "--dir" and len(args) > 1:
            d = args[1]
        else:
            sys.exit("usage: bench_jsonl.py [--calls N] [--dir D]")
        args = args[2:]
    batches = max(100, calls // BATCH)
    fd, path = tempfile.mkstemp(prefix="trainscope-bench-jsonl-", suffix=".jsonl", dir=d)
    per_call = []
    try:
        with os.fdopen(fd, "w") as f:
            loss = 3.0
            start = time.perf_counter_ns()
            for b in range(batches):
                t0 = time.perf_counter_ns()
                for i in range(BATCH):
                    step = b * BATCH + i
                    loss = loss * 0.9999 + 0.0001
                    f.write(json.dumps({"step": step, "time": time.time(), "name": "train/loss",
                                        "value": loss}) + "\n")
                per_call.append((time.perf_counter_ns() - t0) / BATCH)
            total = time.perf_counter_ns() - start
            f.flush()
        size = os.path.getsize(path)
    finally:
        os.unlink(path)
    per_call.sort()
    n = batches * BATCH
    print("jsonl append  %10d calls  median %8.1f ns  p99 %8.1f ns  mean %8.1f ns  (%.1f bytes/point)"
          % (n, per_call[len(per_call) // 2], per_call[len(per_call) * 99 // 100], total / n, size / n))


if __name__ == "__main__":
    main()
