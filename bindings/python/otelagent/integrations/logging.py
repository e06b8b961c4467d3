"""Trace correlation in log records: every record created inside a span gets
otelTraceID, otelSpanID, otelTraceSampled and otelServiceName (the names the
OpenTelemetry logging instrumentation uses, for Loki and CloudWatch queries).

    from otelagent.integrations import logging as otelagent_logging
    otelagent_logging.instrument(set_format=True)"""

import logging as _logging

from .. import _agent
from .. import _tracing as T

DEFAULT_FORMAT = ("%(asctime)s %(levelname)s [%(name)s] [%(filename)s:%(lineno)d] "
                  "[trace_id=%(otelTraceID)s span_id=%(otelSpanID)s "
                  "resource.service.name=%(otelServiceName)s "
                  "trace_sampled=%(otelTraceSampled)s] - %(message)s")

_state = {}


def instrument(set_format=False, log_format=None, level=_logging.INFO):
    """Installs the record factory (idempotent). With set_format, also
    configures the root logger with a format that shows the fields."""
    if "factory" not in _state:
        previous = _logging.getLogRecordFactory()
        service = _agent.setting("OTEL_SERVICE_NAME", "")

        def factory(*args, **kwargs):
            record = previous(*args, **kwargs)
            span = T._cur_get()
            if span is None:
                record.otelTraceID = "0"
                record.otelSpanID = "0"
                record.otelTraceSampled = False
            else:
                ctx = span._ctx
                record.otelTraceID = ctx[0:16].hex()
                record.otelSpanID = ctx[16:24].hex()
                record.otelTraceSampled = bool(ctx[24] & 1)
            record.otelServiceName = service
            return record

        _state["previous"] = previous
        _state["factory"] = factory
        _logging.setLogRecordFactory(factory)
    if set_format:
        _logging.basicConfig(format=log_format or DEFAULT_FORMAT, level=level)


def uninstrument():
    if "factory" in _state:
        _logging.setLogRecordFactory(_state.pop("previous"))
        del _state["factory"]
