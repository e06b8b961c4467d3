"""Shutdown is bounded in every case, including an endpoint whose host name
never resolves because the DNS server never answers (issue 5, item 15): curl
used to wait for its resolver thread on cleanup, and shutdown joined the
exporter thread without a bound."""

import os
import shutil
import socket
import subprocess
import threading

import pytest

from harness import EMITTER, wait_for

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("mount") is None,
    reason="needs root, unshare and mount (a private /etc/resolv.conf)")

# A loopback address of the test's own, so that port 53 is free to bind.
RESOLVER = "127.53.0.1"


class SilentResolver:
    """A UDP socket on port 53 that reads DNS queries and never answers."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((RESOLVER, 53))
        self.queries = 0
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while True:
            try:
                self.sock.recvfrom(4096)
            except OSError:
                return
            self.queries += 1

    def close(self):
        self.sock.close()


def test_shutdown_is_bounded_when_dns_never_answers(tmp_path):
    resolver = SilentResolver()
    try:
        resolv = tmp_path / "resolv.conf"
        # Without the fix the exit waits for the resolver: 30 s x 5 attempts.
        resolv.write_text(f"nameserver {RESOLVER}\noptions timeout:30 attempts:5\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL")}
        env.update({
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector.otelagent-test.invalid:4318",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "OTELAGENT_E2E_FLUSH_MS": "500",  # the emitter's flush and shutdown timeouts
        })
        # The emitter runs in its own mount namespace, where /etc/resolv.conf
        # names the silent resolver.
        cmd = ["unshare", "--mount", "sh", "-c",
               'mount --bind "$1" /etc/resolv.conf && exec "$2" bulk 20',
               "sh", str(resolv), EMITTER]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        # Bound: flush 0.5 s + shutdown 0.5 s + 0.25 s teardown. A hard
        # deadline eight times that: a hang check, not a timing measurement.
        try:
            out, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(
                f"the emitter did not exit within 10 s of starting: {err}") from None
        assert proc.returncode == 0, err
        # The name was really being resolved, by our silent server.
        wait_for(lambda: resolver.queries > 0, 5, "a DNS query")
        assert "emitter: flush TIMEOUT, shutdown TIMEOUT" in err, err
        assert "20 queued spans could not be exported in time and were dropped" in err, err
        assert '"exported":0' in out, out
    finally:
        resolver.close()
