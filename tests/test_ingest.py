"""test_ingest.py - the collector's side of PROTOCOL.md, checked against the
real `trainscope collect` binary with raw pyzmq sockets: ACK semantics
(in-order, duplicates, gaps), hostile input of every kind with a good
publisher's data checked bit-exact around it, the query API, names that look
like paths or quotes, single-writer locking, SIGTERM, kill -9 and resend,
resumed runs, LIVE, and a rough ingest rate.

    /usr/bin/python3 tests/test_ingest.py build/collector/trainscope

Frames are built with struct from PROTOCOL.md alone (not from wire.h), so
the test also checks that the document and the code agree.
"""
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tslib import FAILURES, Collector, check, finish  # noqa: E402

BIN = sys.argv[1]
CTX = zmq.Context.instance()

MAGIC = 0x50435354
HELLO, DEFINE, BATCH, EVENT, DROPS, BYE = 1, 2, 3, 4, 5, 6
ACK, ERROR, LIVE = 0x81, 0x82, 0x90
GAP = 1
HDR = struct.Struct("<IBBHQQ")
SAMPLE = struct.Struct("<IqqQ")      # metric id, step, time ns, value bits
T0 = 1_700_000_000_000_000_000       # ns; multiples of 1 ms survive the store's ms unit


TEMP_DIRS = []


def make_collector(**kw):
    """A tslib.Collector whose temp dir is removed when every check passed."""
    c = Collector(BIN, **kw)
    TEMP_DIRS.append(c.tmp)
    return c


def hdr(typ, stream, seq, version=1, magic=MAGIC, flags=0):
    return HDR.pack(magic, version, typ, flags, stream, seq)


def bits(x):
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def define_payload(entries):
    """entries: [(id, name)] with name str or raw bytes."""
    out = b""
    for mid, name in entries:
        nb = name.encode() if isinstance(name, str) else name
        out += struct.pack("<IH", mid, len(nb)) + nb
    return out


def batch_payload(samples):
    """samples: [(id, step, t_ns, value bits)]"""
    return struct.pack("<II", len(samples), 0) + b"".join(SAMPLE.pack(*s) for s in samples)


def event_payload(step, t, kind, text):
    k, x = kind.encode(), text.encode()
    return struct.pack("<qqH", step, t, len(k)) + k + struct.pack("<I", len(x)) + x


def parse_reply(frames):
    magic, ver, typ, flags, stream, seq = HDR.unpack(frames[0])
    if typ == ACK:
        return {"type": "ACK", "gap": bool(flags & GAP), "stream": stream, "seq": seq,
                "next": struct.unpack("<Q", frames[1])[0]}
    code = struct.unpack("<I", frames[1][:4])[0]
    return {"type": "ERROR", "code": code, "stream": stream, "seq": seq,
            "msg": frames[1][4:].decode(errors="replace")}


class Pub:
    """A publisher from PROTOCOL.md: numbered messages kept until ACKed,
    resent on GAP and after 1 s without progress."""

    def __init__(self, col, run=None, project=None, rank=0, world=1, stream=None, **hello_extra):
        self.sock = CTX.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(col.ingest)
        self.stream = stream or (random.getrandbits(63) | 1)
        self.seq = 0
        self.kept = {}
        self.acked = 0
        self.replies = []
        self.truth = {}  # metric name -> {step: (t, bits)}
        self.names = {}
        if run is not None:
            h = {"run": run, "rank": rank, "world_size": world, **hello_extra}
            if project is not None:
                h["project"] = project
            self.send(HELLO, json.dumps(h).encode())

    def raw(self, frames):
        self.sock.send_multipart(frames)

    def send(self, typ, payload):
        self.seq += 1
        frames = [hdr(typ, self.stream, self.seq), payload]
        self.kept[self.seq] = frames
        self.raw(frames)
        return self.seq

    def define(self, entries):
        for mid, name in entries:
            self.names[mid] = name
        return self.send(DEFINE, define_payload(entries))

    def batch(self, samples, record=True):
        if record:
            for mid, step, t, b in samples:
                self.truth.setdefault(self.names[mid], {})[step] = (t, b)
        return self.send(BATCH, batch_payload(samples))

    def series_batch(self, mid, steps, salt=0.0):
        return self.batch([(mid, s, T0 + s * 1_000_000, bits(s * 0.5 + salt)) for s in steps])

    def poll(self, timeout_ms=100):
        got = []
        while self.sock.poll(timeout_ms):
            r = parse_reply(self.sock.recv_multipart())
            got.append(r)
            self.replies.append(r)
            if r["type"] == "ACK":
                if r["seq"] > self.acked:
                    self.acked = r["seq"]
                for q in [q for q in self.kept if q <= r["seq"]]:
                    del self.kept[q]
                if r["gap"]:
                    self.resend_from(r["next"])
            timeout_ms = 0
        return got

    def resend_from(self, seq):
        for q in sorted(self.kept):
            if q >= seq:
                self.raw(self.kept[q])

    def drain(self, limit, timeout=20):
        """Until at most `limit` sent messages await their ACK (durable)."""
        deadline = time.time() + timeout
        last, last_t = self.acked, time.time()
        while time.time() < deadline:
            self.poll(0)
            if len(self.kept) <= limit:
                return True
            self.poll(20)
            if self.acked != last:
                last, last_t = self.acked, time.time()
            elif time.time() - last_t > 1.0:
                self.resend_from(self.acked + 1)
                last_t = time.time()
        return False

    def sync(self, timeout=20):
        return self.drain(0, timeout)

    def wait_reply(self, pred, timeout=5):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for r in self.poll(50):
                if pred(r):
                    return r
        return None

    def errors(self):
        return [r for r in self.replies if r["type"] == "ERROR"]

    def close(self):
        self.sock.close()


