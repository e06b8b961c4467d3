"""The tracing API against the real library, exporting to a real OTLP/HTTP sink
decoded with opentelemetry-proto."""

import asyncio
import subprocess
import sys
import textwrap
import threading
import uuid

import pytest

from conftest import attrs


def uniq(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_nested_spans_attributes_events_status(agent, exported):
    outer_name, inner_name, failing = uniq("outer"), uniq("inner"), uniq("failing")
    with agent.start_as_current_span(outer_name, kind=agent.SpanKind.SERVER,
                                     attributes={"initial": "yes"}) as outer:
        outer.set_attribute("s", "text")
        outer.set_attribute("i", -42)
        outer.set_attribute("b", True)
        outer.set_attribute("f", 2.5)
        outer.set_attributes({"strs": ["a", "b"], "ints": [1, 2], "floats": [0.5],
                              "bools": [True, False]})
        outer.set_attribute("i", 43)  # the last value wins
        outer.add_event("checkpoint", {"step": 1})
        assert agent.get_current_span() is outer
        with agent.start_as_current_span(inner_name) as inner:
            assert agent.get_current_span() is inner
            inner.update_name(inner_name + "-renamed")
            inner.set_status(agent.StatusCode.OK)
            inner.set_status(agent.StatusCode.ERROR, "ignored: OK is final")
        with pytest.raises(KeyError):
            with agent.start_as_current_span(failing):
                raise KeyError("missing")
        assert agent.get_current_span() is outer
    assert agent.get_current_span() is agent.INVALID_SPAN

    trace_id = outer.context.raw[0:16]
    got = exported.wait([outer_name, inner_name + "-renamed", failing], trace_id)
    o = got[outer_name][0]
    i = got[inner_name + "-renamed"][0]
    f = got[failing][0]
    assert o.parent_span_id == b"" and o.kind == 2
    assert i.parent_span_id == o.span_id and f.parent_span_id == o.span_id
    assert attrs(o) == {"initial": "yes", "s": "text", "i": 43, "b": True, "f": 2.5,
                        "strs": ["a", "b"], "ints": [1, 2], "floats": [0.5],
                        "bools": [True, False]}
    assert [e.name for e in o.events] == ["checkpoint"] and attrs(o.events[0]) == {"step": 1}
    assert i.status.code == 1 and i.status.message == ""
    assert f.status.code == 2 and f.status.message == "KeyError: 'missing'"
    ev = f.events[0]
    assert ev.name == "exception"
    ea = attrs(ev)
    assert ea["exception.type"] == "KeyError" and ea["exception.message"] == "'missing'"
    assert "raise KeyError" in ea["exception.stacktrace"]
    assert o.start_time_unix_nano <= i.start_time_unix_nano <= i.end_time_unix_nano \
        <= o.end_time_unix_nano
    # The record carries the W3C flags and "parent remoteness known".
    assert o.flags & 0x1ff == 0x101


def test_decorator_sync_and_async(agent, exported):
    sync_name, async_name = uniq("sync-fn"), uniq("async-fn")

    @agent.start_as_current_span(sync_name)
    def work(x):
        return agent.get_current_span(), x * 2

    @agent.start_as_current_span(async_name)
    async def awork():
        await asyncio.sleep(0)
        return agent.get_current_span()

    with agent.start_as_current_span(uniq("root")) as root:
        s1, v = work(2)
        s2, _ = work(3)
        a = asyncio.run(awork())  # asyncio.run copies the current context
    assert v == 4 and s1 is not s2 and s1.name == sync_name and a.name == async_name
    got = exported.wait([sync_name, async_name], root.context.raw[0:16])
    assert len(got[sync_name]) == 2
    for s in got[sync_name] + got[async_name]:
        assert s.parent_span_id == root.context.raw[16:24]


def test_links_and_explicit_parents(agent, exported):
    a = agent.start_span(uniq("a"), parent=None)
    b = agent.start_span(uniq("b"), parent=None, links=[(a.context, {"why": "batch"})])
    c = agent.start_span(uniq("c"), parent=a)
    for s in (c, b, a):
        s.end()
    a.end()  # a second end does nothing
    got = exported.wait([b.name])
    lb = got[b.name][0]
    assert lb.trace_id != a.context.raw[0:16]
    assert len(lb.links) == 1
    assert lb.links[0].trace_id == a.context.raw[0:16]
    assert lb.links[0].span_id == a.context.raw[16:24]
    assert attrs(lb.links[0]) == {"why": "batch"}
    got = exported.wait([c.name], a.context.raw[0:16])
    assert got[c.name][0].parent_span_id == a.context.raw[16:24]
    assert len(exported.wait([a.name], a.context.raw[0:16])[a.name]) == 1


def test_bad_values_are_dropped_and_counted(agent, exported):
    name = uniq("bad-values")
    with agent.start_as_current_span(name) as s:
        s.set_attribute("ok", 1)
        s.set_attribute("none", None)
        s.set_attribute("mixed", [1, "a"])
        s.set_attribute("huge", 1 << 70)
        s.set_attribute("obj", object())
        s.set_attribute("surrogate", "a\ud800b")  # repaired by the library
    got = exported.wait([name], s.context.raw[0:16])[name][0]
    a = attrs(got)
    # The lone surrogate's three bytes are each replaced by U+FFFD.
    assert a["ok"] == 1 and a["surrogate"][0] == "a" and a["surrogate"][-1] == "b"
    assert set(a["surrogate"][1:-1]) == {"\ufffd"}
    assert set(a) == {"ok", "surrogate"}
    assert got.dropped_attributes_count == 4


def test_oversized_span_is_cut_not_lost(agent, exported):
    name = uniq("oversized")
    with agent.start_as_current_span(name) as s:
        for i in range(100):
            s.set_attribute(f"k{i}", "x" * 4000)
        for _ in range(20):
            s.add_event("e", {"v": "y" * 3000})
    got = exported.wait([name], s.context.raw[0:16])[name][0]
    assert 0 < len(got.attributes) < 100
    assert got.dropped_attributes_count + len(got.attributes) == 100
    assert got.dropped_events_count == 20


def test_threads_have_their_own_current_span(agent):
    seen = {}

    def worker(n):
        with agent.start_as_current_span(f"thread-{n}") as s:
            barrier.wait()
            seen[n] = agent.get_current_span() is s

    barrier = threading.Barrier(8)
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {n: True for n in range(8)}


def test_200_concurrent_asyncio_tasks_parent_right(agent, exported):
    """200 concurrent 'requests' on one loop, each awaiting between starting
    and ending its child spans: every child is exported under its own root."""
    tag = uniq("req")

    async def handler(n):
        with agent.start_as_current_span(f"{tag}-{n}") as root:
            await asyncio.sleep(0)
            with agent.start_as_current_span(f"{tag}-{n}-child-a"):
                await asyncio.sleep(0.001 * (n % 5))
                with agent.start_as_current_span(f"{tag}-{n}-grandchild"):
                    await asyncio.sleep(0)
            child_b = agent.start_span(f"{tag}-{n}-child-b")
            await asyncio.sleep(0)
            child_b.end()
            assert agent.get_current_span() is root
        return root

    async def main():
        return await asyncio.gather(*(handler(n) for n in range(200)))

    roots = asyncio.run(main())
    names = [f"{tag}-{n}{suffix}" for n in range(200)
             for suffix in ("", "-child-a", "-grandchild", "-child-b")]
    got = exported.wait(names)
    for n, root in enumerate(roots):
        r = got[f"{tag}-{n}"][0]
        a = got[f"{tag}-{n}-child-a"][0]
        g = got[f"{tag}-{n}-grandchild"][0]
        b = got[f"{tag}-{n}-child-b"][0]
        assert r.span_id == root.context.raw[16:24] and r.parent_span_id == b""
        assert a.parent_span_id == r.span_id and b.parent_span_id == r.span_id
        assert g.parent_span_id == a.span_id
        assert {r.trace_id, a.trace_id, g.trace_id, b.trace_id} == {r.trace_id}
    assert len({got[f"{tag}-{n}"][0].trace_id for n in range(200)}) == 200


def test_stats_and_flush(agent, exported):
    before = agent.stats()
    with agent.start_as_current_span(uniq("counted")):
        pass
    assert agent.flush(10000)
    after = agent.stats()
    assert after["spans_recorded"] == before["spans_recorded"] + 1
    assert after["spans_exported"] >= before["spans_exported"] + 1
    assert after["queue_depth"] == 0
    assert after["spans_dropped_queue_full"] == 0  # a field added after ABI 2.0


def test_ids_made_in_python_are_unique_and_valid(agent):
    from otelagent import _tracing
    assert _tracing._fast[0]  # parentbased_always_on with random ids: no crossing at start
    seen = set()
    for _ in range(5000):
        s = agent.start_span("ids", parent=None)
        raw = s.context.raw
        assert raw[0:16] != bytes(16) and raw[16:24] != bytes(8) and raw[24] == 1
        seen.add(raw[16:24])
        s._ended = True  # not exported
    assert len(seen) == 5000


def test_sampler_decisions_stay_in_the_library(tmp_path):
    """always_off, and the decorator made before start(): the library decides
    (otelagent_span_context_new) and counts what it samples out."""
    import subprocess
    import sys
    code = """
import otelagent
@otelagent.start_as_current_span("decorated-before-start")
def f():
    return otelagent.get_current_span()
assert otelagent.start({"OTEL_TRACES_SAMPLER": "always_off", "OTEL_TRACES_EXPORTER": "console"})
from otelagent import _tracing
assert not _tracing._fast[0]
s = f()
assert not s.is_recording()
with otelagent.start_as_current_span("x") as x:
    assert not x.is_recording()
st = otelagent.stats()
assert st["spans_sampled_out"] == 2 and st["spans_recorded"] == 0, st
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_library_log_lines_routed_to_python_logging():
    """In a fresh interpreter: a bad setting's warning (written by the library
    at start) reaches the `logging` handler, not stderr."""
    import subprocess
    import sys
    code = """
