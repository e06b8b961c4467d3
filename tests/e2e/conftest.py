import os
import subprocess

import pytest

from harness import BUILD, SANITIZE, Sink, fault_rows, fault_table


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


def pytest_terminal_summary(terminalreporter):
    """The fault matrix's table (test_fault_matrix.py), when it ran: printed,
    and written to BUILD/fault_matrix.md for the README."""
    if not fault_rows:
        return
    note = (f"{fault_rows[0]['rate']} spans/s for {fault_rows[0]['seconds']} s per scenario"
            + (f", {SANITIZE} sanitizer build" if SANITIZE else ""))
    table = fault_table(fault_rows)
    terminalreporter.write_sep("=", f"fault matrix ({note})")
    terminalreporter.write(table)
    path = os.path.join(BUILD, "fault_matrix.md")
    with open(path, "w") as f:
        f.write(f"Fault matrix: {note}.\n\n{table}")
    terminalreporter.write_line(f"written to {path}")