def raw_peer(col):
    s = CTX.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(col.ingest)
    return s


def recv_reply(sock, timeout=3000):
    if not sock.poll(timeout):
        return None
    return parse_reply(sock.recv_multipart())


def q(col, req):
    return col.query(req)


def series_map(col, run):
    r, _ = q(col, {"op": "series", "run": run})
    return {(s["rank"], s["name"]): s for s in r.get("series", [])}


def points(col, run, metric, rank=0, **kw):
    """[(step, t_ns, bits)] of one series from the API."""
    s = series_map(col, run).get((rank, metric))
    if s is None:
        return None
    r, blob = q(col, {"op": "points", "series": s["id"], **kw})
    if not r.get("ok"):
        return None
    n = r["count"]
    blob = blob or b""
    if len(blob) != 24 * n:
        return None
    return [struct.unpack_from("<qqQ", blob, 24 * i) for i in range(n)]


def intact(col, run, pub, what):
    """Every point the publisher logged is stored exactly once, bit-exact."""
    ok = True
    for metric, truth in pub.truth.items():
        pts = points(col, run, metric)
        got = {} if pts is None else {p[0]: (p[1], p[2]) for p in pts}
        if pts is None or len(pts) != len(truth) or got != truth:
            ok = False
            print(f"  {metric}: {0 if pts is None else len(pts)} stored, {len(truth)} logged")
    return check(ok, f"{what}: good publisher's data intact and bit-exact")


# ---- ACK semantics --------------------------------------------------------

def test_acks(col):
    p = Pub(col, "acks")
    p.define([(0, "loss")])
    p.series_batch(0, range(0, 10))
    r = p.wait_reply(lambda r: r["type"] == "ACK" and r["seq"] == 3)
    check(r is not None and not r["gap"] and r["next"] == 4 and r["stream"] == p.stream,
          "in-order messages are ACKed after the commit with seq 3, next_expected 4")
    p.raw(p.kept.get(2) or [hdr(DEFINE, p.stream, 2), define_payload([(0, "loss")])])
    r = p.wait_reply(lambda r: r["type"] == "ACK")
    check(r is not None and not r["gap"] and r["seq"] == 3 and r["next"] == 4,
          "a duplicate is discarded and ACKed at once without GAP")
    frames6 = [hdr(BATCH, p.stream, 6), batch_payload([(0, 100, T0, bits(1.0))])]
    p.raw(frames6)
    r = p.wait_reply(lambda r: r["type"] == "ACK")
    check(r is not None and r["gap"] and r["next"] == 4 and r["seq"] == 3,
          "a message past a gap is discarded: ACK with GAP, next_expected 4")
    p.series_batch(0, range(10, 20))   # seq 4
    p.series_batch(0, range(20, 30))   # seq 5
    check(p.sync(), "after the gap is filled everything is ACKed")
    intact(col, "acks", p, "gap discarded, resend applied once")
    other = raw_peer(col)
    sid = random.getrandbits(63) | 1
    other.send_multipart([hdr(BATCH, sid, 7), batch_payload([])])
    r = recv_reply(other)
    check(r is not None and r["type"] == "ACK" and r["gap"] and r["next"] == 1 and r["seq"] == 0,
          "unknown stream with seq > 1: ACK with GAP and next_expected 1")
    other.send_multipart([hdr(BATCH, sid, 1), batch_payload([])])
    r = recv_reply(other)
    check(r is not None and r["type"] == "ERROR" and r["code"] == 9,
          "unknown stream, seq 1 that is not a HELLO: ERROR 9")
    other.close()
    p.close()


# ---- hostile input ---------------------------------------------------------

