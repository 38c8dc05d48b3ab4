"""A conditional GAN over the same one-beat windows and contexts as the flows: the third family
the field compares flows with, beside the VAE.

The generator is the VAE's decoder taken alone: a latent ``z ~ N(0, I)`` and the condition (the
genre embedding, mixes as weighted sums, and the previous bars through
:class:`~musicflow.flows.nets.ContextEncoder`) become a probability for every cell. The critic reads
a window and its context (its own context encoder, the same convolutions along pitch with time
folded into channels), the genre through a projection, and a summary of the whole batch, so that
a generator which answers every context with the same safe window (holding the notes it was given)
is caught. Every generated window is cleaned as composing cleans it (:func:`clean`: an onset only
where its cell sounds, a sounding cell only where a note started), so the critic never sees a
window that composing would not write.

The default recipe is MuseGAN's (Dong et al. 2018): the critic sees the generator's probabilities
themselves (``binary="soft"``), a Wasserstein critic with a gradient penalty
(``objective="wgan-gp"``), and a composed window is the probabilities thresholded at one half.
Two time scales (the critic learns ``critic_lr`` times faster, Adam betas (0, 0.9)) let one critic
step per generator step suffice. A conditional generator fed this much context learns to ignore
its latent (every seed then gives the same piece), so a mode-seeking term (Mao et al. 2019) asks
two latents' windows under one condition to lie apart in proportion to the latents. The
alternatives stay selectable for comparison: binary neurons with a straight-through gradient
(``binary="deterministic"``, or ``"stochastic"``, whose cell noise is then part of the latent,
so a latent still decodes to one window) and the hinge loss with a spectrally normalised critic
(``objective="hinge"``); on this corpus they collapsed (``docs/experiments.md``).

A GAN has no likelihood: ``log_prob`` and ``bits_per_dim`` raise a one-line error, and
``has_likelihood`` is false, so scoring, classifying, genre guidance and the evaluation's bits/dim
and likelihood classification refuse or skip it. It has no encoder either (no transfer, no
variations of a user's piece). It composes, continues a piece and mixes genres by the weighted
embedding.

The two players train in one step of the shared training loop: ``loss`` returns the critic's loss
on real and (detached) generated windows plus the generator's loss through a critic whose weights
take no gradient from it, so one optimiser (two parameter groups, :meth:`GAN.param_groups`) steps
both, each on its own objective.

References: Goodfellow et al., "Generative Adversarial Nets" (2014); Gulrajani et al., "Improved
Training of Wasserstein GANs" (2017); Heusel et al., "GANs Trained by a Two Time-Scale Update Rule"
(2017); Miyato et al., "Spectral Normalization for Generative Adversarial Networks" and "cGANs with
Projection Discriminator" (2018); Mao et al., "Mode Seeking Generative Adversarial Networks for
Diverse Image Synthesis" (2019); Karras et al., "Progressive Growing of GANs" (2018); Dong et al.,
"MuseGAN" (2018); Dong & Yang, "Convolutional Generative Adversarial Networks with Binary Neurons
for Polyphonic Music Generation" (2018).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from musicflow.baselines.vae import PitchNet
from musicflow.errors import MusicflowError
from musicflow.flows.base import Condition, ConfigDict, Flow
from musicflow.flows.checks import positive_ints, probabilities
from musicflow.flows.nets import ContextEncoder, soft_clamp

#: What every command that needs a likelihood is told about a GAN.
NO_LIKELIHOOD = ("a GAN has no likelihood (scores, classification, genre guidance and bits/dim "
                 "need one): use a flow, e.g. --model keyflow")


@dataclass(frozen=True)
class GANConfig(ConfigDict):
    """Everything needed to rebuild a :class:`GAN`; stored in checkpoints.

    >>> cfg = GANConfig(pitches=8, steps=4, noise=4)
    >>> GANConfig.from_dict(cfg.to_dict()) == cfg
    True
    """

    pitches: int = 48
    steps: int = 4  # one beat of 16ths, like the VAE and the shipped Glow
    n_genres: int = 8
    noise: int = 32  # size of the latent's Gaussian part
    hidden: int = 64  # channels of the generator's convolutions
    critic_hidden: int = 64  # channels of the critic's convolutions
    blocks: int = 2  # residual conv blocks in generator and critic
    kernel: int = 5  # along pitch
    bottleneck: int = 600  # width of the generator's dense layer next to the latent
    context_steps: int = 64  # context the data pipeline supplies; the encoders take any length
    context_channels: int = 16  # channels of the context's per-pitch map
    embed_dim: int = 16  # genre embedding size
    cond_dim: int = 64  # size of the condition vector
    context_dropout: float = 0.1  # share of training rows given no context (the same for both players)
    objective: str = "wgan-gp"  # or "hinge" (with spectral normalisation in the critic)
    gradient_penalty: float = 10.0  # wgan-gp: weight of the critic's gradient-norm penalty
    critic_lr: float = 4.0  # the critic's learning rate, a multiple of the generator's (TTUR)
    #: Weight of the mode-seeking term: the generator loses ``-log`` of how far two latents' windows
    #: lie apart for each unit their latents do, so that it cannot ignore its latent.
    mode_seeking: float = 0.2
    #: What the critic sees of a generated window: ``soft`` (the cells' probabilities; composing
    #: thresholds them at one half), or binary neurons with a straight-through gradient:
    #: ``deterministic`` (sounds above one half) or ``stochastic`` (a Bernoulli draw whose uniform
    #: noise is part of the latent).
    binary: str = "soft"

    def __post_init__(self) -> None:
        floats = ("context_dropout", "critic_lr", "gradient_penalty", "mode_seeking")
        positive_ints(self, (f.name for f in fields(self) if f.name not in (*floats, "binary", "objective")))
        if not (self.critic_lr > 0 and self.gradient_penalty >= 0 and self.mode_seeking >= 0):
            raise MusicflowError(f"GANConfig: critic_lr must be positive, gradient_penalty and mode_seeking "
                                 f">= 0, got {self.critic_lr}, {self.gradient_penalty}, {self.mode_seeking}")
        if self.kernel % 2 == 0:
            raise MusicflowError(f"GANConfig.kernel must be odd, got {self.kernel}")
        probabilities(self, ("context_dropout",))
        if self.objective not in ("wgan-gp", "hinge"):
            raise MusicflowError(f"GANConfig.objective must be wgan-gp or hinge, got {self.objective!r}")
        if self.binary not in ("deterministic", "stochastic", "soft"):
            raise MusicflowError(f"GANConfig.binary must be soft, deterministic or stochastic, "
                                 f"got {self.binary!r}")

    @property
    def cells(self) -> int:
        """Binary cells of one window, ``2 * pitches * steps``."""
        return 2 * self.pitches * self.steps

    @property
    def dim(self) -> int:
        """Numbers per latent: the Gaussian part, then (stochastic neurons) one per cell, whose
        normal CDF is the uniform noise that draws the cell, so a latent decodes to one window."""
        return self.noise + (self.cells if self.binary == "stochastic" else 0)


def _spectral(module: nn.Module) -> nn.Module:
    """Spectral normalisation on every convolution and linear layer inside ``module``."""
    for m in list(module.modules()):
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            spectral_norm(m)
    return module


def clean(window: torch.Tensor, held: torch.Tensor) -> torch.Tensor:
    """The rule composing applies to every new window (:func:`musicflow.sampling.clean_continuation`)
    on a binary window ``(B, 2, P, T)`` that carries gradients: an onset only where the cell also
    sounds, a sounding cell only where an onset started its note, here or before (``held``
    ``(B, P)``: the pitches sounding at the step before). Products and sums of 0/1 values, so the
    straight-through gradient passes; the critic then never sees a window composing would not write.

    >>> w = torch.zeros(1, 2, 2, 3); w[0, 1] = 1; w[0, 0, 1, 1] = 1
    >>> clean(w, torch.tensor([[1.0, 0.0]]))[0, 1].tolist()
    [[1.0, 1.0, 1.0], [0.0, 1.0, 1.0]]
    """
    on, sus = window[:, 0] * window[:, 1], window[:, 1]
    prev, keep = held, []
    for t in range(window.shape[-1]):
        prev = sus[..., t] * (on[..., t] + prev - on[..., t] * prev)
        keep.append(prev)
    keep_t = torch.stack(keep, dim=-1)
    return torch.stack([on * keep_t, keep_t], dim=1)


@contextmanager
def _frozen(params: list[nn.Parameter]):
    """Within the block, ``params`` take no gradient; gradients still flow through them to inputs."""
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, f in zip(params, flags):
            p.requires_grad_(f)


class Critic(nn.Module):
    """Scores windows ``(B, 2, P, T)`` given their context and genre: higher reads as real.

    A projection critic: ``psi(f, s) + <genre @ table, W f>`` over features ``f`` pooled along
    pitch and ``s``, a summary of the whole batch's features (their mean and spread) that every
    row sees. A single window that only holds the notes it was given looks real; a batch in which
    no window ever starts a note does not, so the batch summary keeps the generator from settling
    on such a safe, silent answer, and from giving every latent the same one (minibatch features,
    as in Karras et al. 2018). Real and generated windows are therefore scored as separate batches.
    """

    def __init__(self, c: GANConfig) -> None:
        super().__init__()
        h = c.critic_hidden
        self.context_encoder = ContextEncoder(c.pitches, c.context_channels, c.cond_dim)
        self.net = PitchNet(2 * c.steps + c.context_channels, h, c.cond_dim, c.blocks, c.kernel)
        self.batch_summary = nn.Linear(4 * h, 8)
        self.psi = nn.Linear(2 * h + 8, 1)
        self.project = nn.Linear(2 * h, c.embed_dim, bias=False)
        self.genre_table = nn.Parameter(torch.randn(c.n_genres, c.embed_dim) / c.embed_dim ** 0.5)
        if c.objective == "hinge":
            _spectral(self)

    def context(self, context: torch.Tensor | None, batch: int, drop: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """The critic's own reading of the context: vector ``(B, cond_dim)``, map ``(B, C, P)``."""
        return self.context_encoder(context, batch, drop)

    def forward(self, folded: torch.Tensor, vec: torch.Tensor, pmap: torch.Tensor,
                genre: torch.Tensor) -> torch.Tensor:
        """Scores ``(B,)`` of windows folded to ``(B, 2T, P)`` (see :meth:`GAN.fold`)."""
        a = self.net(torch.cat([folded, pmap], dim=1), vec)
        f = torch.cat([a.mean(dim=-1), a.amax(dim=-1)], dim=1)
        batch = torch.cat([f.mean(dim=0), f.std(dim=0, unbiased=False)])
        summary = F.leaky_relu(self.batch_summary(batch), 0.2).expand(len(f), -1)
        emb = genre.to(f.dtype) @ self.genre_table
        return self.psi(torch.cat([f, summary], dim=1))[:, 0] + (self.project(f) * emb).sum(dim=1)


