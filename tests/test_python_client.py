"""test_python_client.py - the Python client (python/trainscope) against a
real collector process on a real SQLite store, over real ipc:// sockets,
through the libtrainscope.so the build produced.

usage: /usr/bin/python3 test_python_client.py TRAINSCOPE LIBTRAINSCOPE_SO [case ...]

Checks: values (NaN payloads, -0.0, infinities, numpy and torch scalars)
stored bit for bit; auto-incremented steps; config and events stored; run
status finished / failed (with-block, interpreter exit, uncaught exception);
a collector started after the trainer loses nothing; drops counted and
stored; every kind of bad argument raises a clear TypeError/ValueError and
logs nothing while the run keeps working; the C entry points the binding
uses; threads; fork; how the library is found.
"""
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import warnings

from tslib import Collector, check, cli, export_points, finish

TRAINSCOPE, LIB = sys.argv[1], os.path.abspath(sys.argv[2])
HERE = os.path.dirname(os.path.abspath(__file__))
PYDIR = os.path.join(os.path.dirname(HERE), "python")
os.environ["TRAINSCOPE_LIB"] = LIB
sys.path.insert(0, PYDIR)

import trainscope  # noqa: E402  (after the path and library are set)
from trainscope import _lib  # noqa: E402


def bits(v):
    return struct.unpack("<Q", struct.pack("<d", v))[0]


def from_bits(b):
    return struct.unpack("<d", struct.pack("<Q", b))[0]


def collector():
    return Collector(TRAINSCOPE, transport="ipc", extra=["--quiet"]).start()


def run_info(col, name):
    for r in col.query({"op": "runs"})[0]["runs"]:
        full = f"{r['project']}/{r['name']}" if r.get("project") else r["name"]
        if full == name:
            return r
    return None


def events(col, name):
    return col.query({"op": "events", "run": name})[0].get("events", [])


