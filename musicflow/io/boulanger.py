"""The polyphonic-music benchmark format of Boulanger-Lewandowski et al. (2012).

A file holds a dict of splits (``train``, ``valid``, ``test``); each split is a list of pieces,
each piece a list of time steps, each step the list of MIDI pitches sounding at that step (an
empty list is a silent step). Held and repeated notes are not told apart. The files come as JSON
(``jsb-chorales-quarter.json``) or as Python pickles (``JSB Chorales.pickle``).

**Pickles can run code when loaded.** :func:`read_boulanger` opens a pickle only because the user
named it; never point it at a file you did not get from a source you trust. JSON is always safe.

>>> import json, os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "tiny.json")
>>> json.dump({"train": [[[60, 64], [], [60]]], "valid": [[[67]]]}, open(path, "w"))
>>> data = read_boulanger(path)
>>> sorted(data), frames(data["train"][0]).shape, int(frames(data["train"][0]).sum())
(['train', 'valid'], (3, 88), 3)

Reference: N. Boulanger-Lewandowski, Y. Bengio, P. Vincent, "Modeling Temporal Dependencies in
High-Dimensional Sequences: Application to Polyphonic Music Generation and Transcription",
ICML 2012.
"""

from __future__ import annotations

import json
import numbers
import pickle
from pathlib import Path

import numpy as np

from musicflow.errors import MusicflowError

SPLITS = ("train", "valid", "test")
LOW, KEYS = 21, 88  # the piano keys A0..C8, the published setup's frame
HIGH = LOW + KEYS - 1
PICKLE_SUFFIXES = {".pickle", ".pkl"}

Piece = list[list[int]]


def read_boulanger(path: str | Path) -> dict[str, list[Piece]]:
    """Read and validate a benchmark file (``.json``, ``.pickle`` or ``.pkl``).

    Returns ``{split: [piece, ...]}`` with every pitch a Python ``int`` in 21..108. Any problem is
    one :class:`MusicflowError` that names the file and the place (split, piece, step).
    A ``train`` split is required; ``valid`` and ``test`` are optional, other keys are an error.
    """
    path = Path(path)
    if not path.is_file():
        raise MusicflowError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            with open(path, encoding="utf-8") as f:
                raw = json.load(f)
        elif suffix in PICKLE_SUFFIXES:
            with open(path, "rb") as f:
                # latin1: the original files were pickled by Python 2 (numpy arrays inside need it).
                raw = pickle.load(f, encoding="latin1")  # noqa: S301 - the user named this file
        else:
            raise MusicflowError(f"{path}: unsupported file type '{suffix}' (use .json, .pickle or .pkl)")
    except MusicflowError:
        raise
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
        raise MusicflowError(f"{path}: not valid {suffix[1:]} ({type(e).__name__})") from None
    except Exception as e:  # unpickling can fail in many ways: all mean "not this format"
        raise MusicflowError(f"{path}: cannot be unpickled ({type(e).__name__})") from None
    return validate(raw, str(path))


def validate(raw: object, name: str = "data") -> dict[str, list[Piece]]:
    """Check the structure of a loaded benchmark dict and normalise pitches to ``int``.

    >>> validate({"train": [[[60.0]]]})["train"]
    [[[60]]]
    >>> validate({"train": [[[60.5]]]})
    Traceback (most recent call last):
    musicflow.errors.MusicflowError: data: train piece 0 step 0: pitch 60.5 is not an integer
    """
    if not isinstance(raw, dict):
        raise MusicflowError(f"{name}: expected a dict of splits, got {type(raw).__name__}")
    unknown = sorted(str(k) for k in raw if k not in SPLITS)
    if unknown:
        raise MusicflowError(f"{name}: unknown split(s) {unknown} (expected {', '.join(SPLITS)})")
    if "train" not in raw:
        raise MusicflowError(f"{name}: no 'train' split (found {sorted(raw) or 'none'})")
    out: dict[str, list[Piece]] = {}
    for split in SPLITS:
        if split not in raw:
            continue
        pieces = raw[split]
        if not isinstance(pieces, (list, tuple)) or not len(pieces):
            raise MusicflowError(f"{name}: split '{split}' must be a non-empty list of pieces")
        out[split] = [_piece(p, f"{name}: {split} piece {i}") for i, p in enumerate(pieces)]
    return out


def _piece(piece: object, where: str) -> Piece:
    if hasattr(piece, "tolist") and not isinstance(piece, (list, tuple)):
        piece = piece.tolist()
    if not isinstance(piece, (list, tuple)) or not len(piece):
        raise MusicflowError(f"{where}: must be a non-empty list of time steps")
    steps = []
    for t, step in enumerate(piece):
        if hasattr(step, "tolist") and not isinstance(step, (list, tuple)):
            step = step.tolist()
        if not isinstance(step, (list, tuple)):
            raise MusicflowError(f"{where} step {t}: expected a list of pitches, got {type(step).__name__}")
        pitches = []
        for p in step:
            if isinstance(p, bool) or not isinstance(p, numbers.Real):
                raise MusicflowError(f"{where} step {t}: pitch {p!r} is not a number")
            if p != int(p):
                raise MusicflowError(f"{where} step {t}: pitch {p} is not an integer")
            if not LOW <= int(p) <= HIGH:
                raise MusicflowError(f"{where} step {t}: pitch {int(p)} is outside the piano "
                                     f"range {LOW}..{HIGH}")
            pitches.append(int(p))
        steps.append(sorted(set(pitches)))
    return steps


def frames(piece: Piece) -> np.ndarray:
    """A piece as a boolean ``(T, 88)`` array; column ``k`` is MIDI pitch ``21 + k``.

    >>> frames([[21, 108], []]).nonzero()
    (array([0, 0]), array([ 0, 87]))
    """
    out = np.zeros((len(piece), KEYS), dtype=bool)
    for t, step in enumerate(piece):
        out[t, [p - LOW for p in step]] = True
    return out


def piece_notes(piece: Piece) -> np.ndarray:
    """Runs of a pitch over consecutive steps as ``(N, 4)`` (pitch, start, end, velocity) rows.

    The format cannot tell a held note from a repeated one, so a run of steps is one note.

    >>> piece_notes([[60], [60, 64], [64]]).tolist()
    [[60, 0, 2, 80], [64, 1, 3, 80]]
    """
    f = frames(piece)
    padded = np.concatenate([np.zeros((1, KEYS), bool), f, np.zeros((1, KEYS), bool)])
    d = np.diff(padded.astype(np.int8), axis=0)
    rows = []
    for k in range(KEYS):
        starts, ends = np.flatnonzero(d[:, k] == 1), np.flatnonzero(d[:, k] == -1)
        rows += [(LOW + k, s, e, 80) for s, e in zip(starts, ends)]
    rows.sort(key=lambda r: (r[1], r[0]))
    return np.asarray(rows, dtype=np.int32).reshape(-1, 4)
