"""Starting, flushing and stopping the agent; its statistics."""

import ctypes
import os
import threading
import time

from . import _ffi
from ._errors import check, error_for

_lock = threading.Lock()
_settings = {}  # the settings of the last start(), for the Python side's own use
generation = [0]  # bumped by each start(): what was derived from settings is stale


def _b(s):
    return s.encode("utf-8") if isinstance(s, str) else bytes(s)


def start(settings=None, *, service_name=None, **more):
    """Starts the agent, configured from the environment (OTEL_* variables)
    overridden by `settings` (a dict keyed by the same variable names, e.g.
    {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}) and the keyword
    arguments (the same names: OTEL_TRACES_SAMPLER="always_on"; `service_name`
    is OTEL_SERVICE_NAME).

    Returns True when this call started it, False when it was already started
    or is disabled by configuration (OTEL_SDK_DISABLED=true,
    OTEL_TRACES_EXPORTER=none). Raises UnknownKey or InvalidArgument for a bad
    setting name."""
    merged = dict(settings or {})
    merged.update(more)
    if service_name is not None:
        merged["OTEL_SERVICE_NAME"] = service_name
    with _lock:
        cfg = _ffi.config_new()
        if not cfg:
            raise MemoryError("otelagent_config_new")
        try:
            check(_ffi.config_load_env(cfg), "otelagent_config_load_env")
            for key, value in merged.items():
                k, v = _b(key), _b(str(value))
                check(_ffi.config_set(cfg, k, len(k), v, len(v)), f"setting {key}")
            rc = _ffi.start(cfg)
        finally:
            _ffi.config_free(cfg)
        if rc == 0:
            _settings.clear()
            _settings.update(merged)
            generation[0] += 1
            _choose_fast_path()
            _flush_before_os_exit()
            return True
        if rc in (-3, -4):  # DISABLED, ALREADY_STARTED
            return False
        raise error_for(rc, "otelagent_start")


def _choose_fast_path():
    """Lets spans get their ids and decision in Python when the library's
    sampler and id generator make that trivial (see _tracing._make_span)."""
    from . import _tracing
    sampler = (setting("OTEL_TRACES_SAMPLER") or "parentbased_always_on").strip()
    ids = (setting("OTELAGENT_ID_GENERATOR") or "random").strip()
    simple = sampler in ("always_on", "parentbased_always_on") and ids == "random"
    _tracing.set_fast_path(simple, sampler == "parentbased_always_on")
    from . import propagation
    propagation.propagators()  # parsed now: the native server path reads them


def setting(name, default=None):
    """The value of a setting as the agent was started with it (start()'s
    arguments, then the environment)."""
    v = _settings.get(name)
    if v is None:
        v = os.environ.get(name, default)
    return v


def exit_timeout_ms():
    """The bound on a flush at exit: OTELAGENT_SHUTDOWN_TIMEOUT_MS, as the
    library's own exit handler uses it (default 3000)."""
    try:
        return max(0, int(setting("OTELAGENT_SHUTDOWN_TIMEOUT_MS", "3000")))
    except ValueError:
        return 3000  # the library warned and uses its default


_real_os_exit = [None]


def _flush_before_os_exit():
    """Makes os._exit flush first, for at most exit_timeout_ms(). A process
    leaving through os._exit skips atexit, the library's exit flush with it:
    multiprocessing's forked children (Process and Pool workers) all leave
    that way, and their spans would be lost. Installed once; calls that took
    a reference to os._exit before start() are not covered."""
    if _real_os_exit[0] is not None:
        return
    real = _real_os_exit[0] = os._exit

    def _exit(status):
        # NOT_STARTED or nothing queued returns at once; the GIL is released
        # while the exporter sends.
        try:
            _flush_in_slices(exit_timeout_ms())
        finally:
            real(status)

    _exit.__doc__ = real.__doc__
    _exit.__wrapped__ = real
    os._exit = _exit


def flush(timeout_ms=5000):
    """Waits until every span ended so far is exported (or dropped and
    counted), at most `timeout_ms`. Returns False on timeout, or when the
    exporter could not be started (logged by the library; the spans stay
    queued and the start is tried again). The GIL is released meanwhile."""
    rc = _flush_in_slices(int(timeout_ms))
    if rc in (0, -2):  # OK; NOT_STARTED: nothing is pending
        return True
    if rc in (-8, -15):  # TIMEOUT, EXPORTER_DOWN
        return False
    raise error_for(rc, "otelagent_flush")


_SLICE_MS = 100


def _flush_in_slices(timeout_ms):
    """otelagent_flush() for at most `timeout_ms`, in slices of 100 ms:
    Python runs signal handlers only between calls, so a SIGTERM handler (a
    container stop) runs within a slice instead of after the whole flush."""
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        left = int((deadline - time.monotonic()) * 1000)
        rc = _ffi.flush(max(0, min(_SLICE_MS, left)))
        if rc != -8 or left <= _SLICE_MS:  # anything but TIMEOUT, or the deadline
            return rc


def shutdown(timeout_ms=5000):
    """Flushes for at most `timeout_ms`, then stops the exporter thread.
    Returns False when the flush timed out (what was left is counted as
    dropped) or the exporter could not be started to flush. The agent may be
    started again."""
    from . import _tracing
    _tracing.set_fast_path(False)
    # The flush part in slices (signal handlers run in between), then the
    # stop with what is left of the time.
    deadline = time.monotonic() + int(timeout_ms) / 1000
    _flush_in_slices(int(timeout_ms))
    rc = _ffi.shutdown(max(0, int((deadline - time.monotonic()) * 1000)))
    if rc in (0, -2):
        return True
    if rc in (-8, -15):
        return False
    raise error_for(rc, "otelagent_shutdown")


def stats():
    """The agent's counters as a dict (spans_started, spans_exported,
    spans_dropped_ring_full, queue_depth, ...)."""
    s = _ffi.Stats()
    s.struct_size = ctypes.sizeof(_ffi.Stats)
    check(_ffi.stats_get(ctypes.byref(s)), "otelagent_stats_get")
    out = {name: getattr(s, name) for name, _ in _ffi.Stats._fields_[2:]}
    from . import _tracing
    out["spans_sampled_out"] += _tracing._sampled_out[0]
    return out


def version():
    return _ffi.version().decode()


_log_state = {}


def route_logs_to_python(logger_name="otelagent"):
    """Sends the library's own log lines (warnings such as an unreachable
    endpoint) to the `logging` logger `logger_name` instead of stderr, which a
    daemon may have closed. Undone by route_logs_to_python(None), and before
    the interpreter finalises (the library may still log at exit, to stderr).
    The lines come from any thread, the exporter's included; each costs the
    exporter a wait for the GIL, which is why it is not the default."""
    import atexit
    import logging

    if logger_name is None:
        if _log_state.pop("callback", None) is not None:
            _ffi.log_set_handler(_ffi.LOG_FN(), None)
        return
    logger = logging.getLogger(logger_name)
    levels = {1: logging.WARNING, 2: logging.INFO}

    def on_line(user, level, line, length):
        try:
            logger.log(levels.get(level, logging.WARNING), "%s",
                       ctypes.string_at(line, length).decode("utf-8", "replace"))
        except Exception:  # never let an exception reach the library's thread
            pass

    callback = _ffi.LOG_FN(on_line)
    _log_state["callback"] = callback  # kept alive as long as it is installed
    _ffi.log_set_handler(callback, None)
    if not _log_state.get("atexit"):
        _log_state["atexit"] = True
        atexit.register(route_logs_to_python, None)
