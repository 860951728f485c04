"""test_viewer_window.py - what the viewer's window shows on the X server.

test_viewer.py reads the PNG of --screenshot, which never reaches a window.
This test runs the viewer interactively under Xvfb, reads its window back
from the X server (XGetImage through libX11, with ctypes) and compares it
with a --screenshot of the same store at the same size: the present path
(the window surface in MIT-SHM memory, app.c) must put exactly the frame on
screen. Then it resizes the window (XResizeWindow, as a window manager
would) and expects the frame drawn for the new size, pixel for pixel.

usage: /usr/bin/python3 test_viewer_window.py TRAINSCOPE TRAINSCOPE_VIEWER
"""
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_viewer as tv  # noqa: E402  (takes TRAINSCOPE, VIEWER from argv)
from tslib import check, finish  # noqa: E402


class XImage(ctypes.Structure):
    """The head of Xlib's XImage (X11/Xlib.h), up to the fields read."""
    _fields_ = [("width", ctypes.c_int), ("height", ctypes.c_int), ("xoffset", ctypes.c_int),
                ("format", ctypes.c_int), ("data", ctypes.POINTER(ctypes.c_ubyte)),
                ("byte_order", ctypes.c_int), ("bitmap_unit", ctypes.c_int),
                ("bitmap_bit_order", ctypes.c_int), ("bitmap_pad", ctypes.c_int),
                ("depth", ctypes.c_int), ("bytes_per_line", ctypes.c_int),
                ("bits_per_pixel", ctypes.c_int), ("red_mask", ctypes.c_ulong),
                ("green_mask", ctypes.c_ulong), ("blue_mask", ctypes.c_ulong)]


class X:
    """The few Xlib calls the test needs, on its own connection."""

    def __init__(self, display):
        name = ctypes.util.find_library("X11")
        if not name:
            raise RuntimeError("libX11 not found")
        x = self.x = ctypes.CDLL(name)
        x.XOpenDisplay.restype = ctypes.c_void_p
        x.XOpenDisplay.argtypes = [ctypes.c_char_p]
        x.XDefaultRootWindow.restype = ctypes.c_ulong
        x.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
        x.XQueryTree.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.POINTER(ctypes.c_ulong),
                                 ctypes.POINTER(ctypes.c_ulong), ctypes.POINTER(ctypes.POINTER(ctypes.c_ulong)),
                                 ctypes.POINTER(ctypes.c_uint)]
        x.XFetchName.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.POINTER(ctypes.c_char_p)]
        x.XFree.argtypes = [ctypes.c_void_p]
        x.XGetImage.restype = ctypes.POINTER(XImage)
        x.XGetImage.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_int, ctypes.c_uint,
                                ctypes.c_uint, ctypes.c_ulong, ctypes.c_int]
        x.XResizeWindow.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_uint, ctypes.c_uint]
        x.XWarpPointer.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_int, ctypes.c_int,
                                   ctypes.c_uint, ctypes.c_uint, ctypes.c_int, ctypes.c_int]
        x.XSync.argtypes = [ctypes.c_void_p, ctypes.c_int]
        x.XCloseDisplay.argtypes = [ctypes.c_void_p]
        x.XSetErrorHandler.restype = ctypes.c_void_p
        x.XSetErrorHandler.argtypes = [ctypes.c_void_p]
        # A window that goes away between listing and reading must not
        # kill the test through Xlib's default error handler (exit).
        self._handler = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)(lambda d, e: 0)
        x.XSetErrorHandler(ctypes.cast(self._handler, ctypes.c_void_p))
        self.dpy = x.XOpenDisplay(display.encode())
        if not self.dpy:
            raise RuntimeError(f"cannot open display {display}")
        self.root = x.XDefaultRootWindow(self.dpy)

    def find(self, title):
        """The top-level window called title, or 0."""
        root, parent = ctypes.c_ulong(), ctypes.c_ulong()
        kids, n = ctypes.POINTER(ctypes.c_ulong)(), ctypes.c_uint()
        if not self.x.XQueryTree(self.dpy, self.root, ctypes.byref(root), ctypes.byref(parent),
                                 ctypes.byref(kids), ctypes.byref(n)):
            return 0
        found = 0
        for i in range(n.value):
            name = ctypes.c_char_p()
            if self.x.XFetchName(self.dpy, kids[i], ctypes.byref(name)) and name.value:
                if name.value.decode(errors="replace") == title:
                    found = kids[i]
                self.x.XFree(name)
        if kids:
            self.x.XFree(kids)
        return found

    def grab(self, win, w, h):
        """The window's w x h pixels as rows of RGB bytes, or None."""
        img = self.x.XGetImage(self.dpy, win, 0, 0, w, h, 0xFFFFFFFF, 2)   # AllPlanes, ZPixmap
        if not img:
            return None
        im = img.contents
        rows = None
        if im.bits_per_pixel == 32 and im.byte_order == 0 and im.red_mask == 0xFF0000:
            raw = ctypes.string_at(im.data, im.bytes_per_line * im.height)
            rows = []
            for y in range(im.height):
                line = raw[y * im.bytes_per_line:y * im.bytes_per_line + 4 * im.width]
                rgb = bytearray(3 * im.width)
                rgb[0::3], rgb[1::3], rgb[2::3] = line[2::4], line[1::4], line[0::4]
                rows.append(bytes(rgb))
        # XDestroyImage(img) is img->f.destroy_image(img); the data is
        # Xlib's malloc: leak it, the test is short.
        return rows

    def resize(self, win, w, h):
        self.x.XResizeWindow(self.dpy, win, w, h)
        self.x.XSync(self.dpy, 0)

    def pointer_to(self, px, py):
        self.x.XWarpPointer(self.dpy, 0, self.root, 0, 0, 0, 0, px, py)
        self.x.XSync(self.dpy, 0)

    def close(self):
        self.x.XCloseDisplay(self.dpy)


