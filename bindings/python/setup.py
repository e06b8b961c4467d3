"""Packaging details pyproject.toml cannot say.

- The optional native packer (otelagent/_native.c): built when a C compiler
  and Python's headers are at hand; without them the package installs as
  pure Python + ctypes and packs spans in Python (slower, same records).
- When bundle.sh has copied the shared library in, the wheel carries it
  (otelagent/_lib) and is tagged for this platform: py3-none-linux_x86_64
  without the native packer, cpXY-cpXY-linux_x86_64 with it."""

import os

from setuptools import Extension, setup
from setuptools.command.bdist_wheel import bdist_wheel

HERE = os.path.dirname(os.path.abspath(__file__))
BUNDLED = os.path.isdir(os.path.join(HERE, "otelagent", "_lib"))
NATIVE = os.environ.get("OTELAGENT_PYTHON_NATIVE", "1").strip().lower() not in (
    "0", "false", "no", "off")


class PlatformWheel(bdist_wheel):
    def finalize_options(self):
        super().finalize_options()
        if BUNDLED:
            self.root_is_pure = False

    def _native_built(self):
        """Whether build_ext produced the native packer (optional=True lets
        it fail quietly without a compiler or Python's headers)."""
        build_ext = self.get_finalized_command("build_ext")
        return any(os.path.exists(build_ext.get_ext_fullpath(e.name))
                   for e in self.distribution.ext_modules or [])

    def get_tag(self):
        python, abi, plat = super().get_tag()
        if self._native_built():
            return python, abi, plat  # cpXY-cpXY-<platform>: the extension is for this Python
        return "py3", "none", plat if BUNDLED else "any"


packages = ["otelagent", "otelagent.integrations"] + (["otelagent._lib"] if BUNDLED else [])
ext_modules = [Extension("otelagent._native", ["otelagent/_native.c"], optional=True,
                         extra_compile_args=["-O2", "-Wall", "-Wextra"])] if NATIVE else []
# The zero-code bootstrap (otelagent/_bootstrap/) is a directory put on
# PYTHONPATH, not a package: shipped as data of the otelagent package.
package_data = {"otelagent": ["_bootstrap/*.py"]}
if BUNDLED:
    package_data["otelagent._lib"] = ["libotelagent.so*", "libotelagent_preload.so"]
setup(packages=packages, py_modules=["otelagent_instrument"],
      cmdclass={"bdist_wheel": PlatformWheel}, ext_modules=ext_modules, package_data=package_data)
