"""`pip install ./bindings/python` works: a wheel built from the tree bundles
the library (and the native packer, unless OTELAGENT_PYTHON_NATIVE=0),
installs into a fresh virtual environment with nothing else, and loads the
bundled copy (no network: the build uses this environment's setuptools)."""

import os
import subprocess
import sys
import zipfile

from test_loader import BUILD, ROOT

NATIVE = os.environ.get("OTELAGENT_PYTHON_NATIVE", "1") != "0"


def test_wheel_bundles_the_library_and_installs(tmp_path):
    src = os.path.join(ROOT, "bindings", "python")
    subprocess.run([os.path.join(src, "bundle.sh"), BUILD], check=True, capture_output=True)
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(wheels), src], check=True,
                   capture_output=True, cwd=tmp_path)
    (wheel,) = os.listdir(wheels)
    assert wheel.startswith("otelagent-") and wheel.endswith("linux_x86_64.whl")
    with zipfile.ZipFile(wheels / wheel) as z:
        names = z.namelist()
    has_native = any(n.startswith("otelagent/_native.") and n.endswith(".so") for n in names)
    if NATIVE:
        # This interpreter's tag: the wheel carries the native packer built for it.
        tag = f"cp{sys.version_info[0]}{sys.version_info[1]}"
        assert f"-{tag}-{tag}-" in wheel and has_native, (wheel, names)
    else:
        # Built without it (OTELAGENT_PYTHON_NATIVE=0): pure Python + ctypes,
        # for any CPython 3 on this platform.
        assert "-py3-none-" in wheel and not has_native, (wheel, names)
    assert any(n.endswith("otelagent/_lib/libotelagent.so.2") for n in names), names
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    subprocess.run([sys.executable, "-m", "pip", "--python", py, "install", "-q", "--no-deps",
                    "--no-index", str(wheels / wheel)], check=True, capture_output=True)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "LD_LIBRARY_PATH", "OTELAGENT_LIBRARY")}
    r = subprocess.run([py, "-c", "import otelagent, otelagent._tracing as t; "
                        "print(otelagent.LOADED_FROM); "
                        "print(otelagent.start({'OTEL_TRACES_EXPORTER': 'console'})); "
                        "print(t.NATIVE)"],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert r.returncode == 0, r.stderr
    where, started, native = r.stdout.split("\n")[:3]
    assert where.startswith("bundled (") and str(venv) in where and started == "True"
    assert native == str(NATIVE)