def hostile(col, good, what, attack, expect_code=None, expect=None):
    """Good data before and after one attack; the attack's reply checked."""
    base = 1000 * (len(good.truth.get("loss", {})) + 1)
    good.series_batch(0, range(base, base + 50))
    good.sync()
    reply = attack()
    if expect_code is not None:
        check(reply is not None and reply["type"] == "ERROR" and reply["code"] == expect_code,
              f"{what}: ERROR {expect_code}" + (f" (got {reply})" if reply and reply.get("code") != expect_code else ""))
    if expect is not None:
        check(expect(reply), f"{what}: reply as specified")
    good.series_batch(0, range(base + 50, base + 100))
    check(good.sync(), f"{what}: the collector still ACKs a good publisher")
    intact(col, "good", good, what)


def test_hostile(col):
    good = Pub(col, "good")
    good.define([(0, "loss")])

    def send_raw(frames, timeout=3000):
        s = raw_peer(col)
        s.send_multipart(frames)
        r = recv_reply(s, timeout)
        s.close()
        return r

    evil = Pub(col, "evil")
    evil.define([(0, "x")])
    evil.sync()

    hostile(col, good, "3-byte header", lambda: send_raw([b"TSC", b""]), 1)
    hostile(col, good, "truncated 10-byte header",
            lambda: send_raw([hdr(BATCH, 5, 1)[:10], b""]), 5)
    hostile(col, good, "wrong magic",
            lambda: send_raw([hdr(BATCH, evil.stream, 3, magic=0xDEADBEEF), b""]), 2,
            expect=lambda r: r and r["stream"] == 0 and r["seq"] == 0)
    hostile(col, good, "wrong version",
            lambda: send_raw([hdr(BATCH, evil.stream, 3, version=2), b""]), 3,
            expect=lambda r: r and "version 1" in r["msg"])
    hostile(col, good, "empty single frame", lambda: send_raw([b""]), 1)

    # Frames: not consumed, so the same seq can then be sent properly.
    def three_frames():
        r = send_raw([hdr(BATCH, evil.stream, evil.seq + 1), batch_payload([]), b"extra"])
        return r
    hostile(col, good, "3 frames instead of 2", three_frames, 10,
            expect=lambda r: r and r["stream"] == evil.stream and r["seq"] == evil.seq + 1)
    hostile(col, good, "1 frame (header only)",
            lambda: send_raw([hdr(BATCH, evil.stream, evil.seq + 1)]), 10)
    evil.batch([(0, 1, T0, bits(1.0))])
    check(evil.sync(), "a seq refused for its frame count is still free for the proper message")

    # Invalid but framed: ERROR, seq consumed.
    def framed(typ, payload):
        def go():
            seq = evil.send(typ, payload)
            r = evil.wait_reply(lambda r: r["type"] == "ERROR" and r["seq"] == seq)
            return r
        return go
    hostile(col, good, "unknown type 0x07", framed(7, b""), 4)
    hostile(col, good, "BATCH count 0xFFFFFFFF", framed(BATCH, struct.pack("<II", 0xFFFFFFFF, 0)), 5)
    hostile(col, good, "BATCH length not 8 + 28n",
            framed(BATCH, batch_payload([(0, 1, T0, 0)]) + b"\0"), 5)
    hostile(col, good, "DEFINE name length 60000",
            framed(DEFINE, struct.pack("<IH", 1, 60000) + b"a" * 10), 5)
    hostile(col, good, "DEFINE metric id over 2^20", framed(DEFINE, define_payload([(1 << 20, "m")])), 5)
    hostile(col, good, "EVENT text length 2^31",
            framed(EVENT, struct.pack("<qqH", 0, 0, 1) + b"k" + struct.pack("<I", 1 << 31)), 5)
    hostile(col, good, "DROPS of 39 bytes", framed(DROPS, b"\0" * 39), 5)
    hostile(col, good, "non-UTF-8 metric name", framed(DEFINE, define_payload([(2, b"bad\xff\xfe")])), 6)
    hostile(col, good, "overlong UTF-8 in an event kind",
            framed(EVENT, struct.pack("<qqH", 0, 0, 2) + b"\xc0\xaf" + struct.pack("<I", 0)), 6)
    hostile(col, good, "metric id redefined to another name", framed(DEFINE, define_payload([(0, "y")])), 8)
    hostile(col, good, "BATCH with an undefined metric id",
            framed(BATCH, batch_payload([(0, 10, T0, bits(2.0)), (77, 10, T0, bits(3.0))])), 8)
    hostile(col, good, "BATCH using the id whose DEFINE was rejected",
            framed(BATCH, batch_payload([(2, 10, T0, bits(2.0))])), 8)
    hostile(col, good, "BYE status of 65 bytes", framed(BYE, b"f" * 65), 5)
    hostile(col, good, "HELLO again on a running stream", framed(HELLO, b'{"run":"evil"}'), 4)
    check(evil.sync(), "rejected messages consumed their seq: the stream is ACKed past them")
    pts = points(col, "evil", "x")
    check(pts is not None and [p[0] for p in pts] == [1],
          "a BATCH with one undefined metric id stores none of its samples")

    # HELLOs: a rejected HELLO creates nothing.
    def bad_hello(payload):
        def go():
            return send_raw([hdr(HELLO, random.getrandbits(63) | 1, 1), payload])
        return go
    hostile(col, good, "HELLO that is not JSON", bad_hello(b"{run: nope"), 7)
    hostile(col, good, "HELLO that is a JSON array", bad_hello(b'["run"]'), 7)
    hostile(col, good, "HELLO without run", bad_hello(b'{"project":"p"}'), 7)
    hostile(col, good, "HELLO with an empty run", bad_hello(b'{"run":""}'), 7)
    hostile(col, good, "HELLO with a 513-byte run", bad_hello(json.dumps({"run": "r" * 513}).encode()), 5)
    hostile(col, good, "HELLO with rank -1", bad_hello(b'{"run":"h","rank":-1}'), 7)
    hostile(col, good, "HELLO with rank 1.5", bad_hello(b'{"run":"h","rank":1.5}'), 7)
    hostile(col, good, "HELLO with world_size 0", bad_hello(b'{"run":"h","world_size":0}'), 7)
    hostile(col, good, "HELLO with config a string", bad_hello(b'{"run":"h","config":"x"}'), 7)
    hostile(col, good, "HELLO with invalid UTF-8", bad_hello(b'{"run":"h\xff"}'), 6)
    hostile(col, good, "HELLO with \\u0000 in the run", bad_hello(b'{"run":"a\\u0000b"}'), 7)
    hostile(col, good, "HELLO over 1 MiB", bad_hello(b'{"run":"h","pad":"' + b"x" * (1 << 20) + b'"}'), 5)
    runs = {r["name"] for r in q(col, {"op": "runs"})[0]["runs"]}
    check("h" not in runs and "a" not in runs, "rejected HELLOs created no run")

    def frame_over_limit():
        s = raw_peer(col)
        s.send_multipart([hdr(BATCH, evil.stream, evil.seq + 1), b"\0" * (17 << 20)])
        r = recv_reply(s)
        s.close()
        return r
    hostile(col, good, "payload of 17 MiB (over 16 MiB)", frame_over_limit, 5)

    def huge():
        before = col.output().count("connection closed by transport")
        s = raw_peer(col)
        s.send_multipart([hdr(BATCH, evil.stream, evil.seq + 1), b"\0" * 100_000_000], copy=False)
        time.sleep(1.5)
        s.close()
        deadline = time.time() + 5
        while time.time() < deadline and col.output().count("connection closed by transport") == before:
            time.sleep(0.1)
        return col.output().count("connection closed by transport") > before
    hostile(col, good, "a 100 MB frame", huge,
            expect=lambda logged: logged)
    check(col.output().count("connection closed by transport") == 1,
          "only the 100 MB sender is logged as dropped by the transport, not the peers that left")

    def not_zmtp():
        time.sleep(1.1)  # past the log limiter's one line per second
        before = col.output().count("connection closed by transport")
        host, port = col.ingest[len("tcp://"):].rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5) as sk:
            sk.sendall(b"GET / HTTP/1.0\r\n\r\n" + b"\xff" * 64)
            time.sleep(0.5)
        deadline = time.time() + 5
        while time.time() < deadline and col.output().count("connection closed by transport") == before:
            time.sleep(0.1)
        return col.output().count("connection closed by transport") > before
    hostile(col, good, "an HTTP request (not ZMTP)", not_zmtp, expect=lambda logged: logged)

    flood(col, good)
    evil.close()
    good.close()


