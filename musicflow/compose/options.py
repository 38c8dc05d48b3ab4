"""The settings of composing, written once: defaults, help and checks in one frozen dataclass.

``Composer`` methods take an :class:`Options` or the same names as plain keywords; the CLI's
options read their defaults and help from the fields (``musicflow.cli.options``).

>>> Options(bars=4).bars, Options().velocity
(4, 80)
>>> Options(bars=0)
Traceback (most recent call last):
musicflow.errors.MusicflowError: bars must be a whole number of at least 1, got 0
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

from musicflow.compose.keys import parse_key, parse_program, part_programs
from musicflow.errors import MusicflowError
from musicflow.io.parts import PARTS, check_programs
from musicflow.settings import setting

#: Latent temperature 1 with the 0.5 threshold samples the model's own distribution over rolls exactly
#: (the dequantization cell of a 1 is v > 0.5); lower temperatures drift towards silence.
DEFAULT_TEMPERATURE = 1.0


def _integer(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def parse_time_signature(text: str) -> tuple[int, int]:
    """``"6/8"`` as ``(6, 8)``; anything else is a one-line error.

    >>> parse_time_signature("3/4")
    (3, 4)
    """
    num, _, den = str(text).partition("/")
    if not (num.isdigit() and den in ("2", "4", "8", "16") and 1 <= int(num) <= 32):
        raise MusicflowError(f"time_signature {text!r}: use beats/unit, e.g. 3/4, 6/8 or 4/2")
    return int(num), int(den)


#: How a genre mix can be sampled (:attr:`Options.mix`).
MIX_METHODS = ("product", "embed")


@dataclass(frozen=True)
class Options:
    """How new music is sampled and written.

    ``guidance``/``candidates``: ``None`` takes the model's own default (see
    :meth:`musicflow.compose.Composer.sampling`). ``outline``: for a model trained with outlines,
    ``None`` draws a real block's, ``False`` composes without, a mapping sets parts of it.
    """

    bars: int = setting(8, "Length in bars (of 4/4, or of the time signature the model composes in).")
    temperature: float = setting(DEFAULT_TEMPERATURE, (
        "Latent temperature: 1 samples the model's own distribution (the sequence flow's with "
        "repeat 0); lower is sparser."))
    guidance: float | None = setting(None, (
        "Genre strength: 1 plain sampling, 0 ignores the genre, above 1 makes the piece read more "
        "surely as the genre [default: 10 for the Glow, the checkpoint's own for the neural-ODE flow]."))
    candidates: int | None = setting(None, (
        "Pieces grown side by side under guidance, resampled each beat by how clearly they read as "
        "the genre [default: 16; not for the neural-ODE flow]."))
    outline: Mapping[str, float] | bool | None = setting(None, (
        "For a model trained with outlines: none, or parts of the plan to compose to, e.g. "
        "'low=C4,high=C6,notes_per_beat=2,voices=1' [default: a real 8-bar block of the genre; "
        "for continue, the input's last 8 bars]."))
    tempo: float | None = setting(None, "Quarter notes per minute [default: 100].")
    key: str | None = setting(None, "Transpose into this key (C, F#, Bb, Am, ...).")
    program: int | str | None = setting(None, (
        "General MIDI program number or name, or one per part with parts: "
        "'soprano=oboe,alto=clarinet,tenor=horn,bass=bassoon' [default: 0, piano]."))
    velocity: int = setting(80, "MIDI velocity of every note (1-127).")
    mix: str | None = setting(None, (
        "How a mix of genres is sampled: 'product' draws each note from the product of the genres' "
        "distributions, weighted (music every parent finds likely; the neural-ODE flow follows the "
        "weighted sum of the genres' vector fields); 'embed' conditions on the weighted sum of the "
        "genre vectors, a point the model never saw in training [default: product for the KeyFlow, "
        "embed for the Glow and the neural-ODE flow; the Glow embeds only]."))
    time_signature: str | None = setting(None, (
        "Time signature, e.g. 3/4 or 6/8, for a model that composes in several [default: drawn by the "
        "seed from the genre's own pieces; 4/4 for the Glow]."))
    repeat: float | None = setting(None, (
        "For the sequence flow: the share of bars 5-8 of every 8-bar period decoded from the latents "
        "of the bar four before, so that a tune restates its phrases (0: never, 1: always) "
        "[default: the genre's own, from how often its music restates a bar]."))
    parts: str = setting("one", (
        "Tracks of the MIDI file: 'one' merged track; 'satb' soprano, alto, tenor and bass; "
        "'melody-bass' melody, accompaniment and bass; 'auto' by how many notes sound at once. "
        "Voices are separated by voice leading."))

    def __post_init__(self) -> None:
        if not _integer(self.bars) or self.bars < 1:
            raise MusicflowError(f"bars must be a whole number of at least 1, got {self.bars!r}")
        if not _number(self.temperature) or not self.temperature > 0:
            raise MusicflowError(f"temperature must be a positive number, got {self.temperature!r}")
        if self.tempo is not None and (not _number(self.tempo) or not self.tempo > 0):
            raise MusicflowError(f"tempo must be a positive number, got {self.tempo!r}")
        if not _integer(self.velocity) or not 1 <= self.velocity <= 127:
            raise MusicflowError(f"velocity must be a whole number in 1..127, got {self.velocity!r}")
        if self.key is not None:
            parse_key(self.key)
        if self.time_signature is not None:
            parse_time_signature(self.time_signature)
        if self.repeat is not None and (not _number(self.repeat) or not 0 <= self.repeat <= 1):
            raise MusicflowError(f"repeat must be a share in [0, 1], got {self.repeat!r}")
        if self.mix not in (None, *MIX_METHODS):
            raise MusicflowError(f"mix must be one of {', '.join(MIX_METHODS)}, got {self.mix!r}")
        parse_program(self.program)
        if self.parts not in PARTS:
            raise MusicflowError(f"parts must be one of {', '.join(PARTS)}, got {self.parts!r}")
        check_programs(part_programs(self.program), self.parts)

    @classmethod
    def of(cls, options: Options | None, settings: Mapping[str, object], entry: str = "compose",
           allowed: tuple[str, ...] | None = None) -> Options:
        """``options`` (or the defaults) with ``settings`` applied. A name that is not a setting, or
        one that ``entry`` does not use (``allowed``), is a one-line error rather than ignored."""
        if options is not None and not isinstance(options, Options):
            raise MusicflowError(f"options must be an Options, got {type(options).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise MusicflowError(f"unknown setting(s) {', '.join(unknown)} "
                                 f"(known: {', '.join(sorted(known))})")
        o = replace(options or cls(), **settings)
        if allowed is not None:
            given = {f.name for f in fields(cls) if getattr(o, f.name) != f.default}
            unused = sorted(given - set(allowed))
            if unused:
                raise MusicflowError(f"{', '.join(unused)}: {entry} does not use this setting "
                                     f"(it takes {', '.join(allowed)})")
        return o
