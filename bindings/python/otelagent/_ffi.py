"""The one module that declares every foreign function of libotelagent (ABI 2)
with its argument and result types, and the ctypes mirrors of the ABI's
structs. Nothing else in the package touches ctypes function pointers.

Two views of the same library handle are used:
- `_blocking` (ctypes.CDLL): releases the GIL around the call. For calls that
  may wait (flush, shutdown, start) so other Python threads keep running.
- `_hot` (ctypes.PyDLL): keeps the GIL. For the hot-path calls, which never
  block, take no lock and return in well under a microsecond: dropping and
  re-taking the GIL would cost more than the call and invite contention.

Output buffers are per thread (`buffers`): the interpreter may switch
threads right after a call returns, before its output is read."""

import ctypes
import threading
from ctypes import (CFUNCTYPE, POINTER, Structure, Union, c_char_p, c_double, c_int, c_int32,
                    c_int64, c_size_t, c_uint8, c_uint32, c_uint64, c_void_p)

from . import _loader

NTS = ctypes.c_size_t(-1).value  # OTELAGENT_NTS

_blocking, LOADED_FROM = _loader.load()
_hot = ctypes.PyDLL(_blocking._name, handle=_blocking._handle)


class SpanContext(Structure):
    """otelagent_span_context: 32 bytes, frozen."""
    _fields_ = [("trace_id", c_uint8 * 16), ("span_id", c_uint8 * 8), ("trace_flags", c_uint8),
                ("is_remote", c_uint8), ("sampling", c_uint8), ("reserved0", c_uint8),
                ("reserved", c_uint32)]


assert ctypes.sizeof(SpanContext) == 32


class Str(Structure):
    _fields_ = [("ptr", c_char_p), ("len", c_size_t)]


class _AttrArray(Structure):
    _fields_ = [("items", c_void_p), ("count", c_size_t)]


class _AttrValue(Union):
    _fields_ = [("str", Str), ("i64", c_int64), ("f64", c_double), ("boolean", c_uint8),
                ("array", _AttrArray)]


class Attr(Structure):
    """otelagent_attr (frozen)."""
    _fields_ = [("key", c_char_p), ("key_len", c_size_t), ("type", c_uint32),
                ("reserved", c_uint32), ("value", _AttrValue)]


class Header(Structure):
    _fields_ = [("name", Str), ("value", Str)]


class Stats(Structure):
    _fields_ = [("struct_size", c_uint32), ("reserved", c_uint32)] + [
        (name, c_uint64) for name in (
            "spans_started", "spans_ended", "spans_recorded", "spans_sampled_out",
            "spans_dropped_ring_full", "spans_dropped_span_limit", "spans_dropped_rejected",
            "spans_dropped_export_failed", "spans_dropped_shutdown", "spans_exported",
            "export_requests", "export_retries", "bytes_sent", "queue_depth", "spans_open",
            "values_truncated", "spans_dropped_thread_exit", "spans_dropped_queue_full",
            # ABI 2.1 (the disk spool); zero from an older library.
            "spans_spooled", "spans_replayed", "spans_dropped_spool_full",
            "spans_dropped_spool_corrupt", "spool_segments_corrupt", "spans_spool_write_failed",
            "spool_bytes", "spool_oldest_age_ms", "export_latency_us_last",
            "export_latency_us_max", "spans_dropped_spool_gone")]


class _Buffers(threading.local):
    """Each thread's output buffers: a span context, a string (the longest
    output, a normalised baggage, is 8192 bytes) and its written length."""

    def __init__(self):
        self.ctx = ctypes.create_string_buffer(32)
        self.text = ctypes.create_string_buffer(8192 + 1)
        self.written = c_size_t()
        self.pwritten = ctypes.byref(self.written)


buffers = _Buffers()

LOG_FN = CFUNCTYPE(None, c_void_p, c_int32, ctypes.POINTER(ctypes.c_char), c_size_t)


def _declare(lib, name, restype, *argtypes):
    fn = getattr(lib, "otelagent_" + name)
    fn.restype = restype
    fn.argtypes = list(argtypes)
    return fn


# Versions and statuses.
version = _declare(_blocking, "version", c_char_p)
abi_version = _declare(_blocking, "abi_version", c_uint32)
_strerror = _declare(_blocking, "strerror", c_char_p, c_int)
_status_name = _declare(_blocking, "status_name", c_char_p, c_int)

