"""A built corpus: notes per piece stored compactly, windows cut at load time.

The file is a ``.npz`` of plain arrays (no pickles): every piece's notes as (pitch, start step,
end step, velocity) rows, its bar lines in steps, and a JSON header with the representation spec,
genres, piece metadata (id, genre, split, title, key) and the build report. A corpus larger than
memory keeps its notes and bar lines in memory-mapped shards beside the file instead
(:mod:`musicflow.data.shards`); a :class:`Dataset` reads the same either way.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from musicflow.data.shards import ShardedArray, ShardWriter, chunks, load_shards, remove_stale
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
    notes: np.ndarray | ShardedArray
    note_offsets: np.ndarray
    bars: np.ndarray | ShardedArray
    bar_offsets: np.ndarray
    info: dict
    shards: int = 0  # memory-mapped shards the notes live in (0: all in this file)

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
    def save(self, path: str | Path, shard_mb: float | None = None) -> Path:
        """Write the dataset as one file, or with ``shard_mb`` its notes in shards of about that
        many MB beside it (:mod:`musicflow.data.shards`)."""
        if not shard_mb:
            return write_index(path, self._header(), self.note_offsets, self.bar_offsets,
                               notes=np.asarray(self.notes), bars=np.asarray(self.bars))
        writer = ShardWriter(Path(path), shard_mb)
        with writer:
            for i in range(len(self)):
                writer.add(self.piece_notes(i), self.piece_bars(i))
        return commit_shards(path, writer, self._header(), self.note_offsets, self.bar_offsets)

    def _header(self) -> dict:
        return header(self.spec, self.genres, self.pieces, self.info)

    @classmethod
    def load(cls, path: str | Path) -> Dataset:
        path = Path(path)
        if not path.is_file():
            raise MusicflowError(f"{path}: no such dataset (build one with 'musicflow data build')")
        try:
            with np.load(path, allow_pickle=False) as z:
                header = json.loads(bytes(z["header"]).decode())
                sharded = "shards" in header
                names = ("note_offsets", "bar_offsets") + (() if sharded else ("notes", "bars"))
                arrays = {k: z[k] for k in names}
        except Exception as e:  # zip, key and JSON errors all mean the same to a user
            raise MusicflowError(f"{path}: not a musicflow dataset ({type(e).__name__})") from None
        if header.get("format") != FORMAT or header.get("version") != FORMAT_VERSION:
            raise MusicflowError(f"{path}: dataset format {header.get('version')} is not "
                                 f"{FORMAT_VERSION}; rebuild it with 'musicflow data build'")
        shards = 0
        if sharded:
            shards = int(header["shards"]["count"])
            arrays["notes"], arrays["bars"] = load_shards(path, header["shards"]["folder"], shards)
            if len(arrays["notes"]) != arrays["note_offsets"][-1]:
                raise MusicflowError(f"{path}: its shards hold {len(arrays['notes'])} notes, the index "
                                     f"{arrays['note_offsets'][-1]}; rebuild the dataset")
        return cls(PianoRollSpec.from_dict(header["spec"]), header["genres"], header["pieces"],
                   info=header["info"], shards=shards, **arrays)

    def content_hash(self) -> str:
        """A short hash of notes, labels and spec: names the training data in checkpoints (the
        same for a dataset written as one file or in shards)."""
        h = hashlib.sha1()
        for part in chunks(self.notes):
            h.update(np.ascontiguousarray(part).tobytes())
        h.update(json.dumps([(p["id"], p["genre"], p["split"]) for p in self.pieces]).encode())
        h.update(json.dumps(self.spec.to_dict(), sort_keys=True).encode())
        return h.hexdigest()[:16]

    # -- access --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.pieces)

    @property
    def sharded(self) -> bool:
        return self.shards > 0

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
        if self.sharded:
            out.write(f"notes in {self.shards} memory-mapped shard(s) beside the file\n")
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


def header(spec: PianoRollSpec, genres: list[str], pieces: list[dict], info: dict) -> dict:
    """A dataset file's JSON header."""
    return {"format": FORMAT, "version": FORMAT_VERSION, "spec": spec.to_dict(), "genres": genres,
            "pieces": pieces, "info": info}


def write_index(path: str | Path, header: dict, note_offsets: np.ndarray, bar_offsets: np.ndarray,
                **arrays: np.ndarray) -> Path:
    """Write a dataset file atomically: the header and offsets, and ``notes`` and ``bars`` unless
    the header names the shards that hold them."""
    order = ("notes", "note_offsets", "bars", "bar_offsets")  # the order earlier files have
    given = {**arrays, "note_offsets": note_offsets, "bar_offsets": bar_offsets}
    arrays = {k: given[k] for k in order if k in given}
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)

    return atomic_write(path, write)


def commit_shards(path: str | Path, writer: ShardWriter, header: dict, note_offsets: np.ndarray,
                  bar_offsets: np.ndarray) -> Path:
    """Finish ``writer``'s shards and write the index that names them, then remove the shards of
    any earlier build at ``path`` (a reader sees the old dataset or the new one, never a mix)."""
    folder, count = writer.finish()
    write_index(path, {**header, "shards": {"folder": folder, "count": count}}, note_offsets, bar_offsets)
    remove_stale(Path(path), folder)
    return Path(path)
