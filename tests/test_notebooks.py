"""The notebooks: each runs top to bottom with small settings, and what it writes is checked.

Every notebook reads ``MUSICFLOW_NB_SMALL`` (short pieces, few of them) and ``MUSICFLOW_NB_OUT``
(where its PNG, MIDI, WAV and JSON files go) in its first code cell. The kernel gets this checkout
on ``PYTHONPATH``, so it imports the musicflow under test even where another copy is installed.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import wave
from pathlib import Path

import numpy as np
import pretty_midi
import pytest

from musicflow.media.audio import TAIL_SECONDS

nbformat = pytest.importorskip("nbformat", reason="nbformat is missing: pip install -e '.[dev]'")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SAMPLE_RATE = 22050  # the notebooks' SAMPLE_RATE
CELL_TIMEOUT = 300  # seconds; small settings need a few, a shared CPU may need more

# notebook -> (PNG names, WAV names; every WAV has a MIDI file of the same name beside it)
EXPECTED = {
    "01_corpus_tour": (["genres", "pitch", "rhythm", "examples"], ["example-celtic", "example-chorale"]),
    "02_compose_and_mix": (["samples", "mix_sweep", "mix_rolls", "mix_methods", "style_rolls"],
                           ["sample-celtic", "sample-chorale", "mix-middle", "style-schumann"]),
    "03_latent_space": (["roundtrip", "interpolation", "transfer", "variations"],
                        ["piece-a", "interpolation-path", "transfer-chorale", "variation"]),
    "04_likelihood": (["score", "likelihood_matrix", "families", "family_rolls"], []),
}


def _kernel_missing() -> str | None:
    for module in ("nbclient", "ipykernel"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is missing: pip install -e '.[dev]'"
    return None


def execute(name: str, out: Path, cwd: Path, monkeypatch) -> None:
    """Run a notebook top to bottom in a fresh ``python3`` kernel; a failing cell fails the test."""
    from nbclient import NotebookClient

    monkeypatch.setenv("MUSICFLOW_NB_SMALL", "1")
    monkeypatch.setenv("MUSICFLOW_NB_OUT", str(out))
    monkeypatch.setenv("MUSICFLOW_NB_ENGINE", "simple")  # deterministic, and FluidSynth is optional
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                   resources={"metadata": {"path": str(cwd)}}).execute()


def check_png(path: Path) -> None:
    from matplotlib.image import imread

    assert path.is_file(), f"{path.name} was not written"
    img = imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4), path.name
    assert img.shape[0] > 150 and img.shape[1] > 300, f"{path.name}: {img.shape} is a thumbnail"
    assert img[..., :3].std() > 0.02, f"{path.name} is blank"


def check_wav(wav: Path) -> None:
    """Mono 16-bit at the notebooks' rate, as long as its MIDI plus the render tail, and audible."""
    assert wav.is_file(), f"{wav.name} was not written"
    end = pretty_midi.PrettyMIDI(str(wav.with_suffix(".mid"))).get_end_time()
    assert end > 0.5, f"{wav.name}: its MIDI lasts only {end:.2f} s"
    with wave.open(str(wav)) as w:
        p = w.getparams()
        pcm = np.frombuffer(w.readframes(p.nframes), dtype="<i2") / 32767.0
    assert (p.nchannels, p.sampwidth, p.framerate) == (1, 2, SAMPLE_RATE), wav.name
    # The MIDI file's tick grid moves the end by far less than a millisecond: allow two samples.
    assert abs(p.nframes - math.ceil((end + TAIL_SECONDS) * SAMPLE_RATE)) <= 2, wav.name
    assert float(np.sqrt(np.mean(pcm**2))) > 1e-3, f"{wav.name} is silent"


