"""Conditioning features and the small conv nets that flow layers use inside.

None of these modules is invertible; they compute the shifts, scales and prior statistics of the
invertible layers in :mod:`musicflow.flows.layers` and summarise the musical condition.

* :class:`CondFeatures` is the ``h`` that a flow threads through its layers: a global vector for
  FiLM and a per-pitch feature map from the previous bars.
* :class:`CondNet` is the conv net inside couplings and priors: dilated along time so that one
  net sees the whole window, FiLM-modulated by the condition in every block.
* :class:`ContextEncoder` turns the previous ``T_ctx`` steps into such features, with a learned
  "no context" value for the start of a piece.

References: Perez et al., "FiLM: Visual Reasoning with a General Conditioning Layer" (2018).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class CondFeatures:
    """The conditioning every layer of a flow receives.

    ``vec`` ``(B, H)`` drives FiLM in every hidden block; ``pitch_map`` ``(B, C, P)`` is aligned
    with the pitch axis and is concatenated to a net's input at each scale. Either may be ``None``.

    >>> h = CondFeatures(torch.zeros(2, 4), torch.ones(2, 3, 8))
    >>> h.pitch_features(4, 5).shape
    torch.Size([2, 3, 4, 5])
    """

    vec: torch.Tensor | None = None
    pitch_map: torch.Tensor | None = None

    def pitch_map_at(self, pitches: int) -> torch.Tensor | None:
        """The pitch map resized to ``pitches`` rows, ``(B, C, pitches)``."""
        if self.pitch_map is None or self.pitch_map.shape[-1] == pitches:
            return self.pitch_map
        # After k squeezes a row stands for 2**k neighbouring pitches: average them.
        return F.adaptive_avg_pool1d(self.pitch_map, pitches)

    def pitch_features(self, pitches: int, steps: int) -> torch.Tensor | None:
        """The pitch map resized to ``pitches`` rows and broadcast over ``steps`` columns."""
        m = self.pitch_map_at(pitches)
        return None if m is None else m.unsqueeze(-1).expand(-1, -1, -1, steps)


def soft_clamp(x: torch.Tensor, bound: float) -> torch.Tensor:
    """Squash ``x`` smoothly into ``(-bound, bound)``; the identity near zero.

    Log-scales pass through it so that no coupling or prior can blow up or collapse a dimension.

    >>> float(soft_clamp(torch.tensor(0.0), 2.0))
    0.0
    """
    return bound * torch.tanh(x / bound)


class CondNet(nn.Module):
    """A conditioned conv net over ``(C, P, T)`` maps, used inside couplings and priors.

    ``3x3`` convolutions; hidden block ``i`` is dilated ``2**(i+1)`` along time, so the receptive
    field spans 9 steps with one block and 17 with two: a whole window at the first scale, where
    the line of a melody is decided, at the cost of one hidden layer. Every block is modulated by
    FiLM from ``h.vec``. ``h``'s pitch map, resized to this scale, joins the input of the first
    layer as if concatenated and broadcast along time; being constant along time, its share of
    that convolution is computed once per pitch row (a width-3 conv over pitch) instead of once
    per cell, which is the same map away from the window's first and last step. The output layer
    is zero-initialised so that the layer owning the net starts as the identity (or a standard
    prior).

    >>> net = CondNet(2, 4, hidden=8, cond_dim=3, pitch_channels=5)
    >>> h = CondFeatures(torch.randn(1, 3), torch.randn(1, 5, 6))
    >>> net(torch.randn(1, 2, 6, 4), h).abs().max().item()
    0.0
    """

    def __init__(self, in_channels: int, out_channels: int, hidden: int = 32, *, cond_dim: int = 0,
                 pitch_channels: int = 0, blocks: int = 2, zero_init: bool = True) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, hidden, 3, padding=1)
        self.pitch_in = (
            nn.Conv1d(pitch_channels, hidden, 3, padding=1, bias=False) if pitch_channels else None
        )
        self.blocks = nn.ModuleList(
            nn.Conv2d(hidden, hidden, 3, padding=(1, 2 ** (i + 1)), dilation=(1, 2 ** (i + 1)))
            for i in range(blocks)
        )
        self.film = nn.Linear(cond_dim, 2 * hidden * (blocks + 1)) if cond_dim else None
        self.conv_out = nn.Conv2d(hidden, out_channels, 3, padding=1)
        if zero_init:
            nn.init.zeros_(self.conv_out.weight)
            nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: torch.Tensor, h: CondFeatures | None = None) -> torch.Tensor:
        a = self.conv_in(x)
        pitch = pitch_term(self.pitch_in, h, x.shape[2])
        if pitch is not None:
            a = a + pitch.unsqueeze(-1)
        film = film_terms(self.film, h, len(self.blocks), dims=2)
        a = modulate(a, film, 0)
        for i, conv in enumerate(self.blocks):
            a = a + modulate(conv(a), film, i + 1)
        return self.conv_out(a)


def pitch_term(layer: nn.Module | None, h: CondFeatures | None, pitches: int) -> torch.Tensor | None:
    """``layer`` over ``h``'s pitch map at ``pitches`` rows, ``(B, H, pitches)``: what a net adds
    to its first layer; ``None`` where the net takes no pitch map or ``h`` has none."""
    if layer is None or h is None or h.pitch_map is None:
        return None
    return layer(h.pitch_map_at(pitches))


def film_terms(layer: nn.Module | None, h: CondFeatures | None, blocks: int, dims: int
               ) -> tuple[torch.Tensor, ...] | None:
    """FiLM's scale and shift for the first layer and each of ``blocks`` blocks of a net, from
    ``layer(h.vec)``: ``2 * (blocks + 1)`` tensors ``(B, H)`` followed by ``dims`` axes of size 1
    (the net's spatial axes); ``None`` where the net has no FiLM or ``h`` no vector.

    >>> film = film_terms(nn.Linear(3, 2 * 4 * 2), CondFeatures(torch.zeros(5, 3)), blocks=1, dims=2)
    >>> len(film), film[0].shape
    (4, torch.Size([5, 4, 1, 1]))
    """
    if layer is None or h is None or h.vec is None:
        return None
    out = layer(h.vec)
    return out[(slice(None), slice(None)) + (None,) * dims].chunk(2 * (blocks + 1), dim=1)


def modulate(a: torch.Tensor, film: tuple[torch.Tensor, ...] | None, i: int) -> torch.Tensor:
    """``relu(a * (1 + scale_i) + shift_i)`` with layer ``i``'s terms of :func:`film_terms`
    (``relu(a)`` without FiLM)."""
    if film is not None:
        a = torch.addcmul(film[2 * i + 1], a, 1 + film[2 * i])
    return F.relu(a)


def chroma_profile(context: torch.Tensor) -> torch.Tensor:
    """Pitch-class profile of a context ``(B, 2, P, T)``: ``(B, 4, 12)``, the share of each pitch
    class (pitch row modulo 12) among the sounding cells of the whole context and of its last beat
    (4 steps), for onsets and for sustain. Which scale and which chord: octave-related rows are
    far apart on the pitch axis, where convolutions see only neighbours.

    >>> ctx = torch.zeros(1, 2, 24, 8)
    >>> ctx[0, 1, 0, :] = 1; ctx[0, 1, 12, 4:] = 1; ctx[0, 1, 7, :4] = 1  # rows 0 and 12: class 0
    >>> chroma_profile(ctx)[0, 1, [0, 7]].tolist(), chroma_profile(ctx)[0, 3, [0, 7]].tolist()
    ([0.75, 0.25], [1.0, 0.0])
    """
    b, c, p, t = context.shape
    folded = F.pad(context, (0, 0, 0, (-p) % 12)).reshape(b, c, -1, 12, t).sum(dim=2)
    parts = [folded.sum(-1), folded[..., -4:].sum(-1)]
    out = torch.cat([x / x.sum(dim=-1, keepdim=True).clamp_min(1.0) for x in parts], dim=1)
    return out  # (B, 4, 12): whole onsets, whole sustain, last-beat onsets, last-beat sustain


class PitchReach(nn.Module):
    """A residual block along pitch over a map ``(B, C, P)``: a dilated width-3 convolution, ReLU
    and a 1x1 convolution whose weights start at zero (so the block starts as the identity).

    >>> block = PitchReach(4, dilation=8)
    >>> m = torch.randn(2, 4, 48)
    >>> torch.equal(block(m), m)
    True
    """

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.out = nn.Conv1d(channels, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, m: torch.Tensor) -> torch.Tensor:
        return m + self.out(F.relu(self.conv(m)))


ECHO_BEATS = (2, 3, 4, 6, 8, 12, 16)  # beats back from the one that follows the context


def _beat_back(context: torch.Tensor, lag: int) -> torch.Tensor:
    """The raw beat (4 steps) that starts ``lag`` beats before the end of ``context`` ``(B, 2, P, T)``
    (``T`` a multiple of 4), as ``(B, 8, P)``: onset and sustain of each step; silence where the
    context does not reach that far.

    >>> ctx = torch.zeros(1, 2, 3, 8); ctx[0, 0, 1, 0] = 1  # an onset at the first step of 2 beats
    >>> _beat_back(ctx, 2)[0, :, 1].tolist(), float(_beat_back(ctx, 1).sum()), float(_beat_back(ctx, 3).sum())
    ([1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], 0.0, 0.0)
    """
    b, _, p, t = context.shape
    if 4 * lag > t:
        return context.new_zeros(b, 8, p)
    beat = context[..., t - 4 * lag:t - 4 * lag + 4]
    return beat.permute(0, 1, 3, 2).reshape(b, 8, p)


class ContextEncoder(nn.Module):
    """Summarise the previous bars ``(B, 2, P, T_ctx)`` as a vector and a per-pitch map.

    Time is strided down by 8 (beats, then pairs of beats) and then pooled two ways: by mean (what
    the passage is about) and by its last column (where the line is right now, which a
    continuation must pick up). A learned
    "no context" vector and map stand in for missing context: when ``context`` is ``None`` and for
    the batch rows where ``drop`` is true (context dropout during training, so that one model can
    both start and continue a piece). Any ``T_ctx >= 1`` works. With ``chroma``, the context's
    :func:`chroma_profile` also joins the vector and, per pitch class, the map. With ``reach``,
    residual convolutions along pitch, dilated 1 to 16, let every row of the map see the whole
    context's pitch range (the convolutions over the roll see 3 rows either side): where the line
    is, above or below a row, and so which register a continuation belongs in. Their output layers
    start at zero, so the encoder starts as it would be without them. With ``echo``, the raw beats
    :data:`ECHO_BEATS` beats before the one that follows the context (the same place in the bar one,
    two and four bars back, in 3/4, 4/4 and 6/8 alike) join the map beside the last beat: the
    pooled summaries above cannot say what sounded where, so without them a model cannot repeat a
    bar or a phrase.

    >>> enc = ContextEncoder(pitches=8, channels=4, out_dim=6)
    >>> vec, pmap = enc(torch.zeros(3, 2, 8, 16), batch_size=3)
    >>> vec.shape, pmap.shape
    (torch.Size([3, 6]), torch.Size([3, 4, 8]))
    """

    def __init__(self, pitches: int, channels: int, out_dim: int, chroma: bool = False,
                 reach: bool = False, echo: bool = False) -> None:
        super().__init__()
        c = channels
        self.convs = nn.Sequential(
            # Each output column summarises one beat (4 steps) over 3 pitches.
            nn.Conv2d(2, c, (3, 4), stride=(1, 4), padding=(1, 0)),
            nn.ReLU(),
            nn.Conv2d(c, c, 3, stride=(1, 2), padding=1),
            nn.ReLU(),
            nn.Conv2d(c, c, 3, padding=(1, 2), dilation=(1, 2)),
            nn.ReLU(),
        )
        # The raw last beat (2 channels x 4 steps) joins the map: which notes sound at the very
        # end of the context decides what a continuation must hold or release.
        self.echo = ECHO_BEATS if echo else ()
        self.to_map = nn.Conv1d(2 * c + 8 * (1 + len(self.echo)), c, 1)
        self.to_vec = nn.Sequential(nn.Linear(2 * c, out_dim), nn.ReLU(), nn.Linear(out_dim, out_dim))
        # Small random rather than zero so the empty context still tells pitches apart.
        self.null_map = nn.Parameter(0.1 * torch.randn(c, pitches))
        self.null_vec = nn.Parameter(torch.zeros(out_dim))
        self.chroma = chroma
        if chroma:
            self.chroma_map = nn.Conv1d(4, c, 1)
            self.chroma_vec = nn.Linear(48, out_dim)
            self.register_buffer("pitch_class", torch.arange(pitches) % 12, persistent=False)
        self.reach = nn.ModuleList(PitchReach(c, d) for d in (1, 2, 4, 8, 16)) if reach else None

    def forward(
        self,
        context: torch.Tensor | None,
        batch_size: int,
        drop: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(vec (B, out_dim), pitch_map (B, C, P))``; ``drop`` is a ``(B,)`` bool mask."""
        null_vec = self.null_vec.expand(batch_size, -1)
        null_map = self.null_map.expand(batch_size, -1, -1)
        if context is None:
            return null_vec, null_map
        context = context.to(self.null_map.dtype)
        # Pad at the start, never the end: the last beat must have a column of its own.
        context = F.pad(context, ((-context.shape[-1]) % 4, 0))
        a = self.convs(context)
        beats = [_beat_back(context, lag) for lag in (1, *self.echo)]
        pmap = self.to_map(torch.cat([a.mean(dim=-1), a[..., -1], *beats], dim=1))
        if self.chroma:
            prof = chroma_profile(context)
            pmap = pmap + self.chroma_map(prof)[..., self.pitch_class]
        for block in self.reach or ():
            pmap = block(pmap)
        vec = self.to_vec(torch.cat([pmap.mean(dim=-1), pmap.amax(dim=-1)], dim=1))
        if self.chroma:
            vec = vec + self.chroma_vec(prof.flatten(1))
        if drop is not None:
            vec = torch.where(drop[:, None], null_vec, vec)
            pmap = torch.where(drop[:, None, None], null_map, pmap)
        return vec, pmap


def encode_with_dropout(encoder: nn.Module, value: torch.Tensor | None, batch: int, rate: float,
                        device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``encoder(value, batch, drop)`` of a :class:`ContextEncoder` or :class:`OutlineEncoder`,
    each batch row dropped (given the encoder's learned "none" value) with probability ``rate``:
    the dropout training applies, so that one model also works without the context or outline.
    Nothing is drawn when ``value`` is ``None`` or ``rate`` is 0 (evaluation).

    >>> enc = ContextEncoder(pitches=8, channels=4, out_dim=6)
    >>> vec, pmap = encode_with_dropout(enc, torch.ones(3, 2, 8, 16), 3, 0.999, torch.device("cpu"))
    >>> torch.equal(vec, enc(None, 3)[0])  # (almost) every row dropped
    True
    """
    drop = None
    if value is not None and rate > 0:
        drop = torch.rand(batch, device=device) < rate
    return encoder(value, batch, drop)


def encode_context_and_outline(context_encoder: nn.Module, outline_encoder: nn.Module | None, cond,
                               batch: int, context_rate: float, outline_rate: float
                               ) -> tuple[torch.Tensor, torch.Tensor]:
    """The summed ``(vec, pitch_map)`` of a window flow's context and (when it takes one) outline,
    each with its dropout rate (:func:`encode_with_dropout`; the context's draw comes first)."""
    dev = cond.genre.device
    vec, pmap = encode_with_dropout(context_encoder, cond.context, batch, context_rate, dev)
    if outline_encoder is not None:
        plan_vec, plan_map = encode_with_dropout(outline_encoder, cond.outline, batch, outline_rate, dev)
        vec, pmap = vec + plan_vec, pmap + plan_map
    return vec, pmap


class OutlineEncoder(nn.Module):
    """The outline of the passage a window belongs to (:func:`musicflow.data.windows.outline`:
    lowest and highest pitch row, onsets per beat, voices; ``(B, 4)``) as a vector and a per-pitch
    map. The map marks, per pitch row, whether it lies inside the outline's range and how far
    below or above it, so every net can keep notes in the register at its own pitch resolution.
    A learned "no outline" vector (and an empty map) stands in where there is none: when
    ``outline`` is ``None`` and for the rows where ``drop`` is true (outline dropout in training,
    so the model also scores and samples without one).

    >>> enc = OutlineEncoder(pitches=8, channels=4, out_dim=6)
    >>> vec, pmap = enc(torch.tensor([[2.0, 5.0, 1.0, 1.0]]), batch_size=1)
    >>> vec.shape, pmap.shape, enc(None, batch_size=3)[1].abs().sum().item()
    (torch.Size([1, 6]), torch.Size([1, 4, 8]), 0.0)
    """

    def __init__(self, pitches: int, channels: int, out_dim: int) -> None:
        super().__init__()
        self.pitches, self.channels = pitches, channels
        self.to_vec = nn.Sequential(nn.Linear(4, out_dim), nn.ReLU(), nn.Linear(out_dim, out_dim))
        self.to_map = nn.Conv1d(3, channels, 1)
        self.null_vec = nn.Parameter(torch.zeros(out_dim))
        self.register_buffer("rows", torch.arange(pitches, dtype=torch.float32), persistent=False)

    def forward(self, outline: torch.Tensor | None, batch_size: int,
                drop: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(vec (B, out_dim), pitch_map (B, C, P))``; ``drop`` is a ``(B,)`` bool mask."""
        null_vec = self.null_vec.expand(batch_size, -1)
        if outline is None:
            return null_vec, null_vec.new_zeros(batch_size, self.channels, self.pitches)
        o = outline.to(self.null_vec.dtype)
        lo, hi, dens, voices = o.unbind(1)
        feats = torch.stack([lo / self.pitches, hi / self.pitches, torch.log1p(dens), voices / 4], dim=1)
        vec = self.to_vec(feats)
        rows = self.rows[None]
        below, above = (lo[:, None] - rows).clamp(min=0), (rows - hi[:, None]).clamp(min=0)
        inside = ((below == 0) & (above == 0)).to(o.dtype)
        pmap = self.to_map(torch.stack([inside, below / 12, above / 12], dim=1))
        if drop is not None:
            vec = torch.where(drop[:, None], null_vec, vec)
            pmap = pmap * (~drop).to(pmap.dtype)[:, None, None]
        return vec, pmap
