"""Conditional continuous normalizing flow (neural ODE) over piano-roll windows.

Like :class:`~musicflow.flows.glow.Glow`, a binary roll ``x`` ``(B, 2, P, T)`` is dequantized to a
continuous ``w`` (:mod:`musicflow.flows.dequantize`), and an ODE ``dw/dt = v(t, w | genre,
context, outline)`` (:class:`~musicflow.flows.odefunc.VectorField`) carries standard normal noise
at ``t = 0`` to the data at ``t = 1``; ``encode`` solves it backward, ``decode`` forward, and
``log_prob`` integrates the instantaneous change of variables. Two dequantizations
(``CNFConfig.dequantization``): ``uniform`` (or ``variational``) noise in the cell, mapped to logit
space as the Glow does, or ``halfline``: each cell on its own half-line with a density that
vanishes at the border (:class:`~musicflow.flows.dequantize.HalfLineDequantizer`), a target a
smooth field can fit and flow matching can train towards a tight bound.

Two objectives (``CNFConfig.objective``):

- ``"ml"``: maximum likelihood, FFJORD style: the bits/dim bound through a fixed-step solve with
  one Hutchinson probe, plus optional kinetic-energy and Jacobian-norm penalties.
- ``"fm"``: conditional flow matching on straight lines ``w_t = (1 - t) w_0 + t w_1`` with target
  velocity ``w_1 - w_0`` (Lipman et al. 2023; Liu et al., "Rectified flow", 2023): one field
  evaluation per example, no ODE solve in training. Its dequantization is fixed (``uniform`` or
  ``halfline``; flow matching cannot train a dequantizer), and its bits/dim are an upper bound.

Classifier-free guidance (Ho & Salimans 2022): in training the genre is replaced by a learned null
embedding with probability ``genre_dropout``; at sampling ``v = v_null + g (v_genre - v_null)``:
``g = 1`` is the plain conditional model, ``0`` ignores the genre, ``> 1`` exaggerates it.

Every solve leaves its number of field evaluations in :attr:`CNF.last_nfe`, and every likelihood
evaluated with Hutchinson's estimator leaves its standard error in :attr:`CNF.last_stderr`.

>>> cnf = CNF(CNFConfig(pitches=4, steps=4, n_genres=2, hidden=8, cond_dim=8, embed_dim=4,
...                     context_channels=4, blocks=1))
>>> cond = Condition(torch.tensor([[1.0, 0.0]]))
>>> rolls = cnf.sample(2, cond, generator=torch.Generator().manual_seed(0), guidance=2.0)
>>> rolls.shape, cnf.last_nfe  # rk4, 8 steps; guidance batches genre and null in one call
(torch.Size([2, 2, 4, 4]), 32)
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
from torch import nn

from musicflow.errors import MusicflowError
from musicflow.flows.base import Condition, Flow
from musicflow.flows.cnf_config import CNFConfig
from musicflow.flows.dequantize import (
    HalfLineDequantizer,
    Logit,
    UniformDequantizer,
    VariationalDequantizer,
    centre,
    quantize,
)
from musicflow.flows.nets import CondFeatures, ContextEncoder, OutlineEncoder, encode_context_and_outline
from musicflow.flows.odefunc import Solver, VectorField, flow, flow_with_logdet
from musicflow.flows.rng import draw
from musicflow.flows.styles import StyleColumns, embed_genre, genre_width

__all__ = ["CNF", "CNFConfig"]


class CNF(Flow):
    """Conditional neural-ODE flow over binary piano-roll windows ``(B, 2, P, T)``.

    ``log_prob`` is in nats of the discrete roll (a lower bound through dequantization, estimated
    without bias); ``encode``/``decode`` are deterministic (cell centres) and inverse to each other
    up to the solver's error (see :meth:`reconstruction_error`).
    """

    #: ``decode`` takes ``guidance`` itself (classifier-free guidance), not candidates to pick from.
    native_guidance = True
    #: How ``decode`` can follow a genre mix (:meth:`_guided`), the first the default.
    mixes = ("embed", "product")

    loss_name = "loss"

    @property
    def likelihood_solver(self) -> str:
        s = self.config.likelihood_solver
        return str(s) if s.evaluations_per_solve else f"{s} rtol={s.rtol} atol={s.atol}"

    def use_likelihood_solver(self, text: str) -> None:
        s = Solver.parse(text)
        if s.spacing != 1:
            raise MusicflowError(f"ode solver {text!r}: likelihoods take equal steps; drop the ^ spacing")
        self.config = replace(self.config, method=s.method, likelihood_steps=s.steps)

    def __init__(self, config: CNFConfig | None = None) -> None:
        super().__init__()
        cfg = config if config is not None else CNFConfig()
        self.config = cfg
        self.genre_table = nn.Parameter(torch.randn(cfg.n_genres, cfg.embed_dim))
        self.styles = StyleColumns(cfg.styles, cfg.embed_dim) if cfg.styles else None
        self.genre_null = nn.Parameter(torch.zeros(cfg.embed_dim))
        self.context_encoder = ContextEncoder(cfg.pitches, cfg.context_channels, cfg.cond_dim, cfg.chroma,
                                              cfg.reach)
        self.outline_encoder = (OutlineEncoder(cfg.pitches, cfg.context_channels, cfg.cond_dim)
                                if cfg.outline else None)
        self.cond_mlp = nn.Sequential(nn.Linear(cfg.embed_dim + cfg.cond_dim, cfg.cond_dim), nn.SiLU(),
                                      nn.Linear(cfg.cond_dim, cfg.cond_dim))
        self.logit = Logit(cfg.alpha)
        self.dequantizer: nn.Module = {
            "variational": lambda: VariationalDequantizer(cfg.cond_dim, cfg.dequant_hidden,
                                                          cfg.dequant_steps),
            "uniform": UniformDequantizer, "halfline": lambda: HalfLineDequantizer(cfg.dequant_scale),
        }[cfg.dequantization]()
        self.field = VectorField(cfg.pitches, cfg.hidden, cfg.cond_dim, cfg.context_channels, cfg.blocks,
                                 pooled=cfg.pooled)
        self.last_nfe = 0
        self.last_stderr: torch.Tensor | None = None

    @property
    def takes_outline(self) -> bool:
        return self.config.outline

    # -- conditioning -------------------------------------------------------------------------

    def genre_columns(self) -> tuple[torch.Tensor]:
        """Each genre slot's embedding as a column, ``(embed_dim, genres)``: the trained genres',
        then the styles' (:mod:`musicflow.flows.styles`)."""
        cols = self.genre_table.t()
        return (cols if self.styles is None else torch.cat([cols, self.styles.columns[0]], 1),)

    def features(self, cond: Condition, drop: bool = False, null_genre: bool = False) -> CondFeatures:
        """Condition to features; ``drop`` applies genre and context dropout (training),
        ``null_genre`` replaces every genre by the null embedding (guidance)."""
        cfg = self.config
        batch = cond.validate(genre_width(cond.genre, cfg.n_genres, cfg.styles), cfg.pitches)
        dev = cond.genre.device
        ctx_rate, out_rate = (cfg.context_dropout, cfg.outline_dropout) if drop else (0.0, 0.0)
        ctx_vec, pitch_map = encode_context_and_outline(self.context_encoder, self.outline_encoder, cond,
                                                        batch, ctx_rate, out_rate)
        emb = embed_genre(self.genre_table, self.styles, cond.genre)
        if null_genre:
            emb = self.genre_null.expand(batch, -1)
        elif drop and cfg.genre_dropout > 0:
            mask = torch.rand(batch, device=dev) < cfg.genre_dropout
            emb = torch.where(mask[:, None], self.genre_null.expand(batch, -1), emb)
        return CondFeatures(self.cond_mlp(torch.cat([emb, ctx_vec], dim=1)), pitch_map)

    def _extra(self, h: CondFeatures) -> tuple[torch.Tensor, torch.Tensor]:
        return self.field.prepare(h.vec, h.pitch_map)

    def _guided(self, cond: Condition, guidance: float | None, mix: str = "embed"):
        """The field and its prepared condition for guidance scale ``guidance`` and genre ``mix``:
        ``"embed"`` reads the weighted genre embedding; ``"product"`` follows the weighted sum of
        each genre's own field, ``sum_g w_g v(t, w | g)``. A flow-matching field is affine in the
        score of its path's marginal, so the sum follows the score of the weighted geometric mean
        of the genres' path densities: a product of experts, approximate between the ends as in
        classifier-free guidance (Liu et al., "Compositional visual generation", 2022).
        Guidance then applies to the mixed field: ``v_null + g (v_mix - v_null)``."""
        if mix not in self.mixes:
            raise MusicflowError(f"mix must be one of {self.mixes}, got {mix!r}")
        cond.validate(genre_width(cond.genre, self.config.n_genres, self.config.styles), self.config.pitches)
        genre = cond.genre
        active = torch.nonzero(genre.abs().sum(0) > 0).flatten().tolist()
        if mix == "embed" or len(active) < 2:
            conds, shares = [cond], [None]
        else:
            eye = torch.eye(genre.shape[1], dtype=genre.dtype, device=genre.device)
            conds = [Condition(eye[j].expand_as(genre), cond.context, cond.outline) for j in active]
            total = genre[:, active].sum(1)
            shares = [genre[:, j] / total for j in active]
        parts = [self._extra(self.features(c)) for c in conds]
        g = 1.0 if guidance is None else float(guidance)
        if g != 1.0:
            parts.append(self._extra(self.features(cond, null_genre=True)))
        if len(parts) == 1:
            return self.field, parts[0]
        stacked = tuple(torch.cat(p) for p in zip(*parts))
        k = len(parts)

        def guided(t, w, vec, pitch_term):
            vs = self.field(t, torch.cat([w] * k), vec, pitch_term).chunk(k)
            v = vs[0] if shares[0] is None else sum(
                s.to(w.dtype)[:, None, None, None] * v for s, v in zip(shares, vs))
            return v if g == 1.0 else vs[-1] + g * (v - vs[-1])

        return guided, stacked

    # -- likelihood ---------------------------------------------------------------------------

    def log_prob(self, x: torch.Tensor, cond: Condition, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
        """Lower bound on ``log P(x)`` in nats, ``(B,)``, for binary rolls ``x``.

        One dequantization draw ``u`` (from ``generator``). In training mode: the fixed-step train
        solver, one Hutchinson probe, genre and context dropout. In eval mode: the adaptive
        solver, and the exact trace for windows of at most ``exact_trace_dim`` dimensions, else the
        mean of ``probes`` Hutchinson estimates, whose standard error goes to :attr:`last_stderr`.
        """
        if self.training:
            return self._log_prob(x, cond, generator, self.config.train_solver, 1, drop=True)[0]
        return self.log_prob_with_stderr(x, cond, generator)[0]

    def log_prob_with_stderr(self, x: torch.Tensor, cond: Condition,
                             generator: torch.Generator | None = None, solver: Solver | None = None,
                             probes: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(log_prob (B,), standard error (B,))``: the error of the trace estimate (zero for the
        exact trace); it does not include the dequantization draw's own spread."""
        cfg = self.config
        trace = "exact" if cfg.dim <= cfg.exact_trace_dim else "hutchinson"
        k = probes or cfg.probes
        lp, stderr = self._log_prob(x, cond, generator, solver or cfg.likelihood_solver, k,
                                    drop=False, trace=trace)
        self.last_stderr = stderr.detach()
        return lp, stderr

    def bits_per_dim(self, x: torch.Tensor, cond: Condition, generator: torch.Generator | None = None
                     ) -> torch.Tensor:
        """``-log_prob / (D ln 2)``, ``(B,)``: an upper bound on the roll's bits per dimension."""
        return -self.log_prob(x, cond, generator) / (self.config.dim * math.log(2))

    def valid_bits_per_dim(self, x: torch.Tensor, cond: Condition,
                           generator: torch.Generator | None = None) -> torch.Tensor:
        """The cheap estimate training validates with: the fixed-step train solver and one
        Hutchinson probe instead of the adaptive solver and several probes (see
        :attr:`valid_note`)."""
        lp, _ = self._log_prob(x, cond, generator, self.config.train_solver, 1, drop=False)
        return -lp / (self.config.dim * math.log(2))

    @property
    def valid_note(self) -> str:
        c = self.config
        return (f"validation bits/dim: {c.train_method} with {c.train_steps} fixed steps and one "
                f"Hutchinson probe (an estimate; benchmarks use {c.method} rtol={c.rtol} atol={c.atol})")

    def _log_prob(self, x, cond, generator, solver, probes, drop, trace="hutchinson",
                  regularise=False):
        x = self._check_rolls(x, cond)
        h = self.features(cond, drop=drop)
        w, correction = self._dequantize(x, h, generator)
        out = flow_with_logdet(self.field, w, 1.0, 0.0, solver, self._extra(h), trace, probes,
                               generator, regularise)
        z, dlogp, self.last_nfe = out[:3]
        log_pz = -0.5 * (z.pow(2) + math.log(2 * math.pi)).flatten(1).sum(dim=1)
        base = log_pz + correction
        k = dlogp.shape[1]
        stderr = dlogp.std(dim=1) / math.sqrt(k) if k > 1 else torch.zeros_like(base)
        lp = base + dlogp.mean(dim=1)
        return (lp, stderr, out[3]) if regularise else (lp, stderr)

    def _dequantize(self, x: torch.Tensor, h: CondFeatures, generator: torch.Generator | None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(w, c)``: one dequantized draw of ``x`` in the space the field works in, and ``c`` with
        ``log P(x) >= E[log p(w) + c]`` (``-log q`` and the Jacobian of the map to that space)."""
        if isinstance(self.dequantizer, HalfLineDequantizer):
            w, log_q = self.dequantizer(x, generator=generator)
            return w, -log_q
        u, log_q = self.dequantizer(x, h.vec, generator=generator)
        w, ld_logit = self.logit((x + u) / 2)
        # The -D ln 2 turns the density of v = (x + u) / 2 into that of x + u.
        return w, ld_logit - self.config.dim * math.log(2) - log_q

    def _centre(self, x: torch.Tensor) -> torch.Tensor:
        """Each cell's centre in the field's space: deterministic encoding."""
        if isinstance(self.dequantizer, HalfLineDequantizer):
            return self.dequantizer.centre(x)
        return self.logit(centre(x))[0]

    # -- training -----------------------------------------------------------------------------

    def loss(self, x: torch.Tensor, cond: Condition, generator: torch.Generator | None = None
             ) -> torch.Tensor:
        """The training objective, a scalar: the flow-matching loss (mean squared velocity error
        per dimension) or the bits/dim bound plus the kinetic and Jacobian penalties (per
        dimension)."""
        cfg = self.config
        if cfg.objective == "fm":
            return self.fm_loss(x, cond, generator)
        reg = cfg.kinetic > 0 or cfg.jacobian > 0
        out = self._log_prob(x, cond, generator, cfg.train_solver, 1, drop=self.training,
                             regularise=reg)
        loss = -out[0] / (cfg.dim * math.log(2))
        if reg:
            kinetic, jac = out[2]
            loss = loss + (cfg.kinetic * kinetic + cfg.jacobian * jac) / cfg.dim
        return loss.mean()

    def fm_loss(self, x: torch.Tensor, cond: Condition, generator: torch.Generator | None = None
                ) -> torch.Tensor:
        """Conditional flow matching on straight paths from ``N(0, I)`` to the dequantized data."""
        x = self._check_rolls(x, cond)
        h = self.features(cond, drop=self.training)
        w1, _ = self._dequantize(x, h, generator)
        w0 = draw(torch.randn, w1.shape, generator=generator, device=w1.device, dtype=w1.dtype)
        t = draw(torch.rand, w1.shape[0], generator=generator, device=w1.device, dtype=w1.dtype)
        tt = t[:, None, None, None]
        v = self.field(t, (1 - tt) * w0 + tt * w1, *self._extra(h))
        self.last_nfe = 1
        return (v - (w1 - w0)).pow(2).mean()

    # -- sampling, encoding, decoding ----------------------------------------------------------

    @torch.no_grad()
    def sample(self, n: int, cond: Condition, temperature: float = 1.0,
               generator: torch.Generator | None = None, guidance: float | None = None) -> torch.Tensor:
        """``n`` binary rolls ``(n, 2, P, T)``; ``cond`` has batch size 1 or ``n``."""
        z, cond = self.draw_latents(n, cond, temperature, generator)
        return quantize(self.decode(z, cond, guidance))

    @torch.no_grad()
    def encode(self, x: torch.Tensor, cond: Condition, solver: Solver | None = None) -> torch.Tensor:
        """Binary rolls to latents ``(B, D)`` (cell centres, solved backward from ``t = 1`` to
        ``0`` with the adaptive solver unless ``solver`` is given)."""
        x = self._check_rolls(x, cond)
        z, self.last_nfe = flow(self.field, self._centre(x), 1.0, 0.0,
                                solver or self.config.likelihood_solver,
                                self._extra(self.features(cond)))
        return z.flatten(1)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, cond: Condition, guidance: float | None = None,
               solver: Solver | None = None, mix: str = "embed") -> torch.Tensor:
        """Latents ``(B, D)`` to continuous rolls ``v`` in ``[0, 1]`` (fixed-step sample solver
        unless ``solver`` is given); ``guidance`` scales the genre (1 or ``None``: plain, so that
        ``decode(encode(x))`` gives ``x`` back; composing applies ``config.guidance``, see
        :meth:`musicflow.compose.Composer.sampling`); ``mix`` is how a genre mix is followed
        (:meth:`_guided`)."""
        cfg = self.config
        if z.dim() != 2 or z.shape[1] != cfg.dim:
            raise MusicflowError(f"decode: z must have shape (B, {cfg.dim}), got {tuple(z.shape)}")
        if cond.batch_size != z.shape[0]:
            raise MusicflowError(f"decode: condition batch size {cond.batch_size} != {z.shape[0]}")
        if guidance is not None and not math.isfinite(guidance):
            raise MusicflowError(f"guidance must be a finite number, got {guidance}")
        field, extra = self._guided(cond, guidance, mix)
        w0 = z.reshape(-1, 2, cfg.pitches, cfg.steps).to(self.genre_table.dtype)
        w, self.last_nfe = flow(field, w0, 0.0, 1.0, solver or cfg.sample_solver, extra)
        if isinstance(self.dequantizer, HalfLineDequantizer):
            return self.dequantizer.to_unit(w)
        v, _ = self.logit.inverse(w)
        return v.clamp(0.0, 1.0)

    @torch.no_grad()
    def reconstruction_error(self, x: torch.Tensor, cond: Condition, solver: Solver | None = None
                             ) -> float:
        """Largest ``|decode(encode(x)) - centre(x)|`` over cells (in ``v``, where the border
        between off and on is 0.5),
        both solves with the adaptive solver unless ``solver`` is given."""
        s = solver or self.config.likelihood_solver
        z = self.encode(x, cond, s)
        nfe = self.last_nfe
        v = self.decode(z, cond, solver=s)
        self.last_nfe += nfe
        x = x.to(v.dtype)
        halfline = isinstance(self.dequantizer, HalfLineDequantizer)
        target = self.dequantizer.to_unit(self._centre(x)) if halfline else centre(x)
        return float((v - target).abs().max())

    quantize = staticmethod(quantize)

    def _check_rolls(self, x: torch.Tensor, cond: Condition) -> torch.Tensor:
        cfg = self.config
        if x.dim() != 4 or tuple(x.shape[1:]) != (2, cfg.pitches, cfg.steps):
            raise MusicflowError(
                f"rolls must have shape (B, 2, {cfg.pitches}, {cfg.steps}), got {tuple(x.shape)}")
        if cond.batch_size != x.shape[0]:
            raise MusicflowError(f"condition batch size {cond.batch_size} != rolls batch size {x.shape[0]}")
        return x.to(self.genre_table.dtype)
