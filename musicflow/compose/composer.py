"""``Composer``: the one object behind the CLI, the Python API and the notebooks.

It loads a checkpoint once and then composes, continues, varies, transfers, interpolates, scores and
classifies music. Inputs are MIDI (or any readable file) paths or ``pretty_midi.PrettyMIDI``
objects; outputs are ``PrettyMIDI`` objects inside a :class:`Result`. Every entry point takes an
:class:`~musicflow.compose.options.Options` or the same names as plain keywords. The same seed
gives the same music from every entry.

>>> from musicflow import Composer                                      # doctest: +SKIP
>>> c = Composer.load()                                                 # doctest: +SKIP
>>> pm = c.compose(genre={"celtic": 0.7, "chorale": 0.3}, bars=8, seed=1)  # doctest: +SKIP
>>> c.save(pm, "tune.mid")                                              # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pretty_midi
import torch

from musicflow.checkpoint import Checkpoint, load_checkpoint
from musicflow.compose.genre import GenreArg, genre_vector, parse_genre
from musicflow.compose.judge import JudgeOps
from musicflow.compose.keys import parse_key, parse_program, part_programs
from musicflow.compose.latent import LatentOps, Result, draw_latents, new_seed
from musicflow.compose.models import checkpoint_path
from musicflow.compose.options import DEFAULT_TEMPERATURE, Options
from musicflow.compose.outlines import OutlineArg, block_outlines, draw_outline, input_outline, outline_for
from musicflow.compose.reading import Input, MidiInput, cut_windows, read_input
from musicflow.compose.style import StyleOps
from musicflow.errors import MusicflowError
from musicflow.flows.base import Condition
from musicflow.flows.glow import Glow
from musicflow.io import save_midi
from musicflow.io.parts import split_parts
from musicflow.roll import PianoRollSpec, key_shift, roll_to_midi
from musicflow.sampling import generate, mixed_threshold, model_device

#: Genre guidance of the Glow by default (see :func:`musicflow.sampling.generate`): ``DEFAULT_CANDIDATES``
#: candidate pieces grow side by side and are resampled after each window by how much it raised
#: ``p(genre | piece so far) ** (DEFAULT_GUIDANCE - 1)``, the model's own posterior of the genre.
#: ``guidance=1`` samples plainly.
DEFAULT_GUIDANCE = Glow.default_guidance
DEFAULT_CANDIDATES = 16
class Composer(StyleOps, LatentOps, JudgeOps):
    """Composes with a trained flow. Load once, call many times; no global state."""

    def __init__(self, checkpoint: Checkpoint, decoding: str | float = "exact", progress: bool = False):
        if not (decoding in ("exact", "calibrated") or isinstance(decoding, (int, float))
                and 0 < decoding < 1):
            raise MusicflowError(f"decoding {decoding!r}: use 'exact', 'calibrated' or a threshold in (0, 1)")
        self.decoding = decoding
        self.progress = progress  # a bar over the beats of each piece (the CLI without --quiet)
        self.ck = checkpoint
        self.model = checkpoint.model.eval()
        self.spec: PianoRollSpec = checkpoint.spec
        self.window, self.context = self._window_sizes()
        # Real 8-bar blocks' outlines, for a model trained to compose to one (compose/outlines.py).
        self.outlines = checkpoint.info.get("outlines") if self.model.takes_outline else None

    def _window_sizes(self) -> tuple[int, int]:
        """Steps of the windows the model decodes and scores, and of the context each reads."""
        return self.model.config.steps, self.model.config.context_steps

    @property
    def window_config(self) -> SimpleNamespace:
        """The window shape the model is scored on (``steps``, ``context_steps``), as
        :func:`musicflow.training.model_windows` reads it from a window model's config."""
        return SimpleNamespace(steps=self.window, context_steps=self.context)

    @property
    def latent_dim(self) -> int:
        """Numbers per latent row (one row per window)."""
        return self.model.config.dim

    @staticmethod
    def handles(model) -> bool:
        """Whether this class composes with ``model`` (a subclass claims the models it is for)."""
        return True

    @classmethod
    def load(cls, model: str | Path | None = None, device: str = "cpu",
             decoding: str | float = "exact", progress: bool = False) -> Composer:
        """``None`` or ``"keyflow"``: the shipped sequence flow, the default; ``"glow"``: the shipped
        Glow, which composes to outlines; ``"glow-no-outline"``: the Glow without them; ``"cnf"``:
        the neural-ODE one; ``"vae"``, ``"gan"``: the VAE and GAN baselines; anything else is a
        checkpoint path or the name of one in the home folder (:func:`checkpoint_path`).
        ``decoding`` is how a window flow's continuous output becomes notes: ``"exact"``
        (threshold 0.5, the dequantization cell boundary), ``"calibrated"`` (the checkpoint's
        per-genre thresholds) or a threshold; ``progress`` shows a bar over the beats (or steps) of
        each new piece."""
        path = checkpoint_path(model)
        ck = load_checkpoint(path, device)
        importlib.import_module("musicflow.compose.pieces")  # defines the sequence flow's Composer
        engine = next((sub for sub in Composer.__subclasses__() if sub.handles(ck.model)), Composer)
        if engine is Composer and not hasattr(ck.model.config, "context_steps"):
            raise MusicflowError(f"{path}: a {ck.kind} checkpoint without genres or windows cannot compose "
                                 f"(a benchmark model: use 'musicflow benchmark evaluate')")
        return engine(ck, decoding, progress)

    @property
    def genres(self) -> list[str]:
        return list(self.ck.genres)

    @property
    def default_genre(self) -> str:
        """``chorale`` where the model knows it, else its first genre."""
        return "chorale" if "chorale" in self.genres else self.genres[0]

    # -- what every entry point shares ---------------------------------------------------------
    def genre_weights(self, genre: GenreArg | None) -> tuple[dict[str, float], torch.Tensor]:
        """A genre argument as weights by name and as the model's vector ``(1, G)``."""
        w = parse_genre(self.default_genre if genre is None else genre, self.genres)
        vec = genre_vector(w, self.genres)
        builtin = len(self.genres) - len(self.styles)
        # A mix of built-in genres only takes the model's computation without styles (guidance
        # weighs the built-in genres alone), so it composes as before any style was learnt.
        return w, vec[:, :builtin] if not vec[:, builtin:].any() else vec

    def condition(self, weights: torch.Tensor, ctx: torch.Tensor, outline: torch.Tensor | None = None
                  ) -> Condition:
        """The condition of ``n`` windows, genre ``weights`` ``(1 or n, G)``, each window's
        context ``(n, 2, P, C)`` and outline ``(n, 4)`` (if any), on the model's device."""
        dev = model_device(self.model)
        return Condition(weights.expand(len(ctx), -1).to(dev), ctx.to(dev),
                         None if outline is None else outline.to(dev))

    def windows(self, roll: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """``roll`` cut into this model's windows, each with its context (:func:`cut_windows`)."""
        return cut_windows(roll, self.window, self.context)

    def block_outlines(self, roll: np.ndarray) -> torch.Tensor | None:
        """For a model trained with outlines, each window of a user's ``roll`` with the outline of
        its own 8-bar block, as in training; ``None`` for other models."""
        if self.outlines is None:
            return None
        return torch.from_numpy(block_outlines(roll, self.spec, self.window))

    def bar_lines(self, inp: Input) -> np.ndarray | None:
        """Where the bars of a user's piece start, in steps, for a model that reads them (the
        window models do not: ``None``)."""
        return None

    @torch.no_grad()
    def encode(self, roll: np.ndarray, weights: torch.Tensor, outlines: torch.Tensor | None,
               bars: np.ndarray | None = None) -> torch.Tensor:
        """Latents of each window of a roll, each with its real preceding context and its block's
        outline (:meth:`block_outlines`; required, so no caller reads a piece without the outlines
        a model trained with them needs; ``bars`` is for models that read bar lines)."""
        xs, ctx = self.windows(roll)
        cond = self.condition(weights, ctx, outlines)
        return self.model.encode(xs.to(cond.genre.device), cond).cpu()

    def sampling(self, guidance: float | None = None, candidates: int | None = None
                 ) -> tuple[float | None, int]:
        """The genre guidance and candidate pieces that composing uses: a model that guides its
        own field (the neural ODE) takes no candidates, and by default its checkpoint's guidance;
        any other model grows candidate pieces side by side and resamples them each window by
        their genre evidence
        (:func:`musicflow.sampling.generate`), by default its ``default_guidance`` with
        :data:`DEFAULT_CANDIDATES` candidates. Guidance 1 is plain sampling, one candidate."""
        if self.model.native_guidance:
            if candidates not in (None, 1):
                raise MusicflowError("candidates: the neural-ODE flow guides its own sampling "
                                     "(set guidance alone)")
            return (getattr(self.model.config, "guidance", None) if guidance is None else guidance), 1
        guidance = float(self.model.default_guidance if guidance is None else guidance)
        if not (math.isfinite(guidance) and guidance >= 0):
            raise MusicflowError(f"guidance must be a number >= 0 (1 is plain sampling), got {guidance}")
        if guidance == 1.0:
            return 1.0, 1
        if not self.model.has_likelihood:
            raise MusicflowError(f"guidance {guidance:g}: weighs candidates by their likelihood, and "
                                 f"a {self.ck.kind.upper()} has none (use guidance 1)")
        k = DEFAULT_CANDIDATES if candidates is None else int(candidates)
        if k < 2:
            raise MusicflowError(f"candidates must be at least 2 under guidance, got {k}")
        return guidance, k

    def infill(self, midi: MidiInput | Input, bars, genre: GenreArg | None = None, **kw) -> Result:
        """Bars of a piece composed anew given the music before and after them: a sequence flow's
        (the default KeyFlow's, :meth:`musicflow.compose.pieces.PieceComposer.infill`)."""
        raise MusicflowError("infill: this model cannot weigh what follows a span; use the default "
                             "sequence flow (--model keyflow)")

    def mixing(self, mix: str | None = None) -> str:
        """How this model samples a genre mix (:attr:`Options.mix`): a window flow conditions on
        the weighted genre embedding; the neural ODE can also follow the weighted sum of its genres'
        own fields (``product``; its ``mixes``, the first its default)."""
        allowed = getattr(self.model, "mixes", ("embed",))
        if mix not in (None, *allowed):
            raise MusicflowError(f"mix {mix!r}: this model mixes genres by {' or '.join(allowed)}")
        return mix or allowed[0]

    def threshold(self, weights: dict[str, float]) -> float:
        """Decoding threshold for a genre mix: 0.5 for ``exact`` decoding, the weighted mean of the
        checkpoint's calibrated thresholds for ``calibrated`` (see :mod:`musicflow.sampling`)."""
        if self.decoding == "exact":
            return 0.5
        if self.decoding == "calibrated":
            return mixed_threshold(self.ck.info.get("thresholds"), weights)
        return float(self.decoding)

    def _outline(self, arg: OutlineArg, weights: dict[str, float], seed: int, shift: int = 0,
                 base: np.ndarray | None = None) -> torch.Tensor | None:
        """The outline ``(1, 4)`` of a new piece (:func:`~musicflow.compose.outlines.outline_for`):
        ``base`` (the input's, for a continuation) or a real block's drawn from ``seed``, with the
        user's ``arg`` applied; ``None`` for a model that takes no outline."""
        if self.outlines is None:
            if isinstance(arg, Mapping):
                raise MusicflowError("outline: this model was not trained with outlines "
                                     "(GlowConfig.outline)")
            return None
        if base is None and arg is not False:
            base = draw_outline(self.outlines, weights, seed)
        return outline_for(arg, base, self.spec, shift)

    def to_midi(self, roll: np.ndarray, o: Options, shift: int = 0, tempo: float | None = None,
                time_signature: tuple[int, int] = (4, 4)) -> pretty_midi.PrettyMIDI:
        """A roll in the model's key as MIDI: moved by ``shift`` semitones (or into ``o.key``), at
        ``o.tempo`` (else ``tempo``, else 100), with ``o.program``, ``o.velocity`` and the time
        signature."""
        if o.key is not None:
            shift = -key_shift(parse_key(o.key))  # the model writes in C; move C to the tonic
        pm = roll_to_midi(roll, self.spec, tempo=float(o.tempo or tempo or 100.0),
                          program=parse_program(o.program), velocity=o.velocity,
                          time_signature=time_signature, transpose=shift)
        return split_parts(pm, o.parts, part_programs(o.program))

    def grow(self, latents: torch.Tensor, weights: torch.Tensor, prefix: np.ndarray | None,
             threshold: float = 0.5, guidance: float | None = None,
             choice: torch.Tensor | None = None, outline: torch.Tensor | None = None,
             mix: str = "embed") -> tuple[np.ndarray, torch.Tensor]:
        """One piece: decode a latent per window after ``prefix`` (under guidance, grow candidate
        pieces from the candidates' latents and keep one). Returns the roll and each window's latent."""
        if prefix is None:
            prefix = np.zeros((2, self.spec.pitches, 0), np.float32)
        roll, picked = generate(self.model, latents[None], weights, self.spec, threshold, prefix[None],
                                guidance, None if choice is None else choice[None], return_latents=True,
                                progress=self.progress, outline=outline, mix=mix)
        return roll[0], picked[0]

    def _span(self, bars: int) -> tuple[int, int]:
        """Steps of ``bars`` new bars (4/4) and the model windows that cover them."""
        steps = bars * self.spec.bar_steps()
        return steps, math.ceil(steps / self.window)

    def genre_of(self, inp: Input, genre: GenreArg | None) -> GenreArg:
        """``genre``, or the genre the model finds most likely for ``inp``."""
        if genre is not None:
            return genre
        probs = self.classify(inp)
        return max(probs, key=probs.get)

    # -- new music -----------------------------------------------------------------------------
    def compose_result(self, genre: GenreArg | None = None, *, seed: int | None = None,
                       options: Options | None = None, **settings) -> Result:
        """A new piece of ``bars`` bars (4/4) in a genre or a mix of genres, with the roll, the
        latent each window was decoded from (``decode_latents`` of them and the outline gives the
        same piece back), the seed and the outline.

        ``genre``: a name, ``"name:weight"``, a list of those, or ``{name: weight}`` (default:
        :attr:`default_genre`). ``options`` or keywords (:class:`Options`): ``bars``,
        ``temperature``, ``guidance`` (1 plain sampling, 0 ignores the genre, above 1 exaggerates
        it), ``candidates``, ``outline`` (e.g. ``{"low": 60, "high": 84, "notes_per_beat": 2,
        "voices": 1}`` in MIDI pitches of the output, or ``False``), ``tempo``, ``key`` (``"D"``,
        ``"Am"``: transposes the result), ``program`` (General MIDI number or name), ``velocity``.
        """
        o = Options.of(options, settings)
        mix = self.mixing(o.mix)
        if o.time_signature not in (None, "4/4"):
            raise MusicflowError(f"time_signature {o.time_signature}: this model composes in 4/4 "
                                 "(the sequence flow, --model keyflow, composes in others)")
        self.check_repeat(o.repeat)
        w, vec = self.genre_weights(genre)
        steps, n = self._span(o.bars)
        guidance, k = self.sampling(o.guidance, o.candidates)
        shift = 0 if o.key is None else -key_shift(parse_key(o.key))
        seed = new_seed(seed)
        plan = self._outline(o.outline, w, seed, shift)
        z, choice = draw_latents(n, seed, o.temperature, self.latent_dim, k)
        roll, picked = self.grow(z, vec, None, self.threshold(w), guidance, choice, plan, mix)
        roll = roll[..., :steps]
        outline = None if plan is None else plan[0].tolist()
        return Result(self.to_midi(roll, o), roll, picked, seed, w, outline)

    def check_repeat(self, repeat: float | None) -> None:
        """A one-line error for a share of restated bars (``repeat``): only the sequence flow
        restates (:mod:`musicflow.compose.phrases`)."""
        if repeat is not None:
            raise MusicflowError("repeat: only the sequence flow (--model keyflow) restates bars")

    def compose(self, genre: GenreArg | None = None, *, seed: int | None = None,
                options: Options | None = None, **settings) -> pretty_midi.PrettyMIDI:
        """The MIDI of :meth:`compose_result`."""
        return self.compose_result(genre, seed=seed, options=options, **settings).midi

    def compose_rolls(self, genre: GenreArg | None = None, n: int = 1, bars: int = 8, seed: int = 0,
                      temperature: float = DEFAULT_TEMPERATURE, guidance: float | None = None,
                      candidates: int | None = None, outline: OutlineArg = None,
                      mix: str | None = None, repeat: float | None = None) -> np.ndarray:
        """The rolls ``(n, 2, P, steps)`` of the pieces that :meth:`compose_result` writes for seeds
        ``seed .. seed + n - 1``, generated side by side in one batch: the same latents, so the
        same pieces (up to float rounding), for a fraction of the time when decoding one window
        costs much the same for one piece as for many (the autoregressive Glow)."""
        if n < 1:
            raise MusicflowError(f"n must be at least 1, got {n}")
        o = Options(bars=bars, temperature=temperature, mix=mix, repeat=repeat)
        self.check_repeat(o.repeat)
        mix = self.mixing(mix)
        w, vec = self.genre_weights(genre)
        steps, windows = self._span(o.bars)
        guidance, k = self.sampling(guidance, candidates)
        dim = self.latent_dim
        draws = [draw_latents(windows, int(seed) + i, o.temperature, dim, k) for i in range(n)]
        z = torch.stack([d[0] for d in draws])
        choice = torch.stack([d[1] for d in draws]) if k > 1 else None
        plans = [self._outline(outline, w, int(seed) + i) for i in range(n)]
        plan = None if plans[0] is None else torch.cat(plans)
        return generate(self.model, z, vec, self.spec, self.threshold(w), guidance=guidance,
                        choice=choice, progress=self.progress, outline=plan, mix=mix)[..., :steps]

    def decode_latents(self, latents: torch.Tensor, genre: GenreArg | None = None, *,
                       outline: list[float] | list[list[float]] | None = None,
                       options: Options | None = None, **settings) -> Result:
        """Re-decode latents saved with ``--save-latent`` (edited or not), under their own genre
        or another one; ``outline``: the :attr:`Result.outline` they were composed to; ``tempo``,
        ``key``, ``program``, ``velocity`` as in :meth:`compose_result`."""
        o = Options.of(options, settings, "decode_latents",
                       ("tempo", "key", "program", "velocity", "mix", "parts"))
        self.mixing(o.mix)
        latents = torch.as_tensor(latents, dtype=torch.float32)
        if latents.dim() != 2 or latents.shape[1] != self.latent_dim:
            raise MusicflowError(f"latents of shape {tuple(latents.shape)} do not fit this model "
                                 f"(windows x {self.latent_dim})")
        w, vec = self.genre_weights(genre)
        plan = None
        if outline is not None and self.outlines is not None:
            try:
                plan = torch.as_tensor(outline, dtype=torch.float32)
            except (TypeError, ValueError, RuntimeError):
                plan = torch.zeros(0)
            if plan.shape not in ((4,), (len(latents), 4)):
                raise MusicflowError(f"outline of shape {tuple(plan.shape)}: four numbers, or four per "
                                     f"window for {len(latents)} windows (Result.outline)")
            plan = plan[None]
        roll = self.grow(latents, vec, None, self.threshold(w), outline=plan)[0]
        return Result(self.to_midi(roll, o), roll, latents, -1, w, outline)

    # -- reading a user's music (judging it: JudgeOps) ----------------------------------------
    def read(self, midi: MidiInput | Input) -> Input:
        """Put a user's MIDI (path or object) on the model's grid; ``report`` says what was kept.
        An :class:`Input` passes through, so callers can read once and reuse it."""
        return midi if isinstance(midi, Input) else read_input(midi, self.spec)

    # -- new music from a user's music ---------------------------------------------------------
    def continue_(self, midi: MidiInput | Input, genre: GenreArg | None = None, *, seed: int | None = None,
                  options: Options | None = None, **settings) -> Result:
        """The input followed by ``bars`` new bars, in the input's key and tempo. ``genre``
        defaults to the genre the model finds most likely for the input; the settings as in
        :meth:`compose_result` (not ``tempo`` or ``key``: the input's are kept); a model trained
        with outlines keeps the register and density of the input's last 8 bars, with
        ``outline`` overriding parts of it."""
        o = Options.of(options, settings, "continue_",
                       ("bars", "temperature", "guidance", "candidates", "outline", "program", "velocity",
                        "mix", "parts"))
        mix = self.mixing(o.mix)
        inp = self.read(midi)
        guidance, k = self.sampling(o.guidance, o.candidates)
        seed = new_seed(seed)
        w, vec = self.genre_weights(self.genre_of(inp, genre))
        prefix = inp.roll[..., : math.ceil(inp.roll.shape[-1] / 4) * 4]
        steps, n = self._span(o.bars)
        plan = self._outline(o.outline, w, seed, -inp.shift, input_outline(prefix, self.spec))
        z, choice = draw_latents(n, seed, o.temperature, self.latent_dim, k)
        roll, picked = self.grow(z, vec, prefix, self.threshold(w), guidance, choice, plan, mix)
        roll = roll[..., : prefix.shape[-1] + steps]
        return Result(self.to_midi(roll, o, -inp.shift, inp.tempo), roll, picked, seed, w,
                      None if plan is None else plan[0].tolist())

    def save(self, pm: pretty_midi.PrettyMIDI, path: str | Path) -> Path:
        """Write MIDI atomically."""
        return save_midi(pm, path)