# Lifecycle and configuration (not hot: GIL released where they may wait).
config_new = _declare(_blocking, "config_new", c_void_p)
config_free = _declare(_blocking, "config_free", None, c_void_p)
config_set = _declare(_blocking, "config_set", c_int, c_void_p, c_char_p, c_size_t, c_char_p,
                      c_size_t)
config_load_env = _declare(_blocking, "config_load_env", c_int, c_void_p)
start = _declare(_blocking, "start", c_int, c_void_p)
flush = _declare(_blocking, "flush", c_int, c_uint32)
shutdown = _declare(_blocking, "shutdown", c_int, c_uint32)
stats_get = _declare(_blocking, "stats_get", c_int, POINTER(Stats))
log_set_handler = _declare(_blocking, "log_set_handler", c_int, LOG_FN, c_void_p)

# The one-crossing span path (hot). Contexts cross as 32-byte buffers.
span_context_new = _declare(_hot, "span_context_new", c_int, c_char_p, c_char_p)
record_span = _declare(_hot, "record_span", c_int, c_char_p, c_size_t)

# The span-handle calls. The binding itself packs whole spans (above); the
# tests use these to check the packer against the library's own span writer.
span_start = _declare(_hot, "span_start", c_int, c_char_p, c_size_t, c_void_p,
                      POINTER(c_void_p))
span_set_attr = _declare(_hot, "span_set_attr", c_int, c_void_p, POINTER(Attr))
span_set_str = _declare(_hot, "span_set_str", c_int, c_void_p, c_char_p, c_size_t, c_char_p,
                        c_size_t)
span_set_int64 = _declare(_hot, "span_set_int64", c_int, c_void_p, c_char_p, c_size_t, c_int64)
span_set_double = _declare(_hot, "span_set_double", c_int, c_void_p, c_char_p, c_size_t, c_double)
span_set_bool = _declare(_hot, "span_set_bool", c_int, c_void_p, c_char_p, c_size_t, c_int)
span_set_status = _declare(_hot, "span_set_status", c_int, c_void_p, c_int32, c_char_p, c_size_t)
span_add_event = _declare(_hot, "span_add_event", c_int, c_void_p, c_char_p, c_size_t, c_uint64,
                          POINTER(Attr), c_size_t)
span_record_exception = _declare(_hot, "span_record_exception", c_int, c_void_p, c_char_p,
                                 c_size_t, c_char_p, c_size_t, c_char_p, c_size_t, c_uint64)
span_get_tracestate = _declare(_hot, "span_get_tracestate", c_int, c_void_p, c_char_p, c_size_t,
                               POINTER(c_size_t))
span_set_name = _declare(_hot, "span_set_name", c_int, c_void_p, c_char_p, c_size_t)
span_get_context = _declare(_hot, "span_get_context", c_int, c_void_p, c_char_p)
span_is_recording = _declare(_hot, "span_is_recording", c_int, c_void_p)
span_end = _declare(_hot, "span_end", c_int, c_void_p, c_uint64)

# Propagation (hot enough: per request).
traceparent_parse = _declare(_hot, "traceparent_parse", c_int, c_char_p, c_size_t, c_char_p)
traceparent_format = _declare(_hot, "traceparent_format", c_int, c_char_p, c_char_p, c_size_t,
                              POINTER(c_size_t))
tracestate_normalize = _declare(_hot, "tracestate_normalize", c_int, c_char_p, c_size_t, c_char_p,
                                c_size_t, POINTER(c_size_t))
xray_parse = _declare(_hot, "xray_parse", c_int, c_char_p, c_size_t, c_char_p)
xray_format = _declare(_hot, "xray_format", c_int, c_char_p, c_char_p, c_size_t, POINTER(c_size_t))
baggage_normalize = _declare(_hot, "baggage_normalize", c_int, c_char_p, c_size_t, c_char_p,
                             c_size_t, POINTER(c_size_t))
context_extract = _declare(_hot, "context_extract", c_int, POINTER(Header), c_size_t, c_char_p,
                           c_char_p, c_size_t, POINTER(c_size_t), c_char_p, c_size_t,
                           POINTER(c_size_t))
context_inject = _declare(_hot, "context_inject", c_int, c_char_p, c_char_p, c_size_t, c_char_p,
                          c_size_t, c_char_p, c_size_t, POINTER(c_size_t))


def strerror(status):
    return _strerror(status).decode("utf-8", "replace")


def status_name(status):
    return _status_name(status).decode("utf-8", "replace")
