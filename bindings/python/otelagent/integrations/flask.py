"""Flask: one line to trace an app.

    import otelagent.integrations.flask as otelagent_flask
    otelagent_flask.instrument_app(app)

Server spans are named `METHOD rule` (`GET /users/<int:user_id>`), from the
rule Flask matched, when the response starts. An exception that no error
handler takes (Flask turns it into a 500) is recorded on the span with an
exception event, ERROR and error.type; one an error handler turns into a
response is the application's answer, as the HTTP semantic conventions
advise, and only its status code is recorded. Enabling twice, or after the
OpenTelemetry contrib Flask instrumentation, adds nothing (and the contrib
instrumentation does not add itself after this one).

The app object gets two attributes of ours, wsgi_app (the middleware, as
ProxyFix would) and the contrib instrumentation's marker, and no more:
CPython 3.11 stops specialising the method lookups of an app whose instance
dictionary outgrows the keys it shares with its class (a few more
attributes), which costs every request a fraction of a microsecond."""

import logging
import weakref

from flask.globals import _cv_request

from .. import _agent
from . import _http
from .wsgi import SPAN_KEY, OtelAgentWSGIMiddleware, name_after_werkzeug_rule

_log = logging.getLogger("otelagent")
_SCOPE = _http.scope_entries("otelagent.integrations.flask", "0.2.0")
_instrumented = weakref.WeakSet()  # the apps instrument_app instrumented


def _on_exception(sender, exception=None, **_):
    """Flask's got_request_exception: an exception no error handler took,
    while the request is still current (connected to each instrumented
    app; nothing runs on a request that does not raise)."""
    try:
        ctx = _cv_request.get(None)
        environ = ctx.request.environ if ctx is not None else {}
        span = environ.get(SPAN_KEY)
        if span is None or not span._records or exception is None:
            return
        if "http.route" not in span._attrs:  # the response has not started: name it now
            name = span._name
            name_after_werkzeug_rule(span, name if name == "HTTP" or name in _http.KNOWN_METHODS
                                     else None, environ, sender.url_map)
        propagate = sender.config.get("PROPAGATE_EXCEPTIONS")
        if propagate is None:
            propagate = sender.testing or sender.debug
        if not propagate:  # else Flask raises it on, and the middleware records it
            _http.request_failed(span, exception)
    except Exception:  # never in the way of the application's error handling
        _log.debug("otelagent: could not record %s on the request's span", type(exception))


def instrument_app(app, excluded_urls=None, start_agent=True):
    if not _http.claim_app(app, _log, _instrumented.__contains__):
        return False
    if start_agent:
        _agent.start()
    try:
        from flask.signals import got_request_exception
        got_request_exception.connect(_on_exception, app, weak=False)
    except Exception:  # a Flask without signals (2.2 without blinker)
        _log.warning("otelagent: Flask signals are unavailable; exceptions are not recorded "
                     "on server spans (only their 500)")
    app.wsgi_app = OtelAgentWSGIMiddleware(app.wsgi_app, excluded_urls,
                                           "OTEL_PYTHON_FLASK_EXCLUDED_URLS", _SCOPE,
                                           werkzeug_route=app.url_map)
    app._is_instrumented_by_opentelemetry = True
    _instrumented.add(app)
    return True
