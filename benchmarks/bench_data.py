"""Reading and building speed: MIDI files read per second through pretty_midi (the old path) and
symusic (the reader now) in one run, whether both give the same notes, and a large folder built
from cold with its peak memory; generated folders of growing size built in one file and in shards,
and the sequence flow's training reading each (peak memory: what sharding bounds); with --full, the
whole default corpus from a cold cache.

    python benchmarks/bench_data.py                  # readers, a 10,000-file build (minutes)
    python benchmarks/bench_data.py --folder 0 --scale ''   # readers only
    python benchmarks/bench_data.py --full           # also the cold music21 build (tens of minutes)

"Real" files are pieces of music21's corpus written as MIDI by music21 (the first ``--real`` of
Bach, Palestrina and the Trecento in corpus order) and music21's own MIDI test files: MIDI that
another program wrote, with ties, voices in unison and tempo marks. ABC stays with music21 unless
symusic's ABC reader gives the same notes: ``read_abc`` measures that.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pretty_midi

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median_time, save  # noqa: E402

from musicflow.data.build import build_dataset  # noqa: E402
from musicflow.errors import MusicflowError  # noqa: E402
from musicflow.io.midi import load_midi, piece_from_pretty_midi, read_midi  # noqa: E402


def make_midi_corpus(root: Path, n: int, seed: int = 0) -> None:
    """``n`` random 16-bar two-voice MIDI files in two genre folders (fixed seed)."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        folder = root / ("a" if i % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        pm = pretty_midi.PrettyMIDI(initial_tempo=100)
        for base in (48, 67):
            inst = pretty_midi.Instrument(0)
            t = 0.0
            while t < 16 * 4 * 0.6:
                d = 0.6 * rng.choice([0.25, 0.5, 1.0])
                inst.notes.append(pretty_midi.Note(80, int(base + rng.integers(0, 12)), t, t + d))
                t += d
            pm.instruments.append(inst)
        pm.write(str(folder / f"{i}.mid"))


def write_real_midi(root: Path, n: int) -> list[Path]:
    """The first ``n`` works of three music21 corpus composers, written as MIDI by music21, and
    music21's MIDI test files."""
    import music21

    root.mkdir(parents=True, exist_ok=True)
    out = []
    for composer, share in (("bach", 0.5), ("palestrina", 0.3), ("trecento", 0.2)):
        for path in music21.corpus.getComposer(composer)[:max(1, int(n * share))]:
            dest = root / f"{composer}-{Path(path).stem}.mid"
            music21.converter.parse(path).write("midi", fp=str(dest))
            out.append(dest)
    out += sorted((Path(music21.__file__).parent / "midi" / "testPrimitive").glob("*.mid"))
    return out


def old_read(path: Path):
    return piece_from_pretty_midi(load_midi(path), name=str(path))


def compare(files: list[Path]) -> dict:
    """Files per second through each reader (median of 3 passes) and where their output differs:
    the notes as a multiset (order within one onset and pitch may differ), bar lines, time
    signatures and the first tempo."""
    def read_all(reader):
        out = []
        for f in files:
            try:
                out.append(reader(f))
            except MusicflowError as e:
                out.append(str(e))
        return out

    old, new = read_all(old_read), read_all(read_midi)
    differ = {}
    for f, a, b in zip(files, old, new):
        if isinstance(a, str) or isinstance(b, str):
            if a != b:
                differ[f.name] = "one reader failed"
            continue
        why = [k for k in ("bar_lines", "time_signatures") if getattr(a, k) != getattr(b, k)]
        if Counter(a.notes) != Counter(b.notes):
            why.append(f"{sum((Counter(a.notes) - Counter(b.notes)).values())} notes")
        if abs(a.tempo - b.tempo) > 1e-6:
            why.append("first tempo")
        if why:
            differ[f.name] = ", ".join(why)
    t_old = median_time(lambda: read_all(old_read))
    t_new = median_time(lambda: read_all(read_midi))
    notes = sum(len(p.notes) for p in new if not isinstance(p, str))
    return {"files": len(files), "notes": notes, "pretty_midi_files_per_s": round(len(files) / t_old, 1),
            "symusic_files_per_s": round(len(files) / t_new, 1), "speedup": round(t_old / t_new, 1),
            "files_identical": len(files) - len(differ), "files_differing": differ}


