"""A conditional VAE over the same one-beat windows as the Glow: the baseline the field compares
flows with.

It keeps the :class:`~musicflow.flows.base.Flow` interface, so training, checkpoints, threshold
calibration, composing and evaluation run it unchanged: ``log_prob`` is the evidence lower bound
(ELBO) in nats of the *binary* roll under a Bernoulli decoder, one reparameterised draw of ``z``,

    log P(x | c) >= E_q(z|x,c)[log p(x | z, c)] - KL(q(z | x, c) || N(0, I)),

so ``bits_per_dim`` (the negative ELBO over the ``2 * pitches * steps`` binary cells, in bits) is an
upper bound on the roll's bits per dimension, per the same cells as the Glow's dequantization bound
and directly comparable with it. ``config.dim`` is the latent size; ``decode(z, cond)`` returns cell
probabilities in ``[0, 1]``, which :mod:`musicflow.sampling` thresholds like a flow's output.

The condition is read exactly as the Glow reads it: a genre embedding (mixes are weighted sums) and
the previous bars through :class:`~musicflow.flows.nets.ContextEncoder`, with context dropout.
Encoder and decoder are 1-D convolutions along pitch (time is folded into channels: a beat is only
four steps), FiLM-modulated by the condition and fed the context's per-pitch map.

References: Kingma & Welling, "Auto-Encoding Variational Bayes" (2014); Sohn et al., "Learning
Structured Output Representation using Deep Conditional Generative Models" (2015).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from musicflow.errors import MusicflowError
from musicflow.flows.base import Condition, ConfigDict, Flow
from musicflow.flows.checks import positive_ints, probabilities
from musicflow.flows.dequantize import draw_noise
from musicflow.flows.nets import ContextEncoder, encode_with_dropout, soft_clamp
from musicflow.flows.rng import draw


@dataclass(frozen=True)
class VAEConfig(ConfigDict):
    """Everything needed to rebuild a :class:`VAE`; stored in checkpoints.

    >>> cfg = VAEConfig(pitches=8, steps=4, dim=4)
    >>> VAEConfig.from_dict(cfg.to_dict()) == cfg
    True
    """

    pitches: int = 48
    steps: int = 4  # one beat of 16ths, like the shipped Glow
    n_genres: int = 8
    dim: int = 32  # latent size
    hidden: int = 64  # channels of the encoder and decoder convolutions
    blocks: int = 2  # residual conv blocks in encoder and decoder
    kernel: int = 5  # along pitch
    bottleneck: int = 600  # width of the dense layers next to the latent
    context_steps: int = 64  # context the data pipeline supplies; the encoder takes any length
    context_channels: int = 16  # channels of the context's per-pitch map
    embed_dim: int = 16  # genre embedding size
    cond_dim: int = 64  # size of the condition vector
    context_dropout: float = 0.1  # share of training rows given no context

    def __post_init__(self) -> None:
        positive_ints(self, (f.name for f in fields(self) if f.name != "context_dropout"))
        if self.kernel % 2 == 0:
            raise MusicflowError(f"VAEConfig.kernel must be odd, got {self.kernel}")
        probabilities(self, ("context_dropout",))

    @property
    def cells(self) -> int:
        """Binary cells of one window, ``2 * pitches * steps`` (what bits/dim is per)."""
        return 2 * self.pitches * self.steps



class PitchNet(nn.Module):
    """Residual 1-D convolutions along pitch, FiLM-modulated by a condition vector."""

    def __init__(self, in_ch: int, hidden: int, cond_dim: int, blocks: int, kernel: int) -> None:
        super().__init__()
        pad = kernel // 2
        self.conv_in = nn.Conv1d(in_ch, hidden, kernel, padding=pad)
        self.blocks = nn.ModuleList(nn.Conv1d(hidden, hidden, kernel, padding=pad) for _ in range(blocks))
        self.film = nn.Linear(cond_dim, 2 * hidden * (blocks + 1))

    def forward(self, x: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
        film = self.film(vec)[:, :, None].chunk(2 * (len(self.blocks) + 1), dim=1)
        a = F.gelu(torch.addcmul(film[1], self.conv_in(x), 1 + film[0]))
        for i, conv in enumerate(self.blocks):
            a = a + F.gelu(torch.addcmul(film[2 * i + 3], conv(a), 1 + film[2 * i + 2]))
        return a


class VAE(Flow):
    """Conditional VAE over binary roll windows ``(B, 2, P, T)`` with a Bernoulli decoder.

    >>> vae = VAE(VAEConfig(pitches=8, steps=4, n_genres=2, dim=3, hidden=8, bottleneck=8))
    >>> cond = Condition(torch.tensor([[1.0, 0.0]]))
    >>> v = vae.decode(torch.zeros(2, 3), cond.expand(2))
    >>> v.shape, bool(((v >= 0) & (v <= 1)).all())
    (torch.Size([2, 2, 8, 4]), True)
    >>> x = vae.sample(2, cond, generator=torch.Generator().manual_seed(0))
    >>> bool((vae.bits_per_dim(x, cond.expand(2)) > 0).all())
    True
    """

    #: ``decode`` gives cell probabilities, thresholded at calibrated per-genre thresholds.
    decodes_probabilities = True

    def __init__(self, config: VAEConfig | None = None) -> None:
        super().__init__()
        self.config = c = config if config is not None else VAEConfig()
        p, t, h = c.pitches, c.steps, c.hidden
        self.genre_table = nn.Parameter(torch.randn(c.n_genres, c.embed_dim))
        self.context_encoder = ContextEncoder(p, c.context_channels, c.cond_dim)
        self.cond_mlp = nn.Sequential(nn.Linear(c.embed_dim + c.cond_dim, c.cond_dim), nn.ReLU(),
                                      nn.Linear(c.cond_dim, c.cond_dim))
        self.encoder = PitchNet(2 * t + c.context_channels, h, c.cond_dim, c.blocks, c.kernel)
        self.to_latent = nn.Sequential(nn.Conv1d(h, 8, 1), nn.Flatten(), nn.Linear(8 * p, c.bottleneck),
                                       nn.GELU(), nn.Linear(c.bottleneck, 2 * c.dim))
        self.from_latent = nn.Sequential(nn.Linear(c.dim + c.cond_dim, c.bottleneck), nn.GELU(),
                                         nn.Linear(c.bottleneck, 8 * p))
        self.decoder = PitchNet(8 + c.context_channels, h, c.cond_dim, c.blocks, c.kernel)
        self.to_logits = nn.Conv1d(h, 2 * t, c.kernel, padding=c.kernel // 2)
        nn.init.zeros_(self.to_logits.weight)
        # Start at the corpus's sparsity (about 3% of cells sound) rather than at one half.
        self.cell_bias = nn.Parameter(torch.full((2 * t, p), -3.5))

    # -- conditioning -------------------------------------------------------------------------
    def features(self, cond: Condition, drop_context: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Condition vector ``(B, cond_dim)`` and per-pitch context map ``(B, C, P)``."""
        c = self.config
        b = cond.validate(c.n_genres, c.pitches)
        rate = c.context_dropout if drop_context else 0.0
        ctx_vec, pmap = encode_with_dropout(self.context_encoder, cond.context, b, rate, cond.genre.device)
        emb = cond.genre.to(self.genre_table.dtype) @ self.genre_table
        return self.cond_mlp(torch.cat([emb, ctx_vec], dim=1)), pmap

    # -- encoder and decoder ------------------------------------------------------------------
    def _fold(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 2, P, T)`` -> ``(B, 2T, P)``: time into channels, convolutions run along pitch."""
        return x.permute(0, 1, 3, 2).reshape(x.shape[0], -1, self.config.pitches)

    def _unfold(self, a: torch.Tensor) -> torch.Tensor:
        c = self.config
        return a.reshape(a.shape[0], 2, c.steps, c.pitches).permute(0, 1, 3, 2)

    def posterior(self, x: torch.Tensor, vec: torch.Tensor, pmap: torch.Tensor):
        """Mean and log-variance of ``q(z | x, c)``, each ``(B, dim)``."""
        a = self.encoder(torch.cat([self._fold(x), pmap], dim=1), vec)
        mu, logvar = self.to_latent(a).chunk(2, dim=1)
        return mu, soft_clamp(logvar, 8.0)

    def logits(self, z: torch.Tensor, vec: torch.Tensor, pmap: torch.Tensor) -> torch.Tensor:
        """Bernoulli logits of every cell, ``(B, 2, P, T)``."""
        a = self.from_latent(torch.cat([z, vec], dim=1)).reshape(z.shape[0], 8, -1)
        a = self.decoder(torch.cat([a, pmap], dim=1), vec)
        return self._unfold(self.to_logits(a) + self.cell_bias)

    # -- the Flow interface -------------------------------------------------------------------
    def log_prob(self, x: torch.Tensor, cond: Condition,
                 generator: torch.Generator | None = None, shared_noise: bool = False) -> torch.Tensor:
        """ELBO in nats, ``(B,)``: a lower bound on ``log P(x | c)`` of binary rolls, estimated with
        one draw of ``z`` (from ``generator``; with ``shared_noise``, the same draw of the standard
        noise for every window); in training mode, context dropout is applied."""
        x = self._check_rolls(x, cond)
        vec, pmap = self.features(cond, drop_context=self.training)
        mu, logvar = self.posterior(x, vec, pmap)
        eps = draw_noise(torch.randn, mu, generator, shared_noise)
        z = mu + (0.5 * logvar).exp() * eps
        rec = -F.binary_cross_entropy_with_logits(self.logits(z, vec, pmap), x, reduction="none")
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(dim=1)
        return rec.flatten(1).sum(dim=1) - kl

    def bits_per_dim(self, x: torch.Tensor, cond: Condition,
                     generator: torch.Generator | None = None) -> torch.Tensor:
        """Negative ELBO per binary cell in bits, ``(B,)``: an upper bound on bits/dim."""
        return -self.log_prob(x, cond, generator) / (self.config.cells * math.log(2))

    def encode(self, x: torch.Tensor, cond: Condition) -> torch.Tensor:
        """Posterior means ``(B, dim)``."""
        x = self._check_rolls(x, cond)
        vec, pmap = self.features(cond)
        return self.posterior(x, vec, pmap)[0]

    def decode(self, z: torch.Tensor, cond: Condition) -> torch.Tensor:
        """Latents ``(B, dim)`` to cell probabilities ``(B, 2, P, T)`` in ``[0, 1]``."""
        if z.dim() != 2 or z.shape[1] != self.config.dim:
            raise MusicflowError(f"decode: z must have shape (B, {self.config.dim}), got {tuple(z.shape)}")
        if cond.batch_size != z.shape[0]:
            raise MusicflowError(f"decode: condition batch size {cond.batch_size} != {z.shape[0]}")
        vec, pmap = self.features(cond)
        return torch.sigmoid(self.logits(z.to(vec.dtype), vec, pmap))

    @torch.no_grad()
    def sample(self, n: int, cond: Condition, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` binary rolls: ``z ~ N(0, temperature^2 I)``, then every cell drawn from its
        Bernoulli probability."""
        if n < 1:
            raise MusicflowError(f"sample: n must be positive, got {n}")
        ref = self.genre_table
        z = draw(torch.randn, n, self.config.dim, generator=generator, device=ref.device, dtype=ref.dtype)
        probs = self.decode(z * temperature, cond.expand(n))
        u = draw(torch.rand, probs.shape, generator=generator, device=probs.device, dtype=probs.dtype)
        return (u < probs).to(probs.dtype)

    def _check_rolls(self, x: torch.Tensor, cond: Condition) -> torch.Tensor:
        c = self.config
        if x.dim() != 4 or tuple(x.shape[1:]) != (2, c.pitches, c.steps):
            raise MusicflowError(f"rolls must have shape (B, 2, {c.pitches}, {c.steps}), "
                                 f"got {tuple(x.shape)}")
        if cond.batch_size != x.shape[0]:
            raise MusicflowError(f"condition batch size {cond.batch_size} != rolls batch size {x.shape[0]}")
        return x.to(self.genre_table.dtype)
