"""The simplest baseline: every cell of a window is an independent Bernoulli variable per genre.

Fitted by counting on the training windows (Laplace-style smoothing ``eps``), it ignores the context
and every dependence between cells, so it is what a model must beat to have learnt anything beyond
"where notes usually are". It keeps the parts of the :class:`~musicflow.flows.base.Flow` interface
that evaluation uses: ``log_prob`` (exact, in nats), ``bits_per_dim``, ``sample`` and
``decode(z, cond)``, which turns one standard normal per cell into a Bernoulli draw (a cell sounds
where ``Phi(z) < p``), so :func:`musicflow.sampling.generate` chains it beat by beat like a flow.
A genre mix uses the weighted mean of the genres' cell probabilities.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from musicflow.data.windows import WindowSet
from musicflow.flows.base import Condition, Flow


@dataclass(frozen=True)
class BernoulliConfig:
    """Shape of the baseline; ``dim`` is one latent per cell."""

    pitches: int = 48
    steps: int = 4
    n_genres: int = 8
    context_steps: int = 64  # the context it is given, and ignores
    eps: float = 0.5

    @property
    def dim(self) -> int:
        return 2 * self.pitches * self.steps

    def to_dict(self) -> dict:
        return asdict(self)


class Bernoulli(Flow):
    """Independent Bernoulli per cell and genre, from cell ``counts`` over ``n`` windows per genre.

    >>> m = Bernoulli.from_counts(np.ones((1, 2, 1, 1)), np.array([2]), eps=0.5)
    >>> m.probs.flatten().tolist()
    [0.5, 0.5]
    """

    def __init__(self, config: BernoulliConfig, probs: torch.Tensor):
        super().__init__()
        self.config = config
        self.register_buffer("probs", probs.float())  # (G, 2, P, T)

    @classmethod
    def from_counts(cls, counts: np.ndarray, n: np.ndarray, eps: float = 0.5,
                    context_steps: int = 64) -> Bernoulli:
        """``counts`` ``(G, 2, P, T)``: windows where each cell sounds; ``n`` ``(G,)`` windows."""
        counts, n = np.asarray(counts, np.float64), np.asarray(n, np.float64)
        probs = (counts + eps) / (n[:, None, None, None] + 2 * eps)
        g, _, p, t = counts.shape
        return cls(BernoulliConfig(p, t, g, context_steps, eps), torch.from_numpy(probs))

    @classmethod
    def fit(cls, windows: WindowSet, eps: float = 0.5) -> Bernoulli:
        """Count every window of a :class:`WindowSet` (vectorised: one gather per step)."""
        rolls = windows.rolls
        g_n = len(windows.genres)
        counts = np.zeros((g_n, 2, rolls.shape[1], windows.window))
        for gi in range(g_n):
            starts = torch.from_numpy(windows.starts[windows.labels == gi])
            for k in range(windows.window):
                counts[gi, ..., k] = rolls[:, :, starts + k].sum(-1).numpy()
        return cls.from_counts(counts, windows.counts(), eps, windows.context)

    def cell_probs(self, cond: Condition) -> torch.Tensor:
        """``(B, 2, P, T)``: the mix of the genres' cell probabilities."""
        return torch.einsum("bg,gcpt->bcpt", cond.genre.to(self.probs.dtype), self.probs)

    def log_prob(self, x: torch.Tensor, cond: Condition, generator: torch.Generator | None = None,
                 shared_noise: bool = False) -> torch.Tensor:
        """Exact ``log P(x)`` in nats, ``(B,)`` (no noise: ``generator`` and ``shared_noise`` are
        accepted for the common interface)."""
        p = self.cell_probs(cond)
        x = x.to(p.dtype)
        return (x * p.log() + (1 - x) * (-p).log1p()).flatten(1).sum(1)

    def bits_per_dim(self, x: torch.Tensor, cond: Condition,
                     generator: torch.Generator | None = None) -> torch.Tensor:
        """Exact bits per binary cell, ``(B,)``."""
        return -self.log_prob(x, cond) / (self.config.dim * math.log(2))

    def decode(self, z: torch.Tensor, cond: Condition) -> torch.Tensor:
        """One standard normal per cell ``(B, dim)`` -> a binary draw ``(B, 2, P, T)``."""
        p = self.cell_probs(cond)
        u = 0.5 * (1 + torch.erf(z.reshape(p.shape) / math.sqrt(2)))
        return (u < p).to(p.dtype)

    def sample(self, n: int, cond: Condition, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` binary windows (``temperature`` is ignored: every cell is drawn as fitted)."""
        z = torch.randn(n, self.config.dim, generator=generator)
        return self.decode(z, cond.expand(n))


def bernoulli_bpd(train: WindowSet, test: WindowSet, eps: float = 0.5) -> dict[str, float]:
    """Mean bits/dim of every test window under the Bernoulli baseline fitted on ``train``, per
    genre (genres without test windows are left out).

    Exact (no bound): ``-(x log2 p + (1 - x) log2 (1 - p))`` averaged over cells, then windows.
    """
    model = Bernoulli.fit(train, eps)
    out = {}
    for gi, g in enumerate(test.genres):
        starts = torch.from_numpy(test.starts[test.labels == gi])
        if not len(starts):
            continue
        lp, lq = model.probs[gi].log2(), (-model.probs[gi]).log1p() / math.log(2)
        total = 0.0
        for k in range(test.window):
            x = test.rolls[:, :, starts + k].float()  # (2, P, N)
            total += float((x * lp[..., k, None] + (1 - x) * lq[..., k, None]).sum())
        out[g] = -total / (len(starts) * model.config.dim)
    return out