def png_rgb_rows(path):
    w, h, bpp, rows = tv.read_png(path)
    if bpp == 3:
        return w, h, rows
    out = []
    for r in rows:
        rgb = bytearray(3 * w)
        rgb[0::3], rgb[1::3], rgb[2::3] = r[0::4], r[1::4], r[2::4]
        out.append(bytes(rgb))
    return w, h, out


def reference(name, w, h):
    """The --screenshot of the main store at w x h (RGB rows)."""
    out = os.path.join(tv.TMP, name + ".png")
    rc, _, err = tv.viewer(tv.STORE, "--screenshot", out, "--size", f"{w}x{h}")
    check(rc == 0, f"{name}: screenshot at {w}x{h} ({err.strip()})")
    pw, ph, rows = png_rgb_rows(out)
    return rows if (pw, ph) == (w, h) else None


def differing(a, b):
    """How many pixels differ between two lists of RGB rows."""
    n = 0
    for ra, rb in zip(a, b):
        if ra != rb:
            n += sum(1 for i in range(0, len(ra), 3) if ra[i:i + 3] != rb[i:i + 3])
    return n + abs(len(a) - len(b)) * (len(a[0]) // 3 if a else 0)


def wait_for(x, win, w, h, ref, timeout=15):
    """Grab the window until it equals ref; returns the differing pixels of
    the last grab (0: equal)."""
    deadline, diff = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        rows = x.grab(win, w, h)
        if rows is not None and ref is not None:
            diff = differing(rows, ref)
            if diff == 0:
                return 0
        time.sleep(0.2)
    return diff


def window_matches_screenshot():
    x = X(tv.DISPLAY.env["DISPLAY"])
    # The pointer far from the window, or the hover crosshair would be drawn.
    x.pointer_to(1919, 1199)
    ref_a, ref_b = reference("win-800x500", 800, 500), reference("win-1000x640", 1000, 640)
    p = subprocess.Popen([tv.VIEWER, tv.STORE, "--size", "800x500"], env=tv.DISPLAY.env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        win, deadline = 0, time.monotonic() + 15
        while not win and time.monotonic() < deadline and p.poll() is None:
            time.sleep(0.1)
            win = x.find("trainscope")
        check(win != 0, "window: the viewer's window appears on the X server")
        if not win:
            return
        diff = wait_for(x, win, 800, 500, ref_a)
        check(diff == 0, f"window: the window shows the --screenshot frame at 800x500, pixel for pixel "
                         f"({diff} pixels differ)")
        x.resize(win, 1000, 640)
        diff = wait_for(x, win, 1000, 640, ref_b)
        check(diff == 0, f"window: resized to 1000x640, it shows that size's frame, pixel for pixel "
                         f"({diff} pixels differ)")
        x.resize(win, 800, 500)
        diff = wait_for(x, win, 800, 500, ref_a)
        check(diff == 0, f"window: back to 800x500, the frame again ({diff} pixels differ)")
    finally:
        alive = p.poll() is None
        p.send_signal(signal.SIGTERM)
        try:
            _, err = p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
        check(alive and p.returncode == 0,
              f"window: quit on SIGTERM with 0 ({p.returncode}, {err.decode(errors='replace').strip()[:300]})")
        x.close()


if __name__ == "__main__":
    tv.DISPLAY = tv.Display()
    try:
        if "DISPLAY" not in tv.DISPLAY.env:
            # SDL's offscreen driver has no X server to read back from.
            print("no Xvfb: nothing to read the window from", flush=True)
            check(False, "window: needs Xvfb")
        else:
            tv.STORE = tv.make_main_store()
            window_matches_screenshot()
    finally:
        tv.DISPLAY.close()
    finish()
