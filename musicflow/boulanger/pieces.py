"""The benchmark's pieces as tensors, and the flow's likelihood of whole pieces.

What both the benchmark's training and its report need: the pieces of a split, a padded batch of
them, a file's short hash (a checkpoint records the data it was trained on) and
:func:`flow_nll`, the flow's NLL in nats per time step (defined in
:mod:`musicflow.boulanger.benchmark`).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import torch

from musicflow.errors import MusicflowError
from musicflow.io.boulanger import KEYS, frames, read_boulanger


def load_split(path: str | Path, split: str) -> list[np.ndarray]:
    """The pieces of one split as boolean ``(T, 88)`` arrays; a missing split is a one-line error."""
    data = read_boulanger(path)
    if split not in data:
        hint = (" (the files in shared/data hold train and valid only; the complete original file "
                "has the test split)") if split == "test" else ""
        raise MusicflowError(f"{path}: no '{split}' split (has {', '.join(data)}){hint}")
    return [frames(p) for p in data[split]]


def pad(pieces: list[np.ndarray], shift: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Pieces as a zero-padded ``(B, T_max, 88)`` float tensor and their lengths ``(B,)``;
    ``shift`` transposes by semitones (keys moved past the ends are dropped).

    >>> rolls, lengths = pad([np.ones((2, 88), bool), np.ones((3, 88), bool)], shift=1)
    >>> rolls.shape, lengths.tolist(), rolls[0, 0, :2].tolist()
    (torch.Size([2, 3, 88]), [2, 3], [0.0, 1.0])
    """
    lengths = torch.tensor([len(p) for p in pieces])
    out = torch.zeros(len(pieces), int(lengths.max()), KEYS)
    for i, p in enumerate(pieces):
        t = torch.from_numpy(p).float()
        if shift > 0:
            t = torch.cat([t.new_zeros(len(p), shift), t[:, :-shift]], dim=1)
        elif shift < 0:
            t = torch.cat([t[:, -shift:], t.new_zeros(len(p), -shift)], dim=1)
        out[i, : len(p)] = t
    return out, lengths


@torch.no_grad()
def flow_nll(model, pieces: list[np.ndarray], samples: int = 4, seed: int = 0,
             batch_size: int = 32) -> dict:
    """Upper bounds on the model's NLL in nats per step (see the module docstring).

    Returns ``nats_per_step`` (mean over ``samples`` dequantization draws), ``stderr``,
    ``per_sample``, ``iw_nats_per_step``, ``bits_per_dim`` (per key and step), ``frames``,
    ``pieces`` and ``tight``. A model whose bound is tight (``tight_dequantization``: its density is
    constant on every dequantization cell) gives the same figure for every draw, its discrete NLL,
    so one evaluation stands for all ``samples`` draws and ``stderr`` is 0.
    """
    if samples < 1:
        raise MusicflowError(f"samples must be at least 1, got {samples}")
    tight = bool(getattr(model, "tight_dequantization", False))
    draws = 1 if tight else samples
    was = model.training
    model.eval()
    per_piece = np.zeros((draws, len(pieces)))
    # Noise-free scoring batches pieces of similar lengths (less padding); with noise, the draws
    # follow the pieces' order, so that a seed keeps naming the same figure.
    order = np.argsort([len(p) for p in pieces], kind="stable") if tight else np.arange(len(pieces))
    for s in range(draws):
        gen = torch.Generator().manual_seed(seed + s)
        for b in range(0, len(pieces), batch_size):
            idx = order[b:b + batch_size]
            rolls, lengths = pad([pieces[i] for i in idx])
            lp = model.sequence_log_prob(rolls, lengths, gen)
            per_piece[s, idx] = lp.sum(1).double().numpy()
    model.train(was)
    if tight:
        per_piece = np.repeat(per_piece, samples, axis=0)
    n_frames = int(sum(len(p) for p in pieces))
    nll = -per_piece.sum(1) / n_frames
    iw = per_piece.max(0) + np.log(np.exp(per_piece - per_piece.max(0)).mean(0))
    return {"nats_per_step": float(nll.mean()),
            "stderr": float(nll.std(ddof=1) / math.sqrt(samples)) if samples > 1 else None,
            "per_sample": [round(float(v), 4) for v in nll],
            "iw_nats_per_step": float(-iw.sum() / n_frames),
            "bits_per_dim": float(nll.mean() / (KEYS * math.log(2))),
            "frames": n_frames, "pieces": len(pieces), "samples": samples, "seed": seed, "tight": tight}


def file_sha1(path: str | Path) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()[:16]
