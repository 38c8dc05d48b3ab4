"""Training, checkpoints and resume on a tiny dataset and a tiny Glow."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import torch

from musicflow.checkpoint import load_checkpoint
from musicflow.data.build import build_dataset
from musicflow.errors import MusicflowError
from musicflow.training import TrainConfig, train

TINY = {"levels": 1, "depth": 1, "hidden": 8, "context_channels": 4, "cond_dim": 8, "embed_dim": 4}


@pytest.fixture
def tiny_data(corpus_dir, tmp_path):
    ds, _ = build_dataset(str(corpus_dir), cache_dir=None, quiet=True, pitches=8)
    for p in ds.pieces:  # make every piece usable in every split for the tiny run
        p["split"] = "train"
    ds.pieces[0]["split"] = "valid"
    return ds.save(tmp_path / "tiny.npz")


def test_train_writes_a_self_describing_checkpoint(tiny_data, tmp_path):
    out = tmp_path / "m.pt"
    cfg = TrainConfig(steps=6, batch_size=8, valid_every=3, warmup=2, valid_windows=8)
    record = train("glow", tiny_data, out, cfg, TINY, quiet=True)
    assert record["step"] == 6 and len(record["history"]) == 2
    assert not (tmp_path / "m.pt.resume").exists()  # finished runs leave no resume state
    ck = load_checkpoint(out)
    assert ck.kind == "glow" and ck.genres == ["folk", "jazz"]
    assert ck.spec.pitches == 8 and ck.info["data_hash"] and ck.info["valid_bpd"] > 0
    assert ck.model.config.hidden == 8


def test_the_seed_fixes_the_run(tiny_data, tmp_path):
    """The same seed gives the same weights (initialisation, batches and the model's own noise);
    another seed gives other weights. The global RNG is disturbed in between, as other code would."""
    def weights(name: str, seed: int) -> dict:
        torch.rand(7)
        cfg = TrainConfig(steps=3, batch_size=8, valid_every=3, warmup=1, valid_windows=8, seed=seed)
        train("glow", tiny_data, tmp_path / name, cfg, TINY, quiet=True)
        return load_checkpoint(tmp_path / name).model.state_dict()

    a, b, c = weights("a.pt", 0), weights("b.pt", 0), weights("c.pt", 1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_interrupted_run_resumes(tiny_data, tmp_path):
    out = tmp_path / "m.pt"
    cfg = TrainConfig(steps=8, batch_size=8, valid_every=4, warmup=2, valid_windows=8, minutes=0.0)
    record = train("glow", tiny_data, out, cfg, TINY, quiet=True)  # stops after the first step
    assert record["step"] < 8 and (tmp_path / "m.pt.resume").exists()
    cfg = TrainConfig(steps=8, batch_size=8, valid_every=4, warmup=2, valid_windows=8)
    record = train("glow", tiny_data, out, cfg, resume=True, quiet=True)
    assert record["step"] == 8 and not (tmp_path / "m.pt.resume").exists()
    with pytest.raises(MusicflowError, match="nothing to resume"):
        train("glow", tiny_data, out, cfg, resume=True, quiet=True)


def test_fine_tuning_starts_from_the_checkpoint_and_records_it(tiny_data, tmp_path):
    base = tmp_path / "base.pt"
    cfg = TrainConfig(steps=4, batch_size=8, valid_every=4, warmup=1, valid_windows=8)
    train("glow", tiny_data, base, cfg, TINY, quiet=True)
    before = load_checkpoint(base).model.state_dict()
    out = tmp_path / "ft.pt"
    ft = TrainConfig(steps=2, batch_size=8, valid_every=2, warmup=1, valid_windows=8, lr=1e-9,
                     context_noise=0.5, init=str(base))
    record = train("glow", tiny_data, out, ft, quiet=True)
    assert record["init"]["checkpoint"] == str(base) and record["init"]["step"] == 4
    assert record["train_config"]["context_noise"] == 0.5 and record["step"] == 2
    after = load_checkpoint(out).model.state_dict()
    # a fresh model would differ everywhere; a 1e-9 learning rate leaves the initial weights
    assert all(torch.allclose(before[k], after[k], atol=1e-6) for k in before)
    with pytest.raises(MusicflowError, match="give no overrides"):
        train("glow", tiny_data, tmp_path / "x.pt", ft, TINY, quiet=True)
    with pytest.raises(MusicflowError, match="a glow checkpoint, not cnf"):
        train("cnf", tiny_data, tmp_path / "x.pt", ft, quiet=True)


def test_thin_context_silences_only_rows_not_held_into_the_window():
    from musicflow.data.windows import thin_context

    ctx = torch.zeros(2000, 2, 4, 8)
    ctx[:, 1, :, :4] = 1  # every row sounded earlier in the context ...
    ctx[:, 1, 0, :] = 1  # ... and row 0 is still sounding at its end
    assert torch.equal(thin_context(ctx, 0.0), ctx)
    out = thin_context(ctx, 0.6, torch.Generator().manual_seed(0))
    assert torch.equal(out[:, :, 0], ctx[:, :, 0])
    kept = out[:, 1, 1:, 0].mean().item()  # rows dropped with probability u * 0.6, u uniform: 0.3
    assert 0.66 < kept < 0.74
    assert ((out == 0) | (out == ctx)).all()


def test_thin_context_polyphonic_only_leaves_a_single_line_whole():
    from musicflow.data.windows import thin_context

    line = torch.zeros(500, 2, 6, 8)  # one voice stepping through rows 0..3, none held at the end
    for t in range(8):
        line[:, :, t // 2, t] = 1
    chords = line.clone()
    chords[:, :, 4:6, :6] = 1  # the same line under two sustained voices
    both = torch.cat([line, chords])
    out = thin_context(both, 1.0, torch.Generator().manual_seed(0), polyphonic_only=True)
    assert torch.equal(out[:500], line)  # a single line keeps every note
    assert out[500:, 1].sum() < 0.7 * chords[:, 1].sum()  # contexts of several voices are thinned
    # the same draws as without the option: where every context is polyphonic, the results agree
    dense = chords.clone()
    dense[:, :, 4:6, :] = 1  # two voices on every step, so clip(voices - 1, 0, 1) = 1
    dense[:, :, :, -1] = 0  # nothing held into the window
    assert torch.equal(thin_context(dense, 0.6, torch.Generator().manual_seed(1), polyphonic_only=True),
                       thin_context(dense, 0.6, torch.Generator().manual_seed(1)))


def test_nan_guard_keeps_the_last_good_checkpoint(tiny_data, tmp_path, monkeypatch):
    out = tmp_path / "m.pt"
    cfg = TrainConfig(steps=4, batch_size=8, valid_every=2, warmup=1, valid_windows=8)
    train("glow", tiny_data, out, cfg, TINY, quiet=True)
    before = out.read_bytes()
    from musicflow.flows.glow import Glow

    monkeypatch.setattr(Glow, "bits_per_dim", lambda self, x, c, generator=None: x.sum() * float("nan"))
    with pytest.raises(MusicflowError, match="not finite|loss is nan"):
        train("glow", tiny_data, tmp_path / "m.pt", cfg, TINY, quiet=True)
    assert out.read_bytes() == before


def test_corrupt_and_mismatched_checkpoints(tiny_data, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a zip")
    with pytest.raises(MusicflowError, match="not a readable checkpoint"):
        load_checkpoint(bad)
    out = tmp_path / "m.pt"
    train("glow", tiny_data, out, TrainConfig(steps=1, batch_size=4, valid_windows=4), TINY, quiet=True)
    payload = torch.load(out, weights_only=True)
    payload["config"]["hidden"] = 16
    torch.save(payload, tmp_path / "mismatch.pt")
    with pytest.raises(MusicflowError, match="do not match"):
        load_checkpoint(tmp_path / "mismatch.pt")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_ddp_on_cpu(tiny_data, tmp_path):
    out = tmp_path / "ddp.pt"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           f"--master_port={_free_port()}", "-m", "musicflow", "train", "--data", str(tiny_data),
           "--out", str(out), "--steps", "3", "--batch-size", "4", "--valid-every", "3",
           "--device", "cpu", "--quiet"] + [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stderr[-2000:]
    ck = load_checkpoint(out)
    assert ck.info["world_size"] == 2 and ck.info["step"] == 3 and ck.info["ddp_backend"] == "gloo"


@pytest.mark.parametrize("bad", [{"context_noise_scope": "polyphnic"}, {"context_noise": -0.1},
                                 {"start_share": 1.0}, {"steps": 0}, {"clip": 0.0}, {"minutes": -1.0},
                                 {"valid_every": 0}])
def test_train_config_rejects_bad_settings_from_the_python_api_too(bad):
    with pytest.raises(MusicflowError, match=next(iter(bad)).split("_")[0]):
        TrainConfig(**bad)
    TrainConfig(context_noise=0.5, context_noise_scope="polyphonic", start_share=0.2, minutes=0.0)


def test_cli_fine_tunes_with_context_noise(tiny_data, tmp_path):
    from click.testing import CliRunner

    from musicflow.cli import main

    base = tmp_path / "base.pt"
    train("glow", tiny_data, base, TrainConfig(steps=2, batch_size=4, valid_windows=4), TINY, quiet=True)
    out = tmp_path / "ft.pt"
    runner = CliRunner()
    args = ["train", "--data", str(tiny_data), "--out", str(out), "--steps", "2", "--batch-size", "4",
            "--valid-every", "2", "--quiet"]
    r = runner.invoke(main, [*args, "--init", str(base), "--context-noise", "0.4"])
    assert r.exit_code == 0, r.output
    info = load_checkpoint(out).info
    assert info["init"]["checkpoint"] == str(base) and info["train_config"]["context_noise"] == 0.4
    r = runner.invoke(main, [*args, "--context-noise", "2"])
    assert r.exit_code == 2 and "context_noise must be in [0, 1], got 2.0" in r.output
    r = runner.invoke(main, [*args, "--start-share", "0.3", "--out", str(tmp_path / "s.pt")])
    assert r.exit_code == 0, r.output
    assert load_checkpoint(tmp_path / "s.pt").info["train_config"]["start_share"] == 0.3
    r = runner.invoke(main, [*args, "--context-noise", "0.5", "--context-noise-scope", "polyphonic",
                             "--out", str(tmp_path / "p.pt")])
    assert r.exit_code == 0, r.output
    assert load_checkpoint(tmp_path / "p.pt").info["train_config"]["context_noise_scope"] == "polyphonic"
    r = runner.invoke(main, [*args, "--start-share", "1"])
    assert r.exit_code == 2 and "start_share must be in [0, 1), got 1.0" in r.output
    r = runner.invoke(main, [*args, "--init", str(tmp_path / "missing.pt")])
    assert r.exit_code == 2 and "no such checkpoint" in r.output and "Traceback" not in r.output