def child(code, env_extra=None, cwd=None):
    """Run a Python snippet in /usr/bin/python3 with the client importable."""
    env = dict(os.environ, PYTHONPATH=PYDIR, **(env_extra or {}))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env,
                       timeout=120, cwd=cwd)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def bit_exact():
    """Every kind of value, stored bit for bit; steps; config; events."""
    import numpy as np
    import torch
    col = collector()
    special = [0x7FF8000000000ABC, 0x7FF0000000000123, 0xFFF8000000000000,
               0x8000000000000000, 0x0000000000000001, 0x7FEFFFFFFFFFFFFF,
               0x7FF0000000000000, 0xFFF0000000000000]
    expected = {}
    run = trainscope.init(col.ingest, "exact", project="pyc",
                          config={"lr": np.float32(0.5), "layers": [64, 64], "opt": {"name": "adam"},
                                  "nan": float("nan"), "ok": True},
                          rank=0, world_size=1)
    # raw bit patterns, one metric each so steps line up
    for s, b in enumerate(special):
        run.log({"raw": from_bits(b)}, step=s)
        expected[(0, "raw", s)] = b
    values = {
        "py/int": 7, "py/bigint": 2**53 + 1, "py/neg": -3, "py/float": 0.1, "py/bool": True,
        "np/f32": np.float32(0.1), "np/f64": np.float64(-2.5e-300), "np/i64": np.int64(-12),
        "np/f16": np.float16(65504), "np/arr1": np.array(3.25),
        "torch/f32": torch.tensor(0.1), "torch/f64": torch.tensor(1e-310, dtype=torch.float64),
        "torch/int": torch.tensor(42), "torch/grad": torch.tensor(2.5, requires_grad=True) * 2,
        "torch/nan": torch.tensor(float("nan")), "torch/one": torch.ones(1),
    }
    for s in range(3):
        run.log(values, step=100 + s)
        for k, v in values.items():
            f = float(v.item()) if hasattr(v, "item") else float(v)
            expected[(0, k, 100 + s)] = bits(f)
    # steps: auto-increment from the last step used
    run.log({"auto": 1.0})          # 103
    run.log({"auto": 2.0})          # 104
    run.log({"auto": 3.0}, step=np.int64(200))
    run.log({"auto": 4.0})          # 201
    run.log({"auto": 5.0}, step=300.0)
    check(run.step == 301, f"next auto step is 301 ({run.step})")
    for s, v in ((103, 1.0), (104, 2.0), (200, 3.0), (201, 4.0), (300, 5.0)):
        expected[(0, "auto", s)] = bits(v)
    check(run.event("checkpoint", "saved ckpt-300.pt") is True, "event accepted")
    run.event("note", step=5)
    run.event("eval", "val loss 1.23\nline two", step=np.int64(7))
    # the extremes of the step range (the second starts a new timeline)
    run.log({"big/step": 1.5}, step=2**63 - 1)
    run.log({"big/step": -1.5}, step=-2**63)
    expected[(0, "big/step", 2**63 - 1)] = bits(1.5)
    expected[(0, "big/step", -2**63)] = bits(-1.5)
    run.log({"ünïcode/名前": 9.0}, step=0)
    expected[(0, "ünïcode/名前", 0)] = bits(9.0)
    check(run.flush(timeout=20) is True, "flush returns True once everything is durable")
    check(run.close() is True, "close returns True: everything acknowledged")
    check(run.close() is True and run.closed, "closing twice is harmless")

    got, rows = export_points(TRAINSCOPE, col.store, "pyc/exact", "--all-timelines")
    got = {k[:3]: v for k, v in got.items()}
    check(rows == len(expected), f"{rows} rows stored for {len(expected)} logged")
    bad = [(k, hex(got.get(k, 0)), hex(v)) for k, v in expected.items() if got.get(k) != v]
    check(not bad, f"every value bit-identical (mismatches: {bad[:4]})")
    info = run_info(col, "pyc/exact")
    check(info and info["status"] == "finished", f"run status finished ({info and info['status']})")
    rc, out, _ = cli(TRAINSCOPE, "show", col.store, "pyc/exact")
    check('"lr":0.5' in out and '"layers":[64,64]' in out and '"opt":{"name":"adam"}' in out
          and '"nan":"nan"' in out and '"ok":true' in out,
          "config stored as JSON (numpy scalar by value, NaN as a string)")
    ev = sorted((e["step"], e["kind"], e["text"]) for e in events(col, "pyc/exact")
                if e["kind"] != "resume")
    check(ev == [(5, "note", ""), (7, "eval", "val loss 1.23\nline two"),
                 (300, "checkpoint", "saved ckpt-300.pt")],
          f"events stored with their steps (default: the last step logged): {ev}")
    col.stop()


def late_collector():
    """The trainer starts first and logs 30000 points with nobody listening."""
    col = Collector(TRAINSCOPE, transport="ipc", extra=["--quiet"])
    run = trainscope.init(col.ingest, "late", config={"x": 1})
    truth = {}
    for s in range(10000):
        v = {"loss": 1.0 / (s + 1), "lr": s * 1e-4, "n": s}
        run.log(v, step=s)
        for k, x in v.items():
            truth[(0, k, s)] = bits(float(x))
    check(run.flush(timeout=0.3) is False, "flush without a collector times out (returns False)")
    check(run.stats()["connected"] == 0, "not connected before the collector starts")
    col.start()
    check(run.close(timeout=30) is True, "close after the collector started: all acknowledged")
    got, rows = export_points(TRAINSCOPE, col.store, "late")
    check(rows == 30000 and got == truth, f"late collector: {rows} of 30000 rows, bit-identical")
    info = run_info(col, "late")
    check(info and info["dropped"] == 0 and info["status"] == "finished",
          f"nothing dropped, status finished ({info})")
    col.stop()


def drops_counted():
    """A tiny buffer and no collector: drops are counted, warned once and stored."""
    col = Collector(TRAINSCOPE, transport="ipc", extra=["--quiet"])
    run = trainscope.init(col.ingest, "drops", buffer_samples=256)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        for s in range(2000):
            run.log({"x": float(s)}, step=s)
    st = run.stats()
    check(st["dropped"] > 0 and st["logged"] + st["dropped"] == 2000,
          f"drops counted: logged {st['logged']} + dropped {st['dropped']} = 2000")
    msgs = [str(x.message) for x in w if issubclass(x.category, RuntimeWarning)]
    check(len(msgs) == 1 and "dropped" in msgs[0], f"one RuntimeWarning about drops ({msgs[:2]})")
    col.start()
    check(run.close(timeout=30) is True, "close: everything that was buffered is acknowledged")
    got, rows = export_points(TRAINSCOPE, col.store, "drops")
    info = run_info(col, "drops")
    check(rows == st["logged"] and info["dropped"] == st["dropped"],
          f"store has the {st['logged']} buffered points and records {info['dropped']} dropped")
    col.stop()


