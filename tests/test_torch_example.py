"""test_torch_example.py - examples/char_transformer.py (PyTorch, CPU) trains
against a real collector; the stored series are what a person watching the
run needs, and they are right.

usage: /usr/bin/python3 test_torch_example.py TRAINSCOPE LIBTRAINSCOPE_SO

Checks: every metric present (loss, lr, global and per-layer gradient norms,
update ratios, tokens/s, val loss) with one point per step; the loss falls
from about ln(vocab); the learning rate is exactly the documented warmup +
cosine schedule; eval and checkpoint events; config stored; status
finished; and a run interrupted with SIGINT ends "failed" keeping its points.
"""
import math
import os
import signal
import subprocess
import sys
import time

from tslib import Collector, check, cli, export_points, finish

TRAINSCOPE, LIB = sys.argv[1], os.path.abspath(sys.argv[2])
HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(os.path.dirname(HERE), "examples", "char_transformer.py")
ENV = dict(os.environ, TRAINSCOPE_LIB=LIB)

# The model of the example with --layers 2: one group of parameters per module.
LAYERS = ["tok", "pos", "ln", "head"] + [f"blocks.{b}.{m}" for b in range(2)
                                         for m in ("ln1", "qkv", "proj", "ln2", "fc", "out")]
PER_STEP = (["train/loss", "lr", "grad_norm", "tokens_per_s"]
            + [f"grad_norm/{x}" for x in LAYERS] + [f"update_ratio/{x}" for x in LAYERS])


def series_of(col, run):
    reply = col.query({"op": "series", "run": run})[0]
    return {s["name"]: s for s in reply.get("series", [])}


def values(points, metric):
    """[(step, float)] of one metric, in step order."""
    import struct
    out = [(k[2], struct.unpack("<d", struct.pack("<Q", v))[0])
           for k, v in points.items() if k[1] == metric]
    return sorted(out)


def lr_schedule(step, base, floor, warmup, steps):
    # As documented in examples/char_transformer.py, written out again here.
    if step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return floor + 0.5 * (base - floor) * (1.0 + math.cos(math.pi * t))


