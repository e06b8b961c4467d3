"""The ASGI middleware's __call__ in C (_native.c's AsgiRun, from CPython
3.10): what servers, asyncio and anyio see is a coroutine function returning
a coroutine, and each way a coroutine is driven (awaited, cancelled, thrown
into, closed, dropped) ends the request's span as the Python __call__ does.
Each behaviour is checked on both, the Python one being the function the C
one stands in for."""

import asyncio
import gc
import inspect
import uuid

import pytest

from conftest import attrs, wait_for

T = pytest.importorskip("otelagent._tracing")
if T.native is None:
    pytest.skip("the native module is not in use", allow_module_level=True)

from otelagent.integrations.asgi import OtelAgentMiddleware  # noqa: E402

if not hasattr(OtelAgentMiddleware.__call__, "__wrapped__"):
    pytest.skip("__call__ is Python here (before 3.10)", allow_module_level=True)

PATHS = ["native", "python"]


def entry(mw, which):
    """The middleware's C __call__, or the Python one it stands in for."""
    return mw if which == "native" else OtelAgentMiddleware.__call__.__wrapped__.__get__(mw)


def scope(path, typ="http"):
    return {"type": typ, "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
            "query_string": b"", "headers": [(b"host", b"svc:80")],
            "client": ("10.0.0.1", 5000), "server": ("127.0.0.1", 8000), "state": {}}


async def receive():
    return {"type": "http.request", "body": b"", "more_body": False}


async def send(message):
    pass


class Pause:
    """An awaitable that suspends its awaiter once, yielding "paused"."""

    def __await__(self):
        return (yield "paused")


def one_span(exported, path):
    """The exported server span of `path` (waits for it)."""
    found = []

    def have():
        found[:] = [s for s in exported.spans() if attrs(s).get("url.path") == path]
        return bool(found)
    wait_for(have, 15, f"the span of {path}")
    assert len(found) == 1, found
    return found[0]


def test_servers_asyncio_and_anyio_see_a_coroutine_function(agent):
    import anyio
    import uvicorn

    seen = []

    async def app(scope, receive, send):
        seen.append(scope["path"])
    mw = OtelAgentMiddleware(app)
    assert type(OtelAgentMiddleware.__call__).__name__ == "NativeMethod"
    # How uvicorn, hypercorn and granian tell ASGI 3 from ASGI 2.
    assert inspect.iscoroutinefunction(mw.__call__)
    assert asyncio.iscoroutinefunction(mw.__call__)
    assert str(inspect.signature(mw)) == "(scope, receive, send)"
    config = uvicorn.Config(mw, log_level="error")
    config.load()
    assert config.interface == "asgi3"
    run = mw(scope("/a"), receive, send)
    assert type(run).__name__ == "AsgiRun"
    assert asyncio.iscoroutine(run) and inspect.isawaitable(run)
    assert run.__qualname__ == "OtelAgentMiddleware.__call__"  # what a task's repr shows
    run.close()  # never started: nothing to end, nothing warned

    async def main():
        await asyncio.create_task(mw(scope("/b"), receive, send))
        async with anyio.create_task_group() as tg:  # anyio checks for a coroutine
            tg.start_soon(mw, scope("/c"), receive, send)
    asyncio.run(main())
    assert seen == ["/b", "/c"]


@pytest.mark.parametrize("which", PATHS)
def test_nothing_runs_before_it_is_awaited_and_then_in_the_awaiting_task(agent, exported,
                                                                           which):
    """Made in one context and awaited in a task (which copies the context
    when it is created): begin() and finish() run in the task, so the span
    is current in the application and nothing is left current anywhere."""
    import otelagent
    path = f"/later/{uuid.uuid4().hex[:8]}"
    current = []

    async def app(scope, receive, send):
        span = otelagent.get_current_span()
        current.append((span, span.is_recording()))
    mw = OtelAgentMiddleware(app)
    entry(mw, which)(scope(path + "-closed"), receive, send).close()
    assert current == []

    async def main():
        run = entry(mw, which)(scope(path), receive, send)
        assert current == []
        await asyncio.get_running_loop().create_task(run)
        return otelagent.get_current_span()
    assert asyncio.run(main()) is otelagent.INVALID_SPAN
    assert len(current) == 1 and current[0][1]
    span = one_span(exported, path)
    assert span.span_id == current[0][0].context.span_id.to_bytes(8, "big")
    assert not [s for s in exported.spans() if attrs(s).get("url.path") == path + "-closed"]
    assert otelagent.get_current_span() is otelagent.INVALID_SPAN


@pytest.mark.parametrize("which", PATHS)
def test_a_cancelled_request_ends_its_span(agent, exported, which):
    import otelagent
    path = f"/cancelled/{uuid.uuid4().hex[:8]}"
    cleaned = []

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.append(otelagent.get_current_span().is_recording())
    mw = OtelAgentMiddleware(app)

    async def main():
        task = asyncio.create_task(entry(mw, which)(scope(path), receive, send))
        await asyncio.sleep(0)  # the task runs up to its wait
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    asyncio.run(main())
    assert cleaned == [True]
    span = one_span(exported, path)
    # Cancelled is not an Exception: not recorded as the application's error.
    assert attrs(span)["http.response.status_code"] == 200
    assert span.status.code == 0 and not span.events
    assert otelagent.get_current_span() is otelagent.INVALID_SPAN


