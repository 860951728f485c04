"""test_detect_eval.py - the detectors' measured quality on real loss curves
(issue 6, part 5), asserted on a deterministic evaluation set:

  - tests/data/pytorch-char-transformer-lr3e-2.csv.gz: a real 2,500-step
    PyTorch run (see /work/shared/data/README.md);
  - examples/bigram (a C trainer that really learns) run for 20,000 steps
    with seeds 1..5 through a real collector, exported with
    `trainscope export --format csv`.

bench_detect (bench/bench_detect.c) injects spikes of 6..12 robust sigma and
NaNs at known steps into every loss curve and, with --check, exits 1 unless
recall >= 99%, at most 1 false finding per 100,000 clean steps (and at least
100,000 of them), and every NaN is found at its step. Timing is not asserted
here (bench_detect prints it; the benchmarks own it).

usage: /usr/bin/python3 test_detect_eval.py TRAINSCOPE BIGRAM BENCH_DETECT
"""
import os
import subprocess
import sys

from tslib import Collector, check, cli, finish

TRAINSCOPE, BIGRAM, BENCH = sys.argv[1:4]
HERE = os.path.dirname(os.path.abspath(__file__))
SEEDS = (1, 2, 3, 4, 5)
STEPS = 20000


def main():
    c = Collector(TRAINSCOPE, transport="ipc", extra=["--quiet"]).start()
    # Two trainers at a time: the machine has two cores.
    files = []
    for i in range(0, len(SEEDS), 2):
        procs = [subprocess.Popen([BIGRAM, "--endpoint", c.ingest, "--run", f"bigram-{s}", "--steps", str(STEPS),
                                   "--seed", str(s)], stdout=subprocess.DEVNULL)
                 for s in SEEDS[i:i + 2]]
        for p in procs:
            check(p.wait(timeout=600) == 0, f"bigram exits 0 (pid {p.pid})")
    for s in SEEDS:
        rc, out, err = cli(TRAINSCOPE, "export", c.store, f"bigram-{s}", "--metric", "train/loss", "--format", "csv")
        path = os.path.join(c.tmp, f"bigram-{s}.csv")
        with open(path, "w") as f:
            f.write(out)
        check(rc == 0 and out.count("\n") == STEPS + 1, f"bigram seed {s}: {STEPS} loss points exported")
        files.append(path)
    c.stop()
    data = os.path.join(HERE, "data", "pytorch-char-transformer-lr3e-2.csv.gz")
    p = subprocess.run([BENCH, "--check", "--repeat", "0", data, *files], capture_output=True, text=True,
                       timeout=600)
    print(p.stdout, p.stderr, flush=True)
    check(p.returncode == 0 and "check: PASS" in p.stdout, "recall >= 99%, <= 1 false finding per 100k clean "
          "steps, every NaN at its step")
    check("evaluation set: 6 series" in p.stdout, "the set is the real run's loss and 5 bigram runs' losses")
    finish()


if __name__ == "__main__":
    main()
