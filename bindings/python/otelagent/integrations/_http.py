"""What the server and client integrations share: excluded URLs, query
redaction, method names, and the span scope entries."""

import os
import re

from .. import _ffi
from .. import _record as R
from .. import _tracing as T
from ..propagation import _baggage

# Stable HTTP semantic conventions: known methods; others are "_OTHER".
KNOWN_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS",
                           "TRACE", "PATCH", "QUERY"))


def known_method(method):
    """Whether a request's method is one of KNOWN_METHODS: only a str can be
    (a value of another type, or one that cannot be hashed, is not)."""
    if not isinstance(method, str):
        return False
    try:
        return method in KNOWN_METHODS
    except Exception:  # a str subclass whose hash or comparison raises
        return False

# Query parameters whose values are never recorded (url.query keeps the name
# with the value "REDACTED"): the semantic conventions' list plus common
# secret names.
SECRET_QUERY_NAMES = frozenset((
    "awsaccesskeyid", "signature", "sig", "x-goog-signature", "x-amz-signature",
    "x-amz-credential", "x-amz-security-token", "token", "access_token", "refresh_token",
    "id_token", "api_key", "apikey", "api-key", "key", "password", "passwd", "pwd", "secret",
    "client_secret", "auth", "authorization", "session", "sessionid", "session_id", "code",
    "jwt", "credential", "credentials", "private_key"))


def redact_query(query):
    """`query` with the values of secret parameters replaced by REDACTED."""
    if not query:
        return query
    out = []
    changed = False
    for part in query.split("&"):
        name, eq, _ = part.partition("=")
        if eq and name.lower() in SECRET_QUERY_NAMES:
            out.append(name + "=REDACTED")
            changed = True
        else:
            out.append(part)
    return "&".join(out) if changed else query


def redact_userinfo(url):
    """A URL without its user:password@ part (url.full must not carry it)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, tail = rest.partition("/")
    if "@" in authority:
        authority = "REDACTED:REDACTED@" + authority.rsplit("@", 1)[1]
    return f"{scheme}://{authority}{slash}{tail}"


class ExcludedUrls:
    """The OTEL_PYTHON_EXCLUDED_URLS convention: comma-separated regular
    expressions, any of which found (re.search) in the URL excludes it. The
    framework's own variable (e.g. OTEL_PYTHON_FASTAPI_EXCLUDED_URLS) wins
    when set; an explicit list passed in code wins over both."""

    def __init__(self, framework_var=None, explicit=None):
        if explicit is None:
            explicit = os.environ.get(framework_var) if framework_var else None
            if explicit is None:
                explicit = os.environ.get("OTEL_PYTHON_EXCLUDED_URLS", "")
        if isinstance(explicit, str):
            explicit = [p.strip() for p in explicit.split(",") if p.strip()]
        self.patterns = list(explicit)
        self._re = re.compile("|".join(f"(?:{p})" for p in self.patterns)) if self.patterns else None
        # Patterns that can only match a full URL are tried on one; the rest
        # on the path alone, which is cheaper to have.
        self._needs_full = any("//" in p or p.startswith("http") for p in self.patterns)

    def __bool__(self):
        return self._re is not None

    def excluded(self, path, full_url=None, request=None):
        """Whether `path` (or the full URL, `full_url(request)`, made only
        when a pattern needs it) is excluded."""
        r = self._re
        if r is None:
            return False
        if r.search(path):
            return True
        if self._needs_full and full_url is not None:
            return r.search(full_url(request)) is not None
        return False


# Server span attribute values that repeat from request to request, packed
# once each (see _record.PackedCache).
_P = R.PackedCache
P_METHOD, P_SCHEME, P_ADDRESS, P_PORT = (_P("http.request.method"), _P("url.scheme"),
                                         _P("server.address"), _P("server.port"))
P_CLIENT, P_UA, P_PROTO = (_P("client.address"), _P("user_agent.original"),
                           _P("network.protocol.version"))
P_ROUTE, P_STATUS = _P("http.route"), _P("http.response.status_code")
hosts = {}  # Host header -> (server.address, server.port) entries


def server_host(host, default_port):
    """The packed (server.address, server.port) entries of a Host header."""
    hp = hosts.get(host)
    if hp is None:
        addr, port = split_host(host if isinstance(host, str) else host.decode("latin-1"),
                                default_port)
        hp = (P_ADDRESS(addr), P_PORT(port))
        if len(hosts) < 64:
            hosts[host] = hp
    return hp


def scope_entries(name, version):
    entries = R.string_entry(R.TAG_SCOPE_NAME, name)
    if version:
        entries += R.string_entry(R.TAG_SCOPE_VERSION, version)
    return entries


def split_host(host, default_port):
    """(server.address, server.port) from a Host header value."""
    if not host:
        return None, default_port
    if host.startswith("["):  # [v6]:port
        addr, _, rest = host[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        addr, _, port = host.rpartition(":") if host.count(":") == 1 else (host, "", "")
    try:
        return addr, int(port) if port else default_port
    except ValueError:
        return addr, default_port


def claim_app(app, log, ours=None):
    """False (with one warning when the contrib instrumentation did it) when
    ``app`` is already instrumented, so that no request gets two server
    spans; True when the caller may instrument it. ``ours(app)`` tells
    whether it was this package (default: its _otelagent_instrumented)."""
    if getattr(app, "_is_instrumented_by_opentelemetry", False):
        mine = ours(app) if ours is not None else getattr(app, "_otelagent_instrumented", False)
        if not mine:
            log.warning("otelagent: %r is already instrumented by OpenTelemetry; "
                        "not adding a second server span", app)
        return False
    return True


def request_failed(span, exc):
    """An exception escaped the application's call, or its streamed body:
    recorded, ERROR, and error.type (the server middlewares' Python path and
    the native one)."""
    if span._records:
        span.record_exception(exc)
        span.set_status(2, T._describe(exc))
        span._attrs["error.type"] = type(exc).__qualname__


def reset_request(token, bag_token):
    """Resets the request's current span and baggage (either token may be
    None); a token of another context (a generator resumed elsewhere) leaves
    that context alone."""
    if token is not None:
        try:
            T._cur_reset(token)
        except ValueError:
            pass
    if bag_token is not None:
        try:
            _baggage.reset(bag_token)
        except ValueError:
            pass


def _bind_native():
    """The native module's server-span path (see _native.c), bound to this
    package's span classes, context variables and caches; None without it."""
    native = T.native
    if native is None:
        return None
    import ctypes

    from .. import propagation
    if not native.bind_server(T.Span, T.NonRecordingSpan, T._classes, T._current,
                              propagation._baggage, vars(T), hosts, server_host, redact_query,
                              KNOWN_METHODS, request_failed,
                              *(ctypes.cast(fn, ctypes.c_void_p).value
                                for fn in (_ffi.tracestate_normalize, _ffi.baggage_normalize))):
        return None
    propagation.propagators()
    return native.Server


# Server(wsgi, scope_entries, excluded, full_url): one middleware's native
# request path, or None.
NativeServer = _bind_native()
