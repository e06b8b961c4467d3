"""The one place that maps the library's status numbers to Python exceptions.

The numbers are pinned forever by the C ABI (OTELAGENT_STATUS_MAP in
otelagent.h); the descriptions come from the loaded library itself."""

OK = 0


class OtelAgentError(Exception):
    """A call into libotelagent returned a status other than OK."""

    status = None
    name = "UNKNOWN"

    def __init__(self, message, status=None):
        super().__init__(message)
        if status is not None:
            self.status = status


class LibraryNotFound(OtelAgentError, OSError):
    """No usable copy of libotelagent could be loaded (the message lists every
    place that was tried and why each failed)."""


class AbiMismatch(OtelAgentError, OSError):
    """The loaded library speaks another ABI major (or an older minor)."""


class InvalidArgument(OtelAgentError, ValueError):
    status, name = -1, "INVALID"


class NotStarted(OtelAgentError):
    status, name = -2, "NOT_STARTED"


class Disabled(OtelAgentError):
    status, name = -3, "DISABLED"


class AlreadyStarted(OtelAgentError):
    status, name = -4, "ALREADY_STARTED"


class RingFull(OtelAgentError):
    status, name = -5, "RING_FULL"


class SpanLimit(OtelAgentError):
    status, name = -6, "SPAN_LIMIT"


class NoSpace(OtelAgentError):
    status, name = -7, "NO_SPACE"


class Timeout(OtelAgentError, TimeoutError):
    status, name = -8, "TIMEOUT"


class BadRecord(OtelAgentError, ValueError):
    status, name = -9, "BAD_RECORD"


class NotFound(OtelAgentError, LookupError):
    status, name = -10, "NOT_FOUND"


class Ended(OtelAgentError):
    status, name = -11, "ENDED"


class Internal(OtelAgentError):
    status, name = -12, "INTERNAL"


class UnknownKey(OtelAgentError, KeyError):
    status, name = -13, "UNKNOWN_KEY"


class TooLong(OtelAgentError, ValueError):
    status, name = -14, "TOO_LONG"


class ExporterDown(OtelAgentError):
    status, name = -15, "EXPORTER_DOWN"


_BY_STATUS = {cls.status: cls for cls in (
    InvalidArgument, NotStarted, Disabled, AlreadyStarted, RingFull, SpanLimit, NoSpace,
    Timeout, BadRecord, NotFound, Ended, Internal, UnknownKey, TooLong, ExporterDown)}


def error_for(status, what=""):
    """The exception for a non-OK `status` returned by the call `what`."""
    from . import _ffi  # the descriptions come from the library

    cls = _BY_STATUS.get(status, OtelAgentError)
    desc = _ffi.strerror(status)
    err = cls(f"{what}: {desc} ({cls.name if cls.status is not None else status})"
              if what else desc, status)
    return err


def check(status, what=""):
    """Raises the mapped exception when `status` is not OK; returns it otherwise."""
    if status != OK:
        raise error_for(status, what)
    return status
