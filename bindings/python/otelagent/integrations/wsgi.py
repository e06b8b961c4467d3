"""WSGI server spans (Flask, any WSGI app).

    from otelagent.integrations.wsgi import OtelAgentWSGIMiddleware
    app.wsgi_app = OtelAgentWSGIMiddleware(app.wsgi_app)

One server span per request with the stable HTTP semantic-convention
attributes. The route template comes from the framework: with
`werkzeug_route=app.url_map` (the Flask integration's) the rule of that map
werkzeug matched, read when the response starts; without one the span is
named after the method."""

import inspect
import types
from _io import _IOBase

from .. import _tracing as T
from ..propagation import _baggage, extract_values
from . import _http
from ._http import P_ADDRESS, P_CLIENT, P_METHOD, P_PORT, P_PROTO, P_SCHEME, P_STATUS, P_UA

SCOPE = _http.scope_entries("otelagent.integrations.wsgi", "0.2.0")
SPAN_KEY = "otelagent.server_span"
_SERVER = 2


class OtelAgentWSGIMiddleware(_http.NativeServer or object):
    """With the native module, calling the middleware runs its C __call__
    (_native.c server_call: no Python frame per request), which hands what it
    does not expect to _python_path; without it, __call__ is _python_path."""

    def __init__(self, wsgi_app, excluded_urls=None,
                 excluded_urls_var="OTEL_PYTHON_WSGI_EXCLUDED_URLS", scope=SCOPE,
                 werkzeug_route=None):
        self.wsgi_app = wsgi_app
        excluded = _http.ExcludedUrls(excluded_urls_var, excluded_urls)
        self.excluded = excluded if excluded else None  # None: no pattern to try
        self.scope = scope
        if werkzeug_route is not None:
            from werkzeug.routing import Map
            if not isinstance(werkzeug_route, Map):
                raise TypeError("werkzeug_route: the app's werkzeug Map (app.url_map) or None, "
                                f"not {type(werkzeug_route).__name__}")
        self.werkzeug_route = werkzeug_route
        if _http.NativeServer is not None:
            _http.NativeServer.__init__(self, True, scope, self.excluded, _full_url,
                                        _http.request_failed, werkzeug_route)

    if _http.NativeServer is None:
        def __call__(self, environ, start_response):
            return self._python_path(environ, start_response)
    else:
        # What a Python __call__ would show (inspect, frameworks that check).
        __signature__ = inspect.Signature([
            inspect.Parameter("environ", inspect.Parameter.POSITIONAL_OR_KEYWORD),
            inspect.Parameter("start_response", inspect.Parameter.POSITIONAL_OR_KEYWORD)])

        def __reduce__(self):
            # copy.copy / deepcopy (and pickle, for a picklable wsgi_app): a
            # blank instance first (copies and pickles remember it, so a
            # reference cycle through the middleware comes back as one),
            # then __setstate__ makes the C base's state again from the
            # attributes. The wsgi_app slot, and a subclass's __slots__, are
            # read and set through their own descriptors: through a property
            # of a subclass over them, a wrapping setter would run again.
            try:
                app = _http.NativeServer.wsgi_app.__get__(self)
            except AttributeError:
                app = _NoApp
            return _blank, (type(self),), (self.__dict__, app, _slot_values(self))

        def __setstate__(self, state):
            attrs, app, slots = state
            self.__dict__.update(attrs)
            for owner, name, value in slots:
                owner.__dict__[name].__set__(self, value)
            _restore(self, app)

    def _python_path(self, environ, start_response):
        if SPAN_KEY in environ:  # another instance of this middleware is outside
            return self.wsgi_app(environ, start_response)
        path = environ.get("PATH_INFO", "") or "/"
        if self.excluded is not None and self.excluded.excluded(path, _full_url, environ):
            return self.wsgi_app(environ, start_response)
        get = environ.get
        tp = get("HTTP_TRACEPARENT")
        xray = get("HTTP_X_AMZN_TRACE_ID")
        bag = get("HTTP_BAGGAGE")
        parent = None
        bag_token = None
        baggage = ""
        if tp is not None or xray is not None or bag is not None:
            parent, baggage = extract_values(tp, get("HTTP_TRACESTATE"), bag, xray)
            if baggage:
                bag_token = _baggage.set(baggage)
        method = get("REQUEST_METHOD", "GET")
        known = _http.known_method(method)
        first_name = method if known else "HTTP"
        span = T._make_span(self.scope, first_name, parent, _SERVER, None, None, None)
        environ[SPAN_KEY] = span
        token = T._cur_set(span)
        if not span._records:
            try:
                result = self.wsgi_app(environ, start_response)
            finally:
                _http.reset_request(token, bag_token)
            if type(result) is list or type(result) is tuple or _server_file(result, environ):
                return result
            # Streamed: spans the body makes are children of the sampled-out
            # span (sampled out with it), not new roots.
            return _ClosingIterable(result, span, baggage)

        try:
            a = _request_attributes(span, environ, method, known, path)
        except BaseException:
            _http.reset_request(token, bag_token)  # nothing of this request stays current
            raise

        werkzeug_route = self.werkzeug_route

        def _start_response(status, headers, exc_info=None):
            try:
                code = int(status[:3])
            except ValueError:
                code = 0
            a["http.response.status_code"] = P_STATUS(code)
            if code >= 500:
                if span._status != 2:
                    span.set_status(2)
                a.setdefault("error.type", str(code))
            if werkzeug_route is not None:
                name_after_werkzeug_rule(span, first_name, environ, werkzeug_route)
            return start_response(status, headers, exc_info)

        try:
            result = self.wsgi_app(environ, _start_response)
        except BaseException as exc:
            if isinstance(exc, Exception):
                _http.request_failed(span, exc)
            span.end()
            _http.reset_request(token, bag_token)
            raise
        _http.reset_request(token, bag_token)
        if type(result) is list or type(result) is tuple or _server_file(result, environ):
            span.end()
            return result
        # A streamed body: the span ends with the body (its last chunk, or
        # the server's close() if that comes first).
        return _ClosingIterable(result, span, baggage)


