"""Evaluation: baselines, novelty and the report, on hand-made rolls and a tiny model."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import make_midi

from musicflow.baselines.bernoulli import Bernoulli, bernoulli_bpd
from musicflow.baselines.vae import VAE, VAEConfig
from musicflow.checkpoint import load_checkpoint, save_checkpoint
from musicflow.cli import main
from musicflow.data.build import build_dataset
from musicflow.data.dataset import Dataset
from musicflow.data.windows import WindowSet
from musicflow.evaluate.metrics import all_metrics, overlap_area
from musicflow.evaluate.novelty import diversity, nearest, segments, summarize
from musicflow.evaluate.report import EvalConfig, evaluate
from musicflow.evaluate.tables import to_markdown
from musicflow.flows.base import Condition
from musicflow.roll import PianoRollSpec
from musicflow.training import TrainConfig, train
from musicflow.training.classifier import train_classifier

SECTIONS = ("bits_per_dim", "metrics", "fidelity", "likelihood_classification", "novelty", "diversity",
            "speed")


# -- pure functions, hand-computed ----------------------------------------------------------------

def test_novelty_distances_by_hand():
    s = np.zeros((2, 2, 3, 2))
    s[0, 1, 0, :] = 1  # pitch 0 sounds 2 steps
    r = np.zeros((2, 2, 3, 2))
    r[0, 1, 0, 0] = 1  # one of those cells
    r[1, 1, 0, :] = 1
    r[1, 1, 1, :] = 1  # pitch 0 and 1 sound
    ham, jac = nearest(s, [r[:1], r[1:]])  # references in two chunks
    # sample 0 vs r0: 1 shared cell of 2 and 1, differs in 1, Jaccard 1 - 1/2; vs r1: differs in 2,
    # Jaccard 1 - 2/4. Sample 1 (silent) vs r0: differs in 1 cell, Jaccard 1; vs r1: in 4.
    assert ham.tolist() == [1.0, 1.0] and jac.tolist() == [0.5, 1.0]
    out = summarize(ham, jac, np.array([False, True]))
    assert out["silent"] == 1 and out["exact_copies"] == 0.0 and out["jaccard_mean"] == 0.5


def test_exact_copy_and_segments():
    rng = np.random.default_rng(0)
    train = (rng.random((5, 2, 4, 8)) < 0.3).astype(np.float32)
    ham, jac = nearest(train[[3]], [train])
    assert ham[0] == 0 and jac[0] == 0
    long = np.concatenate([train[0], train[1]], axis=-1)[None]
    seg = segments(long, 8)
    assert np.array_equal(seg[1], train[1])


def test_bernoulli_bpd_on_a_hand_made_split():
    spec = PianoRollSpec(low=60, pitches=4, key_normalize=False)
    ds = Dataset.from_records([
        {"id": "tr", "genre": "a", "split": "train", "title": "", "notes": [[60, 0, 4, 80]], "bars": [0]},
        {"id": "te", "genre": "a", "split": "test", "title": "", "notes": [[61, 0, 4, 80]], "bars": [0]},
    ], spec)
    tr = WindowSet(ds, "train", window=4, context=0, grid=4)
    te = WindowSet(ds, "test", window=4, context=0, grid=4)
    # One training window: 5 cells on (1 onset + 4 sustain), so p = 1.5/2 = 0.75 there, 0.25 elsewhere.
    # The test window's 5 cells on pitch 61 have p = 0.25 (2 bits), the 5 train cells now off
    # 1 - 0.75 (2 bits), the other 22 cells 0.75 (-log2 0.75 bits each).
    expected = (10 * 2 + 22 * -math.log2(0.75)) / 32
    assert bernoulli_bpd(tr, te)["a"] == pytest.approx(expected, abs=1e-6)
    model = Bernoulli.fit(tr)
    x, _, g = te.batch(np.arange(1))
    assert float(model.bits_per_dim(x, Condition(g))) == pytest.approx(expected, abs=1e-5)
    draws = model.sample(400, Condition(g), generator=torch.Generator().manual_seed(0))
    assert abs(float(draws[:, 1, 0].mean()) - 0.75) < 0.06  # draws follow the fitted cell probability


def test_overlap_area_by_hand():
    # Histograms on [0, 1] in 2 bins: a = (1/2, 1/2), b = (1/4, 3/4): overlap 1/2 + 1/4
    assert overlap_area(np.array([0.0, 1.0]), np.array([0.0, 1.0, 1.0, 1.0]), bins=2) == 0.75


def test_metrics_of_a_small_roll_by_hand():
    r = np.zeros((2, 12, 32))
    r[:, 0, 0:4] = 1  # C, a quarter
    r[0, 0, 1:4] = 0
    r[:, 4, 16:24] = 1  # E, a half, in bar 2
    r[0, 4, 17:24] = 0
    m = all_metrics(r, 60)
    assert m["notes_per_bar"] == 1.0 and m["pitch_range"] == 4.0 and m["polyphony"] == 1.0
    assert m["pitch_classes_used"] == 2.0 and m["pitch_class_entropy"] == 1.0
    assert m["empty_beat_rate"] == 5 / 8 and m["scale_consistency"] == 1.0
    assert m["groove_consistency"] == 1.0 and m["note_density"] == 12 / (12 * 32)


def test_diversity_by_hand():
    same = np.zeros((3, 2, 4, 4))
    same[:, 1, 0] = 1
    assert diversity(same) == 0.0  # one piece three times: a collapsed model
    apart = np.zeros((2, 2, 4, 4))
    apart[0, 1, 0] = 1
    apart[1, 1, 1] = 1
    assert diversity(apart) == 1.0
    half = apart.copy()
    half[1, 1, 0, :2] = 1  # shares 2 of the 10 cells the two sound together
    assert diversity(half) == pytest.approx(1 - 2 / 8)
    assert diversity(np.concatenate([same[:1], np.zeros((4, 2, 4, 4))])) is None  # silent ones left out


# -- the VAE baseline ------------------------------------------------------------------------------

def _vae() -> VAE:
    return VAE(VAEConfig(pitches=8, steps=4, n_genres=2, dim=4, hidden=8, bottleneck=16,
                         context_steps=8, context_channels=4, cond_dim=8, embed_dim=4))


def test_vae_loss_falls_and_is_per_binary_cell():
    torch.manual_seed(0)
    vae = _vae()
    x = (torch.rand(16, 2, 8, 4) < 0.2).float()
    cond = Condition(torch.eye(2)[torch.arange(16) % 2], torch.zeros(16, 2, 8, 8))
    opt = torch.optim.Adam(vae.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(30):
        loss = vae.bits_per_dim(x, cond, generator=gen).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])
    vae.eval()
    lp = vae.log_prob(x, cond, generator=torch.Generator().manual_seed(1))
    bpd = vae.bits_per_dim(x, cond, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(bpd, -lp / (2 * 8 * 4 * math.log(2)))  # cells, not the latent size


def test_vae_decode_in_unit_interval_and_checkpoint_round_trip(tmp_path):
    vae = _vae().eval()
    cond = Condition(torch.tensor([[0.5, 0.5]]).expand(3, -1), torch.ones(3, 2, 8, 8))
    z = 5 * torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    v = vae.decode(z, cond)
    assert v.shape == (3, 2, 8, 4) and bool(((v >= 0) & (v <= 1)).all())
    save_checkpoint(tmp_path / "v.pt", "vae", vae, PianoRollSpec(pitches=8), ["a", "b"], {})
    ck = load_checkpoint(tmp_path / "v.pt")
    assert ck.kind == "vae" and ck.model.config == vae.config
    assert torch.equal(ck.model.decode(z, cond), v)


# -- the report on a tiny model --------------------------------------------------------------------

TINY_GLOW = {"levels": 1, "depth": 1, "hidden": 8, "context_channels": 4, "cond_dim": 8, "embed_dim": 4,
             "steps": 4, "context_steps": 16}
TINY_VAE = {"hidden": 8, "bottleneck": 8, "dim": 4, "context_channels": 4, "cond_dim": 8, "embed_dim": 4,
            "steps": 4, "context_steps": 16}
TINY_GAN = {"hidden": 8, "critic_hidden": 8, "bottleneck": 8, "noise": 4, "context_channels": 4,
            "cond_dim": 8, "embed_dim": 4, "steps": 4, "context_steps": 16}
TINY_CNF = {"hidden": 8, "context_channels": 4, "cond_dim": 8, "embed_dim": 4, "blocks": 1, "steps": 4,
            "context_steps": 16, "sample_steps": 2}
SMALL = EvalConfig(samples=3, bars=4, test_windows=8, real_windows=4, mix_samples=2, classify_pieces=1,
                   classify_bars=4)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny dataset (two genres, every split), a tiny Glow, VAE, GAN, neural ODE and classifier."""
    root = tmp_path_factory.mktemp("tiny")
    for genre, base in (("jazz", 60), ("folk", 64)):
        (root / genre).mkdir()
        for i in range(4):
            make_midi(root / genre / f"{i}.mid", [(base + (b * (i + 1)) % 5, b, b + 1) for b in range(32)])
    ds, _ = build_dataset(str(root), cache_dir=None, quiet=True, pitches=8, jobs=1)
    for g in ds.genres:  # the pieces of each genre in order: train, train, valid, test
        for k, i in enumerate(ds.indices(genre=g)):
            ds.pieces[i]["split"] = ("train", "train", "valid", "test")[k % 4]
    data = ds.save(root / "tiny.npz")
    cfg = TrainConfig(steps=2, batch_size=8, valid_every=2, warmup=1, valid_windows=4)
    train("glow", data, root / "glow.pt", cfg, TINY_GLOW, quiet=True)
    train("vae", data, root / "vae-music21.pt", cfg, TINY_VAE, quiet=True)
    train("gan", data, root / "gan-music21.pt", cfg, TINY_GAN, quiet=True)
    train("cnf", data, root / "cnf.pt", cfg, TINY_CNF, quiet=True)
    clf, info = train_classifier(Dataset.load(data), steps=2, batch_size=8, quiet=True)
    save_checkpoint(root / "clf.pt", "classifier", clf, ds.spec, ds.genres, info)
    return root


