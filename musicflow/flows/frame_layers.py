"""The layers of :class:`~musicflow.flows.frame.FrameFlow`: flows over one frame of keys, a vector
``(N, keys)``, every net an MLP that also reads the frame's condition ``c`` ``(N, cond_dim)``.

* :class:`FrameCoupling`: the affine coupling, on :class:`~musicflow.flows.coupling.Coupling`;
* :class:`Permutation` and :class:`LUMixing`: what mixes the keys between couplings;
* :class:`FrameDequantizer`: the learned ``q(u | x, c)``;
* :class:`FrameBase`: the conditional base density (a Gaussian or a logistic mixture).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from musicflow.flows.base import Transform
from musicflow.flows.coupling import Coupling
from musicflow.flows.layers import SCALE_BOUND, InvConv1x1
from musicflow.flows.nets import soft_clamp
from musicflow.flows.rng import draw


class ConditionedMLP(nn.Sequential):
    """An :func:`mlp` called as ``net(a, c)``: it reads ``a`` and the condition ``c`` side by side."""

    def forward(self, a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return super().forward(torch.cat([a, c], dim=1))


def mlp(n_in: int, hidden: int, n_out: int, zero: bool = True,
        kind: type[nn.Sequential] = nn.Sequential) -> nn.Sequential:
    """Two hidden ReLU layers of ``hidden`` units, built as a ``kind``; with ``zero`` the last
    layer starts at zero.

    >>> net = mlp(3, 8, 2)
    >>> net(torch.ones(1, 3)).tolist()
    [[0.0, 0.0]]
    """
    net = kind(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
               nn.Linear(hidden, n_out))
    if zero:  # the owning layer starts as the identity
        nn.init.zeros_(net[-1].weight)
        nn.init.zeros_(net[-1].bias)
    return net


class FrameCoupling(Coupling):
    """Affine coupling on a vector: the second half scaled and shifted given the first and ``c``,
    ``y_b = x_b * exp(log_s) + shift``.

    >>> layer = FrameCoupling(4, hidden=8, cond_dim=3)
    >>> x, c = torch.randn(2, 4), torch.randn(2, 3)
    >>> torch.equal(layer(x, c)[0], x)  # a zero last layer: the identity
    True
    """

    def __init__(self, keys: int, hidden: int, cond_dim: int) -> None:
        super().__init__(keys, 2, lambda half, out: mlp(half + cond_dim, hidden, out, kind=ConditionedMLP))

    def elementwise(
        self, b: torch.Tensor, params: torch.Tensor, inverse: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        shift, log_s = params.chunk(2, dim=1)
        log_s = soft_clamp(log_s, SCALE_BOUND)
        if inverse:
            return (b - shift) * torch.exp(-log_s), -log_s.sum(dim=1)
        return b * torch.exp(log_s) + shift, log_s.sum(dim=1)


class FrameDequantizer(nn.Module):
    """``q(u | x, c)`` per key: an affine map of Gaussian noise given ``(x, c)``, two couplings
    between the two halves of the keys, then a sigmoid into ``(0, 1)``."""

    def __init__(self, keys: int, hidden: int, cond_dim: int) -> None:
        super().__init__()
        self.keys, self.half = keys, keys // 2
        self.base = mlp(keys + cond_dim, hidden, 2 * keys)
        self.couplings = nn.ModuleList(mlp(self.half + keys + cond_dim, hidden, 2 * self.half)
                                       for _ in range(2))

    def forward(
        self, x: torch.Tensor, c: torch.Tensor, eps: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(u, log q(u | x, c))`` for noise ``eps ~ N(0, I)`` shaped like ``x``."""
        shift, log_s = self.base(torch.cat([x, c], dim=1)).chunk(2, dim=1)
        log_s = soft_clamp(log_s, 2.0)
        z = eps * torch.exp(log_s) + shift
        logdet = log_s.sum(dim=1)
        for i, net in enumerate(self.couplings):
            first, second = z[:, : self.half], z[:, self.half :]
            a, b = (first, second) if i % 2 == 0 else (second, first)
            sh, ls = net(torch.cat([a, x, c], dim=1)).chunk(2, dim=1)
            ls = soft_clamp(ls, 2.0)
            b = b * torch.exp(ls) + sh
            z = torch.cat([a, b] if i % 2 == 0 else [b, a], dim=1)
            logdet = logdet + ls.sum(dim=1)
        u = torch.sigmoid(z)
        logdet = logdet + (F.logsigmoid(z) + F.logsigmoid(-z)).sum(dim=1)
        log_eps = -0.5 * (eps.pow(2) + math.log(2 * math.pi)).sum(dim=1)
        return u, log_eps - logdet