def _server_file(result, environ):
    """Whether the body is a file the server sends as it is (see _native.c's
    is_server_file): a file object, what uWSGI's wsgi.file_wrapper returns,
    or an instance of the server's wsgi.file_wrapper class (gunicorn's). The
    server uses sendfile only when it gets that object back. Real subclasses
    only, as in C: no __instancecheck__ of the application's runs here."""
    try:
        mro = type(result).__mro__
        if _IOBase in mro:
            return True
        wrapper = environ.get("wsgi.file_wrapper")
        return isinstance(wrapper, type) and wrapper in mro
    except Exception:  # an environ key's or a metaclass's __eq__ failed: not the server's file
        return False


def name_after_werkzeug_rule(span, first_name, environ, url_map):
    """http.route and `METHOD rule` from the rule of `url_map` werkzeug
    matched, while the request is live (see _native.c's
    name_after_werkzeug_rule); a name the application set is kept."""
    try:
        rule = environ["werkzeug.request"].url_rule
        template = rule.rule if rule.map is url_map else None  # not a mounted app's
    except Exception:  # no request, no rule (a 404): the span keeps its name
        return
    if isinstance(template, str):
        span._attrs["http.route"] = template
        if span._name is first_name:
            span._name = f"{first_name} {template}"


def _request_attributes(span, environ, method, known, path):
    """The request's attributes on `span`; returns its attribute dict."""
    get = environ.get
    a = span._attrs
    if known:
        a["http.request.method"] = P_METHOD(method)
    else:
        a["http.request.method"] = "_OTHER"
        a["http.request.method_original"] = method
    a["url.path"] = path
    scheme = get("wsgi.url_scheme", "http")
    a["url.scheme"] = P_SCHEME(scheme)
    q = get("QUERY_STRING")
    if q and isinstance(q, str):
        a["url.query"] = _http.redact_query(q)
    host = get("HTTP_HOST")
    if host:
        a["server.address"], a["server.port"] = _http.server_host(
            host, 443 if scheme == "https" else 80)
    else:
        a["server.address"] = P_ADDRESS(get("SERVER_NAME", ""))
        try:
            a["server.port"] = P_PORT(int(get("SERVER_PORT", 0)))
        except (TypeError, ValueError):
            pass
    remote = get("REMOTE_ADDR")
    if remote:
        a["client.address"] = P_CLIENT(remote)
    ua = get("HTTP_USER_AGENT")
    if ua:
        a["user_agent.original"] = P_UA(ua)
    proto = get("SERVER_PROTOCOL", "")
    if isinstance(proto, str) and proto.startswith("HTTP/"):
        a["network.protocol.version"] = P_PROTO(proto[5:])
    return a


class _NoApp:
    """A middleware's wsgi_app when it has none (pickled by reference)."""


def _blank(cls):
    return cls.__new__(cls)


