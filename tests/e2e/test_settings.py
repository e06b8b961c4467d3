"""Settings from the environment as a host process sees them: header values
that could break the request never reach the wire, and a bad setting gets
one warning at start."""

import pytest

from harness import Emitter

DEFAULT_ENDPOINT = "http://localhost:4318/v1/traces"


def test_a_crlf_in_a_header_value_never_reaches_the_wire(sink):
    em = Emitter("bulk", sink.endpoint, {
        "OTEL_EXPORTER_OTLP_HEADERS":
            "x-ok=1,x-crlf=v1%0D%0AX-Injected: yes,x-lf=v2%0AX-Injected2: yes,x-nul=v3%00tail",
    }, ["10"])
    assert em.wait() == 0, em.stderr
    assert em.stats()["exported"] == 10
    assert sink.requests
    for r in sink.requests:
        names = [name.lower() for name, _ in r.raw_headers]
        assert "x-ok" in names
        assert not {"x-crlf", "x-lf", "x-nul", "x-injected", "x-injected2"} & set(names), r.raw_headers
        assert not any("\r" in v or "\n" in v or "\0" in v for _, v in r.raw_headers)
    # One warning, naming the variable and the headers, never a value.
    lines = [line for line in em.err_lines if "OTEL_EXPORTER_OTLP_HEADERS" in line]
    assert len(lines) == 1, em.stderr
    assert all(f'"{n}"' in lines[0] for n in ("x-crlf", "x-lf", "x-nul"))
    assert not any(v in em.stderr for v in ("v1", "v2", "v3", "Injected"))


def test_a_setting_read_for_three_limits_warns_once(sink):
    em = Emitter("bulk", sink.endpoint, {"OTEL_ATTRIBUTE_COUNT_LIMIT": "lots"}, ["5"])
    assert em.wait() == 0, em.stderr
    assert em.stats()["exported"] == 5
    assert em.stderr.count("OTEL_ATTRIBUTE_COUNT_LIMIT") == 1, em.stderr


@pytest.mark.parametrize("variable", ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"])
@pytest.mark.parametrize("url", ["http://127.0.0.1:99999", "http://[::1:4318", "http://127.0.0.1:0"])
def test_a_malformed_endpoint_is_rejected_at_start(variable, url):
    # The console exporter: the check happens at start whatever the exporter,
    # and nothing here may reach for the default endpoint.
    em = Emitter("bulk", "", {variable: url, "OTEL_TRACES_EXPORTER": "console"}, ["1"])
    assert em.wait() == 0, em.stderr
    warnings = [line for line in em.err_lines if line.startswith("otelagent: ")]
    assert len(warnings) == 1, em.stderr
    assert warnings[0].startswith(f'otelagent: {variable}="{url}" '), warnings
    assert warnings[0].endswith(f"; using {DEFAULT_ENDPOINT}"), warnings


def test_an_oversized_environment_value_is_ignored_with_one_warning(sink):
    em = Emitter("bulk", sink.endpoint, {"OTEL_RESOURCE_ATTRIBUTES": "k=" + "v" * 70000}, ["3"])
    assert em.wait() == 0, em.stderr
    assert em.stats()["exported"] == 3
    assert em.stderr.count("OTEL_RESOURCE_ATTRIBUTES") == 1, em.stderr[:500]
    assert "vvvv" not in em.stderr
    keys = {a.key for r in sink.requests for rs in r.request.resource_spans for a in rs.resource.attributes}
    assert "k" not in keys and "service.name" in keys

