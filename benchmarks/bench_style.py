"""Learning a style the model never saw from 3, 10 and 30 of a user's files.

Styles: three corpora of the polyphonic benchmark that are not in the default genre map
(Nottingham folk tunes with chords, MuseData classical scores, Piano-midi.de romantic piano), read
from ``../shared/data/boulanger/`` and written as MIDI files as a user would have them (one file a
piece, eighth-note steps at 120 bpm, 4/4, cut to the first ``--max-bars`` bars). A style is learnt
from the first N pieces of the corpus's train split (file order, no choosing) and judged on the first
``--unseen`` pieces of its valid split, never seen in learning. Per style and N:

- the time to learn (``Composer.learn_style``, default settings, seed 0: the copy check included;
  with ``--adapter``, an adapter of that rank tried after the genre's columns);
- the unseen pieces' bits/dim (every step of every piece alike) under the learned style and under
  every built-in genre, and how often ``classify`` names the learned style for an unseen piece;
- the musical-metric overlap (``evaluate.fidelity.STATS``; mean over metrics of the overlap of
  their histograms) between ``--pieces`` pieces composed in the style (8 bars, seeds 100..,
  ``Composer.compose_rolls``) and 8-bar windows of the unseen pieces, beside the same overlap for
  pieces the model composes in the nearest built-in genre (the one the learner started from), and
  for reference the same overlap for the learning files' own 8-bar windows (what a model that
  reproduced the user's files exactly would reach);
- copying: the share of the composed pieces' 4-bar windows found in the style's files (any offset
  and transposition) and the longest copied run of beats.

And for the 10-piece style, 50/50 mixes with the nearest built-in genre and with celtic, read as the
genre-mixing benchmark reads mixes: the flow's own ``classify`` over all its genres (each parent's
mean probability, share of pieces read as a parent) and the independent genre classifier's
probability of the built-in parent (it does not know the style), beside the pure pieces of each.

    python benchmarks/bench_style.py [--sizes 3 10 30] [--unseen 20] [--pieces 60] [--mix-pieces 24]
                                     [--adapter RANK] [--name NAME]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import save  # noqa: E402

from musicflow.compose import Composer  # noqa: E402
from musicflow.compose.style import copying  # noqa: E402
from musicflow.data.build import SourceFile, parse_files  # noqa: E402
from musicflow.data.dataset import Dataset  # noqa: E402
from musicflow.evaluate.fidelity import classify_rolls, mean_overlap, statistics  # noqa: E402
from musicflow.evaluate.subjects import classifier_checkpoint  # noqa: E402
from musicflow.io import Note, Piece  # noqa: E402
from musicflow.io.boulanger import piece_notes, read_boulanger  # noqa: E402
from musicflow.io.midi import piece_to_midi, save_midi  # noqa: E402
from musicflow.roll import key_states  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "boulanger"
STYLES = {"nottingham": "nottingham.json", "musedata": "musedata.json", "piano-midi": "piano-midi.json"}
BARS = 8


def write_midi(pieces: list, folder: Path, prefix: str, max_bars: int) -> list[Path]:
    """Benchmark pieces (eighth-note frames of MIDI pitches) as MIDI files, one a piece."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, piece in enumerate(pieces):
        notes = [Note(int(p), s / 2, min(e, 8 * max_bars) / 2, 80)
                 for p, s, e, _ in piece_notes(piece) if s < 8 * max_bars]
        out.append(save_midi(piece_to_midi(Piece(notes, title=f"{prefix}-{i}"), tempo=120),
                             folder / f"{prefix}-{i:04d}.mid"))
    return out


def file_rolls(c: Composer, files: list[Path]) -> list[np.ndarray]:
    """Each file's whole roll on the model's grid, key-normalised as the model's pieces are."""
    sources = [SourceFile(f, "x", f.name) for f in files]
    records, _ = parse_files(sources, c.spec.steps_per_quarter, quiet=True)
    ds = Dataset.from_records([{**r, "split": "test"} for r in records], c.spec)
    return [ds.roll(i) for i in range(len(ds))]


