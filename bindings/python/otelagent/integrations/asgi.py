"""ASGI server spans (Starlette, FastAPI, any ASGI app).

    from otelagent.integrations.asgi import OtelAgentMiddleware
    app = OtelAgentMiddleware(app)

One server span per HTTP request or websocket, named `METHOD route-template`
when the framework reports the route (Starlette and FastAPI put it in
scope["route"]), with the stable HTTP semantic-convention attributes."""

from .. import _agent
from .. import _tracing as T
from ..propagation import _baggage, extract_values
from . import _http
from ._http import (P_ADDRESS, P_CLIENT, P_METHOD, P_PORT, P_PROTO, P_ROUTE, P_SCHEME, P_STATUS,
                    P_UA)

_SCOPE = _http.scope_entries("otelagent.integrations.asgi", "0.2.0")
_SPAN_KEY = "otelagent.server_span"
_SERVER = 2


class OtelAgentMiddleware:
    def __init__(self, app, excluded_urls=None, excluded_urls_var="OTEL_PYTHON_ASGI_EXCLUDED_URLS"):
        self.app = app
        excluded = _http.ExcludedUrls(excluded_urls_var, excluded_urls)
        self.excluded = excluded if excluded else None  # None: no pattern to try
        # The native request path (_native.c), or None: the Python one below.
        self._server = (_http.NativeServer(False, _SCOPE, self.excluded, _full_url)
                        if _http.NativeServer is not None else None)
        self._begin = self._server.begin if self._server is not None else None

    async def __call__(self, scope, receive, send):
        if self._begin is not None:
            call = self._begin(scope, send)
            if call is None:  # not traced: lifespan, excluded, or traced outside
                if scope["type"] == "lifespan":
                    send = _flushing_lifespan_send(send)
                return await self.app(scope, receive, send)
            if call is not NotImplemented:
                # call.send is the application's send (the call itself, which
                # notes the status, when the span records); finish() resets
                # the current span and ends the span.
                try:
                    await self.app(scope, receive, call.send)
                except Exception as exc:
                    _failed(call.span, exc, call)
                    raise
                finally:
                    call.finish()
                return
        await self._python_path(scope, receive, send)

    async def _python_path(self, scope, receive, send):
        typ = scope["type"]
        if (typ != "http" and typ != "websocket") or _SPAN_KEY in scope:
            # Lifespan, or another instance of this middleware is outside.
            if typ == "lifespan":
                send = _flushing_lifespan_send(send)
            return await self.app(scope, receive, send)
        path = scope["path"]
        if self.excluded is not None and self.excluded.excluded(path, _full_url, scope):
            return await self.app(scope, receive, send)

        tp = ts = bag = xray = ua = host = None
        for k, v in scope["headers"]:
            # Header names are lower-case bytes in ASGI.
            if k == b"traceparent":
                tp = v
            elif k == b"user-agent":
                ua = v
            elif k == b"host":
                host = v
            elif k == b"tracestate":
                ts = v if ts is None else ts + b"," + v
            elif k == b"baggage":
                bag = v if bag is None else bag + b"," + v
            elif k == b"x-amzn-trace-id":
                xray = v
        parent = None
        bag_token = None
        if tp is not None or xray is not None or bag is not None:
            parent, baggage = extract_values(tp, ts, bag, xray)
            if baggage:
                bag_token = _baggage.set(baggage)

        method = scope.get("method", "GET") if typ == "http" else "GET"
        known = _http.known_method(method)
        first_name = method if known else "HTTP"
        span = T._make_span(_SCOPE, first_name, parent, _SERVER, None, None, None)
        scope[_SPAN_KEY] = span
        token = T._cur_set(span)
        recording = span._records
        try:
            if recording:
                scheme = scope.get("scheme", "http")
                a = span._attrs
                if known:
                    a["http.request.method"] = P_METHOD(method)
                else:
                    a["http.request.method"] = "_OTHER"
                    a["http.request.method_original"] = method
                a["url.path"] = path
                a["url.scheme"] = P_SCHEME(scheme)
                q = scope.get("query_string")
                if q:
                    a["url.query"] = _http.redact_query(q.decode("latin-1"))
                server = scope.get("server")
                if host is not None:
                    hp = _http.server_host(
                        host, server[1] if server else (443 if scheme in ("https", "wss") else 80))
                    a["server.address"], a["server.port"] = hp
                elif server:
                    a["server.address"] = P_ADDRESS(server[0])
                    a["server.port"] = P_PORT(server[1])
                client = scope.get("client")
                if client:
                    a["client.address"] = P_CLIENT(client[0])
                if ua is not None:
                    a["user_agent.original"] = P_UA(ua.decode("latin-1"))
                a["network.protocol.version"] = P_PROTO(scope.get("http_version", "1.1"))
                send_wrapper = _StatusSend(send)
            else:
                send_wrapper = send
        except BaseException:
            _http.reset_request(token, bag_token)  # nothing of this request stays current
            raise
        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            if recording:
                _failed(span, exc, send_wrapper)
            raise
        finally:
            _http.reset_request(token, bag_token)
            if recording:
                template, text = _route_template(scope)
                # A name the application set (update_name) is kept.
                rename = span._name is first_name
                if template is not None:
                    span._attrs["http.route"] = P_ROUTE(template)
                    if rename and text is not None:
                        span._name = (f"{method} {text}" if typ == "http"
                                      else f"WEBSOCKET {text}")
                elif typ == "websocket" and rename:
                    span._name = "WEBSOCKET"
                code = send_wrapper.status
                if code is not None:
                    span._attrs["http.response.status_code"] = P_STATUS(code)
                    if code >= 500:
                        if span._status != 2:
                            span.set_status(2)
                        span._attrs.setdefault("error.type", str(code))
                span.end()


