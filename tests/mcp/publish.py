"""publish.py - a trainer for tests/test_mcp.mjs: logs a known loss curve
(and lr, grad_norm) through the Python client (libtrainscope underneath) to
a real collector, then closes the run as finished.

usage: /usr/bin/python3 publish.py ENDPOINT RUN STEPS [--project P]
       [--spike STEP] [--nan STEP] [--sleep-ms MS] [--scale F] [--config JSON]

train/loss at step s is (2 + 3 exp(-s/250)) * scale + 0.01 sin(s), times
8 at --spike, NaN at --nan. --sleep-ms paces the steps, so that a test can
watch the run live.
"""
import argparse
import json
import math
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))
import trainscope  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("endpoint")
ap.add_argument("run")
ap.add_argument("steps", type=int)
ap.add_argument("--project")
ap.add_argument("--spike", type=int, default=-1)
ap.add_argument("--nan", type=int, default=-1)
ap.add_argument("--sleep-ms", type=float, default=0)
ap.add_argument("--scale", type=float, default=1.0)
ap.add_argument("--config", default="{}")
a = ap.parse_args()

run = trainscope.init(name=a.run, project=a.project, endpoint=a.endpoint, config=json.loads(a.config))
for s in range(a.steps):
    loss = (2 + 3 * math.exp(-s / 250)) * a.scale + 0.01 * math.sin(s)
    if s == a.spike:
        loss *= 8
    if s == a.nan:
        loss = float("nan")
    run.log({"train/loss": loss, "lr": 1e-3 * min(1.0, (s + 1) / 100), "grad_norm": 1 + 0.1 * math.cos(s)}, step=s)
    if a.sleep_ms:
        time.sleep(a.sleep_ms / 1000)
run.flush(timeout=30)
run.close()