class Permutation(Transform):
    """A fixed random permutation of the keys (seeded, so rebuilt identically from the config)."""

    def __init__(self, keys: int, seed: int) -> None:
        super().__init__()
        perm = torch.randperm(keys, generator=torch.Generator().manual_seed(seed))
        self.register_buffer("perm", perm)
        self.register_buffer("inv", torch.argsort(perm))

    def forward(self, x: torch.Tensor, h: object = None) -> tuple[torch.Tensor, torch.Tensor]:
        return x[:, self.perm], x.new_zeros(x.shape[0])

    def inverse(self, y: torch.Tensor, h: object = None) -> tuple[torch.Tensor, torch.Tensor]:
        return y[:, self.inv], y.new_zeros(y.shape[0])


class LUMixing(Transform):
    """:class:`~musicflow.flows.layers.InvConv1x1` over the keys of a vector."""

    def __init__(self, keys: int) -> None:
        super().__init__()
        self.conv = InvConv1x1(keys)

    def forward(self, x: torch.Tensor, h: object = None) -> tuple[torch.Tensor, torch.Tensor]:
        y, ld = self.conv(x[:, :, None, None])
        return y[:, :, 0, 0], ld

    def inverse(self, y: torch.Tensor, h: object = None) -> tuple[torch.Tensor, torch.Tensor]:
        x, ld = self.conv.inverse(y[:, :, None, None])
        return x[:, :, 0, 0], ld


class FrameBase(nn.Module):
    """The conditional base density per dimension: a Gaussian or a mixture of logistics whose
    parameters come from ``c``. A mixture can be bimodal, as a binary key in logit space is."""

    def __init__(self, keys: int, hidden: int, cond_dim: int, components: int) -> None:
        super().__init__()
        self.keys, self.m = keys, components
        self.net = mlp(cond_dim, hidden, (3 * components if components else 2) * keys)

    def _params(self, c: torch.Tensor):
        out = self.net(c).reshape(c.shape[0], -1, self.keys)
        if not self.m:
            return out[:, 0], soft_clamp(out[:, 1], 3.0)
        logits, mean, log_s = out.split(self.m, dim=1)
        # Spread the initial means so the components start apart.
        mean = mean + torch.linspace(-2, 2, self.m, device=c.device)[None, :, None]
        return F.log_softmax(logits, dim=1), mean, soft_clamp(log_s, 3.0)

    def log_prob(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """``log p(z | c)`` summed over dimensions, ``(N,)``."""
        if not self.m:
            mean, log_s = self._params(c)
            e = (z - mean) * torch.exp(-log_s)
            return (-0.5 * (e.pow(2) + math.log(2 * math.pi)) - log_s).sum(dim=1)
        log_pi, mean, log_s = self._params(c)
        t = (z[:, None] - mean) * torch.exp(-log_s)
        comp = F.logsigmoid(t) + F.logsigmoid(-t) - log_s  # the logistic log-density
        return torch.logsumexp(log_pi + comp, dim=1).sum(dim=1)

    def sample(self, c: torch.Tensor, temperature: float, generator: torch.Generator | None):
        if not self.m:
            mean, log_s = self._params(c)
            noise = draw(torch.randn, mean.shape, generator=generator, device=c.device)
            return mean + temperature * torch.exp(log_s) * noise
        log_pi, mean, log_s = self._params(c)
        u = draw(torch.rand, log_pi.shape[0], 1, self.keys, generator=generator, device=c.device)
        k = (log_pi.exp().cumsum(dim=1) < u).sum(dim=1, keepdim=True).clamp_max(self.m - 1)
        mu, ls = mean.gather(1, k)[:, 0], log_s.gather(1, k)[:, 0]
        v = draw(torch.rand, mu.shape, generator=generator, device=c.device).clamp(1e-6, 1 - 1e-6)
        return mu + temperature * torch.exp(ls) * (torch.log(v) - torch.log1p(-v))