def flood(col, good):
    """Garbage as fast as one client can send it, while a good client logs."""
    bad = raw_peer(col)
    bad.setsockopt(zmq.SNDHWM, 100000)
    start_lines = col.output().count("bad magic")
    junk = [b"\xff" * 24, b"junk"]
    base = max(good.truth["loss"]) + 1000  # steps keep going up: no new timeline
    t0 = time.time()
    for i in range(100):
        for _ in range(300):
            bad.send_multipart(junk)
        good.series_batch(0, range(base + 10 * i, base + 10 * i + 10))
        good.poll(0)
    ok = good.sync(timeout=60)
    took = time.time() - t0
    check(ok, f"flood of 30000 garbage messages: the good client's 100 batches are all ACKed ({took:.1f} s)")
    intact(col, "good", good, "flood")
    time.sleep(1.2)
    lines = col.output().count("bad magic") - start_lines
    check(1 <= lines <= took + 4, f"the flood is logged in {lines} rate-limited lines")
    check("more suppressed" in col.output(), "log lines say how many were suppressed")
    bad.close()


# ---- names, API, LIVE, BYE, DROPS -------------------------------------------

def test_names(col):
    run = '../we ird/"run" ü 🚀 \\ ..'
    project = "team/../proj 'x'"
    metric = 'train/loss "q" ../../etc/passwd ü'
    p = Pub(col, run, project=project, host="h", pid=1, config={"lr": 0.1, "name": "a\"b"})
    p.define([(3, metric)])
    p.series_batch(3, range(5))
    check(p.sync(), "publisher with odd names is ACKed")
    runs = q(col, {"op": "runs"})[0]["runs"]
    r = [x for x in runs if x["name"] == run]
    check(len(r) == 1 and r[0]["project"] == project, "run and project names returned intact")
    full = f"{project}/{run}"
    s = series_map(col, full)
    check((0, metric) in s, "metric name with / .. quotes and unicode returned intact")
    pts = points(col, full, metric)
    check(pts is not None and len(pts) == 5, "its points are found by project/name")
    p.close()


