"""Monotone rational-quadratic splines and the coupling layer built on them.

An affine coupling can only shift and scale each dimension given the others, so a Gaussian stays
unimodal along it; which pitch a melody moves to next is a choice among a few separate values, and
an affine flow spreads its mass between them (see ``checkpoints/README.md``). A monotone spline with
``K`` bins can bend one Gaussian dimension into several modes, and it is still exactly invertible
with a closed-form derivative.

Reference: Durkan, Bekasov, Murray & Papamakarios, "Neural Spline Flows" (NeurIPS 2019), whose
rational-quadratic form (Gregory & Delbourgo 1982) is used here with identity tails outside
``[-bound, bound]``.
"""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F

from musicflow.flows.coupling import Coupling
from musicflow.flows.nets import CondNet

MIN_BIN = 1e-2
MIN_DERIVATIVE = 1e-2
# softplus(_UNIT + 0) + MIN_DERIVATIVE == 1: a zero-initialised net gives the identity spline.
_UNIT = math.log(math.expm1(1.0 - MIN_DERIVATIVE))


def _knots(raw: torch.Tensor, bound: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Bin sizes ``(..., K)`` and knot positions ``(..., K+1)`` spanning ``[-bound, bound]``."""
    k = raw.shape[-1]
    size = MIN_BIN + (1 - MIN_BIN * k) * torch.softmax(raw, dim=-1)
    knots = F.pad(torch.cumsum(size, dim=-1), (1, 0)) * 2 * bound - bound
    knots = torch.cat([knots[..., :1].clamp(max=-bound), knots[..., 1:-1],
                       knots[..., -1:].clamp(min=bound)], dim=-1)
    return knots[..., 1:] - knots[..., :-1], knots


def rq_spline(
    x: torch.Tensor,
    widths: torch.Tensor,
    heights: torch.Tensor,
    derivatives: torch.Tensor,
    bound: float = 5.0,
    inverse: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply an elementwise monotone rational-quadratic spline (or its inverse) to ``x``.

    ``widths`` and ``heights`` are unnormalised ``(*x.shape, K)``; ``derivatives`` are the
    unconstrained slopes at the ``K - 1`` inner knots ``(*x.shape, K - 1)``. Outside
    ``[-bound, bound]`` the map is the identity. Returns ``(y, log|dy/dx|)`` elementwise; for the
    inverse the log-derivative is that of the inverse map.

    >>> x = torch.linspace(-6, 6, 7)
    >>> w, h, d = torch.randn(7, 4), torch.randn(7, 4), torch.randn(7, 3)
    >>> y, ld = rq_spline(x, w, h, d)
    >>> back, ld_inv = rq_spline(y, w, h, d, inverse=True)
    >>> torch.allclose(back, x, atol=1e-5), torch.allclose(ld, -ld_inv, atol=1e-5)
    (True, True)
    """
    inside = (x > -bound) & (x < bound)
    xin = x.clamp(-bound, bound)
    bw, xk = _knots(widths, bound)
    bh, yk = _knots(heights, bound)
    ones = torch.ones_like(derivatives[..., :1])
    d = torch.cat([ones, F.softplus(derivatives + _UNIT) + MIN_DERIVATIVE, ones], dim=-1)

    knots = yk if inverse else xk
    idx = (torch.searchsorted(knots[..., 1:-1].contiguous(), xin[..., None].contiguous()))
    idx = idx.clamp(0, widths.shape[-1] - 1)

    def pick(t: torch.Tensor) -> torch.Tensor:
        return t.gather(-1, idx)[..., 0]

    x0, y0, w, h = pick(xk), pick(yk), pick(bw), pick(bh)
    d0, d1 = pick(d), d[..., 1:].gather(-1, idx)[..., 0]
    s = h / w
    if inverse:
        dy = xin - y0
        a = h * (s - d0) + dy * (d1 + d0 - 2 * s)
        b = h * d0 - dy * (d1 + d0 - 2 * s)
        c = -s * dy
        disc = (b.pow(2) - 4 * a * c).clamp_min(0)
        xi = (2 * c / (-b - disc.sqrt())).clamp(0, 1)
    else:
        xi = ((xin - x0) / w).clamp(0, 1)
    t = xi * (1 - xi)
    denom = s + (d1 + d0 - 2 * s) * t
    deriv = s.pow(2) * (d1 * xi.pow(2) + 2 * s * t + d0 * (1 - xi).pow(2)) / denom.pow(2)
    logd = torch.log(deriv)
    if inverse:
        out = x0 + xi * w
        logd = -logd
    else:
        out = y0 + h * (s * xi.pow(2) + d0 * t) / denom
    return torch.where(inside, out, x), torch.where(inside, logd, torch.zeros_like(logd))


def packed_rq_spline(
    x: torch.Tensor, raw: torch.Tensor, bound: float, inverse: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`rq_spline` with its ``K`` widths, ``K`` heights and ``K - 1`` inner derivatives
    packed, in that order, in the last axis of ``raw`` ``(*x.shape, 3K - 1)``: what a net that
    sets a spline's knots gives.

    >>> y, ld = packed_rq_spline(torch.tensor([0.5]), torch.zeros(1, 11), bound=2.0)
    >>> y.tolist(), ld.tolist()  # zero parameters: equal bins and unit slopes, the identity
    ([0.5], [0.0])
    """
    k = (raw.shape[-1] + 1) // 3
    return rq_spline(x, raw[..., :k], raw[..., k : 2 * k], raw[..., 2 * k :], bound, inverse)


class SplineCoupling(Coupling):
    """Coupling whose second half of the channels passes through a rational-quadratic spline with
    ``bins`` bins, its knots set per cell by a conditioned net of the first half (the same
    :class:`~musicflow.flows.nets.CondNet` as :class:`~musicflow.flows.layers.AffineCoupling`,
    FiLM in every block, pitch map at the input; ``net`` holds its keyword settings
    ``cond_dim``, ``pitch_channels`` and ``blocks``). The net's last layer is zero, so the layer
    starts as the identity.

    >>> from musicflow.flows.nets import CondFeatures
    >>> layer = SplineCoupling(4, hidden=8, cond_dim=3, pitch_channels=2, bins=4)
    >>> h = CondFeatures(torch.randn(1, 3), torch.randn(1, 2, 6))
    >>> x = torch.randn(1, 4, 6, 4)
    >>> torch.allclose(layer(x, h)[0], x, atol=1e-5)
    True
    """

    def __init__(self, channels: int, hidden: int = 32, *, bins: int = 8, bound: float = 5.0,
                 **net: int) -> None:
        super().__init__(channels, 3 * bins - 1, partial(CondNet, hidden=hidden, **net))
        self.bins, self.bound = bins, bound

    def elementwise(
        self, b: torch.Tensor, params: torch.Tensor, inverse: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n, c, p, t = b.shape
        raw = params.view(n, c, 3 * self.bins - 1, p, t).permute(0, 1, 3, 4, 2)
        y, logd = packed_rq_spline(b, raw, self.bound, inverse)
        return y, logd.flatten(1).sum(dim=1)