def compare_abc(tunes: int) -> dict:
    """symusic's ABC reader against music21's (the reader the corpus uses) on the first ``tunes``
    tunes of one Essen and one O'Neill's collection: identical notes (pitch, start, end) per tune,
    and the time to read them."""
    import re

    import music21
    import symusic

    from musicflow.io.midi import piece_from_score
    from musicflow.io.scores import read_score_file

    out = {}
    for composer in ("essenFolksong", "oneills1850"):
        path = str(music21.corpus.getComposer(composer)[0])
        text = Path(path).read_text(encoding="latin-1")
        abc = ["X:" + t for t in re.split(r"^X:", text, flags=re.M)[1:]][:tunes]
        t = time.perf_counter()
        ref = read_score_file(path)[:tunes]
        t_m21 = time.perf_counter() - t
        t = time.perf_counter()
        ours = [piece_from_score(symusic.Score.from_abc(a)) for a in abc]
        t_sym = time.perf_counter() - t

        def key(piece):
            return sorted((n.pitch, n.start, n.end) for n in piece.notes)

        same = sum(key(a) == key(b) for a, b in zip(ours, ref))
        out[f"{composer}/{Path(path).name}"] = {
            "tunes": len(ours), "identical": same, "music21_whole_file_s": round(t_m21, 2),
            "symusic_s": round(t_sym, 3),
            "notes_symusic_over_music21": round(sum(len(p.notes) for p in ours)
                                                / max(sum(len(p.notes) for p in ref[:len(ours)]), 1), 3)}
    return out


def _in_subprocess(code: str, *args) -> dict:
    """Run ``code`` in a fresh process (so peak memory is its own) and return the JSON it prints last,
    with its peak resident memory and its children's (``self_kb``, ``child_kb``) and its own once its
    imports were done (``base_kb``: ``code`` sets it)."""
    code = ("import json, resource, sys, time\n" + code +
            "\nru = resource.getrusage; out.update(self_kb=ru(resource.RUSAGE_SELF).ru_maxrss, "
            "child_kb=ru(resource.RUSAGE_CHILDREN).ru_maxrss); print(json.dumps(out))")
    p = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                       check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])


BUILD = """
from musicflow.data.build import build_dataset
base_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
root, jobs, cache, out, shard_mb = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5])
t = time.perf_counter()
ds, r = build_dataset(root, jobs=jobs, cache_dir=cache, quiet=True, out=out, shard_mb=shard_mb or None)
if not ds.sharded:
    ds.save(out)
out = {'s': time.perf_counter() - t, 'pieces': len(ds), 'files': r.files, 'notes': len(ds.notes),
       'base_kb': base_kb}
"""


def build_in_subprocess(root: Path, cache: Path, jobs: int, out: Path, shard_mb: float = 0.0) -> dict:
    """Build ``root`` from a cold cache into ``out`` (in shards of ``shard_mb`` MB, or one file) in a
    fresh process: wall time and peak resident memory of the builder and of its largest worker."""
    r = _in_subprocess(BUILD, root, jobs, cache, out, shard_mb)
    return {"files": r["files"], "pieces": r["pieces"], "notes": r["notes"], "jobs": jobs,
            "shard_mb": shard_mb or None, "cold_build_s": round(r["s"], 1),
            "files_per_s": round(r["files"] / r["s"], 1),
            "files_per_s_per_core": round(r["files"] / r["s"] / jobs, 1),
            "peak_rss_mb_builder": round(r["self_kb"] / 1024, 1),
            "builder_mb_above_imports": round((r["self_kb"] - r["base_kb"]) / 1024, 1),
            "peak_rss_mb_worker": round(r["child_kb"] / 1024, 1)}


STREAM = """
import numpy as np
from musicflow.data.dataset import Dataset
from musicflow.training.pieces import CorpusPieces
base_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
train = CorpusPieces.load(Dataset.load(sys.argv[1]), 'train')
loaded = time.perf_counter() - t
rng = np.random.default_rng(0)
t = time.perf_counter()
for _ in range(int(sys.argv[2])):
    picks = [(int(i), 0) for i in rng.integers(0, len(train.lengths), 32)]
    train.batch(picks, 128)
out = {'load_s': loaded, 'batch_s': (time.perf_counter() - t) / int(sys.argv[2]),
       'pieces': len(train.lengths), 'base_kb': base_kb}
"""


