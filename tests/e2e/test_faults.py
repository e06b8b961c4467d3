"""Behaviour the real collector cannot produce on demand, against a scripted
loopback sink; every body is decoded with the official opentelemetry-proto."""

import json
import time

import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from harness import SANITIZE, Collector, Emitter, Sink, free_port, wait_for


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_bodies_decode_with_the_official_package(sink, compression):
    em = Emitter("bulk", sink.endpoint, {"OTEL_EXPORTER_OTLP_COMPRESSION": compression}, ["1000"])
    assert em.wait() == 0, em.stderr
    assert em.stats()["exported"] == 1000
    assert all(r.request is not None for r in sink.requests)
    expected = "" if compression == "none" else compression
    assert {r.encoding for r in sink.requests} == {expected}
    assert {r.headers["content-type"] for r in sink.requests} == {"application/x-protobuf"}
    assert all(r.headers["user-agent"].startswith("OTel-OTLP-Exporter-Cpp/") for r in sink.requests)
    spans = sink.spans()
    assert sorted(s.attributes[0].value.int_value for s in spans) == list(range(1000))
    # Batches respect OTEL_BSP_MAX_EXPORT_BATCH_SIZE (512 by default).
    assert max(len(r.spans()) for r in sink.requests) <= 512
    # One kept-alive connection carried every request.
    assert len(sink.requests) >= 2 and len({r.client_port for r in sink.requests}) == 1


def test_headers_are_sent_on_every_request(sink):
    em = Emitter("bulk", sink.endpoint, {"OTEL_EXPORTER_OTLP_HEADERS": "api-key=s3cr%3Dt,x-tenant=t1"}, ["600"])
    assert em.wait() == 0
    assert len(sink.requests) >= 2
    for r in sink.requests:
        assert r.headers["api-key"] == "s3cr=t" and r.headers["x-tenant"] == "t1"
    assert "s3cr" not in em.stderr


def test_retry_after_is_honoured(sink):
    sink.script = [(503, {"Retry-After": "2"}, b"busy", 0)]
    em = Emitter("bulk", sink.endpoint, {"OTELAGENT_RETRY_INITIAL_MS": "10"}, ["10"])
    assert em.wait() == 0, em.stderr
    stats = em.stats()
    assert stats["exported"] == 10 and stats["retries"] == 1
    assert len(sink.requests) == 2
    # A lower bound only: the retry waited at least what Retry-After asked.
    assert sink.requests[1].time - sink.requests[0].time >= 2.0
    assert sink.requests[1].raw == sink.requests[0].raw  # the same batch again


def test_bad_request_is_dropped_and_counted_without_retry(sink):
    sink.script = [(400, {}, b"bad", 0)]
    em = Emitter("bulk", sink.endpoint, {}, ["10"])
    assert em.wait() == 0
    stats = em.stats()
    assert stats["rejected"] == 10 and stats["exported"] == 0 and stats["retries"] == 0
    assert len(sink.requests) == 1
    assert "400" in em.stderr


def test_partial_success_is_counted(sink):
    resp = trace_service_pb2.ExportTraceServiceResponse()
    resp.partial_success.rejected_spans = 3
    resp.partial_success.error_message = "3 spans too old"
    sink.script = [(200, {"Content-Type": "application/x-protobuf"}, resp.SerializeToString(), 0)]
    em = Emitter("bulk", sink.endpoint, {}, ["10"])
    assert em.wait() == 0
    stats = em.stats()
    assert stats["rejected"] == 3 and stats["exported"] == 7
    assert "3 spans too old" in em.stderr