def test_api(col):
    p = Pub(col, "api-run", project="proj", world=2)
    p.define([(0, "loss"), (1, "gnorm")])
    p.series_batch(0, range(100))
    p.batch([(1, 0, T0, bits(float("nan"))), (1, 1, T0, bits(float("inf"))), (1, 2, T0, bits(-0.0)),
             (1, 3, T0, 0x7FF8DEADBEEF0001)])
    p.send(EVENT, event_payload(50, T0 + 50_000_000, "checkpoint", "saved 'ckpt/50'"))
    p.send(DROPS, struct.pack("<Qqqqq", 7, 10, 20, T0, T0 + 10))
    check(p.sync(), "API data ACKed")

    r, _ = q(col, {"op": "info"})
    check(r.get("ok") and r["protocol"] == 1 and r["version"] and r["store"] == col.store
          and r["time_unit_ns"] == 1_000_000, "info: protocol, version, store, time unit")
    check(r.get("live") == col.live, "info: names the live endpoint (%r)" % r.get("live"))
    r, _ = q(col, {"op": "runs"})
    run = [x for x in r["runs"] if x["name"] == "api-run"][0]
    keys = {"id", "project", "name", "status", "world_size", "created_ns", "updated_ns", "ended_ns",
            "points", "series", "dropped", "resumes"}
    check(keys <= set(run), "runs: every field")
    check(run["project"] == "proj" and run["world_size"] == 2 and run["points"] == 104
          and run["series"] == 2 and run["dropped"] == 7 and run["status"] == "running",
          f"runs: values ({run})")
    check(r["runs"][0]["created_ns"] >= r["runs"][-1]["created_ns"], "runs: newest first")
    sm = series_map(col, "proj/api-run")
    g = sm.get((0, "gnorm"), {})
    keys = {"id", "rank", "name", "count", "step_first", "step_last", "t_first_ns", "t_last_ns",
            "min", "max", "n_nan", "n_inf", "generations"}
    check(keys <= set(g), "series: every field")
    check(g.get("n_nan") == 2 and g.get("n_inf") == 1 and g.get("count") == 4,
          f"series: NaN and Inf counted ({g})")
    loss = sm[(0, "loss")]
    check(loss["min"] == 0.0 and loss["max"] == 49.5 and loss["step_last"] == 99
          and loss["t_first_ns"] == T0, "series: min, max, steps, times")
    r, _ = q(col, {"op": "events", "run": "proj/api-run"})
    ev = [e for e in r.get("events", []) if e["kind"] == "checkpoint"]
    check(len(ev) == 1 and ev[0]["step"] == 50 and ev[0]["text"] == "saved 'ckpt/50'"
          and ev[0]["t_ns"] == T0 + 50_000_000, "events: the EVENT, intact")
    pts = points(col, "proj/api-run", "gnorm")
    check(pts is not None and [x[2] for x in pts] ==
          [bits(float("nan")), bits(float("inf")), bits(-0.0), 0x7FF8DEADBEEF0001],
          "points: NaN payloads, Inf and -0.0 bit-exact")
    pts = points(col, "proj/api-run", "loss", **{"from": 10, "to": 19})
    check(pts is not None and [x[0] for x in pts] == list(range(10, 20)), "points: from/to")
    r, blob = q(col, {"op": "buckets", "series": loss["id"], "from": 0, "to": 99, "n": 10})
    ok = r.get("ok") and r["count"] == 10 and blob is not None and len(blob) == 560
    if ok:
        b = [struct.unpack_from("<qqqdddd", blob, 56 * i) for i in range(10)]
        ok = all(x[0] == 10 for x in b) and b[0][1] == 0 and b[0][2] == 9 and b[9][6] == 49.5
    check(ok, "buckets: 10 buckets of 10 points with first/last steps and values")

    bad = [
        (b"{not json", "bad JSON"),
        (b"[1,2]", "JSON that is not an object"),
        (b'{"no":"op"}', "no op"),
        (b'{"op":"frobnicate"}', "unknown op"),
        (b'{"op":"series","run":"no-such-run"}', "unknown run"),
        (b'{"op":"series"}', "series without run"),
        (b'{"op":"events","run":7}', "run that is not a string"),
        (b'{"op":"points"}', "points without series"),
        (b'{"op":"points","series":"x"}', "series that is not a number"),
        (json.dumps({"op": "points", "series": loss["id"], "from": 10, "to": 5}).encode(), "from > to"),
        (json.dumps({"op": "points", "series": loss["id"], "from": 1.5}).encode(), "fractional step"),
        (json.dumps({"op": "buckets", "series": loss["id"], "from": 0, "to": 9, "n": 0}).encode(), "n = 0"),
        (json.dumps({"op": "buckets", "series": loss["id"], "from": 0, "to": 9, "n": 100001}).encode(),
         "n > 100000"),
        (json.dumps({"op": "buckets", "series": loss["id"], "n": 5}).encode(), "buckets without a range"),
        (b"\xff\xfe", "not UTF-8"),
    ]
    for raw, what in bad:
        s = CTX.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(col.api)
        s.send(raw)
        ok = s.poll(3000)
        rep = json.loads(s.recv_multipart()[0]) if ok else {}
        check(rep.get("ok") is False and isinstance(rep.get("error"), str) and rep["error"],
              f"api error for {what}: {rep.get('error')}")
        s.close()
    s = CTX.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(col.api)
    s.send_multipart([b'{"op":"info"}', b'{"op":"info"}'])
    rep = json.loads(s.recv_multipart()[0]) if s.poll(3000) else {}
    check(rep.get("ok") is False, "api: a request of two JSON frames is refused")
    s.close()
    req = CTX.socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    req.connect(col.api)
    req.send(json.dumps({"op": "points", "series": loss["id"], "from": 0, "to": 4}).encode())
    frames = req.recv_multipart() if req.poll(3000) else []
    check(len(frames) == 2 and json.loads(frames[0])["count"] == 5 and len(frames[1]) == 120,
          "api: a REQ client gets the same reply (empty delimiter handled)")
    req.close()
    r, _ = q(col, {"op": "info"})
    check(r.get("ok"), "api keeps serving after bad requests")

    sub = CTX.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(col.live)
    sub.setsockopt(zmq.SUBSCRIBE, b"proj/api-run")
    time.sleep(0.5)
    p.batch([(0, 1000, T0, bits(1.5)), (1, 1000, T0, bits(2.5)), (0, 1001, T0 + 1_000_000, bits(3.5))])
    got = {}
    deadline = time.time() + 3
    while len(got) < 2 and time.time() < deadline:
        if sub.poll(200):
            topic, h, pay = sub.recv_multipart()
            _, _, typ, _, sid, seq = HDR.unpack(h)
            series, rank, mlen = struct.unpack_from("<QIH", pay)
            name = pay[14:14 + mlen].decode()
            (n,) = struct.unpack_from("<I", pay, 14 + mlen)
            pts = [struct.unpack_from("<qqQ", pay, 18 + mlen + 24 * i) for i in range(n)]
            got[name] = (topic, typ, sid, series, rank, pts, len(pay) == 18 + mlen + 24 * n)
    lo = got.get("loss")
    check(lo is not None and lo[0] == b"proj/api-run" and lo[1] == LIVE and lo[2] == lo[3] == loss["id"]
          and lo[5] == [(1000, T0, bits(1.5)), (1001, T0 + 1_000_000, bits(3.5))] and lo[6],
          "LIVE: one message per series touched, topic, header and payload as specified")
    check("gnorm" in got and len(got["gnorm"][5]) == 1, "LIVE: the other series of the batch")
    sub.close()

    p.send(BYE, b"")
    check(p.sync(), "BYE ACKed")
    run = [x for x in q(col, {"op": "runs"})[0]["runs"] if x["name"] == "api-run"][0]
    check(run["status"] == "finished" and run["ended_ns"] > 0, "BYE: the run is finished")
    p.close()


