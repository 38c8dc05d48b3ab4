"""Datasets larger than memory: notes written in shards as they are read, memory-mapped on load.

A sharded dataset is the usual index file (``NAME.npz``: the JSON header and each piece's offsets)
beside a folder ``NAME.shards-<hash>/`` of plain ``.npy`` files, ``notes-00000.npy`` and
``bars-00000.npy`` per shard. The builder writes a shard whenever the notes it holds pass a size,
so its memory stays bounded whatever the corpus; the loader maps the shards instead of reading
them (:class:`ShardedArray`), so training touches only the pages of the pieces it draws and the
operating system may drop them again.

A rebuild writes new shards into a fresh folder and replaces the index last, atomically: a reader
sees the old dataset or the new one, never half of each; the old folder is removed after.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

import numpy as np

from musicflow.errors import MusicflowError


class ShardedArray:
    """Rows of several arrays read as one along the first axis (each a memory-mapped shard).

    >>> a = ShardedArray([np.arange(3), np.arange(3, 7)])
    >>> len(a), a[2:5].tolist(), np.asarray(a).tolist()
    (7, [2, 3, 4], [0, 1, 2, 3, 4, 5, 6])
    """

    def __init__(self, parts: list[np.ndarray]) -> None:
        self.parts = parts
        self.starts = np.cumsum([0] + [len(p) for p in parts])

    def __len__(self) -> int:
        return int(self.starts[-1])

    @property
    def dtype(self) -> np.dtype:
        return self.parts[0].dtype

    def __getitem__(self, key: slice) -> np.ndarray:
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("a sharded array is read by contiguous slices of rows")
        a, b, _ = key.indices(len(self))
        b = max(a, b)
        first = min(max(int(np.searchsorted(self.starts, a, side="right")) - 1, 0), len(self.parts) - 1)
        out = [self.parts[first][a - self.starts[first]:b - self.starts[first]]]
        for s in range(first + 1, len(self.parts)):
            if self.starts[s] >= b:
                break
            out.append(self.parts[s][:b - self.starts[s]])
        return out[0] if len(out) == 1 else np.concatenate(out)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = np.concatenate(self.parts)
        return whole if dtype is None else whole.astype(dtype)


def chunks(array) -> list[np.ndarray]:
    """The arrays that make up ``array`` in order: its shards, or itself."""
    return array.parts if isinstance(array, ShardedArray) else [array]


class ShardWriter:
    """Collects pieces' notes and bar lines and writes a shard whenever ``shard_mb`` MB of notes
    are held; :meth:`finish` names the folder after the content and returns the shards' names.

    Pieces are never split across shards, so one piece's rows come from one mapped file.
    """

    def __init__(self, index: Path, shard_mb: float) -> None:
        if not shard_mb > 0:
            raise MusicflowError(f"shard size must be positive, got {shard_mb} MB")
        self.index = Path(index)
        self.index.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.index.stem}.shards-", dir=self.index.parent))
        self.shard_bytes = max(int(shard_mb * 2 ** 20), 1)
        self.notes: list[np.ndarray] = []
        self.bars: list[np.ndarray] = []
        self.held = 0
        self.shards = 0
        self.note_counts: list[int] = []
        self.bar_counts: list[int] = []
        self.digest = hashlib.sha1()

    def add(self, notes: np.ndarray, bars: np.ndarray) -> None:
        notes = np.ascontiguousarray(notes, dtype=np.int32).reshape(-1, 4)
        self.notes.append(notes)
        self.bars.append(np.asarray(bars, dtype=np.int32))
        self.note_counts.append(len(notes))
        self.bar_counts.append(len(self.bars[-1]))
        self.digest.update(notes.tobytes())
        self.digest.update(self.bars[-1].tobytes())
        self.held += notes.nbytes
        if self.held >= self.shard_bytes:
            self.flush()

    def flush(self) -> None:
        if not self.notes:
            return
        np.save(self.tmp / f"notes-{self.shards:05d}.npy", np.concatenate(self.notes))
        np.save(self.tmp / f"bars-{self.shards:05d}.npy", np.concatenate(self.bars))
        self.notes, self.bars, self.held = [], [], 0
        self.shards += 1

    def finish(self) -> tuple[str, int]:
        """Write what is held, move the folder to its final name; return it (relative to the
        index's folder) and the number of shards."""
        self.flush()
        # Named by what they hold: an identical rebuild finds its shards already there.
        name = f"{self.index.stem}.shards-{self.digest.hexdigest()[:12]}-{self.shards}"
        final = self.index.parent / name
        if final.is_dir():
            self.abort()
        else:
            self.tmp.rename(final)
        return name, self.shards

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, kind, *_) -> None:
        if kind is not None:  # a failed build leaves no half-written shards behind
            self.abort()


def load_shards(index: Path, folder: str, count: int) -> tuple[ShardedArray, ShardedArray]:
    """Map the notes and bar lines of the ``count`` shards in ``folder`` beside ``index``."""
    root = index.parent / folder
    notes, bars = [], []
    for s in range(count):
        for name, into in ((f"notes-{s:05d}.npy", notes), (f"bars-{s:05d}.npy", bars)):
            path = root / name
            try:
                into.append(np.load(path, mmap_mode="r", allow_pickle=False))
            except FileNotFoundError:
                raise MusicflowError(f"{path}: shard of {index} is missing; rebuild the dataset") from None
            except (ValueError, OSError) as e:
                raise MusicflowError(f"{path}: unreadable shard of {index} ({e})") from None
    if any(n.ndim != 2 or n.shape[1] != 4 for n in notes):
        raise MusicflowError(f"{root}: a notes shard is not a (notes, 4) array; rebuild the dataset")
    return ShardedArray(notes), ShardedArray(bars)


def remove_stale(index: Path, keep: str | None) -> None:
    """Remove the shard folders beside ``index`` other than ``keep`` (after the index moved on)."""
    for old in index.parent.glob(f"{index.stem}.shards-*"):
        if old.is_dir() and old.name != keep and not old.name.startswith("."):
            shutil.rmtree(old, ignore_errors=True)
