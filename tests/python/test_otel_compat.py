"""Runs otel_compat_cases.py in its own interpreter: installing the global
TracerProvider can happen once per process."""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def test_otel_api_compatible_provider():
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        os.path.join(HERE, "otel_compat_cases.py")],
                       capture_output=True, text=True, timeout=300, cwd=HERE)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
    assert " passed" in r.stdout and "failed" not in r.stdout
