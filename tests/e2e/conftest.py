import subprocess

import pytest

from harness import Sink


@pytest.fixture
def sink():
    s = Sink()
    yield s
    s.close()


@pytest.fixture
def certificate(tmp_path):
    """A self-signed certificate and key for 127.0.0.1 (TLS tests)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return str(cert), str(key)
