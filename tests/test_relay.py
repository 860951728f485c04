"""test_relay.py - many ranks on many nodes through `trainscope relay`.

Real processes only: libtrainscope publishers (tests/pub_load.c) connect to
relays (ZeroMQ's zmq_proxy, ROUTER in front, DEALER upstream), the relays to
one `trainscope collect`, and the store is read back with `trainscope
export` and compared bit for bit with what every rank logged.

usage: /usr/bin/python3 test_relay.py TRAINSCOPE PUB_LOAD [case ...]
"""
import os
import random
import signal
import struct
import subprocess
import sys
import time

import zmq

from tslib import Collector, check, export_points, finish, free_port, read_truth

TRAINSCOPE, PUB_LOAD = sys.argv[1], sys.argv[2]
HDR = struct.Struct("<IBBHQQ")
MAGIC, HELLO, BATCH, ACK, ERROR = 0x50435354, 1, 3, 0x81, 0x82


class Relay:
    def __init__(self, upstream, tmp, listen=None, extra=()):
        self.listen = listen or f"tcp://127.0.0.1:{free_port()}"
        self.upstream = upstream
        self.extra = list(extra)
        self.log_path = os.path.join(tmp, f"relay-{free_port()}.log")
        self.proc = None

    def start(self):
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen([TRAINSCOPE, "relay", "--upstream", self.upstream,
                                      "--listen", self.listen, *self.extra],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        time.sleep(0.2)
        return self

    def stop(self, sig=signal.SIGTERM):
        if not self.proc:
            return None
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = -999
        self.proc = None
        self.log.close()
        return rc


def publisher(tmp, endpoint, run, rank, world, steps, metrics=2, extra=()):
    truth = os.path.join(tmp, f"truth-{run}-{rank}.csv")
    args = [PUB_LOAD, "--endpoint", endpoint, "--run", run, "--rank", str(rank),
            "--world", str(world), "--steps", str(steps), "--metrics", str(metrics),
            "--seed", str(rank + 7), "--truth", truth, "--ring", "65536",
            "--timeout-ms", "120000", *extra]
    return subprocess.Popen(args, stderr=subprocess.PIPE), truth


def wait_all(procs, timeout=300):
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


def truth_of(pubs):
    truth, n = {}, 0
    for rank, (_, path) in enumerate(pubs):
        t, k = read_truth(path, rank)
        truth.update(t)
        n += k
    return truth, n


def sums(points):
    """Per (rank, metric): count and the sum of the finite values."""
    out = {}
    for key, b in points.items():
        v = struct.unpack("<d", struct.pack("<Q", b))[0]
        c, s = out.get(key[:2], (0, 0.0))
        out[key[:2]] = (c + 1, s + (v if v == v and abs(v) != float("inf") else 0.0))
    return out


def sixty_four_ranks():
    """64 ranks of one job on 4 nodes, 16 per node behind one relay each."""
    col = Collector(TRAINSCOPE, extra=["--quiet"]).start()
    relays = [Relay(col.ingest, col.tmp).start() for _ in range(4)]
    steps = 2000
    pubs = [publisher(col.tmp, relays[r // 16].listen, "dist64", r, 64, steps) for r in range(64)]
    check(wait_all([p for p, _ in pubs]), "64 ranks through 4 relays: every rank closed with all points acknowledged")
    truth, logged = truth_of(pubs)
    got, rows = export_points(TRAINSCOPE, col.store, "dist64")
    check(logged == 64 * steps * 2 and rows == logged,
          f"export has {rows} rows for {logged} logged points: none lost, none twice")
    check(got == truth, "every exported value is bit-identical to what its rank logged")
    check(sums(got) == sums(truth), "per rank and metric, counts and sums of the export equal the publishers'")
    runs = col.query({"op": "runs"})[0]["runs"]
    check(len(runs) == 1 and runs[0]["world_size"] == 64 and runs[0]["status"] == "finished",
          f"one run, world size 64, finished ({[(r['name'], r['world_size'], r['status']) for r in runs]})")
    series = col.query({"op": "series", "run": "dist64"})[0]["series"]
    ranks = sorted({s["rank"] for s in series})
    check(len(series) == 128 and ranks == list(range(64)) and all(s["count"] == steps for s in series),
          f"the store keeps a series per (rank, metric): {len(series)} series, ranks 0..{ranks[-1]}")
    for r in relays:
        check(r.stop() == 0, "relay exits 0 on SIGTERM")
    check(col.stop() == 0, "collector exits 0")


def relay_restart():
    """kill -9 of the relay while 8 ranks publish, restarted 1 s later on the
    same endpoint: the ranks resend, every point is stored exactly once."""
    col = Collector(TRAINSCOPE, extra=["--quiet"]).start()
    relay = Relay(col.ingest, col.tmp).start()
    steps = 4000
    pubs = [publisher(col.tmp, relay.listen, "restart", r, 8, steps, extra=["--sleep-us", "1000"])
            for r in range(8)]
    time.sleep(1.5)
    before = sum(s["count"] for s in col.query({"op": "series", "run": "restart"})[0]["series"])
    relay.stop(signal.SIGKILL)
    time.sleep(1.0)
    relay = Relay(col.ingest, col.tmp, listen=relay.listen).start()
    check(0 < before < 8 * steps * 2, f"the relay was killed mid-run ({before} of {8 * steps * 2} points stored)")
    check(wait_all([p for p, _ in pubs]), "after the relay restart every rank closed with all points acknowledged")
    truth, logged = truth_of(pubs)
    got, rows = export_points(TRAINSCOPE, col.store, "restart")
    check(rows == logged == 8 * steps * 2 and got == truth,
          f"relay restart: {rows} rows for {logged} logged, bit-identical, nothing lost or twice")
    relay.stop()
    check(col.stop() == 0, "collector exits 0")


def hdr(typ, stream, seq):
    return HDR.pack(MAGIC, 1, typ, 0, stream, seq)


def reply(sock, timeout=3000):
    if not sock.poll(timeout):
        return None
    f = sock.recv_multipart()
    _, _, typ, flags, stream, seq = HDR.unpack(f[0])
    out = {"type": typ, "flags": flags, "stream": stream, "seq": seq, "frames": len(f)}
    if typ == ERROR:
        out["code"] = struct.unpack("<I", f[1][:4])[0]
    if typ == ACK:
        out["next"] = struct.unpack("<Q", f[1])[0]
    return out


def replies_route_back():
    """ACK and ERROR replies reach the right peer through one and two relays,
    and follow a stream that moves from one connection to another."""
    col = Collector(TRAINSCOPE, extra=["--quiet", "--commit-ms", "20"]).start()
    node = Relay(col.ingest, col.tmp).start()
    rack = Relay(col.ingest, col.tmp).start()
    chained = Relay(rack.listen, col.tmp).start()     # node relay -> rack relay -> collector
    ctx = zmq.Context.instance()

    def peer(ep):
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(ep)
        return s

    a, b, other = peer(node.listen), peer(node.listen), peer(chained.listen)
    time.sleep(0.3)
    sid = random.getrandbits(63) | 1
    a.send_multipart([hdr(BATCH, sid, 1), b""])
    r = reply(a)
    check(r and r["type"] == ERROR and r["code"] == 9 and r["stream"] == sid,
          f"an ERROR reaches the publisher behind the relay ({r})")
    check(b.poll(300) == 0, "...and not the other publisher on the same relay")
    a.send_multipart([hdr(BATCH, sid, 1), b"", b"extra"])
    r = reply(a)
    check(r and r["type"] == ERROR and r["code"] == 10, f"3 frames through a relay: ERROR 10 routed back ({r})")
    a.send_multipart([hdr(HELLO, sid, 1), b'{"run":"routed","rank":3,"world_size":4}'])
    r = reply(a)
    check(r and r["type"] == ACK and r["seq"] == 1 and r["next"] == 2, f"HELLO through a relay is ACKed ({r})")
    # The stream moves to another connection (b): replies follow its last message.
    payload = struct.pack("<IH", 0, 4) + b"loss"
    b.send_multipart([hdr(2, sid, 2), payload])
    r = reply(b)
    check(r and r["type"] == ACK and r["seq"] == 2, f"the ACK follows the stream to its new connection ({r})")
    check(a.poll(300) == 0, "...and no longer goes to the old one")
    sid2 = random.getrandbits(63) | 1
    other.send_multipart([hdr(HELLO, sid2, 1), b'{"run":"routed","rank":2,"world_size":4}'])
    r = reply(other)
    check(r and r["type"] == ACK and r["seq"] == 1, f"through two chained relays the ACK comes back ({r})")
    other.send_multipart([hdr(BATCH, sid2, 5), struct.pack("<II", 0, 0)])
    r = reply(other)
    check(r and r["type"] == ACK and r["flags"] & 1 and r["next"] == 2,
          f"a gap through two relays: ACK with the GAP flag, next 2 ({r})")
    ranks = sorted(s["rank"] for s in col.query({"op": "series", "run": "routed"})[0]["series"])
    check(ranks == [3], f"the relayed DEFINE made rank 3's series ({ranks})")
    for s in (a, b, other):
        s.close()
    for r in (chained, rack, node):
        r.stop()
    check(col.stop() == 0, "collector exits 0")


def bad_command_lines():
    p = subprocess.run([TRAINSCOPE, "relay"], capture_output=True, timeout=10)
    check(p.returncode == 2 and b"--upstream" in p.stderr, "relay without --upstream: exit 2, says what is missing")
    p = subprocess.run([TRAINSCOPE, "relay", "--upstream", "tcp://127.0.0.1:1", "--listen",
                        f"tcp://0.0.0.0:{free_port()}"], capture_output=True, timeout=10)
    check(p.returncode == 2 and b"--curve-secret" in p.stderr and b"--insecure" in p.stderr,
          f"relay listening on 0.0.0.0 without keys is refused ({p.stderr.decode().strip()[:120]})")
    p = subprocess.run([TRAINSCOPE, "relay", "--upstream", "nonsense://x"], capture_output=True, timeout=10)
    check(p.returncode == 1 and b"nonsense://x" in p.stderr, f"a bad upstream endpoint is named ({p.stderr.decode().strip()})")


CASES = {"64": sixty_four_ranks, "restart": relay_restart, "routes": replies_route_back,
         "cli": bad_command_lines}

if __name__ == "__main__":
    for name in sys.argv[3:] or CASES:
        print(f"--- {name}", flush=True)
        CASES[name]()
    finish()
