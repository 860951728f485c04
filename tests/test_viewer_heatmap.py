"""test_viewer_heatmap.py - the viewer's layer heatmaps and findings list,
read from the pixels of real PNGs under Xvfb (test_viewer.py's harness).

A real collector (its online detectors on) stores grad_norm/layer.0..7 of a
run: layer 5 explodes for one step (S), layer 2 has a NaN at step N. The
viewer's --print-layout gives the heatmap's rows (pixel spans) and colour
scale, and the findings list's rows; the checks read the PNG:
- the row of layer 5 is the top colour of the scale at the pixel column of
  S, over the whole run and zoomed in (two zoom levels and one where a
  column is narrower than a step), and no other row is there;
- layer 2's cell at N has the NaN/Inf colour; columns past the data are
  empty (background) in every row;
- the colour scale is log10 by default, l makes it linear; m turns the
  group back into one line panel per layer;
- two runs: a block of rows each, only the exploding run hot; a run hidden
  with its key drops its block;
- more layers than pixel rows: a spike in one of 160 layers still shows;
- ranks of a run fold into its rows by max: one rank's spike is hot;
- live: a heatmap from the collector's API while it ingests grows with the
  data and shows a spike that arrived after the first frame;
- findings: i lists every stored finding (count from the store), j/k
  select and centre the view on one, Esc closes the list without quitting;
  hovering a marker shows its tooltip;
- the interactive window, driven through XTest: i and a click on the list's
  second entry leave the window equal to --screenshot --keys ijj.

usage: /usr/bin/python3 test_viewer_heatmap.py TRAINSCOPE TRAINSCOPE_VIEWER [case ...]
"""
import ctypes.util
import math
import os
import random
import shutil
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_viewer as tv  # noqa: E402  (its harness: Display, Image, viewer, publish, Panel)
from tslib import Collector, check, finish  # noqa: E402

HOT = (0xFC, 0xFF, 0xA4)        # heat.h TVH_HOT, the top of the colour scale
COLD = (0x00, 0x00, 0x04)       # the bottom
NONFINITE = (0x00, 0xE0, 0xE0)  # heat.h TVH_NONFINITE
WHITE = (0xFF, 0xFF, 0xFF)
S, N, STEPS, LAYERS = 1234, 1500, 2000, 8
GROUP = "grad_norm/layer.*"
STORE = None


