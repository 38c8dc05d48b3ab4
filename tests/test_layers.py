"""The package's shape is checked, not hoped for: import-linter's contracts in pyproject.toml."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = "from importlinter.cli import lint_imports; raise SystemExit(lint_imports(no_cache=True))"


def _lint(root: Path) -> subprocess.CompletedProcess:
    pytest.importorskip("importlinter", reason="pip install -e '.[dev]' brings import-linter")
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([sys.executable, "-c", LINT], cwd=root, env=env, capture_output=True, text=True)


def test_layers_point_down_and_rooms_have_no_cycles():
    r = _lint(ROOT)
    assert r.returncode == 0 and "0 broken" in r.stdout, r.stdout + r.stderr


def test_a_layer_violation_is_caught(tmp_path):
    """The contract can fail: a copy of the package whose data room imports the Composer breaks it."""
    shutil.copytree(ROOT / "musicflow", tmp_path / "musicflow", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    with open(tmp_path / "musicflow" / "data" / "genres.py", "a") as f:
        f.write("\nfrom musicflow.compose import Composer  # noqa\n")
    r = _lint(tmp_path)
    assert r.returncode != 0 and "musicflow.data.genres -> musicflow.compose" in r.stdout, r.stdout
