"""From a flow's continuous output to notes.

A flow samples the dequantized roll ``v`` in [0, 1]; a cell of value 1 dequantizes to ``v > 0.5``, so
thresholding a sample at 0.5 draws a roll from the model's own discrete distribution exactly: that is
the default (``Composer(decoding="exact")``). Measured on the shipped Glow (benchmarks/bench_glow.py,
``teacher_forced_loglik``), one-beat samples decoded at 0.5 are as likely under the model as real
beats, while lower thresholds turn near-boundary zero cells into notes the model finds very unlikely.

Calibration (``decoding="calibrated"``) is kept as an option: it picks, per genre, the threshold at
which freely generated pieces sound as many cells as real validation windows of the genre do, fitted
to one statistic of the validation split (sustain density), never to the test split, and stored in
the checkpoint.
"""

from __future__ import annotations

import numpy as np
import torch

from musicflow.flows.base import Condition
from musicflow.roll import PianoRollSpec, decode, encode_steps, note_steps


def clean(roll: np.ndarray, spec: PianoRollSpec) -> np.ndarray:
    """Re-encode through strict decoding, so generated context looks like the real rolls."""
    steps = note_steps(decode(roll, spec, strict=True), spec.steps_per_quarter)
    return encode_steps(steps, spec, length=roll.shape[-1])[0]


@torch.no_grad()
def generate(model, latents: torch.Tensor, genre: torch.Tensor, spec: PianoRollSpec,
             threshold: float = 0.5, prefix: np.ndarray | None = None,
             guidance: float | None = None) -> np.ndarray:
    """Free-running generation of ``B`` pieces window by window: ``latents`` ``(B, W, D)``, one per
    window; each window is decoded given the ``context_steps`` before it (the prefix, then what was
    generated), thresholded, and cleaned. ``genre`` is ``(1, G)`` or ``(B, G)``; ``guidance`` goes
    to the decoder of a model that takes it (the neural ODE). Returns rolls
    ``(B, 2, P, prefix + W * steps)``."""
    kw = {} if guidance is None else {"guidance": guidance}
    b, w, _ = latents.shape
    c = model.config.context_steps
    rolls = np.zeros((b, 2, spec.pitches, 0), np.float32) if prefix is None else prefix.copy()
    genre = genre.expand(b, -1)
    for k in range(w):
        ctx = np.zeros((b, 2, spec.pitches, c), np.float32)
        tail = rolls[..., -c:] if rolls.shape[-1] else rolls
        if tail.shape[-1]:
            ctx[..., -tail.shape[-1]:] = tail
        v = model.decode(latents[:, k], Condition(genre, torch.from_numpy(ctx)), **kw)
        held = rolls[:, 1, :, -1] > 0 if rolls.shape[-1] else None
        chunk = clean_continuation((v > threshold).numpy(), held)
        rolls = np.concatenate([rolls, chunk], axis=-1)
    return rolls


def clean_continuation(chunk: np.ndarray, held: np.ndarray | None) -> np.ndarray:
    """:func:`clean` for a new chunk ``(B, 2, P, T)`` that follows an already clean roll whose last
    step sounds ``held`` ``(B, P)``: a sustain cell survives only if an onset started its note, here
    or before; an onset only where it also sustains. Linear in the chunk, unlike re-cleaning the
    whole piece.

    >>> c = np.zeros((1, 2, 2, 3), bool); c[0, 1, :, :] = True; c[0, 0, 1, 1] = True
    >>> clean_continuation(c, np.array([[True, False]]))[0, 1].tolist()
    [[1.0, 1.0, 1.0], [0.0, 1.0, 1.0]]
    """
    on, sus = chunk[:, 0] & chunk[:, 1], chunk[:, 1]
    prev = np.zeros(sus.shape[:2], bool) if held is None else held
    keep = np.zeros_like(sus)
    for t in range(sus.shape[-1]):
        prev = sus[..., t] & (on[..., t] | prev)
        keep[..., t] = prev
    return np.stack([on & keep, keep], axis=1).astype(np.float32)


@torch.no_grad()
def calibrate_thresholds(model, windows, spec: PianoRollSpec, temperature: float = 1.0, pieces: int = 16,
                         bars: int = 4, seed: int = 0, iters: int = 7) -> dict[str, float]:
    """Per-genre threshold at which ``pieces`` freely generated ``bars``-bar pieces (seeds fixed)
    sound as many cells as the real validation ``windows`` of that genre do on average. Found by
    bisection in [0.05, 0.6]: a lower threshold sounds more cells."""
    gen = torch.Generator().manual_seed(seed)
    steps = bars * spec.bar_steps()
    n_win = -(-steps // model.config.steps)
    z = torch.randn(pieces, n_win, model.config.dim, generator=gen) * temperature
    model.eval()
    out = {}
    for gi, name in enumerate(windows.genres):
        idx = np.flatnonzero(windows.labels == gi)
        if not len(idx):
            continue
        target = float(np.mean([windows.batch(idx[s:s + 4096])[0][:, 1].mean().item()
                                for s in range(0, len(idx), 4096)]))
        g = torch.zeros(1, len(windows.genres))
        g[0, gi] = 1
        lo, hi = 0.05, 0.6
        for _ in range(iters):
            mid = (lo + hi) / 2
            dens = float(generate(model, z, g, spec, mid)[:, 1].mean())
            lo, hi = (lo, mid) if dens < target else (mid, hi)
        out[name] = round((lo + hi) / 2, 4)
    return out


def mixed_threshold(thresholds: dict[str, float] | None, weights: dict[str, float]) -> float:
    """The threshold for a genre mix: the weighted mean of the genres' thresholds (0.5 if the
    checkpoint has none).

    >>> mixed_threshold({"a": 0.3, "b": 0.5}, {"a": 0.5, "b": 0.5})
    0.4
    """
    if not thresholds:
        return 0.5
    return round(sum(w * thresholds.get(g, 0.5) for g, w in weights.items()), 6)
