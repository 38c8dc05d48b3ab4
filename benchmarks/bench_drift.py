"""Where a sequence flow's pieces drift from real music: each step given the real past against
composing on its own notes.

For a KeyFlow checkpoint (``--model``, default the shipped one) and each genre, three kinds of
steps are compared on the same statistics:

* ``real``: the steps of ``--windows`` fixed valid windows of 128 steps per genre (the training
  loop's validation windows);
* ``teacher_forced``: one frame sampled at every one of those steps, given the real steps before
  it (what the likelihood scores);
* ``composed``: ``--pieces`` pieces of ``--bars`` bars of 4/4's length from nothing, as
  ``compose`` samples them (seeds ``--seed`` .., each in its own drawn time signature).

Statistics per kind: the share of steps with each number of sounding keys (0..6, 7 meaning 7 or
more), the mean sounding keys and struck keys per step, and the share of steps with any onset by
the step's place in its bar as the model reads it (counted in sixteenths from the bar line, at most
15 in longer bars): on a beat (every 4th sixteenth), on the eighth between beats, on the other
sixteenths. A gap between ``real`` and ``teacher_forced`` is the model's conditional; a gap
between ``teacher_forced`` and ``composed`` is drift from composing on its own notes. The valid
split only: a diagnostic for choosing what to change, never a reported figure. Results go to
``benchmarks/results/bench_drift.json``.

    python benchmarks/bench_drift.py [--model keyflow] [--windows 48] [--pieces 48] [--bars 8]
        [--seed 100] [--genre NAME ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import save  # noqa: E402

from musicflow.compose import Composer  # noqa: E402
from musicflow.data.dataset import Dataset  # noqa: E402
from musicflow.paths import default_dataset  # noqa: E402
from musicflow.roll import key_states  # noqa: E402
from musicflow.training.pieces import CorpusPieces, valid_picks  # noqa: E402

COUNTS = 8  # sounding keys 0..6, then 7 or more


def statistics(states: np.ndarray, phase: np.ndarray) -> dict:
    """The statistics of steps given as key states ``(N, keys)`` (0 off, 1 held, 2 struck) and each
    step's phase in its bar ``(N,)``."""
    sounding = (states > 0).sum(1)
    struck = (states == 2).sum(1)
    onset = struck > 0
    places = {"beat": phase % 4 == 0, "eighth": phase % 4 == 2, "sixteenth": phase % 2 == 1}
    hist = np.bincount(np.minimum(sounding, COUNTS - 1), minlength=COUNTS) / max(len(sounding), 1)
    return {"steps": int(len(states)), "sounding_share": [round(float(v), 4) for v in hist],
            "sounding_mean": round(float(sounding.mean()), 4), "struck_mean": round(float(struck.mean()), 4),
            "onset_share": {k: round(float(onset[m].mean()), 4) if m.any() else None
                            for k, m in places.items()}}


@torch.no_grad()
def teacher_forced(model, rolls, genre, phase, generator) -> np.ndarray:
    """One frame sampled at every step of ``rolls`` ``(B, T, keys)`` given the real steps before it."""
    b, t, k = rolls.shape
    features = model.step_features(rolls, genre, phase).flatten(0, 1)
    u = torch.rand(b * t, k, generator=generator)
    return model.decode_keys(features, u, 1.0, None, model.decode_plan()).view(b, t, k).numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="keyflow", help="a KeyFlow: shipped name or checkpoint")
    ap.add_argument("--data", default=None)
    ap.add_argument("--windows", type=int, default=48, help="valid windows per genre")
    ap.add_argument("--pieces", type=int, default=48)
    ap.add_argument("--bars", type=int, default=8)
    ap.add_argument("--seed", type=int, default=100)
    ap.add_argument("--genre", action="append", help="only these genres (repeatable)")
    ap.add_argument("--name", default="bench_drift", help="results file name")
    args = ap.parse_args()
    ds = Dataset.load(args.data or default_dataset())
    composer = Composer.load(args.model, progress=False)
    model = composer.model
    if not hasattr(model, "decode_keys"):
        ap.error(f"--model {args.model}: not a sequence flow (KeyFlow)")
    valid = CorpusPieces.load(ds, "valid")
    picks = valid_picks(valid, args.windows, 128)
    gen = torch.Generator().manual_seed(args.seed)
    result: dict = {"model": args.model, "split": "valid", "windows": args.windows, "pieces": args.pieces,
                    "bars": args.bars, "seeds": f"{args.seed}..{args.seed + args.pieces - 1}", "genres": {}}
    for g in args.genre or composer.genres:
        gi = ds.genres.index(g)
        rolls, lengths, genre, phase = valid.batch([p for p in picks if valid.genre[p[0]] == gi], 128)
        forced = teacher_forced(model, rolls, genre, phase, gen)
        keep = (torch.arange(rolls.shape[1])[None] < lengths[:, None]).numpy()
        real_states, ph = rolls.numpy().astype(np.int64)[keep], phase.numpy()[keep]
        pieces = composer.compose_rolls({g: 1.0}, args.pieces, args.bars, args.seed)
        w, _ = composer.genre_weights({g: 1.0})
        steps = pieces.shape[-1]
        comp_phase = composer.piece_phases(w, args.pieces, steps, args.seed).numpy().reshape(-1)
        comp_states = np.concatenate([key_states(roll).astype(np.int64) for roll in pieces])
        result["genres"][g] = {"real": statistics(real_states, ph),
                               "teacher_forced": statistics(forced[keep], ph),
                               "composed": statistics(comp_states, comp_phase)}
        kinds = result["genres"][g].values()
        print(f"{g:>13} (real / teacher-forced / composed): sounding keys per step "
              + " / ".join(f"{k['sounding_mean']:.2f}" for k in kinds) + "; onsets on the off-beat eighth "
              + " / ".join(f"{k['onset_share']['eighth']:.2f}" for k in kinds), flush=True)
    save(args.name, result)


if __name__ == "__main__":
    main()
