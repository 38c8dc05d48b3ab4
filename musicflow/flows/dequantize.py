"""From binary piano rolls to continuous values and back.

A flow needs a density on a continuum, a roll is binary. Each cell ``x in {0, 1}`` is spread over
its own half of the unit interval, ``v = (x + u) / 2`` with ``u in [0, 1)``, so ``x = 0`` lives in
``[0, 0.5)`` and ``x = 1`` in ``[0.5, 1)``; :func:`quantize` thresholds ``v`` at the midpoint 0.5,
and :func:`centre` uses ``u = 0.5`` (the middle of the cell) for deterministic encoding.

With ``p`` the model's density of ``y = x + u`` and ``q(u | x)`` any dequantizing distribution,

    log P(x) = log E_q[p(x + u) / q(u | x)] >= E_q[log p(x + u) - log q(u | x)],

so the negative of that bound, in bits per dimension, is an upper bound on the bits per dimension
of the discrete roll (Theis et al. 2016; Ho et al., "Flow++", 2019). :class:`UniformDequantizer`
takes ``q = U(0, 1)`` (``log q = 0``); :class:`VariationalDequantizer` learns ``q(u | x, cond)``
with a small conditional flow, which tightens the bound.

The flow itself works in logit space, ``w = logit(alpha + (1 - 2 alpha) v)`` (:class:`Logit`).
``alpha = 0.05`` (RealNVP's choice) keeps ``w`` within about +-2.9, so the flow never has to fit
the infinitely long tails that cells touching 0 or 1 would have; the price is that decoded values
can fall up to ``alpha / (1 - 2 alpha)`` outside ``(0, 1)``, which decoding clamps.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from musicflow.flows import rng
from musicflow.flows.base import Transform
from musicflow.flows.nets import CondFeatures, CondNet, soft_clamp

DEFAULT_ALPHA = 0.05


def quantize(v: torch.Tensor) -> torch.Tensor:
    """Binary roll from continuous values: 1 where ``v >= 0.5``.

    >>> quantize(torch.tensor([0.1, 0.5, 0.9]))
    tensor([0., 1., 1.])
    """
    return (v >= 0.5).to(v.dtype)


def centre(x: torch.Tensor) -> torch.Tensor:
    """The middle of each binary cell, ``(x + 0.5) / 2``: 0.25 for 0 and 0.75 for 1.

    >>> centre(torch.tensor([0.0, 1.0]))
    tensor([0.2500, 0.7500])
    """
    return (x + 0.5) / 2


def draw_noise(draw, like: torch.Tensor, generator: torch.Generator | None, shared: bool = False
               ) -> torch.Tensor:
    """``draw`` (``torch.rand`` or ``torch.randn``) of ``like``'s shape, dtype and device. With
    ``shared``, one row is drawn and repeated over the batch, so that a window's estimate does
    not depend on its place in the batch or on the other windows in it.

    >>> n = draw_noise(torch.randn, torch.zeros(3, 2), torch.Generator().manual_seed(0), shared=True)
    >>> bool((n == n[:1]).all())
    True
    """
    shape = (1, *like.shape[1:]) if shared else like.shape
    noise = rng.draw(draw, shape, generator=generator, device=like.device, dtype=like.dtype)
    return noise.expand(like.shape)


def _normal_log_prob(eps: torch.Tensor) -> torch.Tensor:
    return -0.5 * (eps.pow(2) + math.log(2 * math.pi)).flatten(1).sum(dim=1)


class Logit(Transform):
    """``w = logit(alpha + (1 - 2 alpha) v)`` elementwise, ``v in [0, 1]``.

    >>> layer = Logit(0.05)
    >>> v = torch.rand(2, 2, 4, 4)
    >>> torch.allclose(layer.inverse(layer(v)[0])[0], v, atol=1e-6)
    True
    """

    def __init__(self, alpha: float = DEFAULT_ALPHA) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, v: torch.Tensor, h: object = None) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.alpha + (1 - 2 * self.alpha) * v
        w = torch.log(s) - torch.log1p(-s)
        logdet = math.log(1 - 2 * self.alpha) - torch.log(s) - torch.log1p(-s)
        return w, logdet.flatten(1).sum(dim=1)

    def inverse(self, w: torch.Tensor, h: object = None) -> tuple[torch.Tensor, torch.Tensor]:
        v = (torch.sigmoid(w) - self.alpha) / (1 - 2 * self.alpha)
        # d sigmoid / dw = sigmoid(w) sigmoid(-w); written with logsigmoid for stability.
        logdet = F.logsigmoid(w) + F.logsigmoid(-w) - math.log(1 - 2 * self.alpha)
        return v, logdet.flatten(1).sum(dim=1)


class Dequantizer(nn.Module, abc.ABC):
    """``q(u | x, vec)``: draws the noise :attr:`noise` names and maps it to ``u``.

    ``forward(x, vec, generator, shared)`` returns ``(u, log q(u | x))``, shapes ``x.shape`` and
    ``(B,)``; ``shared``: one draw for every batch row (see :func:`draw_noise`). Subclasses
    implement :meth:`from_noise`.
    """

    #: ``torch.rand`` or ``torch.randn``: what :meth:`forward` draws.
    noise: ClassVar[Callable[..., torch.Tensor]]

    def forward(
        self,
        x: torch.Tensor,
        vec: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        shared: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``u ~ q(u | x, vec)``; return ``u`` (shaped like ``x``) and ``log q`` ``(B,)``."""
        return self.from_noise(draw_noise(self.noise, x, generator, shared), x, vec)

    @abc.abstractmethod
    def from_noise(
        self, noise: torch.Tensor, x: torch.Tensor, vec: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(u, log q(u | x))`` for a draw ``noise`` shaped like ``x``."""


class UniformDequantizer(Dequantizer):
    """``u ~ U(0, 1)`` independently per cell, ``log q(u | x) = 0``.

    >>> u, log_q = UniformDequantizer()(torch.zeros(3, 2, 4, 4))
    >>> u.shape, log_q.tolist()
    (torch.Size([3, 2, 4, 4]), [0.0, 0.0, 0.0])
    """

    noise = staticmethod(torch.rand)

    def from_noise(
        self, noise: torch.Tensor, x: torch.Tensor, vec: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return noise, x.new_zeros(x.shape[0])


class VariationalDequantizer(Dequantizer):
    """Learned ``q(u | x, cond)`` (Flow++): a small conditional flow from ``N(0, I)`` to ``(0,1)``.

    ``eps ~ N(0, I)`` of the roll's shape goes through an elementwise affine map whose shift and
    scale come from a net over ``x`` (and FiLM from the condition vector ``vec``), then
    ``2 * steps`` affine couplings that alternately rescale the onset channel given the sustain
    channel and vice versa (both nets also see ``x``), and finally a sigmoid into ``(0, 1)``.
    ``log q(u | x) = log N(eps) - log|det du/deps|``.

    >>> deq = VariationalDequantizer(cond_dim=3, hidden=8)
    >>> u, log_q = deq(torch.ones(2, 2, 4, 4), torch.zeros(2, 3))
    >>> bool(((u > 0) & (u < 1)).all()), log_q.shape
    (True, torch.Size([2]))
    """

    noise = staticmethod(torch.randn)

    def __init__(self, cond_dim: int = 0, hidden: int = 16, steps: int = 2, blocks: int = 1):
        super().__init__()
        self.base = CondNet(2, 4, hidden, cond_dim=cond_dim, blocks=blocks)
        self.couplings = nn.ModuleList(
            CondNet(3, 2, hidden, cond_dim=cond_dim, blocks=blocks) for _ in range(2 * steps)
        )

    def transform(
        self, eps: torch.Tensor, x: torch.Tensor, vec: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Map noise ``eps`` to ``u`` given the roll ``x``; returns ``(u, log|det du/deps|)``."""
        h = CondFeatures(vec)
        x = x.to(eps.dtype)
        out = self.base(x, h)
        log_s = soft_clamp(out[:, 2:], 2.0)
        z = eps * torch.exp(log_s) + out[:, :2]
        logdet = log_s.flatten(1).sum(dim=1)
        for i, net in enumerate(self.couplings):
            k = i % 2
            this, other = z[:, k : k + 1], z[:, 1 - k : 2 - k]
            o = net(torch.cat([other, x], dim=1), h)
            log_s = soft_clamp(o[:, 1:], 2.0)
            this = this * torch.exp(log_s) + o[:, :1]
            z = torch.cat([this, other] if k == 0 else [other, this], dim=1)
            logdet = logdet + log_s.flatten(1).sum(dim=1)
        u = torch.sigmoid(z)
        logdet = logdet + (F.logsigmoid(z) + F.logsigmoid(-z)).flatten(1).sum(dim=1)
        return u, logdet

    def from_noise(
        self, noise: torch.Tensor, x: torch.Tensor, vec: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        u, logdet = self.transform(noise, x, vec)
        return u, _normal_log_prob(noise) - logdet


class HalfLineDequantizer(nn.Module):
    """Binary cells spread over the two half-lines with a density that vanishes at their border.

    ``y = (2x - 1) * scale * r`` with ``r`` Rayleigh-distributed (density ``r exp(-r^2 / 2)``):
    an off cell lives on ``y < 0``, an on cell on ``y > 0``, and ``x = [y > 0]``. The supports are
    disjoint, so ``log P(x) >= E_q[log p(y) - log q(y | x)]`` as for any dequantization, and the bound
    is tight when the model's density on each half-line is ``P(x) q(y | x)``. Unlike uniform
    dequantization in logit space, whose density *peaks* at the cell border and jumps there by
    ``P(1) / P(0)``, this target density falls continuously to zero at the border on both sides: a
    smooth vector field can approach it, and flow matching (which cannot train a variational dequantizer)
    can train towards a tight bound. There is no logit map: ``y`` is already on the whole line.

    >>> deq = HalfLineDequantizer(1.0)
    >>> x = torch.tensor([[0.0, 1.0, 1.0]])
    >>> y, log_q = deq(x, generator=torch.Generator().manual_seed(0))
    >>> bool(((y > 0).float() == x).all()), tuple(log_q.shape)
    (True, (1,))
    >>> quantize(deq.to_unit(deq.centre(x)))
    tensor([[0., 1., 1.]])
    """

    #: The Rayleigh median, ``sqrt(2 ln 2)``: where :meth:`centre` puts a cell.
    MEDIAN = math.sqrt(2 * math.log(2))

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = float(scale)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(y, log q(y | x))`` for binary ``x``: one draw per cell, ``log q`` summed per row."""
        # u = 0 would put a cell on the border itself (an off cell read as on): keep u > 0.
        u = draw_noise(torch.rand, x, generator).clamp_min(torch.finfo(x.dtype).tiny)
        r = torch.sqrt(-2 * torch.log1p(-u))  # inverse CDF of the Rayleigh distribution
        log_q = (torch.log(r) - 0.5 * r.pow(2) - math.log(self.scale)).flatten(1).sum(1)
        return (2 * x - 1) * self.scale * r, log_q

    def centre(self, x: torch.Tensor) -> torch.Tensor:
        """The median of each cell's distribution: deterministic encoding."""
        return (2 * x - 1) * self.scale * self.MEDIAN

    def to_unit(self, y: torch.Tensor) -> torch.Tensor:
        """``sigmoid(y / scale)``: values in ``(0, 1)`` that :func:`quantize` reads as ``[y >= 0]``."""
        return torch.sigmoid(y / self.scale)
