"""The invertible layers of the Glow flow over piano-roll windows.

Every layer is a :class:`~musicflow.flows.base.Transform`: ``forward(x, h) -> (y, logdet)`` and
``inverse(y, h) -> (x, logdet_of_inverse)``, one log-determinant per batch element, on tensors of
shape ``(B, C, P, T)`` (channels, pitch, time). ``h`` is a
:class:`~musicflow.flows.nets.CondFeatures` or ``None``.

Multi-scale factoring is expressed inside the contract: :class:`Split` maps ``(a, b)`` to
``(a, eps)`` with ``eps`` the standardised ``b`` under a conditional prior, so the owning flow just
slices ``eps`` off and the log-density of ``b`` is ``log N(eps; 0, I) + logdet``.

References: Kingma & Dhariwal, "Glow: Generative Flow with Invertible 1x1 Convolutions" (2018);
Dinh et al., "Density estimation using Real NVP" (2017).
"""

from __future__ import annotations

from functools import partial

import torch

from musicflow.errors import MusicflowError
from musicflow.flows.base import Transform
from musicflow.flows.coupling import Coupling
from musicflow.flows.nets import CondFeatures, CondNet, soft_clamp

# exp(+-2) bounds every coupling scale: enough to reshape a distribution, never to blow up.
SCALE_BOUND = 2.0
# Priors may be a little sharper; exp(-3) ~ 0.05 is narrower than a half-cell in logit space.
PRIOR_BOUND = 3.0


def _per_sample(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).sum(dim=1)


def _standardise(
    x: torch.Tensor, params: torch.Tensor, inverse: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x - mu) / sigma`` (or, with ``inverse``, ``x * sigma + mu``) and its log-determinant,
    with ``mu`` and ``log sigma`` the even and odd channels of ``params``: a prior's statistics."""
    mu, log_sigma = params[:, 0::2], soft_clamp(params[:, 1::2], PRIOR_BOUND)
    if inverse:
        return x * torch.exp(log_sigma) + mu, _per_sample(log_sigma)
    return (x - mu) * torch.exp(-log_sigma), -_per_sample(log_sigma)


class ActNorm(Transform):
    """Per-channel affine ``y = (x + bias) * exp(logs)`` with data-dependent initialisation.

    The first ``forward`` in training mode sets ``bias`` and ``logs`` so that the outputs of that
    batch are zero-mean and unit-variance per channel. The ``initialized`` buffer is part of the
    ``state_dict``, so a loaded model is never re-initialised.

    >>> layer = ActNorm(3).train()
    >>> y, logdet = layer(torch.randn(16, 3, 4, 4) * 5 + 2)
    >>> abs(y.mean().item()) < 1e-5, bool(layer.initialized)
    (True, True)
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.logs = torch.nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        """Set the parameters from the batch ``x``; marks the layer initialised."""
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        # Floor the std: a channel that is constant in the init batch (a silent roll) must not
        # get a scale of 1e6 that explodes every later batch.
        std = x.std(dim=(0, 2, 3), keepdim=True, unbiased=False).clamp_min(1e-2)
        self.bias.copy_(-mean)
        self.logs.copy_(-torch.log(std))
        self.initialized.fill_(True)

    def _logdet(self, x: torch.Tensor) -> torch.Tensor:
        return (self.logs.sum() * x.shape[2] * x.shape[3]).expand(x.shape[0])

    def forward(self, x: torch.Tensor, h: object = None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.training and not bool(self.initialized):
            self.initialize(x)
        return (x + self.bias) * torch.exp(self.logs), self._logdet(x)

    def inverse(self, y: torch.Tensor, h: object = None) -> tuple[torch.Tensor, torch.Tensor]:
        return y * torch.exp(-self.logs) - self.bias, -self._logdet(y)


class InvConv1x1(Transform):
    """Invertible 1x1 convolution, LU-decomposed: ``W = P L (U + diag(sign * exp(log_s)))``.

    ``P`` and the signs are fixed buffers; ``L`` (unit lower), ``U`` (strict upper) and ``log_s``
    are learned, which makes the log-determinant ``P*T*sum(log_s)`` cheap. Starts at a random
    rotation.

    >>> layer = InvConv1x1(4)
    >>> x = torch.randn(2, 4, 3, 3)
    >>> y, _ = layer(x)
    >>> torch.allclose(layer.inverse(y)[0], x, atol=1e-5)
    True
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        w = torch.linalg.qr(torch.randn(channels, channels))[0]
        perm, lower, upper = torch.linalg.lu(w)
        s = torch.diagonal(upper)
        self.register_buffer("perm", perm)
        self.register_buffer("sign_s", torch.sign(s))
        self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), -1))
        self.register_buffer("eye", torch.eye(channels))
        self.lower = torch.nn.Parameter(lower)
        self.upper = torch.nn.Parameter(torch.triu(upper, 1))
        self.log_s = torch.nn.Parameter(torch.log(s.abs()))

    def weight(self) -> torch.Tensor:
        """The current ``(C, C)`` matrix."""
        lower = self.lower * self.lower_mask + self.eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign_s * torch.exp(self.log_s))
        return self.perm @ lower @ upper

    def _logdet(self, x: torch.Tensor) -> torch.Tensor:
        return (self.log_s.sum() * x.shape[2] * x.shape[3]).expand(x.shape[0])

    def forward(self, x: torch.Tensor, h: object = None) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.einsum("ij,bjpt->bipt", self.weight(), x), self._logdet(x)

    def inverse(self, y: torch.Tensor, h: object = None) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.weight()
        # Invert in double: the round trip must hold to 1e-5 even after training skews W.
        w_inv = torch.linalg.inv(w.double()).to(w.dtype)
        return torch.einsum("ij,bjpt->bipt", w_inv, y), -self._logdet(y)


