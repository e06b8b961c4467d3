"""Client spans for outbound HTTP calls made with requests, httpx (sync and
async) and urllib3, with the propagation headers injected.

    from otelagent.integrations import clients
    clients.instrument()            # every library that is installed

Exactly one client span per call when the libraries are stacked (requests
over urllib3): a call made while one of our client spans is current is not
traced again, and the headers the outer layer injected travel on."""

import contextlib
import contextvars
import functools

from .. import _tracing as T
from ..propagation import headers_for
from . import _http

_SCOPE = _http.scope_entries("otelagent.integrations.clients", "0.2.0")
_CLIENT = 3
# True while one of our client spans is current: inner layers stay out.
_in_client = contextvars.ContextVar("otelagent.in_client_span", default=False)
_patched = {}
# A predicate of the library's name that, when true, leaves the call
# untraced: zero-code activation sets it to yield to OpenTelemetry (an SDK set
# up by the application, a contrib instrumentation of that library).
_gate = [None]


def set_gate(predicate):
    """Calls made while `predicate(library)` is true are not traced (None:
    always traced); `library` is "requests", "httpx" or "urllib3"."""
    _gate[0] = predicate


# What _start returns when the gate closes: the call is someone else's, so the
# layers of ours below it (urllib3 under requests) stay out too.
_LEFT = object()


@contextlib.contextmanager
def _left_to_others():
    flag = _in_client.set(True)
    try:
        yield
    finally:
        _in_client.reset(flag)


def _start(library, method, url):
    """(span, token, flag token) for an outbound call; None when a client
    span of ours is already current; _LEFT when the gate is closed."""
    if _in_client.get():
        return None
    gate = _gate[0]
    if gate is not None and gate(library):
        return _LEFT
    m = method.upper() if isinstance(method, str) else method.decode().upper()
    known = m in _http.KNOWN_METHODS
    span = T._make_span(_SCOPE, m if known else "HTTP", T._CURRENT_PARENT, _CLIENT, None, None,
                        None)
    if span._records:
        a = span._attrs
        a["http.request.method"] = m if known else "_OTHER"
        if not known:
            a["http.request.method_original"] = m
        base, _, query = url.partition("?")
        full = _http.redact_userinfo(base)
        if query:
            full += "?" + _http.redact_query(query)
        a["url.full"] = full
        scheme, _, rest = base.partition("://")
        host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
        addr, port = _http.split_host(host, 443 if scheme == "https" else 80)
        if addr:
            a["server.address"] = addr
            a["server.port"] = port
    return span, T._cur_set(span), _in_client.set(True)


def _finish(state, status_code=None, exc=None):
    span, token, flag = state
    try:
        _in_client.reset(flag)
        T._cur_reset(token)
    except ValueError:
        pass
    if span._records:
        if status_code is not None:
            span._attrs["http.response.status_code"] = status_code
            if status_code >= 400:
                span.set_status(2)
                span._attrs["error.type"] = str(status_code)
        if exc is not None:
            span.record_exception(exc)
            span.set_status(2, T._describe(exc))
            span._attrs["error.type"] = type(exc).__qualname__
    span.end()


def _instrument_requests():
    import requests.sessions

    original = requests.sessions.Session.send

    @functools.wraps(original)
    def send(self, request, **kwargs):
        state = _start("requests", request.method, request.url)
        if state is None:
            return original(self, request, **kwargs)
        if state is _LEFT:
            with _left_to_others():
                return original(self, request, **kwargs)
        for k, v in headers_for(state[0]):
            request.headers[k] = v
        try:
            resp = original(self, request, **kwargs)
        except Exception as exc:
            _finish(state, exc=exc)
            raise
        _finish(state, resp.status_code)
        return resp

    requests.sessions.Session.send = send
    return lambda: setattr(requests.sessions.Session, "send", original)


def _instrument_httpx():
    import httpx

    sync_send = httpx.Client.send
    async_send = httpx.AsyncClient.send

    @functools.wraps(sync_send)
    def send(self, request, **kwargs):
        state = _start("httpx", request.method, str(request.url))
        if state is None:
            return sync_send(self, request, **kwargs)
        if state is _LEFT:
            with _left_to_others():
                return sync_send(self, request, **kwargs)
        for k, v in headers_for(state[0]):
            request.headers[k] = v
        try:
            resp = sync_send(self, request, **kwargs)
        except Exception as exc:
            _finish(state, exc=exc)
            raise
        _finish(state, resp.status_code)
        return resp

    @functools.wraps(async_send)
    async def asend(self, request, **kwargs):
        state = _start("httpx", request.method, str(request.url))
        if state is None:
            return await async_send(self, request, **kwargs)
        if state is _LEFT:
            with _left_to_others():
                return await async_send(self, request, **kwargs)
        for k, v in headers_for(state[0]):
            request.headers[k] = v
        try:
            resp = await async_send(self, request, **kwargs)
        except Exception as exc:
            _finish(state, exc=exc)
            raise
        _finish(state, resp.status_code)
        return resp

    httpx.Client.send = send
    httpx.AsyncClient.send = asend

    def undo():
        httpx.Client.send = sync_send
        httpx.AsyncClient.send = async_send
    return undo


def _instrument_urllib3():
    import urllib3.connectionpool

    pool = urllib3.connectionpool.HTTPConnectionPool
    original = pool.urlopen

    @functools.wraps(original)
    def urlopen(self, method, url, body=None, headers=None, *args, **kwargs):
        if _in_client.get():
            return original(self, method, url, body, headers, *args, **kwargs)
        full = url if "://" in url else f"{self.scheme}://{self.host}:{self.port}{url}"
        state = _start("urllib3", method, full)
        if state is None or state is _LEFT:
            return original(self, method, url, body, headers, *args, **kwargs)
        headers = dict(headers) if headers is not None else {}
        for k, v in headers_for(state[0]):
            headers[k] = v
        try:
            resp = original(self, method, url, body, headers, *args, **kwargs)
        except Exception as exc:
            _finish(state, exc=exc)
            raise
        _finish(state, resp.status)
        return resp

    pool.urlopen = urlopen
    return lambda: setattr(pool, "urlopen", original)


_LIBRARIES = {"requests": _instrument_requests, "httpx": _instrument_httpx,
              "urllib3": _instrument_urllib3}


def instrument(libraries=("requests", "httpx", "urllib3")):
    """Instruments each library of `libraries` that is installed; idempotent.
    Returns the names instrumented by this call."""
    done = []
    for name in libraries:
        if name in _patched:
            continue
        try:
            _patched[name] = _LIBRARIES[name]()
        except ImportError:
            continue
        done.append(name)
    return done


def uninstrument():
    for name in list(_patched):
        _patched.pop(name)()
