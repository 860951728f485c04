"""test_viewer.py - trainscope-viewer against real stores: a real collector
process fed by a publisher written from PROTOCOL.md (publisher_from_spec.py)
writes the data; the viewer renders it under Xvfb (--screenshot) and this
test reads the pixels of the PNG.

What it proves: the line of a known series passes through the pixels the
documented mappings give (plot rect and scales from --print-layout); a
one-point spike is drawn at every zoom; the M4 drawing equals drawing every
point (--all-points) pixel for pixel; NaN and Inf markers and event lines
appear; bad input (missing file, not a store, truncated or corrupt store,
unreachable collector, empty run, NaN-only series, unknown run) gives a
clear message and a non-zero exit, never a crash.

usage: /usr/bin/python3 test_viewer.py TRAINSCOPE TRAINSCOPE_VIEWER [case ...]
"""
import math
import os
import shutil
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from publisher_from_spec import SpecPublisher  # noqa: E402
from tslib import Collector, check, finish, free_port  # noqa: E402

TRAINSCOPE, VIEWER = sys.argv[1], sys.argv[2]
T0 = 1_700_000_000_000_000_000
# The viewer's run palette (view.c): run 0, run 1.
ALPHA, BETA = (0x1F, 0x77, 0xB4), (0xFF, 0x7F, 0x0E)
EVENT_GREY = (0x9A, 0x9A, 0x9A)
SPIKE_STEP, SPIKE_N = 123_457, 200_000
TMP = tempfile.mkdtemp(prefix="ts-viewer-")


# ---- PNG -------------------------------------------------------------------