def expect_error(what, exc_type, needle, fn):
    try:
        fn()
    except exc_type as e:
        msg = str(e)
        return check(all(n in msg for n in needle), f"{what}: {exc_type.__name__}: {msg}")
    except Exception as e:  # noqa: BLE001
        return check(False, f"{what}: expected {exc_type.__name__}, got {type(e).__name__}: {e}")
    return check(False, f"{what}: expected {exc_type.__name__}, nothing raised")


def bad_arguments():
    """Each bad argument: a clear exception, nothing of that call logged, the run goes on."""
    import numpy as np
    import torch
    col = collector()
    run = trainscope.init(col.ingest, "bad")
    good = {}

    def ok(step):
        run.log({"good": float(step), "other": 1.0}, step=step)
        good[step] = float(step)

    ok(0)
    cases = [
        ("string value", TypeError, ["'loss'", "str"], lambda: run.log({"good": 1.0, "loss": "0.5"}, step=1)),
        ("None value", TypeError, ["'loss'", "None"], lambda: run.log({"loss": None}, step=1)),
        ("list value", TypeError, ["'loss'", "list"], lambda: run.log({"loss": [1.0]}, step=1)),
        ("complex value", TypeError, ["'z'", "complex"], lambda: run.log({"z": 1 + 2j}, step=1)),
        ("huge int", ValueError, ["'n'", "too large"], lambda: run.log({"n": 10**400}, step=1)),
        ("numpy array", ValueError, ["'w'", "3 elements"], lambda: run.log({"w": np.zeros(3)}, step=1)),
        ("torch tensor", ValueError, ["'w'", "6 elements"], lambda: run.log({"w": torch.zeros(2, 3)}, step=1)),
        ("empty tensor", ValueError, ["'w'", "0 elements"], lambda: run.log({"w": torch.zeros(0)}, step=1)),
        ("NaN step", ValueError, ["step", "nan"], lambda: run.log({"good": 1.0}, step=float("nan"))),
        ("inf step", ValueError, ["step", "inf"], lambda: run.log({"good": 1.0}, step=float("inf"))),
        ("fractional step", ValueError, ["step", "2.5"], lambda: run.log({"good": 1.0}, step=2.5)),
        ("string step", TypeError, ["step", "str"], lambda: run.log({"good": 1.0}, step="3")),
        ("bool step", TypeError, ["step", "bool"], lambda: run.log({"good": 1.0}, step=True)),
        ("step past int64", ValueError, ["step", "64-bit"], lambda: run.log({"good": 1.0}, step=2**63)),
        ("step below int64", ValueError, ["step", "64-bit"], lambda: run.log({"good": 1.0}, step=-2**63 - 1)),
        ("non-UTF-8 name", ValueError, ["metric name", "UTF-8"], lambda: run.log({"bad\udcff": 1.0}, step=1)),
        ("empty name", ValueError, ["metric name", "empty"], lambda: run.log({"": 1.0}, step=1)),
        ("bytes name", TypeError, ["metric name", "bytes"], lambda: run.log({b"loss": 1.0}, step=1)),
        ("int name", TypeError, ["metric name", "int"], lambda: run.log({3: 1.0}, step=1)),
        ("NUL in name", ValueError, ["metric name", "NUL"], lambda: run.log({"a\0b": 1.0}, step=1)),
        ("long name", ValueError, ["metric name", "600 bytes", "512"], lambda: run.log({"x" * 600: 1.0}, step=1)),
        ("list instead of dict", TypeError, ["dict", "list"], lambda: run.log([("good", 1.0)], step=1)),
        ("empty event kind", ValueError, ["event kind", "empty"], lambda: run.event("", "x")),
        ("long event kind", ValueError, ["event kind", "64"], lambda: run.event("k" * 65, "x")),
        ("non-UTF-8 event text", ValueError, ["event text", "UTF-8"], lambda: run.event("note", "\ud800")),
        ("event text not str", TypeError, ["event text", "int"], lambda: run.event("note", 5)),
        ("bad flush timeout", ValueError, ["timeout"], lambda: run.flush(timeout=-1)),
    ]
    for what, exc, needle, fn in cases:
        expect_error(what, exc, needle, fn)
        ok(len(good))                # the run keeps working after each
    # a dict whose keys were seen before but whose value is bad: nothing logged
    expect_error("bad value in a known shape", TypeError, ["'other'", "str"],
                 lambda: run.log({"good": 99.0, "other": "x"}, step=999))
    ok(len(good))
    # init's arguments
    init_cases = [
        ("rank >= world_size", ValueError, ["rank", "0..1", "world_size 2"], lambda: trainscope.init(col.ingest, "r", rank=2, world_size=2)),
        ("world_size 0", ValueError, ["world_size"], lambda: trainscope.init(col.ingest, "r", world_size=0)),
        ("rank a float", TypeError, ["rank", "float"], lambda: trainscope.init(col.ingest, "r", rank=0.0)),
        ("empty run name", ValueError, ["run name", "empty"], lambda: trainscope.init(col.ingest, "")),
        ("non-UTF-8 run name", ValueError, ["run name", "UTF-8"], lambda: trainscope.init(col.ingest, "r\udcff")),
        ("project not str", TypeError, ["project", "int"], lambda: trainscope.init(col.ingest, "r", project=5)),
        ("config a list", TypeError, ["config", "list"], lambda: trainscope.init(col.ingest, "r", config=[1])),
        ("unknown transport", ValueError, ["endpoint", "bogus://x"], lambda: trainscope.init("bogus://x", "r")),
        ("no name with world_size 2", ValueError, ["name", "rank"], lambda: trainscope.init(col.ingest, world_size=2)),
        ("tiny buffer", ValueError, ["buffer_samples"], lambda: trainscope.init(col.ingest, "r", buffer_samples=1)),
    ]
    for what, exc, needle, fn in init_cases:
        expect_error("init: " + what, exc, needle, fn)
    ok(len(good))
    check(run.close() is True, "close after all the bad calls: everything acknowledged")
    expect_error("log after close", trainscope.TrainscopeError, ["closed"], lambda: run.log({"good": 1.0}))
    expect_error("event after close", trainscope.TrainscopeError, ["closed"], lambda: run.event("note"))
    got, rows = export_points(TRAINSCOPE, col.store, "bad")
    want = {(0, "good", s): bits(v) for s, v in good.items()}
    want.update({(0, "other", s): bits(1.0) for s in good})
    check(got == want and rows == len(want),
          f"only the good calls were stored ({rows} rows, want {len(want)}; extra "
          f"{sorted(set(got) - set(want))[:4]})")
    names = {r["name"] for r in col.query({"op": "runs"})[0]["runs"]}
    check(names == {"bad"}, f"no run was created by a refused init ({names})")
    col.stop()