def _route_template(scope):
    """(template, its text) of the route the framework reports in
    scope["route"], (None, None) when there is none. A route whose lookup
    or text raises is ignored: the request's own outcome stands (the span
    is still ended)."""
    try:
        route = scope.get("route")
        template = getattr(route, "path_format", None) or getattr(route, "path", None)
        if not template:
            return None, None
    except Exception:
        return None, None
    try:
        return template, str(template)
    except Exception:
        return template, None


def _failed(span, exc, call):
    """An exception escaped the application: recorded, ERROR, and a 500 when
    no response had started."""
    _http.request_failed(span, exc)
    if span._records and call.status is None:
        call.status = 500


def _flushing_lifespan_send(send):
    """The lifespan's `send`, flushing (for at most the exit bound,
    OTELAGENT_SHUTDOWN_TIMEOUT_MS) before the server learns that the app has
    shut down. uvicorn (alone, with --workers, or as gunicorn's worker)
    catches SIGTERM, shuts down, then raises the signal again with its default
    action: the process dies without atexit, so without the library's exit
    flush. This is the last moment its spans can be sent."""

    async def lifespan_send(message):
        if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
            # Blocks the loop (GIL released): it serves nothing any more.
            _agent.flush(_agent.exit_timeout_ms())
        await send(message)

    return lifespan_send


class _StatusSend:
    """The ASGI `send` of a traced request: notes the response status on the
    way. A plain callable returning the real send's awaitable, cheaper than a
    coroutine wrapping it."""

    __slots__ = ("send", "status")

    def __init__(self, send):
        self.send = send
        self.status = None

    def __call__(self, message):
        if self.status is None and message["type"] == "http.response.start":
            self.status = message["status"]
        return self.send(message)


def _full_url(scope):
    host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
    q = scope.get("query_string") or b""
    url = f"{scope.get('scheme', 'http')}://{host}{scope.get('root_path', '')}{scope['path']}"
    return url + ("?" + q.decode("latin-1") if q else "")


if _http.NativeServer is not None:
    # From 3.10, __call__ in C (_native.c's AsgiRun: the same steps as the
    # Python __call__ above, without a Python frame per request). It shows
    # the Python function's name, signature and code (so that servers
    # telling ASGI 3 from ASGI 2 by inspect.iscoroutinefunction see a
    # coroutine function).
    _native_call = T.native.bind_asgi(OtelAgentMiddleware, _flushing_lifespan_send, _failed)
    if _native_call is not None:
        OtelAgentMiddleware.__call__ = _native_call
    del _native_call
