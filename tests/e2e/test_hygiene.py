"""What the shared library shows a host: only the C ABI, no bundled
dependency, the ABI major in the SONAME; and a host with its own protobuf and
libuv that loads the agent keeps working."""

import os
import re
import subprocess

from harness import BUILD, assert_no_sanitizer_report, host_env, wait_for

LIB = os.path.join(BUILD, "libotelagent.so")
HOST = os.path.join(BUILD, "tests", "hygiene_host")


def test_only_the_c_abi_is_exported():
    out = subprocess.run(["nm", "-D", "--defined-only", LIB], capture_output=True, text=True, check=True).stdout
    symbols = [line.split()[-1] for line in out.splitlines() if line.strip()]
    assert len(symbols) > 30
    strays = [s for s in symbols if not s.startswith("otelagent_") and s != "OTELAGENT_2"]
    assert strays == []


def test_soname_carries_the_abi_major_and_no_bundled_dependency_is_needed():
    out = subprocess.run(["readelf", "-d", LIB], capture_output=True, text=True, check=True).stdout
    assert "[libotelagent.so.2]" in out
    needed = re.findall(r"\(NEEDED\).*\[(.*)\]", out)
    assert not [n for n in needed if n.startswith(("libuv", "libprotobuf", "libzstd"))], needed


def test_a_host_with_its_own_protobuf_and_libuv_works(sink):
    env = host_env({"OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"})
    res = subprocess.run([HOST], env=env, capture_output=True, text=True, timeout=60)
    assert_no_sanitizer_report(res.stderr)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "host ok exported=10" in res.stdout
    wait_for(lambda: len(sink.spans()) == 10, 10, "10 spans at the sink")
    assert {s.name for s in sink.spans()} == {"host.span"}