def test_zstd_rejection_falls_back_to_gzip_once(sink):
    sink.script = [(400, {"Content-Type": "text/plain"}, b"unsupported Content-Encoding: zstd", 0)]
    em = Emitter("bulk", sink.endpoint, {"OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"}, ["1200"])
    assert em.wait() == 0, em.stderr
    stats = em.stats()
    assert stats["exported"] == 1200 and stats["rejected"] == 0
    assert sink.requests[0].encoding == "zstd"
    assert {r.encoding for r in sink.requests[1:]} == {"gzip"}
    # The rejected batch was re-sent: the gzip bodies hold every span.
    assert sorted(s.attributes[0].value.int_value for r in sink.requests[1:] for s in r.spans()) == list(range(1200))
    assert em.stderr.count("does not accept zstd") == 1


def test_slow_answer_times_out_and_is_retried(sink):
    sink.script = [(200, {}, None, 3)]
    em = Emitter("bulk", sink.endpoint, {"OTEL_EXPORTER_OTLP_TIMEOUT": "500", "OTELAGENT_RETRY_INITIAL_MS": "50"}, ["10"])
    assert em.wait() == 0
    stats = em.stats()
    assert stats["retries"] >= 1 and stats["exported"] == 10
    assert len(sink.requests) >= 2


def test_collector_down_for_ten_seconds_loses_nothing(tmp_path):
    """The agent starts while nothing listens; the collector comes up ten
    seconds later on that port and receives every span."""
    downstream = Sink()
    port = free_port()
    em = Emitter("bulk", f"http://127.0.0.1:{port}",
                 {"OTELAGENT_RETRY_MAX_MS": "2000", "OTELAGENT_E2E_FLUSH_MS": "60000"}, ["1500"])
    collector = Collector(tmp_path, downstream, port=port)
    try:
        wait_for(em.emitted, 30, "the emitter to queue its spans")
        time.sleep(10)  # the outage under test, not a wait for a result
        collector.start()
        assert em.wait(120) == 0, em.stderr
        stats = em.stats()
        assert stats["exported"] == 1500, stats
        assert stats["retries"] >= 1 and stats["ring_full"] == 0
        wait_for(lambda: len(downstream.spans()) >= 1500, 30, "1500 spans downstream")
        values = sorted(s.attributes[0].value.int_value for s in downstream.spans())
        assert values == list(range(1500))
    finally:
        collector.stop()
        downstream.close()


def test_shutdown_is_bounded_when_the_collector_is_down():
    port = free_port()
    em = Emitter("bulk", f"http://127.0.0.1:{port}", {"OTELAGENT_E2E_FLUSH_MS": "1000"}, ["50"])
    # A hang check, not a speed test: 1 s flush + 1 s shutdown must not take a minute.
    assert em.wait(60) == 0
    stats = em.stats()
    assert stats["exported"] == 0
    assert "shutdown TIMEOUT" in em.stderr
    assert "50 queued spans" in em.stderr  # reported as dropped at shutdown


def test_fork_gives_the_child_a_working_agent(sink):
    em = Emitter("fork", sink.endpoint, {}, [])
    assert em.wait() == 0, em.stderr
    parent, child = em.stats("parent"), em.stats("child")
    assert child["exported"] == 5, child
    assert parent["exported"] == 6, parent  # 3 + 2 + 1, none duplicated by the child
    pids = set()
    for r in sink.requests:
        for rs in r.request.resource_spans:
            pid = [a.value.int_value for a in rs.resource.attributes if a.key == "process.pid"][0]
            pids.add(pid)
            assert len([s for ss in rs.scope_spans for s in ss.spans]) > 0
    assert pids == {parent["pid"], child["pid"]}
    by_pid = {}
    for r in sink.requests:
        for rs in r.request.resource_spans:
            pid = [a.value.int_value for a in rs.resource.attributes if a.key == "process.pid"][0]
            by_pid[pid] = by_pid.get(pid, 0) + sum(len(ss.spans) for ss in rs.scope_spans)
    assert by_pid == {parent["pid"]: 6, child["pid"]: 5}


