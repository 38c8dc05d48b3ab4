"""The corpus builder: files -> pieces (parallel, cached) -> one compact dataset file.

Sources: ``music21`` (the default genre map over the corpus inside music21), a folder (each
subfolder a genre, or one ``genre`` for all files) or a CSV manifest with ``path,genre`` columns.
"""

from __future__ import annotations

import csv
import hashlib
import multiprocessing as mp
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from musicflow.data.cache import ParseCache, file_key
from musicflow.data.genres import default_corpus_files
from musicflow.errors import MusicflowError
from musicflow.io import READABLE_SUFFIXES, read_file
from musicflow.roll import estimate_key, key_shift, note_steps


@dataclass(frozen=True)
class SourceFile:
    path: Path
    genre: str
    piece_id: str


@dataclass
class BuildReport:
    """What a build read, kept and skipped, and why."""

    files: int = 0
    cached: int = 0
    pieces: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)

    def info(self, source: str, coverage: float) -> dict:
        """What a dataset's header records of its build."""
        return {"source": source, "files": self.files, "skipped": self.skipped, "dropped": dict(self.dropped),
                "coverage": coverage}

    def lines(self) -> list[str]:
        out = [f"files read: {self.files} ({self.cached} from cache), pieces kept: {self.pieces}, "
               f"files skipped: {len(self.skipped)}"]
        if self.dropped:
            out.append("left out: " + ", ".join(f"{v} {k}" for k, v in sorted(self.dropped.items())))
        out += [f"skipped {p}: {why}" for p, why in self.skipped]
        return out


def resolve_source(source: str, genre: str | None = None) -> list[SourceFile]:
    """Turn ``music21``, a folder or a ``.csv`` manifest into the list of files to read."""
    if source == "music21":
        return [SourceFile(p, g, i) for p, g, i in default_corpus_files(READABLE_SUFFIXES)]
    path = Path(source)
    if path.suffix.lower() == ".csv" and path.is_file():
        return _manifest(path)
    if not path.is_dir():
        raise MusicflowError(f"{source}: not 'music21', a folder, or a .csv manifest")
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in READABLE_SUFFIXES)
    if not files:
        raise MusicflowError(f"{path}: no MIDI, ABC, MusicXML or kern files found")
    out = []
    for p in files:
        rel = p.relative_to(path)
        if genre:
            g = genre
        elif len(rel.parts) > 1:
            g = rel.parts[0]
        else:
            raise MusicflowError(f"{p}: file outside a genre subfolder (label every file with "
                                 "genre=NAME; --genre on the command line)")
        out.append(SourceFile(p, g, rel.as_posix()))
    return out


def _manifest(path: Path) -> list[SourceFile]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"path", "genre"} <= set(reader.fieldnames):
            raise MusicflowError(f"{path}: manifest needs 'path,genre' columns")
        rows = list(reader)
    out = []
    for i, row in enumerate(rows, start=2):
        p = Path(row["path"])
        p = p if p.is_absolute() else path.parent / p
        if not row["genre"]:
            raise MusicflowError(f"{path}:{i}: empty genre")
        out.append(SourceFile(p, row["genre"].strip(), row["path"]))
    if not out:
        raise MusicflowError(f"{path}: manifest lists no files")
    return out


def parse_entry(path: Path, steps_per_quarter: int) -> dict:
    """Read one file into a JSON-able entry: ``{"pieces": [...]}`` or ``{"error": msg}``."""
    try:
        pieces = read_file(path, steps_per_quarter)
    except MusicflowError as e:
        return {"error": str(e).split(": ", 1)[-1]}
    except Exception as e:  # a reader bug on one file must not stop a corpus build
        return {"error": f"{type(e).__name__}: {e}"}
    out = []
    for p in pieces:
        steps = note_steps(p.notes, steps_per_quarter)
        bars = sorted({round(b * steps_per_quarter) for b in p.bar_lines})
        tonic, mode = estimate_key(steps)
        ts = p.time_signatures[0] if p.time_signatures else (0.0, 4, 4)
        out.append({"title": p.title, "notes": steps.tolist(), "bars": bars,
                    "time_signature": [int(ts[1]), int(ts[2])], "tempo": p.tempo,
                    "tonic": tonic, "mode": mode, "dropped": p.dropped})
    return {"pieces": out}


