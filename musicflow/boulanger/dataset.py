"""A benchmark file as a musicflow dataset, so the window models can train and be scored on it."""

from __future__ import annotations

from pathlib import Path

from musicflow.data.dataset import Dataset
from musicflow.errors import MusicflowError
from musicflow.io.boulanger import KEYS, LOW, piece_notes, read_boulanger
from musicflow.roll import PianoRollSpec


def boulanger_dataset(path: str | Path, steps_per_quarter: int = 1, genre: str = "chorale"):
    """A :class:`~musicflow.data.dataset.Dataset` from a benchmark file, splits as in the file.

    One roll step per time step of the data (``steps_per_quarter`` says what a step is: 1 for the
    quarter-note files, 4 for the 16th-note ones), all 88 keys, no key normalisation, one genre.
    Runs of a pitch become notes (:func:`piece_notes`), so the roll's sustain channel is exactly
    the data; its onset channel marks run starts, which this format cannot distinguish from
    repeated notes. The data has no bar lines; nominal 4/4 bar lines are stored.
    """
    if steps_per_quarter < 1:
        raise MusicflowError(f"steps_per_quarter must be positive, got {steps_per_quarter}")
    data = read_boulanger(path)
    bar = 4 * steps_per_quarter
    records = []
    for split, pieces in data.items():
        for i, piece in enumerate(pieces):
            records.append({"id": f"{split}/{i:03d}", "genre": genre, "split": split,
                            "title": f"{Path(path).stem} {split} {i}", "notes": piece_notes(piece),
                            "bars": list(range(0, len(piece), bar)), "tonic": 0,
                            "steps": len(piece)})
    spec = PianoRollSpec(steps_per_quarter=steps_per_quarter, window_steps=16 * steps_per_quarter,
                         low=LOW, pitches=KEYS, key_normalize=False)
    info = {"source": f"boulanger:{path}", "files": 1, "skipped": [], "dropped": {}, "coverage": 1.0,
            "splits": {s: len(p) for s, p in data.items()}}
    return Dataset.from_records(records, spec, info)
