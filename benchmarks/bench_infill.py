"""Does infill listen to what follows? Test pieces with bars 3-4 of their first 8 composed anew.

For ``--per-genre`` test pieces of each genre (the first in dataset order with at least 8 bars),
bars 3-4 are replaced three ways: the real bars (the reference), a span drawn from the past alone
(``candidates=1``: what a continuation would write), and ``Composer.infill`` (``--candidates``
spans, one kept by the likelihood of the bars after). Reported per way: the model's exact
log-likelihood of the real bars 5-8 given everything before them, in nats per step (higher: the
span leads into what follows), and the share of the 8-bar results the independent classifier
assigns to the piece's genre. And how the seams join, against the real bars: the leap of the top
line across each seam (semitones from the last sounding step before it to the first after it) and
the onsets per beat in the beat either side of it. Seeds ``--seed`` + piece index. Results go to
``benchmarks/results/bench_infill.json``.

    python benchmarks/bench_infill.py [--per-genre 5] [--candidates 16] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import save  # noqa: E402

from musicflow.compose import Composer, Options  # noqa: E402
from musicflow.compose.infill import _after_log_likelihood, span_steps  # noqa: E402
from musicflow.data.dataset import Dataset  # noqa: E402
from musicflow.evaluate.fidelity import classify_rolls  # noqa: E402
from musicflow.evaluate.subjects import classifier_checkpoint  # noqa: E402
from musicflow.paths import default_dataset  # noqa: E402


def excerpts(ds: Dataset, genre: str, n: int) -> list[tuple[np.ndarray, tuple[int, int]]]:
    """The first 8 full bars (after any pick-up) of the first ``n`` test pieces of ``genre`` that
    have them, with each piece's time signature."""
    out = []
    for i in ds.indices("test", genre):
        bars = ds.piece_bars(i)
        if len(bars) < 9 or not ds.roll(i)[..., bars[0]:bars[8]].any():
            continue
        sig = tuple(ds.pieces[i].get("time_signature") or (4, 4))
        out.append((ds.roll(i)[..., bars[0]:bars[8]], sig))
        if len(out) == n:
            break
    return out


def top_line(roll: np.ndarray) -> np.ndarray:
    """The highest sounding key of each step, ``(T,)``, -1 where nothing sounds."""
    sounding = roll[1] > 0
    top = sounding.shape[0] - 1 - np.argmax(sounding[::-1], axis=0)
    return np.where(sounding.any(axis=0), top, -1)


def seam(roll: np.ndarray, at: int, beat: int = 4) -> tuple[float, float]:
    """The top line's leap across step ``at`` (nan when either side is silent) and the onsets per
    beat in the beat before and the beat after it."""
    top = top_line(roll)
    before, after = top[:at][top[:at] >= 0], top[at:][top[at:] >= 0]
    leap = float(abs(int(after[0]) - int(before[-1]))) if len(before) and len(after) else float("nan")
    return leap, float(roll[0][:, max(at - beat, 0):at + beat].sum()) / 2


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="keyflow")
    ap.add_argument("--per-genre", type=int, default=5)
    ap.add_argument("--candidates", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    c = Composer.load(args.model)
    ds = Dataset.load(default_dataset())
    _, clf_ck = classifier_checkpoint(None, c.genres)
    clf = clf_ck.model.eval()
    ways = {"real": [], "past_only": [], "infill": []}
    right = {w: [] for w in ways}
    seams = {w: [] for w in ways}  # (entry leap, exit leap, entry density, exit density) per piece
    t0 = time.perf_counter()
    k = 0
    for gi, g in enumerate(c.genres):
        for roll, sig in excerpts(ds, g, args.per_genre):
            midi = c.to_midi(roll, Options(), time_signature=sig)
            inp = c.read(midi)
            grid = c.bar_lines(inp)
            start, end = span_steps(grid, inp.roll.shape[-1], (3, 4))
            if end >= inp.roll.shape[-1]:  # silent closing bars do not survive the MIDI file
                continue
            seed = args.seed + k
            results = {"real": inp.roll,
                       "past_only": c.infill(inp, (3, 4), g, seed=seed, candidates=1).roll,
                       "infill": c.infill(inp, (3, 4), g, seed=seed, candidates=args.candidates).roll}
            for w, r in results.items():
                ll = float(_after_log_likelihood(c, r[None], {g: 1.0}, grid, end)[0])
                ways[w].append(ll / (r.shape[-1] - end))
                right[w].append(int(classify_rolls(clf, r[None, ..., :128])[0].argmax() == gi))
                (a, da), (b, db) = seam(r, start), seam(r, end)
                seams[w].append((a, b, da, db))
            k += 1
    result = {"model": args.model, "pieces": k, "span": "bars 3-4 of the first 8",
              "candidates": args.candidates,
              "seeds": f"{args.seed}..{args.seed + k - 1}",
              "after_nats_per_step_mean": {w: round(float(np.mean(v)), 4) for w, v in ways.items()},
              "infill_beats_past_only_share": round(float(np.mean(np.array(ways["infill"])
                                                                  > np.array(ways["past_only"]))), 3),
              "classifier_right_share": {w: round(float(np.mean(v)), 3) for w, v in right.items()},
              "seam": {w: dict(zip(("entry_leap_semitones", "exit_leap_semitones", "entry_onsets_per_beat",
                                    "exit_onsets_per_beat"),
                                   [round(float(x), 2) for x in np.nanmean(np.array(v), axis=0)]))
                       for w, v in seams.items()},
              "seam_note": "mean over pieces: the top line's leap across the seam into the span (entry) "
                           "and out of it (exit), and onsets per beat in the beat either side",
              "seconds": round(time.perf_counter() - t0, 1)}
    print(result, flush=True)
    save("bench_infill", result)


if __name__ == "__main__":
    main()
