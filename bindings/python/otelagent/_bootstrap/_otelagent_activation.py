"""otelagent's zero-code activation, run by the sitecustomize.py beside it in
every Python process started by `otelagent-instrument` or reached by the
preload object (LD_PRELOAD, /etc/ld.so.preload).

This directory is on PYTHONPATH, so everything here runs in processes that
never asked for tracing: it must cost next to nothing, import nothing heavy
(not even the otelagent package, which loads the shared library), write
nothing, start no thread, and never raise. What it does:

- stands down when OTEL_SDK_DISABLED=true, when the program is on the deny
  list (package managers and CLI tools, not services), or when
  opentelemetry-instrument's auto-instrumentation is also active (OpenTelemetry
  wins: see `otel_wins`);
- installs one import hook that instruments FastAPI/Starlette, Flask,
  requests, httpx, urllib3 and logging when (and only if) the application
  imports them, minus OTEL_PYTHON_DISABLED_INSTRUMENTATIONS. Applications are
  instrumented when they are constructed (the class's __init__ is wrapped), so
  apps created after the import are traced without a code change. The agent
  itself is loaded and started only then.

PYTHONPATH keeps this directory, so the interpreters a service starts (uvicorn
--workers and multiprocessing spawn their workers as new interpreters) are
activated the same way."""

import os
import sys
from _thread import _local, get_ident

_thread_state = _local()  # the hooks this thread has yet to run (see _run)

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_DIR = os.path.dirname(HERE)

# Set on sys by the first bootstrap that activates in a process. Another copy
# of the bootstrap on the path (a second install, or this directory spelled
# twice: through a symlink and through its real path) then does nothing: a
# per-module flag would not see it when the copies are different modules.
ACTIVATED = "_otelagent_activated"

# Programs that are not services, matched (fnmatch) against the basename of
# the script Python runs (sys.argv[0]) and the module of `python -m`; a
# pattern with a '/' is matched against the full script path instead.
# OTELAGENT_PYTHON_DENY replaces the list (comma-separated; empty: deny
# nothing); a value starting with '+' adds to it.
DEFAULT_DENY = (
    # Python packaging and environments
    "pip", "pip[0-9]*", "pip-[0-9]*", "pipx", "pipenv", "poetry", "pdm", "hatch", "flit",
    "twine", "virtualenv", "venv", "ensurepip", "easy_install*", "conda", "mamba",
    "tox", "nox", "pre-commit", "build", "_in_process.py",
    "py_compile", "compileall", "pydoc*", "site",
    # system package managers and distribution tools written in Python
    "yum", "yum-*", "yumdownloader", "dnf", "dnf-[0-9]*", "repoquery", "needs-restarting",
    "package-cleanup", "apt-listchanges", "unattended-upgrade*", "add-apt-repository",
    "lsb_release", "py3compile", "py3clean", "pycompile", "pyclean", "dh_python*",
    "cloud-init", "networkd-dispatcher", "firewall-cmd", "semanage", "sosreport",
    # cloud and configuration CLIs
    "aws", "aws_completer", "azure.cli", "gcloud*", "gsutil*", "ansible*", "salt*",
    # launchers
    "otelagent-instrument", "otelagent_instrument", "opentelemetry-instrument",
    "opentelemetry-bootstrap",
)

# Denied programs that start the user's service (`poetry run uvicorn ...`,
# `tox`, `conda run`, the launchers): not traced themselves, but they leave
# PYTHONPATH alone, so the program they start is judged by its own name, as
# it always is under the preload. Other denied tools (pip) take the bootstrap
# off PYTHONPATH for their children.
RUNNERS = ("pipx", "pipenv", "poetry", "pdm", "hatch", "conda", "mamba", "tox", "nox",
           "otelagent-instrument", "otelagent_instrument", "opentelemetry-instrument")

# Names accepted in OTEL_PYTHON_DISABLED_INSTRUMENTATIONS (the contrib
# instrumentations' entry-point names, plus a few aliases).
INSTRUMENTATIONS = ("fastapi", "flask", "requests", "httpx", "urllib3", "logging")
_ALIASES = {"starlette": "fastapi", "asgi": "fastapi", "wsgi": "flask"}

_state = {"otel": False, "announced": False}


def say(message):
    """The one line a process gets when activation stands down or fails."""
    try:
        sys.stderr.write(f"otelagent: {message}\n")
        sys.stderr.flush()
    except Exception:  # no usable stderr: stay silent rather than fail
        pass


def _true(value):
    # As the library reads booleans: blanks (space, tab) around, any case.
    return (value or "").strip(" \t").lower() == "true"


def deny_patterns(environ=os.environ):
    value = environ.get("OTELAGENT_PYTHON_DENY")
    if value is None:
        return DEFAULT_DENY
    value = value.strip()
    extend = value.startswith("+")
    items = tuple(p.strip() for p in value.lstrip("+").split(",") if p.strip())
    return DEFAULT_DENY + items if extend else items