def read_png(path):
    """Decode an 8-bit RGB(A) PNG: (width, height, rows of bytes per pixel)."""
    with open(path, "rb") as f:
        d = f.read()
    assert d[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    i, idat = 8, []
    while i < len(d):
        n, = struct.unpack(">I", d[i:i + 4])
        kind = d[i + 4:i + 8]
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", d[i + 8:i + 21])
        elif kind == b"IDAT":
            idat.append(d[i + 8:i + 8 + n])
        i += 12 + n
    assert depth == 8 and ctype in (2, 6) and interlace == 0, (depth, ctype, interlace)
    bpp = 4 if ctype == 6 else 3
    raw = zlib.decompress(b"".join(idat))
    stride = w * bpp
    rows, prev = [], bytearray(stride)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)]
        cur = bytearray(line)
        if f == 1:
            for x in range(bpp, stride):
                cur[x] = (cur[x] + cur[x - bpp]) & 255
        elif f == 2:
            for x in range(stride):
                cur[x] = (cur[x] + prev[x]) & 255
        elif f == 3:
            for x in range(stride):
                a = cur[x - bpp] if x >= bpp else 0
                cur[x] = (cur[x] + ((a + prev[x]) >> 1)) & 255
        elif f == 4:
            for x in range(stride):
                a = cur[x - bpp] if x >= bpp else 0
                b, c = prev[x], (prev[x - bpp] if x >= bpp else 0)
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                cur[x] = (cur[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(cur))
        prev = cur
    return w, h, bpp, rows


class Image:
    def __init__(self, path):
        self.w, self.h, self.bpp, self.rows = read_png(path)

    def rgb(self, x, y):
        o = x * self.bpp
        return tuple(self.rows[y][o:o + 3])

    def same_rows(self, other, y0, y1):
        return all(self.rgb(x, y) == other.rgb(x, y) for y in range(y0, y1) for x in range(self.w))

    def same_pixels(self, other):
        if (self.w, self.h) != (other.w, other.h):
            return False
        if self.bpp == other.bpp:
            return self.rows == other.rows
        return all(self.rgb(x, y) == other.rgb(x, y) for y in range(self.h) for x in range(self.w))


# ---- the viewer --------------------------------------------------------------

class Display:
    """An Xvfb server on a free display number (or SDL's offscreen driver)."""

    def __init__(self):
        self.proc, self.env = None, dict(os.environ)
        xvfb = shutil.which("Xvfb")
        if xvfb:
            r, w = os.pipe()
            self.proc = subprocess.Popen([xvfb, "-displayfd", str(w), "-screen", "0", "1920x1200x24",
                                          "-nolisten", "tcp"], pass_fds=(w,),
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            os.close(w)
            num = b""
            with os.fdopen(r, "rb") as f:
                while not num.endswith(b"\n"):
                    c = f.read(1)
                    if not c:
                        break
                    num += c
            if num.strip():
                self.env["DISPLAY"] = ":" + num.decode().strip()
                self.env.pop("SDL_VIDEODRIVER", None)
                print(f"Xvfb on {self.env['DISPLAY']}", flush=True)
            else:
                self.proc.kill()
                self.proc.wait()
                self.proc = None
        if "DISPLAY" not in self.env or not self.proc:
            print("no usable Xvfb: using SDL_VIDEODRIVER=offscreen", flush=True)
            self.env.pop("DISPLAY", None)
            self.env["SDL_VIDEODRIVER"] = "offscreen"

        self.keep_gl_loaded()

    def keep_gl_loaded(self):
        """Under ASan: SDL's X11 window loads the GL driver with dlopen and
        unloads it at SDL_Quit, before LeakSanitizer runs; what the driver
        still holds then shows as leaks in an <unknown module> that no
        suppression can name. Preloading the driver (after the ASan runtime,
        which must come first) keeps it mapped, so LSan sees its memory as
        reachable. Our own code is checked as before."""
        if "DISPLAY" not in self.env:
            return
        ldd = subprocess.run(["ldd", VIEWER], capture_output=True, text=True).stdout
        asan = [l.split("=>")[1].split()[0] for l in ldd.splitlines() if "libasan" in l and "=>" in l]
        if not asan:
            return
        import glob
        gl = glob.glob("/usr/lib/*/libGLX_mesa.so.0") + glob.glob("/usr/lib/*/dri/swrast_dri.so")
        self.env["LD_PRELOAD"] = " ".join(asan[:1] + gl)
        print(f"ASan build: LD_PRELOAD={self.env['LD_PRELOAD']}", flush=True)

    def close(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait()


DISPLAY = None


def viewer(*args, timeout=120):
    """Run the viewer; returns (rc, stdout, stderr)."""
    p = subprocess.run([VIEWER, *args], capture_output=True, timeout=timeout, env=DISPLAY.env)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


class Panel:
    def __init__(self, fields):
        # panel NAME plot X Y W H y LO HI log L x FROM TO
        self.name = fields[1]
        self.x, self.y, self.w, self.h = map(int, fields[3:7])
        self.lo, self.hi = float(fields[8]), float(fields[9])
        self.log = int(fields[11])
        self.x_from, self.x_to = int(fields[13]), int(fields[14])

    def col(self, x):
        """model.h's column mapping."""
        return (x - self.x_from) * self.w // (self.x_to - self.x_from + 1)

    def px(self, x):
        return self.x + self.col(x)

    def row(self, v):
        """plot.c's tvp_row, operation for operation (IEEE doubles)."""
        if self.log:
            v = math.log10(v) if v > 0 else -math.inf
        span = self.hi - self.lo
        t = (v - self.lo) / (span if span > 0 else 1) * (self.h - 1)
        lim = float(1 << 24)
        if not t < lim:
            t = lim
        if not t > -lim:
            t = -lim
        return self.y + (self.h - 1) - math.floor(t + 0.5)


def shot(store, name, *args):
    """Screenshot; returns (rc, {panel name: Panel}, Image or None, stderr)."""
    out = os.path.join(TMP, name + ".png")
    if os.path.exists(out):
        os.remove(out)
    rc, so, se = viewer(store, "--screenshot", out, "--size", "900x640", "--print-layout", *args)
    panels = {}
    for line in so.splitlines():
        f = line.split()
        if f and f[0] == "panel":
            panels[f[1]] = Panel(f)
    img = Image(out) if os.path.exists(out) else None
    return rc, panels, img, se


# ---- data ------------------------------------------------------------------------

def publish(col, run, series, events=(), batch=5000):
    """series: {metric: [(step, value)]}; points go out in step order."""
    p = SpecPublisher(col.ingest, run, batch_size=batch)
    for name, pts in series.items():
        for step, value in pts:
            p.log(name, step, value, T0 + step * 1_000_000)
    for step, kind, text in events:
        p.event(step, kind, text, T0 + step * 1_000_000)
    p.bye("finished")
    ok = p.flush(60)
    p.close()
    return ok


def make_main_store():
    col = Collector(TRAINSCOPE, tmp=os.path.join(TMP, "main"), extra=["--quiet"])
    os.makedirs(col.tmp, exist_ok=True)
    col.start()
    nanv = []
    for s in range(1000):
        v = 1.0
        if s in (500, 700):
            v = math.nan
        elif s == 300:
            v = math.inf
        nanv.append((s, v))
    spike = [(s, 1.0 if s == SPIKE_STEP else 0.0) for s in range(SPIKE_N)]
    ok = publish(col, "alpha", {
        "train/line": [(s, 0.5 * s) for s in range(1000)],
        "train/spike": spike,
        "grad_norm/nan": nanv,
    }, events=[(600, "note", "lr drop")])
    ok = publish(col, "beta", {"train/line": [(s, 0.25 * s) for s in range(1000)]}) and ok
    check(ok, "main store: every point acknowledged by the collector")
    check(col.stop() == 0, "main store: collector exits 0")
    return col.store


def make_odd_store():
    col = Collector(TRAINSCOPE, tmp=os.path.join(TMP, "odd"), extra=["--quiet"])
    os.makedirs(col.tmp, exist_ok=True)
    col.start()
    ok = publish(col, "empty", {})
    ok = publish(col, "nanonly", {"train/x": [(s, math.nan) for s in range(10)]}) and ok
    check(ok, "odd store: acknowledged")
    col.stop()
    return col.store


STORE = None


# ---- cases -----------------------------------------------------------------------

def known_line():
    rc, panels, img, err = shot(STORE, "line", "--metric", "train/line")
    if not check(rc == 0 and img and "train/line" in panels, f"line: rendered ({rc}, {err.strip()})"):
        return
    p = panels["train/line"]
    check(list(panels) == ["train/line"], "line: --metric train/line shows that panel only")
    miss = [s for s in range(60, 1000, 3) if img.rgb(p.px(s), p.row(0.5 * s)) != ALPHA]
    check(not miss, f"line: run alpha's v=0.5*step passes through its pixel at every step past 60 (beta is drawn over it near 0) ({len(miss)} missed)")
    miss = [s for s in range(100, 1000, 3) if img.rgb(p.px(s), p.row(0.25 * s)) != BETA]
    check(not miss, f"line: run beta's v=0.25*step in its own colour at every step ({len(miss)} missed)")
    off = [s for s in range(100, 900, 3) if img.rgb(p.px(s), p.row(0.5 * s) - 12) == ALPHA]
    check(not off, f"line: 12 rows above alpha's line is not alpha ({len(off)} wrong)")


def spike_every_zoom():
    ranges = [None, (100_000, 150_000), (123_000, 124_000), (123_450, 123_470),
              (SPIKE_STEP, 190_000), (0, SPIKE_STEP), (123_457 - 700_000, 123_457 + 700_000)]
    for r in ranges:
        args = ["--metric", "train/spike"] + (["--x-range", f"{r[0]}:{r[1]}"] if r else [])
        tag = f"{r[0]}:{r[1]}" if r else "all"
        rc, panels, img, err = shot(STORE, "spike", *args)
        if not check(rc == 0 and img and "train/spike" in panels, f"spike {tag}: rendered ({err.strip()})"):
            continue
        p = panels["train/spike"]
        x = p.px(SPIKE_STEP)
        top, base = p.row(1.0), p.row(0.0)
        if p.col(SPIKE_STEP - 1) == p.col(SPIKE_STEP) or p.col(SPIKE_STEP + 1) == p.col(SPIKE_STEP):
            column = [img.rgb(x, y) == ALPHA for y in range(top, base + 1)]
            check(all(column), f"spike {tag}: column {x - p.x} of {p.w} is alpha from row {top} (v=1) to {base} (v=0)")
        else:   # zoomed in: a peak joined to its neighbours' zeros
            check(img.rgb(x, top) == ALPHA and img.rgb(p.px(SPIKE_STEP - 1), base) == ALPHA
                  and img.rgb(p.px(SPIKE_STEP + 1), base) == ALPHA,
                  f"spike {tag}: the peak (column {x - p.x}, row {top}) and its neighbours at 0 are alpha")
        check(img.rgb(x, top - 3) != ALPHA, f"spike {tag}: nothing above the spike's top")
        rc2, _, img2, _ = shot(STORE, "spike-all", *args, "--all-points")
        check(rc2 == 0 and img2 and img.same_pixels(img2),
              f"spike {tag}: M4 drawing == every point drawn, pixel for pixel")


def decimated_equals_undecimated():
    for args in ([], ["--x-range", "250:777"], ["--x-range", "690:705"], ["--log-y"],
                 ["--x", "wall"], ["--x", "since", "--metric", "grad_norm/*"]):
        tag = " ".join(args) or "default"
        rc, _, a, _ = shot(STORE, "m4", *args)
        rc2, _, b, _ = shot(STORE, "allpts", *args, "--all-points")
        check(rc == 0 and rc2 == 0 and a and b and a.same_pixels(b),
              f"exact [{tag}]: every panel identical with --all-points")


def nan_inf_event_markers():
    rc, panels, img, err = shot(STORE, "nan", "--metric", "grad_norm/*")
    if not check(rc == 0 and img and "grad_norm/nan" in panels, f"markers: rendered ({err.strip()})"):
        return
    p = panels["grad_norm/nan"]
    bottom = p.y + p.h - 1
    for s in (500, 700):
        check(img.rgb(p.px(s), bottom) == ALPHA and img.rgb(p.px(s) + 2, bottom) == ALPHA,
              f"markers: NaN at step {s} has a marker on the bottom edge")
    check(img.rgb(p.px(100), bottom) != ALPHA, "markers: no NaN marker where there is no NaN")
    check(img.rgb(p.px(300) - 3, p.y) == ALPHA, "markers: +inf at step 300 has a marker on the top edge")
    check(img.rgb(p.px(900) - 3, p.y) != ALPHA, "markers: no inf marker where there is no inf")
    ev = sum(img.rgb(p.px(600), y) == EVENT_GREY for y in range(p.y, p.y + p.h))
    check(ev > p.h // 3, f"markers: the event at step 600 is a vertical line ({ev} of {p.h} rows)")
    check(img.rgb(p.px(450), p.row(1.0)) == ALPHA, "markers: the series line itself is drawn at v=1")


FIND_COLOUR = {"critical": (0xCC, 0x00, 0x33), "warning": (0xE6, 0x95, 0x00), "info": (0x2B, 0x7B, 0xD6)}


def finding_markers():
    """A loss with a spike at step 300 and a NaN at step 850, published
    through a real collector with its online detectors: the viewer draws a
    triangle in the finding's severity colour at the top of the panel at
    exactly those columns and nowhere else; n centres the next finding."""
    import random
    col = Collector(TRAINSCOPE, tmp=os.path.join(TMP, "findings"), extra=["--quiet"])
    os.makedirs(col.tmp, exist_ok=True)
    col.start()
    rng = random.Random(1)
    loss = [2.0 + 3.0 * math.exp(-s / 250.0) + 0.03 * rng.gauss(0, 1) for s in range(1000)]
    loss[300] += 2.0
    loss[850] = math.nan
    ok = publish(col, "found", {"train/loss": list(enumerate(loss))})
    check(ok and col.stop() == 0, "findings: every point acknowledged, collector exits 0")
    db = sqlite3.connect(f"file:{col.store}?mode=ro", uri=True)
    rows = db.execute("SELECT kind, step_first, severity FROM findings ORDER BY step_first").fetchall()
    db.close()
    if not check([(k, st) for k, st, _ in rows] == [("spike", 300), ("nan", 850)],
                 f"findings: the collector stored the spike and the NaN ({rows})"):
        return
    rc, panels, img, err = shot(col.store, "findings", "--metric", "train/loss")
    p = panels.get("train/loss")
    if not check(rc == 0 and img and p, f"findings: rendered ({err.strip()})"):
        return
    for kind, step, sev in rows:
        c = FIND_COLOUR[sev]
        top = p.y + 4   # under the rows of an Inf marker
        tri = [img.rgb(p.px(step), top + dy) == c for dy in range(6)] + \
              [img.rgb(p.px(step) + dx, top) == c for dx in (-4, 4)]
        check(all(tri), f"findings: a {sev} triangle at the top of the panel at step {step} ({kind})")
    marker = set(FIND_COLOUR.values())
    stray = [x for x in range(p.x, p.x + p.w) for y in range(p.y, p.y + 12)
             if img.rgb(x, y) in marker and min(abs(x - p.px(st)) for _, st, _ in rows) > 5]
    check(not stray, f"findings: no marker anywhere else ({len(stray)} stray pixels)")
    rc, panels, img, err = shot(col.store, "findings-n", "--metric", "train/loss", "--keys", "n")
    q = panels.get("train/loss")
    check(rc == 0 and q and abs((q.x_from + q.x_to) / 2 - 850) <= 1 and q.x_to - q.x_from == p.x_to - p.x_from,
          f"findings: n centres the next finding after the middle (step 850): x {q and (q.x_from, q.x_to)}")
    if q:
        check(img.rgb(q.px(850), q.y + 6) == FIND_COLOUR[rows[1][2]], "findings: its marker is drawn there")
    rc, panels, _, err = shot(col.store, "findings-nn", "--metric", "train/loss", "--keys", "nn")
    q = panels.get("train/loss")
    check(rc == 0 and q and abs((q.x_from + q.x_to) / 2 - 300) <= 1,
          f"findings: n again wraps around to the first finding (step 300): x {q and (q.x_from, q.x_to)}")


def rank_band():
    """Two ranks of one run at constant 1.0 and 3.0: by default a faint band
    of the run colour fills the rows between them and the mean line is at
    2.0; b switches to each rank's own line (no band, nothing at 2.0)."""
    col = Collector(TRAINSCOPE, tmp=os.path.join(TMP, "ranks"), extra=["--quiet", "--detect", "off"])
    os.makedirs(col.tmp, exist_ok=True)
    col.start()
    ok = True
    for rank, value in ((0, 1.0), (1, 3.0)):
        pub = SpecPublisher(col.ingest, "ddp", rank=rank, world_size=2, batch_size=5000)
        for step in range(1000):
            pub.log("train/loss", step, value, T0 + step * 1_000_000)
        pub.bye("finished")
        ok = pub.flush(60) and ok
        pub.close()
    check(ok and col.stop() == 0, "ranks: both ranks acknowledged, collector exits 0")
    rc, panels, img, err = shot(col.store, "ranks", "--metric", "train/loss")
    p = panels.get("train/loss")
    if not check(rc == 0 and img and p, f"ranks: rendered ({err.strip()})"):
        return
    x, r1, r2, r3 = p.px(500), p.row(1.0), p.row(2.0), p.row(3.0)
    check(r3 + 8 < r2 < r1 - 8, f"ranks: rows of 3, 2, 1 apart ({r3}, {r2}, {r1})")
    inside = [y for y in range(r3 + 1, r1) if abs(y - r2) > 1]
    band = [img.rgb(x, y) for y in inside]
    tint = band[0]
    check(tint not in ((255, 255, 255), (0xEB, 0xEB, 0xEB), ALPHA) and tint[2] > tint[0],
          f"ranks: the band is a faint blue between the rows of 1 and 3 ({tint})")
    check(sum(c == tint for c in band) >= 0.8 * len(band),
          f"ranks: the band fills the rows between 1 and 3 ({sum(c == tint for c in band)} of {len(band)})")
    check(img.rgb(x, r2) == ALPHA, f"ranks: the mean line is at 2.0 in the run colour ({img.rgb(x, r2)})")
    above = [img.rgb(x, y) for y in range(p.y + 1, r3 - 1)] + [img.rgb(x, y) for y in range(r1 + 2, p.y + p.h - 1)]
    check(tint not in above and ALPHA not in above, "ranks: nothing of the run outside the band")
    rc, panels, img, err = shot(col.store, "ranks-b", "--metric", "train/loss", "--keys", "b")
    q = panels.get("train/loss")
    if not check(rc == 0 and img and q, f"ranks b: rendered ({err.strip()})"):
        return
    x, r1, r2, r3 = q.px(500), q.row(1.0), q.row(2.0), q.row(3.0)
    check(img.rgb(x, r1) == ALPHA and img.rgb(x, r3) not in ((255, 255, 255), ALPHA) and img.rgb(x, r2) != ALPHA,
          f"ranks b: each rank its own line at 1 and 3, no mean line ({img.rgb(x, r1)}, {img.rgb(x, r3)}, {img.rgb(x, r2)})")
    check(tint not in [img.rgb(x, y) for y in range(r3 + 1, r1)], "ranks b: no band")


def bad_inputs():
    missing = os.path.join(TMP, "missing.db")
    rc, _, err = viewer(missing, "--screenshot", os.path.join(TMP, "x.png"))
    check(rc == 1 and "missing.db" in err and not os.path.exists(missing),
          f"bad: a missing store is an error naming it, and is not created: {err.strip()}")
    junk = os.path.join(TMP, "junk.db")
    with open(junk, "w") as f:
        f.write("loss,step\n0.5,1\n" * 100)
    rc, _, err = viewer(junk, "--screenshot", os.path.join(TMP, "x.png"))
    check(rc == 1 and "junk.db" in err, f"bad: a text file is not a store: {err.strip()}")
    trunc = os.path.join(TMP, "truncated.db")
    with open(STORE, "rb") as f:
        data = f.read()
    with open(trunc, "wb") as f:
        f.write(data[:len(data) // 3])
    rc, _, err = viewer(trunc, "--screenshot", os.path.join(TMP, "x.png"))
    check(rc == 1 and err.strip() != "", f"bad: a truncated store: exit 1 with a message: {err.strip()}")
    corrupt = os.path.join(TMP, "corrupt.db")
    shutil.copy(STORE, corrupt)
    db = sqlite3.connect(corrupt)
    db.execute("UPDATE chunks SET data = zeroblob(length(data)) WHERE series_id IN "
               "(SELECT id FROM series WHERE name = 'train/line')")
    db.commit()
    db.close()
    rc, _, err = viewer(corrupt, "--screenshot", os.path.join(TMP, "x.png"), "--metric", "train/line")
    check(rc == 1 and err.strip() != "", f"bad: corrupt chunks: exit 1 with a message: {err.strip()}")
    port = free_port()
    t = time.time()
    rc, _, err = viewer(f"tcp://127.0.0.1:{port}", "--screenshot", os.path.join(TMP, "x.png"), timeout=60)
    check(rc == 1 and str(port) in err and time.time() - t < 30,
          f"bad: an unreachable collector: exit 1 within 30 s naming it: {err.strip()}")
    rc, _, err = viewer(STORE, "--size", "12x", "--screenshot", os.path.join(TMP, "x.png"))
    check(rc == 2 and "--size" in err, "bad: a malformed option is a usage error")


def wrong_protocol():
    """A peer on the API port that answers `info` with protocol 99."""
    import threading
    import zmq
    port = free_port()
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(f"tcp://127.0.0.1:{port}")
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            if sock.poll(50):
                frames = sock.recv_multipart()
                reply = b'{"ok": true, "protocol": 99, "time_unit_ns": 1}'
                sock.send_multipart(frames[:-1] + [reply])

    th = threading.Thread(target=serve)
    th.start()
    try:
        t = time.time()
        rc, _, err = viewer(f"tcp://127.0.0.1:{port}", "--screenshot", os.path.join(TMP, "x.png"), timeout=60)
        check(rc == 1 and "protocol" in err and "99" in err and time.time() - t < 30,
              f"bad: a peer speaking protocol 99: exit 1, says which versions: {err.strip()}")
    finally:
        stop.set()
        th.join()
        sock.close()


def attach_equals_file():
    """The same data through a collector's API (tcp://) draws the same plots."""
    tmp = os.path.join(TMP, "attach")
    os.makedirs(tmp, exist_ok=True)
    store = os.path.join(tmp, "runs.db")
    shutil.copy(STORE, store)
    col = Collector(TRAINSCOPE, tmp=tmp, store=store, extra=["--quiet"]).start()
    try:
        rc, pf, a, err = shot(STORE, "file", "--metric", "train/*")
        rc2, pn, b, err2 = shot(col.api, "net", "--metric", "train/*")
        check(rc == 0 and rc2 == 0, f"attach: both render ({err.strip()} {err2.strip()})")
        if a and b and pf and pn:
            bottom = min(max(p.y + p.h for p in pf.values()) + 20, a.h - 30)  # not the status line
            check([vars(p) for p in pf.values()] == [vars(p) for p in pn.values()],
                  "attach: same panels and scales from the API as from the file")
            check(a.same_rows(b, 0, bottom), "attach: the plots from tcp:// equal those from the file, pixel for pixel")
    finally:
        check(col.stop() == 0, "attach: collector exits 0")


def hover_crosshair():
    """--hover puts the mouse on a pixel: a crosshair at that x in every
    panel (x is linked) and a box with each run's value over the plots."""
    rc, panels, img, err = shot(STORE, "hover0")
    if not check(rc == 0 and "train/line" in panels, f"hover: layout ({err.strip()})"):
        return
    p = panels["train/line"]
    hx, hy = p.px(400), p.y + p.h // 2
    rc, panels, img, err = shot(STORE, "hover", "--hover", f"{hx},{hy}")
    if not check(rc == 0 and img, f"hover: rendered ({err.strip()})"):
        return
    for name, q in panels.items():
        col = q.x + (hx - p.x)
        dark = sum(img.rgb(col, y) == (0x50, 0x50, 0x50) for y in range(q.y, q.y + q.h))
        check(dark > q.h // 4, f"hover: crosshair in {name} at the same column ({dark} of {q.h} rows)")
    edge = all(img.rgb(hx + 12, y) == (0xB0, 0xB0, 0xB0) for y in range(hy + 12, hy + 40))
    check(edge, "hover: a value box with its frame 12 px right of and below the cursor")


def resumed_timelines():
    """A run resumed from a checkpoint: the newest timeline by default, the
    resume marked, the superseded points only with --all-timelines."""
    col = Collector(TRAINSCOPE, tmp=os.path.join(TMP, "resume"), extra=["--quiet"])
    os.makedirs(col.tmp, exist_ok=True)
    col.start()
    p = SpecPublisher(col.ingest, "resumed")
    for s in range(600):
        p.log("train/loss", s, 1.0, T0 + s * 1_000_000)
    for s in range(300, 900):   # back to step 300: a new timeline
        p.log("train/loss", s, 2.0, T0 + (s + 600) * 1_000_000)
    p.bye("finished")
    ok = p.flush(60)
    p.close()
    col.stop()
    check(ok, "resume: acknowledged")
    rc, panels, img, err = shot(col.store, "resume")
    if not check(rc == 0 and "train/loss" in panels, f"resume: rendered ({err.strip()})"):
        return
    q = panels["train/loss"]
    check(img.rgb(q.px(450), q.row(2.0)) == ALPHA and img.rgb(q.px(450), q.row(1.0)) != ALPHA,
          "resume: step 450 shows the newest timeline (2.0), not the superseded 1.0")
    orange = sum(img.rgb(q.px(300), y) == (0xE0, 0x80, 0x00) for y in range(q.y, q.y + q.h))
    check(orange > q.h // 3, f"resume: the resume at step 300 is marked ({orange} of {q.h} rows)")
    rc, panels, img2, err = shot(col.store, "resume-all", "--all-timelines")
    q = panels.get("train/loss", q)
    check(rc == 0 and img2.rgb(q.px(450), q.row(1.0)) == ALPHA and img2.rgb(q.px(450), q.row(2.0)) == ALPHA,
          "resume: --all-timelines draws the superseded points too")
    rc3, _, img3, _ = shot(col.store, "resume-all-pts", "--all-timelines", "--all-points")
    check(rc3 == 0 and img3 and img2.same_pixels(img3), "resume: with all timelines, M4 == every point")


def live_bench():
    """--bench-frames against a collector while a trainer publishes: the
    live path (LIVE feed, growing x range on the aligned grid, pan and
    zoom) runs frame after frame and reports its timings."""
    import threading
    col = Collector(TRAINSCOPE, tmp=os.path.join(TMP, "live"), extra=["--quiet"])
    os.makedirs(col.tmp, exist_ok=True)
    col.start()
    stop = threading.Event()

    def trainer():
        p = SpecPublisher(col.ingest, "live", batch_size=50)
        s = 0
        while not stop.is_set():
            for _ in range(50):
                p.log("train/loss", s, 1.0 / (1 + s / 100), time.time_ns())
                s += 1
            p._flush_batch()
            p._pump(0.01)
        p.bye("finished")
        p.flush(30)
        p.close()

    th = threading.Thread(target=trainer)
    th.start()
    try:
        time.sleep(1)
        rc, out, err = viewer(col.api, "--bench-frames", "150", "--size", "800x500", timeout=300)
        check(rc == 0 and "p99" in out and "VmRSS" in out,
              f"live: 150 frames while points arrive ({rc}): {out.strip().splitlines()[-1] if out.strip() else err.strip()}")
    finally:
        stop.set()
        th.join()
        col.stop()


def keys():
    """The window's key handling, driven by --keys before a screenshot."""
    rc, base, img0, err = shot(STORE, "keys0")
    check(rc == 0 and not any(p.log for p in base.values()), f"keys: baseline ({err.strip()})")
    rc, panels, _, err = shot(STORE, "keys-l", "--keys", "l")
    check(rc == 0 and panels and all(p.log for p in panels.values()), "keys: l makes every y axis logarithmic")
    rc, panels, _, err = shot(STORE, "keys-filter", "--keys", "/spi.e\n")
    check(rc == 0 and list(panels) == ["train/spike"], f"keys: /spi.e Enter filters the panels by regex ({list(panels)})")
    rc, panels, _, err = shot(STORE, "keys-badre", "--keys", "/[\n")
    check(rc == 0 and sorted(panels) == sorted(base), "keys: a regex that does not compile filters nothing")
    rc, panels, _, err = shot(STORE, "keys-x", "--keys", "x")
    check(rc == 0 and panels and all(p.x_from > 10 ** 18 for p in panels.values()),
          "keys: x switches the x axis to wall time (ns)")
    rc, panels, img, err = shot(STORE, "keys-1", "--keys", "1", "--metric", "train/line")
    p = panels.get("train/line")
    check(rc == 0 and p and img.rgb(p.px(500), p.row(250.0)) != ALPHA and img.rgb(p.px(500), p.row(125.0)) == BETA,
          "keys: 1 hides the first run of the legend (alpha), beta stays")
    rc, panels, img, err = shot(STORE, "keys-h", "--keys", "h")
    band = range(img.h // 2 - 60, img.h // 2 + 60)
    changed = sum(img0.rgb(x, y) != img.rgb(x, y) for y in band for x in range(img.w // 4, 3 * img.w // 4))
    check(rc == 0 and changed > 2000, f"keys: h shows the help overlay over the middle ({changed} px changed)")


def interactive_smoke():
    """The window's event loop: runs (live, and replaying at 1000x) until
    SIGTERM, which SDL turns into a quit: exit 0, no sanitizer report."""
    import signal
    for extra in ([], ["--replay", "1000"]):
        p = subprocess.Popen([VIEWER, STORE, "--size", "800x600", *extra], env=DISPLAY.env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(3)
        alive = p.poll() is None
        p.send_signal(signal.SIGTERM)
        try:
            out, err = p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        tag = " ".join(extra) or "live"
        check(alive and p.returncode == 0,
              f"window [{tag}]: ran 3 s, quit on SIGTERM with 0 ({p.returncode}, {err.decode(errors='replace').strip()[:300]})")


def empty_and_nan_only():
    odd = make_odd_store()
    rc, panels, img, err = shot(odd, "empty", "--run", "empty")
    check(rc == 1 and "nothing to plot" in err, f"odd: an empty run: exit 1, says so: {err.strip()}")
    rc, panels, img, err = shot(odd, "nanonly", "--run", "nanonly")
    check(rc == 1 and "only NaN" in err, f"odd: a NaN-only series: exit 1, says so: {err.strip()}")
    if img and "train/x" in panels:
        p = panels["train/x"]
        check(img.rgb(p.px(5), p.y + p.h - 1) == ALPHA, "odd: the NaN-only series shows NaN markers")
    rc, panels, img, err = shot(odd, "nosuch", "--run", "nosuch")
    check(rc == 1 and "nosuch" in err, f"odd: an unknown run is named in the error: {err.strip()}")


CASES = {
    "line": known_line,
    "spike": spike_every_zoom,
    "exact": decimated_equals_undecimated,
    "markers": nan_inf_event_markers,
    "findings": finding_markers,
    "ranks": rank_band,
    "bad": bad_inputs,
    "protocol": wrong_protocol,
    "attach": attach_equals_file,
    "hover": hover_crosshair,
    "resume": resumed_timelines,
    "live": live_bench,
    "keys": keys,
    "window": interactive_smoke,
    "odd": empty_and_nan_only,
}

if __name__ == "__main__":
    DISPLAY = Display()
    try:
        STORE = make_main_store()
        for name in sys.argv[3:] or CASES:
            print(f"== {name}", flush=True)
            try:
                CASES[name]()
            except Exception as e:  # a broken binary must fail the test, not hang it
                check(False, f"{name}: raised {type(e).__name__}: {e}")
    finally:
        DISPLAY.close()
    shutil.rmtree(TMP, ignore_errors=True)
    finish()