def _slot_values(obj):
    """(declaring class, slot name, value) of every __slots__ member of
    obj's classes that is set."""
    out = []
    for owner in type(obj).__mro__:
        names = owner.__dict__.get("__slots__", ())
        for name in (names,) if isinstance(names, str) else names:
            if name.startswith("__") and not name.endswith("__"):  # private: mangled
                name = f"_{owner.__name__.lstrip('_')}{name}"
            member = owner.__dict__.get(name)
            if type(member) is not types.MemberDescriptorType:  # __dict__, __weakref__
                continue
            try:
                out.append((owner, name, member.__get__(obj, owner)))
            except AttributeError:  # never set
                pass
    return out


def _restore(mw, app):
    if app is not _NoApp:
        _http.NativeServer.wsgi_app.__set__(mw, app)
    _http.NativeServer.__init__(mw, True, mw.scope, mw.excluded, _full_url,
                                _http.request_failed, mw.werkzeug_route)


def _rebuild(cls, state, app=_NoApp):
    """What __reduce__ made before __setstate__ (pickles of earlier
    versions): the application apart from the state, or in it when wsgi_app
    was an instance attribute."""
    mw = cls.__new__(cls)
    state = dict(state)
    if app is _NoApp:
        app = state.pop("wsgi_app", _NoApp)
    mw.__dict__.update(state)
    _restore(mw, app)
    return mw


class _ClosingIterable:
    """A streamed body (the Python path of _native.c's ServerCall): the
    request's span and baggage are current while the application makes each
    chunk, and only then (between chunks the server may run other work, or
    the next call in another thread or context). After the last chunk, still
    in that call, the application's close() runs and the span ends; the
    server's close() then has nothing left to do."""

    __slots__ = ("_it", "_iter", "_span", "_baggage", "_closed", "_ended", "_close_error")

    def __init__(self, it, span, baggage):
        self._it = it
        self._iter = None
        self._span = span
        self._baggage = baggage  # the request's, current again while it streams
        self._closed = self._ended = False
        self._close_error = None  # what the body's close() raised after its last chunk

    def _enter(self):
        return T._cur_set(self._span), _baggage.set(self._baggage) if self._baggage else None

    def __iter__(self):
        if self._iter is None and not self._closed:
            self._iter = iter(self._it)
        return self

    def __next__(self):
        it = self._iter
        if it is None:
            if self._closed:
                raise StopIteration
            raise TypeError("iterated before iter()")
        tokens = self._enter()
        try:
            try:
                return next(it)
            except StopIteration:
                pass
            except Exception as exc:
                _http.request_failed(self._span, exc)
                raise
            # The body ended: its close() now, still in this call, with the
            # span current (see _native.c's call_next). Outside the except
            # clause, so that an error of close() does not chain to the
            # StopIteration.
            error = self._close_at_end()
        finally:
            _http.reset_request(*tokens)
        if error is not None:
            # Recorded, and raised from the server's close(): raised here it
            # would look like a body that broke off.
            if isinstance(error, Exception):
                _http.request_failed(self._span, error)
            self._close_error = error
        self._end()
        raise StopIteration

    def _close_at_end(self):
        """The application's close() after the last chunk: what it raised,
        without this module's frames (they would hold this iterable, the
        span and the body alive in a cycle until the collector ran)."""
        try:
            self._close_app()
        except BaseException as exc:
            tb = exc.__traceback__
            while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
                tb = tb.tb_next
            return exc.with_traceback(tb)
        return None

    def _close_app(self):
        if self._closed:
            return
        self._closed = True
        it, self._it, self._iter = self._it, None, None
        close = getattr(it, "close", None)
        if close is not None:
            close()

    def _end(self):
        if not self._ended:
            self._ended = True
            self._span.end()

    def close(self):
        """The body's end (from the server, unless the last chunk was): the
        application's close() with the span current too (the cleanup of a
        body closed before its end, the client gone, may make spans)."""
        if self._close_error is not None:
            exc, self._close_error = self._close_error, None
            raise exc
        try:
            if not self._closed:
                tokens = self._enter()
                try:
                    self._close_app()
                finally:
                    _http.reset_request(*tokens)
        finally:
            self._end()


def _full_url(environ):
    q = environ.get("QUERY_STRING")
    url = (f"{environ.get('wsgi.url_scheme', 'http')}://{environ.get('HTTP_HOST', '')}"
           f"{environ.get('SCRIPT_NAME', '')}{environ.get('PATH_INFO', '')}")
    return url + ("?" + q if q else "")
