"""test_tail.py - `trainscope tail` with real processes: a real collector,
real log files in each trainer's own format (tests/data/), a growing file
that is rotated and truncated, a pipe whose input must come out unchanged.

Every expected point below is written by hand from the fixture's text: the
value is the number as printed (Python float(), i.e. strtod), the step the
one the line names. The test compares the bits `trainscope export` returns.

usage: /usr/bin/python3 test_tail.py TRAINSCOPE
"""
import os
import signal
import struct
import subprocess
import sys
import time

from tslib import Collector, check, cli, export_points, finish

TRAINSCOPE = sys.argv[1]
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def bits(text):
    return struct.unpack("<Q", struct.pack("<d", float(text)))[0]


def table(spec):
    """'step metric value' lines -> {(0, metric, step): bits}"""
    out = {}
    for line in spec.strip().splitlines():
        step, metric, value = line.split()
        out[(0, metric, int(step))] = bits(value)
    return out


EXPECTED = {
    ("nanogpt", "nanogpt.log"): """
        0 train/loss 4.2874
        0 val/loss 4.2823
        0 loss 4.2654
        0 time_ms 29698.46
        10 loss 3.2458
        10 time_ms 101.51
        10 mfu_pct 3.67
        20 loss 2.7914
        20 time_ms 102.05
        20 mfu_pct 3.67
        30 loss 2.6034
        30 time_ms 101.86
        30 mfu_pct 3.67
        40 loss 2.5387
        40 time_ms 102.68
        40 mfu_pct 3.66
        250 train/loss 1.9691
        250 val/loss 2.0679
        250 loss 2.0409
        250 time_ms 14085.27
        250 mfu_pct 3.31""",
    ("llmc", "llmc_cuda.log"): """
        0 val/loss 11.008796
        1 loss 11.010582
        1 loss_z nan
        1 norm 15.3429
        1 norm_z nan
        1 lr 6.00e-04
        1 time_ms 2486.28
        1 mfu_pct 42.2
        1 tok_per_s 210862
        2 loss 9.996244
        2 loss_z nan
        2 norm 8.4521
        2 norm_z nan
        2 lr 6.00e-04
        2 time_ms 99.23
        2 mfu_pct 44.1
        2 tok_per_s 220134
        3 loss 9.212117
        3 loss_z nan
        3 norm 5.3015
        3 norm_z nan
        3 lr 6.00e-04
        3 time_ms 98.91
        3 mfu_pct 44.3
        3 tok_per_s 221002
        3 val/loss 8.875621
        4 loss 8.745331
        4 loss_z -1.52
        4 norm 4.0114
        4 norm_z -0.93
        4 lr 6.00e-04
        4 time_ms 99.02
        4 mfu_pct 44.2
        4 tok_per_s 221287""",
    ("llmc", "llmc_cuda_2024.log"): """
        0 val/loss 4.505127
        41 loss 3.518201
        41 loss_z 0.21
        41 norm 1.3377
        41 norm_z 0.62
        41 lr 6.00e-04
        41 time_ms 124.06
        41 tok_per_s 12381
        42 loss 3.512345
        42 loss_z 0.12
        42 norm 1.2345
        42 norm_z 0.50
        42 lr 6.00e-04
        42 time_ms 123.45
        42 tok_per_s 12345""",
    ("llmc", "llmc_cpu.log"): """
        0 val/loss 5.325529
        0 train/loss 4.677779
        0 time_ms 1984.168510
        1 train/loss 5.191576
        1 time_ms 1880.285710
        2 train/loss 4.438685
        2 time_ms 1873.426371
        3 val/loss 4.564138
        3 train/loss 4.138445
        3 time_ms 1879.562020""",
    ("modded-nanogpt", "modded_nanogpt.log"): """
        0 val_loss 10.8258
        0 train_time_ms 0
        0 step_avg_ms 0.04
        1 train_time_ms 24876
        1 step_avg_ms 24875.82
        2 train_time_ms 24904
        2 step_avg_ms 12452.09
        3 train_time_ms 24957
        3 step_avg_ms 8318.88
        125 val_loss 4.5156
        125 train_time_ms 25705
        125 step_avg_ms 205.64""",
    ("modded-nanogpt", "modded_nanogpt_2024.log"): """
        0 val_loss 10.8258
        0 train_time_ms 0
        0 step_avg_ms nan
        1 train_loss 10.8258
        1 train_time_ms 29321
        1 step_avg_ms nan
        11 train_loss 8.1527
        11 train_time_ms 1311
        11 step_avg_ms nan
        12 train_loss 7.3958
        12 train_time_ms 1442
        12 step_avg_ms 131.06""",
    ("hf", "hf.log"): """
        1 loss 2.3412
        1 grad_norm 1.8753249645233154
        1 learning_rate 4.8e-05
        1 epoch 0.08
        2 loss 2.1987
        2 grad_norm 1.2
        2 learning_rate 4.6e-05
        2 epoch 0.16
        2 eval_loss 2.1087
        2 eval_runtime 1.2345
        2 eval_samples_per_second 81.004
        2 eval_steps_per_second 10.125
        3 loss 2.0456
        3 grad_norm 0.95
        3 learning_rate 4.4e-05
        3 epoch 0.24
        3 train_runtime 62.2135
        3 train_samples_per_second 16.074
        3 train_steps_per_second 2.009
        3 total_flos 261310462771200.0
        3 train_loss 2.1951""",
    ("kv", "kv.log"): """
        100 loss 2.3142
        100 lr 3e-4
        100 throughput 1234.5
        200 epoch 1
        200 loss 2.1057
        200 grad_norm 0.87
        300 loss 1.9901
        300 val_loss 2.0011""",
}


