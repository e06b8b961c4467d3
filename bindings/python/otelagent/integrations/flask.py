"""Flask: one line to trace an app.

    import otelagent.integrations.flask as otelagent_flask
    otelagent_flask.instrument_app(app)

Server spans are named `METHOD rule` (`GET /users/<int:user_id>`); an
exception raised by a view or a before_request hook is recorded as an
exception event even when Flask turns it into a response (a 500, or an error
handler's). Enabling twice, or after the OpenTelemetry
contrib Flask instrumentation, adds nothing (and the contrib instrumentation
does not add itself after this one)."""

import logging

from flask.globals import _cv_request
from werkzeug.exceptions import HTTPException

from .. import _agent
from .. import _tracing as T
from . import _http
from .wsgi import SPAN_KEY, OtelAgentWSGIMiddleware

_log = logging.getLogger("otelagent")
_SCOPE = _http.scope_entries("otelagent.integrations.flask", "0.2.0")


def _has_handler(app, exc):
    try:
        return app._find_error_handler(exc, []) is not None
    except Exception:  # a Flask without that private method: assume none
        return False


def _name_span(span, request):
    """Names a recorded server span `METHOD rule`, with http.route, after the
    rule Flask matched (none for a 404)."""
    if span._records:
        rule = request.url_rule
        if rule is not None:
            span._attrs["http.route"] = _http.P_ROUTE(rule.rule)
            span._name = f"{span._name} {rule.rule}"  # METHOD (or HTTP) and the rule


def _naming_dispatch(dispatch):
    """The app's dispatch_request, naming the request's span first: in C
    (_native.FlaskDispatch, a few lookups for a span that records nothing)
    when the native module serves the requests, else in Python."""
    if _http.NativeServer is not None:
        return T.native.FlaskDispatch(dispatch, _cv_request, _name_span)

    def dispatch_request():
        # Here rather than in before/teardown hooks, which Flask would run on
        # every request, excluded ones included, at a few µs each.
        ctx = _cv_request.get(None)
        span = ctx.request.environ.get(SPAN_KEY) if ctx is not None else None
        if span is not None:
            _name_span(span, ctx.request)
        return dispatch()
    return dispatch_request


def _record(app, e):
    """An exception a hook or the view raised, on the request's span."""
    ctx = _cv_request.get(None)
    span = ctx.request.environ.get(SPAN_KEY) if ctx is not None else None
    if span is not None and span._records:
        if "http.route" not in span._attrs:  # a before_request hook raised
            _name_span(span, ctx.request)
        # Recorded even if an error handler turns it into a response; the
        # status becomes ERROR only with a 5xx.
        span.record_exception(e)
        if not _has_handler(app, e):
            span.set_status(2, T._describe(e))
            span._attrs["error.type"] = type(e).__qualname__


def instrument_app(app, excluded_urls=None, start_agent=True):
    if not _http.claim_app(app, _log):
        return False
    if start_agent:
        _agent.start()
    handle = app.handle_user_exception

    def handle_user_exception(e):
        # Flask calls this only when a hook or the view raised: unlike a
        # wrapper around the view, it costs nothing on a request that did not.
        if not isinstance(e, HTTPException):  # an HTTP answer: its status code tells
            try:
                _record(app, e)
            except Exception:  # never in the way of the application's handler
                _log.debug("otelagent: could not record %s on the request's span", type(e))
        return handle(e)

    app.handle_user_exception = handle_user_exception
    app.dispatch_request = _naming_dispatch(app.dispatch_request)
    app.wsgi_app = OtelAgentWSGIMiddleware(app.wsgi_app, excluded_urls,
                                           "OTEL_PYTHON_FLASK_EXCLUDED_URLS", _SCOPE)
    app._is_instrumented_by_opentelemetry = True
    app._otelagent_instrumented = True
    return True