def real_windows(c: Composer, rolls: list[np.ndarray], per_piece: int = 3) -> np.ndarray:
    """Up to ``per_piece`` 8-bar windows (4/4) of each file's roll (:func:`file_rolls`), one after
    another from its start."""
    steps = BARS * c.spec.bar_steps()
    out = []
    for roll in rolls:
        out += [roll[..., s:s + steps] for s in range(0, roll.shape[-1] - steps + 1, steps)][:per_piece]
    return np.stack(out).astype(np.float32)


def overlap(a: np.ndarray, b: np.ndarray, low: int) -> float:
    return mean_overlap(statistics(a, low), statistics(b, low))


def unseen_scores(c: Composer, files: list[Path], style: str) -> dict:
    """Bits/dim of the unseen files under every genre (every step alike) and the share that
    ``classify`` gives to ``style``."""
    nats = dict.fromkeys(c.genres, 0.0)
    steps, named = 0, 0
    for f in files:
        ll, inp = c.log_likelihoods(str(f))
        for g, v in ll.items():
            nats[g] -= float(v.sum())
        steps += inp.roll.shape[-1]
        total = {g: float(v.sum()) for g, v in ll.items()}
        named += max(total, key=total.get) == style
    bits = {g: round(v / (steps * 2 * c.spec.pitches * np.log(2)), 5) for g, v in nats.items()}
    return {"bits_per_dim": bits, "classified_as_style": round(named / len(files), 3)}


def own_probs(c: Composer, results) -> np.ndarray:
    return np.array([[p for p in c.classify(r.midi).values()] for r in results])