def full_run():
    col = Collector(TRAINSCOPE, transport="ipc", extra=["--quiet"]).start()
    steps, every, warmup, lr = 150, 50, 20, 3e-3
    ckdir = os.path.join(col.tmp, "ckpt")
    t0 = time.time()
    p = subprocess.run([sys.executable, EXAMPLE, "--steps", str(steps), "--eval-every", str(every),
                        "--warmup", str(warmup), "--lr", str(lr), "--name", "chars",
                        "--project", "examples", "--endpoint", col.ingest, "--checkpoint-dir", ckdir],
                       capture_output=True, env=ENV, timeout=600)
    out, err = p.stdout.decode(), p.stderr.decode(errors="replace")
    check(p.returncode == 0, f"the example exits 0 after {time.time() - t0:.1f} s ({err.strip()[-300:]})")
    check("dropped 0" in out, f"the example reports nothing dropped ({out.strip().splitlines()[-1:]})")
    run = "examples/chars"
    ser = series_of(col, run)
    missing = [m for m in PER_STEP + ["val/loss"] if m not in ser]
    extra = [m for m in ser if m not in PER_STEP and m != "val/loss"]
    check(not missing and not extra, f"all {len(PER_STEP) + 1} series stored (missing {missing}, extra {extra})")
    wrong = [(m, ser[m]["count"], ser[m]["step_first"], ser[m]["step_last"]) for m in PER_STEP
             if m in ser and (ser[m]["count"], ser[m]["step_first"], ser[m]["step_last"]) != (steps, 0, steps - 1)]
    check(not wrong, f"every per-step series has {steps} points, steps 0..{steps - 1} ({wrong[:3]})")

    points, _ = export_points(TRAINSCOPE, col.store, run)
    loss = [v for _, v in values(points, "train/loss")]
    rc, show, _ = cli(TRAINSCOPE, "show", col.store, run)
    vocab = int(show.split('"vocab":')[1].split(",")[0]) if '"vocab":' in show else 0
    check(vocab > 10 and abs(loss[0] - math.log(vocab)) < 0.6,
          f"first loss {loss[0]:.3f} is near ln(vocab {vocab}) = {math.log(max(vocab, 1)):.3f}: an untrained model")
    head, tail = sum(loss[:10]) / 10, sum(loss[-10:]) / 10
    check(tail < head - 0.8, f"training loss falls: first 10 steps {head:.3f}, last 10 {tail:.3f}")
    val = values(points, "val/loss")
    check([s for s, _ in val] == [every - 1 + every * i for i in range(steps // every)],
          f"val/loss at every {every}th step ({[s for s, _ in val]})")
    check(val[-1][1] < val[0][1], f"validation loss falls ({val[0][1]:.3f} -> {val[-1][1]:.3f})")

    floor = lr * 0.1
    lrs = values(points, "lr")
    bad = [(s, v, lr_schedule(s, lr, floor, warmup, steps)) for s, v in lrs
           if not math.isclose(v, lr_schedule(s, lr, floor, warmup, steps), rel_tol=1e-12)]
    check(len(lrs) == steps and not bad, f"lr follows warmup + cosine at every step ({bad[:2]})")
    check(math.isclose(lrs[warmup - 1][1], lr) and math.isclose(lrs[-1][1], floor, rel_tol=1e-2),
          f"lr peaks at {lrs[warmup - 1][1]} after warmup and ends near {floor} ({lrs[-1][1]})")

    gn = [v for _, v in values(points, "grad_norm")]
    check(all(math.isfinite(v) and v > 0 for v in gn), "global grad norms finite and positive")
    layer_sq = [sum(values(points, f"grad_norm/{x}")[i][1] ** 2 for x in LAYERS) for i in (0, steps - 1)]
    check(all(math.isclose(math.sqrt(layer_sq[j]), gn[i], rel_tol=1e-4) for j, i in enumerate((0, steps - 1))),
          f"per-layer grad norms add up (in squares) to the global norm ({math.sqrt(layer_sq[0]):.6f} vs {gn[0]:.6f})")
    ratios = [v for x in LAYERS for _, v in values(points, f"update_ratio/{x}")]
    check(all(0 < v < 1 for v in ratios), f"update ratios in (0, 1) (max {max(ratios):.4g})")
    tps = [v for _, v in values(points, "tokens_per_s")]
    check(all(v > 0 for v in tps), f"tokens/s positive (median {sorted(tps)[len(tps) // 2]:.0f})")

    ev = col.query({"op": "events", "run": run})[0]["events"]
    evals = [(e["step"], e["text"]) for e in ev if e["kind"] == "eval"]
    ckpt = [(e["step"], e["text"]) for e in ev if e["kind"] == "checkpoint"]
    check(len(evals) == steps // every and all("val loss" in t for _, t in evals),
          f"an eval event per evaluation ({evals[:1]})")
    path = ckpt[0][1].split("saved ", 1)[-1] if ckpt else ""
    check(len(ckpt) == 1 and ckpt[0][0] == steps - 1 and os.path.isfile(path),
          f"a checkpoint event naming the saved file ({ckpt})")
    info = [r for r in col.query({"op": "runs"})[0]["runs"] if r["name"] == "chars"][0]
    check(info["status"] == "finished" and info["dropped"] == 0, f"run finished, nothing dropped ({info['status']})")
    check(f'"steps":{steps}' in show and '"d_model":32' in show, "hyperparameters stored as the run's config")
    col.stop()


def interrupted_run():
    col = Collector(TRAINSCOPE, transport="ipc", extra=["--quiet"]).start()
    p = subprocess.Popen([sys.executable, EXAMPLE, "--steps", "100000", "--name", "interrupted",
                          "--endpoint", col.ingest], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    deadline = time.time() + 120
    n = 0
    while time.time() < deadline and n < 20:
        time.sleep(0.3)
        n = series_of(col, "interrupted").get("train/loss", {}).get("count", 0)
    p.send_signal(signal.SIGINT)
    try:
        rc = p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = p.wait()
    err = p.stderr.read().decode(errors="replace")
    check(rc != 0 and "KeyboardInterrupt" in err, f"SIGINT stops the example (exit {rc})")
    info = [r for r in col.query({"op": "runs"})[0]["runs"] if r["name"] == "interrupted"]
    check(info and info[0]["status"] == "failed", f"interrupted run ends with status failed ({info and info[0]['status']})")
    ser = series_of(col, "interrupted")
    cnt = ser.get("train/loss", {}).get("count", 0)
    last = ser.get("train/loss", {}).get("step_last", -2)
    check(cnt >= 20 and cnt == last + 1 and ser["lr"]["count"] == cnt,
          f"every step logged before the interrupt is stored ({cnt} points, last step {last})")
    col.stop()


if __name__ == "__main__":
    for case in sys.argv[3:] or ["full_run", "interrupted_run"]:
        print(f"== {case}", flush=True)
        globals()[case]()
    finish()
