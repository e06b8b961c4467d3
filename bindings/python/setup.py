"""Packaging details pyproject.toml cannot say: when bundle.sh has copied the
shared library in, the wheel carries it (otelagent/_lib) and is tagged for
this platform (py3-none-linux_x86_64, say) instead of pure Python."""

import os

from setuptools import setup
from setuptools.command.bdist_wheel import bdist_wheel

HERE = os.path.dirname(os.path.abspath(__file__))
BUNDLED = os.path.isdir(os.path.join(HERE, "otelagent", "_lib"))


class PlatformWheel(bdist_wheel):
    def finalize_options(self):
        super().finalize_options()
        self.root_is_pure = not BUNDLED

    def get_tag(self):
        python, abi, plat = super().get_tag()
        return ("py3", "none", plat) if BUNDLED else (python, abi, plat)


packages = ["otelagent", "otelagent.integrations"] + (["otelagent._lib"] if BUNDLED else [])
setup(packages=packages, cmdclass={"bdist_wheel": PlatformWheel},
      package_data={"otelagent._lib": ["libotelagent.so*"]} if BUNDLED else {})
