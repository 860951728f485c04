"""trainscope - log scalars from a Python training loop to a trainscope collector.

    import trainscope
    run = trainscope.init(name="my-run", config={"lr": 3e-4, "batch": 64})
    for step in range(steps):
        ...
        run.log({"train/loss": loss, "lr": lr}, step=step)
    run.close()                 # or `with trainscope.init(...) as run:`; also done at exit

A thin ctypes layer over libtrainscope (the C publisher library): a log call
copies the values into the library's bounded ring buffer and returns; a
background thread batches and sends them, keeps them until the collector says
they are durable, resends after a collector restart, and counts (and records
the gap of) whatever it has to drop when the collector stays away long enough
for the buffer to fill. A log call never blocks on the network.

Values: int, float, bool, numpy scalars, 0-d (one-element) torch tensors, or
anything else with __float__. NaN and infinities are data and are stored bit
for bit. numpy and torch are never imported here: values are duck-typed.
"""
import array
import atexit
import json
import math
import operator
import os
import struct
import sys
import time
import warnings

from . import _lib

__version__ = "0.1.0"
__all__ = ["init", "Run", "TrainscopeError", "library_path"]

library_path = _lib.path  # the libtrainscope.so this process loaded

_c = _lib.lib
# The log calls never block (they copy into a ring), so they keep the GIL:
# releasing and retaking it would cost more than the call itself. flush and
# close wait for the network and go through _c, which releases the GIL.
_fast = _lib.ctypes.PyDLL(_lib.path)
_lib._declare(_fast)
# ts_log_packed takes the run (a c_void_p) and two bytes objects and is
# declared without argtypes: ctypes then passes them as pointers with no
# per-argument conversion, the dominant cost of a ctypes call.
_log_packed = _lib.ctypes.PyDLL(_lib.path).ts_log_packed
_metric = _fast.ts_metric
_event = _fast.ts_event

_array = array.array
_MAX_NAME = 512     # bytes: run, project and metric names (PROTOCOL.md "Limits")
_MAX_KIND = 64      # bytes: event kind, BYE status
_MAX_TEXT = 65536   # bytes: event text
_MAX_HELLO = 1 << 20
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1
_SHAPES_MAX = 4096  # distinct key tuples remembered per run
_SCALAR_HINT = "log a number: int, float, a numpy scalar or a one-element tensor"


class TrainscopeError(RuntimeError):
    """The library refused an operation for a reason other than a bad argument."""


# ---- argument checks (errors name the thing and the problem) ----

def _text(what, s, lo, hi):
    """s as UTF-8 bytes of lo..hi bytes, or a TypeError/ValueError naming `what`."""
    if not isinstance(s, str):
        raise TypeError(f"{what} must be a str, not {type(s).__name__} ({s!r})")
    try:
        b = s.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"{what} {s!r} is not valid UTF-8: {e.reason} at index {e.start}") from None
    if len(b) < lo:
        raise ValueError(f"{what} is empty")
    if len(b) > hi:
        raise ValueError(f"{what} {s[:40]!r}... is {len(b)} bytes of UTF-8; the limit is {hi}")
    if b"\0" in b:
        raise ValueError(f"{what} {s!r} contains a NUL character")
    return b


def _check_step(step):
    """A valid step as an int (the fast path in Run.log handles plain ints)."""
    if step is None:
        raise TypeError("step is None")
    if isinstance(step, bool):
        raise TypeError(f"step must be an integer, not a bool ({step!r})")
    if isinstance(step, float):
        if math.isnan(step) or math.isinf(step):
            raise ValueError(f"step must be a finite integer, not {step!r}")
        if not step.is_integer():
            raise ValueError(f"step must be an integer, not {step!r}")
        step = int(step)
    elif not isinstance(step, int):
        try:
            step = operator.index(step)          # numpy ints, integer 0-d tensors
        except TypeError:
            item = getattr(step, "item", None)   # float 0-d tensors, numpy floats
            v = item() if callable(item) and _numel(step) in (1, None) else None
            if type(v) in (int, float):
                return _check_step(v)
            raise TypeError(f"step must be an integer, not {type(step).__name__} ({step!r})") from None
    if not _I64_MIN <= step <= _I64_MAX:
        raise ValueError(f"step {step} is outside the 64-bit signed range")
    return step