import logging, otelagent
lines = []
class H(logging.Handler):
    def emit(self, record):
        lines.append((record.levelno, record.getMessage()))
logging.getLogger("otelagent").addHandler(H())
otelagent.route_logs_to_python()
otelagent.start({"OTEL_BSP_SCHEDULE_DELAY": "soon", "OTEL_TRACES_EXPORTER": "console"})
assert any(level == logging.WARNING and "OTEL_BSP_SCHEDULE_DELAY" in text
           for level, text in lines), lines
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout + r.stderr
    assert "OTEL_BSP_SCHEDULE_DELAY" not in r.stderr


def test_statuses_map_to_exceptions(agent):
    from otelagent import _errors
    with pytest.raises(_errors.UnknownKey) as e:
        agent.start({"OTEL_NOT_A_SETTING": "1"})
    assert e.value.status == -13 and "OTEL_NOT_A_SETTING" in str(e.value)
    assert isinstance(e.value, KeyError) and isinstance(e.value, agent.OtelAgentError)
    with pytest.raises(_errors.TooLong):
        agent.start({"OTEL_SERVICE_NAME": "x" * 70000})
    assert agent.start() is False  # already started: not an error
    err = _errors.error_for(-5, "otelagent_record_span")
    assert type(err) is _errors.RingFull and "ring is full" in str(err)
    assert type(_errors.error_for(-99)) is _errors.OtelAgentError
    # Every status the library names has its exception.
    for status in range(-1, -16, -1):
        assert _ffi_name(status) == _errors.error_for(status).name, status