def stream_in_subprocess(data: Path, batches: int = 200) -> dict:
    """Load the train split for the sequence flow's training from ``data`` and draw ``batches``
    batches of 32 windows of 128 steps, in a fresh process: time and peak resident memory."""
    r = _in_subprocess(STREAM, data, batches)
    return {"pieces": r["pieces"], "load_s": round(r["load_s"], 2), "batch_ms": round(1000 * r["batch_s"], 2),
            "peak_rss_mb": round(r["self_kb"] / 1024, 1),
            "mb_above_imports": round((r["self_kb"] - r["base_kb"]) / 1024, 1)}


def scaling(root: Path, sizes: list[int], jobs: int, shard_mb: float) -> list[dict]:
    """Builds of the first ``n`` files of generated folders, one file against shards, and the
    training's train split read from each: how peak memory grows with the corpus."""
    rows = []
    for n in sizes:
        folder = root / f"scale-{n}"
        make_midi_corpus(folder, n, seed=1)
        row = {"files": n}
        for name, mb in (("one_file", 0.0), ("sharded", shard_mb)):
            out = root / f"{name}-{n}.npz"
            row[name] = build_in_subprocess(folder, root / f"cache-{name}-{n}", jobs, out, mb)
            row[name]["training_read"] = stream_in_subprocess(out)
        rows.append(row)
        shutil.rmtree(folder)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=1000, help="generated files the readers compare on")
    ap.add_argument("--real", type=int, default=60, help="music21 corpus works written as MIDI")
    ap.add_argument("--abc", type=int, default=40, help="tunes per ABC collection to compare")
    ap.add_argument("--folder", type=int, default=10000, help="generated files in the large build (0: skip)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--scale", default="10000,20000",
                    help="folder sizes built in one file and in shards, comma-separated ('' to skip)")
    ap.add_argument("--shard-mb", type=float, default=4.0, help="shard size of the sharded builds")
    ap.add_argument("--full", action="store_true", help="also time the cold default-corpus build")
    args = ap.parse_args()
    result: dict = {"seed": 0, "jobs": args.jobs}
    with tempfile.TemporaryDirectory() as tmp:
        root, cache = Path(tmp) / "midi", Path(tmp) / "cache"
        make_midi_corpus(root, args.files)
        result["read_generated"] = compare(sorted(root.rglob("*.mid")))
        result["read_real"] = compare(write_real_midi(Path(tmp) / "real", args.real))
        result["read_abc"] = compare_abc(args.abc)
        t = time.perf_counter()
        build_dataset(str(root), jobs=args.jobs, cache_dir=cache, quiet=True)
        cold = time.perf_counter() - t
        warm = median_time(lambda: build_dataset(str(root), jobs=args.jobs, cache_dir=cache, quiet=True))
        result["midi"] = {"files": args.files, "cold_build_s": round(cold, 3),
                          "files_per_s": round(args.files / cold, 1),
                          "cache_reload_s_median": round(warm, 3),
                          "speedup_from_cache": round(cold / warm, 2)}
        if args.folder:
            big = Path(tmp) / "big"
            make_midi_corpus(big, args.folder, seed=1)
            result["folder"] = build_in_subprocess(big, Path(tmp) / "big-cache", args.jobs,
                                                   Path(tmp) / "big.npz")
            shutil.rmtree(big)
        if args.scale:
            result["scaling"] = scaling(Path(tmp), [int(n) for n in args.scale.split(",")], args.jobs,
                                        args.shard_mb)
        if args.full:
            t = time.perf_counter()
            ds, report = build_dataset("music21", jobs=args.jobs, cache_dir=Path(tmp) / "m21", quiet=False)
            full = time.perf_counter() - t
            t = time.perf_counter()
            build_dataset("music21", jobs=args.jobs, cache_dir=Path(tmp) / "m21", quiet=True)
            result["music21"] = {"files": report.files, "pieces": len(ds), "cold_build_s": round(full, 1),
                                 "cache_reload_s": round(time.perf_counter() - t, 1)}
    save("bench_data", result)


if __name__ == "__main__":
    main()