def _module_of(args):
    """The module of `python ... -m MODULE` in an interpreter's full
    arguments, with short options combined (-um, -bBm MODULE) or not."""
    i = 1
    while i < len(args):
        a = args[i]
        if not a.startswith("-") or a in ("-", "--"):
            return None  # a script, stdin, or the end of the options
        if a.startswith("--"):
            i += 2 if a == "--check-hash-based-pycs" else 1
            continue
        for j, c in enumerate(a[1:], 2):
            if c == "m":
                rest = a[j:]
                return rest or (args[i + 1] if i + 1 < len(args) else None)
            if c == "c":
                return None
            if c in "WX":  # takes the rest, or the next argument
                i += 0 if a[j:] else 1
                break
        i += 1
    return None


def _orig_argv():
    """The interpreter's own arguments: sys.orig_argv (3.10+), else
    /proc/self/cmdline (3.9 has no orig_argv)."""
    args = getattr(sys, "orig_argv", None)
    if args is not None:
        return args
    try:
        with open("/proc/self/cmdline", "rb") as f:
            return [os.fsdecode(a) for a in f.read().split(b"\0")[:-1]]
    except OSError:
        return []


def program_names(argv, orig_argv):
    """What the deny list is matched against: the script's path, or the
    module of `python -m` (sys.argv[0] is only '-m' while site runs);
    `orig_argv` is called only then."""
    if not argv:
        return []
    first = argv[0]
    if first == "-m":
        module = _module_of(orig_argv())
        return [module] if module else []
    if first in ("", "-c", "-"):
        return []
    return [first]


def _literal_prefix(pattern):
    for i, c in enumerate(pattern):
        if c in "*?[":
            return pattern[:i]
    return pattern


def _match(name, pattern):
    # fnmatch imports re, a few milliseconds every Python process would pay:
    # only a name that starts with the pattern's literal part gets that far.
    if not name.startswith(_literal_prefix(pattern)):
        return False
    if name == pattern:
        return True
    from fnmatch import fnmatchcase
    return fnmatchcase(name, pattern)


def denied(names, patterns):
    """The pattern that denies one of `names`, or None."""
    for name in names:
        base = os.path.basename(name)
        top = name.split(".", 1)[0] if "/" not in name else None
        for pattern in patterns:
            if "/" in pattern:
                if _match(name, pattern):
                    return pattern
            elif _match(base, pattern) or (top and _match(top, pattern)):
                return pattern
    return None