def _ffi_name(status):
    from otelagent import _ffi
    return _ffi.status_name(status)


def test_spans_after_shutdown_and_restart():
    import subprocess
    import sys
    code = """
import otelagent
assert not otelagent.start_span("before-start").is_recording()
assert otelagent.start({"OTEL_TRACES_EXPORTER": "console"})
assert otelagent.start_span("running").is_recording()
assert otelagent.shutdown(2000)
s = otelagent.start_span("after-shutdown")
assert not s.is_recording()
s.end()
with otelagent.start_as_current_span("after-shutdown-cm") as c:
    assert not c.is_recording()
assert otelagent.start({"OTEL_TRACES_EXPORTER": "console"})
with otelagent.start_as_current_span("restarted") as r:
    assert r.is_recording()
assert otelagent.flush(5000)
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout + r.stderr
    assert "restarted" in r.stderr and "after-shutdown" not in r.stderr  # console exporter


def test_a_signal_handler_runs_during_a_long_flush(tmp_path):
    """flush() waits in slices, so a SIGTERM-style handler (a container stop)
    runs while an export hangs, not only after the flush's whole timeout."""
    code = textwrap.dedent("""
        import signal, socket, sys, time
        import otelagent
        hang = socket.socket()
        hang.bind(("127.0.0.1", 0))
        hang.listen(8)  # accepts (backlog) and never answers
        otelagent.start({"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{hang.getsockname()[1]}",
                         "OTEL_EXPORTER_OTLP_TIMEOUT": "120000", "OTELAGENT_LOG": "none"})
        with otelagent.start_as_current_span("pending"):
            pass

        class Stop(Exception):
            pass

        def on_alarm(signum, frame):
            raise Stop()

        signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        t0 = time.monotonic()
        try:
            otelagent.flush(120000)
            print("flush returned")
        except Stop:
            print(f"handler ran after {time.monotonic() - t0:.1f} s")
        sys.stdout.flush()
        otelagent.shutdown(0)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=100)
    assert r.returncode == 0, r.stderr
    # Without slices the handler could only run once the 120 s flush ended:
    # this run's own timeout (100 s) would have killed it first.
    assert r.stdout.startswith("handler ran after"), r.stdout + r.stderr


def test_spool_statistics_and_a_restart_that_sends_the_backlog(sink, tmp_path):
    """Issue 8 through the binding: with OTELAGENT_SPOOL_DIR and no collector,
    the spans wait on disk (spans_spooled, nothing dropped); a second process
    started with the same directory sends them (spans_replayed)."""
    import subprocess
    import sys
    spool = str(tmp_path / "spool")
    tag = uniq("spooled")
    first = f"""
import otelagent
assert otelagent.start({{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1",
                        "OTELAGENT_SPOOL_DIR": {spool!r}, "OTEL_BSP_SCHEDULE_DELAY": "20",
                        "OTELAGENT_RETRY_INITIAL_MS": "10", "OTELAGENT_RETRY_MAX_MS": "50"}})
for i in range(300):
    with otelagent.start_as_current_span("{tag}-%d" % i):
        pass
otelagent.flush(500)  # cannot be delivered: the spans are written to the spool meanwhile
otelagent.shutdown(200)
st = otelagent.stats()
dropped = sum(v for k, v in st.items() if k.startswith("spans_dropped_"))
print(st["spans_spooled"], st["spans_exported"], dropped)
"""
    r = subprocess.run([sys.executable, "-c", first], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["300", "0", "0"], (r.stdout, r.stderr)
    second = f"""
import otelagent, time
assert otelagent.start({{"OTEL_EXPORTER_OTLP_ENDPOINT": {sink.endpoint!r},
                        "OTELAGENT_SPOOL_DIR": {spool!r}}})
deadline = time.monotonic() + 30
while otelagent.stats()["spans_replayed"] < 300 and time.monotonic() < deadline:
    time.sleep(0.01)
print(otelagent.stats()["spans_replayed"])
otelagent.shutdown(1000)
"""
    r = subprocess.run([sys.executable, "-c", second], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "300", (r.stdout, r.stderr)
    names = [s.name for s in sink.spans() if s.name.startswith(tag)]
    assert sorted(names) == sorted(f"{tag}-{i}" for i in range(300))


def test_an_exception_whose_str_raises_leaves_the_with_block_unchanged(agent, exported):
    """The exception event and the ERROR status describe the exception with
    str(): an __str__ that raises must not replace the application's
    exception on its way out of the span."""
    import otelagent

    class Lazy(Exception):
        def __str__(self):
            raise RuntimeError("no message")

    with pytest.raises(Lazy):
        with otelagent.start_as_current_span("lazy-failure") as span:
            raise Lazy()
    tid = span.context.raw[0:16]
    s = exported.wait(["lazy-failure"], tid)["lazy-failure"][0]
    assert s.status.code == 2 and "Lazy" in s.status.message
    assert attrs(s.events[0])["exception.type"].endswith("Lazy")