def _numel(v):
    """Element count of a tensor or array, None for other objects."""
    n = getattr(v, "numel", None)
    if callable(n):
        try:
            return int(n())
        except Exception:
            return None
    n = getattr(v, "size", None)
    if isinstance(n, int) and hasattr(v, "shape"):
        return n
    return None


def _short(v):
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


def _to_float(name, v):
    """One value as a float, or a TypeError/ValueError naming the metric."""
    if isinstance(v, (str, bytes, bytearray)):
        raise TypeError(f"metric {name!r}: value {_short(v)} is a {type(v).__name__}, not a number; {_SCALAR_HINT}")
    if v is None:
        raise TypeError(f"metric {name!r}: value is None; {_SCALAR_HINT}")
    if isinstance(v, complex):
        raise TypeError(f"metric {name!r}: value {v!r} is complex; log its real part or abs()")
    n = _numel(v)
    if n is not None and n != 1:
        raise ValueError(f"metric {name!r}: value is a {type(v).__name__} of {n} elements, "
                         "not a scalar; log a reduction such as x.mean() or x.norm()")
    try:
        item = getattr(v, "item", None)
        if callable(item) and n is not None:
            v = item()
        if isinstance(v, (str, bytes)):
            raise TypeError(f"it holds a {type(v).__name__}")
        return float(v)
    except OverflowError:
        raise ValueError(f"metric {name!r}: {_short(v)} is too large for a 64-bit float") from None
    except (TypeError, ValueError, RuntimeError) as e:
        raise TypeError(f"metric {name!r}: cannot log a {type(v).__name__} ({e}); {_SCALAR_HINT}") from None


def _jsonable(v, depth=0):
    """config values as JSON: numbers, strings, lists, dicts; numpy/torch
    scalars by value; NaN and infinities as strings (JSON has no such
    numbers); anything else by str()."""
    if depth > 64:
        return str(v)
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else repr(v)
    if isinstance(v, dict):
        return {str(k): _jsonable(x, depth + 1) for k, x in v.items()}
    if isinstance(v, (list, tuple, set, frozenset)):
        return [_jsonable(x, depth + 1) for x in v]
    item = getattr(v, "item", None)
    if callable(item) and _numel(v) in (1, None):
        try:
            return _jsonable(item(), depth + 1)
        except Exception:
            pass
    return str(v)


def _config_json(config):
    if config is None:
        return None
    if not isinstance(config, dict):
        if hasattr(config, "__dict__"):          # argparse.Namespace, simple objects
            config = vars(config)
        else:
            raise TypeError(f"config must be a dict, not {type(config).__name__}")
    text = json.dumps(_jsonable(config), ensure_ascii=True, separators=(",", ":"))
    if len(text) > _MAX_HELLO - 4096:
        raise ValueError(f"config is {len(text)} bytes as JSON; the protocol allows about 1 MiB")
    return text.encode()


# ---- runs that are open, for atexit and fork ----

_open_runs = set()
_uncaught = [False]  # an exception is ending the interpreter


def _excepthook(tp, value, tb):
    _uncaught[0] = True
    _prev_excepthook(tp, value, tb)


_prev_excepthook = sys.excepthook
sys.excepthook = _excepthook


@atexit.register
def _close_all_at_exit():
    status = "failed" if _uncaught[0] else "finished"
    for run in list(_open_runs):
        run.close(status=status)


def _forget_runs_in_child():
    # The I/O thread does not exist in a forked child; its memory is the
    # parent's. Runs are unusable there and must not be closed (freed) twice.
    for run in list(_open_runs):
        run._h = run._hp = None
        run._forked = True
    _open_runs.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_runs_in_child)


