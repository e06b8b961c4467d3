"""FastAPI and Starlette: one line to trace an app.

    import otelagent.integrations.fastapi as otelagent_fastapi
    otelagent_fastapi.instrument_app(app)

The middleware goes outermost (outside Starlette's error middleware, so a 500
made from an unhandled exception is seen with its exception). Enabling twice,
or after the OpenTelemetry contrib FastAPI instrumentation, adds nothing; and
the contrib instrumentation will not add itself after this one (both use the
app's `_is_instrumented_by_opentelemetry` flag). FastAPI's own request spans
(its built-in telemetry, active once an OpenTelemetry provider is set) are
turned off for the app, so a request never gets two server spans."""

import logging

from .. import _agent
from . import _http
from .asgi import OtelAgentMiddleware

_log = logging.getLogger("otelagent")


def instrument_app(app, excluded_urls=None, start_agent=True):
    """Traces `app` (a FastAPI or Starlette application). Returns True when it
    instrumented it, False when it already was (by this or by the
    OpenTelemetry contrib instrumentation)."""
    if not _http.claim_app(app, _log):
        return False
    if start_agent:
        _agent.start()
    native = getattr(app, "_telemetry", None)
    if isinstance(native, dict) and native.get("tracing"):
        # FastAPI's own telemetry (FastAPI(telemetry=...), recent versions)
        # makes a server span of its own as soon as an OpenTelemetry tracer
        # provider is set (otelagent.otel.install() sets one): one server
        # span per request is ours. Its metrics and logs are left as they are.
        native["tracing"] = False
    original = app.build_middleware_stack

    def build_middleware_stack():
        return OtelAgentMiddleware(original(), excluded_urls,
                                   "OTEL_PYTHON_FASTAPI_EXCLUDED_URLS")

    app.build_middleware_stack = build_middleware_stack
    app.middleware_stack = None  # rebuilt on the next request
    app._is_instrumented_by_opentelemetry = True
    app._otelagent_instrumented = True
    return True
