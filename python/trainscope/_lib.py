"""_lib.py - finds libtrainscope and declares its C API for ctypes.

The Python client is a thin layer over the C publisher library, so Python
trainers get the same ring buffer, background I/O thread, resend and drop
accounting as C ones. Where the library is looked for, in order:

1. the environment variable TRAINSCOPE_LIB (a path to the .so);
2. next to this package (a copy placed there by whoever packaged it);
3. the build trees of the source checkout this package sits in
   (build/, then build-*/ newest first), skipping sanitizer builds unless
   the sanitizer runtime is already loaded (loading one would abort);
4. the system: ctypes.util.find_library("trainscope") (after `meson install`).
"""
import ctypes
import ctypes.util
import os

TS_OK = 0
TS_EINVAL = -1
TS_ENOMEM = -2
TS_EDROPPED = -3
TS_ETIMEDOUT = -4
TS_ECLOSED = -5
TS_EZMQ = -6
TS_ETOOMANY = -7

SONAME = "libtrainscope.so"

BUILD_HINT = (
    "build it in the trainscope checkout with `meson setup build && ninja -C build` "
    "(the package imported from the checkout's python/ then finds build/proto/libtrainscope.so), "
    "install it with `ninja -C build install`, or set TRAINSCOPE_LIB=/path/to/libtrainscope.so"
)


class ts_options(ctypes.Structure):
    """struct ts_options of trainscope.h, field for field."""
    _fields_ = [
        ("endpoint", ctypes.c_char_p),
        ("run", ctypes.c_char_p),
        ("project", ctypes.c_char_p),
        ("config_json", ctypes.c_char_p),
        ("rank", ctypes.c_int),
        ("world_size", ctypes.c_int),
        ("ring_samples", ctypes.c_size_t),
        ("max_unacked_bytes", ctypes.c_size_t),
        ("batch_interval_ms", ctypes.c_int),
    ]


class ts_stats(ctypes.Structure):
    _fields_ = [
        ("logged", ctypes.c_uint64),
        ("dropped", ctypes.c_uint64),
        ("sent", ctypes.c_uint64),
        ("acked", ctypes.c_uint64),
        ("resent", ctypes.c_uint64),
        ("connected", ctypes.c_int),
    ]


def _source_root():
    """The checkout this package lives in (python/trainscope/ inside it), or None."""
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(here))
    if os.path.isfile(os.path.join(root, "proto", "trainscope.h")):
        return root
    return None


def _sanitizer_loaded():
    try:
        with open("/proc/self/maps") as f:
            return "libasan" in f.read()
    except OSError:
        return False


def _is_sanitized(path):
    """True if the library was linked against the ASan runtime: loading it
    into a process that did not preload that runtime aborts the process."""
    try:
        with open(path, "rb") as f:
            return b"libasan.so" in f.read()
    except OSError:
        return False


def candidates():
    """Where the library is looked for, in order: [(path, where)]."""
    out = []
    env = os.environ.get("TRAINSCOPE_LIB")
    if env:
        out.append((env, "TRAINSCOPE_LIB"))
    here = os.path.dirname(os.path.abspath(__file__))
    out.append((os.path.join(here, SONAME), "next to the package"))
    root = _source_root()
    if root:
        trees = []
        for name in os.listdir(root):
            if name == "build" or name.startswith("build-"):
                p = os.path.join(root, name, "proto", SONAME)
                if os.path.isfile(p):
                    trees.append((name != "build", -os.path.getmtime(p), p))
        for _, _, p in sorted(trees):
            out.append((p, "build tree"))
    return out


def _load():
    tried = []
    env = os.environ.get("TRAINSCOPE_LIB")
    asan_ok = _sanitizer_loaded()
    for path, where in candidates():
        if not os.path.isfile(path):
            if where == "TRAINSCOPE_LIB":
                raise ImportError(f"TRAINSCOPE_LIB={env!r} does not exist; " + BUILD_HINT)
            continue
        if not asan_ok and _is_sanitized(path):
            # dlopen would not fail but abort the whole interpreter.
            if where == "TRAINSCOPE_LIB":
                raise ImportError(f"TRAINSCOPE_LIB={env!r} is built with AddressSanitizer; run Python "
                                  "with LD_PRELOAD=$(gcc -print-file-name=libasan.so) or use a normal build")
            tried.append(f"{path} (skipped: built with AddressSanitizer)")
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            if where == "TRAINSCOPE_LIB":
                raise ImportError(f"cannot load TRAINSCOPE_LIB={env!r}: {e}") from None
            tried.append(f"{path} ({e})")
            continue
        if not hasattr(lib, "ts_log_packed"):
            if where == "TRAINSCOPE_LIB":
                raise ImportError(f"TRAINSCOPE_LIB={env!r} is older than this package "
                                  "(no ts_log_packed); rebuild it") from None
            tried.append(f"{path} (stale: older than this package, rebuild it)")
            continue
        return lib, path
    found = ctypes.util.find_library("trainscope")
    if found:
        try:
            lib = ctypes.CDLL(found)
            if hasattr(lib, "ts_log_packed"):
                return lib, found
            tried.append(f"{found} (stale: older than this package, reinstall it)")
        except OSError as e:
            tried.append(f"{found} ({e})")
    detail = ("; tried " + ", ".join(tried)) if tried else ""
    raise ImportError("trainscope: libtrainscope.so not found" + detail + "; " + BUILD_HINT)


def _declare(lib):
    c = ctypes
    run_p = c.c_void_p
    lib.ts_options_default.argtypes = []
    lib.ts_options_default.restype = ts_options
    lib.ts_open.argtypes = [c.POINTER(c.c_void_p), c.POINTER(ts_options)]
    lib.ts_open.restype = c.c_int
    lib.ts_metric.argtypes = [run_p, c.c_char_p]
    lib.ts_metric.restype = c.c_int
    lib.ts_log_id.argtypes = [run_p, c.c_int, c.c_int64, c.c_double]
    lib.ts_log_id.restype = c.c_int
    lib.ts_log_many.argtypes = [run_p, c.c_int64, c.c_size_t, c.POINTER(c.c_int),
                                c.POINTER(c.c_double)]
    lib.ts_log_many.restype = c.c_int
    lib.ts_event.argtypes = [run_p, c.c_int64, c.c_char_p, c.c_char_p]
    lib.ts_event.restype = c.c_int
    lib.ts_flush.argtypes = [run_p, c.c_int]
    lib.ts_flush.restype = c.c_int
    lib.ts_close_status.argtypes = [run_p, c.c_int, c.c_char_p]
    lib.ts_close_status.restype = c.c_int
    lib.ts_get_stats.argtypes = [run_p, c.POINTER(ts_stats)]
    lib.ts_get_stats.restype = None
    lib.ts_strerror.argtypes = [c.c_int]
    lib.ts_strerror.restype = c.c_char_p
    return lib


lib, path = _load()
_declare(lib)


def strerror(rc):
    return lib.ts_strerror(rc).decode()