def test_bye_status(col):
    a = Pub(col, "two-ranks", rank=0, world=2)
    b = Pub(col, "two-ranks", rank=1, world=2)
    a.send(BYE, b"")
    a.sync()
    b.sync()
    st = [x for x in q(col, {"op": "runs"})[0]["runs"] if x["name"] == "two-ranks"][0]["status"]
    check(st == "running", "a run stays running until all its ranks said BYE")
    b.send(BYE, b"failed")
    b.sync()
    st = [x for x in q(col, {"op": "runs"})[0]["runs"] if x["name"] == "two-ranks"][0]["status"]
    check(st == "failed", "a rank's BYE status 'failed' becomes the run's")
    a.close()
    b.close()


def test_resume(col):
    a = Pub(col, "resumed")
    a.define([(0, "loss"), (1, "lr")])
    for s0 in range(0, 5001, 1000):
        steps = range(s0, min(s0 + 1000, 5001))
        a.batch([(m, s, T0 + s * 1_000_000, bits(s * 1.0 + m)) for s in steps for m in (0, 1)])
    check(a.sync(), "first job: steps 0..5000 ACKed")
    a.close()  # killed: no BYE
    b = Pub(col, "resumed")
    b.define([(0, "loss"), (1, "lr")])
    for s0 in range(4000, 9001, 1000):
        steps = range(s0, min(s0 + 1000, 9001))
        b.batch([(m, s, T0 + s * 1_000_000, bits(-s * 1.0 - m)) for s in steps for m in (0, 1)])
    check(b.sync(), "resumed job: steps 4000..9000 ACKed")
    sm = series_map(col, "resumed")
    loss = sm.get((0, "loss"), {})
    check(loss.get("count") == 10002 and loss.get("generations") == 2,
          f"every point kept: 10002 points in 2 timelines ({loss.get('count')}, {loss.get('generations')})")
    pts = points(col, "resumed", "loss")
    ok = pts is not None and [p[0] for p in pts] == list(range(9001))
    ok = ok and all(p[2] == bits(float(p[0])) for p in pts[:4000])
    ok = ok and all(p[2] == bits(-float(p[0])) for p in pts[4000:])
    check(ok, "points: steps 0..9000 once each, 4000.. from the newest timeline")
    allp = points(col, "resumed", "loss", all_timelines=True)
    check(allp is not None and len(allp) == 10002, "points with all_timelines: all 10002")
    ev = [e for e in q(col, {"op": "events", "run": "resumed"})[0]["events"] if e["kind"] == "resume"]
    check(len(ev) == 1 and ev[0]["step"] == 4000 and "5000" in ev[0]["text"] and "4000" in ev[0]["text"],
          f"one resume event per stream and step, naming the steps ({ev})")
    b.send(BYE, b"")
    b.sync()
    run = [x for x in q(col, {"op": "runs"})[0]["runs"] if x["name"] == "resumed"][0]
    check(run["status"] == "finished" and run["resumes"] == 1,
          "the resumed job's BYE finishes the run (the killed stream is superseded)")
    b.close()