def disabled_instrumentations(environ=os.environ):
    out = set()
    for item in (environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS") or "").split(","):
        item = item.strip().lower()
        if item == "*":  # all of them, as opentelemetry-instrument reads it
            return set(INSTRUMENTATIONS)
        if item:
            out.add(_ALIASES.get(item, item))
    return out


def opentelemetry_instrument_active(path=None):
    """True when opentelemetry-instrument's sitecustomize directory is on
    sys.path: its sitecustomize runs after ours (we chain to it)."""
    tail = os.path.join("opentelemetry", "instrumentation", "auto_instrumentation")
    return any(os.path.normpath(p or ".").endswith(tail) for p in (path or sys.path))


def otel_wins():
    """The rule against tracing twice: OpenTelemetry's own set-up wins. True
    when a TracerProvider of the OpenTelemetry SDK is the global provider
    (set by the application or by opentelemetry-instrument); then the
    zero-code integrations leave the work to it. Once true, stays true (the
    API allows setting the provider once)."""
    if _state["otel"]:
        return True
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return False
    try:
        provider = trace.get_tracer_provider()
    except Exception:
        return False
    if not type(provider).__module__.startswith("opentelemetry.sdk"):
        return False
    _state["otel"] = True
    if not _state["announced"]:
        _state["announced"] = True
        say("an OpenTelemetry SDK TracerProvider is set; zero-code tracing is left to it")
    return True


# The OpenTelemetry contrib instrumentor of each client library.
_CONTRIB = {
    "requests": ("opentelemetry.instrumentation.requests", "RequestsInstrumentor"),
    "httpx": ("opentelemetry.instrumentation.httpx", "HTTPXClientInstrumentor"),
    "urllib3": ("opentelemetry.instrumentation.urllib3", "URLLib3Instrumentor"),
}


def contrib_traces(library):
    """True when an OpenTelemetry contrib instrumentation owns this call of
    `library` (whatever the TracerProvider, otelagent.otel's included): its
    instrumentor for the library is on (it makes the span, or the user
    excluded the URL from it), or the call is made inside a contrib client
    span (contrib marks the context with suppress_http_instrumentation)."""
    try:
        module, name = _CONTRIB[library]
        cls = getattr(sys.modules.get(module), name, None)
        instance = getattr(cls, "_instance", None)  # BaseInstrumentor is a singleton
        if getattr(instance, "is_instrumented_by_opentelemetry", False):
            return True
        utils = sys.modules.get("opentelemetry.instrumentation.utils")
        return utils is not None and not utils.is_http_instrumentation_enabled()
    except Exception:  # a contrib of another shape: trace the call
        return False


def _client_gate(library):
    return otel_wins() or contrib_traces(library)


def holds_bootstrap(entry):
    """True for a path entry (any spelling) that holds a copy of this
    bootstrap, ours or another install's."""
    return os.path.isfile(os.path.join(entry or ".", "_otelagent_activation.py"))


def _forget_path():
    """Takes this directory off PYTHONPATH for the programs this one starts
    (a denied tool's Python children start as they would without us)."""
    value = os.environ.get("PYTHONPATH")
    if value is None:
        return
    # An empty entry (the current directory to Python) is the user's: kept.
    rest = [p for p in value.split(os.pathsep) if not p or not holds_bootstrap(p)]
    if rest:
        os.environ["PYTHONPATH"] = os.pathsep.join(rest)
    else:
        del os.environ["PYTHONPATH"]


# ---- Loading the package and the integrations (only when needed) ------------

def import_otelagent():
    """The otelagent package: the interpreter's own when it has one, else
    the copy this bootstrap belongs to (an interpreter reached by the preload
    without the package installed)."""
    mod = sys.modules.get("otelagent")
    if mod is not None:
        return mod
    from importlib.machinery import PathFinder
    if PathFinder.find_spec("otelagent") is None:
        from importlib.util import module_from_spec, spec_from_file_location
        spec = spec_from_file_location("otelagent", os.path.join(PACKAGE_DIR, "__init__.py"),
                                       submodule_search_locations=[PACKAGE_DIR])
        mod = module_from_spec(spec)
        sys.modules["otelagent"] = mod
        try:
            spec.loader.exec_module(mod)
        except BaseException:
            del sys.modules["otelagent"]
            raise
        return mod
    import otelagent
    return otelagent


def _instrument_app(app, integration):
    if otel_wins():
        return
    import_otelagent()
    if integration == "fastapi":
        from otelagent.integrations import fastapi as integ
    else:
        from otelagent.integrations import flask as integ
    integ.instrument_app(app)


def _wrap_init(cls, integration):
    import functools

    original = cls.__init__
    if getattr(original, "_otelagent_zero_code", False):
        return

    @functools.wraps(original)
    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        try:
            _instrument_app(self, integration)
        except Exception as exc:
            say(f"could not instrument {type(self).__name__} ({type(exc).__name__}: {exc}); "
                "it runs untraced")

    __init__._otelagent_zero_code = True
    cls.__init__ = __init__


def _on_fastapi(module):
    _wrap_init(module.FastAPI, "fastapi")


def _on_starlette(module):
    _wrap_init(module.Starlette, "fastapi")


def _on_flask(module):
    _wrap_init(module.Flask, "flask")


def _on_client(name):
    def hook(module):
        if otel_wins():
            return
        otelagent = import_otelagent()
        from otelagent.integrations import clients
        otelagent.start()
        clients.set_gate(_client_gate)
        clients.instrument((name,))
    return hook


# OTEL_PYTHON_LOG_CORRELATION=true's format: otelagent.integrations.logging's
# DEFAULT_FORMAT (the contrib logging instrumentation's), spelled out here
# because importing that module loads the agent (a test keeps them equal).
LOG_FORMAT = ("%(asctime)s %(levelname)s [%(name)s] [%(filename)s:%(lineno)d] "
              "[trace_id=%(otelTraceID)s span_id=%(otelSpanID)s "
              "resource.service.name=%(otelServiceName)s "
              "trace_sampled=%(otelTraceSampled)s] - %(message)s")


def _on_logging(module):
    """The correlation fields of otelagent.integrations.logging on every
    record, without loading the agent: most Python programs import logging
    and never make a span. No span can be current before otelagent._tracing
    is imported (by an instrumented app or client, or the application), so
    the factory looks for it per record; the service name is the
    environment's, which the zero-code agent starts from."""
    previous = module.getLogRecordFactory()
    service = os.environ.get("OTEL_SERVICE_NAME", "")
    modules = sys.modules

    def factory(*args, **kwargs):
        record = previous(*args, **kwargs)
        tracing = modules.get("otelagent._tracing")
        span = tracing._cur_get() if tracing is not None else None
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

    module.setLogRecordFactory(factory)
    if _true(os.environ.get("OTEL_PYTHON_LOG_CORRELATION")):
        level = getattr(module, (os.environ.get("OTEL_PYTHON_LOG_LEVEL") or "info").upper(),
                        module.INFO)
        module.basicConfig(format=os.environ.get("OTEL_PYTHON_LOG_FORMAT") or LOG_FORMAT,
                           level=level if isinstance(level, int) else module.INFO)


_HOOKS = {
    "fastapi.applications": ("fastapi", _on_fastapi),
    "starlette.applications": ("fastapi", _on_starlette),
    "flask.app": ("flask", _on_flask),
    "requests": ("requests", _on_client("requests")),
    "httpx": ("httpx", _on_client("httpx")),
    "urllib3": ("urllib3", _on_client("urllib3")),
    "logging": ("logging", _on_logging),
}


def _run(name, hook, module):
    """Runs a hook now or, when this thread is already running one (a hook
    imports modules that have hooks of their own: the otelagent package
    imports logging), right after that one. Per thread: an import finished on
    another thread runs its hook there at once, neither lost nor left to
    wait for this one."""
    pending = getattr(_thread_state, "pending", None)
    if pending is not None:
        pending.append((name, hook, module))
        return
    _thread_state.pending = pending = [(name, hook, module)]
    try:
        while pending:
            n, h, m = pending.pop(0)
            try:
                h(m)
            except Exception as exc:
                say(f"could not instrument {n} ({type(exc).__name__}: {exc}); it runs untraced")
    finally:
        _thread_state.pending = None


class _Loader:
    """Runs the module's own loader, puts it back on the module, then the
    hook."""

    def __init__(self, loader, name, hook):
        self._loader = loader
        self._name = name
        self._hook = hook

    def __getattr__(self, attr):  # get_resource_reader, is_package, ...
        return getattr(self._loader, attr)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        spec = module.__spec__
        try:
            self._loader.exec_module(module)
        finally:
            module.__loader__ = self._loader
            if spec is not None:
                spec.loader = self._loader
        _run(self._name, self._hook, module)


class _Finder:
    """A meta-path finder that only answers for the watched modules, by asking
    the finders after it and wrapping the loader they return."""

    # Marks every finder of this bootstrap, whichever copy defined the class:
    # two of them asking each other would never end.
    _otelagent_finder = True

    def __init__(self, hooks):
        self._hooks = hooks
        self._busy = set()  # (thread, module) being looked up through this finder

    def find_spec(self, fullname, path=None, target=None):
        hook = self._hooks.get(fullname)
        if hook is None:
            return None
        key = (get_ident(), fullname)
        if key in self._busy:  # a finder further on asked us again
            return None
        self._busy.add(key)
        try:
            for finder in sys.meta_path:
                if getattr(finder, "_otelagent_finder", False):
                    continue
                find = getattr(finder, "find_spec", None)
                spec = find(fullname, path, target) if find is not None else None
                if spec is not None:
                    break
            else:
                return None
        finally:
            self._busy.discard(key)
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        self._hooks.pop(fullname, None)  # once per process
        spec.loader = _Loader(spec.loader, fullname, hook)
        return spec


def activate():
    """What the sitecustomize runs, once per process whatever the number of
    copies on the path. Never raises."""
    if getattr(sys, ACTIVATED, False):
        return
    try:
        setattr(sys, ACTIVATED, True)
        _activate()
    except Exception as exc:
        say(f"zero-code activation failed ({type(exc).__name__}: {exc}); running untraced")


def _activate():
    if sys.version_info < (3, 9) or _true(os.environ.get("OTEL_SDK_DISABLED")):
        return
    names = program_names(sys.argv, _orig_argv)
    if names and denied(names, deny_patterns()):
        if not denied(names, RUNNERS):
            _forget_path()
        return
    if opentelemetry_instrument_active():
        _state["otel"] = True
        say("opentelemetry-instrument is active in this process; zero-code tracing is "
            "left to it")
        return
    off = disabled_instrumentations()
    hooks = {}
    for module_name, (integration, hook) in _HOOKS.items():
        if integration in off:
            continue
        loaded = sys.modules.get(module_name)
        if loaded is not None:
            _run(module_name, hook, loaded)
        else:
            hooks[module_name] = hook
    if hooks:
        sys.meta_path.insert(0, _Finder(hooks))


def run_next_sitecustomize():
    """Runs the sitecustomize that Python would have run without this
    directory (the first one further on sys.path, skipping every copy of
    this bootstrap: chaining into one would chain into itself again), as
    `sitecustomize`. Its exceptions propagate: site reports them as it
    would have."""
    from importlib.machinery import PathFinder

    rest = []
    seen = False
    for p in sys.path:
        ours = holds_bootstrap(p)
        seen = seen or ours
        if seen and not ours:
            rest.append(p)
    spec = PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    from importlib.util import module_from_spec
    module = module_from_spec(spec)
    ours = sys.modules.get("sitecustomize")
    sys.modules["sitecustomize"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        if ours is not None:
            sys.modules["sitecustomize"] = ours
        raise
