"""Could the pieces pass for real music? Two-sample tests per genre, fidelity and time, per model.

For each model (``--model``, repeatable: a shipped name or a checkpoint path) and genre:
``--pieces`` pieces of ``--bars`` bars composed from nothing with the model's default sampler
(``Composer.compose_rolls``, seeds ``--seed`` .. ``--seed + pieces - 1``; ``--guidance`` overrides),
against up to ``2 * pieces`` real excerpts of the same length from the test split (bar-aligned,
wholly inside their pieces, numpy seed 0), each excerpt labelled with its piece (``--split valid``
compares with the valid split instead: the one to choose settings such as ``--temperature`` on):

* ``metrics``: a logistic regression on interpretable window features tells 4-bar windows of the
  generated pieces from windows of the real excerpts, group 5-fold cross-validated (a piece's
  windows in one fold); balanced accuracy with a 95% cluster-bootstrap interval, and the features
  that give the pieces away (standardised differences, generated minus real);
* ``cnn``: the same with a small convolutional net on the rolls;
* ``real_halves``: both tests between two halves of the real pieces, the floor;
* ``fidelity``: share of the pieces the independent genre classifier names as the genre asked for;
* ``overlap``: the musical metrics' mean overlap (``musicflow evaluate``'s) of the pieces with the
  real excerpts, beside ``overlap_reference``, that of as many real train excerpts;
* ``seconds``: the time to generate the genre's pieces in one batch.

``--baselines`` adds the Bernoulli baseline (fitted on train) and the VAE checkpoint, sampled as
``musicflow evaluate`` samples them. Results go to ``benchmarks/results/bench_quality.json``.

    python benchmarks/bench_quality.py --model keyflow --model glow [--pieces 30] [--bars 8]
        [--seed 100] [--guidance 1] [--repeat SHARE] [--baselines]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import save  # noqa: E402

from musicflow.checkpoint import load_checkpoint  # noqa: E402
from musicflow.data.dataset import Dataset  # noqa: E402
from musicflow.evaluate.fidelity import classify_rolls, mean_overlap, real_windows, statistics  # noqa: E402
from musicflow.evaluate.report import generate_pieces  # noqa: E402
from musicflow.evaluate.subjects import load_subjects  # noqa: E402
from musicflow.evaluate.twosample import realism  # noqa: E402
from musicflow.paths import checkpoints_dir, default_dataset  # noqa: E402


def _brief(test: dict | None) -> dict | None:
    if test is None:
        return None
    out = {}
    for f, r in test.items():
        out[f] = {"accuracy": round(r["accuracy"], 3), "interval": [round(v, 3) for v in r["interval"]],
                  "pieces": r["pieces"], "windows": r["windows"]}
        if r["giveaways"]:
            out[f]["giveaways"] = {k: round(v, 2) for k, v in r["giveaways"]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", action="append",
                    help="shipped name or checkpoint (repeatable) [default: keyflow]")
    ap.add_argument("--data", default=None)
    ap.add_argument("--pieces", type=int, default=30)
    ap.add_argument("--bars", type=int, default=8)
    ap.add_argument("--seed", type=int, default=100)
    ap.add_argument("--guidance", type=float, default=None)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--repeat", type=float, default=None,
                    help="the sequence flow's share of restated bars [default: the genre's own]")
    ap.add_argument("--split", default="test",
                    help="real side: test (reporting) or valid (choosing settings)")
    ap.add_argument("--baselines", action="store_true")
    ap.add_argument("--genre", action="append", help="only these genres (repeatable)")
    ap.add_argument("--name", default="bench_quality", help="results file name")
    args = ap.parse_args()
    ds = Dataset.load(args.data or default_dataset())
    clf = load_checkpoint(checkpoints_dir() / "genre-classifier.pt").model.eval()
    subjects = []
    for i, m in enumerate(args.model or ["keyflow"]):
        found = load_subjects(m, None, args.baselines and i == 0, ds, args.temperature)
        found[0].name, found[0].guidance, found[0].repeat = str(m), args.guidance, args.repeat
        subjects += found
    genres = args.genre or subjects[0].composer.genres
    steps = args.bars * 16
    real = {g: real_windows(ds, args.split, g, 2 * args.pieces, steps, seed=0, with_pieces=True)
            for g in genres}
    low = ds.spec.low
    real_stats = {g: statistics(real[g][0], low) for g in genres}
    reference = {g: round(mean_overlap(statistics(real_windows(ds, "train", g, args.pieces, steps, seed=0),
                                                  low), real_stats[g]), 3) for g in genres}
    result: dict = {"pieces": args.pieces, "bars": args.bars, "seed": args.seed, "split": args.split,
                    "temperature": args.temperature, "repeat": args.repeat, "models": {}, "floor": {},
                    "overlap_reference": reference}
    for s in subjects:
        per = {}
        for g in genres:
            t = time.perf_counter()
            rolls = generate_pieces(s, {g: 1.0}, args.pieces, args.bars, args.seed)
            seconds = time.perf_counter() - t
            gi = s.composer.genres.index(g)
            fidelity = float((classify_rolls(clf, rolls).argmax(1) == gi).mean())
            tests = realism(rolls, real[g][0], real[g][1], ds.spec.low, seed=0)
            per[g] = {"seconds": round(seconds, 2), "fidelity": round(fidelity, 3),
                      "overlap": round(mean_overlap(statistics(rolls, low), real_stats[g]), 3),
                      **_brief(tests["generated"])}
            result["floor"].setdefault(g, _brief(tests["real_halves"]))
            print(f"{s.name:>14} {g:>13}: metrics {per[g]['metrics']['accuracy']:.2f} "
                  f"cnn {per[g]['cnn']['accuracy']:.2f} fidelity {fidelity:.2f} "
                  f"overlap {per[g]['overlap']:.3f} of {reference[g]:.3f} ({seconds:.1f} s)",
                  flush=True)
        acc = {f: [v[f]["accuracy"] for v in per.values()] for f in ("metrics", "cnn")}
        ratio = {g: round(v["overlap"] / reference[g], 3) for g, v in per.items()}
        result["models"][s.name] = {"source": s.source, "guidance": s.guidance, "per_genre": per,
                                    "worst_genre": {f: max(a) for f, a in acc.items()},
                                    "mean": {f: round(float(np.mean(a)), 3) for f, a in acc.items()},
                                    "min_fidelity": min(v["fidelity"] for v in per.values()),
                                    "overlap_ratio": ratio}
    save(args.name, result)


if __name__ == "__main__":
    main()
