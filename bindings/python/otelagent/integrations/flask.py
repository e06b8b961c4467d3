"""Flask: one line to trace an app.

    import otelagent.integrations.flask as otelagent_flask
    otelagent_flask.instrument_app(app)

Server spans are named `METHOD rule` (`GET /users/<int:user_id>`); an
unhandled exception in a view is recorded as an exception event even though
Flask turns it into a 500 response. Enabling twice, or after the OpenTelemetry
contrib Flask instrumentation, adds nothing (and the contrib instrumentation
does not add itself after this one)."""

import logging

from flask.globals import _cv_request
from werkzeug.exceptions import HTTPException

from .. import _agent
from . import _http
from .wsgi import SPAN_KEY, OtelAgentWSGIMiddleware

_log = logging.getLogger("otelagent")
_SCOPE = _http.scope_entries("otelagent.integrations.flask", "0.2.0")


def _has_handler(app, exc):
    try:
        return app._find_error_handler(exc, []) is not None
    except Exception:  # a Flask without that private method: assume none
        return False


def instrument_app(app, excluded_urls=None, start_agent=True):
    if not _http.claim_app(app, _log):
        return False
    if start_agent:
        _agent.start()
    dispatch = app.dispatch_request

    def dispatch_request():
        # Here rather than in before/teardown hooks, which Flask would run on
        # every request, excluded ones included, at a few µs each.
        ctx = _cv_request.get(None)
        span = ctx.request.environ.get(SPAN_KEY) if ctx is not None else None
        if span is None or not span._records:
            return dispatch()
        rule = ctx.request.url_rule
        if rule is not None:
            span._attrs["http.route"] = _http.P_ROUTE(rule.rule)
            span._name = f"{span._name} {rule.rule}"  # METHOD (or HTTP) and the rule
        try:
            return dispatch()
        except HTTPException:
            raise  # an HTTP answer (404, abort(403)...): its status code tells
        except Exception as exc:
            # Recorded even if an error handler turns it into a response; the
            # status becomes ERROR only with a 5xx.
            span.record_exception(exc)
            if not _has_handler(app, exc):
                span.set_status(2, f"{type(exc).__name__}: {exc}")
                span._attrs["error.type"] = type(exc).__qualname__
            raise

    app.dispatch_request = dispatch_request
    app.wsgi_app = OtelAgentWSGIMiddleware(app.wsgi_app, excluded_urls,
                                           "OTEL_PYTHON_FLASK_EXCLUDED_URLS", _SCOPE)
    app._is_instrumented_by_opentelemetry = True
    app._otelagent_instrumented = True
    return True