@pytest.mark.parametrize("clock", ["tsc", "realtime"])
def test_span_times_are_wall_clock_times(sink, clock):
    before = time.time_ns()
    em = Emitter("bulk", sink.endpoint, {"OTELAGENT_CLOCK": clock}, ["200"])
    assert em.wait() == 0
    after = time.time_ns()
    spans = sink.spans()
    assert len(spans) == 200
    for s in spans:
        # Allow 5 ms for clock granularity and the conversion; a wrong
        # conversion is off by seconds or years.
        assert before - 5_000_000 <= s.start_time_unix_nano <= s.end_time_unix_nano <= after + 5_000_000
    starts = [s.start_time_unix_nano for s in sorted(spans, key=lambda s: s.attributes[0].value.int_value)]
    assert starts == sorted(starts)  # emitted one after another


def test_https_with_the_configured_certificate(certificate):
    tls_sink = Sink(tls=certificate)
    try:
        em = Emitter("bulk", tls_sink.endpoint, {"OTEL_EXPORTER_OTLP_CERTIFICATE": certificate[0]}, ["20"])
        assert em.wait() == 0, em.stderr
        assert em.stats()["exported"] == 20
        assert len(tls_sink.spans()) == 20
    finally:
        tls_sink.close()


def test_https_verifies_the_server_by_default(certificate):
    tls_sink = Sink(tls=certificate)
    try:
        em = Emitter("bulk", tls_sink.endpoint, {"OTELAGENT_E2E_FLUSH_MS": "1500"}, ["20"])
        assert em.wait() == 0
        assert em.stats()["exported"] == 0
        assert tls_sink.requests == []  # no request got past the handshake
        assert "cannot reach the OTLP endpoint" in em.stderr
    finally:
        tls_sink.close()


@pytest.mark.skipif("address" in SANITIZE, reason=(
    "Debian 12's libasan does not hold its allocator locks across fork: a child forked while "
    "the parent's exporter thread allocates can block forever in its first malloc "
    "(SizeClassAllocator64::GetFromAllocator; about one run in three)"))
def test_forks_while_the_exporter_is_busy(sink):
    """A thread emits and exports continuously while the main thread forks
    five children; each child gets its own working agent."""
    em = Emitter("forkstorm", sink.endpoint, {"OTEL_BSP_SCHEDULE_DELAY": "1",
                                              "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "16"}, [])
    assert em.wait(120) == 0, em.stderr
    parent = em.stats("parent")
    children = [json.loads(line) for line in em.lines if line.startswith('{"who":"child"')]
    assert len(children) == 5
    assert all(c["exported"] == 10 for c in children), children
    # The background thread emits flat out, so the export queue (or its ring)
    # may fill: every span is either exported or counted as dropped, none lost
    # or duplicated.
    assert parent["ended"] > 0 and parent["exported"] > 0
    assert parent["exported"] + parent["ring_full"] + parent["queue_full"] == parent["ended"], parent
    assert parent["rejected"] == parent["failed"] == 0
    per_pid = {}
    for r in sink.requests:
        for rs in r.request.resource_spans:
            pid = [a.value.int_value for a in rs.resource.attributes if a.key == "process.pid"][0]
            per_pid[pid] = per_pid.get(pid, 0) + sum(len(ss.spans) for ss in rs.scope_spans)
    for c in children:
        assert per_pid[c["pid"]] == 10
    assert per_pid[parent["pid"]] == parent["exported"]


def test_truncated_values_are_marked_on_the_span(sink):
    em = Emitter("long", sink.endpoint, {}, [])
    assert em.wait() == 0
    (span,) = sink.spans()
    values = {a.key: a.value for a in span.attributes}
    assert len(values["big"].string_value) == 4096
    assert values["small"].string_value == "ok"
    assert values["otelagent.truncated_values"].int_value == 1


def test_configured_length_limit_counts_characters(sink):
    em = Emitter("long", sink.endpoint, {"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "10"}, [])
    assert em.wait() == 0
    (span,) = sink.spans()
    values = {a.key: a.value for a in span.attributes}
    assert values["big"].string_value == "x" * 10
    # Cut twice: once to the internal cap on the host thread, once to the limit.
    assert values["otelagent.truncated_values"].int_value == 2
