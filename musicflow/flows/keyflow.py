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

The same flow models a corpus's rolls (``states=3``: each of 48 keys off, held from the step
before, or struck), conditioned on the genre (weights over ``genres``, read by the LSTM and by
every key) and on where each step falls in its bar (``metre``: the step's phase, one-hot). The
transformer then has one bin per state and the bound stays tight.

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

import torch
import torch.nn.functional as F
from torch import nn

from musicflow.errors import MusicflowError
from musicflow.flows.base import Condition
from musicflow.flows.keydecode import KeyDecoding
from musicflow.flows.keyflow_config import KeyFlowConfig
from musicflow.flows.rng import draw
from musicflow.flows.sequence import SequenceFlow
from musicflow.flows.styles import StyleAdapters, StyleColumns

__all__ = ["KeyFlow", "KeyFlowConfig"]


class _Block(nn.Module):
    """``h + W2 relu(W1 relu(h))`` per key on channel-last features ``(N, 88, C)``, dropout between."""

    def __init__(self, channels: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.ReLU(), nn.Linear(channels, channels), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(channels, channels))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.net(h)


class KeyFlow(KeyDecoding, SequenceFlow):
    """Chain-rule sequence model over time and keys whose conditionals form an autoregressive
    flow with a tight dequantization bound (see the module docstring).

    Rolls are ``(B, T, keys)`` frames of key states ``0 .. states - 1`` as floats (the benchmark:
    binary, column ``k`` is MIDI pitch ``21 + k``); the :class:`~musicflow.flows.base.Flow`
    methods take the musicflow layout, ``(B, 1, 88, T)`` for the benchmark and onset/sustain rolls
    ``(B, 2, keys, T)`` for a corpus. ``genre`` is ``(B, genres)`` weights and ``phase`` ``(B, T)``
    the step of each frame in its bar, for a flow that reads them.
    """

    #: The density is constant on every dequantization cell: the bound equals the discrete NLL.
    tight_dequantization = True

    def __init__(self, config: KeyFlowConfig | None = None) -> None:
        super().__init__()
        cfg = config if config is not None else KeyFlowConfig()
        self.config = cfg
        c, k, s = cfg.channels, cfg.keys, cfg.states - 1
        self.rnn = nn.LSTM(s * k + cfg.metre + cfg.genres, cfg.rnn_hidden, cfg.rnn_layers, batch_first=True,
                           dropout=cfg.dropout if cfg.rnn_layers > 1 else 0.0)
        self.h0 = nn.Parameter(torch.zeros(cfg.rnn_layers, 1, cfg.rnn_hidden))
        self.c0 = nn.Parameter(torch.zeros(cfg.rnn_layers, 1, cfg.rnn_hidden))
        self.drop = nn.Dropout(cfg.dropout)
        self.from_state = nn.Linear(cfg.rnn_hidden, c * k)
        self.from_history = nn.Conv1d(cfg.history * s, c, 2 * cfg.reach + 1, padding=cfg.reach)
        self.from_below = nn.Conv1d(s, c, k, bias=False)  # fed `keys` pads on the left
        self.from_genre = nn.Linear(cfg.genres, c, bias=False) if cfg.genres else None
        # A learned style's columns: what it adds to the LSTM's gate inputs, and to every key.
        self.styles = StyleColumns(cfg.styles, 4 * cfg.rnn_hidden, c) if cfg.styles else None
        self.adapters = (StyleAdapters(cfg.styles, k, c, cfg.rnn_hidden, cfg.adapter_rank)
                         if cfg.styles and cfg.adapter_rank else None)
        self.position = nn.Parameter(torch.zeros(k, c))
        self.blocks = nn.Sequential(*(_Block(c, cfg.dropout) for _ in range(cfg.blocks)))
        self.to_logit = nn.Linear(c, s)

    @property
    def keys(self) -> int:
        """Keys per frame."""
        return self.config.keys

    # -- what the conditioner reads -----------------------------------------------------------

    def onehot(self, x: torch.Tensor) -> torch.Tensor:
        """Key states ``(..., keys)`` as indicators of the states above 0, ``(..., states - 1, keys)``
        (a binary frame is its own indicator)."""
        if self.config.states == 2:
            return x.unsqueeze(-2)
        return torch.stack([(x == v).to(x.dtype) for v in range(1, self.config.states)], dim=-2)

    def _inputs(self, frames: torch.Tensor, genre: torch.Tensor | None, phase: torch.Tensor | None):
        """The LSTM's input for each step ``(B, T, ...)``: the frame before it, its phase in the bar
        and the genre (both known before the step sounds)."""
        b, t, _ = frames.shape
        parts = [self.onehot(frames).flatten(2)]
        if self.config.metre:
            if phase is None:
                raise MusicflowError("this KeyFlow reads each step's phase in its bar: give phase (B, T)")
            metre = self.config.metre
            parts.append(F.one_hot(phase.long().clamp(0, metre - 1), metre).to(frames.dtype))
        if self.config.genres:
            if genre is None or genre.shape[-1] != self.config.genres:
                raise MusicflowError(f"this KeyFlow is conditioned on {self.genres} genres: give "
                                     f"genre weights (B, {self.genres})")
            parts.append(genre.to(frames.dtype)[:, None, :].expand(b, t, -1))
        return torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]

    @property
    def genres(self) -> int:
        """Genre slots the flow reads: its trained genres, then its learned styles."""
        return self.config.genres + self.config.styles

    def _split(self, genre: torch.Tensor | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        if self.styles is None:
            return genre, None
        return self.styles.split(genre, self.config.genres)

    def recur(self, frames: torch.Tensor, genre: torch.Tensor | None, phase: torch.Tensor | None, h,
              drop: bool = False):
        """The LSTM over the steps whose previous frames are ``frames`` ``(B, T, keys)``, from
        state ``h``: its outputs and last state."""
        base, extra = self._split(genre)
        x = self._inputs(frames, base, phase)
        x = self.drop(x) if drop else x
        return self.rnn(x, h) if extra is None else self.styles.recur(self.rnn, x, extra, h)

    def genre_columns(self) -> tuple[torch.Tensor, torch.Tensor]:
        """What each genre slot adds to the LSTM's gate inputs ``(4 * rnn_hidden, genres)`` and to
        every key's features ``(channels, genres)``: the trained genres' columns, then the styles'."""
        g = self.config.genres
        rnn, feat = self.rnn.weight_ih_l0[:, -g:], self.from_genre.weight
        if self.styles is not None:
            rnn = torch.cat([rnn, self.styles.columns[0]], 1)
            feat = torch.cat([feat, self.styles.columns[1]], 1)
        return rnn, feat

    def _initial(self, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.h0.expand(-1, b, -1).contiguous(), self.c0.expand(-1, b, -1).contiguous()

    def states(self, rolls: torch.Tensor, genre: torch.Tensor | None = None,
               phase: torch.Tensor | None = None) -> torch.Tensor:
        """The LSTM state ``h_t`` ``(B, T, rnn_hidden)`` for every frame, from the frames before it."""
        shifted = F.pad(rolls, (0, 0, 1, 0))[:, :-1]
        out, _ = self.recur(shifted, genre, phase, self._initial(rolls.shape[0]), drop=True)
        return self.drop(out)

    def history(self, rolls: torch.Tensor) -> torch.Tensor:
        """The previous ``history`` frames of every frame as indicators, ``(B, T, history * (states
        - 1), keys)``, most recent first."""
        p, t = self.config.history, rolls.shape[1]
        ind = F.pad(self.onehot(rolls), (0, 0, 0, 0, p, 0))
        return torch.stack([ind[:, p - j : p - j + t] for j in range(1, p + 1)], dim=2).flatten(2, 3)

    def logits(self, x: torch.Tensor, state: torch.Tensor, past: torch.Tensor,
               genre: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of each key's states above 0 against 0, ``(N, keys)`` for a binary flow and
        ``(N, keys, states - 1)`` otherwise, for frames ``x`` ``(N, keys)`` given their LSTM states
        ``(N, rnn_hidden)``, previous frames ``(N, history * (states - 1), keys)`` and genres. The
        logits of key ``k`` do not depend on ``x[:, k:]``."""
        k = self.keys
        below = self.from_below(F.pad(self.onehot(x), (k, 0)))[..., :-1].transpose(1, 2)
        out = self.to_logit(self.blocks(self.frame_features(state, past, genre) + below))
        return out[..., 0] if self.config.states == 2 else out

    def frame_features(self, state: torch.Tensor, past: torch.Tensor,
                       genre: torch.Tensor | None = None) -> torch.Tensor:
        """What every key of a frame reads from the past: ``(N, keys, channels)``."""
        h = self.from_state(state).view(state.shape[0], self.keys, self.config.channels)
        h = h + self.from_history(past).transpose(1, 2) + self.position
        if self.from_genre is not None:
            base, extra = self._split(genre)
            h = h + self.from_genre(base.to(h.dtype))[:, None, :]
            if extra is not None:
                h = h + self.styles.term(extra, 1)[:, None, :]
                if self.adapters is not None:
                    h = h + self.adapters(extra, state)
        return h

    def step_features(self, rolls: torch.Tensor, genre: torch.Tensor | None = None,
                      phase: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`frame_features` of every step of ``rolls`` ``(B, T, keys)``, each given the real
        steps before it (teacher forcing): ``(B, T, keys, channels)``."""
        b, t, k = rolls.shape
        g = None if genre is None else genre.repeat_interleave(t, 0)
        features = self.frame_features(self.states(rolls, genre, phase).flatten(0, 1),
                                       self.history(rolls).flatten(0, 1), g)
        return features.view(b, t, k, -1)

    def key_logit(self, features: torch.Tensor, frame: torch.Tensor, key: int) -> torch.Tensor:
        """The logits of key ``key`` alone (``(N,)`` binary, ``(N, states - 1)`` otherwise) from
        :meth:`frame_features` and the keys below it in ``frame`` ``(N, keys)``: one key's share of
        :meth:`logits`, for sampling key by key."""
        k = self.keys
        window = F.pad(self.onehot(frame), (k, 0))[..., key : key + k]  # keys key-k .. key-1
        below = window.flatten(1) @ self.from_below.weight.flatten(1).t()
        out = self.to_logit(self.blocks(features[:, key] + below))
        return out[:, 0] if self.config.states == 2 else out

    # -- likelihoods --------------------------------------------------------------------------

    def key_log_prob(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """``log P(x_k)`` per key: the log-derivative of the transformer at ``x + u``."""
        if self.config.states == 2:
            return -F.binary_cross_entropy_with_logits(logits, x, reduction="none")
        full = F.log_softmax(F.pad(logits, (1, 0)), dim=-1)
        return full.gather(-1, x.long()[..., None])[..., 0]

    def bins(self, logits: torch.Tensor, temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Each state's bin of the base interval: lower edges and widths ``(..., states)``."""
        if self.config.states == 2:
            p_off = torch.sigmoid(-logits / temperature)
            return (torch.stack([torch.zeros_like(p_off), p_off], -1),
                    torch.stack([p_off, 1 - p_off], -1))
        p = torch.softmax(F.pad(logits / temperature, (1, 0)), dim=-1)
        return p.cumsum(-1) - p, p

    def sequence_log_prob(
        self,
        rolls: torch.Tensor,
        lengths: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        eps: torch.Tensor | None = None,
        genre: torch.Tensor | None = None,
        phase: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``log p(x_t | x_<t)`` (nats) for every frame, ``(B, T)``, zero past each piece's length.

        The dequantization bound is tight for this flow, so no noise is drawn: ``generator`` and
        ``eps`` are accepted for the benchmark's common interface and change nothing."""
        self._check_rolls(rolls)
        b, t, k = rolls.shape
        rolls = rolls.to(self.h0.dtype)
        states, past = self.states(rolls, genre, phase), self.history(rolls)
        x, states, past = rolls.reshape(b * t, k), states.reshape(b * t, -1), past.reshape(b * t, -1, k)
        g = None if genre is None else genre.to(rolls.dtype).repeat_interleave(t, 0)
        return self._per_frame(rolls, lengths, lambda keep: self.key_log_prob(
            x[keep], self.logits(x[keep], states[keep], past[keep], None if g is None else g[keep])).sum(1))

    def _frames(self, x: torch.Tensor, name: str) -> torch.Tensor:
        """A window in the musicflow layout as ``(B, T, keys)`` key states; another shape is a
        one-line error."""
        if self.config.states == 2:
            return super()._frames(x, name)
        if x.dim() != 4 or x.shape[1] != 2 or x.shape[2] != self.keys:
            raise MusicflowError(f"{name} must have shape (B, 2, {self.keys}, T), got {tuple(x.shape)}")
        return (x[:, 0] + x[:, 1]).transpose(1, 2)

    def _phases(self, b: int, t: int, device) -> torch.Tensor | None:
        """Phases for a window given without bar lines: steps of a 4/4 bar from its first step."""
        if not self.config.metre:
            return None
        return (torch.arange(t, device=device) % min(16, self.config.metre))[None].expand(b, -1)

    def log_prob(self, x: torch.Tensor, cond: Condition, generator: torch.Generator | None = None,
                 eps: torch.Tensor | None = None) -> torch.Tensor:
        """``log P(window | frames before it)``, ``(B,)``, for a window ``x`` in the musicflow layout
        and ``cond.context`` likewise (``None``: the piece starts with the window), under
        ``cond.genre`` for a genre-conditioned flow; a flow that reads the metre counts 4/4 bars from
        the context's first step. Quantized ``x`` only: ``x + u`` has the same density as ``x``."""
        window = self._frames(x, "x").floor()
        w = window.shape[1]
        rolls = window if cond.context is None else torch.cat(
            [self._frames(cond.context, "cond.context").to(window.dtype), window], dim=1)
        genre = cond.genre if self.config.genres else None
        phase = self._phases(rolls.shape[0], rolls.shape[1], rolls.device)
        return self.sequence_log_prob(rolls, genre=genre, phase=phase)[:, -w:].sum(dim=1)

    # -- the flow's two directions ------------------------------------------------------------

    def encode_frames(self, y: torch.Tensor, genre: torch.Tensor | None = None,
                      phase: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Dequantized rolls ``y`` ``(B, T, keys)`` in ``[0, states)`` to base points in ``[0, 1)``
        and the log-determinant per frame ``(B, T)`` (the frame's log-probability)."""
        if (y < 0).any() or (y >= self.config.states).any():
            raise MusicflowError(f"dequantized rolls must lie in [0, {self.config.states})")
        x = y.floor()
        b, t, k = x.shape
        g = None if genre is None else genre.to(x.dtype).repeat_interleave(t, 0)
        logits = self.logits(x.reshape(b * t, k), self.states(x, genre, phase).reshape(b * t, -1),
                             self.history(x).reshape(b * t, -1, k), g)
        logits = logits.reshape(b, t, k, -1) if self.config.states > 2 else logits.reshape(b, t, k)
        lo, width = self.bins(logits)
        idx = x.long()[..., None]
        z = lo.gather(-1, idx)[..., 0] + width.gather(-1, idx)[..., 0] * (y - x)
        return z, self.key_log_prob(x, logits).sum(-1)

    @torch.no_grad()
    def decode_frames(self, z: torch.Tensor, context: torch.Tensor | None = None,
                      temperature: float = 1.0, genre: torch.Tensor | None = None,
                      phase: torch.Tensor | None = None) -> torch.Tensor:
        """Base points ``z`` ``(B, T, keys)`` in ``[0, 1)`` to dequantized frames ``y`` in ``[0,
        states)`` (the inverse of :meth:`encode_frames`; ``y.floor()`` are the key states), frame by
        frame and key by key, continuing ``context`` ``(B, T_ctx, keys)`` when given. ``phase``
        ``(B, T_ctx + T)`` covers the context and the new frames. ``temperature`` divides the
        logits (1: the model's own distribution)."""
        if temperature <= 0:
            raise MusicflowError(f"temperature must be positive, got {temperature}")
        b, t, k = z.shape
        rolls = z.new_zeros(b, 0, k) if context is None else context.to(z.dtype)
        n_ctx = rolls.shape[1]
        ph = (lambda a, e: None) if phase is None else (lambda a, e: phase[:, a:e])
        h = self._initial(b)
        prev = z.new_zeros(b, 1, k)
        if n_ctx:
            _, h = self.recur(torch.cat([prev, rolls[:, :-1]], dim=1), genre, ph(0, n_ctx), h)
            prev = rolls[:, -1:]
        y = torch.zeros_like(z)
        for step in range(t):
            out, h = self.recur(prev, genre, ph(n_ctx + step, n_ctx + step + 1), h)
            rolls = torch.cat([rolls, z.new_zeros(b, 1, k)], dim=1)
            recent = rolls[:, -self.config.history - 1:]
            features = self.frame_features(out[:, 0], self.history(recent)[:, -1], genre)
            frame = z.new_zeros(b, k)
            for key in range(k):
                lo, width = self.bins(self.key_logit(features, frame, key), temperature)
                u = z[:, step, key]
                state = (u[:, None] >= (lo + width)[:, :-1]).sum(-1)
                frame[:, key] = state.to(z.dtype)
                i = state[:, None]
                y[:, step, key] = state + (u - lo.gather(1, i)[:, 0]) / width.gather(1, i)[:, 0]
            rolls[:, -1] = frame
            prev = frame[:, None]
        # (u - lo) / width can round up to 1 in float: keep y inside [0, states).
        return torch.minimum(y, torch.floor(y) + torch.nextafter(y.new_tensor(1.0), y.new_tensor(0.0)))

    @torch.no_grad()
    def sample(self, n: int, cond: Condition | None = None, temperature: float = 1.0,
               generator: torch.Generator | None = None, frames: int = 16) -> torch.Tensor:
        """``n`` sequences of ``frames`` frames in the musicflow layout (``(n, 1, 88, frames)`` for
        the benchmark, onset/sustain ``(n, 2, keys, frames)`` for a corpus), continuing
        ``cond.context`` when given, under ``cond.genre`` for a genre-conditioned flow."""
        if n < 1 or frames < 1:
            raise MusicflowError(f"sample: n and frames must be positive, got {n}, {frames}")
        ref = self.h0
        ctx = None if cond is None or cond.context is None else self._frames(cond.context, "cond.context")
        genre = None
        if self.config.genres:
            if cond is None:
                raise MusicflowError("this KeyFlow is conditioned on the genre: give cond.genre")
            genre = cond.genre.to(ref.device, ref.dtype).expand(n, -1)
        n_ctx = 0 if ctx is None else ctx.shape[1]
        z = draw(torch.rand, n, frames, self.keys, generator=generator, device=ref.device, dtype=ref.dtype)
        y = self.decode_frames(z, None if ctx is None else ctx.expand(n, -1, -1), temperature, genre,
                               self._phases(n, n_ctx + frames, ref.device))
        return self.to_layout(y.floor())

    def to_layout(self, x: torch.Tensor) -> torch.Tensor:
        """Key states ``(B, T, keys)`` in the musicflow layout: ``(B, 1, keys, T)`` binary, or
        onset/sustain ``(B, 2, keys, T)`` (struck: both; held: sustain only)."""
        x = x.transpose(1, 2)
        if self.config.states == 2:
            return x[:, None]
        return torch.stack([(x == 2).to(x.dtype), (x >= 1).to(x.dtype)], dim=1)
