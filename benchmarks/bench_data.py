"""Reading and building speed: MIDI files read per second through pretty_midi (the old path) and
symusic (the reader now) in one run, whether both give the same notes, and a large folder built
from cold with its peak memory; with --full, the whole default corpus from a cold cache.

    python benchmarks/bench_data.py                  # readers, a 10,000-file build (minutes)
    python benchmarks/bench_data.py --folder 0       # readers only
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


def build_in_subprocess(root: Path, cache: Path, jobs: int) -> dict:
    """Build ``root`` from a cold cache in a fresh process: wall time and peak resident memory of
    the builder and of its largest worker."""
    code = ("import json, resource, sys, time; from musicflow.data.build import build_dataset; "
            "t = time.perf_counter(); ds, r = build_dataset(sys.argv[1], jobs=int(sys.argv[2]), "
            "cache_dir=sys.argv[3], quiet=True); t = time.perf_counter() - t; "
            "ru = resource.getrusage; print(json.dumps({'s': t, 'pieces': len(ds), 'files': r.files, "
            "'self_kb': ru(resource.RUSAGE_SELF).ru_maxrss, "
            "'child_kb': ru(resource.RUSAGE_CHILDREN).ru_maxrss}))")
    p = subprocess.run([sys.executable, "-c", code, str(root), str(jobs), str(cache)], capture_output=True,
                       text=True, check=True)
    r = json.loads(p.stdout.strip().splitlines()[-1])
    return {"files": r["files"], "pieces": r["pieces"], "jobs": jobs, "cold_build_s": round(r["s"], 1),
            "files_per_s": round(r["files"] / r["s"], 1),
            "files_per_s_per_core": round(r["files"] / r["s"] / jobs, 1),
            "peak_rss_mb_builder": round(r["self_kb"] / 1024, 1),
            "peak_rss_mb_worker": round(r["child_kb"] / 1024, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=1000, help="generated files the readers compare on")
    ap.add_argument("--real", type=int, default=60, help="music21 corpus works written as MIDI")
    ap.add_argument("--abc", type=int, default=40, help="tunes per ABC collection to compare")
    ap.add_argument("--folder", type=int, default=10000, help="generated files in the large build (0: skip)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
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
            result["folder"] = build_in_subprocess(big, Path(tmp) / "big-cache", args.jobs)
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
