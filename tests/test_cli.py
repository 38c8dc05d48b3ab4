"""The command line through click's CliRunner and as a real subprocess."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from musicflow.cli import main


def test_data_build_and_info(corpus_dir, tmp_path):
    out = tmp_path / "mine.npz"
    r = CliRunner().invoke(main, ["data", "build", "--source", str(corpus_dir), "-o", str(out),
                                  "--jobs", "1", "--quiet"])
    assert r.exit_code == 0, r.output
    assert "skipped" in r.output and "broken.mid" in r.output
    assert out.is_file()
    r = CliRunner().invoke(main, ["data", "info", str(out)])
    assert r.exit_code == 0
    assert "jazz" in r.output and "folk" in r.output and "keeps" in r.output


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    r = CliRunner().invoke(main, ["data", "info", str(tmp_path / "missing.npz")])
    assert r.exit_code == 2
    assert r.output.strip().count("\n") == 0 and "missing.npz" in r.output
    r = CliRunner().invoke(main, ["data", "build", "--source", str(tmp_path / "nowhere")])
    assert r.exit_code == 2 and "nowhere" in r.output
    r = CliRunner().invoke(main, ["data", "build", "--pitches", "50"])
    assert r.exit_code == 2 and "--pitches" in r.output


def test_subprocess_entry_point(corpus_dir, tmp_path):
    out = tmp_path / "d.npz"
    cmd = [sys.executable, "-m", "musicflow", "data", "build", "--source", str(corpus_dir / "jazz"),
           "--genre", "jazz", "-o", str(out), "--jobs", "2"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "wrote" in p.stdout and out.is_file()
    p = subprocess.run([sys.executable, "-m", "musicflow", "data", "info", str(tmp_path / "no.npz")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "Traceback" not in p.stderr and "no.npz" in p.stderr


def test_the_command_line_starts_without_torch():
    """`musicflow --help`, `data info` and `render` need no model: the CLI's options read their
    defaults from torch-free settings modules, and the packages load their models on first use."""
    import subprocess
    import sys

    code = "import sys, musicflow.cli; assert 'torch' not in sys.modules"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
