"""How often a genre's music restates a bar: bars 5-8 of an 8-bar period that repeat, note for note,
the bar four before. Folk tunes state a phrase and restate it; the polyphonic genres rarely do.
Training stores each genre's rate in the checkpoint, and composing restates bars in proportion to
it (:mod:`musicflow.compose.phrases`).

>>> import numpy as np
>>> roll = np.zeros((2, 4, 16)); roll[:, 0, ::2] = 1   # 8 bars of 2 steps, one note each bar
>>> restated_bars(roll, np.arange(0, 16, 2), 16)
(4, 4)
"""

from __future__ import annotations

import numpy as np

from musicflow.data.dataset import Dataset
from musicflow.roll import SUSTAIN

#: Bars per period, and how far back a bar of a period's second half looks.
PERIOD, HALF = 8, 4


def restated_bars(roll: np.ndarray, bars: np.ndarray, length: int) -> tuple[int, int]:
    """In one piece (roll ``(2, P, T)``, bar lines ``bars``, ``length`` steps), how many sounding
    bars of the second halves of its 8-bar periods equal the bar four before note for note, and
    how many there are. Bars of unequal length (a pick-up's, a change of metre's) are not compared."""
    lines = [int(b) for b in bars if b < length] + [length]
    spans = list(zip(lines[:-1], lines[1:]))
    on = roll > 0.5
    same = count = 0
    for j in range(HALF, len(spans)):
        (a0, a1), (b0, b1) = spans[j], spans[j - HALF]
        if j % PERIOD < HALF or a1 - a0 != b1 - b0 or not on[SUSTAIN, :, a0:a1].any():
            continue
        count += 1
        same += bool((on[..., a0:a1] == on[..., b0:b1]).all())
    return same, count


def restatements(ds: Dataset, split: str = "train") -> dict[str, float]:
    """Each genre's rate of restated bars (:func:`restated_bars`) over its ``split`` pieces of the
    :class:`~musicflow.data.dataset.Dataset` ``ds`` (0 where no bar can be compared)."""
    out = {}
    for g in ds.genres:
        same = count = 0
        for i in ds.indices(split, g):
            s, c = restated_bars(ds.roll(i), np.asarray(ds.piece_bars(i)), ds.length(i))
            same, count = same + s, count + c
        out[g] = round(same / count, 4) if count else 0.0
    return out