# ---- the run ----

class Run:
    """One run's publisher. Create with trainscope.init().

    log, event and flush may be called from several threads at once; close
    must not race with them (it frees the library's handle). In a child made
    by os.fork the parent's runs raise TrainscopeError: call init() there.
    """

    __slots__ = ("_h", "_hp", "_step", "_ids", "_shapes", "_drop_warned", "_forked",
                 "name", "project", "rank", "world_size", "endpoint", "close_timeout",
                 "__weakref__")

    def __init__(self, handle, name, project, rank, world_size, endpoint, close_timeout):
        self._h = handle        # the ts_run pointer as an int; None once closed
        self._hp = _lib.ctypes.c_void_p(handle)  # the same for ts_log_packed
        self._step = 0          # the step used when log() gets none
        self._ids = {}          # metric name -> id
        # tuple of a dict's keys -> (int32 count + ids as bytes, pack(step, *values))
        self._shapes = {}
        self._drop_warned = False
        self._forked = False
        self.name, self.project = name, project
        self.rank, self.world_size = rank, world_size
        self.endpoint = endpoint
        self.close_timeout = close_timeout

    # -- logging --

    def log(self, metrics, step=None):
        """Log a dict of name -> number at `step` (default: one past the last
        step used). Never blocks; raises TypeError/ValueError for a bad name,
        value or step, and nothing of that call is logged."""
        # The fast path: one tuple, one dict lookup, one struct pack (which
        # converts every value through __float__ and range-checks the step)
        # and one C call. Anything unusual takes the slow paths below. A
        # closed run has _hp None: the C call gets NULL and says TS_EINVAL.
        if step is None:
            step = self._step
        elif type(step) is not int:
            step = _check_step(step)
        if type(metrics) is not dict:
            metrics = self._as_dict(metrics)
        try:
            ids, pack = self._shapes[tuple(metrics)]
        except KeyError:
            ids, pack = self._register(metrics)
        try:
            rec = pack(step, *metrics.values())
        except Exception:
            rec = self._pack_slow(metrics, step, pack)
        rc = _log_packed(self._hp, ids, rec)
        self._step = step + 1
        if rc:
            self._log_failed(rc)

    def event(self, kind, text="", step=None):
        """Record an event such as ("checkpoint", "saved ckpt-1000.pt") at
        `step` (default: the last step logged). Returns False if even the
        buffer's reserve for events was full (the event is lost)."""
        h = self._h
        if h is None:
            raise self._closed_error()
        k = _text("event kind", kind, 1, _MAX_KIND)
        t = _text("event text", "" if text is None else text, 0, _MAX_TEXT)
        if step is None:
            # The last step logged: one before the next auto step, once
            # log() has run (it leaves a dict shape behind); 0 before that.
            step = self._step - 1 if self._shapes else 0
        else:
            step = _check_step(step)
        rc = _event(h, step, k, t)
        if rc == _lib.TS_EDROPPED:
            return False
        if rc < 0:
            raise TrainscopeError(f"event {kind!r}: {_lib.strerror(rc)}")
        return True

    def metric_id(self, name):
        """The library's id for a metric name (registers it)."""
        mid = self._ids.get(name)
        if mid is not None:
            return mid
        b = _text("metric name", name, 1, _MAX_NAME)
        h = self._h
        if h is None:
            raise self._closed_error()
        mid = _metric(h, b)
        if mid == _lib.TS_ETOOMANY:
            raise ValueError(f"metric {name!r}: a run may have at most 1048576 metric names")
        if mid < 0:
            raise ValueError(f"metric name {name!r}: {_lib.strerror(mid)}")
        self._ids[name] = mid
        return mid

    # -- durability and lifetime --

    def flush(self, timeout=None):
        """Wait until everything logged so far is durable in the collector's
        store. timeout in seconds (None: as long as it takes). Returns True,
        or False if the timeout passed first."""
        h = self._h
        if h is None:
            raise self._closed_error()
        rc = _c.ts_flush(h, _timeout_ms(timeout))
        if rc == _lib.TS_ETIMEDOUT:
            return False
        if rc < 0:
            raise TrainscopeError(f"flush: {_lib.strerror(rc)}")
        return True

    def close(self, status="finished", timeout=None):
        """Send what is left, end the run with `status` ("finished",
        "failed", ... 1 to 64 bytes) and free the library's handle. Waits up
        to `timeout` seconds (default: the run's close_timeout) for the
        collector to make everything durable. Returns True if it did; if not,
        says on stderr how much is unacknowledged and returns False (the data
        is lost). Closing twice does nothing."""
        h = self._h
        if h is None:
            return not self._forked
        s = _text("status", status, 1, _MAX_KIND) if status is not None else None
        self._h = self._hp = None
        _open_runs.discard(self)
        st = _stats(h)
        timeout = self.close_timeout if timeout is None else timeout
        rc = _c.ts_close_status(h, _timeout_ms(timeout), s)
        if rc == _lib.TS_ETIMEDOUT:
            print(f"trainscope: run {self.name!r}: the collector at {self.endpoint or 'the default endpoint'} "
                  f"did not acknowledge everything within {timeout} s; up to {st.logged - st.acked} "
                  "samples may be missing from the store", file=sys.stderr)
            return False
        return rc == 0

    def stats(self):
        """Counters of the library: logged, dropped, sent, acked, resent,
        connected."""
        h = self._h
        if h is None:
            raise self._closed_error()
        st = _stats(h)
        return {f: getattr(st, f) for f, _ in _lib.ts_stats._fields_}

    @property
    def step(self):
        """The step the next log() without step= will use."""
        return self._step

    @property
    def closed(self):
        return self._h is None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(status="failed" if exc_type is not None else "finished")
        return False

    def __repr__(self):
        state = "closed" if self._h is None else f"step {self._step}"
        full = f"{self.project}/{self.name}" if self.project else self.name
        return f"<trainscope.Run {full!r} rank {self.rank}/{self.world_size}, {state}>"

    # -- slow paths, out of log()'s way --

    def _closed_error(self):
        if self._forked:
            return TrainscopeError(f"run {self.name!r} belongs to the process that forked this one; "
                                   "call trainscope.init() in the child to log from it")
        return TrainscopeError(f"run {self.name!r} is closed")

    @staticmethod
    def _as_dict(metrics):
        if isinstance(metrics, dict) or hasattr(metrics, "keys") and hasattr(metrics, "__getitem__"):
            return dict(metrics)
        raise TypeError(f"log() takes a dict of metric name -> value, not {type(metrics).__name__}")

    def _register(self, metrics):
        ids = [self.metric_id(name) for name in metrics]
        if len(self._shapes) >= _SHAPES_MAX:
            self._shapes.clear()
        entry = (_array("i", [len(ids)] + ids).tobytes(),
                 struct.Struct(f"=q{len(ids)}d").pack)
        self._shapes[tuple(metrics)] = entry
        return entry

    @staticmethod
    def _pack_slow(metrics, step, pack):
        """What the fast pack refused, with a message naming the culprit."""
        step = _check_step(step)
        return pack(step, *[_to_float(name, v) for name, v in metrics.items()])

    def _log_failed(self, rc):
        if rc == _lib.TS_EDROPPED:
            if not self._drop_warned:
                self._drop_warned = True
                warnings.warn(f"trainscope: run {self.name!r}: the buffer is full (is the collector at "
                              f"{self.endpoint or 'the default endpoint'} running?); samples are being "
                              "dropped, counted, and the gap recorded in the store",
                              RuntimeWarning, stacklevel=3)
            return
        if rc == _lib.TS_ECLOSED or self._h is None:
            raise self._closed_error()
        raise TrainscopeError(f"log: {_lib.strerror(rc)}")


