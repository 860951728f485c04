"""test_viewer_attach.py - the viewer window on a collector endpoint draws what
it draws on the collector's store file: a real collector, a real publisher
(pub_load), and trainscope-viewer rendering a real PNG (--screenshot, SDL's
offscreen driver) once from tcp://... and once from the store; the plot area
must be identical pixel for pixel (the status line differs: it names the
source). A collector speaking no protocol at all must give a clear error and
exit status, not a hang.

Usage: /usr/bin/python3 test_viewer_attach.py TRAINSCOPE PUB_LOAD VIEWER
"""
import os
import socket
import struct
import subprocess
import sys
import tempfile
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tslib import Collector, check, finish  # noqa: E402

STATUS_ROWS = 40   # the status line at the bottom names the source


def read_png(path):
    """(width, height, rows of bytes): 8-bit RGB or RGBA, non-interlaced."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, w = 8, [], 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and color in (2, 6) and interlace == 0, "unsupported PNG"
            bpp = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + n
    raw = zlib.decompress(b"".join(idat))
    stride = w * bpp
    rows, prev = [], bytearray(stride)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return w, h, rows


def viewer_env():
    """SDL's offscreen driver: no display needed. Under ASan, leaks are not
    checked in the viewer process (SDL, fontconfig and the GPU stack keep
    memory to exit; test_viewer_attach.c checks the model's own)."""
    return dict(os.environ, SDL_VIDEODRIVER="offscreen",
                ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0")


def screenshot(viewer, source, out, tmp):
    env = viewer_env()
    p = subprocess.run([viewer, source, "--screenshot", out, "--size", "640x400"],
                       capture_output=True, timeout=120, env=env, cwd=tmp)
    return p.returncode, p.stderr.decode(errors="replace")


def main():
    trainscope, pub_load, viewer = (os.path.abspath(a) for a in sys.argv[1:4])
    tmp = tempfile.mkdtemp(prefix="ts-viewer-attach-")
    # No detectors: the query API has no findings op yet, so a network source
    # draws no finding markers while the store's findings show in the file's.
    col = Collector(trainscope, tmp=tmp, extra=["--detect", "off"]).start()
    try:
        for run, steps in (("alpha", 3000), ("beta", 1200)):
            p = subprocess.run([pub_load, "--endpoint", col.ingest, "--run", run,
                                "--steps", str(steps), "--metrics", "2"],
                               capture_output=True, timeout=120)
            check(p.returncode == 0, f"publisher {run} ran ({p.stderr.decode(errors='replace').strip()})")
        net_png, file_png = os.path.join(tmp, "net.png"), os.path.join(tmp, "file.png")
        rc, err = screenshot(viewer, col.api, net_png, tmp)
        check(rc == 0, f"screenshot from {col.api} (stderr: {err.strip()})")
        rc, err = screenshot(viewer, col.store, file_png, tmp)
        check(rc == 0, f"screenshot from the store (stderr: {err.strip()})")
        if os.path.exists(net_png) and os.path.exists(file_png):
            wn, hn, net = read_png(net_png)
            wf, hf, fil = read_png(file_png)
            check((wn, hn) == (wf, hf) == (640, 400), f"both 640x400 ({wn}x{hn}, {wf}x{hf})")
            same = net[:hn - STATUS_ROWS] == fil[:hf - STATUS_ROWS]
            check(same, "the plots drawn from the collector equal those drawn from its store")
            bpp = len(net[0]) // wn
            background = net[0][0:3]
            drawn = sum(1 for row in net[:hn - STATUS_ROWS] for x in range(0, len(row), bpp)
                        if row[x:x + 3] != background)
            check(drawn > 1000, f"the plots are not empty ({drawn} pixels drawn)")
    finally:
        col.stop()

    # A peer that accepts the connection and never speaks ZMTP: the viewer
    # gives up with a sentence naming the endpoint, within its timeout.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(4)
    port = s.getsockname()[1]
    try:
        env = viewer_env()
        p = subprocess.run([viewer, f"tcp://127.0.0.1:{port}", "--screenshot", os.path.join(tmp, "x.png")],
                           capture_output=True, timeout=120, env=env)
        err = p.stderr.decode(errors="replace")
        check(p.returncode != 0, f"no collector: exit status {p.returncode}")
        check(f"127.0.0.1:{port}" in err, f"no collector: the message names the endpoint ({err.strip()})")
    finally:
        s.close()
    finish()


if __name__ == "__main__":
    main()