# ---- processes ----------------------------------------------------------------

def store_digest(path):
    h = hashlib.sha256()
    for suffix in ("", "-wal"):
        if os.path.exists(path + suffix):
            with open(path + suffix, "rb") as f:
                h.update(f.read())
    return h.hexdigest()


def test_second_collector(col):
    time.sleep(0.3)
    before = store_digest(col.store)
    runs_before = q(col, {"op": "runs"})[0]["runs"]
    second = make_collector(store=col.store)
    p = subprocess.run(second.args(), capture_output=True, timeout=30)
    err = p.stderr.decode(errors="replace")
    check(p.returncode == 1, f"a second collector on the same store exits 1 (got {p.returncode})")
    check(col.store in err and len(err.strip().splitlines()) <= 3,
          f"... with a clear message naming the store: {err.strip()}")
    check(store_digest(col.store) == before, "... and the store file is unchanged (sha256)")
    check(q(col, {"op": "runs"})[0]["runs"] == runs_before, "... and so are its rows")


def test_cli_errors(col):
    p = subprocess.run([BIN, "collect", "--bogus"], capture_output=True, timeout=10)
    check(p.returncode == 2 and b"usage" in p.stderr, "unknown flag: usage on stderr, exit 2")
    p = subprocess.run([BIN, "collect", "--store"], capture_output=True, timeout=10)
    check(p.returncode == 2 and b"usage" in p.stderr, "missing value: usage on stderr, exit 2")
    p = subprocess.run([BIN, "collect", "--sync", "sometimes"], capture_output=True, timeout=10)
    check(p.returncode == 2, "bad --sync value: exit 2")
    bogus = make_collector()
    with open(bogus.store, "wb") as f:
        f.write(b"this is not a trainscope store, nor SQLite\n" * 200)
    digest = store_digest(bogus.store)
    p = subprocess.run(bogus.args(), capture_output=True, timeout=30)
    err = p.stderr.decode(errors="replace")
    check(p.returncode == 1 and bogus.store in err and store_digest(bogus.store) == digest,
          f"a file that is not a store: exit 1, the store's message, file untouched: {err.strip()}")
    other = make_collector()
    other.ingest = col.ingest
    p = subprocess.run(other.args(), capture_output=True, timeout=30)
    err = p.stderr.decode(errors="replace")
    check(p.returncode == 1 and col.ingest in err, f"ingest port in use: exit 1 naming it: {err.strip()}")


def test_sigterm():
    col = make_collector(extra=["--commit-ms", "10000", "--quiet"]).start()
    p = Pub(col, "term")
    p.define([(0, "loss")])
    p.series_batch(0, range(1000))
    time.sleep(0.5)
    check(p.acked == 0 and not p.poll(100), "with --commit-ms 10000 nothing is ACKed yet")
    t = time.time()
    rc = col.stop(signal.SIGTERM)
    check(rc == 0 and time.time() - t < 5, f"SIGTERM: exit 0 promptly (rc {rc}, {time.time() - t:.2f} s)")
    p.poll(500)
    check(p.acked == 3, f"the final commit ACKs what it made durable (acked {p.acked})")
    col.start()
    intact(col, "term", p, "after SIGTERM and restart")
    check(col.stop(signal.SIGINT) == 0, "SIGINT: exit 0")
    p.close()


