"""Composed pieces against real music, checkpoint against checkpoint, on one seed set.

What the model card's "tuning seeds" comparisons measure, as one command: for each checkpoint and
genre, ``--pieces`` pieces of ``--bars`` bars composed from nothing (``Composer.compose_rolls``,
seeds ``--seed`` .. ``--seed + pieces - 1``, the given guidance), and up to 300 real test windows of
the same length lying wholly inside their pieces (numpy seed 0). Reported per genre:

* ``fidelity``: share the independent genre classifier names as the genre asked for;
* the mean of each musical statistic (``musicflow.evaluate.fidelity.STATS``) with a 95% bootstrap
  interval over the pieces (1,000 resamples, seed 0), and the real windows' mean;
* ``extreme_once``: share of the pieces' highest and lowest notes heard only once (a stray note
  far from the tune makes the range wide without making the tune wide);
* ``leaps_over_octave``: share of consecutive onsets (in time order) more than 12 semitones apart
  (a tune's leaps in the monophonic genres; in the others it mixes the voices);
* ``bar_repeats``: share of bars whose onsets overlap an earlier bar's by at least 0.8 (Jaccard).

Per checkpoint, the mean over genres of the relative error of the mean notes per bar and pitch
range (``|generated - real| / real``), with a bootstrap interval: the figures the model card's
rules compare. With twenty pieces a genre their 95% intervals span about ten points (the shipped
checkpoint: notes per bar 11.7-21.6%, pitch range 9.4-20.3%), so closer checkpoints need more.

    python benchmarks/bench_pieces.py [--checkpoint A.pt --checkpoint B.pt] [--seed 1000]
        [--pieces 20] [--bars 8] [--guidance 10] [--device auto]

Guided pieces cost about 10 s each on this CPU (20 pieces x 7 genres: 22 minutes per
checkpoint), under a minute per checkpoint on a GPU.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import save  # noqa: E402

from musicflow import Composer  # noqa: E402
from musicflow.checkpoint import load_checkpoint  # noqa: E402
from musicflow.data.dataset import Dataset  # noqa: E402
from musicflow.evaluate.fidelity import STATS, classify_rolls, real_windows, statistics  # noqa: E402
from musicflow.paths import checkpoints_dir, default_dataset  # noqa: E402
from musicflow.roll import canonical  # noqa: E402

ERRORS = ("notes_per_bar", "pitch_range")


def shape_stats(roll: np.ndarray, bar: int) -> tuple[float, float, list[bool]]:
    """For one roll ``(2, P, T)``: the share of its highest and lowest onset pitches heard once,
    the share of leaps over an octave between consecutive onsets, and for each bar after the first
    that sounds, whether it repeats an earlier bar (onset overlap >= 0.8).

    >>> r = np.zeros((2, 20, 32)); r[:, 5, [0, 16]] = 1; r[:, 19, [8, 24]] = 1; r[:, 2, 30] = 1
    >>> shape_stats(r, 16)  # the low note is heard once; bar 2 adds it to bar 1's two notes
    (0.5, 1.0, [False])
    """
    on = canonical(roll)[0] > 0
    steps, pitches = np.nonzero(on.T)  # onsets in time order
    if len(pitches) < 2:
        return float("nan"), float("nan"), []
    once = np.mean([(pitches == pitches.max()).sum() == 1, (pitches == pitches.min()).sum() == 1])
    leaps = float((np.abs(np.diff(pitches)) > 12).mean())
    bars = [on[:, i:i + bar] for i in range(0, on.shape[1] - bar + 1, bar)]
    repeats = [bool(max((b & a).sum() / max((b | a).sum(), 1) for a in bars[:i]) >= 0.8)
               for i, b in enumerate(bars) if i and b.any()]
    return float(once), leaps, repeats


def shape(rolls: np.ndarray, bar: int) -> dict[str, float]:
    rows = [shape_stats(r, bar) for r in rolls]
    return {"extreme_once": round(float(np.nanmean([r[0] for r in rows])), 4),
            "leaps_over_octave": round(float(np.nanmean([r[1] for r in rows])), 4),
            "bar_repeats": round(float(np.mean([x for r in rows for x in r[2]] or [np.nan])), 4)}


def interval(draws: np.ndarray) -> list[float]:
    return [round(float(np.percentile(draws, 2.5)), 4), round(float(np.percentile(draws, 97.5)), 4)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", action="append", help="repeatable [default: the shipped Glow]")
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--pieces", type=int, default=20)
    ap.add_argument("--bars", type=int, default=8)
    ap.add_argument("--guidance", type=float, default=None,
                    help="[default: the checkpoint's own, 10 for the Glow]")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--name", default="bench_pieces", help="results file name")
    args = ap.parse_args()
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    ds = Dataset.load(default_dataset())
    clf = load_checkpoint(checkpoints_dir() / "genre-classifier.pt").model
    checkpoints = args.checkpoint or [str(checkpoints_dir() / "glow-music21.pt")]
    real: dict[str, dict] = {}
    out: dict = {}
    for path in checkpoints:
        c = Composer.load(path, device=device)
        bar, low = c.spec.bar_steps(), c.spec.low
        steps = args.bars * bar
        t0 = time.perf_counter()
        per: dict = {}
        errors: dict[str, list[np.ndarray]] = {k: [] for k in ERRORS}
        # bootstrap resamples of the pieces, the same for every genre and statistic
        resamples = np.random.default_rng(0).integers(0, args.pieces, (1000, args.pieces))
        for g in c.genres:
            if g not in real:
                windows = real_windows(ds, "test", g, 300, steps)
                real[g] = {"stats": statistics(windows, low), **shape(windows, bar)}
            rolls = c.compose_rolls(g, n=args.pieces, bars=args.bars, seed=args.seed, guidance=args.guidance)
            gen = statistics(rolls, low)
            named = classify_rolls(clf, rolls).argmax(1) == c.genres.index(g)
            row = {"fidelity": round(float(named.mean()), 4)}
            for k in STATS:
                draws = gen[k][resamples].mean(1)  # bootstrap means
                truth = float(real[g]["stats"][k].mean())
                row[k] = {"mean": round(float(gen[k].mean()), 4), "ci95": interval(draws),
                          "real": round(truth, 4)}
                if k in ERRORS:
                    errors[k].append(np.abs(draws - truth) / truth)
            row["shape"] = shape(rolls, bar)
            row["shape_real"] = {k: v for k, v in real[g].items() if k != "stats"}
            per[g] = row
            npb, rng = row["notes_per_bar"], row["pitch_range"]
            print(f"{Path(path).name} {g}: fidelity {row['fidelity']:.2f}, notes per bar {npb['mean']:.2f} "
                  f"(real {npb['real']:.2f}), pitch range {rng['mean']:.2f} (real {rng['real']:.2f})",
                  flush=True)
        mean_err = {}
        for k, per_genre in errors.items():
            draws = np.mean(per_genre, axis=0)  # the mean error over genres, resample by resample
            point = np.mean([abs(per[g][k]["mean"] - per[g][k]["real"]) / per[g][k]["real"] for g in per])
            mean_err[k] = {"mean": round(float(point), 4), "ci95": interval(draws)}
        out[path] = {"per_genre": per, "mean_relative_error": mean_err,
                     "lowest_fidelity": min(r["fidelity"] for r in per.values()),
                     "seconds": round(time.perf_counter() - t0, 1)}
    save(args.name, {"settings": {"seed": args.seed, "pieces": args.pieces, "bars": args.bars,
                                  "guidance": args.guidance, "device": device,
                                  "real": "up to 300 test windows per genre wholly inside their piece, "
                                          "numpy seed 0",
                                  "bootstrap": "1,000 resamples of the pieces, seed 0"},
                     "checkpoints": out})


if __name__ == "__main__":
    main()
