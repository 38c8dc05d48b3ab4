"""Conditional Glow over piano-roll windows.

The model: a binary roll ``x`` ``(B, 2, P, T)`` is dequantized to ``v in [0, 1)`` and mapped to
logit space ``w`` (:mod:`musicflow.flows.dequantize`); ``w`` goes through ``levels`` scales of
``squeeze -> depth x (ActNorm, 1x1 conv, affine coupling) -> split``, each split factoring half
the channels out under a conditional prior (:mod:`musicflow.flows.layers`). With
``autoregressive`` a :class:`~musicflow.flows.autoregressive.PitchAutoregressive` spline layer
comes first, between the logit and the first squeeze: each cell given every cell below it in
pitch, so that a beat's notes are chosen knowing one another. All latents are
standardised by their priors, so the whole flattened ``z`` ``(B, 2*P*T)`` is ``N(0, I)`` under
the model: temperature and interpolation act on every scale alike.

The condition (genre weights, optional previous bars, optional outline of the passage) becomes a
:class:`~musicflow.flows.nets.CondFeatures`: a global vector (genre mix through an embedding table,
plus the context summary) that FiLM-modulates every coupling and prior net, and a per-pitch map
from the context that every net sees at its own pitch resolution.

References: Kingma & Dhariwal, "Glow" (2018); Ho et al., "Flow++" (2019).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from musicflow.errors import MusicflowError
from musicflow.flows.autoregressive import PitchAutoregressive
from musicflow.flows.base import Condition, ConfigDict, Flow, Transform
from musicflow.flows.checks import flags, logit_alpha, needs, positive_ints, probabilities
from musicflow.flows.coupling import Coupling
from musicflow.flows.dequantize import Logit, UniformDequantizer, VariationalDequantizer, centre, quantize
from musicflow.flows.layers import ActNorm, AffineCoupling, ConditionalPrior, InvConv1x1, Split, Squeeze
from musicflow.flows.nets import CondFeatures, ContextEncoder, OutlineEncoder, encode_context_and_outline
from musicflow.flows.splines import SplineCoupling
from musicflow.flows.styles import StyleColumns, embed_genre, genre_width

DEQUANTIZERS = ("uniform", "variational")


@dataclass(frozen=True)
class GlowConfig(ConfigDict):
    """Everything needed to rebuild a :class:`Glow`; stored in checkpoints via :meth:`to_dict`.

    ``pitches`` and ``steps`` must be multiples of ``2**levels``. Defaults fit a 2-core CPU: one
    bar of 16ths over 48 pitches, four bars of context.

    >>> cfg = GlowConfig(pitches=8, steps=8)
    >>> GlowConfig.from_dict(cfg.to_dict()) == cfg
    True
    """

    pitches: int = 48
    steps: int = 16
    n_genres: int = 8
    styles: int = 0  # genres learned after training (flows/styles.py), after the n_genres
    levels: int = 2
    depth: int = 4  # flow steps (ActNorm, 1x1 conv, coupling) per level
    hidden: int = 32  # channels of the coupling and prior nets
    net_blocks: int = 1  # hidden blocks per coupling net, time dilation 2, 4, ...
    context_steps: int = 64  # context the data pipeline supplies; the encoder takes any length
    context_channels: int = 16
    chroma: bool = False  # the context's pitch-class profile joins the condition (flows/nets.py)
    reach: bool = False  # the context's pitch map sees the whole pitch range (flows/nets.py)
    echo: bool = False  # the context's beats 2 to 16 beats back join the pitch map (flows/nets.py)
    embed_dim: int = 16  # genre embedding size
    cond_dim: int = 64  # size of the global conditioning vector
    dequantization: str = "uniform"
    dequant_hidden: int = 16
    dequant_steps: int = 2
    alpha: float = 0.05
    context_dropout: float = 0.1
    coupling: str = "affine"  # or "spline": rational-quadratic splines (flows/splines.py)
    bins: int = 8  # spline bins
    # A pitch-autoregressive spline layer in front of the couplings (flows/autoregressive.py):
    # each cell given every cell below it, NADE-style.
    autoregressive: bool = False
    ar_hidden: int = 64
    ar_blocks: int = 5
    # The outline of the 8-bar block a window is in (register, density, voices; flows/nets.py:
    # OutlineEncoder) joins the condition, dropped with this probability in training.
    outline: bool = False
    outline_dropout: float = 0.25
    outline_stretch: bool = False  # of 128-step stretches, not the piece's own 8 bars (as the CNF)

    def __post_init__(self) -> None:
        positive_ints(self, ("pitches", "steps", "n_genres", "levels", "depth", "hidden", "cond_dim",
                             "context_steps", "context_channels", "embed_dim", "dequant_hidden",
                             "ar_hidden", "ar_blocks"))
        if self.styles < 0:
            raise MusicflowError(f"styles must be >= 0, got {self.styles}")
        scale = 2**self.levels
        if self.pitches % scale or self.steps % scale:
            raise MusicflowError(
                f"GlowConfig: pitches ({self.pitches}) and steps ({self.steps}) must be multiples"
                f" of 2**levels = {scale}"
            )
        if self.dequantization not in DEQUANTIZERS:
            raise MusicflowError(
                f"GlowConfig.dequantization must be one of {DEQUANTIZERS}, got {self.dequantization!r}"
            )
        logit_alpha(self)
        flags(self, ("autoregressive", "chroma", "reach", "echo", "outline", "outline_stretch"))
        needs(self, "outline_stretch", "outline")
        if self.coupling not in ("affine", "spline"):
            raise MusicflowError(f"GlowConfig.coupling must be 'affine' or 'spline', got {self.coupling!r}")
        if not isinstance(self.bins, int) or self.bins < 2:
            raise MusicflowError(f"GlowConfig.bins must be an integer >= 2, got {self.bins!r}")
        probabilities(self, ("context_dropout", "outline_dropout"))

    @property
    def dim(self) -> int:
        """Dimensions of one window, ``2 * pitches * steps``."""
        return 2 * self.pitches * self.steps



class Glow(Flow):
    """Conditional multi-scale Glow over binary piano-roll windows ``(B, 2, P, T)``.

    ``log_prob`` is a lower bound on the log-probability (nats) of the *discrete* roll,
    dequantization included; ``encode``/``decode`` are deterministic (cell centres).
    Call :meth:`initialize` on a first batch before training (or let the first training-mode
    ``log_prob`` initialise the ActNorm layers from whatever batch comes first).

    >>> from musicflow.flows.base import Condition
    >>> flow = Glow(GlowConfig(pitches=8, steps=8, n_genres=2, depth=1, hidden=8))
    >>> cond = Condition(torch.tensor([[0.5, 0.5]]))
    >>> rolls = flow.sample(3, cond, generator=torch.Generator().manual_seed(0))
    >>> rolls.shape, bool(((rolls == 0) | (rolls == 1)).all())
    (torch.Size([3, 2, 8, 8]), True)
    >>> bool((flow.bits_per_dim(rolls, cond.expand(3)) > 0).all())
    True
    """

    #: Composing grows candidate pieces and keeps the one that reads most as the genre
    #: (``musicflow.sampling.generate``); 10 was chosen on tuning seeds (checkpoints/README.md).
    default_guidance = 10.0
    #: ActNorm layers start from the statistics of a first batch (:meth:`initialize`).
    data_init = True

    @property
    def takes_outline(self) -> bool:
        return self.config.outline

    def __init__(self, config: GlowConfig | None = None) -> None:
        super().__init__()
        cfg = config if config is not None else GlowConfig()
        self.config = cfg
        self.genre_table = nn.Parameter(torch.randn(cfg.n_genres, cfg.embed_dim))
        self.styles = StyleColumns(cfg.styles, cfg.embed_dim) if cfg.styles else None
        self.context_encoder = ContextEncoder(cfg.pitches, cfg.context_channels, cfg.cond_dim, cfg.chroma,
                                              cfg.reach, cfg.echo)
        self.outline_encoder = (OutlineEncoder(cfg.pitches, cfg.context_channels, cfg.cond_dim)
                                if cfg.outline else None)
        self.cond_mlp = nn.Sequential(
            nn.Linear(cfg.embed_dim + cfg.cond_dim, cfg.cond_dim),
            nn.ReLU(),
            nn.Linear(cfg.cond_dim, cfg.cond_dim),
        )
        self.logit = Logit(cfg.alpha)
        if cfg.dequantization == "variational":
            self.dequantizer: nn.Module = VariationalDequantizer(
                cfg.cond_dim, cfg.dequant_hidden, cfg.dequant_steps
            )
        else:
            self.dequantizer = UniformDequantizer()

        net = {"cond_dim": cfg.cond_dim, "pitch_channels": cfg.context_channels}
        self.pitch_ar = (
            PitchAutoregressive(2, cfg.pitches, cfg.steps, cfg.ar_hidden, blocks=cfg.ar_blocks,
                                bins=cfg.bins, **net)
            if cfg.autoregressive
            else None
        )
        self.levels = nn.ModuleList()
        self._latent_shapes: list[tuple[int, int, int]] = []
        c, p, t = 2, cfg.pitches, cfg.steps
        for level in range(cfg.levels):
            c, p, t = 4 * c, p // 2, t // 2
            layers: list[Transform] = [Squeeze()]
            for _ in range(cfg.depth):
                layers += [
                    ActNorm(c),
                    InvConv1x1(c),
                    self._coupling(c),
                ]
            if level < cfg.levels - 1:
                layers.append(Split(c, cfg.hidden, **net))
                self._latent_shapes.append((c - c // 2, p, t))
                c = c // 2
            else:
                layers.append(ConditionalPrior(c, p, t, cfg.hidden, **net))
                self._latent_shapes.append((c, p, t))
            self.levels.append(nn.ModuleList(layers))

    def _coupling(self, channels: int) -> Coupling:
        cfg = self.config
        couplings = {"affine": AffineCoupling, "spline": partial(SplineCoupling, bins=cfg.bins)}
        return couplings[cfg.coupling](channels, cfg.hidden, cond_dim=cfg.cond_dim,
                                       pitch_channels=cfg.context_channels, blocks=cfg.net_blocks)

    # -- conditioning -------------------------------------------------------------------------

    def genre_columns(self) -> tuple[torch.Tensor]:
        """Each genre slot's embedding as a column, ``(embed_dim, genres)``: the trained genres',
        then the styles' (:mod:`musicflow.flows.styles`)."""
        cols = self.genre_table.t()
        return (cols if self.styles is None else torch.cat([cols, self.styles.columns[0]], 1),)

    def features(self, cond: Condition, drop_context: bool = False) -> CondFeatures:
        """The :class:`CondFeatures` every layer receives; ``drop_context`` applies dropout."""
        cfg = self.config
        batch = cond.validate(genre_width(cond.genre, cfg.n_genres, cfg.styles), cfg.pitches)
        ctx_rate, out_rate = (cfg.context_dropout, cfg.outline_dropout) if drop_context else (0.0, 0.0)
        ctx_vec, pitch_map = encode_context_and_outline(self.context_encoder, self.outline_encoder, cond,
                                                        batch, ctx_rate, out_rate)
        emb = embed_genre(self.genre_table, self.styles, cond.genre)
        vec = self.cond_mlp(torch.cat([emb, ctx_vec], dim=1))
        return CondFeatures(vec, pitch_map)

    # -- the bijection between logit space and the standardised latent ------------------------

    def flow_forward(self, w: torch.Tensor, h: CondFeatures) -> tuple[torch.Tensor, torch.Tensor]:
        """Logit-space roll ``(B, 2, P, T)`` to flat latent ``(B, D)``, with ``log|det dz/dw|``."""
        x, logdet, zs = w, w.new_zeros(w.shape[0]), []
        if self.pitch_ar is not None:
            x, logdet = self.pitch_ar(x, h)
        for i, level in enumerate(self.levels):
            for layer in level:
                x, ld = layer(x, h)
                logdet = logdet + ld
            if i < len(self.levels) - 1:
                keep = level[-1].keep
                zs.append(x[:, keep:].flatten(1))
                x = x[:, :keep]
            else:
                zs.append(x.flatten(1))
        return torch.cat(zs, dim=1), logdet

    def flow_inverse(self, z: torch.Tensor, h: CondFeatures) -> tuple[torch.Tensor, torch.Tensor]:
        """Inverse of :meth:`flow_forward`, with ``log|det dw/dz|``."""
        b = z.shape[0]
        chunks = z.split([c * p * t for c, p, t in self._latent_shapes], dim=1)
        x = chunks[-1].reshape(b, *self._latent_shapes[-1])
        logdet = z.new_zeros(b)
        for i in reversed(range(len(self.levels))):
            if i < len(self.levels) - 1:
                x = torch.cat([x, chunks[i].reshape(b, *self._latent_shapes[i])], dim=1)
            for layer in reversed(self.levels[i]):
                x, ld = layer.inverse(x, h)
                logdet = logdet + ld
        if self.pitch_ar is not None:
            x, ld = self.pitch_ar.inverse(x, h)
            logdet = logdet + ld
        return x, logdet

    # -- the Flow interface -------------------------------------------------------------------

    def log_prob(
        self, x: torch.Tensor, cond: Condition, generator: torch.Generator | None = None,
        shared_noise: bool = False,
    ) -> torch.Tensor:
        """Lower bound on ``log P(x)`` in nats, ``(B,)``, for binary rolls ``x``.

        ``E_q[log p(x + u) - log q(u | x)]`` estimated with one draw of ``u`` (from
        ``generator``; with ``shared_noise``, the same noise for every window of the batch);
        in training mode, context dropout is applied.
        """
        return self._log_prob(x, cond, generator, drop_context=self.training, shared_noise=shared_noise)

    def bits_per_dim(
        self, x: torch.Tensor, cond: Condition, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``-log_prob / (D ln 2)``, ``(B,)``: an upper bound on the roll's bits per dimension."""
        return -self.log_prob(x, cond, generator) / (self.config.dim * math.log(2))

    def _log_prob(
        self,
        x: torch.Tensor,
        cond: Condition,
        generator: torch.Generator | None,
        drop_context: bool,
        shared_noise: bool = False,
    ) -> torch.Tensor:
        x = self._check_rolls(x, cond)
        h = self.features(cond, drop_context)
        u, log_q = self.dequantizer(x, h.vec, generator=generator, shared=shared_noise)
        w, ld_logit = self.logit((x + u) / 2)
        z, ld_flow = self.flow_forward(w, h)
        log_pz = -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(dim=1)
        # The -D ln 2 turns the density of v = (x + u) / 2 into that of x + u.
        return log_pz + ld_flow + ld_logit - self.config.dim * math.log(2) - log_q

    @torch.no_grad()
    def sample(self, n: int, cond: Condition, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` binary rolls ``(n, 2, P, T)``; ``cond`` has batch size 1 or ``n``."""
        return quantize(self.sample_continuous(n, cond, temperature, generator))

    @torch.no_grad()
    def sample_continuous(self, n: int, cond: Condition, temperature: float = 1.0,
                          generator: torch.Generator | None = None) -> torch.Tensor:
        """Like :meth:`sample` but the continuous ``v in [0, 1]`` before thresholding."""
        return self.decode(*self.draw_latents(n, cond, temperature, generator))

    def encode(self, x: torch.Tensor, cond: Condition) -> torch.Tensor:
        """Binary rolls to standardised latents ``(B, D)``, deterministically (cell centres)."""
        x = self._check_rolls(x, cond)
        w, _ = self.logit(centre(x))
        return self.flow_forward(w, self.features(cond))[0]

    def decode(self, z: torch.Tensor, cond: Condition) -> torch.Tensor:
        """Latents ``(B, D)`` to continuous rolls ``v`` in ``[0, 1]``; ``quantize(v)`` binarises."""
        if z.dim() != 2 or z.shape[1] != self.config.dim:
            raise MusicflowError(f"decode: z must have shape (B, {self.config.dim}), got {tuple(z.shape)}")
        if cond.batch_size != z.shape[0]:
            raise MusicflowError(f"decode: condition batch size {cond.batch_size} != {z.shape[0]}")
        w, _ = self.flow_inverse(z, self.features(cond))
        v, _ = self.logit.inverse(w)
        # alpha leaves a margin outside [0, 1] that z can land in; it belongs to the edge cells.
        return v.clamp(0.0, 1.0)

    quantize = staticmethod(quantize)

    @torch.no_grad()
    def initialize(self, x: torch.Tensor, cond: Condition) -> None:
        """Data-dependent ActNorm initialisation from the batch ``(x, cond)``.

        Resets every ActNorm and runs one forward pass in training mode (without context
        dropout), so each layer's outputs on this batch are zero-mean, unit-variance per channel.
        A larger, representative batch gives a better start.
        """
        was_training = self.training
        for m in self.modules():
            if isinstance(m, ActNorm):
                m.initialized.fill_(False)
        self.train()
        self._log_prob(x, cond, None, drop_context=False)
        self.train(was_training)

    def _check_rolls(self, x: torch.Tensor, cond: Condition) -> torch.Tensor:
        cfg = self.config
        if x.dim() != 4 or tuple(x.shape[1:]) != (2, cfg.pitches, cfg.steps):
            raise MusicflowError(
                f"rolls must have shape (B, 2, {cfg.pitches}, {cfg.steps}), got {tuple(x.shape)}"
            )
        if cond.batch_size != x.shape[0]:
            raise MusicflowError(f"condition batch size {cond.batch_size} != rolls batch size {x.shape[0]}")
        return x.to(self.genre_table.dtype)
