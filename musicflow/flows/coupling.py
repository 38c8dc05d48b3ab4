"""The coupling transform every coupling layer of musicflow is built on.

A coupling splits its input along the channels (dimension 1) into ``(a, b)``, lets a conditioner
net read ``a`` and the condition, and maps ``b`` elementwise with the parameters the net gives;
``a`` passes unchanged, so the Jacobian is triangular and the inverse is the inverse of the
elementwise map given the same parameters. :class:`Coupling` does the split, the net call and the
recombination once; a subclass supplies only the elementwise map (:meth:`Coupling.elementwise`):
an affine map (:class:`~musicflow.flows.layers.AffineCoupling`), a standardisation under a learned
prior (:class:`~musicflow.flows.layers.Split`) or a rational-quadratic spline
(:class:`~musicflow.flows.splines.SplineCoupling`).

References: Dinh et al., "Density estimation using Real NVP" (2017); Durkan et al., "Neural Spline
Flows" (2019), whose ``CouplingTransform`` (nflows) has the same shape.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import ClassVar

import torch
from torch import nn

from musicflow.flows.base import Transform


class Coupling(Transform, abc.ABC):
    """``(a, b) -> (a, f(b; net(a, h)))`` with ``a`` the first ``channels // 2`` channels.

    ``make_net(in_channels, out_channels)`` builds the conditioner: it reads ``a`` (and ``h``) and
    gives ``params`` numbers for each channel of ``b``, ``out_channels = params * (channels -
    channels // 2)``. Subclasses implement :meth:`elementwise`.

    >>> from musicflow.flows.layers import AffineCoupling
    >>> layer = AffineCoupling(4, hidden=8)
    >>> x = torch.randn(2, 4, 3, 3)
    >>> isinstance(layer, Coupling), layer.half, torch.equal(layer.inverse(layer(x)[0])[0], x)
    (True, 2, True)
    """

    #: The attribute the conditioner is stored under: the name its weights carry in a state dict.
    net_name: ClassVar[str] = "net"

    def __init__(self, channels: int, params: int, make_net: Callable[[int, int], nn.Module]) -> None:
        super().__init__()
        self.half = channels // 2
        self.add_module(self.net_name, make_net(self.half, params * (channels - self.half)))

    @property
    def conditioner(self) -> nn.Module:
        """The net that gives the elementwise map its parameters."""
        return getattr(self, self.net_name)

    @abc.abstractmethod
    def elementwise(
        self, b: torch.Tensor, params: torch.Tensor, inverse: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Map the second part ``b`` (or, with ``inverse``, undo the map) given the net's output
        ``params``; return the result and the log-determinant of what was applied, ``(B,)``."""

    def _couple(self, x: torch.Tensor, h: object, inverse: bool) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = x[:, : self.half], x[:, self.half :]
        y, logdet = self.elementwise(b, self.conditioner(a, h), inverse)
        return torch.cat([a, y], dim=1), logdet

    def forward(self, x: torch.Tensor, h: object = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self._couple(x, h, inverse=False)

    def inverse(self, y: torch.Tensor, h: object = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self._couple(y, h, inverse=True)
