"""Training windows cut at load time: a target window and the context that precedes it."""

from __future__ import annotations

import numpy as np
import torch

from musicflow.data.dataset import Dataset
from musicflow.roll import window_starts


def transpose_rolls(x: torch.Tensor, shift: int) -> torch.Tensor:
    """Move rolls ``(..., P, T)`` by ``shift`` semitones along the pitch axis, filling with silence.

    >>> transpose_rolls(torch.eye(3).reshape(1, 3, 3), 1)[0].tolist()
    [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    """
    if shift == 0:
        return x
    out = torch.zeros_like(x)
    p = x.shape[-2]
    if shift > 0:
        out[..., shift:, :] = x[..., : p - shift, :]
    else:
        out[..., : p + shift, :] = x[..., -shift:, :]
    return out


def thin_context(ctx: torch.Tensor, rate: float, generator: torch.Generator | None = None,
                 polyphonic_only: bool = False) -> torch.Tensor:
    """Training noise against a free-running model's drift: silence pitch rows of contexts
    ``(B, 2, P, T)``, each row with probability ``u * rate`` (``u`` uniform per window, so windows
    range from clean to thinned). Rows still sounding at the context's last step are kept, since
    the target continues their notes. A model trained on it learns that voices enter after a
    thinner past than the real one, so pieces it grows from its own (thinner) output do not
    keep thinning.

    With ``polyphonic_only`` a window's rate is scaled by its context's voices beyond the first,
    ``clip(voices - 1, 0, 1)`` (``voices``: sounding rows per sounding step, the batched twin of
    ``musicflow.evaluate.metrics.polyphony``): a single line has no
    voice to bring back, and silencing its rows only hides the register and the scale it moves in,
    so that real continuations look like leaps and wrong notes to the model (in the corpus's folk
    genres, thinning at rate 0.5 raises the onsets of a pitch class absent from the context from
    7% to 22%).

    >>> ctx = torch.ones(500, 2, 3, 4); ctx[:, :, 1:, -1] = 0  # row 0 sounds at the last step
    >>> out = thin_context(ctx, 1.0, torch.Generator().manual_seed(0))
    >>> bool((out[:, :, 0] == 1).all()), 0.3 < float(out[:, 1, 1:].mean()) < 0.7
    (True, True)
    """
    if rate <= 0:
        return ctx
    b, _, p, _ = ctx.shape
    u = torch.rand(b, 1, generator=generator) * rate
    if polyphonic_only:
        sounding = ctx[:, 1] > 0
        voices = sounding.sum((1, 2)) / sounding.any(1).sum(-1).clamp(min=1)
        u = u * (voices - 1).clamp(0, 1)[:, None]
    drop = (torch.rand(b, p, generator=generator) < u) & (ctx[:, 1, :, -1] <= 0)
    return ctx * (~drop).to(ctx.dtype)[:, None, :, None]


OUTLINE_BARS = 8  # bars an outline summarises: a block of the piece, aligned to its bar lines


