"""Composing speed: ``musicflow compose --bars 8`` end to end against the floor of starting Python
with torch (``python -c "import torch"``), both as subprocesses in the same run, and API latency
for 8 and 64 bars with the checkpoint already loaded (as compose samples by default, and for 8 bars
also plainly, guidance 1, in the same run).

    python benchmarks/bench_compose.py [--model PATH] [--repeats 5]

Seeds: the CLI runs use --seed 0; API calls use seeds 0..repeats-1.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import save  # noqa: E402

from musicflow.compose import Composer  # noqa: E402


def wall(cmd: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def classify_held_out(c: Composer, per_genre: int, bars: int = 16) -> dict:
    """Likelihood classification (Bayes, uniform prior) of the first ``bars`` bars of up to
    ``per_genre`` test pieces of each genre (the first pieces in dataset order, no selection)."""
    import numpy as np
    import pretty_midi

    from musicflow.data.dataset import Dataset
    from musicflow.io.midi import piece_to_midi
    from musicflow.io.notes import Note, Piece
    from musicflow.paths import default_dataset

    ds = Dataset.load(default_dataset())
    genres = c.genres
    conf = np.zeros((len(genres), len(genres)), dtype=int)
    for gi, g in enumerate(genres):
        for i in ds.indices("test", g)[:per_genre]:
            rows = ds.piece_notes(i)
            rows = rows[rows[:, 1] < bars * 16]
            notes = [Note(int(p), s / 4, e / 4, int(v)) for p, s, e, v in rows]
            pm: pretty_midi.PrettyMIDI = piece_to_midi(Piece(notes), tempo=100)
            probs = c.classify(pm)
            conf[gi, genres.index(max(probs, key=probs.get))] += 1
    per = {g: round(float(conf[i, i] / conf[i].sum()), 3) for i, g in enumerate(genres) if conf[i].sum()}
    return {"pieces_per_genre": per_genre, "bars_per_piece": bars, "accuracy": round(float(
        np.trace(conf) / conf.sum()), 3), "accuracy_per_genre": per, "chance": round(1 / len(genres), 3),
        "confusion_rows_true_cols_predicted": {"genres": genres, "matrix": conf.tolist()}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--pieces", type=int, default=20, help="test pieces per genre to classify")
    args = ap.parse_args()
    model = ["--model", args.model] if args.model else []
    with tempfile.TemporaryDirectory() as tmp:
        floor = wall([sys.executable, "-c", "import torch"], args.repeats)
        cli = wall([sys.executable, "-m", "musicflow", "compose", "--bars", "8", "--seed", "0",
                    "-o", str(Path(tmp) / "x.mid"), "--quiet", *model], args.repeats)
    c = Composer.load(args.model)
    api = {}
    for bars in (8, 64):
        times = []
        for seed in range(args.repeats):
            t = time.perf_counter()
            c.compose(bars=bars, seed=seed)
            times.append(time.perf_counter() - t)
        api[f"{bars}_bars_s_median"] = round(statistics.median(times), 3)
    times = []
    for seed in range(args.repeats):
        t = time.perf_counter()
        c.compose(bars=8, seed=seed, guidance=1.0)
        times.append(time.perf_counter() - t)
    api["8_bars_plain_s_median"] = round(statistics.median(times), 3)
    api["8_bars_default_over_plain"] = round(api["8_bars_s_median"] / api["8_bars_plain_s_median"], 2)
    guidance, candidates = c.sampling()
    result_cls = classify_held_out(c, args.pieces)
    save("bench_compose", {
        "classify_test_pieces": result_cls,
        "cli_compose_8_bars_s_median": round(cli, 3),
        "python_import_torch_s_median": round(floor, 3),
        "cli_over_floor_ratio": round(cli / floor, 2),
        "api": api,
        "repeats": args.repeats,
        "sampling": {"guidance": guidance, "candidates": candidates},
        "model": args.model or "default (checkpoints/glow-music21.pt)",
    })


if __name__ == "__main__":
    main()
