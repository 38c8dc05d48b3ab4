"""Outlines of new pieces: the plan (register, density, voices) a model trained with
``GlowConfig.outline`` composes to.

Such a model learned, for every training beat, the :func:`~musicflow.data.windows.outline` of the
8-bar block it lies in. Composing, each new piece takes the outline of a real block of its genre,
drawn from the bank stored in the checkpoint (train split), so the pieces' registers and
densities spread as the real ones do; a continuation takes the outline of its input's last bars.
A user may set any part of it (:func:`outline_for`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from musicflow.data.windows import OUTLINE_BARS, outline
from musicflow.errors import MusicflowError
from musicflow.roll import PianoRollSpec

#: What a user may set, and the outline column each fills.
OUTLINE_KEYS = {"low": 0, "high": 1, "notes_per_beat": 2, "voices": 3}

OutlineArg = Mapping[str, float] | bool | None


def draw_outline(bank: Mapping[str, list], weights: Mapping[str, float], seed: int) -> np.ndarray:
    """One real block's outline ``(4,)``: a genre drawn by the mix's ``weights``, then one of its
    outlines in ``bank``, from ``seed`` (a stream of its own, apart from the piece's latents).

    >>> draw_outline({"a": [[1, 2, 3, 4]], "b": [[5, 6, 7, 8]]}, {"b": 1.0}, seed=0).tolist()
    [5.0, 6.0, 7.0, 8.0]
    """
    rng = np.random.default_rng([int(seed), 7919])
    names = [g for g, w in weights.items() if w > 0 and bank.get(g)]
    if not names:
        raise MusicflowError(f"no stored outlines for {sorted(weights)}")
    p = np.array([weights[g] for g in names], np.float64)
    rows = bank[names[int(rng.choice(len(names), p=p / p.sum()))]]
    return np.asarray(rows[int(rng.integers(len(rows)))], np.float32)


def input_outline(roll: np.ndarray, spec: PianoRollSpec) -> np.ndarray:
    """The outline of a roll's last :data:`OUTLINE_BARS` bars (4/4): what a continuation keeps."""
    return outline(roll[..., -OUTLINE_BARS * spec.bar_steps():], spec.steps_per_quarter)


def block_outlines(roll: np.ndarray, spec: PianoRollSpec, window: int) -> np.ndarray:
    """The outline ``(n, 4)`` of the :data:`OUTLINE_BARS`-bar block (4/4, from the roll's start)
    that each of the ``n = ceil(T / window)`` windows of ``roll`` ``(2, P, T)`` starts in: what a
    model trained with outlines reads a user's piece with.

    >>> r = np.zeros((2, 8, 256), bool); r[:, 1, 0] = True; r[:, 6, 128] = True
    >>> block_outlines(r, PianoRollSpec(pitches=8), 64)[:, :2].tolist()
    [[1.0, 1.0], [1.0, 1.0], [6.0, 6.0], [6.0, 6.0]]
    """
    block = OUTLINE_BARS * spec.bar_steps()
    n = -(-roll.shape[-1] // window)
    starts = range(0, max(roll.shape[-1], 1), block)
    each = [outline(roll[..., b:b + block], spec.steps_per_quarter) for b in starts]
    return np.stack([each[min(i * window // block, len(each) - 1)] for i in range(n)])


def outline_for(arg: OutlineArg, base: np.ndarray | None, spec: PianoRollSpec,
                shift: int = 0) -> torch.Tensor | None:
    """The outline ``(1, 4)`` a piece is composed to. ``arg``: ``None`` or ``True``, ``base`` (a
    drawn or the input's outline); ``False``, none (the model's unconditioned mode); a mapping that
    overrides parts of ``base``: ``low`` and ``high`` (MIDI pitches of the output, which is the
    model's C moved by ``shift`` semitones), ``notes_per_beat`` (onsets per quarter note) and
    ``voices`` (notes sounding at once).

    >>> spec = PianoRollSpec(low=36, pitches=48)
    >>> outline_for({"low": 60, "notes_per_beat": 2}, np.array([0, 47, 1, 1.0]), spec).tolist()
    [[24.0, 47.0, 2.0, 1.0]]
    """
    if arg is False or base is None:
        return None
    o = np.array(base, np.float32)
    if isinstance(arg, Mapping):
        unknown = sorted(set(arg) - set(OUTLINE_KEYS))
        if unknown:
            raise MusicflowError(f"outline: unknown keys {unknown}; use {sorted(OUTLINE_KEYS)}")
        for key, value in arg.items():
            v = float(value)
            if key in ("low", "high"):
                if not spec.low + shift <= v <= spec.high + shift:
                    raise MusicflowError(f"outline {key}={value:g}: outside the model's pitches "
                                         f"{spec.low + shift}..{spec.high + shift}")
                v -= spec.low + shift
            elif not 0 <= v <= 16:
                raise MusicflowError(f"outline {key}={value:g}: must be between 0 and 16")
            o[OUTLINE_KEYS[key]] = v
        if o[0] > o[1]:
            raise MusicflowError(f"outline: low ({o[0] + spec.low + shift:g}) is above high "
                                 f"({o[1] + spec.low + shift:g})")
    elif arg not in (None, True):
        raise MusicflowError(f"outline {arg!r}: use None, False or a mapping of {sorted(OUTLINE_KEYS)}")
    return torch.from_numpy(o)[None]


def parse_outline(text: str | None) -> OutlineArg:
    """The CLI's ``--outline``: ``none``, or ``KEY=VALUE`` pairs separated by commas, with
    ``low`` and ``high`` as MIDI numbers or note names.

    >>> parse_outline("low=C4, high=72, notes_per_beat=1.5"), parse_outline("none")
    ({'low': 60, 'high': 72.0, 'notes_per_beat': 1.5}, False)
    """
    if text is None:
        return None
    if text.strip().lower() == "none":
        return False
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, eq, value = part.partition("=")
        key, value = key.strip().replace("-", "_"), value.strip()
        if not eq or key not in OUTLINE_KEYS:
            raise MusicflowError(f"outline {text!r}: use none or KEY=VALUE pairs with keys "
                                 f"{', '.join(OUTLINE_KEYS)}")
        try:
            out[key] = float(value)
        except ValueError:
            if key not in ("low", "high"):
                raise MusicflowError(f"outline {key}={value!r}: not a number") from None
            import pretty_midi

            try:
                out[key] = pretty_midi.note_name_to_number(value)
            except ValueError:
                raise MusicflowError(f"outline {key}={value!r}: not a MIDI number or note name") from None
    return out