class Shot:
    """One screenshot: the PNG, the panels, the heatmaps' rows and scales,
    the findings list rows and the tooltip line of --print-layout."""

    def __init__(self, store, name, *args, size="900x640"):
        out = os.path.join(tv.TMP, name + ".png")
        if os.path.exists(out):
            os.remove(out)
        self.rc, so, self.err = tv.viewer(store, "--screenshot", out, "--size", size, "--print-layout", *args)
        self.img = tv.Image(out) if os.path.exists(out) else None
        self.panels, self.heat, self.rows, self.flist, self.frows, self.tooltip = {}, {}, {}, None, [], None
        for line in so.splitlines():
            f = line.split()
            if not f:
                continue
            if f[0] == "panel":
                self.panels[f[1]] = tv.Panel(f)
            elif f[0] == "heatmap":   # heatmap NAME rows R layers L cbar X Y W H c LO HI log G
                self.heat[f[1]] = {"rows": int(f[3]), "layers": int(f[5]), "cbar": tuple(map(int, f[7:11])),
                                   "lo": float(f[12]), "hi": float(f[13]), "log": int(f[15])}
            elif f[0] == "heatrow":   # heatrow NAME R RUN LAYER Y0 Y1
                self.rows[(f[3], f[4])] = (int(f[5]), int(f[6]))
            elif f[0] == "findings-list":
                self.flist = {"n": int(f[1]), "shown": int(f[3]), "selected": int(f[7])}
            elif f[0] == "finding-row":
                self.frows.append({"i": int(f[1]), "y": int(f[3]), "kind": f[5], "series": f[7],
                                   "step": int(f[9]), "selected": int(f[11])})
            elif f[0] == "finding-tooltip":
                self.tooltip = {"i": int(f[1]), "kind": f[3], "step": int(f[5])}

    def ok(self):
        return self.rc == 0 and self.img is not None

    def cell(self, run, layer, step, panel=GROUP):
        """The colour in the middle of the cell of (run, layer) at step."""
        p = self.panels[panel]
        y0, y1 = self.rows[(run, layer)]
        return self.img.rgb(p.px(step), (y0 + y1 - 1) // 2)


def layer_values(rng, run_spike=True):
    series = {}
    for layer in range(LAYERS):
        pts = []
        for s in range(STEPS):
            v = 0.1 * (layer + 1) * (1 + 0.05 * rng.gauss(0, 1))
            if run_spike and layer == 5 and s == S:
                v = 50.0
            if run_spike and layer == 2 and s == N:
                v = math.nan
            pts.append((s, v))
        series[f"grad_norm/layer.{layer}"] = pts
    return series


def make_store():
    col = Collector(tv.TRAINSCOPE, tmp=os.path.join(tv.TMP, "layers"), extra=["--quiet"])
    os.makedirs(col.tmp, exist_ok=True)
    col.start()
    rng = random.Random(7)
    deep = layer_values(rng)
    deep["train/loss"] = [(s, 2 + math.exp(-s / 300)) for s in range(STEPS)]
    ok = tv.publish(col, "deep", deep)
    ok = tv.publish(col, "calm", layer_values(rng, run_spike=False)) and ok
    check(ok and col.stop() == 0, "store: every point acknowledged, collector exits 0")
    return col.store


def layer(i):
    return f"grad_norm/layer.{i}"


def spike_every_zoom():
    for tag, args in (("whole run", []), ("zoom 1100:1400", ["--x-range", "1100:1400"]),
                      ("zoom 1230:1240", ["--x-range", "1230:1240"])):
        sh = Shot(STORE, "heat", "--run", "deep", "--metric", "grad_norm/*", *args)
        if not check(sh.ok() and GROUP in sh.panels and GROUP in sh.heat,
                     f"heat [{tag}]: one heatmap panel for the layer group ({sh.err.strip()})"):
            continue
        h, p = sh.heat[GROUP], sh.panels[GROUP]
        check(h["rows"] == LAYERS and h["layers"] == LAYERS and h["log"] == 1,
              f"heat [{tag}]: {LAYERS} rows, log colour scale ({h})")
        check(not any(n.startswith("grad_norm/layer.") and n != GROUP for n in sh.panels),
              f"heat [{tag}]: no line panel per layer")
        ys = [sh.rows[("deep", layer(i))] for i in range(LAYERS)]
        check(all(ys[i][1] <= ys[i + 1][0] for i in range(LAYERS - 1)) and ys[0][0] == p.y
              and ys[-1][1] == p.y + p.h, f"heat [{tag}]: rows in index order fill the plot ({ys})")
        check(sh.cell("deep", layer(5), S) == HOT,
              f"heat [{tag}]: layer 5 is the hot colour at step {S}'s column {p.col(S)} ({sh.cell('deep', layer(5), S)})")
        others = [i for i in range(LAYERS) if i != 5 and sh.cell("deep", layer(i), S) == HOT]
        check(not others, f"heat [{tag}]: no other layer is hot there ({others})")
        near = [s for s in (S - 3, S + 3) if p.col(s) != p.col(S) and p.x_from <= s <= p.x_to]
        check(near and all(sh.cell("deep", layer(5), s) not in (HOT, WHITE) for s in near),
              f"heat [{tag}]: layer 5 is not hot at steps {near}")
        # the whole cell column (every pixel row of layer 5) is hot
        y0, y1 = sh.rows[("deep", layer(5))]
        check(all(sh.img.rgb(p.px(S), y) == HOT for y in range(y0 + 1, y1 - 1)),
              f"heat [{tag}]: every pixel row of layer 5's cell is hot")
        if p.x_to - p.x_from + 1 < p.w:
            # zoomed past one step per column: a step's cell is as wide as the
            # step (up to the next step's column), with no blank between steps
            y5 = (y0 + y1 - 1) // 2
            xs = range(p.px(S), p.px(S + 1))
            check(len(xs) > 1 and all(sh.img.rgb(x, y5) == HOT for x in xs),
                  f"heat [{tag}]: layer 5 is hot across step {S}'s whole width (pixels {xs.start}..{xs.stop - 1})")
            check(sh.img.rgb(p.px(S + 1), y5) != HOT, f"heat [{tag}]: and not at step {S + 1}")
            ya, yb = sh.rows[("deep", layer(0))]
            blank = [x for x in range(p.px(p.x_from), p.px(p.x_to)) if sh.img.rgb(x, (ya + yb - 1) // 2) == WHITE]
            check(not blank, f"heat [{tag}]: layer 0's row has no blank column between its steps ({blank[:5]})")


def nan_and_empty_cells():
    sh = Shot(STORE, "heat-nan", "--run", "deep", "--metric", "grad_norm/*")
    if not check(sh.ok() and GROUP in sh.panels, f"nan: rendered ({sh.err.strip()})"):
        return
    check(sh.cell("deep", layer(2), N) == NONFINITE, f"nan: layer 2 at step {N} has the NaN/Inf colour")
    check(sh.cell("deep", layer(2), N - 40) not in (NONFINITE, WHITE, HOT), "nan: layer 2 elsewhere has a value colour")
    check(all(sh.cell("deep", layer(i), N) != NONFINITE for i in range(LAYERS) if i != 2),
          "nan: no other layer has it at that column")
    sh = Shot(STORE, "heat-empty", "--run", "deep", "--metric", "grad_norm/*", "--x-range", "1000:3000")
    if not check(sh.ok() and GROUP in sh.panels, f"empty: rendered ({sh.err.strip()})"):
        return
    check(all(sh.cell("deep", layer(i), 2650) == WHITE for i in range(LAYERS)),
          "empty: columns past the data are background in every row")
    check(all(sh.cell("deep", layer(i), 1800) != WHITE for i in range(LAYERS)), "empty: columns with data are not")
    cb = sh.heat[GROUP]["cbar"]
    bar = [sh.img.rgb(x, cb[1] + cb[3] // 2) for x in range(cb[0], cb[0] + cb[2])]
    check(bar[0] == COLD and HOT in bar and NONFINITE in bar,
          "colour bar: from the cold end to the hot one, with the NaN/Inf swatch")


def keys_toggle():
    sh = Shot(STORE, "heat-l", "--run", "deep", "--metric", "grad_norm/*", "--keys", "l")
    check(sh.ok() and GROUP in sh.heat and sh.heat[GROUP]["log"] == 0 and sh.cell("deep", layer(5), S) == HOT,
          "keys: l makes the colour scale linear; the spike is still the hot end")
    sh = Shot(STORE, "heat-m", "--run", "deep", "--metric", "grad_norm/*", "--keys", "m")
    names = sorted(n for n in sh.panels if n.startswith("grad_norm/"))
    check(sh.ok() and not sh.heat and names == [layer(i) for i in range(LAYERS)],
          f"keys: m shows the layers as line panels ({names})")
    if sh.ok() and layer(5) in sh.panels:
        p = sh.panels[layer(5)]
        check(sh.img.rgb(p.px(S), p.row(25.0)) == tv.ALPHA, "keys: ... and layer 5's line goes up to its spike")
    sh = Shot(STORE, "heat-mm", "--run", "deep", "--metric", "grad_norm/*", "--keys", "mm")
    check(sh.ok() and GROUP in sh.heat, "keys: m again brings the heatmap back")


def two_runs():
    sh = Shot(STORE, "heat-2", "--metric", "grad_norm/*")
    if not check(sh.ok() and GROUP in sh.heat, f"runs: rendered ({sh.err.strip()})"):
        return
    check(sh.heat[GROUP]["rows"] == 2 * LAYERS, f"runs: a block of rows per run ({sh.heat[GROUP]['rows']})")
    deep, calm = sh.rows.get(("deep", layer(0))), sh.rows.get(("calm", layer(0)))
    check(deep and calm and deep[0] < calm[0], "runs: the blocks in legend order (deep, then calm)")
    check(sh.cell("deep", layer(5), S) == HOT and sh.cell("calm", layer(5), S) not in (HOT, WHITE),
          "runs: only the run that exploded is hot at S")
    sh = Shot(STORE, "heat-2h", "--metric", "grad_norm/*", "--keys", "1")
    check(sh.ok() and sh.heat.get(GROUP, {}).get("rows") == LAYERS and ("deep", layer(0)) not in sh.rows,
          "runs: hiding a run (key 1) drops its block")


def many_layers():
    """160 layers in a plot lower than 160 pixels: rows that share a pixel
    row show their largest value, so one layer's spike is not lost."""
    col = Collector(tv.TRAINSCOPE, tmp=os.path.join(tv.TMP, "many"), extra=["--quiet", "--detect", "off"])
    os.makedirs(col.tmp, exist_ok=True)
    col.start()
    series = {f"update_ratio/layers.{i}.w": [(s, 1e-3 * (1 + i / 200) if not (i == 117 and s == 300) else 5.0)
                                            for s in range(400)] for i in range(160)}
    ok = tv.publish(col, "wide", series)
    check(ok and col.stop() == 0, "many: acknowledged")
    group = "update_ratio/layers.*"
    sh = Shot(col.store, "heat-many", "--size", "700x220")
    if not check(sh.ok() and group in sh.heat and group in sh.panels, f"many: one heatmap ({sh.err.strip()})"):
        return
    p = sh.panels[group]
    check(sh.heat[group]["rows"] == 160 and p.h < 160, f"many: 160 rows in {p.h} pixel rows")
    y0, _ = sh.rows[("wide", "update_ratio/layers.117.w")]
    check(sh.img.rgb(p.px(300), y0) == HOT, "many: layer 117's spike is hot in the pixel row it shares")
    cold = [y for y in range(p.y, p.y + p.h) if y != y0 and sh.img.rgb(p.px(300), y) == HOT]
    check(not cold, f"many: and no other pixel row is ({cold})")


def ranks():
    """A run at two ranks: one block of rows, a cell the max over the ranks,
    so rank 1's explosion in layer 2 is hot though rank 0 is calm there."""
    col = Collector(tv.TRAINSCOPE, tmp=os.path.join(tv.TMP, "ranks"), extra=["--quiet", "--detect", "off"])
    os.makedirs(col.tmp, exist_ok=True)
    col.start()
    ok = True
    for rank in (0, 1):
        pub = tv.SpecPublisher(col.ingest, "ddp", rank=rank, world_size=2, batch_size=5000)
        for s in range(300):
            for i in range(4):
                pub.log(f"grad_norm/layer.{i}", s, 40.0 if (rank, i, s) == (1, 2, 150) else 1.0 + 0.1 * i + 0.01 * rank,
                        tv.T0 + s * 1_000_000)
        pub.bye("finished")
        ok = pub.flush(60) and ok
        pub.close()
    check(ok and col.stop() == 0, "ranks: both ranks acknowledged")
    sh = Shot(col.store, "heat-ranks")
    if not check(sh.ok() and GROUP in sh.heat, f"ranks: rendered ({sh.err.strip()})"):
        return
    check(sh.heat[GROUP]["rows"] == 4, f"ranks: one block of 4 rows for the run ({sh.heat[GROUP]['rows']})")
    check(sh.cell("ddp", layer(2), 150) == HOT and sh.cell("ddp", layer(3), 150) != HOT,
          "ranks: rank 1's spike makes the run's layer 2 cell hot, layer 3's is not")


def live():
    """Against a collector's API while it ingests: the first frame has the
    first half; after the second half (with a spike) arrives, a new frame
    covers it and shows the spike."""
    col = Collector(tv.TRAINSCOPE, tmp=os.path.join(tv.TMP, "live"), extra=["--quiet", "--detect", "off"])
    os.makedirs(col.tmp, exist_ok=True)
    col.start()
    try:
        pub = tv.SpecPublisher(col.ingest, "growing", batch_size=500)
        for s in range(1000):
            for i in range(4):
                pub.log(f"grad_norm/layer_{i}", s, 0.5 + 0.1 * i, tv.T0 + s * 1_000_000)
        ok = pub.flush(60)
        sh = Shot(col.api, "heat-live1")
        g = "grad_norm/layer_*"
        check(ok and sh.ok() and g in sh.panels and sh.panels[g].x_to <= 1000,
              f"live: the first frame covers the first 1000 steps ({sh.panels.get(g) and sh.panels[g].x_to})")
        for s in range(1000, 2000):
            for i in range(4):
                pub.log(f"grad_norm/layer_{i}", s, 80.0 if (i == 3 and s == 1700) else 0.5 + 0.1 * i,
                        tv.T0 + s * 1_000_000)
        ok = pub.flush(60)
        sh = Shot(col.api, "heat-live2")
        p = sh.panels.get(g)
        check(ok and sh.ok() and p and p.x_to >= 1999, f"live: the next frame covers the new steps ({p and p.x_to})")
        if p:
            check(sh.cell("growing", "grad_norm/layer_3", 1700, g) == HOT
                  and sh.cell("growing", "grad_norm/layer_0", 1700, g) != HOT,
                  "live: the spike that arrived later is hot in its layer only")
        pub.bye("finished")
        pub.flush(10)
        pub.close()
    finally:
        check(col.stop() == 0, "live: collector exits 0")


def findings_list():
    db = sqlite3.connect(f"file:{STORE}?mode=ro", uri=True)
    stored = db.execute("SELECT f.kind, f.step_first FROM findings f JOIN runs r ON r.id = f.run_id "
                        "WHERE r.name = 'deep' ORDER BY f.step_first").fetchall()
    db.close()
    check(("grad_explosion", S) in stored or any(st == S for _, st in stored),
          f"findings: the collector found layer 5's explosion ({stored})")
    check(any(k == "nan" and st == N for k, st in stored), "findings: and the NaN")
    base = Shot(STORE, "flist0", "--run", "deep")
    sh = Shot(STORE, "flist", "--run", "deep", "--keys", "i")
    if not check(sh.ok() and sh.flist, f"findings: i opens the list ({sh.err.strip()})"):
        return
    check(sh.flist["n"] == len(stored) and len(sh.frows) == len(stored),
          f"findings: one row per stored finding ({len(sh.frows)} rows, {len(stored)} stored)")
    check([(r["kind"], r["step"]) for r in sh.frows] == [tuple(x) for x in stored], "findings: by step, with kind and step")
    check(sh.flist["selected"] == -1, "findings: nothing selected yet")
    xs = sorted({r["y"] for r in sh.frows})
    changed = sum(base.img.rgb(x, y) != sh.img.rgb(x, y) for y in xs for x in range(sh.img.w // 2, sh.img.w - 20))
    check(changed > 200, f"findings: the rows are drawn over the panels ({changed} px changed)")
    sh = Shot(STORE, "flist-j", "--run", "deep", "--keys", "ij")
    p = sh.panels.get("train/loss")
    first = sh.frows[0] if sh.frows else None
    check(first and first["selected"] == 1 and p and abs((p.x_from + p.x_to) / 2 - first["step"]) <= 1,
          f"findings: j selects the first entry and centres the view on it ({p and (p.x_from, p.x_to)})")
    sh = Shot(STORE, "flist-jj", "--run", "deep", "--keys", "ijj")
    p = sh.panels.get("train/loss")
    sel = [r for r in sh.frows if r["selected"]]
    check(len(stored) >= 2 and sel and sel[0]["step"] == stored[1][1] and p
          and abs((p.x_from + p.x_to) / 2 - stored[1][1]) <= 1,
          f"findings: j again moves to the next one (step {stored[1][1] if len(stored) > 1 else None})")
    sh = Shot(STORE, "flist-jjk", "--run", "deep", "--keys", "ijjk")
    sel = [r for r in sh.frows if r["selected"]]
    check(sel and sel[0]["step"] == stored[0][1], "findings: k moves back")
    sh = Shot(STORE, "flist-esc", "--run", "deep", "--keys", "i\x1b")
    check(sh.ok() and sh.flist is None, "findings: Esc closes the list and the viewer goes on (no quit)")
    # n from the whole run (centre about step 1000) centres the first finding after it
    after = min(st for _, st in stored if st > (STEPS - 1) / 2)
    sh = Shot(STORE, "flist-n", "--run", "deep", "--keys", "ni")
    sel = [r for r in sh.frows if r["selected"]]
    check(sel and sel[0]["step"] == after, f"findings: n selects the finding it centres (step {after}) in the list")


def marker_tooltip():
    base = Shot(STORE, "tip0", "--run", "deep", "--metric", "grad_norm/*")
    if not check(base.ok() and GROUP in base.panels, f"tooltip: layout ({base.err.strip()})"):
        return
    p = base.panels[GROUP]
    hx, hy = p.px(S), p.y + 6
    sh = Shot(STORE, "tip", "--run", "deep", "--metric", "grad_norm/*", "--hover", f"{hx},{hy}")
    check(sh.ok() and sh.tooltip and sh.tooltip["step"] == S,
          f"tooltip: hovering the marker at step {S} shows its finding ({sh.tooltip})")
    before = sum(base.img.rgb(x, hy + 12) == (0xB0, 0xB0, 0xB0) for x in range(sh.img.w))
    frame = sum(sh.img.rgb(x, hy + 12) == (0xB0, 0xB0, 0xB0) for x in range(sh.img.w))
    check(frame - before > 100, f"tooltip: a framed box beside the cursor ({frame - before} px of its top edge)")
    sh = Shot(STORE, "tip-off", "--run", "deep", "--metric", "grad_norm/*", "--hover", f"{p.px(600)},{hy}")
    check(sh.ok() and sh.tooltip is None, "tooltip: none away from the markers")
    y0, y1 = sh.rows[("deep", layer(5))]
    sh = Shot(STORE, "tip-cell", "--run", "deep", "--metric", "grad_norm/*", "--hover", f"{p.px(S)},{(y0 + y1) // 2}")
    frame = sum(sh.img.rgb(x, (y0 + y1) // 2 + 12) == (0xB0, 0xB0, 0xB0)
                for x in range(p.px(S) + 12, min(p.px(S) + 150, sh.img.w)))
    check(sh.ok() and sh.tooltip is None and frame > 100, f"tooltip: hovering a cell shows its values box ({frame})")


def click_in_window():
    """The interactive window under Xvfb, driven through XTest: key i opens
    the list, a click on its second entry selects it and centres the view
    on it: the window then equals --screenshot --keys ijj pixel for pixel."""
    if "DISPLAY" not in tv.DISPLAY.env:
        check(False, "click: needs Xvfb")
        return
    import ctypes
    import signal
    import subprocess
    import time
    import test_viewer_window as tw
    x = tw.X(tv.DISPLAY.env["DISPLAY"])
    xt = ctypes.CDLL(ctypes.util.find_library("Xtst") or "libXtst.so.6")
    xt.XTestFakeKeyEvent.argtypes = [ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_ulong]
    xt.XTestFakeButtonEvent.argtypes = [ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_ulong]
    x.x.XKeysymToKeycode.argtypes = [ctypes.c_void_p, ctypes.c_ulong]
    x.x.XKeysymToKeycode.restype = ctypes.c_ubyte
    w, h = 900, 640
    ref = Shot(STORE, "click-ref", "--run", "deep", "--keys", "ijj")
    opened = Shot(STORE, "click-open", "--run", "deep", "--keys", "i")
    if not check(ref.ok() and len(opened.frows) >= 2, f"click: references ({ref.err.strip()})"):
        return
    _, _, ref_rows = tw.png_rgb_rows(os.path.join(tv.TMP, "click-ref.png"))
    x.pointer_to(1919, 1199)
    p = subprocess.Popen([tv.VIEWER, STORE, "--run", "deep", "--size", f"{w}x{h}"], env=tv.DISPLAY.env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        win, deadline = 0, time.monotonic() + 15
        while not win and time.monotonic() < deadline and p.poll() is None:
            time.sleep(0.1)
            win = x.find("trainscope")
        if not check(win != 0, "click: the viewer's window appears"):
            return
        time.sleep(0.5)
        row = opened.frows[1]
        # the pointer into the window (focus follows it without a window manager), then i
        x.x.XWarpPointer(x.dpy, 0, win, 0, 0, 0, 0, w - 60, row["y"] + 6)
        x.x.XSync(x.dpy, 0)
        key = x.x.XKeysymToKeycode(x.dpy, ord("i"))
        xt.XTestFakeKeyEvent(x.dpy, key, 1, 0)
        xt.XTestFakeKeyEvent(x.dpy, key, 0, 0)
        x.x.XSync(x.dpy, 0)
        time.sleep(0.5)
        xt.XTestFakeButtonEvent(x.dpy, 1, 1, 0)
        xt.XTestFakeButtonEvent(x.dpy, 1, 0, 0)
        x.x.XSync(x.dpy, 0)
        diff = tw.wait_for(x, win, w, h, ref_rows)
        check(diff == 0, f"click: after i and a click on the second entry the window equals --keys ijj "
                         f"({diff} pixels differ)")
    finally:
        alive = p.poll() is None
        p.send_signal(signal.SIGTERM)
        try:
            _, err = p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
        check(alive and p.returncode == 0, f"click: the window quits on SIGTERM with 0 ({p.returncode}, "
                                           f"{err.decode(errors='replace').strip()[:300]})")
        x.close()


CASES = {
    "spike": spike_every_zoom,
    "nan": nan_and_empty_cells,
    "keys": keys_toggle,
    "runs": two_runs,
    "many": many_layers,
    "ranks": ranks,
    "live": live,
    "findings": findings_list,
    "tooltip": marker_tooltip,
    "click": click_in_window,
}

if __name__ == "__main__":
    tv.DISPLAY = tv.Display()
    try:
        STORE = make_store()
        for name in sys.argv[3:] or CASES:
            print(f"== {name}", flush=True)
            try:
                CASES[name]()
            except Exception as e:  # a broken binary must fail the test, not hang it
                check(False, f"{name}: raised {type(e).__name__}: {e}")
    finally:
        tv.DISPLAY.close()
    shutil.rmtree(tv.TMP, ignore_errors=True)
    finish()
