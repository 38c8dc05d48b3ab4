"""The settings of a :class:`~musicflow.flows.cnf.CNF`: its shape, conditioning, objective,
dequantization and its three solvers (likelihood, sampling, training)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from musicflow.errors import MusicflowError
from musicflow.flows.base import ConfigDict
from musicflow.flows.checks import flags, logit_alpha, needs, positive_ints, probabilities
from musicflow.flows.odefunc import Solver

OBJECTIVES = ("fm", "ml")
DEQUANTIZERS = ("uniform", "variational", "halfline")


@dataclass(frozen=True)
class CNFConfig(ConfigDict):
    """Everything needed to rebuild a :class:`CNF`; stored in checkpoints via :meth:`to_dict`.

    Three solvers: ``method``/``rtol``/``atol`` (adaptive; a fixed-step ``method`` takes
    ``likelihood_steps`` steps) for likelihoods and ``encode``;
    ``sample_method``/``sample_steps``/``sample_spacing`` (fixed-step) for ``decode`` and sampling;
    ``train_method``/``train_steps`` (fixed-step) for maximum-likelihood training and the cheap
    validation estimate. ``exact_trace_dim``: windows of at most this many dimensions get the exact
    trace, larger ones Hutchinson's estimate with ``probes`` probes.

    >>> cfg = CNFConfig(pitches=8)
    >>> CNFConfig.from_dict(cfg.to_dict()) == cfg, cfg.dim
    (True, 64)
    """

    pitches: int = 48  # rows of a window
    steps: int = 4  # one beat of 16ths
    n_genres: int = 8
    styles: int = 0  # genres learned after training (flows/styles.py), after the n_genres
    context_steps: int = 64  # context the data pipeline supplies; the encoder takes any length
    context_channels: int = 16  # channels of the context's per-pitch map
    chroma: bool = False  # the context's pitch-class profile joins the condition (flows/nets.py)
    reach: bool = False  # the context's pitch map sees the whole pitch range (flows/nets.py)
    outline: bool = False  # conditioned on the outline of the window's 8-bar block (as the Glow)
    outline_dropout: float = 0.25
    # Outlines of 128-step stretches (8 bars of 4/4, as composed) instead of 8 bars of the piece's
    # own metre: a 2/4 block is half as long and a 4/2 block twice (data/windows.py: WindowSet).
    outline_stretch: bool = False
    # The plans composing draws from: "blocks" (the training blocks'), or "matched" (a genre whose
    # blocks plan denser or sparser stretches than its real 128-step ones, by more than 15%, or
    # half of whose blocks or more are half a stretch or less, draws from those stretches;
    # training/windows.py: outline_bank).
    outline_bank: str = "blocks"
    embed_dim: int = 16  # genre embedding size
    cond_dim: int = 64  # size of the global conditioning vector
    hidden: int = 64  # channels of the vector field
    blocks: int = 3  # its hidden blocks, dilated 2, 4, 12, ... along pitch
    pooled: bool = False  # each block also reads the window's pooled channels (flows/odefunc.py)
    objective: str = "fm"  # "fm": flow matching, "ml": maximum likelihood
    dequantization: str = "uniform"  # "variational" (objective "ml" only) or "halfline" (no logit)
    dequant_scale: float = 1.0  # spread of the "halfline" dequantizer (flows/dequantize.py)
    dequant_hidden: int = 16  # channels of the variational dequantizer's nets
    dequant_steps: int = 2  # its pairs of couplings
    alpha: float = 0.05  # the logit margin (flows/dequantize.py)
    genre_dropout: float = 0.15  # share of training rows given the null genre (guidance)
    guidance: float = 1.0  # the guidance composing uses when none is given (1: plain)
    # A one-voice plan decodes as one line that sounds unstruck sustains, holds a note over a
    # silent beat and through a rest of an eighth between two notes (lines.py: one_line,
    # hold_over, bridge_rests; sampling.py: strike_orphans).
    one_voice: bool = False
    context_dropout: float = 0.1  # share of training rows given no context
    method: str = "dopri5"
    likelihood_steps: int = 8  # used when ``method`` is a fixed-step method
    rtol: float = 1e-5  # tolerances of the adaptive solves
    atol: float = 1e-5
    sample_method: str = "rk4"
    sample_steps: int = 8
    sample_spacing: float = 1.0  # the sample solver's steps at times (i / steps) ** spacing (odefunc.Solver)
    train_method: str = "rk4"
    train_steps: int = 4
    adjoint: bool = False  # adjoint gradients through the likelihood and training solves
    probes: int = 4  # Hutchinson probes of an evaluated likelihood
    exact_trace_dim: int = 64
    kinetic: float = 0.0  # weight of the kinetic-energy penalty (objective "ml")
    jacobian: float = 0.0  # weight of the Jacobian-norm penalty (objective "ml")

    def __post_init__(self) -> None:
        positive_ints(self, ("pitches", "steps", "n_genres", "context_steps", "context_channels", "embed_dim",
                             "cond_dim", "hidden", "blocks", "dequant_hidden", "dequant_steps", "probes",
                             "likelihood_steps"))
        if self.styles < 0:
            raise MusicflowError(f"styles must be >= 0, got {self.styles}")
        if self.objective not in OBJECTIVES:
            raise MusicflowError(f"CNFConfig.objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.dequantization not in DEQUANTIZERS:
            raise MusicflowError(f"CNFConfig.dequantization must be one of {DEQUANTIZERS}, "
                                 f"got {self.dequantization!r}")
        if self.objective == "fm" and self.dequantization == "variational":
            raise MusicflowError("CNFConfig: flow matching cannot train a variational dequantizer; "
                                 "use dequantization=uniform or halfline, or objective=ml")
        if not self.dequant_scale > 0:
            raise MusicflowError(f"CNFConfig.dequant_scale must be positive, got {self.dequant_scale!r}")
        logit_alpha(self)
        flags(self, ("chroma", "reach", "outline", "outline_stretch", "pooled", "one_voice"))
        needs(self, "outline_stretch", "outline")
        if self.outline_bank not in ("blocks", "matched"):
            raise MusicflowError(f"CNFConfig.outline_bank must be blocks or matched, "
                                 f"got {self.outline_bank!r}")
        if self.outline_bank == "matched" and (not self.outline or self.outline_stretch):
            raise MusicflowError("CNFConfig.outline_bank=matched needs outline=true and "
                                 "outline_stretch=false (a stretch-trained bank already holds stretches)")
        probabilities(self, ("genre_dropout", "context_dropout", "outline_dropout"))
        if not (math.isfinite(self.guidance) and self.guidance >= 0):
            raise MusicflowError(f"CNFConfig.guidance must be a number >= 0, got {self.guidance!r}")
        if self.kinetic < 0 or self.jacobian < 0:
            raise MusicflowError("CNFConfig.kinetic and .jacobian must be non-negative")
        _ = (self.likelihood_solver, self.sample_solver, self.train_solver)  # validates the methods

    @property
    def dim(self) -> int:
        """Dimensions of one window, ``2 * pitches * steps``."""
        return 2 * self.pitches * self.steps

    @property
    def likelihood_solver(self) -> Solver:
        return Solver(self.method, steps=self.likelihood_steps, rtol=self.rtol, atol=self.atol,
                      adjoint=self.adjoint)

    @property
    def sample_solver(self) -> Solver:
        return Solver(self.sample_method, steps=self.sample_steps, rtol=self.rtol, atol=self.atol,
                      spacing=self.sample_spacing)

    @property
    def train_solver(self) -> Solver:
        return Solver(self.train_method, steps=self.train_steps, rtol=self.rtol, atol=self.atol,
                      adjoint=self.adjoint)
