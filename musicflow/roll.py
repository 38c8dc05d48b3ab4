"""The piano-roll representation: a beat grid, two channels, a pitch range, bar-aligned windows.

A roll is a ``(2, P, T)`` array: channel 0 is *onset* (a note starts in this step), channel 1 is
*sustain* (a note sounds in this step, its first step included), so repeated notes survive. Time is
a grid of ``steps_per_quarter`` steps per quarter-note beat (16th notes by default); the pitch axis
runs upward from ``low`` over ``pitches`` semitones. A roll is *canonical* when every onset also
sustains; encoding always gives canonical rolls, and canonical rolls round-trip exactly through
notes and MIDI.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pretty_midi

from musicflow.errors import MusicflowError
from musicflow.io.midi import piece_to_midi, save_midi
from musicflow.io.notes import Note, Piece

ONSET, SUSTAIN = 0, 1


@dataclass(frozen=True)
class PianoRollSpec:
    """How music becomes a tensor; stored in every dataset and checkpoint.

    ``key_normalize`` transposes every piece so its estimated tonic is C (shift in -6..+5), which
    takes key out of what the models must learn; generation transposes back into any key.

    >>> spec = PianoRollSpec(low=36, pitches=48)
    >>> spec.high, spec.bar_steps(3, 4)
    (83, 12)
    """

    steps_per_quarter: int = 4
    window_steps: int = 64
    low: int = 36
    pitches: int = 48
    key_normalize: bool = True

    @property
    def high(self) -> int:
        """The highest pitch kept (inclusive)."""
        return self.low + self.pitches - 1

    def bar_steps(self, numerator: int = 4, denominator: int = 4) -> int:
        return round(numerator * 4 * self.steps_per_quarter / denominator)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> PianoRollSpec:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


def note_steps(notes: list[Note], steps_per_quarter: int) -> np.ndarray:
    """Notes as an ``(N, 4)`` int array of (pitch, start step, end step, velocity)."""
    if not notes:
        return np.zeros((0, 4), dtype=np.int32)
    a = np.array([(n.pitch, n.start, n.end, n.velocity) for n in notes], dtype=np.float64)
    out = np.empty(a.shape, dtype=np.int32)
    out[:, 0] = a[:, 0]
    out[:, 1] = np.round(a[:, 1] * steps_per_quarter)
    out[:, 2] = np.maximum(np.round(a[:, 2] * steps_per_quarter), out[:, 1] + 1)
    out[:, 3] = a[:, 3]
    return out


def encode_steps(
    steps: np.ndarray, spec: PianoRollSpec, length: int | None = None, shift: int = 0
) -> tuple[np.ndarray, int]:
    """Encode ``(N, >=3)`` (pitch, start, end) step rows into a roll; return it and the notes lost.

    ``shift`` transposes by semitones first; notes outside the range are left out and counted.

    >>> rows = np.array([[60, 0, 2], [60, 2, 3], [20, 0, 1]])
    >>> roll, lost = encode_steps(rows, PianoRollSpec(), length=4)
    >>> roll[:, 60 - 36, :4].tolist(), lost
    ([[1.0, 0.0, 1.0, 0.0], [1.0, 1.0, 1.0, 0.0]], 1)
    """
    length = int(steps[:, 2].max()) if length is None and len(steps) else (length or 0)
    roll = np.zeros((2, spec.pitches, length), dtype=np.float32)
    if not len(steps):
        return roll, 0
    p = steps[:, 0] + shift - spec.low
    keep = (p >= 0) & (p < spec.pitches) & (steps[:, 1] < length)
    for pi, s, e in zip(p[keep], steps[keep, 1], np.minimum(steps[keep, 2], length)):
        roll[SUSTAIN, pi, s:e] = 1.0
    roll[ONSET, p[keep], steps[keep, 1]] = 1.0
    return roll, int((~keep).sum())


def encode(piece: Piece, spec: PianoRollSpec, shift: int = 0) -> np.ndarray:
    """The whole piece as one roll (see :func:`encode_steps`)."""
    roll, _ = encode_steps(note_steps(piece.notes, spec.steps_per_quarter), spec, shift=shift)
    return roll


def canonical(roll: np.ndarray) -> np.ndarray:
    """Binarise at 0.5 and make every onset sustain, so the roll decodes to what it shows."""
    out = (np.asarray(roll) > 0.5).astype(np.float32)
    out[SUSTAIN] = np.maximum(out[SUSTAIN], out[ONSET])
    return out


def decode(roll: np.ndarray, spec: PianoRollSpec, velocity: int = 80, strict: bool = False) -> list[Note]:
    """Turn a roll back into notes (beats). An onset inside a held note splits it.

    ``strict`` asks both channels to agree, as a model's samples should: a note starts only where
    onset *and* sustain are on, and sounds while sustain stays on. A lone onset cell or a sustain
    run with no onset is then no note. Rolls made by :func:`encode` decode the same either way.

    >>> spec = PianoRollSpec()
    >>> r, _ = encode_steps(np.array([[60, 0, 2], [60, 2, 3]]), spec)
    >>> [(n.pitch, n.start, n.end) for n in decode(r, spec)]
    [(60, 0.0, 0.5), (60, 0.5, 0.75)]
    >>> r[0, 30, 1] = 1; r[1, 31, 1:3] = 1  # a lone onset, a sustain with no onset
    >>> len(decode(r, spec)), len(decode(r, spec, strict=True))
    (4, 2)
    """
    if strict:
        b = np.asarray(roll) > 0.5
        r = np.stack([b[ONSET] & b[SUSTAIN], b[SUSTAIN]]).astype(np.float32)
    else:
        r = canonical(roll)
    if r.ndim != 3 or r.shape[0] != 2 or r.shape[1] != spec.pitches:
        raise MusicflowError(f"roll of shape {tuple(r.shape)} does not match 2 x {spec.pitches} x T")
    onset, active = r[ONSET] > 0, r[SUSTAIN] > 0
    prev = np.zeros_like(active)
    prev[:, 1:] = active[:, :-1]
    starts = active & onset if strict else active & (onset | ~prev)
    spq = spec.steps_per_quarter
    notes = []
    for pi, t in zip(*np.nonzero(starts)):
        e = t + 1
        while e < active.shape[1] and active[pi, e] and not onset[pi, e]:
            e += 1
        notes.append(Note(int(pi) + spec.low, float(t) / spq, float(e) / spq, velocity))
    notes.sort(key=lambda n: (n.start, n.pitch))
    return notes


def key_states(roll: np.ndarray) -> np.ndarray:
    """A canonical roll ``(2, P, T)`` as key states ``(T, P)``: 0 silent, 1 held from the step
    before, 2 struck (an onset).

    >>> r = np.zeros((2, 2, 3), np.float32); r[1, 0] = 1; r[0, 0, 0] = 1
    >>> key_states(r).tolist()
    [[2, 0], [1, 0], [1, 0]]
    """
    return (roll[ONSET] + roll[SUSTAIN]).T.astype(np.uint8)


def states_roll(states: np.ndarray) -> np.ndarray:
    """Key states ``(T, P)`` back to a canonical roll ``(2, P, T)`` (inverse of :func:`key_states`)."""
    s = np.asarray(states).T
    return np.stack([s == 2, s >= 1]).astype(np.float32)


def bar_phases(bars: np.ndarray, length: int, cap: int) -> np.ndarray:
    """The step of each of ``length`` steps within its bar, ``(T,)``, from the bar lines ``bars``
    (steps where bars start), at most ``cap - 1``; steps before the first bar line (a pick-up)
    count back from it as the end of a bar of the first bar's length.

    >>> bar_phases(np.array([2, 6]), 9, 16).tolist()
    [2, 3, 0, 1, 2, 3, 0, 1, 2]
    """
    bars = np.asarray(bars, dtype=np.int64)
    t = np.arange(length)
    if not len(bars):
        return np.minimum(t % 16, cap - 1)
    first = int(bars[1] - bars[0]) if len(bars) > 1 else 16
    last = np.searchsorted(bars, t, side="right") - 1
    phase = np.where(last >= 0, t - bars[np.maximum(last, 0)], (t - bars[0]) % max(first, 1))
    return np.minimum(phase, cap - 1)


def roll_to_midi(
    roll: np.ndarray,
    spec: PianoRollSpec,
    tempo: float = 100.0,
    program: int = 0,
    velocity: int = 80,
    time_signature: tuple[int, int] = (4, 4),
    transpose: int = 0,
    path: str | None = None,
) -> pretty_midi.PrettyMIDI:
    """Decode a roll into a ``PrettyMIDI`` with tempo, time signature, program and velocity set.

    When ``path`` is given the file is also written atomically.

    >>> roll = np.zeros((2, 48, 4)); roll[:, 24, 0] = 1; roll[1, 24, 1:] = 1
    >>> pm = roll_to_midi(roll, PianoRollSpec(), tempo=120)
    >>> len(pm.instruments[0].notes), float(pm.get_end_time())
    (1, 0.5)
    """
    notes = [Note(n.pitch + transpose, n.start, n.end, n.velocity) for n in decode(roll, spec, velocity)]
    notes = [n for n in notes if 0 <= n.pitch <= 127]
    piece = Piece(notes, time_signatures=[(0.0, *time_signature)], tempos=[(0.0, float(tempo))])
    pm = piece_to_midi(piece, program=program)
    if path is not None:
        save_midi(pm, path)
    return pm


def window_starts(bar_lines: np.ndarray, length: int, window: int, hop: int) -> list[int]:
    """Window starts on bar lines (in steps), at least ``hop`` apart, each window at least half
    inside the piece.

    >>> window_starts(np.array([0, 12, 24, 36, 48, 60]), 72, 32, 16)
    [0, 24, 48]
    """
    starts: list[int] = []
    for b in np.asarray(bar_lines, dtype=np.int64):
        if b + window // 2 > length:
            break
        if not starts or b >= starts[-1] + hop:
            starts.append(int(b))
    return starts


# Krumhansl-Kessler key profiles (major, minor), tonic first.
_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def estimate_key(steps: np.ndarray) -> tuple[int, str]:
    """Tonic pitch class and mode by the Krumhansl-Schmuckler method on duration-weighted pitches.

    >>> c_major = np.array([[p, i, i + 4] for i, p in enumerate([60, 64, 67, 72, 65, 62, 67, 60])])
    >>> estimate_key(c_major)
    (0, 'major')
    """
    if not len(steps):
        return 0, "major"
    hist = np.bincount(steps[:, 0] % 12, weights=steps[:, 2] - steps[:, 1], minlength=12)
    best = (-2.0, 0, "major")
    for mode, prof in (("major", _MAJOR), ("minor", _MINOR)):
        for tonic in range(12):
            r = np.corrcoef(hist, np.roll(prof, tonic))[0, 1]
            if np.isfinite(r) and r > best[0]:
                best = (r, tonic, mode)
    return best[1], best[2]


def key_shift(tonic: int) -> int:
    """Semitones that move ``tonic`` to C by the smallest step (-6..+5).

    >>> key_shift(7), key_shift(2)
    (5, -2)
    """
    return (-tonic + 6) % 12 - 6
