"""tslib.py - what the integration tests share: a real collector process on a
temporary store, its query API, the trainscope CLI, and exact value parsing.

Runs with Debian's /usr/bin/python3 (python3-zmq); no mocks: every helper
starts or talks to the real binaries.
"""
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

import zmq

FAILURES = []


def check(cond, what):
    """Record one assertion; the test exits 1 at the end if any failed."""
    if cond:
        print(f"ok: {what}", flush=True)
    else:
        print(f"FAIL: {what}", flush=True)
        FAILURES.append(what)
    return cond


def finish():
    if FAILURES:
        print(f"{len(FAILURES)} check(s) failed", flush=True)
        sys.exit(1)
    print("all checks passed", flush=True)
    sys.exit(0)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_value(text):
    """The u64 bit pattern of a value printed by `trainscope export`."""
    t = text.strip('"')
    neg = t.startswith("-")
    body = t[1:] if neg else t
    sign = (1 << 63) if neg else 0
    if body == "nan":
        return sign | 0x7FF8000000000000
    if body.startswith("nan(0x") and body.endswith(")"):
        return sign | 0x7FF0000000000000 | int(body[6:-1], 16)
    if body == "inf":
        return sign | 0x7FF0000000000000
    return struct.unpack("<Q", struct.pack("<d", float(t)))[0]


class Collector:
    """A `trainscope collect` process on a store in a temp dir."""

    def __init__(self, binary, tmp=None, transport="tcp", store=None, extra=()):
        self.binary = binary
        self.tmp = tmp or tempfile.mkdtemp(prefix="ts-test-")
        self.store = store or os.path.join(self.tmp, "runs.db")
        if transport == "tcp":
            self.ingest = f"tcp://127.0.0.1:{free_port()}"
            self.api = f"tcp://127.0.0.1:{free_port()}"
            self.live = f"tcp://127.0.0.1:{free_port()}"
        else:
            self.ingest = f"ipc://{self.tmp}/ingest"
            self.api = f"ipc://{self.tmp}/api"
            self.live = f"ipc://{self.tmp}/live"
        self.extra = list(extra)
        self.proc = None
        self.log_path = os.path.join(self.tmp, "collector.log")

    def args(self):
        return [self.binary, "collect", "--store", self.store, "--ingest", self.ingest,
                "--api", self.api, "--live", self.live, *self.extra]

    def start(self, wait=True):
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen(self.args(), stdout=self.log, stderr=subprocess.STDOUT)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"collector exited with {self.proc.returncode}: {self.output()}")
            try:
                if self.query({"op": "info"}, timeout_ms=300)[0].get("ok"):
                    return
            except TimeoutError:
                pass
        raise RuntimeError("collector did not answer its API in time")

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.proc is None:
            return None
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc = None
        self.log.close()
        return rc

    def output(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def query(self, req, timeout_ms=5000):
        """One API request; returns (json reply, binary frame or None)."""
        ctx = zmq.Context.instance()
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(self.api)
        try:
            s.send(json.dumps(req).encode())
            if not s.poll(timeout_ms):
                raise TimeoutError(f"no API reply to {req}")
            frames = s.recv_multipart()
        finally:
            s.close()
        frames = [f for f in frames if f]  # a REQ-style empty delimiter, if any
        reply = json.loads(frames[0])
        return reply, (frames[1] if len(frames) > 1 else None)


def cli(binary, *args, check_rc=None):
    """Run a trainscope CLI command; returns (rc, stdout, stderr)."""
    p = subprocess.run([binary, *args], capture_output=True, timeout=120)
    out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    if check_rc is not None and p.returncode != check_rc:
        print(f"  command {args} exited {p.returncode}: {err}", flush=True)
    return p.returncode, out, err


def export_points(binary, store, run, *extra):
    """{(rank, metric, step[, timeline]): value bits} and the raw row count."""
    rc, out, err = cli(binary, "export", store, run, "--format", "csv", *extra)
    if rc != 0:
        raise RuntimeError(f"export failed ({rc}): {err}")
    lines = out.splitlines()
    import csv
    rows = list(csv.reader(lines[1:]))
    points = {}
    for r in rows:
        key = (int(r[2]), r[1], int(r[3])) + ((int(r[6]),) if len(r) > 6 else ())
        points[key] = parse_value(r[5])
    return points, len(rows)


def read_truth(path, rank):
    """What pub_load says it logged: {(rank, metric, step): bits}, row count."""
    points, n = {}, 0
    with open(path) as f:
        for line in f:
            step, metric, bits = line.rstrip("\n").split(",")
            points[(rank, metric, int(step))] = int(bits, 16)
            n += 1
    return points, n