def c_entry_points():
    """ts_log_many and ts_log_packed, called directly through ctypes."""
    import array
    import ctypes
    col = collector()
    run = trainscope.init(col.ingest, "centry")
    a, b = run.metric_id("a"), run.metric_id("b")
    c = _lib.lib
    ids = (ctypes.c_int * 2)(a, b)
    vals = (ctypes.c_double * 2)(1.5, -0.0)
    check(c.ts_log_many(run._h, 1, 2, ids, vals) == 0, "ts_log_many logs two samples")
    before = run.stats()["logged"]
    bad_ids = (ctypes.c_int * 2)(a, 7)
    check(c.ts_log_many(run._h, 2, 2, bad_ids, vals) == _lib.TS_EINVAL, "ts_log_many: unknown id -> TS_EINVAL")
    neg_ids = (ctypes.c_int * 1)(-1)
    check(c.ts_log_many(run._h, 2, 1, neg_ids, vals) == _lib.TS_EINVAL, "ts_log_many: negative id -> TS_EINVAL")
    check(c.ts_log_many(run._h, 2, 0, None, None) == 0, "ts_log_many: n = 0 logs nothing, returns 0")
    check(c.ts_log_many(run._h, 2, 1, None, vals) == _lib.TS_EINVAL, "ts_log_many: NULL ids -> TS_EINVAL")
    check(c.ts_log_many(None, 2, 1, ids, vals) == _lib.TS_EINVAL, "ts_log_many: NULL run -> TS_EINVAL")
    check(run.stats()["logged"] == before, "nothing logged by the refused calls")
    packed = c.ts_log_packed
    packed.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
    # unaligned on purpose: one byte in
    ids_b = b"\0" + array.array("i", [2, b, a]).tobytes()
    rec_b = b"\0" + struct.pack("=q2d", 3, 2.5, 3.5)
    buf_ids = ctypes.create_string_buffer(ids_b, len(ids_b))
    buf_rec = ctypes.create_string_buffer(rec_b, len(rec_b))
    addr = ctypes.addressof
    check(packed(run._h, ctypes.c_char_p(addr(buf_ids) + 1), ctypes.c_char_p(addr(buf_rec) + 1)) == 0,
          "ts_log_packed reads unaligned buffers")
    check(packed(run._h, array.array("i", [-1]).tobytes(), struct.pack("=q", 4)) == _lib.TS_EINVAL,
          "ts_log_packed: n < 0 -> TS_EINVAL")
    check(packed(run._h, array.array("i", [1, 99]).tobytes(), struct.pack("=qd", 4, 1.0)) == _lib.TS_EINVAL,
          "ts_log_packed: unknown id -> TS_EINVAL")
    check(packed(None, ids_b[1:], rec_b[1:]) == _lib.TS_EINVAL, "ts_log_packed: NULL run -> TS_EINVAL")
    check(packed(run._h, array.array("i", [0]).tobytes(), struct.pack("=q", 5)) == 0,
          "ts_log_packed: n = 0 returns 0")
    check(run.close() is True, "closed")
    got, rows = export_points(TRAINSCOPE, col.store, "centry")
    want = {(0, "a", 1): bits(1.5), (0, "b", 1): bits(-0.0), (0, "b", 3): bits(2.5), (0, "a", 3): bits(3.5)}
    check(got == want, f"C entry points stored exactly what they were given ({rows} rows)")
    col.stop()