def test_report_has_every_section(tiny):
    report = evaluate(tiny / "glow.pt", tiny / "tiny.npz", SMALL, classifier=tiny / "clf.pt")
    for section in SECTIONS:
        assert section in report, section
    assert set(report["models"]) == {"model", "bernoulli", "vae", "gan"}
    genres = report["data"]["genres"]
    for g in genres:  # the GAN has no likelihood: no bits/dim, no likelihood classification
        assert set(report["bits_per_dim"]["per_genre"][g]) == {"model", "bernoulli", "vae"}
        assert set(report["diversity"]["per_genre"][g]) == {"model", "bernoulli", "vae", "gan", "real_test"}
        assert set(report["fidelity"]["per_genre"][g]) >= {"model", "bernoulli", "vae", "gan"}
        assert "gan" in report["metrics"]["per_genre"][g]["pitch_range"]
        row = report["metrics"]["per_genre"][g]
        assert len(row) == 9 and all(0 <= row[k]["model"]["overlap"] <= 1 for k in row)
        assert "train_vs_test" in row["pitch_range"]
    assert "gan" not in report["likelihood_classification"] and "vae" in report["likelihood_classification"]
    assert report["novelty"]["gan"]["samples"] == 3 * len(genres)
    assert all(report["speed"][n]["bars_per_s"] > 0 for n in ("model", "bernoulli", "vae", "gan"))
    assert len(report["fidelity"]["mixes"]["model"]["pairs"]) == 1
    lc = report["likelihood_classification"]
    assert np.array(lc["model"]["confusion"]).sum() == sum(lc["pieces_per_genre"].values())
    assert report["novelty"]["model"]["samples"] == 3 * len(genres)
    assert "seed" in report["settings"] and report["seeds"]["samples"]
    # The Glow is sampled as compose samples it (guided), the baselines plainly.
    from musicflow.compose import DEFAULT_CANDIDATES, DEFAULT_GUIDANCE

    assert (report["models"]["model"]["guidance"], report["models"]["model"]["candidates"]) == \
        (DEFAULT_GUIDANCE, DEFAULT_CANDIDATES)
    assert report["models"]["vae"]["candidates"] == 1 and report["models"]["bernoulli"]["guidance"] == 1.0
    assert report["models"]["gan"]["kind"] == "gan" and report["models"]["gan"]["candidates"] == 1
    from musicflow.evaluate.fidelity import real_openings, statistics

    ds = Dataset.load(tiny / "tiny.npz")
    steps = SMALL.bars * ds.spec.bar_steps()
    for g in genres:  # one test piece per genre, 8 bars long: one 4-bar opening each
        assert report["fidelity"]["per_genre"][g]["real_openings"]["pieces"] == 1
        opening = statistics(real_openings(ds, "test", g, SMALL.real_windows, steps), ds.spec.low)
        got = report["metrics"]["per_genre"][g]["notes_per_bar"]["real_openings"]
        assert got == pytest.approx(float(opening["notes_per_bar"].mean()), abs=1e-4)
    md = to_markdown(report)
    assert "| metric | real | real openings |" in md
    assert f"guidance {DEFAULT_GUIDANCE:g}, {DEFAULT_CANDIDATES} candidate pieces resampled each beat" in md
    assert report["models"]["model"]["outlines"] is False and "outline" not in md
    report["models"]["model"]["outlines"] = True
    assert "composed to the outline" in to_markdown(report)
    for heading in ("Bits per dimension", "Musical metrics", "Genre fidelity", "Likelihood classification",
                    "Novelty", "Diversity within a genre", "Speed"):
        assert heading in md
    summary = md.split("## Summary")[1].split("##")[0]
    assert "keyflow" not in summary and "glow / vae / gan / bernoulli" in summary
    assert " / – / " in summary  # the GAN's bits/dim and likelihood classification cells
    json.dumps(report)  # JSON-able