def _work(args: tuple[str, int, str | None]) -> tuple[str, dict, bool]:
    path, spq, cache_dir = args
    cache = ParseCache(Path(cache_dir) if cache_dir else None)
    p = Path(path)
    try:
        key = file_key(p, spq)
    except OSError as e:
        return path, {"error": f"cannot read ({e.strerror})"}, False
    entry = cache.get(key)
    if entry is not None:
        return path, entry, True
    entry = parse_entry(p, spq)
    cache.put(key, entry)
    return path, entry, False


def split_of(piece_id: str, valid: float = 0.1, test: float = 0.1) -> str:
    """Deterministic train/valid/test split from the piece id (never by window).

    >>> split_of("bach/bwv1.6.mxl") in {"train", "valid", "test"}
    True
    """
    u = int(hashlib.sha1(piece_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if u < test else "valid" if u < test + valid else "train"


def parse_files(
    files: list[SourceFile],
    steps_per_quarter: int = 4,
    jobs: int = 1,
    cache_dir: Path | None = None,
    quiet: bool = False,
) -> tuple[list[dict], BuildReport]:
    """Parse every file (in ``jobs`` processes, through the cache) into piece records."""
    report = BuildReport()
    by_path = {str(f.path): f for f in files}
    # Largest first, so one long file does not run alone at the end.
    order = sorted(files, key=lambda f: -f.path.stat().st_size if f.path.exists() else 0)
    records: list[dict] = []
    results = list(_parsed(order, steps_per_quarter, jobs, cache_dir, quiet, in_order=False))
    for path, entry, hit in sorted(results):
        records += file_records(by_path[path], entry, hit, report)
    report.pieces = len(records)
    return records, report


def file_records(src: SourceFile, entry: dict, hit: bool, report: BuildReport) -> list[dict]:
    """The piece records of one parsed file, labelled with its genre and id; counted in ``report``
    (a file that could not be read is named there)."""
    report.files += 1
    report.cached += hit
    if "error" in entry:
        report.skipped.append((str(src.path), entry["error"]))
        return []
    many = len(entry["pieces"]) > 1
    out = []
    for i, rec in enumerate(entry["pieces"]):
        if not rec["notes"]:
            continue
        rec = dict(rec, genre=src.genre, id=f"{src.piece_id}#{i}" if many else src.piece_id)
        report.dropped.update(rec.pop("dropped", {}))
        out.append(rec)
    return out


def _parsed(files: list[SourceFile], steps_per_quarter: int, jobs: int, cache_dir: Path | None, quiet: bool,
            in_order: bool):
    """``(path, entry, from cache)`` for each file, in ``jobs`` processes, as they finish or (with
    ``in_order``) in the order given, with a progress bar."""
    args = [(str(f.path), steps_per_quarter, str(cache_dir) if cache_dir else None) for f in files]
    with tqdm(total=len(args), desc="reading", unit="file", disable=quiet) as bar:
        if jobs > 1:
            ctx = mp.get_context("spawn" if mp.get_start_method(allow_none=True) == "spawn" else None)
            with ctx.Pool(jobs) as pool:
                each = pool.imap if in_order else pool.imap_unordered
                for r in each(_work, args, chunksize=1 if not in_order else 8):
                    bar.update(1)
                    yield r
        else:
            for r in map(_work, args):
                bar.update(1)
                yield r


def choose_pitch_range(records: list[dict], pitches: int | None, key_normalize: bool,
                       coverage: float = 0.99) -> tuple[int, int, float]:
    """The pitch window (low, size) keeping the most notes; ``pitches=None`` picks the smallest
    multiple of 8 (so three 2x squeezes divide it) keeping at least ``coverage`` of them.
    Returns (low, size, share kept)."""
    hist = np.zeros(HISTOGRAM, dtype=np.int64)
    for r in records:
        hist += pitch_histogram(r["notes"], r["tonic"], key_normalize)
    return range_from_histogram(hist, pitches, coverage)


#: Bins of the pitch histogram: MIDI pitches moved up by 6 (key normalisation moves down by up to 6).
HISTOGRAM = 128 + 12


def pitch_histogram(notes, tonic: int, key_normalize: bool) -> np.ndarray:
    """Notes per pitch of one piece (after key normalisation), on the bins :data:`HISTOGRAM`."""
    shift = key_shift(tonic) if key_normalize else 0
    p = np.asarray(notes, dtype=np.int64).reshape(-1, 4)[:, 0] + shift + 6
    return np.bincount(np.clip(p, 0, HISTOGRAM - 1), minlength=HISTOGRAM)


def range_from_histogram(hist: np.ndarray, pitches: int | None, coverage: float = 0.99
                         ) -> tuple[int, int, float]:
    """:func:`choose_pitch_range` from the corpus's pitch histogram."""
    total = max(int(hist.sum()), 1)
    sizes = [pitches] if pitches else list(range(24, 129, 8))
    for size in sizes:
        sums = np.convolve(hist, np.ones(size, dtype=np.int64), mode="valid")
        low = int(np.argmax(sums))
        share = float(sums[low]) / total
        if pitches or share >= coverage:
            return max(low - 6, 0), size, share
    return max(low - 6, 0), sizes[-1], share


def build_dataset(
    source: str = "music21",
    genre: str | None = None,
    jobs: int = 1,
    pitches: int | None = None,
    key_normalize: bool = True,
    window_steps: int = 64,
    steps_per_quarter: int = 4,
    cache_dir: Path | None = None,
    quiet: bool = False,
    out: str | Path | None = None,
    shard_mb: float | None = None,
):
    """Read a source into a :class:`~musicflow.data.dataset.Dataset` and a :class:`BuildReport`.

    With ``shard_mb`` the notes are written to ``out`` in shards of about that many MB as the files
    are read (:mod:`musicflow.data.shards`), so the builder's memory stays bounded by a shard and
    the pieces' metadata however large the corpus; the pieces, their order, splits and pitch range
    are those of the one-file build, and the dataset returned maps its notes from disk. Without,
    the dataset is built in memory (``out`` unused: :meth:`Dataset.save` writes it).

    Raises :class:`MusicflowError` when no piece survives.
    """
    if shard_mb:
        if out is None:
            raise MusicflowError("shard_mb: a sharded build needs the dataset file to write (out)")
        return _build_sharded(source, Path(out), shard_mb, genre, jobs, pitches, key_normalize, window_steps,
                              steps_per_quarter, cache_dir, quiet)
    from musicflow.data.dataset import Dataset
    from musicflow.roll import PianoRollSpec

    files = resolve_source(source, genre)
    records, report = parse_files(files, steps_per_quarter, jobs, cache_dir, quiet)
    if not records:
        raise MusicflowError(f"{source}: no piece could be read from {report.files} file(s)")
    for r in records:
        r["split"] = split_of(r["id"])
    low, size, share = choose_pitch_range(records, pitches, key_normalize)
    spec = PianoRollSpec(steps_per_quarter, window_steps, low, size, key_normalize)
    info = report.info(source, share)
    return Dataset.from_records(records, spec, info), report


def _build_sharded(source: str, out: Path, shard_mb: float, genre, jobs, pitches, key_normalize, window_steps,
                   steps_per_quarter, cache_dir, quiet):
    """:func:`build_dataset` writing shards as it reads."""
    from musicflow.data.dataset import Dataset, commit_shards, header
    from musicflow.data.shards import ShardWriter
    from musicflow.roll import PianoRollSpec

    files = sorted(resolve_source(source, genre), key=lambda f: str(f.path))
    report = BuildReport()
    meta: list[dict] = []
    counts: list[tuple[int, int]] = []
    hist = np.zeros(HISTOGRAM, dtype=np.int64)
    with ShardWriter(out, shard_mb) as writer:
        for src, (_, entry, hit) in zip(files, _parsed(files, steps_per_quarter, jobs, cache_dir, quiet,
                                                        in_order=True)):
            for rec in file_records(src, entry, hit, report):
                notes, bars = rec.pop("notes"), rec.pop("bars")
                hist += pitch_histogram(notes, rec["tonic"], key_normalize)
                writer.add(np.asarray(notes, dtype=np.int32).reshape(-1, 4), np.asarray(bars, dtype=np.int32))
                counts.append((len(notes), len(bars)))
                meta.append(dict(rec, split=split_of(rec["id"])))
        report.pieces = len(meta)
        if not meta:
            raise MusicflowError(f"{source}: no piece could be read from {report.files} file(s)")
        low, size, share = range_from_histogram(hist, pitches)
        spec = PianoRollSpec(steps_per_quarter, window_steps, low, size, key_normalize)
        info = report.info(source, share)
        n = np.asarray(counts, dtype=np.int64).reshape(-1, 2)
        note_offsets, bar_offsets = (np.concatenate([[0], np.cumsum(n[:, j])]).astype(np.int64)
                                     for j in (0, 1))
        commit_shards(out, writer, header(spec, sorted({m["genre"] for m in meta}), meta, info), note_offsets,
                      bar_offsets)
    return Dataset.load(out), report
