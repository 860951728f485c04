"""test_report.py - detectors online in a real collector, findings stored
with the run, `trainscope report` (text and JSON checked against the fields
docs/report-schema.md documents), `--against`, stragglers, stalls, the
--on-finding command, and bad input.

usage: /usr/bin/python3 test_report.py TRAINSCOPE LIBTRAINSCOPE_SO

Publishers are the Python client (python/trainscope) through the
libtrainscope.so the build produced, over real ipc:// sockets.
"""
import json
import math
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np

from tslib import Collector, check, cli, finish

TRAINSCOPE, LIB = sys.argv[1], os.path.abspath(sys.argv[2])
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
os.environ["TRAINSCOPE_LIB"] = LIB
sys.path.insert(0, os.path.join(ROOT, "python"))

import trainscope  # noqa: E402

STEPS = 1000
SPIKES = (300, 700)
NAN_STEP = 850
EXPLODE_STEP = 500


def base_loss(seed):
    rng = np.random.default_rng(seed)
    t = np.arange(STEPS)
    return 2.0 + 3.0 * np.exp(-t / 250.0) + 0.03 * rng.standard_normal(STEPS)


def publish(endpoint, name, loss, grad=None, extra=None, world_size=1, rank=0):
    run = trainscope.init(endpoint=endpoint, name=name, world_size=world_size, rank=rank)
    for step in range(len(loss)):
        m = {"train/loss": float(loss[step])}
        if grad is not None:
            m["grad_norm/layer.3"] = float(grad[step])
        if extra is not None:
            m.update({k: float(v[step]) for k, v in extra.items()})
        run.log(m, step=step)
    run.close(timeout=20)


def documented_fields(path):
    """{section: [field, ...]} from the tables of docs/report-schema.md: a
    `### section` heading followed by rows whose first cell is `field`."""
    out, section, done = {}, None, True
    with open(path) as f:
        for line in f:
            h = re.match(r"^### (\S+)", line)
            if h:
                section, done = h.group(1), False
                out[section] = []
                continue
            if section is None or done:
                continue
            if not line.startswith("|"):
                done = bool(out[section])   # the first table after the heading only
                continue
            row = re.match(r"^\| `([a-z_0-9]+)` \|", line)
            if row:
                out[section].append(row.group(1))
    return out


def same_keys(obj, fields, what):
    keys = set(obj.keys())
    return check(keys == set(fields), f"{what}: fields as documented "
                 f"(missing {sorted(set(fields) - keys)}, undocumented {sorted(keys - set(fields))})")