def run_status(col, run):
    runs = col.query({"op": "runs"})[0]["runs"]
    for r in runs:
        if r["name"] == run:
            return r["status"]
    return None


def formats(col):
    """Each format's real lines -> stored series, value-exact."""
    for i, ((fmt, fixture), spec) in enumerate(EXPECTED.items()):
        run = f"fmt-{i}-{fmt}"
        rc, out, err = cli(TRAINSCOPE, "tail", "--format", fmt, os.path.join(DATA, fixture),
                           "--run", run, "--endpoint", col.ingest, "--once")
        check(rc == 0, f"{fixture}: tail --once exits 0 ({err.strip()})")
        got, n = export_points(TRAINSCOPE, col.store, run)
        want = table(spec)
        check(got == want and n == len(want),
              f"{fixture} ({fmt}): {n} stored points equal the {len(want)} printed ones bit for bit")
        if got != want:
            for k in sorted(set(got) | set(want), key=str):
                if got.get(k) != want.get(k):
                    print(f"    {k}: got {got.get(k)} want {want.get(k)}")
        check(run_status(col, run) == "finished", f"{fixture}: run closed as finished")


def user_pattern(col):
    pat = r"global (?<step>\d+) \| avg loss (?<loss>[0-9.]+) \| acc (?<acc_pct>[\d.]+)%"
    rc, out, err = cli(TRAINSCOPE, "tail", "--pattern", pat, os.path.join(DATA, "custom.log"),
                       "--run", "pattern", "--endpoint", col.ingest, "--once")
    check(rc == 0, f"pattern: exits 0 ({err.strip()})")
    got, _ = export_points(TRAINSCOPE, col.store, "pattern")
    check(got == table("150 loss 0.6931\n150 acc_pct 51.2\n200 loss 0.5012\n200 acc_pct 77.9"),
          "pattern: named groups became metrics at the step group's step")
    p = subprocess.run([TRAINSCOPE, "tail", "--dry-run", "--no-echo", "--pattern",
                        r"it (?P<step>\d+) l=(?<loss>\S+)", "-"],
                       input=b"it 7 l=0.25\nit x l=1\n", capture_output=True, timeout=30)
    check(p.returncode == 0 and p.stdout == b"7 loss 0.25\n",
          f"pattern: (?P<name>) syntax, --dry-run prints what it parsed ({p.stdout!r})")


