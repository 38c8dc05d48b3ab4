"""A flow over one frame of keys at a time, conditioned on every frame before it.

For sequences of binary frames (the polyphonic benchmark of Boulanger-Lewandowski et al. 2012:
one frame per time step, 88 piano keys) the model factorises a piece by the chain rule,

    log p(x_1..x_T) = sum_t log p(x_t | x_<t),

and each factor is a conditional normalizing flow over one frame:

* a GRU reads the frames before ``t`` (a silent frame and a learned initial state stand in before
  the first one) and gives a condition vector ``c_t``;
* the keys ``low .. low + keys - 1`` of frame ``t`` are dequantized, ``v = (x + u) / 2`` with ``u``
  from a learned ``q(u | x, c_t)`` (Flow++-style variational dequantization), mapped to logit
  space, and pushed through ``depth`` steps of (ActNorm, a fixed random permutation of the keys or
  a learned LU-decomposed linear map, affine coupling with an MLP conditioned on ``c_t``) to a base
  density per dimension whose parameters also come from ``c_t``: a mixture of ``components``
  logistics (bimodal, as a binary key in logit space is) or a Gaussian;
  (the layers are in :mod:`musicflow.flows.frame_layers`);
* the keys outside that range (never sounding in the training data) get a fixed, train-fitted
  and smoothed independent Bernoulli (:meth:`FrameFlow.fit_outside`), so every frame is scored
  over all 88 keys.

``log_prob`` is ``E_q[log p(x + u) - log q(u | x)]`` with one draw: a lower bound on the log
probability of the binary frame, so the negative log-likelihood it gives is an upper bound.
Frames of one piece are scored together (teacher forcing); :meth:`FrameFlow.log_prob` scores a
window of frames given the frames before it, which is the same number.

>>> flow = FrameFlow(FrameFlowConfig(low=56, keys=8, depth=1, hidden=8, rnn_hidden=8, cond_dim=8))
>>> rolls = torch.zeros(2, 5, 88); rolls[:, :, 60 - 21] = 1
>>> flow.sequence_log_prob(rolls, torch.tensor([5, 3])).shape
torch.Size([2, 5])

References: Dinh et al., "Real NVP" (2017); Kingma & Dhariwal, "Glow" (2018); Ho et al.,
"Flow++" (2019); Boulanger-Lewandowski et al. (2012) for the sequence setup.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from musicflow.errors import MusicflowError
from musicflow.flows.base import Condition, ConfigDict
from musicflow.flows.checks import logit_alpha, positive_ints
from musicflow.flows.dequantize import Logit, quantize
from musicflow.flows.frame_layers import FrameBase, FrameCoupling, FrameDequantizer, LUMixing, Permutation
from musicflow.flows.layers import ActNorm
from musicflow.flows.rng import draw
from musicflow.flows.sequence import ALL_KEYS, LOWEST, SequenceFlow


@dataclass(frozen=True)
class FrameFlowConfig(ConfigDict):
    """Everything needed to rebuild a :class:`FrameFlow`.

    >>> cfg = FrameFlowConfig(keys=8, low=60)
    >>> FrameFlowConfig.from_dict(cfg.to_dict()) == cfg
    True
    """

    low: int = 36  # lowest modelled MIDI pitch
    keys: int = 64  # modelled keys; the rest of the 88 get a fixed Bernoulli
    depth: int = 6  # flow steps
    hidden: int = 128  # coupling and base MLP width
    rnn_hidden: int = 128
    cond_dim: int = 64
    dequant_hidden: int = 64
    alpha: float = 0.05
    mixing: str = "permute"  # between couplings: "permute" (fixed random) or "lu" (learned linear)
    components: int = 4  # logistic-mixture components of the base per dimension; 0: a Gaussian

    def __post_init__(self) -> None:
        positive_ints(self, ("keys", "depth", "hidden", "rnn_hidden", "cond_dim", "dequant_hidden"))
        if self.keys % 2:
            raise MusicflowError(f"FrameFlowConfig.keys must be even, got {self.keys}")
        if self.low < LOWEST or self.low + self.keys > LOWEST + ALL_KEYS:
            raise MusicflowError(f"FrameFlowConfig: keys {self.low}..{self.low + self.keys - 1} "
                                 f"leave the piano range {LOWEST}..{LOWEST + ALL_KEYS - 1}")
        logit_alpha(self)
        if self.mixing not in ("permute", "lu"):
            raise MusicflowError(f"FrameFlowConfig.mixing must be 'permute' or 'lu', got {self.mixing!r}")
        if not isinstance(self.components, int) or self.components < 0:
            raise MusicflowError(f"FrameFlowConfig.components must be >= 0, got {self.components!r}")

    @property
    def offset(self) -> int:
        """Column of the first modelled key in an 88-key frame."""
        return self.low - LOWEST


class FrameFlow(SequenceFlow):
    """Chain-rule sequence model whose per-frame conditionals are normalizing flows.

    Rolls are ``(B, T, 88)`` binary frames (column ``k`` is MIDI pitch ``21 + k``); the
    :class:`~musicflow.flows.base.Flow` methods take the musicflow layout ``(B, 1, 88, T)``.
    """

    def __init__(self, config: FrameFlowConfig | None = None) -> None:
        super().__init__()
        cfg = config if config is not None else FrameFlowConfig()
        self.config = cfg
        k = cfg.keys
        self.rnn = nn.GRU(k, cfg.rnn_hidden, batch_first=True)
        self.h0 = nn.Parameter(torch.zeros(1, 1, cfg.rnn_hidden))  # the learned "no context" state
        self.to_cond = nn.Sequential(nn.Linear(cfg.rnn_hidden, cfg.cond_dim), nn.ReLU())
        self.dequantizer = FrameDequantizer(k, cfg.dequant_hidden, cfg.cond_dim)
        self.logit = Logit(cfg.alpha)
        self.norms = nn.ModuleList(ActNorm(k) for _ in range(cfg.depth))
        self.mixes = nn.ModuleList(LUMixing(k) if cfg.mixing == "lu" else Permutation(k, seed=i)
                                   for i in range(cfg.depth))
        self.couplings = nn.ModuleList(FrameCoupling(k, cfg.hidden, cfg.cond_dim) for _ in range(cfg.depth))
        self.base = FrameBase(k, cfg.hidden, cfg.cond_dim, cfg.components)
        # log P(off), log P(on) of the keys outside the modelled range; fit_outside sets them.
        outside = ALL_KEYS - k
        self.register_buffer("outside_logp", torch.log(torch.tensor([[1 - 1e-4, 1e-4]] * outside)))

    # -- pieces of the model ------------------------------------------------------------------

    def _inside(self, rolls: torch.Tensor) -> torch.Tensor:
        o = self.config.offset
        return rolls[..., o : o + self.config.keys]

    def _outside(self, rolls: torch.Tensor) -> torch.Tensor:
        o = self.config.offset
        return torch.cat([rolls[..., :o], rolls[..., o + self.config.keys :]], dim=-1)

    def conditions(self, rolls: torch.Tensor) -> torch.Tensor:
        """``c_t`` for every frame ``t`` of ``(B, T, 88)`` rolls, from the frames before it only."""
        x = self._inside(rolls).to(self.h0.dtype)
        shifted = torch.cat([x.new_zeros(x.shape[0], 1, x.shape[2]), x[:, :-1]], dim=1)
        out, _ = self.rnn(shifted, self.h0.expand(1, x.shape[0], -1).contiguous())
        return self.to_cond(out)

    def _flow(self, w: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logdet = w.new_zeros(w.shape[0])
        for norm, mix, coupling in zip(self.norms, self.mixes, self.couplings):
            y, ld = norm(w[:, :, None, None])
            w, logdet = y[:, :, 0, 0], logdet + ld
            w, ld = mix(w)
            logdet = logdet + ld
            w, ld = coupling(w, c)
            logdet = logdet + ld
        return w, logdet

    def _flow_inverse(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        for norm, mix, coupling in reversed(list(zip(self.norms, self.mixes, self.couplings))):
            z, _ = coupling.inverse(z, c)
            z, _ = mix.inverse(z)
            z = norm.inverse(z[:, :, None, None])[0][:, :, 0, 0]
        return z

    def frame_log_prob(self, x: torch.Tensor, c: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Lower bound on ``log P(x | c)`` in nats for ``N`` frames ``x`` ``(N, 88)``, given
        conditions ``c`` ``(N, cond_dim)`` and dequantization noise ``eps`` ``(N, keys)``."""
        inside = self._inside(x).to(c.dtype)
        u, log_q = self.dequantizer(inside, c, eps)
        w, ld_logit = self.logit((inside + u) / 2)
        z, ld_flow = self._flow(w, c)
        log_pz = self.base.log_prob(z, c)
        # -keys ln 2: the density of v = (x + u) / 2 turned into that of x + u.
        flow_part = log_pz + ld_flow + ld_logit - self.config.keys * math.log(2) - log_q
        out = self._outside(x).long()
        bern = self.outside_logp.gather(1, out.t()).sum(dim=0) if out.shape[1] else 0.0
        return flow_part + bern

    # -- likelihoods --------------------------------------------------------------------------

    def sequence_log_prob(
        self,
        rolls: torch.Tensor,
        lengths: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        eps: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``log p(x_t | x_<t)`` (lower bounds, nats) for every frame, ``(B, T)``, zero past
        each piece's length. ``eps`` ``(B, T, keys)`` fixes the dequantization noise."""
        self._check_rolls(rolls)
        b, t, k = rolls.shape
        rolls = rolls.to(self.h0.dtype)
        c = self.conditions(rolls)
        if eps is None:
            eps = draw(torch.randn, b, t, self.config.keys, generator=generator, device=rolls.device,
                       dtype=rolls.dtype)
        x, c, eps = rolls.reshape(b * t, k), c.reshape(b * t, -1), eps.reshape(b * t, -1)
        return self._per_frame(rolls, lengths, lambda keep: self.frame_log_prob(x[keep], c[keep], eps[keep]))

    def log_prob(
        self,
        x: torch.Tensor,
        cond: Condition,
        generator: torch.Generator | None = None,
        eps: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Lower bound on ``log P(window | frames before it)``, ``(B,)``, for a window ``x``
        ``(B, 1, 88, W)`` and ``cond.context`` ``(B, 1, 88, T_ctx)`` (``None``: the piece starts
        with the window). ``eps`` ``(B, W, keys)`` fixes the window's dequantization noise."""
        window = self._frames(x, "x")
        w = window.shape[1]
        if cond.context is None:
            rolls = window
        else:
            rolls = torch.cat([self._frames(cond.context, "cond.context").to(window.dtype), window], dim=1)
        if eps is not None:
            eps = torch.cat([eps.new_zeros(eps.shape[0], rolls.shape[1] - w, eps.shape[2]), eps], dim=1)
        return self.sequence_log_prob(rolls, generator=generator, eps=eps)[:, -w:].sum(dim=1)

    # -- fitting the fixed part and sampling --------------------------------------------------

    def modelled_keys(self) -> slice:
        """The keys ``low .. low + keys - 1``; the others get the fixed Bernoulli."""
        return slice(self.config.offset, self.config.offset + self.config.keys)

    def prepare(self, frames: torch.Tensor, first_batch, generator: torch.Generator | None = None) -> None:
        """Fit the Bernoulli of the keys outside the modelled range on the training ``frames``,
        then initialise ActNorm from ``first_batch()``."""
        self.fit_outside(frames)
        self.initialize_sequences(*first_batch(), generator=generator)

    @torch.no_grad()
    def fit_outside(self, frames: torch.Tensor, smoothing: float = 0.5) -> None:
        """Set the Bernoulli of the keys outside the modelled range from training frames
        ``(N, 88)``: ``P(on) = (count + smoothing) / (N + 2 smoothing)``."""
        out = self._outside(frames.float())
        p = (out.sum(dim=0) + smoothing) / (out.shape[0] + 2 * smoothing)
        self.outside_logp.copy_(torch.stack([torch.log1p(-p), torch.log(p)], dim=1))

    @torch.no_grad()
    def initialize_sequences(
        self, rolls: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator | None = None
    ) -> None:
        """Data-dependent ActNorm initialisation from a batch of pieces."""
        for m in self.modules():
            if isinstance(m, ActNorm):
                m.initialized.fill_(False)
        was = self.training
        self.train()
        keep = torch.arange(rolls.shape[1])[None, :] < lengths[:, None]
        c = self.conditions(rolls)[keep]
        x = rolls[keep]
        eps = draw(torch.randn, x.shape[0], self.config.keys, generator=generator, device=x.device)
        self.frame_log_prob(x, c, eps)
        self.train(was)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        cond: Condition | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        frames: int = 16,
    ) -> torch.Tensor:
        """``n`` sequences of ``frames`` binary frames, ``(n, 1, 88, frames)``, continuing
        ``cond.context`` when given. Keys outside the modelled range stay silent."""
        if n < 1 or frames < 1:
            raise MusicflowError(f"sample: n and frames must be positive, got {n}, {frames}")
        ctx = None if cond is None or cond.context is None else self._frames(cond.context, "cond.context")
        h = self.h0.expand(1, n, -1).contiguous()
        prev = torch.zeros(n, 1, self.config.keys, device=self.h0.device)
        if ctx is not None:  # read the context; the last frame is the next step's input
            seq = torch.cat([prev, self._inside(ctx.expand(n, -1, -1))[:, :-1]], dim=1)
            _, h = self.rnn(seq, h)
            prev = self._inside(ctx.expand(n, -1, -1))[:, -1:]
        out = []
        for _ in range(frames):
            o, h = self.rnn(prev, h)
            c = self.to_cond(o[:, 0])
            w = self._flow_inverse(self.base.sample(c, temperature, generator), c)
            v, _ = self.logit.inverse(w)
            frame = quantize(v.clamp(0, 1))
            full = torch.zeros(n, ALL_KEYS, device=frame.device)
            full[:, self.config.offset : self.config.offset + self.config.keys] = frame
            out.append(full)
            prev = frame[:, None]
        return torch.stack(out, dim=2)[:, None]
