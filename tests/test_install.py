"""The package as a user installs it: a built wheel carries its default checkpoints and dataset and
composes from any folder, in a fresh environment that cannot see the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pretty_midi
import pytest

from musicflow.paths import SHIPPED_FILES

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.install


def run(cmd: list, cwd: Path, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    p = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=timeout)
    assert p.returncode == 0, f"{cmd} failed:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
    return p


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel ``pip install .`` builds and installs (no build isolation: nothing downloaded)."""
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", out, ROOT],
        cwd=out)
    (whl,) = out.glob("musicflow-*.whl")
    return whl


@pytest.fixture(scope="module")
def venv(tmp_path_factory, wheel) -> Path:
    """A fresh virtual environment with the wheel installed. Its dependencies (torch, music21, ...)
    come from this interpreter's site-packages through a path file, so nothing is downloaded; the
    checkout's own musicflow stays invisible (path files there are not processed)."""
    env_dir = tmp_path_factory.mktemp("venv")
    run([sys.executable, "-m", "venv", "--without-pip", env_dir], cwd=env_dir)
    py = env_dir / "bin" / "python"
    site = Path(run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], env_dir)
                .stdout.strip())
    outer = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "outer.pth").write_text("\n".join(sorted(outer)) + "\n")
    run([py, "-m", "pip", "install", "--no-deps", "--no-index", "-q", wheel], cwd=env_dir)
    return env_dir


def user_env(home: Path) -> dict:
    """A user with an empty home: no MUSICFLOW_HOME, no checkout on the path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MUSICFLOW", "PYTHON", "XDG_"))}
    return {**env, "HOME": str(home)}


def test_wheel_carries_the_shipped_files(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for files in SHIPPED_FILES.values():
        for name in files:
            assert f"musicflow/shipped/{name}" in names
    assert not any(n.startswith(("checkpoints/", "data/", "tests/")) for n in names)


def test_installed_package_composes_and_classifies_from_any_folder(venv, tmp_path):
    env = user_env(tmp_path)
    py, cli = venv / "bin" / "python", venv / "bin" / "musicflow"
    where = run([py, "-c", "import musicflow, musicflow.paths as p; print(musicflow.__file__); "
                 "print(p.checkpoint('keyflow-music21.pt')); print(p.home())"], tmp_path, env).stdout.split()
    assert all(Path(w).is_relative_to(venv) for w in where[:2]), where
    assert Path(where[2]) == tmp_path / ".local" / "share" / "musicflow"
    run([cli, "compose", "--genre", "celtic", "--bars", "2", "--seed", "1", "-o", "t.mid", "--quiet"],
        tmp_path, env)
    pm = pretty_midi.PrettyMIDI(str(tmp_path / "t.mid"))
    assert sum(len(i.notes) for i in pm.instruments) > 0
    out = run([cli, "classify", "t.mid"], tmp_path, env).stdout
    assert "celtic" in out
    listed = run([cli, "models"], tmp_path, env).stdout
    assert "keyflow-music21.pt (the default)" in listed and "glow-music21.pt" in listed


def test_installed_package_reads_a_users_own_checkpoint_by_name(venv, tmp_path):
    """``--model NAME`` finds ``NAME.pt`` in the user's folder."""
    env = user_env(tmp_path)
    own = tmp_path / ".local" / "share" / "musicflow" / "checkpoints"
    own.mkdir(parents=True)
    (own / "keyflow-mine.pt").write_bytes((ROOT / "checkpoints" / "keyflow-music21.pt").read_bytes())
    run([venv / "bin" / "musicflow", "compose", "--model", "keyflow-mine", "--bars", "1", "--seed", "2",
         "-o", "m.mid", "--quiet"], tmp_path, env)
    assert (tmp_path / "m.mid").stat().st_size > 0


def test_sdist_carries_the_shipped_files_and_builds_the_wheel(tmp_path):
    """``python -m build`` makes the sdist, then the wheel from the unpacked sdist: both must hold
    the shipped files (MANIFEST.in and setup.py agree with ``SHIPPED_FILES``)."""
    pytest.importorskip("build")
    run([sys.executable, "-m", "build", "--no-isolation", "--outdir", tmp_path, ROOT], cwd=tmp_path)
    (sdist,), (whl,) = tmp_path.glob("musicflow-*.tar.gz"), tmp_path.glob("musicflow-*.whl")
    in_sdist = {n.split("/", 1)[1] for n in tarfile.open(sdist).getnames() if "/" in n}
    in_wheel = set(zipfile.ZipFile(whl).namelist())
    for folder, files in SHIPPED_FILES.items():
        for name in files:
            assert f"{folder}/{name}" in in_sdist and f"musicflow/shipped/{name}" in in_wheel
