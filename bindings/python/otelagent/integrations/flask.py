"""Flask: one line to trace an app.

    import otelagent.integrations.flask as otelagent_flask
    otelagent_flask.instrument_app(app)

Server spans are named `METHOD rule` (`GET /users/<int:user_id>`); an
unhandled exception in a view is recorded as an exception event even though
Flask turns it into a 500 response. Enabling twice, or after the OpenTelemetry
contrib Flask instrumentation, adds nothing (and the contrib instrumentation
does not add itself after this one)."""

import logging

from .. import _agent
from . import _http
from .wsgi import SPAN_KEY, OtelAgentWSGIMiddleware

_log = logging.getLogger("otelagent")
_SCOPE = _http.scope_entries("otelagent.integrations.flask", "0.2.0")


def instrument_app(app, excluded_urls=None, start_agent=True):
    if getattr(app, "_is_instrumented_by_opentelemetry", False):
        if not getattr(app, "_otelagent_instrumented", False):
            _log.warning("otelagent: %r is already instrumented by OpenTelemetry; "
                         "not adding a second server span", app)
        return False
    if start_agent:
        _agent.start()
    from flask import request

    @app.before_request
    def _otelagent_route():
        rule = request.url_rule
        if rule is not None:
            span = request.environ.get(SPAN_KEY)
            if span is not None and span.is_recording():
                span._attrs["http.route"] = rule.rule

    @app.teardown_request
    def _otelagent_exception(exc):
        # Flask answers an unhandled exception with a 500 itself; record it.
        if exc is not None:
            span = request.environ.get(SPAN_KEY)
            if span is not None and span.is_recording():
                span.record_exception(exc)
                span.set_status(2, f"{type(exc).__name__}: {exc}")
                span._attrs["error.type"] = type(exc).__qualname__

    app.wsgi_app = OtelAgentWSGIMiddleware(app.wsgi_app, excluded_urls,
                                           "OTEL_PYTHON_FLASK_EXCLUDED_URLS", _SCOPE)
    app._is_instrumented_by_opentelemetry = True
    app._otelagent_instrumented = True
    return True
