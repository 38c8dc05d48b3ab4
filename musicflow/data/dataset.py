"""A built corpus: notes per piece stored compactly, windows cut at load time.

The file is a ``.npz`` of plain arrays (no pickles): every piece's notes as (pitch, start step,
end step, velocity) rows, its bar lines in steps, and a JSON header with the representation spec,
genres, piece metadata (id, genre, split, title, key) and the build report.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from musicflow.errors import MusicflowError
from musicflow.files import atomic_write
from musicflow.roll import PianoRollSpec, encode_steps, key_shift, window_starts

FORMAT = "musicflow-dataset"
FORMAT_VERSION = 1
SPLITS = ("train", "valid", "test")


@dataclass
class Dataset:
    """Pieces of several genres, each with notes, bar lines and metadata.

    >>> ds = Dataset.from_records([{"id": "a", "genre": "x", "split": "train", "title": "A",
    ...     "notes": [[60, 0, 4, 80]], "bars": [0], "tonic": 0}], PianoRollSpec())
    >>> ds.roll(0).shape
    (2, 48, 4)
    """

    spec: PianoRollSpec
    genres: list[str]
    pieces: list[dict]
    notes: np.ndarray
    note_offsets: np.ndarray
    bars: np.ndarray
    bar_offsets: np.ndarray
    info: dict

    @classmethod
    def from_records(cls, records: list[dict], spec: PianoRollSpec, info: dict | None = None) -> Dataset:
        genres = sorted({r["genre"] for r in records})
        notes = [np.asarray(r["notes"], dtype=np.int32).reshape(-1, 4) for r in records]
        bars = [np.asarray(r["bars"], dtype=np.int32) for r in records]
        meta = [{k: v for k, v in r.items() if k not in ("notes", "bars")} for r in records]
        return cls(spec, genres, meta,
                   np.concatenate(notes) if notes else np.zeros((0, 4), np.int32),
                   np.cumsum([0] + [len(n) for n in notes]).astype(np.int64),
                   np.concatenate(bars) if bars else np.zeros(0, np.int32),
                   np.cumsum([0] + [len(b) for b in bars]).astype(np.int64),
                   info or {})

    # -- storage -------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        header = {"format": FORMAT, "version": FORMAT_VERSION, "spec": self.spec.to_dict(),
                  "genres": self.genres, "pieces": self.pieces, "info": self.info}
        arrays = {"notes": self.notes, "note_offsets": self.note_offsets, "bars": self.bars,
                  "bar_offsets": self.bar_offsets,
                  "header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, **arrays)

        return atomic_write(path, write)

    @classmethod
    def load(cls, path: str | Path) -> Dataset:
        path = Path(path)
        if not path.is_file():
            raise MusicflowError(f"{path}: no such dataset (build one with 'musicflow data build')")
        try:
            with np.load(path, allow_pickle=False) as z:
                header = json.loads(bytes(z["header"]).decode())
                arrays = {k: z[k] for k in ("notes", "note_offsets", "bars", "bar_offsets")}
        except Exception as e:  # zip, key and JSON errors all mean the same to a user
            raise MusicflowError(f"{path}: not a musicflow dataset ({type(e).__name__})") from None
        if header.get("format") != FORMAT or header.get("version") != FORMAT_VERSION:
            raise MusicflowError(f"{path}: dataset format {header.get('version')} is not "
                                 f"{FORMAT_VERSION}; rebuild it with 'musicflow data build'")
        return cls(PianoRollSpec.from_dict(header["spec"]), header["genres"], header["pieces"],
                   info=header["info"], **arrays)

    def content_hash(self) -> str:
        """A short hash of notes, labels and spec: names the training data in checkpoints."""
        h = hashlib.sha1(self.notes.tobytes())
        h.update(json.dumps([(p["id"], p["genre"], p["split"]) for p in self.pieces]).encode())
        h.update(json.dumps(self.spec.to_dict(), sort_keys=True).encode())
        return h.hexdigest()[:16]

    # -- access --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.pieces)

    def piece_notes(self, i: int) -> np.ndarray:
        return self.notes[self.note_offsets[i]:self.note_offsets[i + 1]]

    def piece_bars(self, i: int) -> np.ndarray:
        return self.bars[self.bar_offsets[i]:self.bar_offsets[i + 1]]

    def shift(self, i: int) -> int:
        """Transposition applied to piece ``i`` (to C when the spec normalises keys)."""
        return key_shift(self.pieces[i].get("tonic", 0)) if self.spec.key_normalize else 0

    def length(self, i: int) -> int:
        """Steps of piece ``i``: up to the end of its last note."""
        notes = self.piece_notes(i)
        return int(notes[:, 2].max()) if len(notes) else 0

    def roll(self, i: int) -> np.ndarray:
        """Piece ``i`` as a full roll, key-normalised when the spec says so."""
        return encode_steps(self.piece_notes(i), self.spec, length=self.length(i), shift=self.shift(i))[0]

    def indices(self, split: str | None = None, genre: str | None = None) -> list[int]:
        return [i for i, p in enumerate(self.pieces)
                if (split is None or p["split"] == split) and (genre is None or p["genre"] == genre)]

    def coverage(self) -> float:
        """Share of notes inside the spec's pitch range (after key normalisation)."""
        kept = total = 0
        for i in range(len(self)):
            p = self.piece_notes(i)[:, 0] + self.shift(i)
            kept += int(((p >= self.spec.low) & (p <= self.spec.high)).sum())
            total += len(p)
        return kept / max(total, 1)

    def summary(self, window: int | None = None) -> dict:
        """Pieces, windows and bars per genre and split (windows start on bar lines)."""
        window = window or self.spec.window_steps
        table: dict[str, dict[str, Counter]] = {}
        for i, p in enumerate(self.pieces):
            length = self.length(i)
            bars = self.piece_bars(i)
            c = table.setdefault(p["genre"], {}).setdefault(p["split"], Counter())
            c["pieces"] += 1
            c["bars"] += int((bars < length).sum())
            c["windows"] += len(window_starts(bars, length, window, window))
        return {g: {s: dict(c) for s, c in v.items()} for g, v in sorted(table.items())}

    def describe(self, window: int | None = None) -> str:
        """The table ``musicflow data info`` prints."""
        summ = self.summary(window)
        out = io.StringIO()
        out.write(f"{len(self)} pieces, {len(self.notes)} notes, genres: {', '.join(self.genres)}\n")
        out.write(f"grid: {self.spec.steps_per_quarter} steps per quarter, windows of "
                  f"{window or self.spec.window_steps} steps; pitch range {self.spec.low}.."
                  f"{self.spec.high} ({self.spec.pitches} pitches, key-normalised: "
                  f"{self.spec.key_normalize}) keeps {100 * self.coverage():.2f}% of notes\n")
        head = f"{'genre':<14}" + "".join(f"{s + ' pcs/bars/win':>26}" for s in SPLITS)
        out.write(head + "\n")
        for g, splits in summ.items():
            cells = []
            for s in SPLITS:
                c = splits.get(s, {})
                cells.append(f"{c.get('pieces', 0)}/{c.get('bars', 0)}/{c.get('windows', 0)}")
            out.write(f"{g:<14}" + "".join(f"{c:>26}" for c in cells) + "\n")
        return out.getvalue()