@pytest.mark.parametrize("which", PATHS)
@pytest.mark.parametrize("how", ["close", "drop"])
def test_a_suspended_request_closed_or_dropped_ends_its_span(agent, exported, which, how):
    import otelagent
    path = f"/{how}/{uuid.uuid4().hex[:8]}"
    cleaned = []

    async def app(scope, receive, send):
        try:
            await Pause()
        finally:
            cleaned.append(otelagent.get_current_span().is_recording())
    run = entry(OtelAgentMiddleware(app), which)(scope(path), receive, send)
    assert run.send(None) == "paused"
    assert otelagent.get_current_span().is_recording()  # driven by hand: this context's
    if how == "close":
        assert run.close() is None
        run.close()  # again: nothing
    else:  # closed by its finalizer, as a coroutine is
        del run
        gc.collect()
    assert cleaned == [True]
    span = one_span(exported, path)
    assert span.status.code == 0 and not span.events
    assert otelagent.get_current_span() is otelagent.INVALID_SPAN


@pytest.mark.parametrize("which", PATHS)
def test_throw_passes_through(agent, exported, which):
    """throw() reaches the application, which may take it and go on; the
    middleware returns None whatever the application returned (the Python
    __call__ awaits it and returns nothing)."""
    path = f"/thrown/{uuid.uuid4().hex[:8]}"

    async def app(scope, receive, send):
        try:
            await Pause()
        except LookupError as exc:
            await Pause()
            return f"took {exc.args[0]}"
    run = entry(OtelAgentMiddleware(app), which)(scope(path), receive, send)
    assert run.send(None) == "paused"
    assert run.throw(KeyError("k")) == "paused"
    with pytest.raises(StopIteration) as stop:
        run.send(None)
    assert stop.value.value is None
    with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
        run.send(None)
    assert one_span(exported, path).status.code == 0


@pytest.mark.parametrize("which", PATHS)
def test_an_exception_thrown_in_is_recorded_and_raised(agent, exported, which):
    import otelagent
    path = f"/thrown-out/{uuid.uuid4().hex[:8]}"

    async def app(scope, receive, send):
        await Pause()
    run = entry(OtelAgentMiddleware(app), which)(scope(path), receive, send)
    run.send(None)
    error = ValueError("from outside")
    with pytest.raises(ValueError) as raised:
        run.throw(error)
    assert raised.value is error
    span = one_span(exported, path)
    assert span.status.code == 2
    assert attrs(span)["http.response.status_code"] == 500
    assert [e.name for e in span.events] == ["exception"]
    assert attrs(span.events[0])["exception.type"] == "ValueError"
    assert otelagent.get_current_span() is otelagent.INVALID_SPAN


@pytest.mark.parametrize("which", PATHS)
def test_driven_wrongly_it_fails_as_a_coroutine_does(agent, exported, which):
    """A value sent into it before it started, an exception thrown into it
    before it started: the errors a coroutine gives, and the application
    never runs."""
    ran = []

    async def app(scope, receive, send):
        ran.append(1)
    mw = OtelAgentMiddleware(app)
    run = entry(mw, which)(scope("/wrong"), receive, send)
    with pytest.raises(TypeError, match="can't send non-None value to a just-started"):
        run.send(1)
    run.close()
    run = entry(mw, which)(scope("/wrong"), receive, send)
    with pytest.raises(KeyError):
        run.throw(KeyError("early"))
    with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
        run.send(None)
    assert ran == []


@pytest.mark.parametrize("which", PATHS)
def test_an_application_that_is_not_async_fails_the_request(agent, exported, which):
    """A plain function as the application: awaiting what it returns raises
    TypeError, recorded as the application's error."""
    path = f"/sync/{uuid.uuid4().hex[:8]}"

    def app(scope, receive, send):
        return None

    async def main():
        await entry(OtelAgentMiddleware(app), which)(scope(path), receive, send)
    with pytest.raises(TypeError, match="can't be used in 'await' expression"):
        asyncio.run(main())
    span = one_span(exported, path)
    assert span.status.code == 2
    assert attrs(span.events[0])["exception.type"] == "TypeError"


@pytest.mark.parametrize("which", PATHS)
def test_an_awaitable_object_and_a_lifespan(agent, exported, which):
    """An application returning an object with __await__ (not a coroutine)
    is awaited through it; a lifespan is passed on with its flushing send."""
    path = f"/awaitable/{uuid.uuid4().hex[:8]}"
    sent = []

    class Response:
        def __init__(self, send):
            self.send = send

        def __await__(self):
            yield from asyncio.sleep(0).__await__()
            return (yield from self.send({"type": "http.response.start", "status": 204,
                                          "headers": []}).__await__())

    def app(scope, receive, send):
        if scope["type"] == "lifespan":
            return send({"type": "lifespan.shutdown.complete"})
        return Response(send)

    async def record(message):
        sent.append(message["type"])

    mw = OtelAgentMiddleware(app)

    async def main():
        await entry(mw, which)(scope(path), receive, record)
        await entry(mw, which)({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, record)
    asyncio.run(main())
    assert sent == ["http.response.start", "lifespan.shutdown.complete"]
    assert attrs(one_span(exported, path))["http.response.status_code"] == 204