class GAN(Flow):
    """Conditional GAN over binary roll windows ``(B, 2, P, T)``; the generator is a decoder of
    latents ``(B, dim)``, like the VAE's.

    >>> gan = GAN(GANConfig(pitches=8, steps=4, n_genres=2, noise=3, hidden=8, critic_hidden=8, bottleneck=8))
    >>> cond = Condition(torch.tensor([[1.0, 0.0]]))
    >>> x = gan.sample(2, cond, generator=torch.Generator().manual_seed(0))
    >>> x.shape, bool(((x == 0) | (x == 1)).all())
    (torch.Size([2, 2, 8, 4]), True)
    >>> bool(torch.isfinite(gan.loss(x, cond.expand(2))).all())
    True
    """

    has_likelihood = False
    loss_name = "critic+generator"

    def __init__(self, config: GANConfig | None = None) -> None:
        super().__init__()
        self.config = c = config if config is not None else GANConfig()
        p, t, h = c.pitches, c.steps, c.hidden
        self.genre_table = nn.Parameter(torch.randn(c.n_genres, c.embed_dim))
        self.context_encoder = ContextEncoder(p, c.context_channels, c.cond_dim)
        self.cond_mlp = nn.Sequential(nn.Linear(c.embed_dim + c.cond_dim, c.cond_dim), nn.ReLU(),
                                      nn.Linear(c.cond_dim, c.cond_dim))
        self.from_latent = nn.Sequential(nn.Linear(c.noise + c.cond_dim, c.bottleneck), nn.GELU(),
                                         nn.Linear(c.bottleneck, 8 * p))
        self.generator = PitchNet(8 + c.context_channels, h, c.cond_dim, c.blocks, c.kernel)
        self.to_logits = nn.Conv1d(h, 2 * t, c.kernel, padding=c.kernel // 2)
        # Start at the corpus's sparsity (about 3% of cells sound): an empty window, not noise.
        self.cell_bias = nn.Parameter(torch.full((2 * t, p), -3.5))
        self.critic = Critic(c)
        #: The last training step's ``(critic, generator)`` losses, for the training record.
        self.last_losses: tuple[float, float] | None = None

    # -- the generator ------------------------------------------------------------------------
    def fold(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 2, P, T)`` -> ``(B, 2T, P)``: time into channels, convolutions run along pitch."""
        return x.permute(0, 1, 3, 2).reshape(x.shape[0], -1, self.config.pitches)

    def _unfold(self, a: torch.Tensor) -> torch.Tensor:
        c = self.config
        return a.reshape(a.shape[0], 2, c.steps, c.pitches).permute(0, 1, 3, 2)

    def _condition(self, cond: Condition, ctx_vec: torch.Tensor) -> torch.Tensor:
        emb = cond.genre.to(self.genre_table.dtype) @ self.genre_table
        return self.cond_mlp(torch.cat([emb, ctx_vec], dim=1))

    def _window(self, z: torch.Tensor, vec: torch.Tensor, pmap: torch.Tensor, held: torch.Tensor
                ) -> torch.Tensor:
        """The generator: latents ``(B, dim)`` to a clean binary window ``(B, 2, P, T)`` whose
        gradient is the cell probabilities' (straight-through)."""
        c = self.config
        noise, cells = z[:, :c.noise], z[:, c.noise:]
        a = self.from_latent(torch.cat([noise, vec], dim=1)).reshape(z.shape[0], 8, -1)
        logits = self.to_logits(self.generator(torch.cat([a, pmap], dim=1), vec)) + self.cell_bias
        logits = self._unfold(soft_clamp(logits, 8.0))  # bounded: a sure cell is still movable
        probs = torch.sigmoid(logits)
        if c.binary == "soft" and torch.is_grad_enabled():
            return clean(probs, held)  # training: the probabilities themselves (MuseGAN)
        if c.binary == "stochastic":  # the cell's uniform noise is the normal CDF of its latent
            hard = 0.5 * (1 + torch.erf(cells.reshape(probs.shape) / 2 ** 0.5)) < probs
        else:  # deterministic, and soft once trained: sounds above one half
            hard = probs > 0.5
        # Straight through with the logits' gradient (the sigmoid's slope at 0), which does not
        # vanish where the generator is sure: a sure generator can still be moved.
        return clean(hard.to(probs.dtype) + 0.25 * (logits - logits.detach()), held)

    def _held(self, cond: Condition, drop: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
        """Pitches sounding at the context's last step ``(B, P)`` (none where there is no context)."""
        if cond.context is None or cond.context.shape[-1] == 0:
            return like.new_zeros(like.shape[0], self.config.pitches)
        held = (cond.context[:, 1, :, -1] > 0).to(like.dtype)
        return held if drop is None else held * (~drop)[:, None].to(like.dtype)

    def decode(self, z: torch.Tensor, cond: Condition) -> torch.Tensor:
        """Latents ``(B, dim)`` to binary windows ``(B, 2, P, T)``, cleaned as composing cleans
        (:func:`clean`): exactly what the critic saw in training."""
        c = self.config
        if z.dim() != 2 or z.shape[1] != c.dim:
            raise MusicflowError(f"decode: z must have shape (B, {c.dim}), got {tuple(z.shape)}")
        b = cond.validate(c.n_genres, c.pitches)
        if b != z.shape[0]:
            raise MusicflowError(f"decode: condition batch size {b} != {z.shape[0]}")
        vec, pmap = self.context_encoder(cond.context, b)
        z = z.to(vec.dtype)
        with torch.no_grad():  # binary cells, as composing writes them
            window = self._window(z, self._condition(cond, vec), pmap, self._held(cond, None, vec))
        return (window > 0.5).to(vec.dtype)  # exact 0/1: the straight-through sum rounds

    @torch.no_grad()
    def sample(self, n: int, cond: Condition, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` binary rolls from latents ``z ~ N(0, temperature^2 I)`` (a lower temperature also
        makes the cells' draws surer)."""
        z, cond = self.draw_latents(n, cond, temperature, generator)
        return self.decode(z, cond)

    # -- training -----------------------------------------------------------------------------
    def param_groups(self, lr: float) -> list[dict]:
        """The two players' optimiser groups: the generator at ``lr``, the critic at
        ``critic_lr * lr`` (two time-scale updates, so one critic step per generator step
        suffices), both with Adam betas (0, 0.9) as GANs train best with."""
        critic = list(self.critic.parameters())
        ids = set(map(id, critic))
        gen = [p for p in self.parameters() if id(p) not in ids]
        return [{"params": gen, "lr": lr, "betas": (0.0, 0.9)},
                {"params": critic, "lr": lr * self.config.critic_lr, "betas": (0.0, 0.9)}]

    def losses(self, x: torch.Tensor, cond: Condition, generator: torch.Generator | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per window, the critic's loss (``wgan-gp``: ``D(fake) - D(real)`` plus the gradient
        penalty; ``hinge``: ``relu(1 - D(real)) + relu(1 + D(fake))``), which reaches the critic
        alone (the fake is detached), and the generator's ``-D(fake)`` (plus the mode-seeking term), which
        reaches the generator alone (through a critic whose weights take no gradient from it).
        Context dropout (in training mode) hides the same rows' context from both players."""
        c = self.config
        b = cond.validate(c.n_genres, c.pitches)
        x = x.to(self.genre_table.dtype)
        if x.dim() != 4 or tuple(x.shape[1:]) != (2, c.pitches, c.steps):
            raise MusicflowError(f"rolls must have shape (B, 2, {c.pitches}, {c.steps}), "
                                 f"got {tuple(x.shape)}")
        drop = None
        if self.training and cond.context is not None and c.context_dropout > 0:
            drop = torch.rand(b, generator=generator, device=x.device) < c.context_dropout
        vec, pmap = self.context_encoder(cond.context, b, drop)
        z = torch.randn(b, c.dim, generator=generator, device=x.device, dtype=x.dtype)
        gvec, held = self._condition(cond, vec), self._held(cond, drop, vec)
        fake = self.fold(self._window(z, gvec, pmap, held))
        cvec, cmap = self.critic.context(cond.context, b, drop)
        real = self.fold(x)
        d_real = self.critic(real, cvec, cmap, cond.genre)
        d_fake = self.critic(fake.detach(), cvec, cmap, cond.genre)
        with _frozen(list(self.critic.parameters())):
            loss_g = -self.critic(fake, cvec.detach(), cmap.detach(), cond.genre)
        if c.mode_seeking > 0:  # Mao et al. 2019: a second latent for every condition
            z2 = torch.randn(b, c.dim, generator=generator, device=x.device, dtype=x.dtype)
            fake2 = self.fold(self._window(z2, gvec, pmap, held))
            apart = (fake - fake2).abs().flatten(1).mean(dim=1) / (z - z2).abs().mean(dim=1)
            loss_g = loss_g - c.mode_seeking * torch.log(apart + 1e-4)
        if c.objective == "hinge":
            return F.relu(1 - d_real) + F.relu(1 + d_fake), loss_g
        # Wasserstein critic with a gradient penalty on points between real and generated windows
        # (Gulrajani et al. 2017), and a small pull of real scores towards zero (Karras et al. 2018).
        eps = torch.rand(b, 1, 1, generator=generator, device=x.device, dtype=x.dtype)
        mid = (eps * real + (1 - eps) * fake.detach()).requires_grad_(True)
        (grad,) = torch.autograd.grad(self.critic(mid, cvec, cmap, cond.genre).sum(), mid, create_graph=True)
        penalty = c.gradient_penalty * (grad.flatten(1).norm(dim=1) - 1) ** 2
        return d_fake - d_real + penalty + 1e-3 * d_real ** 2, loss_g

    def loss(self, x: torch.Tensor, cond: Condition, generator: torch.Generator | None = None
             ) -> torch.Tensor:
        """The training objective per window: the sum of :meth:`losses`, so one optimiser steps
        both players, each on its own loss; their means are kept in ``last_losses``."""
        loss_d, loss_g = self.losses(x, cond, generator)
        self.last_losses = (float(loss_d.detach().mean()), float(loss_g.detach().mean()))
        return loss_d + loss_g

    # -- what a GAN does not have -------------------------------------------------------------
    def log_prob(self, x: torch.Tensor, cond: Condition,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        raise MusicflowError(NO_LIKELIHOOD)

    def bits_per_dim(self, x: torch.Tensor, cond: Condition,
                     generator: torch.Generator | None = None) -> torch.Tensor:
        raise MusicflowError(NO_LIKELIHOOD)

    def encode(self, x: torch.Tensor, cond: Condition) -> torch.Tensor:
        raise MusicflowError("a GAN has no encoder: it cannot read a piece into latents (transfer, "
                             "variations of a file, interpolating files): use a flow, e.g. --model glow")
