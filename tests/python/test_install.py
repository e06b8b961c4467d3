"""`pip install ./bindings/python` works: a wheel built from the tree bundles
the library, installs into a fresh virtual environment with nothing else, and
loads the bundled copy (no network: the build uses this environment's
setuptools)."""

import os
import subprocess
import sys

from test_loader import BUILD, ROOT


def test_wheel_bundles_the_library_and_installs(tmp_path):
    src = os.path.join(ROOT, "bindings", "python")
    subprocess.run([os.path.join(src, "bundle.sh"), BUILD], check=True, capture_output=True)
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(wheels), src], check=True,
                   capture_output=True, cwd=tmp_path)
    (wheel,) = os.listdir(wheels)
    assert wheel.startswith("otelagent-") and wheel.endswith("linux_x86_64.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    subprocess.run([sys.executable, "-m", "pip", "--python", py, "install", "-q", "--no-deps",
                    "--no-index", str(wheels / wheel)], check=True, capture_output=True)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "LD_LIBRARY_PATH", "OTELAGENT_LIBRARY")}
    r = subprocess.run([py, "-c", "import otelagent, os; print(otelagent.LOADED_FROM); "
                        "print(otelagent.start({'OTEL_TRACES_EXPORTER': 'console'}))"],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert r.returncode == 0, r.stderr
    where, started = r.stdout.split("\n")[:2]
    assert where.startswith("bundled (") and str(venv) in where and started == "True"
