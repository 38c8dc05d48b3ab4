"""The pieces of a continuous normalizing flow: the vector field net and the ODE solves.

:class:`VectorField` is a convolutional net ``v(t, w | condition)`` over roll-shaped states.
:class:`Solver` names a torchdiffeq method with its tolerances or step count. :func:`flow` moves a
state along the field; :func:`flow_with_logdet` also integrates the instantaneous change of
variables, ``d log p(w(t)) / dt = -tr(dv/dw)`` (Chen et al. 2018), with the exact trace or
Hutchinson's estimator ``E[e^T (dv/dw) e]`` over several probes ``e`` (Grathwohl et al.,
"FFJORD", 2019), and optionally the kinetic-energy and Jacobian-norm integrals of Finlay et al.,
"How to train your neural ODE" (2020).

Every solve counts the field's evaluations (NFE), including those of the adjoint's backward pass.

>>> field = lambda t, w: -w
>>> z, dlogp, nfe = flow_with_logdet(field, torch.ones(1, 3), 1.0, 0.0, Solver("rk4", steps=4))
>>> round(dlogp.detach()[0, 0].item(), 3), nfe  # tr(dv/dw) = -3, integrated from t=1 back to 0
(3.0, 16)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from musicflow.errors import MusicflowError
from musicflow.flows.rng import draw

FIXED = ("euler", "midpoint", "heun2", "heun3", "rk4", "explicit_adams", "implicit_adams")
ONE_STEP = ("euler", "midpoint", "heun2", "heun3", "rk4")  # no memory of earlier steps: any grid will do
ADAPTIVE = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun")


@dataclass(frozen=True)
class Solver:
    """An ODE method over ``t in [0, 1]``: fixed-step methods take ``steps`` steps, adaptive ones
    keep the local error within ``rtol``/``atol``. ``adjoint`` solves backward for gradients in
    O(1) memory (torchdiffeq's ``odeint_adjoint``).

    ``spacing`` places a fixed-step method's steps at the times ``(i / steps) ** spacing``: 1 is
    equal steps, above 1 shorter steps near ``t = 0``, the noise end of a flow, where a few-step
    sampler errs most (the grid is the same whichever way a solve runs).

    >>> Solver("rk4", steps=8).evaluations_per_solve
    32
    >>> [round(t, 3) for t in Solver("midpoint", steps=4, spacing=2.0).grid(0.0, 1.0)]
    [0.0, 0.062, 0.25, 0.562, 1.0]
    """

    method: str = "dopri5"
    steps: int = 8
    rtol: float = 1e-5
    atol: float = 1e-5
    adjoint: bool = False
    spacing: float = 1.0

    def __post_init__(self) -> None:
        if self.method not in FIXED + ADAPTIVE:
            raise MusicflowError(f"solver method {self.method!r}: use one of {FIXED + ADAPTIVE}")
        if self.method in FIXED and (not isinstance(self.steps, int) or self.steps < 1):
            raise MusicflowError(f"solver steps must be a positive integer, got {self.steps!r}")
        if not (self.rtol > 0 and self.atol > 0):
            raise MusicflowError("solver rtol and atol must be positive")
        if isinstance(self.spacing, bool) or not (isinstance(self.spacing, (int, float))
                                                  and math.isfinite(self.spacing) and self.spacing > 0):
            raise MusicflowError(f"solver spacing must be a positive number, got {self.spacing!r}")
        if self.spacing != 1 and self.method not in ONE_STEP:
            # Adams methods weigh earlier steps as if all were equal; adaptive ones choose their own.
            raise MusicflowError(f"solver spacing {self.spacing!r}: only for {', '.join(ONE_STEP)}")

    @classmethod
    def parse(cls, text: str, **kw) -> Solver:
        """``"rk4:8"`` (a fixed-step method and its steps), ``"midpoint:4^1.6"`` (and the steps'
        :attr:`spacing`) or ``"dopri5"`` (an adaptive method).

        >>> Solver.parse("rk4:16").steps, Solver.parse("midpoint:4^1.6").spacing
        (16, 1.6)
        >>> Solver.parse("dopri5").method
        'dopri5'
        """
        method, _, steps = text.partition(":")
        steps, _, spacing = steps.partition("^")
        if method in FIXED and not steps.isdigit():
            raise MusicflowError(f"solver {text!r}: a fixed-step method needs its steps, e.g. {method}:8")
        if method in ADAPTIVE and (steps or "^" in text):
            raise MusicflowError(f"solver {text!r}: an adaptive method takes no step count or spacing")
        if "^" in text:
            try:
                kw["spacing"] = float(spacing)
            except ValueError:
                raise MusicflowError(f"solver {text!r}: the spacing after ^ must be a number") from None
        return cls(method, steps=int(steps) if steps else 8, **kw)

    def __str__(self) -> str:
        """The text :meth:`parse` reads back: ``"rk4:8"``, ``"midpoint:4^1.6"``, ``"dopri5"``."""
        if self.method not in FIXED:
            return self.method
        return f"{self.method}:{self.steps}" + (f"^{self.spacing:.12g}" if self.spacing != 1 else "")

    def grid(self, t0: float, t1: float) -> list[float]:
        """The times a fixed-step solve from ``t0`` to ``t1`` steps through (see :attr:`spacing`)."""
        lo, hi = min(t0, t1), max(t0, t1)
        ts = [lo + (hi - lo) * (i / self.steps) ** self.spacing for i in range(self.steps + 1)]
        return ts if t0 <= t1 else ts[::-1]

    @property
    def evaluations_per_solve(self) -> int | None:
        """NFE of one solve for fixed-step methods (``None``: adaptive, known only afterwards)."""
        per = {"euler": 1, "midpoint": 2, "heun2": 2, "heun3": 3, "rk4": 4}
        return per[self.method] * self.steps if self.method in per else None

    def solve(self, func: nn.Module, y0, t0: float, t1: float):
        """The state at ``t1`` of ``dy/dt = func(t, y)``, ``y(t0) = y0`` (a tensor or a tuple)."""
        first = y0[0] if isinstance(y0, tuple) else y0
        ts = torch.tensor([t0, t1], dtype=first.dtype, device=first.device)
        kw: dict = {"method": self.method, "rtol": self.rtol, "atol": self.atol}
        if self.method in FIXED and self.spacing != 1:
            # torchdiffeq's fixed-grid methods step through the output times when given no step size.
            ts = torch.tensor(self.grid(t0, t1), dtype=first.dtype, device=first.device)
            kw["options"] = {}
        elif self.method in FIXED:
            kw["options"] = {"step_size": abs(t1 - t0) / self.steps}
        # Imported here: torchdiffeq brings scipy, half a second that composing with any other model
        # would otherwise pay at start-up.
        from torchdiffeq import odeint, odeint_adjoint

        if self.adjoint:
            # The adjoint's own backward solve uses the same method and tolerances.
            kw["adjoint_options"] = dict(kw.get("options", {}))
            out = odeint_adjoint(func, y0, ts, **kw)
        else:
            out = odeint(func, y0, ts, **kw)
        return tuple(o[-1] for o in out) if isinstance(out, tuple) else out[-1]


def fourier_time(t: torch.Tensor, batch: int, n: int = 8) -> torch.Tensor:
    """Time ``t`` (a scalar or ``(B,)``) as ``(B, 2n)`` sines and cosines of ``pi * k * t``."""
    t = t.reshape(-1, 1).expand(batch, 1) if t.dim() == 0 or t.numel() == 1 else t.reshape(-1, 1)
    k = torch.arange(1, n + 1, device=t.device, dtype=t.dtype) * math.pi
    return torch.cat([torch.sin(k * t), torch.cos(k * t)], dim=1)


class VectorField(nn.Module):
    """``v(t, w)`` for roll-shaped states ``(B, 2, P, T)``, conditioned by FiLM.

    The condition arrives pre-digested (:meth:`prepare`, once per solve): a global vector ``vec``
    (genre embedding and context summary) and a per-pitch map from the context plus a learned
    per-pitch bias, because convolutions alone cannot tell a bass line from a melody. Hidden block
    ``i`` is dilated along pitch (2, 4, 12, ...) so the field sees thirds, fifths and octaves; the
    activations are smooth (SiLU) because the trace and the adaptive solvers want a smooth field.
    The output layer starts at zero: the untrained flow is the identity.

    >>> f = VectorField(pitches=8, hidden=8, cond_dim=4, pitch_channels=3)
    >>> prep = f.prepare(torch.zeros(2, 4), torch.zeros(2, 3, 8))
    >>> f(torch.tensor(0.5), torch.randn(2, 2, 8, 4), *prep).abs().max().item()
    0.0
    """

    DILATIONS = (2, 4, 12)

    def __init__(self, pitches: int, hidden: int = 64, cond_dim: int = 64, pitch_channels: int = 16,
                 blocks: int = 3, time_freqs: int = 8, pooled: bool = False) -> None:
        super().__init__()
        self.time_freqs = time_freqs
        self.time = nn.Sequential(nn.Linear(2 * time_freqs, cond_dim), nn.SiLU(),
                                  nn.Linear(cond_dim, cond_dim))
        self.conv_in = nn.Conv2d(2, hidden, 3, padding=1)
        self.pitch_in = nn.Conv1d(pitch_channels, hidden, 3, padding=1)
        self.pitch_bias = nn.Parameter(torch.zeros(hidden, pitches))
        dil = [self.DILATIONS[i % len(self.DILATIONS)] for i in range(blocks)]
        self.blocks = nn.ModuleList(
            nn.Conv2d(hidden, hidden, 3, padding=(d, 1), dilation=(d, 1)) for d in dil)
        # With ``pooled``, every block also reads the whole window's mean and maximum per channel:
        # the dilated convolutions reach about 22 rows either side, and a melody's beat must know
        # whether a note already sounds anywhere to carry exactly one.
        self.pools = nn.ModuleList(nn.Linear(2 * hidden, hidden) for _ in dil) if pooled else None
        self.film = nn.Linear(cond_dim, 2 * hidden * (blocks + 1))
        self.conv_out = nn.Conv2d(hidden, 2, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def prepare(self, vec: torch.Tensor, pitch_map: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The time-independent part of the condition: ``(vec (B, C), pitch term (B, H, P, 1))``."""
        return vec, (self.pitch_in(pitch_map) + self.pitch_bias).unsqueeze(-1)

    def forward(self, t: torch.Tensor, w: torch.Tensor, vec: torch.Tensor,
                pitch_term: torch.Tensor) -> torch.Tensor:
        c = F.silu(vec + self.time(fourier_time(t.to(w.dtype), w.shape[0], self.time_freqs)))
        film = self.film(c)[:, :, None, None].chunk(2 * (len(self.blocks) + 1), dim=1)
        a = F.silu(torch.addcmul(film[1], self.conv_in(w) + pitch_term, 1 + film[0]))
        for i, conv in enumerate(self.blocks):
            pre = conv(a)
            if self.pools is not None:
                pooled = torch.cat([a.mean(dim=(2, 3)), a.amax(dim=(2, 3))], 1)
                pre = pre + self.pools[i](pooled)[..., None, None]
            a = a + F.silu(torch.addcmul(film[2 * i + 3], pre, 1 + film[2 * i + 2]))
        return self.conv_out(a)


Field = Callable[..., torch.Tensor]


class _Dynamics(nn.Module):
    """The torchdiffeq function: ``w`` moves along ``field``; optional extra states integrate the
    divergence per probe, the kinetic energy and the Jacobian's squared Frobenius norm. ``extra``
    (the prepared condition) rides in the state with zero derivative when solving by adjoint, so
    that gradients reach the condition encoder; otherwise it is held directly."""

    def __init__(self, field: Field, extra: tuple, in_state: bool, trace: str | None,
                 probes: torch.Tensor | None, regularise: bool) -> None:
        super().__init__()
        self.field = field
        self.extra = () if in_state else extra
        self.in_state, self.trace, self.probes, self.regularise = in_state, trace, probes, regularise
        self.n_extra = len(extra)
        self.nfe = 0

    def forward(self, t: torch.Tensor, state):
        self.nfe += 1
        if self.trace is None and not self.in_state:
            return self.field(t, state, *self.extra)
        w = state[0]
        extra = tuple(state[len(state) - self.n_extra:]) if self.in_state else self.extra
        if self.trace is None:
            return (self.field(t, w, *extra),) + tuple(torch.zeros_like(e) for e in extra)
        graph = torch.is_grad_enabled()  # training or adjoint backward: keep the graph
        with torch.enable_grad():
            # Without grad mode a view may claim requires_grad yet hang off no graph: start anew.
            if not graph or not w.requires_grad:
                w = w.detach().requires_grad_(True)
            v = self.field(t, w, *extra)
            divs, first = _divergence(v, w, self.trace, self.probes, graph)
        out = [v, divs]
        if self.regularise:
            out += [v.pow(2).flatten(1).sum(1), first.pow(2).flatten(1).sum(1)]
        if not graph:
            out = [o.detach() for o in out]
        return tuple(out) + tuple(torch.zeros_like(e) for e in extra if self.in_state)


def _divergence(v: torch.Tensor, w: torch.Tensor, trace: str, probes: torch.Tensor | None,
                graph: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, K)`` trace estimates and the first vector-Jacobian product ``e^T dv/dw`` (for the
    Jacobian-norm penalty). ``exact``: one backward pass per dimension, K = 1."""
    if trace == "exact":
        flat_v = v.flatten(1)
        cols = []
        for i in range(flat_v.shape[1]):
            g = torch.autograd.grad(flat_v[:, i].sum(), w, create_graph=graph, retain_graph=True)[0]
            cols.append(g.flatten(1)[:, i])
        return torch.stack(cols, 1).sum(1, keepdim=True), g
    ests, first = [], None
    for e in probes:
        g = torch.autograd.grad(v, w, e, create_graph=graph, retain_graph=True)[0]
        first = g if first is None else first
        ests.append((g * e).flatten(1).sum(1))
    return torch.stack(ests, 1), first


def rademacher(shape: tuple, probes: int, generator: torch.Generator | None,
               like: torch.Tensor) -> torch.Tensor:
    """``(probes, *shape)`` random signs, the lowest-variance Hutchinson probe."""
    r = draw(torch.randint, 0, 2, (probes, *shape), generator=generator, device=like.device)
    return r.to(like.dtype) * 2 - 1


def flow(field: Field, w: torch.Tensor, t0: float, t1: float, solver: Solver,
         extra: tuple = ()) -> tuple[torch.Tensor, int]:
    """Move ``w`` from ``t0`` to ``t1`` along ``field(t, w, *extra)``; returns ``(w(t1), NFE)``."""
    dyn = _Dynamics(field, extra, solver.adjoint and bool(extra), None, None, False)
    state = (w, *extra) if dyn.in_state else w
    out = solver.solve(dyn, state, t0, t1)
    return (out[0] if isinstance(out, tuple) else out), dyn.nfe


def flow_with_logdet(field: Field, w: torch.Tensor, t0: float, t1: float, solver: Solver,
                     extra: tuple = (), trace: str = "hutchinson", probes: int = 1,
                     generator: torch.Generator | None = None, regularise: bool = False):
    """Move ``w`` from ``t0`` to ``t1`` and integrate ``d l / dt = tr(dv/dw)``.

    Returns ``(w(t1), l (B, K), nfe)``, plus ``(kinetic (B,), jacobian (B,))`` integrals when
    ``regularise``. Solving from data at ``t0 = 1`` to noise at ``t1 = 0``,
    ``log p_1(w) = log p_0(w(0)) + l``; with ``trace="hutchinson"`` each of the ``K = probes``
    columns of ``l`` is an independent unbiased estimate (one Rademacher probe held fixed over the
    solve, as in FFJORD), so their spread gives a standard error.
    """
    if trace not in ("exact", "hutchinson"):
        raise MusicflowError(f"trace must be 'exact' or 'hutchinson', got {trace!r}")
    k = 1 if trace == "exact" else probes
    e = None if trace == "exact" else rademacher(tuple(w.shape), k, generator, w)
    dyn = _Dynamics(field, extra, solver.adjoint and bool(extra), trace, e, regularise)
    zeros = w.new_zeros(w.shape[0])
    state = (w, w.new_zeros(w.shape[0], k)) + ((zeros, zeros) if regularise else ())
    out = solver.solve(dyn, state + (tuple(extra) if dyn.in_state else ()), t0, t1)
    if regularise:  # integrals of positive quantities, whichever way time runs
        sign = 1.0 if t1 > t0 else -1.0
        return out[0], out[1], dyn.nfe, (sign * out[2], sign * out[3])
    return out[0], out[1], dyn.nfe