def test_real_openings_are_the_first_bars_of_test_pieces(tiny):
    from musicflow.evaluate.fidelity import real_openings

    ds = Dataset.load(tiny / "tiny.npz")
    got = real_openings(ds, "test", "folk", n=5, steps=16)
    first = ds.indices("test", "folk")[0]
    assert got.shape == (1, 2, 8, 16) and np.array_equal(got[0], ds.roll(first)[..., :16])
    assert len(real_openings(ds, "test", "folk", n=5, steps=10_000)) == 0  # no piece that long
    # n of more pieces: a seeded choice among them, not always the first n in dataset order.
    pieces = ds.indices(None, "folk")
    openings = [ds.roll(i)[..., :16] for i in pieces]
    chosen = []
    for seed in range(8):
        got = real_openings(ds, None, "folk", n=2, steps=16, seed=seed)
        assert np.array_equal(got, real_openings(ds, None, "folk", n=2, steps=16, seed=seed))
        which = [next(j for j, o in enumerate(openings) if np.array_equal(o, g)) for g in got]
        assert len(set(which)) == 2 and which == sorted(which)
        chosen.append(tuple(which))
    assert len(set(chosen)) > 1


def test_real_windows_lie_wholly_inside_their_pieces(tiny):
    """Composed pieces never end, so the reference windows must not run past a piece's end."""
    from musicflow.evaluate.fidelity import real_windows

    ds = Dataset.load(tiny / "tiny.npz")
    (piece,) = ds.indices("test", "folk")
    roll = ds.roll(piece)
    assert roll.shape[-1] == 128  # 8 bars: windows of 3 bars start at bars 0 and 3; bar 6 runs past the end
    got = real_windows(ds, "test", "folk", n=10, steps=48)
    assert got.shape == (2, 2, 8, 48)
    assert np.array_equal(got[0], roll[..., :48]) and np.array_equal(got[1], roll[..., 48:96])
    assert len(real_windows(ds, "test", "folk", n=1, steps=48)) == 1


