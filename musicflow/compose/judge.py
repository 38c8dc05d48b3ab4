"""Judging a user's piece by likelihood: bits/dim under each genre, and the genre by Bayes' rule."""

from __future__ import annotations

import math

import numpy as np
import torch

from musicflow.compose.reading import Input, MidiInput


class JudgeOps:
    """``log_likelihoods``, ``score`` and ``classify`` of a window model (mixed into ``Composer``;
    the sequence flow's ``PieceComposer`` scores whole pieces its own way)."""

    @torch.no_grad()
    def log_likelihoods(self, midi: MidiInput | Input) -> tuple[dict[str, np.ndarray], Input]:
        """Per-window log-likelihood (nats, dequantization bound, fixed noise) under each genre."""
        inp = self.read(midi)
        xs, ctx = self.windows(inp.roll)
        n = len(xs)
        out = {}
        for gi, g in enumerate(self.genres):
            vec = torch.zeros(n, len(self.genres))
            vec[:, gi] = 1
            gen = torch.Generator().manual_seed(0)
            cond = self.condition(vec, ctx)
            out[g] = self.model.log_prob(xs.to(cond.genre.device), cond, generator=gen).cpu().numpy()
        return out, inp

    def score(self, midi: MidiInput | Input) -> dict:
        """Bits/dim under each genre, per window and for the whole piece (upper bounds)."""
        ll, inp = self.log_likelihoods(midi)
        d = 2 * self.spec.pitches * self.window * math.log(2)  # binary cells, not latent size
        return {"report": inp.report,
                "per_window": {g: (-v / d).tolist() for g, v in ll.items()},
                "whole": {g: float(-v.sum() / (d * len(v))) for g, v in ll.items()}}

    def classify(self, midi: MidiInput | Input) -> dict[str, float]:
        """Genre probabilities by Bayes' rule from the likelihoods, with a uniform prior."""
        ll, _ = self.log_likelihoods(midi)
        total = torch.tensor([float(v.sum()) for v in ll.values()])
        return dict(zip(ll, total.softmax(0).tolist()))
