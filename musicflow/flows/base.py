"""The contracts every flow in musicflow keeps.

A :class:`Transform` maps ``x`` to ``y`` and returns the log-absolute-determinant of its Jacobian,
one value per batch element; ``inverse`` undoes it exactly. A :class:`Flow` is a whole generative
model; its abstract base declares what every model kind has and what only some have.

Shapes: rolls are ``(B, 2, P, T)`` float tensors (channels onset and sustain, ``P`` pitches, ``T``
grid steps). The condition is a :class:`Condition`: genre weights ``(B, G)`` (rows sum to one; a
one-hot row is a single genre, other rows are mixes) and an optional previous-window context
``(B, 2, P, T_ctx)``; ``None`` means "no context" (the start of a piece).
"""

from __future__ import annotations

import abc
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

import torch
from torch import nn

from musicflow.errors import MusicflowError
from musicflow.flows.rng import draw


class ConfigDict:
    """``to_dict``/``from_dict`` for a model's config dataclass, as checkpoints store it.

    >>> @dataclass(frozen=True)
    ... class Tiny(ConfigDict):
    ...     size: int = 2
    >>> Tiny.from_dict(Tiny(3).to_dict())
    Tiny(size=3)
    >>> Tiny.from_dict({"size": 3, "colour": 1})
    Traceback (most recent call last):
    ...
    musicflow.errors.MusicflowError: Tiny: unknown keys ['colour']
    """

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        """Inverse of :meth:`to_dict`; unknown keys are an error (a checkpoint from elsewhere)."""
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise MusicflowError(f"{cls.__name__}: unknown keys {unknown}")
        return cls(**data)


@dataclass
class Condition:
    """What a flow is conditioned on.

    >>> c = Condition(torch.tensor([[1.0, 0.0]]))
    >>> c.batch_size
    1
    """

    genre: torch.Tensor
    context: torch.Tensor | None = None
    #: ``(B, 4)`` outlines of the passage (:func:`musicflow.data.windows.outline`), for models
    #: that take one (``GlowConfig.outline``); ``None``: no outline (others ignore it).
    outline: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.genre.shape[0]

    def validate(self, n_genres: int, pitches: int) -> int:
        """Check the shapes a model with ``n_genres`` genres and ``pitches`` pitches needs; return
        the batch size. Bad conditions are one-line :class:`MusicflowError` s.

        >>> Condition(torch.tensor([[0.5, 0.5]])).validate(n_genres=2, pitches=8)
        1
        """
        genre = self.genre
        if genre.dim() != 2 or genre.shape[1] != n_genres:
            raise MusicflowError(f"cond.genre must have shape (B, {n_genres}), got {tuple(genre.shape)}")
        batch = genre.shape[0]
        if not torch.allclose(genre.sum(dim=1), genre.new_ones(batch), atol=1e-3):
            raise MusicflowError("cond.genre: each row of genre weights must sum to 1")
        ctx = self.context
        if ctx is not None and (ctx.dim() != 4 or ctx.shape[:3] != (batch, 2, pitches)):
            raise MusicflowError(
                f"cond.context must have shape ({batch}, 2, {pitches}, T_ctx), got {tuple(ctx.shape)}")
        if self.outline is not None and tuple(self.outline.shape) != (batch, 4):
            raise MusicflowError(
                f"cond.outline must have shape ({batch}, 4), got {tuple(self.outline.shape)}")
        return batch

    def to(self, device: torch.device | str) -> Condition:
        ctx = None if self.context is None else self.context.to(device)
        plan = None if self.outline is None else self.outline.to(device)
        return Condition(self.genre.to(device), ctx, plan)

    def expand(self, n: int) -> Condition:
        """Repeat a batch-of-one condition ``n`` times."""
        if self.batch_size == n:
            return self
        ctx = None if self.context is None else self.context.expand(n, *self.context.shape[1:])
        plan = None if self.outline is None else self.outline.expand(n, -1)
        return Condition(self.genre.expand(n, -1), ctx, plan)


class Transform(nn.Module):
    """An invertible map with a tractable log-determinant.

    ``forward(x, h) -> (y, logdet)`` and ``inverse(y, h) -> (x, logdet_of_inverse)``, where ``h`` is
    whatever conditioning the owning flow threads through (a feature tensor or ``None``).
    """

    def forward(self, x: torch.Tensor, h: object = None) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def inverse(self, y: torch.Tensor, h: object = None) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


