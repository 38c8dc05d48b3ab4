"""Infill: regenerate a span of bars given the music before *and after* it.

A sequence flow samples left to right, so the span is drawn from ``p(gap | before)``; what follows
is then weighed exactly: each of ``candidates`` drawn gaps is kept with probability proportional
to ``p(after | before, gap)``, the model's likelihood of the real bars after the span given the
gap. That resamples the candidates towards ``p(gap | before, after)`` (self-normalised importance
sampling with the model itself as the proposal), which only a model with an exact likelihood of
what comes next can do. Outside the span the piece's roll is kept as it is.
"""

from __future__ import annotations

import numpy as np
import torch

from musicflow.compose.latent import Result, new_seed
from musicflow.compose.options import Options
from musicflow.errors import MusicflowError
from musicflow.roll import key_states
from musicflow.sampling import strike_orphans


def parse_span(text: str) -> tuple[int, int]:
    """``"5-8"`` (or ``"5"``) as the first and last bar of a span, 1-based and inclusive.

    >>> parse_span("5-8"), parse_span("3")
    ((5, 8), (3, 3))
    """
    a, _, b = str(text).partition("-")
    try:
        first, last = int(a), int(b or a)
    except ValueError:
        raise MusicflowError(f"bars {text!r}: use FIRST-LAST, e.g. 5-8") from None
    return first, last


def span_steps(bar_lines: np.ndarray, length: int, bars: tuple[int, int]) -> tuple[int, int]:
    """The steps ``[start, end)`` of bars ``bars`` (1-based, inclusive) of a piece ``length`` steps
    long whose bars start at ``bar_lines``.

    >>> span_steps(np.array([0, 16, 32, 48]), 64, (2, 3))
    (16, 48)
    """
    first, last = bars
    starts = [int(b) for b in bar_lines if 0 <= b < length]
    if not 1 <= first <= last:
        raise MusicflowError(f"bars {first}-{last}: the first bar must be at least 1 and not after the last")
    if last > len(starts):
        raise MusicflowError(f"bars {first}-{last}: the piece has {len(starts)} bars")
    end = starts[last] if last < len(starts) else length
    return starts[first - 1], end


@torch.no_grad()
def infill(c, midi, bars: tuple[int, int], genre=None, seed: int | None = None, candidates: int = 16,
           options: Options | None = None, **settings) -> Result:
    """See :meth:`musicflow.compose.pieces.PieceComposer.infill`."""
    o = Options.of(options, settings, "infill", ("temperature", "program", "velocity", "mix", "parts"))
    if int(candidates) < 1:
        raise MusicflowError(f"candidates must be at least 1, got {candidates}")
    inp = c.read(midi)
    seed = new_seed(seed)
    w, vec = c.genre_weights(c.genre_of(inp, genre))
    grid = c.bar_lines(inp)
    length = inp.roll.shape[-1]
    start, end = span_steps(grid, length, bars)
    k = int(candidates)
    z = torch.randn(k, end - start, c.latent_dim, generator=torch.Generator().manual_seed(seed))
    gaps = c._grow_states(z, vec, inp.roll[..., :start], o.temperature, grid, mix=c.mixing(o.mix))
    after = inp.roll[..., end:]
    rolls = np.concatenate([gaps, np.broadcast_to(after, (k, *after.shape))], axis=-1)
    # The first step after the span: a note the original held over from the old span, which the
    # new span no longer sounds, is struck anew rather than left held from nothing.
    rolls[..., end:end + 1] = strike_orphans(rolls[..., end:end + 1] > 0, rolls[:, 1, :, end - 1] > 0)
    if k > 1 and end < length:
        score = _after_log_likelihood(c, rolls, w, grid, end)
        draw = torch.Generator().manual_seed(seed)
        pick = int(torch.multinomial(torch.softmax(score, 0), 1, generator=draw))
    else:
        pick = 0
    roll = np.ascontiguousarray(rolls[pick])
    sigs = inp.piece.time_signatures if inp.piece is not None else []
    sig = tuple(sigs[0][1:]) if sigs else (4, 4)
    return Result(c.to_midi(roll, o, -inp.shift, inp.tempo, time_signature=sig), roll, z[pick], seed, w,
                  None, f"{sig[0]}/{sig[1]}")


@torch.no_grad()
def _after_log_likelihood(c, rolls: np.ndarray, weights: dict[str, float], grid: np.ndarray,
                          end: int) -> torch.Tensor:
    """Each candidate's exact log-likelihood of the steps from ``end`` on, given all before them,
    under the genre mix (a weighted sum over the genres: the log of the product of experts)."""
    states = torch.from_numpy(np.stack([key_states(r) for r in rolls])).float()
    phase = c._phases(len(rolls), states.shape[1], grid)
    total = torch.zeros(len(rolls), dtype=torch.float64)
    for g, wg in weights.items():
        onehot = torch.zeros(len(rolls), len(c.genres))
        onehot[:, c.genres.index(g)] = 1
        lp = c.model.sequence_log_prob(states, genre=onehot, phase=phase)
        total += wg * lp[:, end:].sum(1).double()
    return total
