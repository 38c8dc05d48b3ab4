"""Interpretable features of a 4-bar window of a piano roll: what the two-sample test's logistic
regression reads, and what it names when it says what gives generated pieces away."""

from __future__ import annotations

import numpy as np

from musicflow.evaluate.metrics import (
    empty_beat_rate,
    groove_consistency,
    note_density,
    note_starts,
    notes_per_bar,
    pitch_class_entropy,
    pitch_class_histogram,
    pitch_classes_used,
    pitch_range,
    polyphony,
    scale_consistency,
)
from musicflow.roll import SUSTAIN, canonical

BAR_STEPS, BEAT_STEPS = 16, 4
_PITCH_CLASSES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
FEATURE_NAMES: list[str] = [
    "notes_per_bar", "polyphony", "pitch_range", "empty_beat_rate", "pitch_classes_used",
    "pitch_class_entropy", "scale_consistency", "groove_consistency", "note_density",
    "voices_mean", "silent_share", "mean_pitch", "low_pitch", "high_pitch", "mean_duration",
    "repeated_share", "top_interval", "onset_steps_per_beat", "polyphonic_share",
    *(f"pc_{c}" for c in _PITCH_CLASSES), *(f"pos_{s:02d}" for s in range(BAR_STEPS)),
]


def window_features(roll_window: np.ndarray, low: int) -> np.ndarray:
    """The :data:`FEATURE_NAMES` of one window ``(2, P, T)`` (pitches from ``low``, 16 steps a bar).

    Beyond the metrics of :mod:`musicflow.evaluate.metrics`: mean sounding voices over all steps,
    the share of silent steps, the mean pitch of note starts (the register), the mean lowest and
    highest sounding pitch over sounding steps (bass and top-voice register; pitches are the
    middle of the range if silent), mean note duration in steps, the share of note starts whose
    pitch was also struck at the previous onset step, the mean absolute move of the top voice (the
    highest sounding pitch) between onset steps, onset steps per beat (a chord counts once, unlike
    notes_per_bar), the share of steps with two or more voices, the normalised pitch-class
    histogram of note starts (rolls are transposed to C, so the bins are scale degrees) and the
    normalised histogram of note starts over the 16 steps of a bar. Every feature is finite,
    silent windows included, so a generated silence is a feature value, not a crash.

    >>> w = np.zeros((2, 24, 16), np.float32); w[:, [0, 4], 0] = 1; w[1, [0, 4], :4] = 1
    >>> w[:, 7, 8] = 1; w[1, 7, 8:12] = 1
    >>> f = dict(zip(FEATURE_NAMES, window_features(w, 60).tolist()))
    >>> f["voices_mean"], f["silent_share"], f["mean_pitch"], f["mean_duration"], f["top_interval"]
    (0.75, 0.5, 63.666666666666664, 4.0, 3.0)
    >>> f["low_pitch"], f["high_pitch"], f["repeated_share"]
    (63.5, 65.5, 0.0)
    >>> f["pc_C"], f["pos_00"], f["pos_08"], f["polyphonic_share"]
    (0.3333333333333333, 0.6666666666666666, 0.3333333333333333, 0.25)
    """
    r = canonical(roll_window)
    active = r[SUSTAIN] > 0
    starts = note_starts(r)
    pitches, steps = active.shape
    voices = active.sum(0)
    n_notes = int(starts.sum())
    middle = low + (pitches - 1) / 2
    mean_pitch = low + float((starts.sum(1) * np.arange(pitches)).sum()) / n_notes if n_notes else middle
    sounding = active[:, voices > 0]
    low_pitch = low + np.argmax(sounding, axis=0).mean() if sounding.size else middle
    high_pitch = low + pitches - 1 - np.argmax(sounding[::-1], axis=0).mean() if sounding.size else middle
    onset_steps = np.flatnonzero(starts.any(0))
    struck = starts[:, onset_steps]
    again = struck[:, 1:] & struck[:, :-1]
    repeated = float(again.sum() / struck[:, 1:].sum()) if len(onset_steps) > 1 else 0.0
    top = pitches - 1 - np.argmax(active[::-1, onset_steps], axis=0)
    positions = np.bincount(np.nonzero(starts)[1] % BAR_STEPS, minlength=BAR_STEPS)[:BAR_STEPS]
    return np.array([
        notes_per_bar(r, BAR_STEPS), polyphony(r), pitch_range(r), empty_beat_rate(r, BEAT_STEPS),
        pitch_classes_used(r, low), pitch_class_entropy(r, low), scale_consistency(r, low),
        groove_consistency(r, BAR_STEPS), note_density(r),
        voices.mean(), (voices == 0).mean(), mean_pitch, low_pitch, high_pitch,
        active.sum() / n_notes if n_notes else 0.0,  # every sounding cell belongs to one note
        repeated,
        np.abs(np.diff(top)).mean() if len(top) > 1 else 0.0,
        len(onset_steps) / (steps / BEAT_STEPS), (voices >= 2).mean(),
        *pitch_class_histogram(r, low), *(positions / max(n_notes, 1)),
    ], dtype=np.float64)