def _stats(h):
    st = _lib.ts_stats()
    _c.ts_get_stats(h, _lib.ctypes.byref(st))
    return st


def _timeout_ms(timeout):
    if timeout is None:
        return -1
    if not isinstance(timeout, (int, float)) or math.isnan(timeout) or timeout < 0:
        raise ValueError(f"timeout must be a number of seconds >= 0 or None, not {timeout!r}")
    return int(min(timeout * 1000, 2**31 - 1))


def _default_name():
    script = os.path.splitext(os.path.basename(sys.argv[0] if sys.argv and sys.argv[0] else "python"))[0]
    return f"{script or 'python'}-{time.strftime('%Y%m%d-%H%M%S')}"


def init(endpoint=None, name=None, project=None, config=None, rank=0, world_size=1, *,
         close_timeout=10.0, buffer_samples=None, batch_interval_ms=None):
    """Start a run and return its Run.

    endpoint: the collector's ingest endpoint, e.g. "tcp://host:5557" or
        "ipc:///tmp/ingest"; default $TRAINSCOPE_ENDPOINT, else
        tcp://127.0.0.1:5557 (what `trainscope collect` listens on).
    name: the run's name (default: script name and start time); every rank
        of a distributed run must pass the same name.
    project: optional; the run is then shown as project/name.
    config: a dict of hyperparameters (or an argparse.Namespace), stored
        with the run as JSON.
    rank, world_size: this process's place in a distributed run.
    close_timeout: seconds close() (and the exit handler) waits for the
        collector to make everything durable.
    buffer_samples: capacity of the in-memory buffer (default 1 << 20).
    batch_interval_ms: how often the background thread sends (default 5).

    Returns at once: the collector may start later; nothing is lost until
    the buffer fills.
    """
    if name is None:
        if world_size != 1:
            raise ValueError("name is required when world_size > 1: every rank must use the same name")
        name = _default_name()
    o = _c.ts_options_default()
    o.run = _text("run name", name, 1, _MAX_NAME)
    if project is not None:
        o.project = _text("project", project, 0, _MAX_NAME)
    if endpoint is not None:
        o.endpoint = _text("endpoint", endpoint, 1, 4096)
    for what, v in (("rank", rank), ("world_size", world_size)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{what} must be an int, not {type(v).__name__} ({v!r})")
    if world_size < 1 or world_size > 2**31 - 1:
        raise ValueError(f"world_size must be at least 1, not {world_size}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in 0..{world_size - 1} for world_size {world_size}, not {rank}")
    o.rank, o.world_size = rank, world_size
    o.config_json = _config_json(config)
    if buffer_samples is not None:
        if isinstance(buffer_samples, bool) or not isinstance(buffer_samples, int) \
                or not 2 <= buffer_samples <= 1 << 30:
            raise ValueError(f"buffer_samples must be an int in 2..2**30, not {buffer_samples!r}")
        o.ring_samples = buffer_samples
    if batch_interval_ms is not None:
        if isinstance(batch_interval_ms, bool) or not isinstance(batch_interval_ms, int) \
                or not 1 <= batch_interval_ms <= 10000:
            raise ValueError(f"batch_interval_ms must be an int in 1..10000, not {batch_interval_ms!r}")
        o.batch_interval_ms = batch_interval_ms
    _timeout_ms(close_timeout)
    h = _lib.ctypes.c_void_p()
    rc = _c.ts_open(_lib.ctypes.byref(h), _lib.ctypes.byref(o))
    if rc == _lib.TS_EZMQ:
        raise ValueError(f"endpoint {endpoint!r}: ZeroMQ refused it "
                         "(expected e.g. tcp://127.0.0.1:5557 or ipc:///path/ingest)")
    if rc == _lib.TS_ENOMEM:
        raise MemoryError("trainscope.init: out of memory for the run's buffer")
    if rc < 0:
        raise ValueError(f"trainscope.init: {_lib.strerror(rc)}")
    run = Run(h.value, name, project, rank, world_size, endpoint, close_timeout)
    _open_runs.add(run)
    return run