def test_time_unit():
    col = make_collector(extra=["--quiet", "--time-unit", "ns"]).start()
    r, _ = q(col, {"op": "info"})
    check(r.get("time_unit_ns") == 1, "--time-unit ns: a new store keeps nanoseconds")
    p = Pub(col, "ns")
    p.define([(0, "loss")])
    p.batch([(0, s, T0 + s * 1_000_000 + 123_457, bits(s + 0.25)) for s in range(10)])
    check(p.sync(), "ns run ACKed")
    intact(col, "ns", p, "--time-unit ns")
    check(col.stop() == 0, "ns collector exits 0")
    p.close()


def test_kill9():
    # Commits every second, and the last batches before the kill go out in a
    # burst: applied but uncommitted messages are lost by the collector and
    # must come back from the publisher's kept messages.
    col = make_collector(extra=["--quiet", "--commit-ms", "1000"]).start()
    p = Pub(col, "crash")
    p.define([(0, "loss"), (1, "acc")])
    total, unacked_at_kill = 300, None
    for i in range(total):
        steps = range(100 * i, 100 * i + 100)
        p.batch([(m, s, T0 + s * 1_000_000, bits(s / 7 + m)) for s in steps for m in (0, 1)])
        if not 140 <= i <= 150:
            p.drain(100, timeout=60)
        if i == 150:
            col.proc.kill()
            col.proc.wait()
            col.proc = None
            col.log.close()
            p.poll(100)   # ACKs sent before the kill
            unacked_at_kill = p.seq - p.acked
            col.start()   # same store, same endpoints; the DEALER reconnects
    check(unacked_at_kill and unacked_at_kill > 1,
          f"kill -9 hit with {unacked_at_kill} messages sent but not durable")
    check(p.sync(timeout=60), "after kill -9 and restart everything is ACKed")
    for metric in ("loss", "acc"):
        pts = points(col, "crash", metric)
        steps = [x[0] for x in pts] if pts else []
        check(len(steps) == 30000 and len(set(steps)) == 30000,
              f"kill -9: {metric}: {len(steps)} rows, zero lost, zero duplicated")
    intact(col, "crash", p, "kill -9 and resend")
    allp = points(col, "crash", "loss", all_timelines=True)
    check(allp is not None and len(allp) == 30000, "no duplicate hides in another timeline")
    col.stop()
    p.close()


def measure_rate(nbatch=160, per=65536, metrics=16):
    """Points per second into the durable store from one raw publisher
    sending 65536-sample batches: from the first send to the ACK of the last
    batch (an ACK means committed). Batches are patched copies of one
    template (steps of batch b are b * 2^16 + j), so Python is not the
    bottleneck."""
    col = make_collector(extra=["--quiet"]).start()
    p = Pub(col, "rate")
    p.define([(m, f"m{m}") for m in range(metrics)])
    p.sync()
    steps = per // metrics
    template = bytearray(batch_payload([(m, j, T0 + j * 1_000_000, bits(1.0 / (j + 1) + m))
                                        for j in range(steps) for m in range(metrics)]))
    t0 = time.time()
    for b in range(nbatch):
        pay = bytearray(template)
        pay[8 + 4 + 2::28] = bytes([b & 255]) * per     # step byte 2
        pay[8 + 4 + 3::28] = bytes([b >> 8]) * per      # step byte 3
        p.send(BATCH, bytes(pay))
        p.drain(8, timeout=60)
    ok = p.sync(timeout=120)
    dt = time.time() - t0
    n = nbatch * per
    print(f"ingest rate: {n} points in {dt:.2f} s = {n / dt / 1e6:.2f} M points/s durable "
          f"(one publisher, batches of {per}, {metrics} series)", flush=True)
    got = points(col, "rate", f"m{metrics - 1}")
    check(ok and got is not None and len(got) == nbatch * steps, "rate run: every point stored")
    col.stop()
    p.close()


def main():
    random.seed(1)
    col = make_collector(extra=["--status-interval", "1"]).start()
    try:
        test_acks(col)
        test_hostile(col)
        test_names(col)
        test_api(col)
        test_bye_status(col)
        test_resume(col)
        test_second_collector(col)
        test_cli_errors(col)
        check("runs" in col.output() and "pts/s" in col.output(), "status line printed")
        rc = col.stop()
        check(rc == 0, f"collector exits 0 on SIGTERM (rc {rc})")
    finally:
        if col.proc:
            col.proc.kill()
    test_sigterm()
    test_time_unit()
    test_kill9()
    measure_rate()
    if not FAILURES:
        for d in TEMP_DIRS:
            shutil.rmtree(d, ignore_errors=True)
    finish()


if __name__ == "__main__":
    main()
