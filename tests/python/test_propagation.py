"""inject/extract of W3C traceparent/tracestate/baggage and AWS X-Ray."""

import uuid


TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_extract_then_inject_continues_the_trace(agent, exported):
    from otelagent import propagation
    parent = agent.extract({"traceparent": TP, "tracestate": "congo=t61rcWkgMzE, rojo=00f067aa0ba902b7",
                            "baggage": "user=alice, bad member"})
    assert parent is not None and parent.context.is_remote
    assert propagation.get_baggage() == "user=alice"
    name = f"server-{uuid.uuid4().hex[:8]}"
    with agent.start_as_current_span(name, parent=parent, kind=agent.SpanKind.SERVER) as s:
        out = agent.inject({})
    ctx = s.context
    assert out["traceparent"] == f"00-4bf92f3577b34da6a3ce929d0e0e4736-{ctx.raw[16:24].hex()}-01"
    assert out["tracestate"] == "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
    assert out["baggage"] == "user=alice"
    assert "X-Amzn-Trace-Id" in out and "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736" in out["X-Amzn-Trace-Id"]
    got = exported.wait([name], bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736"))[name][0]
    assert got.parent_span_id == bytes.fromhex("00f067aa0ba902b7")
    assert got.trace_state == "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
    assert got.flags & 0x300 == 0x300  # parent known to be remote


def test_unsampled_parent_is_honoured(agent):
    parent = agent.extract({"traceparent": TP[:-2] + "00"})
    with agent.start_as_current_span("unsampled", parent=parent) as s:
        assert not s.is_recording()
        with agent.start_as_current_span("child") as c:
            assert agent.inject({})["traceparent"].endswith("-00")
            assert not c.is_recording()


def test_invalid_headers_give_no_parent(agent):
    for bad in ("", "garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", "x" * 10000):
        assert agent.extract({"traceparent": bad}) is None
    assert agent.inject({}) == {}  # no current span: nothing injected


def test_xray_extract_when_no_traceparent(agent):
    parent = agent.extract({"X-Amzn-Trace-Id":
                            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"})
    assert parent is not None
    assert parent.context.raw[0:16].hex() == "5759e988bd862e3fe1be46a994272793"
    assert parent.context.raw[16:24].hex() == "53995c3f42cd8ad8"


def test_title_case_and_multi_line_headers(agent):
    parent = agent.extract({"Traceparent": TP, "Tracestate": ["a=1", "b=2"]})
    assert parent.context.raw[16:24].hex() == "00f067aa0ba902b7"
    assert parent._tracestate == "a=1,b=2"


def test_concurrent_extracts_never_see_another_threads_output(agent):
    """The output buffers are per thread: the interpreter may switch threads
    right after a call returns, before its output is read."""
    import sys
    import threading
    errors = []

    def worker(n):
        trace = f"{n + 1:032x}"
        for _ in range(3000):
            p = agent.extract({"traceparent": f"00-{trace}-00f067aa0ba902b7-01"})
            if p.context.raw[0:16].hex() != trace:
                errors.append((n, p.context.raw[0:16].hex()))
                return
            with agent.start_as_current_span("t", parent=p) as s:
                if s.context.raw[0:16].hex() != trace:
                    errors.append((n, "span"))
                    return

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    assert errors == []
