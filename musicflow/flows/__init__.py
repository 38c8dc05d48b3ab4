"""Flows over piano-roll windows: one :class:`Flow` interface, Glow and the neural-ODE CNF.

>>> import torch
>>> from musicflow.flows import Condition, Glow, GlowConfig
>>> flow = Glow(GlowConfig(pitches=8, steps=8, n_genres=2, depth=1, hidden=8))
>>> flow.sample(1, Condition(torch.tensor([[1.0, 0.0]]))).shape
torch.Size([1, 2, 8, 8])
"""

from __future__ import annotations

from musicflow.flows.autoregressive import PitchAutoregressive
from musicflow.flows.base import Condition, Flow, Transform
from musicflow.flows.cnf import CNF, CNFConfig
from musicflow.flows.coupling import Coupling
from musicflow.flows.dequantize import (
    Logit,
    UniformDequantizer,
    VariationalDequantizer,
    centre,
    quantize,
)
from musicflow.flows.glow import Glow, GlowConfig
from musicflow.flows.layers import (
    ActNorm,
    AffineCoupling,
    ConditionalPrior,
    InvConv1x1,
    Split,
    Squeeze,
)
from musicflow.flows.nets import CondFeatures, CondNet, ContextEncoder
from musicflow.flows.odefunc import Solver, VectorField
from musicflow.flows.splines import SplineCoupling, rq_spline

__all__ = [
    "ActNorm",
    "AffineCoupling",
    "SplineCoupling",
    "rq_spline",
    "CNF",
    "CNFConfig",
    "CondFeatures",
    "CondNet",
    "Condition",
    "ConditionalPrior",
    "ContextEncoder",
    "Coupling",
    "Flow",
    "Glow",
    "GlowConfig",
    "InvConv1x1",
    "Logit",
    "PitchAutoregressive",
    "Solver",
    "Split",
    "Squeeze",
    "Transform",
    "UniformDequantizer",
    "VariationalDequantizer",
    "VectorField",
    "centre",
    "quantize",
]