def pipe_echo(col):
    """stdin: every byte comes out on stdout unchanged, metrics are published."""
    lines = [b"iter 0: loss 4.2654, time 29698.46ms, mfu -100.00%\n",
             b"some \xff\xfe non-UTF-8 noise and a tab\t\n",
             b"\n",
             b"iter 10: loss 3.2458, time 101.51ms, mfu 3.67%\n",
             b"last line without newline"]
    p = subprocess.Popen([TRAINSCOPE, "tail", "--format", "nanogpt", "-", "--run", "piped",
                          "--endpoint", col.ingest], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for l in lines:
        p.stdin.write(l)
        p.stdin.flush()
        time.sleep(0.05)
    p.stdin.close()
    out = p.stdout.read()
    rc = p.wait(timeout=30)
    check(rc == 0, "pipe: exits 0 at the end of its input")
    check(out == b"".join(lines), "pipe: stdout is the input byte for byte")
    got, _ = export_points(TRAINSCOPE, col.store, "piped")
    check(got == table("0 loss 4.2654\n0 time_ms 29698.46\n10 loss 3.2458\n10 time_ms 101.51\n10 mfu_pct 3.67"),
          "pipe: the metric lines were published")


def pipe_sigterm(col):
    """SIGTERM while the trainer still writes: what was read is durable, run closed."""
    p = subprocess.Popen([TRAINSCOPE, "tail", "--format", "modded-nanogpt", "-", "--run", "sig",
                          "--endpoint", col.ingest], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for s in range(1, 201):
        p.stdin.write(f"step:{s}/200 train_time:{s * 10}ms step_avg:10.00ms\n".encode())
    p.stdin.flush()
    # the echo of the last line proves it was read (echo happens before parsing)
    seen = b""
    deadline = time.time() + 10
    while b"step:200/200" not in seen and time.time() < deadline:
        seen += os.read(p.stdout.fileno(), 65536)
    p.send_signal(signal.SIGTERM)
    rc = p.wait(timeout=30)
    p.stdin.close()
    check(rc == 0, "sigterm: tail exits 0 after closing the run")
    got, n = export_points(TRAINSCOPE, col.store, "sig")
    check(n == 400 and got.get((0, "train_time_ms", 200)) == bits("2000"),
          f"sigterm: all 400 points read before the signal are stored ({n})")
    check(run_status(col, "sig") == "detached", "sigterm: run status says tail detached")


def wait_points(col, run, n, timeout=15):
    deadline = time.time() + timeout
    got = {}
    while time.time() < deadline:
        try:
            got, rows = export_points(TRAINSCOPE, col.store, run)
            if rows >= n:
                return got, rows
        except RuntimeError:
            pass
        time.sleep(0.1)
    return got, len(got)


def follow_file(col):
    """A growing log, then rotated (new inode), then truncated in place."""
    path = os.path.join(col.tmp, "train.log")
    line = lambda s: f"step={s} loss={1 + s / 1000}\n"
    with open(path, "w") as f:
        f.write("".join(line(s) for s in range(0, 10)))
    p = subprocess.Popen([TRAINSCOPE, "tail", "--format", "kv", path, "--run", "follow",
                          "--endpoint", col.ingest, "--poll-ms", "20"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    got, n = wait_points(col, "follow", 10)
    check(n == 10, f"follow: the existing 10 lines are read ({n})")
    with open(path, "a") as f:       # growth, one line written in two pieces
        f.write("".join(line(s) for s in range(10, 19)) + "step=19 lo")
        f.flush()
        time.sleep(0.2)
        f.write("ss=1.019\n")
    got, n = wait_points(col, "follow", 20)
    check(n == 20 and got.get((0, "loss", 19)) == bits("1.019"),
          f"follow: appended lines, one split across writes, are read ({n})")
    os.rename(path, path + ".1")     # rotation: the old file gets its last line first
    with open(path + ".1", "a") as f:
        f.write(line(20))
    with open(path, "w") as f:
        f.write("".join(line(s) for s in range(21, 30)))
    got, n = wait_points(col, "follow", 30)
    check(n == 30, f"follow: after rotation the old file's last line and the new file are read ({n})")
    time.sleep(0.3)
    with open(path, "w") as f:       # truncation in place, shorter content
        f.write(line(30))
    got, n = wait_points(col, "follow", 31)
    check(n == 31, f"follow: after truncation the file is read again from its start ({n})")
    p.send_signal(signal.SIGINT)
    rc = p.wait(timeout=30)
    err = p.stderr.read().decode()
    check(rc == 0, "follow: SIGINT closes the run, exit 0")
    got, n = export_points(TRAINSCOPE, col.store, "follow")
    want = {(0, "loss", s): bits(str(1 + s / 1000)) for s in range(31)}
    check(got == want and n == 31, "follow: every step exactly once, values exact")
    check("rotated" in err and "truncated" in err, "follow: rotation and truncation are reported")
    rc, out, _ = cli(TRAINSCOPE, "show", col.store, "follow")
    check("rotated" in out and "truncated" in out, "follow: both are recorded as events of the run")


def backlog(col):
    """A long existing log (more samples than the client's ring of 2^20)
    while the collector is frozen: tail waits for it instead of dropping."""
    path = os.path.join(col.tmp, "backlog.log")
    with open(path, "w") as f:
        for s in range(150_000):
            f.write(f"step={s} a={s} b={s + 0.5} c=1 d=2 e=3 f=4 g=5 h=6\n")
    col.proc.send_signal(signal.SIGSTOP)
    try:
        p = subprocess.Popen([TRAINSCOPE, "tail", "--format", "kv", path, "--run", "backlog",
                              "--endpoint", col.ingest, "--once", "--timeout-ms", "120000"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(4)
    finally:
        col.proc.send_signal(signal.SIGCONT)
    rc = p.wait(timeout=120)
    err = p.stderr.read().decode()
    check(rc == 0 and "1200000 points" in err, f"backlog: 1,200,000 points published ({err.strip()})")
    runs = {r["name"]: r for r in col.query({"op": "runs"})[0]["runs"]}
    r = runs.get("backlog", {})
    check(r.get("points") == 1_200_000 and r.get("dropped") == 0,
          f"backlog: all stored, none dropped although the collector was frozen "
          f"({r.get('points')}, {r.get('dropped')})")


def bad_usage(col):
    log = os.path.join(DATA, "nanogpt.log")
    cases = [
        (["tail", log, "--run", "x"], 2, "--format"),
        (["tail", "--format", "nope", log, "--run", "x"], 2, "unknown format 'nope'"),
        (["tail", "--format", "nanogpt", log], 2, "--run NAME is required"),
        (["tail", "--format", "nanogpt", "/nonexistent/train.log", "--run", "x"], 1,
         "cannot open /nonexistent/train.log"),
        (["tail", "--format", "nanogpt", DATA, "--run", "x"], 1, "is a directory"),
        (["tail", "--pattern", "loss (?<loss>\\S+)", log, "--run", "x"], 2, "no group named step"),
        (["tail", "--pattern", "(?<step>\\d+) ((", log, "--run", "x"], 2, "does not compile"),
        (["tail", "--format", "pattern", log, "--run", "x"], 2, "needs at least one --pattern"),
        (["tail", "--format", "kv", log, "--run", "x", "--poll-ms", "abc"], 2, "needs a number"),
        (["tail", "--format", "kv", log, "--bogus"], 2, "unknown option"),
    ]
    for args, want_rc, want_msg in cases:
        rc, out, err = cli(TRAINSCOPE, *args)
        check(rc == want_rc and want_msg in err,
              f"usage: {' '.join(args[1:4])} ... -> exit {want_rc}, '{want_msg}' (got {rc})")


def main():
    col = Collector(TRAINSCOPE, extra=["--quiet", "--commit-ms", "20"]).start()
    try:
        formats(col)
        user_pattern(col)
        pipe_echo(col)
        pipe_sigterm(col)
        follow_file(col)
        backlog(col)
        bad_usage(col)
    finally:
        check(col.stop() == 0, "collector exits 0")
    finish()


if __name__ == "__main__":
    main()