def outline(roll: np.ndarray, beat: int = 4) -> np.ndarray:
    """A passage's outline ``(4,)``: lowest and highest sounding pitch row, onsets per beat
    (``beat`` steps) and voices (sounding rows per sounding step), of a roll ``(2, P, T)``. A model
    conditioned on the outline of the block it is in (``GlowConfig.outline``) can be held to a
    register and a density drawn from real pieces: the whole piece's plan, which a model that
    sees only the last bars cannot keep. A silent roll has the middle row as both ends and 0 voices.

    >>> r = np.zeros((2, 8, 8), bool); r[:, 2, 0] = True; r[1, 2, 1:4] = True; r[:, 5, 4] = True
    >>> outline(r).tolist()
    [2.0, 5.0, 1.0, 1.0]
    """
    sounding = roll[1] > 0
    rows = np.flatnonzero(sounding.any(-1))
    steps = sounding.any(0).sum()
    if not len(rows):
        mid = float(roll.shape[1] // 2)
        return np.array([mid, mid, 0.0, 0.0], np.float32)
    dens = (roll[0] > 0).sum() * beat / max(roll.shape[-1], 1)
    return np.array([rows[0], rows[-1], dens, sounding.sum() / steps], np.float32)


def shift_outline(o: torch.Tensor, shift: int, pitches: int) -> torch.Tensor:
    """Outlines ``(B, 4)`` of rolls moved by :func:`transpose_rolls` by ``shift`` semitones.

    >>> shift_outline(torch.tensor([[2.0, 5.0, 1.0, 1.0]]), 3, 7).tolist()
    [[5.0, 6.0, 1.0, 1.0]]
    """
    if shift == 0:
        return o
    o = o.clone()
    o[:, :2] = (o[:, :2] + shift).clamp(0, pitches - 1)
    return o


class WindowSet:
    """All windows of one split: targets of ``window`` steps starting on bar lines, each with the
    ``context`` steps before it (silence before the piece starts). With ``grid``, windows start
    every ``grid`` steps in phase with the bar lines instead (beats, for models of one beat).

    Rolls are held once per piece as booleans; windows are index pairs into them. With
    ``outlines`` (for models conditioned on them) each window also knows the :func:`outline` of
    the block of :data:`OUTLINE_BARS` bars it starts in (:meth:`outlines`), and ``block_outline``,
    ``block_labels`` and ``block_steps`` hold those of the whole blocks and their lengths, the real
    plans a composer can draw from.
    With ``stretches`` a block is a stretch of ``OUTLINE_BARS`` bars of 4/4 (128 steps) from the
    first bar line, whatever the metre: the length composing writes under one plan. Eight bars of
    a 2/4 tune are half as long, and denser per quarter when written in eighths; eight of 4/2 twice
    as long, and wider.
    """

    def __init__(self, ds: Dataset, split: str | None, window: int = 16, context: int = 64,
                 hop: int | None = None, genres: list[str] | None = None, grid: int | None = None,
                 outlines: bool = False, stretches: bool = False):
        self.genres = genres or ds.genres
        self.window, self.context = window, context
        rolls, starts, piece_starts, labels, window_outline, blocks, block_labels = [], [], [], [], [], [], []
        block_steps = []
        beat, span = ds.spec.steps_per_quarter, OUTLINE_BARS * ds.spec.bar_steps()
        offset = context  # leading silence so every context slice is in bounds
        for i in ds.indices(split):
            genre = ds.pieces[i]["genre"]
            if genre not in self.genres:
                continue
            roll = ds.roll(i) > 0
            bars = ds.piece_bars(i)
            if outlines:  # blocks of OUTLINE_BARS bars; a pickup belongs to the first, the rest to the last
                cuts = (np.arange(bars[0] + span, roll.shape[-1], span) if stretches and len(bars)
                        else bars[OUTLINE_BARS::OUTLINE_BARS])
                edges = np.unique(np.clip(np.r_[0, cuts, roll.shape[-1]], 0, max(roll.shape[-1], 1)))
                block = np.stack([outline(roll[..., a:b], beat) for a, b in zip(edges[:-1], edges[1:])])
                blocks.append(block[:-1])  # whole blocks, bar line to bar line: the last may be short
                block_steps.append(np.diff(edges)[:-1])
                block_labels += [self.genres.index(genre)] * (len(block) - 1)
            if grid:  # windows shorter than a bar: every `grid` steps, in phase with the bar lines
                first = int(bars[0]) % grid if len(bars) else 0
                bars = np.arange(first, roll.shape[-1], grid)
            ws = window_starts(bars, roll.shape[-1], window, hop or window)
            if not ws:
                continue
            pad = context + window  # trailing silence for windows that run past the end
            rolls.append(np.concatenate([roll, np.zeros((*roll.shape[:2], pad), bool)], axis=-1))
            starts += [offset + s for s in ws]
            if outlines:
                at = np.minimum(np.searchsorted(edges, ws, "right") - 1, len(block) - 1)
                window_outline.append(block[at])
            piece_starts += [offset] * len(ws)
            labels += [self.genres.index(genre)] * len(ws)
            offset += rolls[-1].shape[-1]
        pitches = ds.spec.pitches
        lead = np.zeros((2, pitches, context), bool)
        self.rolls = torch.from_numpy(np.concatenate([lead, *rolls], axis=-1) if rolls else lead)
        self.starts = np.asarray(starts, dtype=np.int64)
        self.piece_starts = np.asarray(piece_starts, dtype=np.int64)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.window_outline = np.concatenate([np.zeros((0, 4), np.float32), *window_outline])
        self.block_outline = np.concatenate([np.zeros((0, 4), np.float32), *blocks])
        self.block_labels = np.asarray(block_labels, dtype=np.int64)
        self.block_steps = np.concatenate([np.zeros(0, np.int64), *block_steps]).astype(np.int64)

    def __len__(self) -> int:
        return len(self.starts)

    def counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=len(self.genres))

    def balanced_weights(self, start_share: float = 0.0) -> np.ndarray:
        """Per-window sampling weights that give every genre the same share. With
        ``start_share``, a genre's opening windows (those whose context reaches back before their
        piece's start) make up at least that share of its draws: long pieces have few of them
        (a string quartet's first four bars are 2% of its windows), and composing from nothing
        starts there.

        >>> class W(WindowSet):
        ...     def __init__(self): self.genres, self.context = ["a", "b"], 4
        >>> w = W(); w.labels = np.array([0, 0, 0, 0, 1, 1])
        >>> w.starts, w.piece_starts = np.array([0, 8, 12, 16, 0, 4]), np.zeros(6, np.int64)
        >>> (w.balanced_weights(0.5) / w.balanced_weights(0.5).sum()).round(3).tolist()
        [0.25, 0.083, 0.083, 0.083, 0.25, 0.25]
        """
        c = self.counts().astype(np.float64)
        w = 1.0 / c[self.labels]
        if start_share <= 0:
            return w
        opening = (self.starts - self.piece_starts) < self.context
        for g in range(len(self.genres)):
            mine = self.labels == g
            k, n = int((opening & mine).sum()), int(mine.sum())
            if 0 < k < n and k / n < start_share:
                share = np.where(opening[mine], start_share / k, (1 - start_share) / (n - k))
                w[mine] = share  # the genre's weights still sum to 1
        return w

    def outlines(self, idx: np.ndarray, shift: int = 0) -> torch.Tensor:
        """The :func:`outline` ``(B, 4)`` of each window's block, moved as :meth:`batch` moves its
        rolls by ``shift``; only for a set built with ``outlines``."""
        if len(self.window_outline) != len(self):
            raise ValueError("WindowSet.outlines: build the set with outlines=True")
        return shift_outline(torch.from_numpy(self.window_outline[idx]), shift, self.rolls.shape[1])

    def batch(self, idx: np.ndarray, shift: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Targets ``(B,2,P,window)``, contexts ``(B,2,P,context)`` and one-hot genres ``(B,G)``."""
        w, c = self.window, self.context
        x = torch.stack([self.rolls[..., s:s + w] for s in self.starts[idx]]).float()
        ctx = torch.stack([self.rolls[..., s - c:s] for s in self.starts[idx]]).float()
        # Steps before the piece's own start belong to the previous piece: silence them.
        before = self.piece_starts[idx] - (self.starts[idx] - c)
        for b, n in enumerate(before):
            if n > 0:
                ctx[b, ..., :n] = 0
        g = torch.nn.functional.one_hot(torch.from_numpy(self.labels[idx]), len(self.genres)).float()
        return transpose_rolls(x, shift), transpose_rolls(ctx, shift), g