class Flow(nn.Module, abc.ABC):
    """A conditional generative model with exact likelihood: every model kind of musicflow.

    What every flow has is abstract: ``log_prob`` (nats per window of the roll, a dequantization
    bound unless the model says otherwise), ``bits_per_dim`` and ``sample``. What only some flows
    have is declared here with a default and read as an attribute, never probed:

    - ``encode``/``decode``: the latent space (window models; a frame-sequence model has none);
    - ``native_guidance``: ``decode`` guides its own sampling (``guidance=``) instead of letting
      the sampler grow candidate pieces; ``default_guidance``: the guidance composing uses;
    - ``takes_outline``: conditioned on an outline of its block (``Condition.outline``);
    - ``data_init``: ``initialize(x, cond)`` sets data-dependent weights from a first batch;
    - ``loss``/``loss_name``: the training objective (default: bits/dim); ``valid_bits_per_dim``
      and ``valid_note``: a cheaper validation estimate where the exact one is costly;
    - ``decodes_probabilities``: ``decode`` returns cell probabilities rather than a sample of the
      dequantized roll, so thresholds are calibrated rather than exact;
    - ``last_nfe`` and ``likelihood_solver``: the cost and solver of an ODE-based flow;
    - ``has_likelihood``: ``log_prob`` is defined; a baseline without one (the GAN) raises a
      one-line error from it, and whatever needs a likelihood (scoring, classifying, guidance,
      bits/dim) reads this attribute to refuse or skip it;
    """

    config: ConfigDict
    native_guidance: ClassVar[bool] = False
    default_guidance: ClassVar[float] = 1.0
    data_init: ClassVar[bool] = False
    decodes_probabilities: ClassVar[bool] = False
    has_likelihood: ClassVar[bool] = True
    loss_name: ClassVar[str] = "bpd"
    #: Vector-field evaluations of the last solve (ODE flows; ``None`` for the others).
    last_nfe: int | None = None

    @abc.abstractmethod
    def log_prob(self, x: torch.Tensor, cond: Condition,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Log-likelihood in nats per window ``(B,)``."""

    @abc.abstractmethod
    def bits_per_dim(self, x: torch.Tensor, cond: Condition,
                     generator: torch.Generator | None = None) -> torch.Tensor:
        """``-log_prob`` per binary cell in bits ``(B,)``."""

    @abc.abstractmethod
    def sample(self, n: int, cond: Condition, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` binary rolls under ``cond``."""

    @property
    def takes_outline(self) -> bool:
        """Whether the condition's outline is read (see :class:`Condition`)."""
        return False

    @property
    def valid_note(self) -> str | None:
        """What the validation figure of training is, where it is not the exact bits/dim."""
        return None

    @property
    def likelihood_solver(self) -> str | None:
        """The ODE solver that computes likelihoods, as ``method:steps`` or with its tolerances."""
        return None

    def use_likelihood_solver(self, text: str) -> None:
        """Compute likelihoods with another ODE solver (``"rk4:8"``); only for ODE flows."""
        raise MusicflowError(f"ode solver {text!r}: applies to a neural-ODE flow, "
                             f"not a {type(self).__name__}")

    def loss(self, x: torch.Tensor, cond: Condition,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """The training objective per window: bits/dim unless the model trains otherwise."""
        return self.bits_per_dim(x, cond, generator=generator)

    def valid_bits_per_dim(self, x: torch.Tensor, cond: Condition,
                           generator: torch.Generator | None = None) -> torch.Tensor:
        """The estimate training validates with: the exact bits/dim unless that is costly."""
        return self.bits_per_dim(x, cond, generator=generator)

    def initialize(self, x: torch.Tensor, cond: Condition) -> None:
        """Data-dependent initialisation from a first batch (where ``data_init``)."""

    def encode(self, x: torch.Tensor, cond: Condition) -> torch.Tensor:
        """Latents ``(B, dim)`` of windows ``x``: only models with a latent space."""
        raise MusicflowError(f"{type(self).__name__} has no latent space to encode into")

    def decode(self, z: torch.Tensor, cond: Condition) -> torch.Tensor:
        """Windows of latents ``z``: only models with a latent space."""
        raise MusicflowError(f"{type(self).__name__} has no latent space to decode from")

    def draw_latents(self, n: int, cond: Condition, temperature: float,
                     generator: torch.Generator | None) -> tuple[torch.Tensor, Condition]:
        """``n`` standard-normal latents ``(n, dim)`` times ``temperature``, on the model's device
        and dtype, and ``cond`` expanded to ``n``; bad ``n`` or condition batch sizes are one-line
        errors. What every flow's ``sample`` starts from."""
        if n < 1:
            raise MusicflowError(f"sample: n must be positive, got {n}")
        if cond.batch_size not in (1, n):
            raise MusicflowError(f"sample: condition batch size {cond.batch_size} is not 1 or {n}")
        ref = next(self.parameters())
        z = draw(torch.randn, n, self.config.dim, generator=generator, device=ref.device, dtype=ref.dtype)
        return z * temperature, cond.expand(n)
