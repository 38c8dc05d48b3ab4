"""Builds musicflow; the metadata lives in setup.cfg.

The one thing setup.cfg cannot say: a built package carries the default checkpoints and dataset
(``musicflow.paths.SHIPPED_FILES``), which the checkout keeps in ``checkpoints/`` and ``data/``.
``build_py`` copies them into ``musicflow/shipped/`` of the build, so a wheel or ``pip install .``
composes from any folder while the checkout holds each file once.
"""

import ast
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def shipped_files() -> dict:
    """``SHIPPED_FILES`` read from musicflow/paths.py without importing the package (no torch)."""
    tree = ast.parse((ROOT / "musicflow" / "paths.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.AnnAssign | ast.Assign):
            target = node.target if isinstance(node, ast.AnnAssign) else node.targets[0]
            if getattr(target, "id", None) == "SHIPPED_FILES":
                return ast.literal_eval(node.value)
    raise RuntimeError("musicflow/paths.py defines no SHIPPED_FILES")


class BuildWithShipped(build_py):
    def run(self):
        super().run()
        if self.editable_mode:  # an editable install reads the checkout itself
            return
        out = Path(self.build_lib) / "musicflow" / "shipped"
        out.mkdir(parents=True, exist_ok=True)
        for folder, names in shipped_files().items():
            for name in names:
                src = ROOT / folder / name
                if not src.is_file():
                    raise RuntimeError(f"{src}: a shipped file is missing; build it first (docs/training.md)")
                shutil.copyfile(src, out / name)


setup(cmdclass={"build_py": BuildWithShipped})