def threads_and_fork():
    """Four Python threads on one run; a forked child cannot use the parent's run."""
    col = collector()
    run = trainscope.init(col.ingest, "threads")

    def worker(t):
        for s in range(5000):
            run.log({f"t{t}/x": s * 0.5, "shared": float(t)}, step=s)

    ths = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            run.log({"child": 1.0}, step=0)
            msg = "no error"
        except trainscope.TrainscopeError as e:
            msg = str(e)
        os.write(w, msg.encode())
        os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    msg = os.read(r, 4096).decode()
    os.close(r)
    check("forked" in msg and "trainscope.init()" in msg, f"forked child gets a clear error: {msg}")
    run.log({"after_fork": 1.0}, step=0)
    check(run.close() is True, "parent's run still works and closes after the fork")
    got, rows = export_points(TRAINSCOPE, col.store, "threads")
    per = {t: sum(1 for k in got if k[1] == f"t{t}/x") for t in range(4)}
    check(all(n == 5000 for n in per.values()) and (0, "after_fork", 0) in got
          and not any(k[1] == "child" for k in got),
          f"every thread's 5000 points stored, nothing from the child ({per})")
    col.stop()


def lifetimes():
    """with-blocks and interpreter exit set the run's final status."""
    col = collector()
    with trainscope.init(col.ingest, "with-ok") as run:
        run.log({"x": 1.0})
    check(run.closed, "with-block closes the run")
    try:
        with trainscope.init(col.ingest, "with-raise") as run:
            run.log({"x": 1.0})
            raise KeyError("boom")
    except KeyError:
        pass
    env = {"TRAINSCOPE_LIB": LIB}
    rc, out, err = child(f"""
import trainscope
run = trainscope.init({col.ingest!r}, "exit-ok", config={{"a": 1}})
for s in range(1000):
    run.log({{"x": s * 0.25}})
import sys
print("imported:", sorted(m for m in ("numpy", "torch") if m in sys.modules))
""", env)
    check(rc == 0, f"child that never closes exits 0 ({err.strip()[-200:]})")
    check("imported: []" in out, f"trainscope imports neither numpy nor torch ({out.strip()})")
    rc, _, err = child(f"""
import trainscope
run = trainscope.init({col.ingest!r}, "exit-raise")
run.log({{"x": 1.0}}, step=0)
raise SystemError("the trainer crashed")
""", env)
    check(rc == 1 and "the trainer crashed" in err, "child with an uncaught exception exits 1 with its traceback")
    rc, _, err = child(f"""
import trainscope
run = trainscope.init("ipc://{col.tmp}/nobody", "exit-nobody", close_timeout=0.5)
run.log({{"x": 1.0}}, step=0)
""", env)
    check(rc == 0 and "did not acknowledge" in err and "exit-nobody" in err,
          f"exit without a collector: gives up after close_timeout and says so ({err.strip()[-160:]})")
    want = {"with-ok": "finished", "with-raise": "failed", "exit-ok": "finished", "exit-raise": "failed"}
    for name, status in want.items():
        info = run_info(col, name)
        check(info is not None and info["status"] == status,
              f"{name}: status {info and info['status']} (want {status})")
    _, rows = export_points(TRAINSCOPE, col.store, "exit-ok")
    check(rows == 1000, f"run closed at exit kept all 1000 points ({rows})")
    _, rows = export_points(TRAINSCOPE, col.store, "exit-raise")
    check(rows == 1, f"run of a crashed trainer kept its point ({rows})")
    col.stop()