def main():
    c = Collector(TRAINSCOPE, transport="ipc")
    alerts = os.path.join(c.tmp, "alerts.jsonl")
    c.extra = ["--on-finding", f"cat >> {alerts}; echo >> {alerts}.count",
               "--detect", "val/*:role=loss", "--stall-s", "2", "--quiet"]
    c.start()

    # A run with two loss spikes (+2.0, over 10 robust sigma even where the
    # trend widens the window), a NaN, and a gradient norm that jumps 6x.
    loss = base_loss(1)
    spiky = loss.copy()
    for s in SPIKES:
        spiky[s] = loss[s] + 2.0
    spiky[NAN_STEP] = math.nan
    grad = 1.0 + 0.02 * np.random.default_rng(2).standard_normal(STEPS)
    grad[EXPLODE_STEP] = 6.0
    publish(c.ingest, "spiky", spiky, grad)
    # The same curve rising smoothly to 15% above it from step 600 on (less
    # than a divergence, no spike): the runs part ways at about step 625.
    calm = loss.copy()
    calm[600:] *= 1 + 0.15 * np.minimum(1.0, (np.arange(600, STEPS) - 600) / 50.0)
    publish(c.ingest, "calm", calm)
    publish(c.ingest, "base", loss)
    # Three ranks; rank 1 takes 40% longer per step.
    rng = np.random.default_rng(3)
    for rank in range(3):
        st = (140.0 if rank == 1 else 100.0) + rng.standard_normal(300)
        publish(c.ingest, "ddp", base_loss(4)[:300], extra={"perf/step_time_ms": st}, world_size=3, rank=rank)

    # A run whose trainer dies without saying goodbye.
    code = ("import os,sys,time; sys.path.insert(0, %r); import trainscope\n"
            "r = trainscope.init(endpoint=%r, name='dies')\n"
            "[r.log({'train/loss': 3.0 - i / 100}, step=i) for i in range(50)]\n"
            "time.sleep(1.5); os.kill(os.getpid(), 9)\n") % (os.path.join(ROOT, "python"), c.ingest)
    subprocess.run([sys.executable, "-c", code], env=os.environ, timeout=60)
    time.sleep(2.5)
    # The collector's watcher saw 'dies' silent for 2 s without BYE; the
    # ingest thread stores that finding with the next BATCH it applies.
    publish(c.ingest, "later", base_loss(6)[:5])
    time.sleep(0.5)

    # Stored online, with the run: exactly the injected anomalies.
    db = sqlite3.connect(f"file:{c.store}?mode=ro", uri=True)
    rows = db.execute("SELECT r.name, f.series, f.kind, f.step_first, f.source, f.detail FROM findings f "
                      "JOIN runs r ON r.id = f.run_id ORDER BY r.name, f.step_first").fetchall()
    spiky_rows = [(s, k, st) for n, s, k, st, src, _ in rows if n == "spiky"]
    check(spiky_rows == [("train/loss", "spike", 300), ("grad_norm/layer.3", "grad_explosion", EXPLODE_STEP),
                         ("train/loss", "spike", 700), ("train/loss", "nan", NAN_STEP)],
          f"the collector stored the spikes, the explosion and the NaN of 'spiky': {spiky_rows}")
    check(all(src == "online" for *_, src, _ in rows), "stored findings are marked online")
    ddp = [(s, k) for n, s, k, st, src, _ in rows if n == "ddp"]
    check(ddp == [("perf/step_time_ms", "straggler")], f"online: one straggler in 'ddp': {ddp}")
    strag = [json.loads(r[5]) for r in rows if r[0] == "ddp"]
    check(len(strag) == 1 and strag[0]["rank"] == 1, f"... and it is rank 1: {strag}")
    dies = [(s, k, st) for n, s, k, st, src, _ in rows if n == "dies"]
    check(dies == [("", "stalled", 49)], f"online: 'dies' stalled after its last step 49: {dies}")
    check(not [r for r in rows if r[0] in ("calm", "base")], "no finding stored for the clean runs")
    check(all(json.loads(r[5])["kind"] == r[2] for r in rows), "each stored detail is the finding's JSON")
    db.close()

    # The query API serves the same findings, detail parsed.
    r, _ = c.query({"op": "findings", "run": "spiky"})
    api_rows = [(f["metric"], f["kind"], f["step_first"]) for f in r.get("findings", [])]
    check(r.get("ok") and api_rows == spiky_rows, f"API findings of 'spiky' are the stored ones: {api_rows}")
    check(all(f["detail"]["kind"] == f["kind"] and f["source"] == "online" for f in r["findings"]),
          "API findings carry their detail and source")
    r, _ = c.query({"op": "findings", "run": "no-such-run"})
    check(not r.get("ok") and "no-such-run" in r.get("error", ""),
          f"API findings of an unknown run: a clear error ({r})")

    # The API's report op is the report: the same document as `trainscope
    # report --json`, built from the collector's own read-only handle (so a
    # client needs no access to the store file), with and without --against.
    for req, args in [({"op": "report", "run": "spiky"}, []),
                      ({"op": "report", "run": "spiky", "against": "calm"}, ["--against", "calm"]),
                      ({"op": "report", "run": "calm", "against": "base", "tolerance": 0.3},
                       ["--against", "base", "--tolerance", "0.3"])]:
        r, _ = c.query(req)
        rc, out, err = cli(TRAINSCOPE, "report", c.store, req["run"], "--json", *args)
        check(rc == 0 and r.get("ok") and r.get("report") == json.loads(out),
              f"API report {req} equals `trainscope report --json` ({r.get('error', '')}{err.strip()})")
    r, _ = c.query({"op": "report", "run": "calm", "against": "base", "tolerance": 0.3})
    loose = r["report"]["comparison"]["metrics"][0]["diverge_step"]
    r, _ = c.query({"op": "report", "run": "calm", "against": "base"})
    check(r["report"]["comparison"]["metrics"][0]["diverge_step"] is not None and loose is None,
          f"API report: the tolerance is applied (15% apart: diverged at 5%, not at 30%)")
    # Bad requests: clear errors, and the collector keeps serving.
    for req, want in [({"op": "report", "run": "no-such-run"}, "unknown run 'no-such-run'"),
                      ({"op": "report", "run": "spiky", "against": "nope"}, "unknown run 'nope'"),
                      ({"op": "report"}, "needs \"run\""),
                      ({"op": "report", "run": "spiky", "tolerance": -1}, "tolerance"),
                      ({"op": "report", "run": "spiky", "tolerance": "big"}, "tolerance"),
                      ({"op": "report", "run": "spiky", "against": 7}, "against")]:
        r, _ = c.query(req)
        check(r.get("ok") is False and want in r.get("error", ""), f"API report {req}: error naming {want!r} ({r})")
    r, _ = c.query({"op": "info"})
    check(r.get("ok"), "the collector still answers after the bad report requests")

    # --on-finding: the command got each finding as JSON on stdin.
    deadline = time.time() + 10
    while time.time() < deadline and (not os.path.exists(alerts + ".count") or
                                      len(open(alerts + ".count").read().splitlines()) < len(rows)):
        time.sleep(0.1)
    lines = [json.loads(x) for x in open(alerts).read().splitlines() if x.strip()] if os.path.exists(alerts) else []
    kinds = sorted((a["run"], a["kind"], a["step_first"]) for a in lines)
    check(("spiky", "nan", NAN_STEP) in kinds and ("spiky", "spike", 300) in kinds
          and ("dies", "stalled", 49) in kinds,
          f"--on-finding ran with the findings on stdin ({len(lines)} alerts: {kinds})")

    # The report: text.
    rc, out, err = cli(TRAINSCOPE, "report", c.store, "spiky")
    check(rc == 0 and "spike" in out and "train/loss" in out and "first NaN at step 850" in out
          and "steps/s" in out, f"text report names the findings:\n{out}{err}")

    # JSON, every object exactly as documented.
    doc = documented_fields(os.path.join(ROOT, "docs", "report-schema.md"))
    rc, out, err = cli(TRAINSCOPE, "report", c.store, "spiky", "--json", "--against", "calm")
    check(rc == 0, f"report --json --against exits 0 ({err})")
    rep = json.loads(out)
    same_keys(rep, doc["report"], "report")
    check(rep["schema"] == "trainscope.report/1", "schema name")
    same_keys(rep["run"], doc["run"], "run")
    for m in rep["metrics"]:
        same_keys(m, doc["metric"], f"metric {m['name']}")
    for f in rep["findings"]:
        same_keys(f, doc["finding"], f"finding {f['kind']}")
        same_keys(f["evidence"], doc["evidence"], "evidence")
    same_keys(rep["comparison"], doc["comparison"], "comparison")
    for m in rep["comparison"]["metrics"]:
        same_keys(m, doc["comparison_metric"], f"comparison metric {m['name']}")
    run = rep["run"]
    check(run["name"] == "spiky" and run["status"] == "finished" and run["step_first"] == 0
          and run["step_last"] == STEPS - 1 and run["steps_per_s"] > 0, f"run summary {run}")
    lm = next(m for m in rep["metrics"] if m["name"] == "train/loss")
    finite = spiky[np.isfinite(spiky)]
    check(lm["count"] == STEPS and lm["n_nan"] == 1 and lm["final"] == float(spiky[-1])
          and lm["best"] == float(finite.min()) and lm["best_step"] == int(np.nanargmin(spiky))
          and abs(lm["mean"] - finite.mean()) < 1e-9 and lm["best_is"] == "min",
          f"train/loss statistics: {lm}")
    fk = sorted((f["kind"], f["step_first"], f["series"]) for f in rep["findings"])
    check(fk == sorted([("spike", 300, "train/loss"), ("spike", 700, "train/loss"), ("nan", NAN_STEP, "train/loss"),
                        ("grad_explosion", EXPLODE_STEP, "grad_norm/layer.3")]),
          f"report findings are the injected anomalies: {fk}")
    sp = next(f for f in rep["findings"] if f["kind"] == "spike")
    check(sp["evidence"]["score"] >= sp["evidence"]["threshold"] == 6 and sp["severity"] in ("warning", "critical")
          and sp["rank"] == 0 and sp["run"] == "spiky", f"spike evidence {sp}")
    rc, out, _ = cli(TRAINSCOPE, "report", c.store, "calm", "--json", "--against", "base")
    cmp = {m["name"]: m for m in json.loads(out)["comparison"]["metrics"]}
    cl = cmp.get("train/loss", {})
    check(cl.get("common_steps") == STEPS and cl.get("diverge_step") is not None
          and 600 <= cl["diverge_step"] <= 640 and cl["final_against"] == float(loss[-1])
          and cl["final"] == float(calm[-1]) and abs(cl["final_diff"] - (calm[-1] - loss[-1])) < 1e-12,
          f"--against: loss diverges just after step 600: {cl}")
    rc, out, _ = cli(TRAINSCOPE, "report", c.store, "calm", "--against", "calm", "--json")
    same = json.loads(out)["comparison"]["metrics"][0]
    check(same["diverge_step"] is None and same["max_abs_diff"] == 0, "a run against itself does not diverge")

    # Stragglers and stalls (offline).
    rc, out, _ = cli(TRAINSCOPE, "report", c.store, "ddp", "--json")
    st = [f for f in json.loads(out)["findings"] if f["kind"] == "straggler"]
    check(len(st) == 1 and st[0]["rank"] == 1 and 1.3 < st[0]["evidence"]["score"] < 1.5,
          f"rank 1 is the one straggler: {st}")
    rc, out, _ = cli(TRAINSCOPE, "report", c.store, "dies", "--json", "--stall-s", "1")
    rep = json.loads(out)
    check(rep["run"]["status"] == "running" and any(f["kind"] == "stalled" for f in rep["findings"]),
          f"a run that died without goodbye is stalled: {rep['findings']}")

    # Bad input: clear errors, nothing changes.
    rc, out, err = cli(TRAINSCOPE, "report", c.store, "nosuch")
    check(rc == 1 and "nosuch" in err, f"unknown run: exit 1 naming it ({err.strip()})")
    rc, out, err = cli(TRAINSCOPE, "report", os.path.join(c.tmp, "missing.db"), "x")
    check(rc == 1 and "missing.db" in err, f"missing store: exit 1 naming it ({err.strip()})")
    rc, out, err = cli(TRAINSCOPE, "report", c.store)
    check(rc == 2 and "usage" in err, "missing RUN: usage, exit 2")
    rc, out, err = cli(TRAINSCOPE, "report", c.store, "spiky", "--detect", "train/loss:spike=x")
    check(rc == 2 and "spike=x" in err, f"bad rule: exit 2 naming it ({err.strip()})")
    rc, out, err = cli(TRAINSCOPE, "report", c.store, "spiky", "--tolerance", "-1")
    check(rc == 2 and "--tolerance" in err, f"bad tolerance: exit 2 ({err.strip()})")
    rc, out, err = cli(TRAINSCOPE, "report", c.store, "spiky", "--detect", "train/loss:spike=100", "--json")
    check(rc == 0 and not [f for f in json.loads(out)["findings"] if f["kind"] == "spike" and f["source"] == "offline"],
          "--detect spike=100: the offline pass finds no spike")
    check(c.stop() == 0, "the collector exits 0 (no sanitizer report)")

    rc, out, err = cli(TRAINSCOPE, "collect", "--store", c.store, "--detect", "x:window=3")
    check(rc == 2 and "window=3" in err, f"collect --detect with a bad window: exit 2 ({err.strip()[:80]})")
    rc, out, err = cli(TRAINSCOPE, "collect", "--store", c.store, "--on-finding")
    check(rc == 2 and "--on-finding" in err, "collect --on-finding without a command: exit 2")

    # Rate limit: 40 spikes in a burst; alerts are limited, ingest is not.
    c2 = Collector(TRAINSCOPE, transport="ipc")
    alerts2 = os.path.join(c2.tmp, "alerts.jsonl")
    c2.extra = ["--on-finding", f"cat >> {alerts2}; echo \"$TRAINSCOPE_ALERTS_SUPPRESSED\" >> {alerts2}.supp",
                "--alert-interval", "10", "--quiet"]
    c2.start()
    many = base_loss(5)
    for s in range(200, STEPS, 20):
        many[s] += 3.0
    t0 = time.time()
    publish(c2.ingest, "many", many)
    took = time.time() - t0
    time.sleep(1.0)
    db = sqlite3.connect(f"file:{c2.store}?mode=ro", uri=True)
    stored = db.execute("SELECT COUNT(*) FROM findings WHERE kind = 'spike'").fetchone()[0]
    db.close()
    n_alerts = len(open(alerts2).read().splitlines()) if os.path.exists(alerts2) else 0
    check(stored == 40, f"all 40 spikes stored ({stored})")
    check(1 <= n_alerts <= 6, f"alerts rate-limited to the burst of 5 ({n_alerts} ran)")
    check(took < 10, f"publishing was not slowed by the alert command ({took:.1f} s)")
    check(c2.stop() == 0, "the second collector exits 0")
    finish()


if __name__ == "__main__":
    main()