class AffineCoupling(Coupling):
    """Affine coupling: the second half of the channels is scaled and shifted by a conditioned net.

    ``y_b = (x_b + shift(x_a, h)) * exp(log_s(x_a, h))`` with ``log_s`` tanh-bounded to
    ``(-2, 2)``. The net (:class:`~musicflow.flows.nets.CondNet`; ``net`` holds its keyword
    settings ``cond_dim``, ``pitch_channels`` and ``blocks``) sees ``x_a`` concatenated with ``h``'s
    pitch map and is FiLM-modulated by ``h.vec`` in every block; its last layer is zero, so the
    coupling starts as the identity.

    >>> layer = AffineCoupling(4, hidden=8, cond_dim=3, pitch_channels=2)
    >>> h = CondFeatures(torch.randn(1, 3), torch.randn(1, 2, 6))
    >>> x = torch.randn(1, 4, 6, 4)
    >>> torch.equal(layer(x, h)[0], x)
    True
    """

    def __init__(self, channels: int, hidden: int = 32, **net: int) -> None:
        super().__init__(channels, 2, partial(CondNet, hidden=hidden, **net))

    def elementwise(
        self, b: torch.Tensor, params: torch.Tensor, inverse: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        shift, log_s = params[:, 0::2], soft_clamp(params[:, 1::2], SCALE_BOUND)
        if inverse:
            return b * torch.exp(-log_s) - shift, -_per_sample(log_s)
        return (b + shift) * torch.exp(log_s), _per_sample(log_s)


class Squeeze(Transform):
    """Fold each 2x2 (pitch, time) patch into channels: ``(C, P, T) -> (4C, P/2, T/2)``.

    >>> y, _ = Squeeze()(torch.zeros(1, 2, 8, 4))
    >>> y.shape
    torch.Size([1, 8, 4, 2])
    """

    def forward(self, x: torch.Tensor, h: object = None) -> tuple[torch.Tensor, torch.Tensor]:
        b, c, p, t = x.shape
        if p % 2 or t % 2:
            raise MusicflowError(f"Squeeze: pitch and time sizes must be even, got {p}x{t}")
        y = x.reshape(b, c, p // 2, 2, t // 2, 2).permute(0, 1, 3, 5, 2, 4)
        return y.reshape(b, 4 * c, p // 2, t // 2), x.new_zeros(b)

    def inverse(self, y: torch.Tensor, h: object = None) -> tuple[torch.Tensor, torch.Tensor]:
        b, c4, p, t = y.shape
        x = y.reshape(b, c4 // 4, 2, 2, p, t).permute(0, 1, 4, 2, 5, 3)
        return x.reshape(b, c4 // 4, 2 * p, 2 * t), y.new_zeros(b)


class Split(Coupling):
    """Multi-scale split with a learned conditional prior on the factored-out half.

    ``(a, b) -> (a, eps)`` with ``eps = (b - mu) / sigma`` and ``(mu, log sigma)`` from a net over
    the kept half ``a`` and the condition (``net``: as for :class:`AffineCoupling`, one block by
    default). ``logdet = -sum(log sigma)``, so ``b``'s log-prob contribution is
    ``log N(eps; 0, I) + logdet``; the owning flow slices ``eps = y[:, keep:]`` off and the inverse
    turns any given (for sampling, drawn) ``eps`` back into ``b``.

    >>> layer = Split(4, hidden=8)
    >>> x = torch.randn(2, 4, 3, 3)
    >>> torch.equal(layer(x)[0], x)  # a zero-initialised prior is N(0, I)
    True
    """

    net_name = "prior"  # the name shipped checkpoints keep its weights under

    def __init__(self, channels: int, hidden: int = 32, *, blocks: int = 1, **net: int) -> None:
        super().__init__(channels, 2, partial(CondNet, hidden=hidden, blocks=blocks, **net))

    @property
    def keep(self) -> int:
        """Channels that stay in the flow; the rest leave it as ``eps``."""
        return self.half

    def elementwise(
        self, b: torch.Tensor, params: torch.Tensor, inverse: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return _standardise(b, params, inverse)


class ConditionalPrior(Transform):
    """Standardise the top-level latent under a prior that depends on the condition only.

    ``eps = (z - mu(h)) / sigma(h)``, with ``(mu, log sigma)`` from a net over a learned canvas of
    shape ``(canvas, P, T)`` (absolute pitch and beat position) plus the condition (``net``: as for
    :class:`AffineCoupling`, one block by default).

    >>> layer = ConditionalPrior(4, pitches=3, steps=2, hidden=8)
    >>> z = torch.randn(2, 4, 3, 2)
    >>> torch.equal(layer.inverse(layer(z)[0])[0], z)
    True
    """

    def __init__(self, channels: int, pitches: int, steps: int, hidden: int = 32, *, blocks: int = 1,
                 canvas: int = 4, **net: int) -> None:
        super().__init__()
        self.canvas = torch.nn.Parameter(0.1 * torch.randn(1, canvas, pitches, steps))
        self.net = CondNet(canvas, 2 * channels, hidden, blocks=blocks, **net)

    def _params(self, batch: int, h: CondFeatures | None) -> torch.Tensor:
        return self.net(self.canvas.expand(batch, -1, -1, -1), h)

    def forward(self, x: torch.Tensor, h: CondFeatures | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return _standardise(x, self._params(x.shape[0], h), inverse=False)

    def inverse(self, y: torch.Tensor, h: CondFeatures | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return _standardise(y, self._params(y.shape[0], h), inverse=True)