def check_results(name: str, out: Path) -> None:
    """The figures a notebook measures: present, well formed, and where they must hold, true."""
    if name == "01_corpus_tour":
        stats = json.loads((out / "stats.json").read_text())
        assert len(stats) == 7 and all(s["notes_per_bar"] > 0 for s in stats.values())
        assert stats["chorale"]["polyphony"] > 2 > stats["celtic"]["polyphony"]
        return
    res = json.loads((out / "results.json").read_text())
    if name == "02_compose_and_mix":
        assert len(res["sweep"]) == 3
        for probs in res["sweep"].values():
            assert sum(probs.values()) == pytest.approx(1.0, abs=1e-4)
        style = res["style"]
        assert style["files"] == 3 and style["builtin_unchanged"]
        assert style["held_out_bits_per_dim"] <= style["start_bits_per_dim"]
        assert all(len(p) == 8 for p in style["heard"].values())
        by_method = res["sweep_by_model_and_mix"]
        assert set(by_method) == {"keyflow product", "keyflow embed", "cnf embed", "cnf product"}
        for rows in by_method.values():  # the independent classifier's reading, weight 0 .. 1 of chorale
            assert list(rows) == ["0.0", "0.5", "1.0"] and all(len(p) == 7 for p in rows.values())
            assert rows["1.0"]["chorale"] > rows["0.0"]["chorale"]
    elif name == "03_latent_space":
        assert res["roundtrip_exact"] and res["interpolation_ends_exact"]  # a flow inverts exactly
        assert res["roundtrip_max_error"] < 1e-4
        assert (res["decoding"], res["threshold"]) == ("exact", 0.5)  # the Composer's default
        path, flood = res["interpolation_notes"], res["calibrated_interpolation_notes"]
        assert len(path) == len(flood) >= 3 and path[0] == res["piece_notes"] > 0
        assert (path[0], path[-1]) == (flood[0], flood[-1])  # exact ends under either threshold
        assert all(0 <= k <= 1 for k in res["variation_onsets_kept"].values())
    elif name == "04_likelihood":
        bits = np.array(res["bits_per_dim"])
        assert bits.shape == (7, 7) and np.isfinite(bits).all() and (bits > 0).all()
        assert np.array(res["confusion"]).sum() == 14  # two pieces per genre
        s = res["sanity"]
        assert s["the piece"] < s["random notes"]  # real music is cheaper than random notes
        fam = res["families"]  # read from the committed evaluation report
        assert set(fam) == {"flow (KeyFlow)", "VAE", "GAN", "Bernoulli", "real music"}
        assert all(0 <= v["fidelity"] <= 1 and 0 <= v["overlap"] <= 1 for v in fam.values())
        assert all(n > 0 for n in res["family_roll_notes"].values())  # every family composes notes


@pytest.mark.skipif(_kernel_missing() is not None, reason=str(_kernel_missing()))
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_runs_and_writes_pictures_and_sound(name, tmp_path, monkeypatch):
    out_root = tmp_path / "out"
    execute(name, out_root, tmp_path, monkeypatch)
    out = out_root / name
    pngs, wavs = EXPECTED[name]
    for png in pngs:
        check_png(out / f"{png}.png")
    for stem in wavs:
        check_wav(out / f"{stem}.wav")
    check_results(name, out)
    assert not list(out.glob("*.tmp")), "a half-written file was left behind"


def test_every_notebook_is_tested_and_linked_from_the_readme():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == sorted(EXPECTED)
    readme = (ROOT / "README.md").read_text()
    for name in EXPECTED:
        assert f"notebooks/{name}.ipynb" in readme, f"README does not link {name}"
    for image in (ROOT / "docs" / "images").glob("nb-*.png"):
        assert f"docs/images/{image.name}" in readme, f"{image.name} is not shown in the README"
    shown = [line for line in readme.splitlines() if "docs/images/nb-" in line]
    assert len(shown) == len(list((ROOT / "docs" / "images").glob("nb-*.png")))  # each picture once
    assert all(any(f"docs/images/nb-{name}" in line for line in shown) for name in EXPECTED)
    for line in shown:
        target = line.split("(", 1)[1].split(")", 1)[0]
        assert (ROOT / target).is_file(), f"README shows {target}, which does not exist"


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.stem)
def test_committed_notebooks_have_no_outputs(path):
    """Run ``python tools/strip_notebooks.py`` before committing a notebook you executed."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {i} has outputs"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count"
        assert "execution" not in cell.metadata, f"{path.name} cell {i} has run timings"


def test_strip_tool_clears_what_a_run_leaves(tmp_path):
    spec = importlib.util.spec_from_file_location("strip_notebooks", ROOT / "tools" / "strip_notebooks.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    v4 = nbformat.v4
    nb = v4.new_notebook(cells=[v4.new_markdown_cell("# x"), v4.new_code_cell("1 + 1")])
    nb.cells[1].outputs = [v4.new_output("execute_result", {"text/plain": "2"}, execution_count=1)]
    nb.cells[1].execution_count = 1
    nb.cells[1].metadata["execution"] = {"iopub.status.idle": "2026-01-01T00:00:00Z"}
    path = tmp_path / "run.ipynb"
    nbformat.write(nb, path)
    assert tool.main(["--check", str(path)]) == 1
    assert tool.main([str(path)]) == 0
    assert tool.main(["--check", str(path)]) == 0
    cell = nbformat.read(path, as_version=4).cells[1]
    assert (cell.outputs, cell.execution_count, cell.source) == ([], None, "1 + 1")
