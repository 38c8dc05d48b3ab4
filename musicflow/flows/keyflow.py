"""A flow over one frame of keys, one key at a time, conditioned on every frame before it.

For sequences of binary frames (the polyphonic benchmark of Boulanger-Lewandowski et al. 2012:
one frame per time step, 88 piano keys) the model factorises a piece by the chain rule over time
and, inside each frame, over the keys from the lowest up:

    log p(x_1..x_T) = sum_t sum_k log P(x_t,k | x_t,<k, x_<t).

It is a normalizing flow on the dequantized frame ``y = x + u`` (``u`` uniform on ``[0, 1)^88``):
an autoregressive transform whose transformer for key ``k`` is a monotone piecewise-linear map with
two bins (Müller et al. 2019), ``[0, 1) -> [0, P(off))`` and ``[1, 2) -> [P(off), 1)``, onto a
uniform base on ``[0, 1)^88``. The bins' masses come from a conditioner that reads the keys below
``k`` of the same frame (through ``floor(y)``, so the Jacobian stays triangular) and the frames
before ``t``. Its density is constant on every dequantization cell, so the uniform-dequantization
bound ``E_u[log p(x + u)]`` *equals* the discrete log-probability: there is no dequantization gap
to learn away (which variational dequantization otherwise spends capacity on), and the plain and
importance-weighted bounds coincide with it whatever the draws.

The conditioner:

* an LSTM reads the frames before ``t`` (a silent frame and learned initial states stand in before
  the first) and gives a state ``h_t``; a linear map turns it into ``channels`` features per key;
* a convolution along pitch over the previous ``history`` frames, reaching ``reach`` semitones each
  side, gives features that move with transposition (voice leading: where each voice was);
* a causal convolution along pitch over the frame itself reads every key below ``k`` (what has
  already sounded in the chord);
* a learned embedding per key; the sum passes through ``blocks`` residual per-key MLP blocks to
  the logit of ``P(x_t,k = 1)``.

Dropout on the LSTM's input and output and inside the blocks regularises the small corpora.

>>> flow = KeyFlow(KeyFlowConfig(rnn_hidden=8, channels=4, reach=3, blocks=1))
>>> rolls = torch.zeros(2, 5, 88); rolls[:, :, 60 - 21] = 1
>>> flow.sequence_log_prob(rolls, torch.tensor([5, 3])).shape
torch.Size([2, 5])

References: Larochelle & Murray, "NADE" (2011); Boulanger-Lewandowski et al., "RNN-NADE" (2012);
Papamakarios et al., "Masked Autoregressive Flow" (2017); Müller et al., "Neural Importance
Sampling" (2019) for the piecewise-linear transformer; Johnson, "Generating polyphonic music using
tied parallel networks" (2017) for features that move with transposition.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from musicflow.errors import MusicflowError
from musicflow.flows.base import Condition, ConfigDict
from musicflow.flows.checks import positive_ints
from musicflow.flows.rng import draw
from musicflow.flows.sequence import ALL_KEYS, SequenceFlow


@dataclass(frozen=True)
class KeyFlowConfig(ConfigDict):
    """Everything needed to rebuild a :class:`KeyFlow`.

    >>> cfg = KeyFlowConfig(channels=32)
    >>> KeyFlowConfig.from_dict(cfg.to_dict()) == cfg
    True
    """

    rnn_hidden: int = 256  # LSTM state over the past frames
    rnn_layers: int = 1
    channels: int = 32  # features per key
    history: int = 2  # previous frames the pitch convolution reads
    reach: int = 24  # semitones each side that convolution sees
    blocks: int = 1  # residual per-key blocks before the logit
    dropout: float = 0.3

    def __post_init__(self) -> None:
        positive_ints(self, ("rnn_hidden", "rnn_layers", "channels", "history", "reach", "blocks"))
        if not 0 <= self.dropout < 1:
            raise MusicflowError(f"KeyFlowConfig.dropout must be in [0, 1), got {self.dropout!r}")


class _Block(nn.Module):
    """``h + W2 relu(W1 relu(h))`` per key on channel-last features ``(N, 88, C)``, dropout between."""

    def __init__(self, channels: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.ReLU(), nn.Linear(channels, channels), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(channels, channels))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.net(h)


class KeyFlow(SequenceFlow):
    """Chain-rule sequence model over time and keys whose conditionals form an autoregressive
    flow with a tight dequantization bound (see the module docstring).

    Rolls are ``(B, T, 88)`` binary frames (column ``k`` is MIDI pitch ``21 + k``); the
    :class:`~musicflow.flows.base.Flow` methods take the musicflow layout ``(B, 1, 88, T)``.
    """

    #: The density is constant on every dequantization cell: the bound equals the discrete NLL.
    tight_dequantization = True

    def __init__(self, config: KeyFlowConfig | None = None) -> None:
        super().__init__()
        cfg = config if config is not None else KeyFlowConfig()
        self.config = cfg
        c = cfg.channels
        self.rnn = nn.LSTM(ALL_KEYS, cfg.rnn_hidden, cfg.rnn_layers, batch_first=True,
                           dropout=cfg.dropout if cfg.rnn_layers > 1 else 0.0)
        self.h0 = nn.Parameter(torch.zeros(cfg.rnn_layers, 1, cfg.rnn_hidden))
        self.c0 = nn.Parameter(torch.zeros(cfg.rnn_layers, 1, cfg.rnn_hidden))
        self.drop = nn.Dropout(cfg.dropout)
        self.from_state = nn.Linear(cfg.rnn_hidden, c * ALL_KEYS)
        self.from_history = nn.Conv1d(cfg.history, c, 2 * cfg.reach + 1, padding=cfg.reach)
        self.from_below = nn.Conv1d(1, c, ALL_KEYS, bias=False)  # fed ALL_KEYS pads on the left
        self.position = nn.Parameter(torch.zeros(ALL_KEYS, c))
        self.blocks = nn.Sequential(*(_Block(c, cfg.dropout) for _ in range(cfg.blocks)))
        self.to_logit = nn.Linear(c, 1)

    # -- the conditioner ----------------------------------------------------------------------

    def states(self, rolls: torch.Tensor) -> torch.Tensor:
        """The LSTM state ``h_t`` ``(B, T, rnn_hidden)`` for every frame, from the frames before it."""
        b = rolls.shape[0]
        shifted = F.pad(rolls, (0, 0, 1, 0))[:, :-1]
        h0 = (self.h0.expand(-1, b, -1).contiguous(), self.c0.expand(-1, b, -1).contiguous())
        out, _ = self.rnn(self.drop(shifted), h0)
        return self.drop(out)

    def history(self, rolls: torch.Tensor) -> torch.Tensor:
        """The previous ``history`` frames of every frame, ``(B, T, history, 88)``, most recent first."""
        p = self.config.history
        padded = F.pad(rolls, (0, 0, p, 0))
        t = rolls.shape[1]
        return torch.stack([padded[:, p - j : p - j + t] for j in range(1, p + 1)], dim=2)

    def logits(self, x: torch.Tensor, state: torch.Tensor, past: torch.Tensor) -> torch.Tensor:
        """Logits of ``P(x_k = 1 | x_<k, past)`` ``(N, 88)`` for frames ``x`` ``(N, 88)`` given their
        LSTM states ``(N, rnn_hidden)`` and previous frames ``(N, history, 88)``. The logit of key
        ``k`` does not depend on ``x[:, k:]``."""
        below = self.from_below(F.pad(x[:, None], (ALL_KEYS, 0)))[..., :-1].transpose(1, 2)
        return self.to_logit(self.blocks(self.frame_features(state, past) + below))[..., 0]

    def frame_features(self, state: torch.Tensor, past: torch.Tensor) -> torch.Tensor:
        """What every key of a frame reads from the past: ``(N, 88, channels)``."""
        h = self.from_state(state).view(state.shape[0], ALL_KEYS, self.config.channels)
        return h + self.from_history(past).transpose(1, 2) + self.position

    def key_logit(self, features: torch.Tensor, frame: torch.Tensor, key: int) -> torch.Tensor:
        """The logit of key ``key`` alone ``(N,)``, from :meth:`frame_features` and the keys below it
        in ``frame`` ``(N, 88)``: one key's share of :meth:`logits`, for sampling key by key."""
        window = F.pad(frame, (ALL_KEYS, 0))[:, key : key + ALL_KEYS]  # keys key-88 .. key-1
        below = window @ self.from_below.weight[:, 0].t()
        return self.to_logit(self.blocks(features[:, key] + below))[:, 0]

    # -- likelihoods --------------------------------------------------------------------------

    @staticmethod
    def key_log_prob(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """``log P(x_k)`` per key: the log-derivative of the two-bin transformer at ``x + u``."""
        return -F.binary_cross_entropy_with_logits(logits, x, reduction="none")

    def sequence_log_prob(
        self,
        rolls: torch.Tensor,
        lengths: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        eps: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``log p(x_t | x_<t)`` (nats) for every frame, ``(B, T)``, zero past each piece's length.

        The dequantization bound is tight for this flow, so no noise is drawn: ``generator`` and
        ``eps`` are accepted for the benchmark's common interface and change nothing."""
        self._check_rolls(rolls)
        b, t, k = rolls.shape
        rolls = rolls.to(self.h0.dtype)
        states, past = self.states(rolls), self.history(rolls)
        x, states, past = rolls.reshape(b * t, k), states.reshape(b * t, -1), past.reshape(b * t, -1, k)
        return self._per_frame(rolls, lengths, lambda keep: self.key_log_prob(
            x[keep], self.logits(x[keep], states[keep], past[keep])).sum(1))

    def log_prob(self, x: torch.Tensor, cond: Condition, generator: torch.Generator | None = None,
                 eps: torch.Tensor | None = None) -> torch.Tensor:
        """``log P(window | frames before it)``, ``(B,)``, for a window ``x`` ``(B, 1, 88, W)`` and
        ``cond.context`` ``(B, 1, 88, T_ctx)`` (``None``: the piece starts with the window).
        Binary ``x`` only: a dequantized ``x + u`` has the same density as ``x``."""
        window = self._frames(x, "x").floor()
        w = window.shape[1]
        rolls = window if cond.context is None else torch.cat(
            [self._frames(cond.context, "cond.context").to(window.dtype), window], dim=1)
        return self.sequence_log_prob(rolls)[:, -w:].sum(dim=1)

    # -- the flow's two directions ------------------------------------------------------------

    def encode_frames(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Dequantized rolls ``y`` ``(B, T, 88)`` in ``[0, 2)`` to base points in ``[0, 1)`` and the
        log-determinant per frame ``(B, T)`` (the frame's log-probability)."""
        if (y < 0).any() or (y >= 2).any():
            raise MusicflowError("dequantized rolls must lie in [0, 2)")
        x = y.floor()
        b, t, k = x.shape
        logits = self.logits(x.reshape(b * t, k), self.states(x).reshape(b * t, -1),
                             self.history(x).reshape(b * t, -1, k)).reshape(b, t, k)
        p_off = torch.sigmoid(-logits)
        u = y - x
        z = torch.where(x > 0, p_off + (1 - p_off) * u, p_off * u)
        return z, self.key_log_prob(x, logits).sum(-1)

    @torch.no_grad()
    def decode_frames(self, z: torch.Tensor, context: torch.Tensor | None = None,
                      temperature: float = 1.0) -> torch.Tensor:
        """Base points ``z`` ``(B, T, 88)`` in ``[0, 1)`` to dequantized frames ``y`` in ``[0, 2)``
        (the inverse of :meth:`encode_frames`; ``y.floor()`` are the binary frames), frame by frame
        and key by key, continuing binary ``context`` ``(B, T_ctx, 88)`` when given.
        ``temperature`` divides the logits (1: the model's own distribution)."""
        if temperature <= 0:
            raise MusicflowError(f"temperature must be positive, got {temperature}")
        b, t, k = z.shape
        rolls = z.new_zeros(b, 0, k) if context is None else context.to(z.dtype)
        h = (self.h0.expand(-1, b, -1).contiguous(), self.c0.expand(-1, b, -1).contiguous())
        prev = z.new_zeros(b, 1, k)
        if rolls.shape[1]:
            _, h = self.rnn(torch.cat([prev, rolls[:, :-1]], dim=1), h)
            prev = rolls[:, -1:]
        y = torch.zeros_like(z)
        for step in range(t):
            out, h = self.rnn(prev, h)
            rolls = torch.cat([rolls, z.new_zeros(b, 1, k)], dim=1)
            features = self.frame_features(out[:, 0], self.history(rolls)[:, -1])
            frame = z.new_zeros(b, k)
            for key in range(k):
                p_off = torch.sigmoid(-self.key_logit(features, frame, key) / temperature)
                u = z[:, step, key]
                on = u >= p_off
                frame[:, key] = on.to(z.dtype)
                y[:, step, key] = torch.where(on, 1 + (u - p_off) / (1 - p_off), u / p_off)
            rolls[:, -1] = frame
            prev = frame[:, None]
        # (u - p_off) / (1 - p_off) can round up to 1 in float: keep y inside [0, 2).
        return torch.minimum(y, torch.nextafter(y.new_tensor(2.0), y.new_tensor(0.0)))

    @torch.no_grad()
    def sample(self, n: int, cond: Condition | None = None, temperature: float = 1.0,
               generator: torch.Generator | None = None, frames: int = 16) -> torch.Tensor:
        """``n`` sequences of ``frames`` binary frames, ``(n, 1, 88, frames)``, continuing
        ``cond.context`` when given."""
        if n < 1 or frames < 1:
            raise MusicflowError(f"sample: n and frames must be positive, got {n}, {frames}")
        ref = self.h0
        ctx = None if cond is None or cond.context is None else self._frames(cond.context, "cond.context")
        z = draw(torch.rand, n, frames, ALL_KEYS, generator=generator, device=ref.device, dtype=ref.dtype)
        y = self.decode_frames(z, None if ctx is None else ctx.expand(n, -1, -1), temperature)
        return y.floor().transpose(1, 2)[:, None]
