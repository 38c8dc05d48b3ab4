"""Corpus building speed: MIDI files encoded per second, cache reload time, and (with --full) the
whole default corpus from a cold cache on this machine.

    python benchmarks/bench_data.py            # MIDI throughput and cache reload (about a minute)
    python benchmarks/bench_data.py --full     # also the cold full music21 build (tens of minutes)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pretty_midi

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median_time, save  # noqa: E402

from musicflow.data.build import build_dataset  # noqa: E402


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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=400)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--full", action="store_true", help="also time the cold default-corpus build")
    args = ap.parse_args()
    result: dict = {"seed": 0, "jobs": args.jobs}
    with tempfile.TemporaryDirectory() as tmp:
        root, cache = Path(tmp) / "midi", Path(tmp) / "cache"
        make_midi_corpus(root, args.files)
        t = time.perf_counter()
        build_dataset(str(root), jobs=args.jobs, cache_dir=cache, quiet=True)
        cold = time.perf_counter() - t
        warm = median_time(lambda: build_dataset(str(root), jobs=args.jobs, cache_dir=cache, quiet=True))
        result["midi"] = {"files": args.files, "cold_build_s": round(cold, 3),
                          "files_per_s": round(args.files / cold, 1),
                          "cache_reload_s_median": round(warm, 3),
                          "speedup_from_cache": round(cold / warm, 2)}
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
