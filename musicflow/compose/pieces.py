"""Composing with a sequence flow: a :class:`~musicflow.flows.keyflow.KeyFlow` that reads a piece
step by step from its start, under a genre and the bar lines.

Where a window flow decodes one latent per beat after a fixed context, the sequence flow decodes one
base point per key and step, given everything before it, in one pass: no inverse to iterate and no
candidates to resample (the model is sharp enough to sample plainly). Its base is uniform on
``[0, 1)``; the Composer's latents are standard normal ``(steps, keys)`` and pass through the normal
CDF, so variations, interpolation and saved latents work as for the window flows. A user's piece
encodes to the middle of each key's bin, which decodes back to the same piece exactly.

A genre mix is a product of the genres' experts: every key's distribution is the weighted
geometric mean of its distributions under each genre, renormalised, so a mix keeps what its parents
agree on and blends where they differ (the network never saw mixed genre vectors).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from musicflow.compose.composer import Composer
from musicflow.compose.genre import GenreArg
from musicflow.compose.infill import infill, parse_span
from musicflow.compose.latent import Result, new_seed
from musicflow.compose.options import Options, parse_time_signature
from musicflow.compose.phrases import default_share, restate
from musicflow.compose.reading import Input, MidiInput
from musicflow.errors import MusicflowError
from musicflow.flows.keydecode import AHEAD
from musicflow.flows.keyflow import KeyFlow
from musicflow.roll import bar_phases, key_states, states_roll

#: Steps per bar of the pieces the sequence flow composes (4/4 in sixteenths).
BAR = 16


def to_uniform(z: torch.Tensor) -> torch.Tensor:
    """Standard normal latents to the flow's uniform base (the normal CDF), inside ``[0, 1)``,
    computed in double precision so that narrow bins of improbable states survive a round trip."""
    u = 0.5 * torch.erfc(-z.double() / math.sqrt(2))  # accurate in the lower tail, where erf is not
    return u.clamp(0.0, 1.0 - 2**-24).float()


def to_normal(u: torch.Tensor) -> torch.Tensor:
    """The flow's base points back to standard normal latents (float32)."""
    u = u.double().clamp(1e-300, 1 - 2**-53)  # float32 u: 0 and 1 - 2**-24 are its extremes
    return (math.sqrt(2) * torch.erfinv(2 * u - 1)).float()