def test_samples_are_those_of_compose(tiny):
    from musicflow.compose import DEFAULT_TEMPERATURE, Composer
    from musicflow.evaluate.report import Subject, generate_pieces

    c = Composer.load(tiny / "glow.pt")
    batch = generate_pieces(Subject("model", c, DEFAULT_TEMPERATURE, "", guidance=None), {"folk": 1.0}, 2,
                            bars=2, seed=5)
    one = c.compose_result("folk", bars=2, seed=6).roll
    assert np.array_equal(batch[1], one)
    plain = generate_pieces(Subject("model", c, DEFAULT_TEMPERATURE, ""), {"folk": 1.0}, 2, bars=2, seed=5)
    assert np.array_equal(plain[1], c.compose_result("folk", bars=2, seed=6, guidance=1).roll)


def test_cli_evaluate_writes_json_and_markdown(tiny, tmp_path):
    out = tmp_path / "r.json"
    args = ["evaluate", "--model", str(tiny / "glow.pt"), "--data", str(tiny / "tiny.npz"), "--samples", "2",
            "--test-windows", "4", "--real-windows", "3", "--mix-samples", "0", "--classify-pieces", "1",
            "--classify-bars", "2", "--no-baselines", "--classifier", str(tiny / "clf.pt"), "-o", str(out),
            "--quiet"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    report = json.loads(out.read_text())
    assert set(report["models"]) == {"model"} and all(s in report for s in SECTIONS)
    assert report["likelihood_classification"]["bars_per_piece"] == 2
    assert out.with_suffix(".md").read_text().startswith("# musicflow evaluation")


def test_cli_evaluate_bad_model_is_one_line(tmp_path):
    r = CliRunner().invoke(main, ["evaluate", "--model", str(tmp_path / "none.pt"), "--quiet"])
    assert r.exit_code == 2 and r.output.strip().count("\n") == 0 and "none.pt" in r.output


def _benchmark(name: str):
    """A script of ``benchmarks/`` loaded as a module (the folder is not a package)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_run_all_summary_renders_every_result(tiny, tmp_path, monkeypatch):
    run_all = _benchmark("run_all")
    monkeypatch.setattr(run_all, "RESULTS", tmp_path)
    report = evaluate(tiny / "glow.pt", tiny / "tiny.npz", SMALL, baselines=False, classifier=tiny / "clf.pt")
    (tmp_path / "evaluate-glow.json").write_text(json.dumps(report))
    (tmp_path / "bench_new.json").write_text(json.dumps({"benchmark": "bench_new", "speed": 1.5}))
    text = run_all.summary([{"name": "x", "command": "c", "returncode": 0, "wall_s": 1.0}]).read_text()
    assert "## evaluate-glow" in text and "### Bits per dimension" in text
    assert "| speed | 1.5 |" in text and "## This run" in text


def test_bench_pieces_tells_a_stray_note_from_a_wide_tune():
    """The piece benchmark's shape statistics: a tune that repeats its bar has every bar after the
    first repeated and its extremes heard more than once; one stray note an octave and a half
    above it is heard once and makes two leaps over an octave."""
    bench = _benchmark("bench_pieces")
    tune = np.zeros((2, 48, 64), np.float32)
    for bar in range(4):
        for step, pitch in enumerate((10, 12, 14, 12)):
            tune[:, pitch, 16 * bar + 4 * step] = 1
    once, leaps, repeats = bench.shape_stats(tune, 16)
    assert once == 0.0 and leaps == 0.0 and repeats == [True, True, True]
    stray = tune.copy()
    stray[:, 30, 40] = 1  # between two notes of bar 3
    once, leaps, repeats = bench.shape_stats(stray, 16)
    # one note of five added to a bar still repeats it (onset overlap 4 / 5 = 0.8)
    assert once == 0.5 and leaps == 2 / 16 and repeats == [True, True, True]


def test_test_bpd_is_the_models_own_bound(tiny):
    from musicflow.evaluate.report import test_bpd
    from musicflow.training import evaluate_bpd, model_windows

    ck = load_checkpoint(tiny / "glow.pt")
    ws = model_windows(Dataset.load(tiny / "tiny.npz"), "test", ck.model.config, ck.genres)
    ours = test_bpd(ck.model, ws, 5, seed=3)
    assert ours == pytest.approx(evaluate_bpd(ck.model, ws, 5, "cpu", seed=3))


def test_cnf_report_uses_the_asked_ode_solver(tiny):
    from dataclasses import replace

    from musicflow.compose import Composer, Input
    from musicflow.evaluate.report import use_ode_solver
    from musicflow.flows.odefunc import Solver

    cfg = replace(SMALL, ode_solver="rk4:3", mix_samples=0)
    report = evaluate(tiny / "cnf.pt", tiny / "tiny.npz", cfg, baselines=False, classifier=tiny / "clf.pt")
    assert report["models"]["model"]["likelihood_solver"] == "rk4:3"
    assert "solver rk4:3" in to_markdown(report)
    # the classification's likelihoods are those of the model under that solver
    c = Composer.load(tiny / "cnf.pt")
    ds = Dataset.load(tiny / "tiny.npz")
    roll = ds.roll(ds.indices("test", "folk")[0])[..., :4 * ds.spec.bar_steps()]
    xs, ctx = c.windows(roll)
    vec = torch.zeros(len(xs), 2)
    vec[:, 0] = 1
    solver = Solver("rk4", steps=3)
    want, _ = c.model.log_prob_with_stderr(xs, Condition(vec, ctx), torch.Generator().manual_seed(0), solver)
    use_ode_solver(c, "rk4:3")
    got, _ = c.log_likelihoods(Input(roll, 0, "", 100.0, None))
    assert np.allclose(got[c.genres[0]], want.detach().numpy(), atol=1e-4)
    assert c.model.last_nfe == 12


def _evaluate_args(tiny, tmp_path) -> list[str]:
    return ["evaluate", "--data", str(tiny / "tiny.npz"), "--classifier", str(tiny / "clf.pt"),
            "--no-baselines", "-o", str(tmp_path / "r.json"), "--quiet"]


@pytest.mark.parametrize("model,flag,value,needle", [
    ("glow", "--ode-solver", "rk4:8", "neural-ODE"),
    ("cnf", "--ode-solver", "rk4", "rk4:8"),
    ("glow", "--repeat", "0.5", "only the sequence flow"),
    ("glow", "--repeat", "1.5", "repeat must be in [0, 1]"),
])
def test_an_ode_solver_or_repeat_that_does_not_apply_is_one_line(tiny, tmp_path, model, flag, value, needle):
    r = CliRunner().invoke(main, [*_evaluate_args(tiny, tmp_path), "--model", str(tiny / f"{model}.pt"),
                                  flag, value])
    assert r.exit_code != 0 and r.output.strip().count("\n") == 0 and needle in r.output
    assert not (tmp_path / "r.json").exists()
