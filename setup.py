"""Build hook: ship the top-level ``models/`` and ``datasets/`` inside the wheel.

The design card keeps model specs and datasets at the top of the repository, where
modellers read and review them. A pip-installed nanopk must still load them by name,
so the build copies both folders into ``nanopk/_bundled/``; ``nanopk.resources`` looks
there first and falls back to the source tree for editable installs.
"""
import pathlib
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithBundledData(build_py):
    def run(self):
        super().run()
        root = pathlib.Path(__file__).resolve().parent
        for folder in ("models", "datasets"):
            target = pathlib.Path(self.build_lib) / "nanopk" / "_bundled" / folder
            shutil.copytree(root / folder, target, dirs_exist_ok=True)


setup(cmdclass={"build_py": BuildWithBundledData})
