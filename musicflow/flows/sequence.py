"""What the benchmark's sequence models share: rolls of binary frames over all 88 piano keys,
scored by the chain rule over time, and the musicflow window layout their Flow methods take."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from musicflow.errors import MusicflowError
from musicflow.flows.base import Condition, Flow

ALL_KEYS, LOWEST = 88, 21  # piano keys A0..C8


class SequenceFlow(Flow):
    """A flow over sequences of ``(B, T, 88)`` binary frames (column ``k`` is MIDI pitch
    ``21 + k``) whose :class:`~musicflow.flows.base.Flow` methods take windows in the musicflow
    layout ``(B, 1, 88, T)``; ``log_prob`` of a window is given the frames before it."""

    @property
    def keys(self) -> int:
        """Keys per frame."""
        return ALL_KEYS

    def modelled_keys(self) -> slice:
        """The columns of a frame the flow models; training notes outside them are an error."""
        return slice(0, ALL_KEYS)

    def prepare(self, frames: torch.Tensor, first_batch: Callable[[], tuple],
                generator: torch.Generator | None = None) -> None:
        """Fit what depends on the training data before the first step, given every training
        frame ``(N, 88)`` and a way to draw the first batch; nothing by default."""

    def bits_per_dim(self, x: torch.Tensor, cond: Condition, generator: torch.Generator | None = None):
        """``-log_prob / (cells ln 2)``: (an upper bound on) bits per binary cell of the window ``x``
        (``88 W`` for a benchmark window, ``2 keys W`` onset and sustain cells for a corpus's, as
        the window flows count them)."""
        return -self.log_prob(x, cond, generator) / (x[0].numel() * math.log(2))

    def _check_rolls(self, rolls: torch.Tensor) -> None:
        """Rolls must be ``(B, T, keys)``; anything else is a one-line error."""
        k = rolls.shape[-1]
        if k != self.keys:
            raise MusicflowError(f"rolls must have {self.keys} keys in the last axis, got {k}")

    @staticmethod
    def _per_frame(rolls: torch.Tensor, lengths: torch.Tensor | None,
                   score: Callable[[torch.Tensor | slice], torch.Tensor]) -> torch.Tensor:
        """``log p(x_t | x_<t)`` ``(B, T)`` for ``rolls`` ``(B, T, 88)``: ``score(keep)`` scores the
        flattened ``B*T`` frames that ``keep`` selects (a boolean mask, or every frame), and frames
        past each piece's length stay zero. Only real frames are scored: padding would cost as much
        compute as music."""
        b, t, _ = rolls.shape
        if lengths is None:
            return score(slice(None)).reshape(b, t)
        keep = (torch.arange(t, device=rolls.device)[None, :] < lengths.to(rolls.device)[:, None]).reshape(-1)
        lp = torch.zeros(b * t, dtype=rolls.dtype, device=rolls.device)
        return lp.masked_scatter(keep, score(keep)).reshape(b, t)

    @staticmethod
    def _frames(x: torch.Tensor, name: str) -> torch.Tensor:
        """A ``(B, 1, 88, T)`` window as ``(B, T, 88)`` frames; another shape is a one-line error."""
        if x.dim() != 4 or x.shape[1] != 1 or x.shape[2] != ALL_KEYS:
            raise MusicflowError(f"{name} must have shape (B, 1, {ALL_KEYS}, T), got {tuple(x.shape)}")
        return x[:, 0].transpose(1, 2)
