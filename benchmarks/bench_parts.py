"""How well merged voices come apart: Bach chorales from music21's corpus, their four parts merged
into one track and separated again by voice leading (``musicflow.io.parts.separate``).

The first ``--chorales`` four-part chorales by file name (no choosing); per chorale and overall,
the share of notes given back to their own part (soprano, alto, tenor, bass).

    python benchmarks/bench_parts.py [--chorales 30]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import save  # noqa: E402

from musicflow.io.parts import separate  # noqa: E402


def chorales(n: int):
    from music21 import corpus

    for path in sorted(p for p in corpus.getComposer("bach") if p.suffix in (".mxl", ".xml", ".krn")):
        score = corpus.parse(path).stripTies()
        if len(score.parts) != 4:
            continue
        notes, truth = [], []
        for v, part in enumerate(score.parts):
            for x in part.flatten().notes:
                if not x.isChord:
                    notes.append((x.pitch.midi, float(x.offset), float(x.offset + x.quarterLength)))
                    truth.append(v)
        yield path.name, notes, truth
        n -= 1
        if n == 0:
            return


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chorales", type=int, default=30)
    args = ap.parse_args()
    t = time.perf_counter()
    per, right, total = {}, 0, 0
    for name, notes, truth in chorales(args.chorales):
        got = separate(notes, 4)
        k = sum(a == b for a, b in zip(got, truth))
        per[name] = round(k / len(notes), 4)
        right, total = right + k, total + len(notes)
    save("bench_parts", {"chorales": len(per), "notes": total, "notes_in_their_part": round(right / total, 4),
                         "worst": min(per.values()), "per_chorale": per,
                         "seconds": round(time.perf_counter() - t, 1)})


if __name__ == "__main__":
    main()