def finding_the_library():
    """TRAINSCOPE_LIB, a build tree of the checkout, next to the package, and the error."""
    tmp = tempfile.mkdtemp(prefix="ts-pyfind-")
    plain = {k: v for k, v in os.environ.items() if k != "TRAINSCOPE_LIB"}
    code = "import trainscope; print(trainscope.library_path)"

    def run_in(pkg_parent, env):
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60,
                           env=dict(env, PYTHONPATH=pkg_parent), cwd=tmp)
        return p.returncode, p.stdout.decode().strip(), p.stderr.decode(errors="replace")

    # a fake checkout: proto/trainscope.h marks it; build/ holds a broken
    # library (skipped), build-x/ the real one
    repo = os.path.join(tmp, "repo")
    os.makedirs(os.path.join(repo, "proto"))
    open(os.path.join(repo, "proto", "trainscope.h"), "w").close()
    shutil.copytree(os.path.join(PYDIR, "trainscope"), os.path.join(repo, "python", "trainscope"),
                    ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    os.makedirs(os.path.join(repo, "build", "proto"))
    with open(os.path.join(repo, "build", "proto", "libtrainscope.so"), "w") as f:
        f.write("not a library\n")
    os.makedirs(os.path.join(repo, "build-x", "proto"))
    shutil.copy(LIB, os.path.join(repo, "build-x", "proto", "libtrainscope.so"))
    rc, out, err = run_in(os.path.join(repo, "python"), plain)
    check(rc == 0 and out == os.path.join(repo, "build-x", "proto", "libtrainscope.so"),
          f"found in the checkout's build tree, past a broken one ({out or err.strip()[-200:]})")

    # a sanitizer build is skipped by a process without the ASan runtime
    # (loading it would abort the interpreter): a stand-in that names libasan
    import ctypes.util
    if "libasan" not in os.environ.get("LD_PRELOAD", "") and not ctypes.util.find_library("trainscope"):
        bare = os.path.join(tmp, "bare")
        os.makedirs(os.path.join(bare, "proto"))
        open(os.path.join(bare, "proto", "trainscope.h"), "w").close()
        shutil.copytree(os.path.join(PYDIR, "trainscope"), os.path.join(bare, "python", "trainscope"),
                        ignore=shutil.ignore_patterns("__pycache__", "*.so"))
        os.makedirs(os.path.join(bare, "build-asan", "proto"))
        with open(os.path.join(bare, "build-asan", "proto", "libtrainscope.so"), "wb") as f:
            f.write(b"\x7fELF stand-in NEEDED libasan.so.8\n")
        rc, out, err = run_in(os.path.join(bare, "python"), plain)
        check(rc != 0 and "skipped: built with AddressSanitizer" in err and "meson setup build" in err,
              f"an ASan build tree is skipped, and the error says so ({err.strip().splitlines()[-1][:160]})")
        stand_in = os.path.join(bare, "build-asan", "proto", "libtrainscope.so")
        rc, out, err = run_in(os.path.join(bare, "python"), dict(plain, TRAINSCOPE_LIB=stand_in))
        check(rc != 0 and "AddressSanitizer" in err and "LD_PRELOAD" in err,
              f"TRAINSCOPE_LIB naming an ASan build: an ImportError saying how to load it "
              f"({err.strip().splitlines()[-1][:160]})")

    # TRAINSCOPE_LIB wins; a wrong one is an error that names it
    rc, out, err = run_in(os.path.join(repo, "python"), dict(plain, TRAINSCOPE_LIB=LIB))
    check(rc == 0 and out == LIB, f"TRAINSCOPE_LIB is used first ({out})")
    rc, out, err = run_in(os.path.join(repo, "python"), dict(plain, TRAINSCOPE_LIB="/nonexistent/lib.so"))
    check(rc != 0 and "ImportError" in err and "TRAINSCOPE_LIB='/nonexistent/lib.so'" in err,
          f"a wrong TRAINSCOPE_LIB is an ImportError naming it ({err.strip().splitlines()[-1]})")

    # outside any checkout: next to the package, else a clear error
    alone = os.path.join(tmp, "site")
    shutil.copytree(os.path.join(PYDIR, "trainscope"), os.path.join(alone, "trainscope"),
                    ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    rc, out, err = run_in(alone, plain)
    if ctypes.util.find_library("trainscope"):
        check(rc == 0, f"outside a checkout: the system's library is used ({out or err})")
    else:
        last = err.strip().splitlines()[-1] if err.strip() else ""
        check(rc != 0 and "meson setup build && ninja -C build" in last and "TRAINSCOPE_LIB" in last,
              f"no library anywhere: ImportError says what to build ({last})")
    shutil.copy(LIB, os.path.join(alone, "trainscope", "libtrainscope.so"))
    rc, out, err = run_in(alone, plain)
    check(rc == 0 and out == os.path.join(alone, "trainscope", "libtrainscope.so"),
          f"found next to the package ({out or err.strip()[-200:]})")
    shutil.rmtree(tmp, ignore_errors=True)


def pip_install():
    """`pip install ./python` (offline, with the system's setuptools) into a
    target directory; the installed package then logs to a collector."""
    tmp = tempfile.mkdtemp(prefix="ts-pip-")
    src = os.path.join(tmp, "src")   # a copy: setuptools writes build/ next to the sources
    shutil.copytree(PYDIR, src, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info", "*.so"))
    site = os.path.join(tmp, "site")
    p = subprocess.run([sys.executable, "-m", "pip", "install", "--target", site, "--no-build-isolation",
                        "--no-index", "--no-deps", "--quiet", src], capture_output=True, timeout=300, cwd=tmp)
    check(p.returncode == 0 and os.path.isfile(os.path.join(site, "trainscope", "__init__.py")),
          f"pip install ./python succeeds ({p.stderr.decode(errors='replace').strip()[-300:]})")
    col = collector()
    p = subprocess.run([sys.executable, "-c", f"""
import trainscope
print(trainscope.__file__)
with trainscope.init({col.ingest!r}, "installed") as run:
    run.log({{"x": 0.5}}, step=1)
"""], capture_output=True, timeout=120, cwd=tmp, env=dict(os.environ, PYTHONPATH=site, TRAINSCOPE_LIB=LIB))
    out = p.stdout.decode()
    check(p.returncode == 0 and out.startswith(site),
          f"the installed package is the one imported ({out.strip() or p.stderr.decode(errors='replace')[-200:]})")
    got, rows = export_points(TRAINSCOPE, col.store, "installed")
    check(got == {(0, "x", 1): bits(0.5)}, f"the installed package logged to the collector ({rows} rows)")
    col.stop()
    shutil.rmtree(tmp, ignore_errors=True)


CASES = {f.__name__: f for f in (bit_exact, late_collector, drops_counted, bad_arguments,
                                 c_entry_points, threads_and_fork, lifetimes, finding_the_library,
                                 pip_install)}

if __name__ == "__main__":
    for name in sys.argv[3:] or CASES:
        print(f"== {name}", flush=True)
        CASES[name]()
    finish()
