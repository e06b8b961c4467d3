"""The reference trace, sent to the real OpenTelemetry Collector with each
compression, checked field by field in what the collector forwards."""

import pytest

from harness import Collector, Emitter, Sink, wait_for

TRACE_ID = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
REMOTE_PARENT = bytes.fromhex("b7ad6b7169203331")


def attrs(kvs):
    out = {}
    for kv in kvs:
        v = kv.value
        which = v.WhichOneof("value")
        if which == "array_value":
            out[kv.key] = [getattr(x, x.WhichOneof("value")) for x in v.array_value.values]
        else:
            out[kv.key] = getattr(v, which)
    return out


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_reference_trace_through_the_collector(tmp_path, compression, protocol):
    downstream = Sink()
    collector = Collector(tmp_path, downstream).start()
    grpc = protocol == "grpc"
    try:
        em = Emitter("tree", collector.grpc_endpoint if grpc else collector.endpoint,
                     {"OTEL_EXPORTER_OTLP_COMPRESSION": compression,
                      "OTEL_EXPORTER_OTLP_PROTOCOL": protocol})
        assert em.wait() == 0, em.stderr
        stats = em.stats()
        assert stats["exported"] == 5, (stats, em.stderr)
        assert stats["rejected"] == stats["failed"] == stats["ring_full"] == 0
        assert stats["queue_depth"] == 0 and stats["open"] == 0
        assert stats["retries"] == 0, em.stderr
        assert "otelagent:" not in em.stderr, em.stderr  # no warning of any kind
        wait_for(lambda: len(downstream.spans()) >= 5, 30, "the collector to forward 5 spans")
    finally:
        collector.stop()
        downstream.close()

    requests = [r.request for r in downstream.requests if r.request is not None]
    resource_spans = [rs for req in requests for rs in req.resource_spans]
    resource = attrs(resource_spans[0].resource.attributes)
    assert resource["service.name"] == "e2e-emitter"
    assert resource["process.pid"] == stats["pid"]
    assert resource["telemetry.sdk.name"] == "libotelagent"
    assert resource["process.executable.name"] == "e2e_emitter"
    assert resource["host.name"]

    scopes = {}
    for rs in resource_spans:
        for ss in rs.scope_spans:
            for s in ss.spans:
                scopes[s.name] = (ss.scope.name, ss.scope.version)
    spans = {s.name: s for s in downstream.spans()}
    assert sorted(spans) == ["e2e.child", "e2e.grandchild", "e2e.other_thread", "e2e.recorded",
                             "e2e.request"]
    assert all(s.trace_id == TRACE_ID for s in spans.values())
    assert len({s.span_id for s in spans.values()}) == 5
    assert scopes["e2e.request"] == ("e2e.scope", "2.0")

    root = spans["e2e.request"]
    assert root.parent_span_id == REMOTE_PARENT
    assert root.kind == root.SPAN_KIND_SERVER
    assert root.trace_state == "vendor=abc"
    assert root.flags == 0x301  # sampled; parent known to be remote
    assert root.status.code == root.status.STATUS_CODE_ERROR
    assert root.status.message == "it failed"
    assert attrs(root.attributes) == {
        "attr.string": "hello", "attr.int": -7, "attr.double": 3.5, "attr.bool": True,
        "attr.int_array": [1, 2, 3], "attr.double_array": [0.5, 1.5],
        "attr.string_array": ["a", "bc"], "attr.bool_array": [True, False],
        "attr.utf8_repaired": "ok\ufffd",
    }
    assert [e.name for e in root.events] == ["e2e.event", "exception"]
    assert attrs(root.events[0].attributes) == {"event.attr": 42}
    assert attrs(root.events[1].attributes) == {
        "exception.type": "ValueError", "exception.message": "bad value",
        "exception.stacktrace": "at line 1"}
    assert root.start_time_unix_nano <= root.events[0].time_unix_nano <= root.end_time_unix_nano

    child = spans["e2e.child"]
    assert child.parent_span_id == root.span_id
    assert child.kind == child.SPAN_KIND_CLIENT
    assert child.flags == 0x101  # local parent
    assert root.start_time_unix_nano <= child.start_time_unix_nano
    assert child.end_time_unix_nano <= root.end_time_unix_nano

    grandchild = spans["e2e.grandchild"]
    assert grandchild.parent_span_id == child.span_id
    assert grandchild.kind == grandchild.SPAN_KIND_INTERNAL
    assert attrs(grandchild.attributes) == {"depth": 2}

    moved = spans["e2e.other_thread"]
    assert moved.parent_span_id == child.span_id
    assert moved.kind == moved.SPAN_KIND_PRODUCER
    assert attrs(moved.attributes) == {"thread": "worker"}
    assert len(moved.links) == 1
    link = moved.links[0]
    assert link.trace_id == TRACE_ID and link.span_id == REMOTE_PARENT
    assert link.trace_state == "vendor=abc"
    assert attrs(link.attributes) == {"link.attr": "linked"}

    recorded = spans["e2e.recorded"]  # through the one-crossing record call
    assert recorded.parent_span_id == root.span_id
    assert recorded.kind == recorded.SPAN_KIND_CONSUMER
    assert recorded.start_time_unix_nano == 1700000000000000000
    assert recorded.end_time_unix_nano == 1700000000250000000
    assert attrs(recorded.attributes) == {"via": "record_span"}
