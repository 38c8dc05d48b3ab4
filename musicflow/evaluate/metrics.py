"""Musical metrics of binary piano rolls ``(2, P, T)``: pure functions, one number each.

Rolls are read as :func:`musicflow.roll.decode` reads them (an onset or a sustain after silence
starts a note). ``steps_per_beat`` is 4 on the default 16th-note grid; a bar is 16 steps.
"""

from __future__ import annotations

import numpy as np

from musicflow.roll import ONSET, SUSTAIN, canonical

_MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])
_MINOR = np.array([0, 2, 3, 5, 7, 8, 10])


def note_starts(roll: np.ndarray) -> np.ndarray:
    """Boolean ``(P, T)``: where notes start.

    >>> r = np.zeros((2, 3, 4)); r[1, 0, :] = 1; r[0, 0, 2] = 1
    >>> note_starts(r)[0].tolist()
    [True, False, True, False]
    """
    r = canonical(roll)
    active, onset = r[SUSTAIN] > 0, r[ONSET] > 0
    prev = np.zeros_like(active)
    prev[:, 1:] = active[:, :-1]
    return active & (onset | ~prev)


def notes_per_bar(roll: np.ndarray, bar_steps: int = 16) -> float:
    """Notes started per bar.

    >>> r = np.zeros((2, 3, 32)); r[:, 0, ::8] = 1
    >>> notes_per_bar(r)
    2.0
    """
    return float(note_starts(roll).sum()) / (roll.shape[-1] / bar_steps)


def polyphony(roll: np.ndarray) -> float:
    """Mean number of sounding pitches over the steps where anything sounds (0 if silent).

    >>> r = np.zeros((2, 4, 4)); r[1, :2, 0] = 1; r[1, 0, 1] = 1
    >>> polyphony(r)
    1.5
    """
    active = canonical(roll)[SUSTAIN].sum(0)
    return float(active[active > 0].mean()) if (active > 0).any() else 0.0


def pitch_range(roll: np.ndarray) -> float:
    """Semitones between the lowest and highest sounding pitch (0 if silent).

    >>> r = np.zeros((2, 10, 2)); r[1, [2, 9], 0] = 1
    >>> pitch_range(r)
    7.0
    """
    rows = np.flatnonzero(canonical(roll)[SUSTAIN].any(1))
    return float(rows[-1] - rows[0]) if len(rows) else 0.0


def empty_beat_rate(roll: np.ndarray, steps_per_beat: int = 4) -> float:
    """Share of beats in which nothing sounds.

    >>> r = np.zeros((2, 3, 16)); r[1, 0, :4] = 1
    >>> empty_beat_rate(r)
    0.75
    """
    active = canonical(roll)[SUSTAIN].any(0)
    beats = active[: len(active) // steps_per_beat * steps_per_beat].reshape(-1, steps_per_beat)
    return float((~beats.any(1)).mean()) if len(beats) else 1.0


def pitch_class_histogram(roll: np.ndarray, low: int) -> np.ndarray:
    """Normalised histogram of note starts over the 12 pitch classes (zeros if silent)."""
    counts = note_starts(roll).sum(1)
    hist = np.bincount((np.arange(len(counts)) + low) % 12, weights=counts, minlength=12)
    return hist / hist.sum() if hist.sum() else hist


def pitch_classes_used(roll: np.ndarray, low: int) -> float:
    """How many of the 12 pitch classes start a note.

    >>> r = np.zeros((2, 24, 4)); r[:, [0, 12, 7], 0] = 1
    >>> pitch_classes_used(r, 60)
    2.0
    """
    return float((pitch_class_histogram(roll, low) > 0).sum())


def pitch_class_entropy(roll: np.ndarray, low: int) -> float:
    """Shannon entropy (bits) of the pitch-class histogram.

    >>> r = np.zeros((2, 12, 4)); r[:, [0, 1, 2, 3], 0] = 1
    >>> pitch_class_entropy(r, 60)
    2.0
    """
    h = pitch_class_histogram(roll, low)
    h = h[h > 0]
    return float(-(h * np.log2(h)).sum())


def scale_consistency(roll: np.ndarray, low: int) -> float:
    """Largest share of note starts that fit one major or natural-minor scale (1 if silent).

    >>> r = np.zeros((2, 12, 4)); r[:, [0, 2, 4, 6], 0] = 1   # C D E F#: fits G major
    >>> scale_consistency(r, 60)
    1.0
    """
    h = pitch_class_histogram(roll, low)
    if not h.sum():
        return 1.0
    return float(max(h[(scale + t) % 12].sum() for scale in (_MAJOR, _MINOR) for t in range(12)))


def groove_consistency(roll: np.ndarray, bar_steps: int = 16) -> float:
    """1 minus the mean Hamming distance between onset patterns of adjacent bars (per step).

    >>> r = np.zeros((2, 3, 32)); r[:, 0, [0, 4, 16, 20]] = 1
    >>> groove_consistency(r)
    1.0
    """
    grid = note_starts(roll).any(0)
    bars = grid[: len(grid) // bar_steps * bar_steps].reshape(-1, bar_steps)
    if len(bars) < 2:
        return 1.0
    return float(1 - (bars[1:] != bars[:-1]).mean())


def note_density(roll: np.ndarray) -> float:
    """Share of (pitch, step) cells that sound.

    >>> note_density(np.ones((2, 2, 2)))
    1.0
    """
    return float(canonical(roll)[SUSTAIN].mean())


def all_metrics(roll: np.ndarray, low: int) -> dict[str, float]:
    """Every metric of one roll, by name."""
    return {
        "notes_per_bar": notes_per_bar(roll),
        "polyphony": polyphony(roll),
        "pitch_range": pitch_range(roll),
        "empty_beat_rate": empty_beat_rate(roll),
        "pitch_classes_used": pitch_classes_used(roll, low),
        "pitch_class_entropy": pitch_class_entropy(roll, low),
        "scale_consistency": scale_consistency(roll, low),
        "groove_consistency": groove_consistency(roll),
        "note_density": note_density(roll),
    }


def overlap_area(a: np.ndarray, b: np.ndarray, bins: int = 20) -> float:
    """Overlapping area of two normalised histograms on a shared range (Yang & Lerch 2018 use the
    overlap of kernel densities; histograms keep it dependency-free). 1 = same distribution.

    >>> overlap_area(np.array([0.0, 1.0]), np.array([0.0, 1.0]))
    1.0
    >>> overlap_area(np.zeros(5), np.ones(5))
    0.0
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
    if hi - lo < 1e-12:
        return 1.0
    edges = np.linspace(lo, hi, bins + 1)
    ha = np.histogram(a, edges)[0] / len(a)
    hb = np.histogram(b, edges)[0] / len(b)
    return float(np.minimum(ha, hb).sum())
