"""A user's piece on the model's grid, and any roll cut into the windows a model reads."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pretty_midi
import torch

from musicflow.io import Piece, read_file
from musicflow.io.midi import piece_from_pretty_midi
from musicflow.roll import PianoRollSpec, encode_steps, estimate_key, key_shift, note_steps

MidiInput = str | Path | pretty_midi.PrettyMIDI


@dataclass
class Input:
    """A user's piece on the model's grid: the key-normalised roll and how to undo it."""

    roll: np.ndarray
    shift: int
    report: str
    tempo: float
    piece: Piece = field(repr=False)


def read_input(midi: MidiInput, spec: PianoRollSpec) -> Input:
    """Put a user's MIDI (path or object) on the grid of ``spec``; ``report`` says what was kept."""
    if isinstance(midi, pretty_midi.PrettyMIDI):
        piece = piece_from_pretty_midi(midi, spec.steps_per_quarter, name="<midi>")
        name = "input"
    else:
        pieces = read_file(midi, spec.steps_per_quarter)
        piece, name = pieces[0], str(midi)
    steps = note_steps(piece.notes, spec.steps_per_quarter)
    shift = key_shift(estimate_key(steps)[0]) if spec.key_normalize else 0
    roll, lost = encode_steps(steps, spec, length=int(steps[:, 2].max()), shift=shift)
    dropped = dict(piece.dropped)
    if lost:
        dropped["notes outside the pitch range"] = lost
    gone = ", ".join(f"{v} {k}" for k, v in sorted(dropped.items()))
    report = (f"{name}: kept {len(piece.notes) - lost} notes over {roll.shape[-1] / 16:.1f} bars"
              + (f"; dropped {gone}" if gone else ""))
    return Input(roll, shift, report, piece.tempo, piece)


def cut_windows(roll: np.ndarray, window: int, context: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A roll ``(2, P, T)`` cut into model windows ``(n, 2, P, window)``, each with the ``context``
    steps before it ``(n, 2, P, context)`` (silence before the start, padding after the end).

    >>> xs, ctx = cut_windows(np.ones((2, 3, 5), np.float32), window=4, context=2)
    >>> tuple(xs.shape), tuple(ctx.shape), xs[1, 0, 0].tolist(), ctx[0].sum().item()
    ((2, 2, 3, 4), (2, 2, 3, 2), [1.0, 0.0, 0.0, 0.0], 0.0)
    """
    n = math.ceil(roll.shape[-1] / window)
    padded = np.zeros((2, roll.shape[-2], context + n * window), np.float32)
    padded[..., context:context + roll.shape[-1]] = roll
    t = torch.from_numpy(padded)
    xs = torch.stack([t[..., context + i * window:][..., :window] for i in range(n)])
    ctx = torch.stack([t[..., i * window:][..., :context] for i in range(n)])
    return xs, ctx
