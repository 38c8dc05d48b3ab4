"""Composing speed, per model in one run: ``musicflow compose --bars 8`` end to end against the
floor of starting Python with torch (``python -c "import torch"``), both as subprocesses, and the
peak memory of that command; API latency with the checkpoint loaded, 8 bars in every genre (as
compose samples by default, and plainly, guidance 1), 64 bars, and the bars per second of a batch
of pieces; for the sequence flow, its 8-bar pieces decoded steps ahead and one step a pass, each
seed both ways back to back, with a check that the pieces are the same; and likelihood
classification of held-out test pieces.

    python benchmarks/bench_compose.py [--model keyflow --model glow] [--repeats 5]
    python benchmarks/bench_compose.py --model cnf --model glow --short --pieces 0 --name bench_compose_cnf

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

import numpy as np

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


def peak_rss_mb(cmd: list[str]) -> float:
    """Peak resident memory of one run of ``cmd`` (a child process), in MB."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run(cmd, check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(after, before) / 1024, 1)  # ru_maxrss is in kB on Linux; the largest child so far


def api_times(c: Composer, repeats: int, pieces: int, short: bool = False) -> dict:
    """API latency with the checkpoint loaded (medians over seeds 0..repeats-1): 8 bars per genre
    as compose samples by default, plainly and in 4/4, 64 bars in the default genre, and the bars per second
    of ``pieces`` 8-bar pieces generated in one batch (``compose_rolls``)."""
    def median(fn) -> float:
        times = []
        for seed in range(repeats):
            t = time.perf_counter()
            fn(seed)
            times.append(time.perf_counter() - t)
        return round(statistics.median(times), 3)

    per_genre = {g: median(lambda seed, g=g: c.compose(g, bars=8, seed=seed)) for g in c.genres}
    plain = {g: median(lambda seed, g=g: c.compose(g, bars=8, seed=seed, guidance=1.0)) for g in c.genres}
    if short:  # 8 bars only: the comparison between models
        return {"8_bars_s_median_per_genre": per_genre, "8_bars_plain_s_median_per_genre": plain,
                "8_bars_s_median": round(statistics.median(per_genre.values()), 3),
                "8_bars_plain_s_median": round(statistics.median(plain.values()), 3)}
    # Genres differ in bar length (3/4 is 12 steps, 4/2 is 32): the same 8 bars of 4/4 in every
    # genre separate the cost of a step from the length of the music.
    even = {g: median(lambda seed, g=g: c.compose(g, bars=8, seed=seed, time_signature="4/4"))
            for g in c.genres}
    t = time.perf_counter()
    c.compose_rolls(c.default_genre, n=pieces, bars=8, seed=0)
    batch = time.perf_counter() - t
    out = {"8_bars_s_median_per_genre": per_genre, "8_bars_plain_s_median_per_genre": plain,
           "8_bars_s_median": round(statistics.median(per_genre.values()), 3),
           "8_bars_plain_s_median": round(statistics.median(plain.values()), 3),
           "slowest_over_fastest_genre": round(max(per_genre.values()) / min(per_genre.values()), 2),
           "8_bars_4_4_s_median_per_genre": even,
           "slowest_over_fastest_genre_4_4": round(max(even.values()) / min(even.values()), 2),
           "64_bars_s_median": median(lambda seed: c.compose(bars=64, seed=seed)),
           f"batch_{pieces}_pieces_of_8_bars_s": round(batch, 2),
           "batch_bars_per_s": round(pieces * 8 / batch, 2)}
    ahead = getattr(c, "ahead", 1)
    if ahead > 1:  # the sequence flow decodes steps ahead: against the same pieces one step a pass
        out.update(ahead_against_steps(c, repeats))
    out["64_over_8_bars"] = round(out["64_bars_s_median"] / per_genre[c.default_genre], 2)
    out["8_bars_default_over_plain"] = round(out["8_bars_s_median"] / out["8_bars_plain_s_median"], 2)
    return out


def ahead_against_steps(c: Composer, repeats: int) -> dict:
    """8 bars per genre decoded steps ahead (the default) and one step a pass, each seed timed both
    ways back to back (medians over seeds 0..repeats-1), and whether every piece came out the same."""
    ahead, times, same = c.ahead, {}, True
    try:
        for g in c.genres:
            pair = {ahead: [], 1: []}
            for seed in range(repeats):
                rolls = []
                for a in pair:
                    c.ahead = a
                    t = time.perf_counter()
                    rolls.append(c.compose_result(g, bars=8, seed=seed).roll)
                    pair[a].append(time.perf_counter() - t)
                same = same and np.array_equal(*rolls)
            times[g] = {k: round(statistics.median(v), 3) for k, v in pair.items()}
    finally:
        c.ahead = ahead
    fast = {g: v[ahead] for g, v in times.items()}
    steps = {g: v[1] for g, v in times.items()}
    return {"8_bars_ahead_paired_s_median_per_genre": fast,
            "8_bars_step_by_step_s_median_per_genre": steps,
            "step_by_step_over_ahead_per_genre": {g: round(steps[g] / fast[g], 2) for g in steps},
            "slowest_over_fastest_genre_ahead_paired": round(max(fast.values()) / min(fast.values()), 2),
            "slowest_over_fastest_genre_step_by_step": round(max(steps.values()) / min(steps.values()), 2),
            "same_pieces_step_by_step": bool(same)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", action="append",
                    help="shipped name or checkpoint (repeatable) [default: keyflow and glow]")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=16, help="pieces in the batched-generation timing")
    ap.add_argument("--pieces", type=int, default=10, help="test pieces per genre to classify (0: none)")
    ap.add_argument("--name", default="bench_compose", help="results file name")
    ap.add_argument("--short", action="store_true", help="API: 8 bars per genre only (default and plain)")
    args = ap.parse_args()
    models = args.model or ["keyflow", "glow"]
    result: dict = {"repeats": args.repeats, "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        floor = wall([sys.executable, "-c", "import torch"], args.repeats)
        result["python_import_torch_s_median"] = round(floor, 3)
        for m in models:
            cmd = [sys.executable, "-m", "musicflow", "compose", "--bars", "8", "--seed", "0",
                   "-o", str(Path(tmp) / "x.mid"), "--quiet", "--model", m]
            cli = wall(cmd, args.repeats)
            c = Composer.load(m)
            guidance, candidates = c.sampling()
            result["models"][m] = {
                "sampling": {"guidance": guidance, "candidates": candidates},
                "cli_compose_8_bars_s_median": round(cli, 3),
                "cli_over_floor_ratio": round(cli / floor, 2),
                "cli_peak_rss_mb": peak_rss_mb(cmd),
                "api": api_times(c, args.repeats, args.batch, args.short),
            }
            if args.pieces:
                result["models"][m]["classify_test_pieces"] = classify_held_out(c, args.pieces)
    glow = result["models"].get("glow")
    if glow is not None:  # every model's default 8 bars against the Glow's plain sampling, this run
        plain = glow["api"]["8_bars_plain_s_median"]
        result["8_bars_default_over_glow_plain"] = {
            m: round(r["api"]["8_bars_s_median"] / plain, 3) for m, r in result["models"].items()}
    save(args.name, result)


if __name__ == "__main__":
    main()
