"""Does a genre mix blend its parents? Every pair of genres at weights 0.25 / 0.5 / 0.75, by each
mixing method, read by the independent genre classifier.

For each method (``--mix``, repeatable; default: every method the model has), pair (a, b) and
weight w of a: ``--pieces`` pieces of ``--bars`` bars composed with ``{a: w, b: 1 - w}``
(``Composer.compose_rolls``, seeds ``--seed`` ..), and the same number of pure pieces of each genre
(weights 0 and 1). Per pair and weight: each parent's mean probability under the classifier with a
95% interval (normal approximation over pieces), the share of pieces the classifier assigns to
neither parent (a third genre), and, over the sweep 0 / 0.25 / 0.5 / 0.75 / 1, the Spearman rank
correlation between w and a's share of the parents' probability. The issue's bar: at 50/50 every
pair gives each parent at least 0.30 and both together at least 0.80; Spearman at least 0.9 on
average. Results go to ``benchmarks/results/bench_mix.json``.

    python benchmarks/bench_mix.py [--model keyflow] [--mix product --mix embed] [--pieces 64]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import save  # noqa: E402

from musicflow.compose import Composer  # noqa: E402
from musicflow.compose.options import MIX_METHODS  # noqa: E402
from musicflow.errors import MusicflowError  # noqa: E402
from musicflow.evaluate.fidelity import classify_rolls  # noqa: E402
from musicflow.evaluate.subjects import classifier_checkpoint  # noqa: E402

WEIGHTS = (0.25, 0.5, 0.75)


def spearman(x: list[float], y: list[float]) -> float:
    """Rank correlation (ties take their mean rank); 0 when either side is constant."""
    def ranks(v):
        v = np.asarray(v, float)
        order = v.argsort()
        r = np.empty(len(v))
        r[order] = np.arange(len(v))
        for u in np.unique(v):
            r[v == u] = r[v == u].mean()
        return r
    rx, ry = ranks(x), ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


def mean_ci(v: np.ndarray) -> list[float]:
    """Mean and the half-width of its 95% interval."""
    return [round(float(v.mean()), 3), round(float(1.96 * v.std(ddof=1) / np.sqrt(len(v))), 3)]


def method_result(c: Composer, clf, mix: str, pieces: int, bars: int, seed: int) -> dict:
    genres = c.genres
    t = time.perf_counter()
    pure = {g: classify_rolls(clf, c.compose_rolls(g, pieces, bars, seed, mix=mix)) for g in genres}
    pairs, at_half, rho = {}, [], []
    for a, b in itertools.combinations(genres, 2):
        ia, ib = genres.index(a), genres.index(b)
        probs = {0.0: pure[b], 1.0: pure[a]}
        for w in WEIGHTS:
            rolls = c.compose_rolls({a: w, b: 1 - w}, pieces, bars, seed, mix=mix)
            probs[w] = classify_rolls(clf, rolls)
        cells = {}
        for w in WEIGHTS:
            p = probs[w]
            third = ~np.isin(p.argmax(1), [ia, ib])
            cells[str(w)] = {"p_a": mean_ci(p[:, ia]), "p_b": mean_ci(p[:, ib]),
                             "third_genre_share": round(float(third.mean()), 3)}
        share = [float(probs[w][:, ia].mean() / max(probs[w][:, ia].mean() + probs[w][:, ib].mean(), 1e-9))
                 for w in (0.0, *WEIGHTS, 1.0)]
        r = spearman([0.0, *WEIGHTS, 1.0], share)
        pairs[f"{a}+{b}"] = {"by_weight_of_a": cells, "share_of_a_over_sweep": [round(s, 3) for s in share],
                             "spearman": round(r, 3)}
        half = cells["0.5"]
        at_half.append((half["p_a"][0], half["p_b"][0]))
        rho.append(r)
    both = [x + y for x, y in at_half]
    return {
        "pure_accuracy": {g: round(float((pure[g].argmax(1) == i).mean()), 3) for i, g in enumerate(genres)},
        "pairs": pairs,
        "at_half": {"pairs_each_parent_at_least_0.30": sum(min(x, y) >= 0.30 for x, y in at_half),
                    "pairs_both_at_least_0.80": sum(s >= 0.80 for s in both),
                    "pairs_meeting_both": sum(min(x, y) >= 0.30 and x + y >= 0.80 for x, y in at_half),
                    "pairs": len(at_half), "mean_mass_on_parents": round(float(np.mean(both)), 3),
                    "weakest_parent_min": round(float(min(min(x, y) for x, y in at_half)), 3)},
        "mean_spearman": round(float(np.mean(rho)), 3),
        "mean_third_genre_share_at_half": round(float(np.mean(
            [p["by_weight_of_a"]["0.5"]["third_genre_share"] for p in pairs.values()])), 3),
        "seconds": round(time.perf_counter() - t, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="keyflow", help="shipped name or checkpoint path")
    ap.add_argument("--mix", action="append", choices=MIX_METHODS,
                    help="mixing method (repeatable) [default: every method the model has]")
    ap.add_argument("--pieces", type=int, default=64, help="pieces per pair and weight")
    ap.add_argument("--bars", type=int, default=8)
    ap.add_argument("--seed", type=int, default=300)
    ap.add_argument("--name", default="bench_mix", help="results file name")
    args = ap.parse_args()
    c = Composer.load(args.model)
    methods = args.mix or [m for m in MIX_METHODS if _has(c, m)]
    clf_path, clf_ck = classifier_checkpoint(None, c.genres)
    result = {"model": args.model, "classifier": clf_path.name, "pieces": args.pieces, "bars": args.bars,
              "seeds": f"{args.seed}..{args.seed + args.pieces - 1} in every cell",
              "default_mix": c.mixing(), "methods": {}}
    for m in methods:
        result["methods"][m] = method_result(c, clf_ck.model.eval(), m, args.pieces, args.bars, args.seed)
        r = result["methods"][m]
        print(f"{m}: at 50/50 {r['at_half']['pairs_meeting_both']} of {r['at_half']['pairs']} pairs blend "
              f"(mass {r['at_half']['mean_mass_on_parents']}), Spearman {r['mean_spearman']}", flush=True)
    save(args.name, result)


def _has(c: Composer, mix: str) -> bool:
    try:
        c.mixing(mix)
        return True
    except MusicflowError:
        return False


if __name__ == "__main__":
    main()