def mix_result(c: Composer, clf, style: str, genre: str, pieces: int, seed: int) -> dict:
    """A 50/50 mix of ``style`` and ``genre`` against pure pieces of each."""
    gi, si = c.genres.index(genre), c.genres.index(style)
    out = {}
    cases = (("style", {style: 1.0}), ("mix", {style: 0.5, genre: 0.5}), ("genre", {genre: 1.0}))
    for label, weights in cases:
        results = [c.compose_result(weights, seed=seed + i, bars=BARS) for i in range(pieces)]
        own = own_probs(c, results)
        ind = np.concatenate([classify_rolls(clf, r.roll[None].astype(np.float32)) for r in results])
        read = own.argmax(1)
        out[label] = {"own_p_style": round(float(own[:, si].mean()), 3),
                      "own_p_genre": round(float(own[:, gi].mean()), 3),
                      "own_read_as_style": round(float((read == si).mean()), 3),
                      "own_read_as_genre": round(float((read == gi).mean()), 3),
                      "own_read_as_a_parent": round(float(np.isin(read, [si, gi]).mean()), 3),
                      "independent_p_genre": round(float(ind[:, gi].mean()), 3)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="keyflow")
    ap.add_argument("--styles", nargs="+", default=list(STYLES), choices=list(STYLES))
    ap.add_argument("--sizes", nargs="+", type=int, default=[3, 10, 30])
    ap.add_argument("--unseen", type=int, default=20, help="valid pieces per style to judge on")
    ap.add_argument("--pieces", type=int, default=60, help="pieces composed per style and size")
    ap.add_argument("--mix-pieces", type=int, default=24, help="pieces per mix and parent (0: no mixes)")
    ap.add_argument("--max-bars", type=int, default=64, help="bars kept of each corpus piece")
    ap.add_argument("--seed", type=int, default=100, help="first seed of the composed pieces")
    ap.add_argument("--adapter", type=int, default=0, help="also fit an adapter of this rank (0: none)")
    ap.add_argument("--name", default="bench_style")
    args = ap.parse_args()
    base = Composer.load(args.model)
    _, clf_ck = classifier_checkpoint(None, base.genres)
    clf = clf_ck.model.eval()
    low = base.spec.low
    result = {"model": args.model, "adapter": args.adapter, "sizes": args.sizes, "unseen_pieces": args.unseen,
              "pieces": args.pieces,
              "mix_pieces": args.mix_pieces,
              "bars": BARS, "seeds": f"{args.seed}..{args.seed + args.pieces - 1}", "max_bars": args.max_bars,
              "data": {s: f"../shared/data/boulanger/{STYLES[s]} (train: first N pieces; valid: unseen)"
                       for s in args.styles}, "styles": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for style in args.styles:
            data = read_boulanger(DATA / STYLES[style])
            folder = Path(tmp) / style
            train = write_midi(data["train"][:max(args.sizes)], folder / "train", style, args.max_bars)
            unseen = write_midi(data["valid"][:args.unseen], folder / "valid", style, args.max_bars)
            real = real_windows(base, file_rolls(base, unseen))
            row = {"unseen_windows": len(real), "by_size": {}}
            for n in args.sizes:
                files = train[:n]
                t = time.perf_counter()
                c = base.learn_style(files, style, adapter=args.adapter)
                seconds = time.perf_counter() - t
                info = c.styles[style]
                scores = unseen_scores(c, unseen, style)
                builtin = {g: v for g, v in scores["bits_per_dim"].items() if g != style}
                rolls = c.compose_rolls(style, args.pieces, BARS, args.seed)
                near = info["start"]
                near_rolls = base.compose_rolls(near, args.pieces, BARS, args.seed)
                own = file_rolls(c, files)
                cp = copying([key_states(r) for r in rolls], [key_states(r) for r in own],
                             c.spec.bar_steps())
                cell = {
                    "learn_seconds": round(seconds, 1), "steps": info["steps"], "held_out": info["held_out"],
                    "adapter_kept": info.get("adapter", 0),
                    "held_out_bits_per_dim": info["held_out_bits_per_dim"],
                    "held_out_bits_per_dim_embedding_alone": info.get("embedding_bits_per_dim"),
                    "nearest_builtin": near,
                    "unseen_bits_per_dim_style": scores["bits_per_dim"][style],
                    "unseen_bits_per_dim_best_builtin": min(builtin.values()),
                    "unseen_bits_per_dim": scores["bits_per_dim"],
                    "style_beats_every_builtin": bool(scores["bits_per_dim"][style] < min(builtin.values())),
                    "classified_as_style": scores["classified_as_style"],
                    "overlap_style_pieces": round(overlap(rolls, real, low), 3),
                    "overlap_nearest_builtin_pieces": round(overlap(near_rolls, real, low), 3),
                    "overlap_learning_files": round(overlap(real_windows(c, own), real, low), 3),
                    "copied_4bar_share": cp["copied_4bar_share"],
                    "longest_copied_beats": cp["longest_copied_beats"],
                    "learner_copy_check": info["copying"]}
                row["by_size"][str(n)] = cell
                print(f"{style} from {n}: {seconds:.0f} s, unseen {cell['unseen_bits_per_dim_style']:.5f} "
                      f"against {cell['unseen_bits_per_dim_best_builtin']:.5f} bits/dim, classify "
                      f"{cell['classified_as_style']}, overlap {cell['overlap_style_pieces']} vs {near} "
                      f"{cell['overlap_nearest_builtin_pieces']}, copied {cell['copied_4bar_share']}",
                      flush=True)
                if n == 10 and args.mix_pieces:
                    row["mix_10"] = {g: mix_result(c, clf, style, g, args.mix_pieces, args.seed)
                                     for g in dict.fromkeys([near, "celtic"])}
            result["styles"][style] = row
    cells = [cell for row in result["styles"].values() for n, cell in row["by_size"].items() if n == "10"]
    result["at_10"] = {} if not cells else {
        "every_style_beats_every_builtin": all(c["style_beats_every_builtin"] for c in cells),
        "slowest_learn_seconds": max(c["learn_seconds"] for c in cells),
        "overlap_above_nearest_builtin": int(sum(
            c["overlap_style_pieces"] > c["overlap_nearest_builtin_pieces"] for c in cells)),
        "no_copied_window": bool(all(c["copied_4bar_share"] == 0 for c in cells)), "styles": len(cells)}
    save(args.name, result)


if __name__ == "__main__":
    main()