class PieceComposer(Composer):
    """The :class:`Composer` of a sequence flow; ``Composer.load`` returns one for such a checkpoint."""

    @staticmethod
    def handles(model) -> bool:
        return isinstance(model, KeyFlow) and model.config.genres > 0 and model.config.states == 3

    def __init__(self, checkpoint, decoding="exact", progress: bool = False):
        if decoding != "exact":
            raise MusicflowError("decoding: a sequence flow samples notes exactly (no threshold to set)")
        super().__init__(checkpoint, "exact", progress)
        #: The most steps one pass decodes when composing one piece (1: step by step; the pieces
        #: are the same either way, see :meth:`KeyFlow.decode_steps`).
        self.ahead = AHEAD

    def _window_sizes(self) -> tuple[int, int]:
        # Evaluation scores bars given 4 bars before them (bar phases counted from the context's
        # start); the Composer's own scoring reads the whole piece.
        return BAR, 4 * BAR

    @property
    def latent_dim(self) -> int:
        return self.model.config.keys

    # -- the model's two directions -------------------------------------------------------------
    def mixing(self, mix: str | None = None) -> str:
        """How this model samples a genre mix (:attr:`Options.mix`, which checks the name): by
        default a product of the genres' distributions."""
        return mix or "product"

    def _genre_rows(self, weights: torch.Tensor, n: int, mix: str = "product"
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The experts a mix ``weights`` ``(1 or n, G)`` draws on, as genre rows ``(E, G)``, and
        each piece's weight on each ``(n, E)``: for ``product``, the genres it uses, one-hot; for
        ``embed``, one expert, the mix itself (the same for every piece)."""
        if mix == "embed":
            if weights.shape[0] > 1 and not bool((weights == weights[:1]).all()):
                raise MusicflowError("mix embed: every piece of a batch takes the same genre mix")
            return weights[:1] / weights[:1].sum(), weights.new_ones(n, 1)
        weights = weights.expand(n, -1)
        used = torch.nonzero(weights.sum(0) > 0)[:, 0]
        return torch.eye(weights.shape[1])[used], weights[:, used] / weights[:, used].sum(1, keepdim=True)

    @torch.no_grad()
    def decode(self, u: torch.Tensor, weights: torch.Tensor, prefix: torch.Tensor | None,
               phase: torch.Tensor, temperature: float = 1.0, mix: str = "product") -> torch.Tensor:
        """Key states ``(n, T, keys)`` decoded from base points ``u`` ``(n, T, keys)`` after
        ``prefix`` ``(n, T0, keys)``, under a genre mix (by ``mix``: a product of experts, see the
        module, or the mixed embedding), ``phase`` ``(n, T0 + T)``."""
        n, t, _ = u.shape
        experts, share = self._genre_rows(weights, n, mix)
        with tqdm(total=t, desc="compose", unit="step", disable=not self.progress, leave=False) as bar:
            return self.model.decode_steps(u, experts, None if len(experts) == 1 else share, phase, prefix,
                                           temperature, self.ahead, bar.update)

    @torch.no_grad()
    def encode_states(self, states: torch.Tensor, weights: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        """The base point in the middle of each key's bin ``(n, T, keys)`` for key states
        ``(n, T, keys)`` read under one genre ``weights`` ``(1 or n, G)`` (or a mix, as a product of
        experts); decoding them under the same genre gives the states back."""
        n, t, k = states.shape
        model = self.model
        experts, share = self._genre_rows(weights, n)
        logp = []
        for g in experts:
            gen = g[None].expand(n, -1)
            logits = model.logits(states.reshape(n * t, k),
                                  model.states(states, gen, phase).reshape(n * t, -1),
                                  model.history(states).reshape(n * t, -1, k), gen.repeat_interleave(t, 0))
            logp.append(F.log_softmax(F.pad(logits, (1, 0)), -1).view(n, t, k, -1))
        mixed = torch.softmax(sum(s[:, None, None, None] * lp for s, lp in zip(share.T, logp)), -1)
        lo = mixed.cumsum(-1) - mixed
        idx = states.long()[..., None]
        return (lo.gather(-1, idx) + 0.5 * mixed.gather(-1, idx))[..., 0]

    # -- what the Composer's entry points call ---------------------------------------------------
    def _phases(self, n: int, steps: int, bars: np.ndarray | None = None) -> torch.Tensor:
        bars = np.arange(0, steps + BAR, BAR) if bars is None else bars
        return torch.from_numpy(bar_phases(bars, steps, self.model.config.metre)).long()[None].expand(n, -1)

    def _grow_states(self, z: torch.Tensor, weights: torch.Tensor, prefix: np.ndarray | None,
                     temperature: float = 1.0, bars: np.ndarray | None = None,
                     phase: torch.Tensor | None = None, mix: str = "product") -> np.ndarray:
        """Rolls ``(n, 2, P, T0 + T)``: normal latents ``z`` ``(n, T, keys)`` decoded after
        ``prefix`` roll ``(2, P, T0)`` (shared by the pieces), with bar lines ``bars`` (4/4 when
        ``None``) or each piece's own bar phases ``phase`` ``(n, T0 + T)``."""
        n, t, _ = z.shape
        pre = None
        if prefix is not None and prefix.shape[-1]:
            pre = torch.from_numpy(key_states(prefix)).float()[None].expand(n, -1, -1)
        t0 = 0 if pre is None else pre.shape[1]
        phase = self._phases(n, t0 + t, bars) if phase is None else phase
        states = self.decode(to_uniform(z), weights, pre, phase, temperature, mix)
        if pre is not None:
            states = torch.cat([pre, states], dim=1)
        return np.stack([states_roll(s) for s in states.numpy().astype(np.uint8)])

    def _latents(self, seed: int, steps: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(int(seed))
        return torch.randn(steps, self.latent_dim, generator=g)

    def sampling(self, guidance: float | None = None, candidates: int | None = None):
        if guidance not in (None, 1, 1.0) or candidates not in (None, 1):
            raise MusicflowError("guidance, candidates: the sequence flow samples plainly "
                                 "(use 1 or leave unset)")
        return 1.0, 1

    def encode(self, roll: np.ndarray, weights: torch.Tensor, outlines=None,
               bars: np.ndarray | None = None) -> torch.Tensor:
        """Normal latents ``(T, keys)`` of a roll with bar lines ``bars`` (4/4 when ``None``) under a
        genre (the middle of each key's bin)."""
        states = torch.from_numpy(key_states(roll)).float()[None]
        return to_normal(self.encode_states(states, weights, self._phases(1, states.shape[1], bars))[0])

    def grow(self, latents, weights, prefix, threshold: float = 0.5, guidance=None, choice=None,
             outline=None) -> tuple[np.ndarray, torch.Tensor]:
        """One piece decoded from latents ``(T, keys)`` after ``prefix``; returns it and the latents."""
        return self._grow_states(latents[None], weights, prefix)[0], latents

    @torch.no_grad()
    def _recast(self, roll: np.ndarray, latents: torch.Tensor, weights: torch.Tensor, threshold: float,
                plan, bars: np.ndarray | None = None) -> np.ndarray:
        """Decode every step of ``roll`` from its latents given ``roll``'s own steps before it (what
        ``transfer`` and ``variations`` keep of the piece), all steps at once."""
        model = self.model
        states = torch.from_numpy(key_states(roll)).float()[None]
        t, k = states.shape[1:]
        u = to_uniform(latents)[None]
        phase = self._phases(1, t, bars)
        experts, share = self._genre_rows(weights, 1)
        e = len(experts)
        feats = [model.step_features(states, g[None], phase)[0] for g in experts]
        features = torch.stack(feats, dim=1).flatten(0, 1)  # step-major: (t * e, keys, channels)
        frame = model.decode_keys(features, u[0], 1.0, None if e == 1 else share.expand(t, -1))
        return states_roll(frame.numpy().astype(np.uint8))

    @torch.no_grad()
    def _segments(self, inp: Input) -> np.ndarray:
        """Where the input's scored segments start: its bar lines (and step 0), inside the piece."""
        t = inp.roll.shape[-1]
        starts = np.unique(np.concatenate([[0], self.bar_lines(inp)]))
        return starts[starts < t]

    @torch.no_grad()
    def log_likelihoods(self, midi: MidiInput | Input) -> tuple[dict[str, np.ndarray], Input]:
        """Log-likelihood (nats, exact) of each bar of the input (from its own bar lines; a pick-up
        is a segment of its own), given all before it, per genre."""
        inp = self.read(midi)
        states = torch.from_numpy(key_states(inp.roll)).float()[None]
        t = states.shape[1]
        phase = self._phases(1, t, self.bar_lines(inp))
        starts = self._segments(inp)
        out = {}
        for gi, g in enumerate(self.genres):
            vec = torch.zeros(1, len(self.genres))
            vec[0, gi] = 1
            lp = self.model.sequence_log_prob(states, genre=vec, phase=phase)[0].double().numpy()
            out[g] = np.add.reduceat(lp, starts)
        return out, inp

    def score(self, midi: MidiInput | Input) -> dict:
        """Bits per binary cell under each genre, per bar and for the whole piece (exact)."""
        ll, inp = self.log_likelihoods(midi)
        t = inp.roll.shape[-1]
        steps = np.diff(np.append(self._segments(inp), t))
        cells = 2 * self.spec.pitches * math.log(2)
        return {"report": inp.report,
                "per_window": {g: (-v / (cells * steps)).tolist() for g, v in ll.items()},
                "whole": {g: float(-v.sum() / (cells * t)) for g, v in ll.items()}}

    def bar_lines(self, inp: Input) -> np.ndarray:
        """The input's bar lines in steps (a 4/4 grid when it has none)."""
        beats = inp.piece.bar_lines if inp.piece is not None else []
        steps = np.array([round(b * self.spec.steps_per_quarter) for b in beats], dtype=np.int64)
        return steps if len(steps) else np.arange(0, inp.roll.shape[-1] + BAR, BAR)

    # -- new music --------------------------------------------------------------------------------
    def metre(self, weights: dict[str, float], seed: int, asked: str | None = None) -> tuple[int, int]:
        """The time signature of a new piece: ``asked``, or one drawn with ``seed`` from the genres'
        own pieces (the checkpoint's ``metres``, mixed by the genre weights); 4/4 for a checkpoint
        without them."""
        if asked is not None:
            return parse_time_signature(asked)
        table = self.ck.info.get("metres") or {}
        mix: dict[str, float] = {}
        for g, wg in weights.items():
            for sig, p in (table.get(g) or {"4/4": 1.0}).items():
                mix[sig] = mix.get(sig, 0.0) + wg * p
        names = sorted(mix)
        p = np.array([mix[k] for k in names])
        pick = names[int(np.random.default_rng([int(seed), 1]).choice(len(names), p=p / p.sum()))]
        return parse_time_signature(pick)

    def check_repeat(self, repeat: float | None) -> None:
        """Any share in [0, 1] will do (``Options`` checks the range)."""

    def repeat_share(self, weights: dict[str, float], asked: float | None = None) -> float:
        """The share of bars 5-8 of each 8-bar period that restate the bar four before
        (:mod:`musicflow.compose.phrases`): ``asked``, or the genre mix's own from the checkpoint's
        ``phrases`` (0 for a checkpoint without them)."""
        if asked is not None:
            return float(asked)
        return default_share(self.ck.info.get("phrases") or {}, weights)

    def _bar_grid(self, sig: tuple[int, int], steps: int, n: int = 1) -> torch.Tensor:
        bar = self.spec.bar_steps(*sig)
        return self._phases(n, steps, np.arange(0, steps + bar, bar))

    def piece_metres(self, weights: dict[str, float], n: int, seed: int) -> list[tuple[int, int]]:
        """The time signature :meth:`metre` draws for each piece of seeds ``seed .. seed + n - 1``."""
        return [self.metre(weights, int(seed) + i) for i in range(n)]

    def piece_phases(self, weights: dict[str, float], n: int, steps: int, seed: int,
                     metres: list[tuple[int, int]] | None = None) -> torch.Tensor:
        """Each step's place in its bar ``(n, steps)`` for the pieces of seeds ``seed .. seed + n - 1``,
        each in the time signature :meth:`metre` draws for it (or ``metres``, already drawn): what
        :meth:`compose_rolls` composes on, for reading its pieces bar by bar."""
        metres = self.piece_metres(weights, n, seed) if metres is None else metres
        return torch.cat([self._bar_grid(sig, steps) for sig in metres])

    def compose_result(self, genre: GenreArg | None = None, *, seed: int | None = None,
                       options: Options | None = None, **settings) -> Result:
        """A new piece of ``bars`` bars; see :meth:`Composer.compose_result`. Its time signature is
        ``time_signature``, or drawn by the seed from the genre's own pieces (:meth:`metre`).
        ``temperature`` divides every key's logits (1: the model's own distribution, with
        ``repeat=0``); ``repeat`` is the share of restated bars (:mod:`musicflow.compose.phrases`);
        ``outline`` does not apply."""
        o = Options.of(options, settings)
        self._no_outline(o)
        self.sampling(o.guidance, o.candidates)
        w, vec = self.genre_weights(genre)
        seed = new_seed(seed)
        sig = self.metre(w, seed, o.time_signature)
        bar = self.spec.bar_steps(*sig)
        z = restate(self._latents(seed, o.bars * bar), bar, self.repeat_share(w, o.repeat), seed)
        roll = self._grow_states(z[None], vec, None, o.temperature, phase=self._bar_grid(sig, len(z)),
                                 mix=self.mixing(o.mix))[0]
        return Result(self.to_midi(roll, o, time_signature=sig), roll, z, seed, w, None, f"{sig[0]}/{sig[1]}")

    def compose_rolls(self, genre: GenreArg | None = None, n: int = 1, bars: int = 8, seed: int = 0,
                      temperature: float = 1.0, guidance: float | None = None,
                      candidates: int | None = None, outline=None, mix: str | None = None,
                      repeat: float | None = None) -> np.ndarray:
        """The rolls ``(n, 2, P, bars * 16)`` of the pieces that :meth:`compose_result` writes for
        seeds ``seed .. seed + n - 1``, decoded side by side in one batch, each in its own drawn
        time signature and cut to (or continued to) the length of ``bars`` bars of 4/4, so the
        pieces of every metre stack and compare with real excerpts of that length."""
        if n < 1:
            raise MusicflowError(f"n must be at least 1, got {n}")
        o = Options(bars=bars, temperature=temperature, mix=mix, repeat=repeat)
        self.sampling(guidance, candidates)
        w, vec = self.genre_weights(genre)
        steps, share = o.bars * BAR, self.repeat_share(w, o.repeat)
        sigs = self.piece_metres(w, n, seed)
        z = torch.stack([restate(self._latents(int(seed) + i, steps), self.spec.bar_steps(*sig), share,
                                 int(seed) + i) for i, sig in enumerate(sigs)])
        phase = self.piece_phases(w, n, steps, seed, sigs)
        return self._grow_states(z, vec, None, o.temperature, phase=phase, mix=self.mixing(o.mix))

    def decode_latents(self, latents: torch.Tensor, genre: GenreArg | None = None, *, outline=None,
                       options: Options | None = None, **settings) -> Result:
        """Re-decode latents ``(steps, keys)`` saved with ``--save-latent``, under their genre or
        another, in ``time_signature`` (saved with them; 4/4 when not given)."""
        o = Options.of(options, settings, "decode_latents",
                       ("tempo", "key", "program", "velocity", "time_signature", "mix", "parts"))
        latents = torch.as_tensor(latents, dtype=torch.float32)
        if latents.dim() != 2 or latents.shape[1] != self.latent_dim:
            raise MusicflowError(f"latents of shape {tuple(latents.shape)} do not fit this model "
                                 f"(steps x {self.latent_dim})")
        w, vec = self.genre_weights(genre)
        sig = parse_time_signature(o.time_signature or "4/4")
        roll = self._grow_states(latents[None], vec, None, phase=self._bar_grid(sig, len(latents)),
                                 mix=self.mixing(o.mix))[0]
        return Result(self.to_midi(roll, o, time_signature=sig), roll, latents, -1, w, None,
                      f"{sig[0]}/{sig[1]}")

    def infill(self, midi: MidiInput | Input, bars: tuple[int, int] | str, genre: GenreArg | None = None, *,
               seed: int | None = None, candidates: int = 16, options: Options | None = None,
               **settings) -> Result:
        """The input with bars ``bars`` (1-based and inclusive, ``(5, 8)`` or ``"5-8"``, counted
        in the input's own bar lines) composed anew given the music before and after them:
        ``candidates`` spans drawn given the past, one kept with probability proportional to the
        exact likelihood of the bars after the span given it (:mod:`musicflow.compose.infill`).
        Outside the span the roll is the input's. ``genre`` defaults to the most likely one;
        ``temperature``, ``mix``, ``program`` and ``velocity`` as in :meth:`compose_result`."""
        span = parse_span(bars) if isinstance(bars, str) else tuple(bars)
        return infill(self, midi, span, genre, seed, candidates, options, **settings)

    def continue_(self, midi: MidiInput | Input, genre: GenreArg | None = None, *, seed: int | None = None,
                  options: Options | None = None, **settings) -> Result:
        """The input followed by ``bars`` new bars in its key, tempo and metre, the whole input read
        as the past; see :meth:`Composer.continue_`."""
        o = Options.of(options, settings, "continue_",
                       ("bars", "temperature", "guidance", "candidates", "outline", "program", "velocity",
                        "mix", "parts"))
        self._no_outline(o)
        self.sampling(o.guidance, o.candidates)
        inp = self.read(midi)
        seed = new_seed(seed)
        w, vec = self.genre_weights(self.genre_of(inp, genre))
        bars = self.bar_lines(inp)
        length = inp.roll.shape[-1]
        bar_len = int(np.diff(bars)[-1]) if len(bars) > 1 else BAR
        end = int(bars[bars <= length].max(initial=0))
        while end < length:  # to the end of the input's last bar, at the last bar's length
            end += bar_len
        prefix = np.zeros((2, self.spec.pitches, end), np.float32)
        prefix[..., :length] = inp.roll[..., :end]
        grid = np.concatenate([bars[bars < end], np.arange(end, end + (o.bars + 1) * bar_len, bar_len)])
        z = self._latents(seed, o.bars * bar_len)
        roll = self._grow_states(z[None], vec, prefix, o.temperature, grid, mix=self.mixing(o.mix))[0]
        sigs = inp.piece.time_signatures if inp.piece is not None else []
        sig = tuple(sigs[-1][1:]) if sigs else (4, 4)  # the input's last signature carries on
        return Result(self.to_midi(roll, o, -inp.shift, inp.tempo, time_signature=sig), roll, z, seed, w,
                      None, f"{sig[0]}/{sig[1]}")

    @staticmethod
    def _no_outline(o: Options) -> None:
        if o.outline not in (None, False):
            raise MusicflowError("outline: the sequence flow composes without outlines")
