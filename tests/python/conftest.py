"""Fixtures of the Python binding tests: a real OTLP/HTTP sink on loopback
(tests/e2e/harness.py, decoding with the official opentelemetry-proto) and the
agent started once per session, exporting to it."""

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))

from harness import Sink, wait_for  # noqa: E402


def pytest_sessionstart(session):
    """OTELAGENT_REQUIRE_NATIVE=1 (tests/run.sh's first pass): the native
    packer must be in use, so that a machine without a C compiler or Python's
    headers cannot quietly test the pure-Python packer twice."""
    if os.environ.get("OTELAGENT_REQUIRE_NATIVE") == "1":
        from otelagent import _tracing
        if not _tracing.NATIVE:
            pytest.exit("OTELAGENT_REQUIRE_NATIVE=1 but the native packer is not built "
                        "(a C compiler and Python's headers: python3-dev)", returncode=3)


@pytest.fixture(scope="session")
def sink():
    s = Sink()
    yield s
    s.close()


@pytest.fixture(scope="session")
def agent(sink):
    import otelagent
    assert otelagent.start({
        "OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint,
        "OTEL_SERVICE_NAME": "pytest-otelagent",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        "OTEL_PROPAGATORS": "tracecontext,baggage,xray",
        "OTEL_TRACES_SAMPLER": "parentbased_always_on",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "none",
    })
    yield otelagent
    otelagent.shutdown(5000)


class Exported:
    """What the sink received, as OTLP Span messages, looked up by name."""

    def __init__(self, sink, agent):
        self.sink = sink
        self.agent = agent

    def spans(self, trace_id=None):
        assert self.agent.flush(10000)
        spans = self.sink.spans()
        if trace_id is not None:
            spans = [s for s in spans if s.trace_id == trace_id]
        return spans

    def wait(self, names, trace_id=None):
        """The spans named `names` (a list; waits until all are there)."""
        found = {}

        def have():
            found.clear()
            for s in self.spans(trace_id):
                found.setdefault(s.name, []).append(s)
            return all(n in found for n in names)

        wait_for(have, 15, f"spans {names}")
        return found


def attrs(span):
    """A span's (or event's) attributes as a plain dict."""
    out = {}
    for kv in span.attributes:
        v = kv.value
        which = v.WhichOneof("value")
        if which == "array_value":
            out[kv.key] = [getattr(x, x.WhichOneof("value")) for x in v.array_value.values]
        else:
            out[kv.key] = getattr(v, which)
    return out


@pytest.fixture
def exported(sink, agent):
    return Exported(sink, agent)
