"""test_viewer_findings_net.py - findings markers when the viewer attaches to
a collector (tcp://), not only when it opens the store file.

A real collector with its default online detectors stores a spike (step
300) and a NaN (step 850) of a published loss; it keeps running. The
viewer's --screenshot over tcp:// must draw the two triangles (severity
colours, at the top of the panel, at those steps) and equal, pixel for
pixel above the status line, the screenshot of the same store opened as a
file (which test_viewer.py 'findings' checks in detail).

usage: /usr/bin/python3 test_viewer_findings_net.py TRAINSCOPE TRAINSCOPE_VIEWER
"""
import math
import os
import random
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_viewer as tv  # noqa: E402  (takes TRAINSCOPE, VIEWER from argv)
from tslib import Collector, check, finish  # noqa: E402


def findings_over_tcp():
    col = Collector(tv.TRAINSCOPE, tmp=os.path.join(tv.TMP, "findings-net"), extra=["--quiet"])
    os.makedirs(col.tmp, exist_ok=True)
    col.start()
    try:
        rng = random.Random(1)
        loss = [2.0 + 3.0 * math.exp(-s / 250.0) + 0.03 * rng.gauss(0, 1) for s in range(1000)]
        loss[300] += 2.0
        loss[850] = math.nan
        check(tv.publish(col, "found", {"train/loss": list(enumerate(loss))}),
              "findings-net: every point acknowledged")
        db = sqlite3.connect(f"file:{col.store}?mode=ro", uri=True)
        rows = db.execute("SELECT kind, step_first, severity FROM findings ORDER BY step_first").fetchall()
        db.close()
        if not check([(k, s) for k, s, _ in rows] == [("spike", 300), ("nan", 850)],
                     f"findings-net: the collector stored the spike and the NaN ({rows})"):
            return
        rc, pn, net, err = tv.shot(col.api, "findings-net", "--metric", "train/loss")
        p = pn.get("train/loss")
        if not check(rc == 0 and net and p, f"findings-net: rendered over tcp ({err.strip()})"):
            return
        for kind, step, sev in rows:
            c = tv.FIND_COLOUR[sev]
            top = p.y + 4
            tri = [net.rgb(p.px(step), top + dy) == c for dy in range(6)] + \
                  [net.rgb(p.px(step) + dx, top) == c for dx in (-4, 4)]
            check(all(tri), f"findings-net: a {sev} triangle at step {step} ({kind}) over tcp")
        rc, pf, fil, err = tv.shot(col.store, "findings-file", "--metric", "train/loss")
        if check(rc == 0 and fil and pf, f"findings-net: rendered from the file ({err.strip()})"):
            bottom = min(max(q.y + q.h for q in pf.values()) + 20, fil.h - 30)   # not the status line
            check([vars(q) for q in pf.values()] == [vars(q) for q in pn.values()],
                  "findings-net: same panel and scales over tcp as from the file")
            check(fil.same_rows(net, 0, bottom),
                  "findings-net: the plot over tcp equals the file's, markers included, pixel for pixel")
    finally:
        check(col.stop() == 0, "findings-net: collector exits 0")


if __name__ == "__main__":
    tv.DISPLAY = tv.Display()
    try:
        findings_over_tcp()
    finally:
        tv.DISPLAY.close()
    finish()
