"""Training and sampling on a CUDA device (skipped where there is none: CI and the 2-core machine).

Run on a GPU machine with ``python -m pytest tests/test_cuda.py``; ``benchmarks/device_check.sh``
does that and also times the shipped Glow's training step there.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from conftest import make_midi

from musicflow.checkpoint import load_checkpoint
from musicflow.data.build import build_dataset
from musicflow.flows.base import Condition
from musicflow.training import TrainConfig, train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

TINY = {"levels": 1, "depth": 1, "hidden": 8, "context_channels": 4, "cond_dim": 8, "embed_dim": 4}


@pytest.fixture
def midi_data(tmp_path):
    """Two genres of MIDI files only (no score parsing), every piece in training but one."""
    root = tmp_path / "corpus"
    for genre, base in (("folk", 60), ("jazz", 64)):
        (root / genre).mkdir(parents=True)
        for i in range(3):
            make_midi(root / genre / f"{i}.mid", [(base + (b * (i + 1)) % 5, b, b + 1) for b in range(32)])
    ds, _ = build_dataset(str(root), cache_dir=None, quiet=True, pitches=8)
    for p in ds.pieces:
        p["split"] = "train"
    ds.pieces[0]["split"] = "valid"
    return ds.save(tmp_path / "tiny.npz")


@pytest.mark.parametrize("kind,overrides", [("glow", TINY), ("cnf", {"hidden": 8})])
def test_trains_and_resumes_on_cuda(kind, overrides, midi_data, tmp_path):
    out = tmp_path / f"{kind}.pt"
    cfg = TrainConfig(steps=4, batch_size=8, valid_every=2, warmup=1, valid_windows=8, minutes=0.0,
                      context_noise=0.3)
    record = train(kind, midi_data, out, cfg, overrides, device="cuda", quiet=True)
    assert record["step"] < 4 and (tmp_path / f"{kind}.pt.resume").exists()
    cfg = TrainConfig(steps=4, batch_size=8, valid_every=2, warmup=1, valid_windows=8, context_noise=0.3)
    record = train(kind, midi_data, out, cfg, device="cuda", resume=True, quiet=True)
    assert record["step"] == 4 and record["valid_bpd"] > 0
    ck = load_checkpoint(out)  # saved from the GPU, loaded on the CPU
    assert next(ck.model.parameters()).device.type == "cpu"


def test_a_seed_gives_the_same_sample_on_cpu_and_cuda(midi_data, tmp_path):
    out = tmp_path / "g.pt"
    train("glow", midi_data, out, TrainConfig(steps=2, batch_size=8, valid_windows=8), TINY, quiet=True)
    cpu, gpu = load_checkpoint(out).model, load_checkpoint(out, device="cuda").model
    cond = Condition(torch.tensor([[0.0, 1.0]]).expand(3, -1))
    a = cpu.sample(3, cond, generator=torch.Generator().manual_seed(7))
    b = gpu.sample(3, Condition(cond.genre.cuda()), generator=torch.Generator().manual_seed(7))
    assert b.device.type == "cuda"
    assert (a != b.cpu()).float().mean() < 0.01  # same noise; float rounding may flip a rare cell
    noise = {"generator": torch.Generator().manual_seed(1)}
    lp_cpu = cpu.log_prob(a, cond, **noise)
    noise = {"generator": torch.Generator().manual_seed(1)}
    lp_gpu = gpu.log_prob(a.cuda(), Condition(cond.genre.cuda()), **noise).cpu()
    assert torch.allclose(lp_cpu, lp_gpu, rtol=1e-3, atol=1e-2)


def test_torchrun_trains_with_nccl(midi_data, tmp_path):
    out = tmp_path / "ddp.pt"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=1", "-m", "musicflow",
           "train", "--data", str(midi_data), "--out", str(out), "--steps", "3", "--batch-size", "4",
           "--valid-every", "3", "--device", "cuda", "--quiet"]
    cmd += [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert p.returncode == 0, p.stderr[-2000:]
    info = load_checkpoint(out).info
    assert info["world_size"] == 1 and info["ddp_backend"] == "nccl"
