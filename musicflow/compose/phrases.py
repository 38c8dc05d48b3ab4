"""Phrases that come back: the sequence flow restates bars in proportion to how often a genre's own
music does.

Folk tunes state a phrase and then restate it, often with a new ending; the polyphonic genres
rarely do (each genre's rate is in a checkpoint's ``info["phrases"]``, see
:mod:`musicflow.data.restatement`). A flow composing step by step has no reason to come back to
what it composed: left alone, its tunes wander over a wider range and more pitch classes than real
ones.

A flow offers a natural handle. A piece is a function of its latents, so a bar decoded from the
latents of an earlier bar makes the choices that bar made wherever the model's distributions agree,
and its own where the context differs: a restatement, or a variation of it. In every 8-bar period
of a piece, each of bars 5-8 takes the latents of the bar four before with probability ``share``,
drawn by the seed. The pieces are no longer draws from the model's own distribution: this is a
prior on form, in the latents, that the model fills in.

A genre's default share is :data:`SCALE` times how often its music restates a bar
(:func:`musicflow.data.restatement.restatements`, stored in a checkpoint's ``info["phrases"]`` at
training), at most 1.

>>> z = torch.arange(16.0)[:, None]                  # 8 bars of 2 steps, one key
>>> restate(z, 2, 1.0, seed=0)[8:, 0].tolist()        # bars 5-8 are bars 1-4 again
[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
>>> torch.equal(restate(z, 2, 0.0, seed=0), z)
True
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from musicflow.data.restatement import HALF, PERIOD
from musicflow.errors import MusicflowError

#: A genre's default share is this many times its music's rate of restated bars (chosen on the valid
#: split by the two-sample test and the metric overlap, see docs/experiments.md), at most 1.
SCALE = 6.0


def restate(z: torch.Tensor, bar_steps: int, share: float, seed: int) -> torch.Tensor:
    """Latents ``z`` ``(steps, keys)`` of a piece whose bars are ``bar_steps`` long from its first
    step, with bars 5-8 of every 8-bar period replaced, each with probability ``share``, by the
    latents of the bar four before; the draws come from ``seed``, one per bar, so a longer piece of
    the same seed starts with the same bars."""
    if not 0.0 <= share <= 1.0:
        raise MusicflowError(f"repeat must be a share in [0, 1], got {share!r}")
    if share == 0.0 or bar_steps < 1:
        return z
    bars = -(-z.shape[0] // bar_steps)
    draws = np.random.default_rng([int(seed), 3]).random(bars)
    out = z.clone()
    for b in range(bars):
        if b % PERIOD >= HALF and draws[b] < share:
            start = b * bar_steps
            end = min(start + bar_steps, z.shape[0])
            out[start:end] = out[start - HALF * bar_steps:end - HALF * bar_steps]
    return out


def default_share(rates: Mapping[str, float], weights: Mapping[str, float]) -> float:
    """The share of restated bars for a genre mix ``weights``: :data:`SCALE` times the mix's
    weighted rate, at most 1 (0 for genres without a rate).

    >>> round(default_share({"german-folk": 0.14, "chorale": 0.04}, {"german-folk": 1, "chorale": 1}), 2)
    0.54
    >>> default_share({"celtic": 0.3}, {"celtic": 1.0})
    1.0
    """
    total = sum(weights.values()) or 1.0
    rate = sum(w * float(rates.get(g, 0.0)) for g, w in weights.items()) / total
    return min(1.0, SCALE * rate)
