"""Register and key of one-beat samples given real contexts (teacher-forced), against the real
beats that followed the same contexts.

For each genre, up to ``--windows`` test beats whose 4-bar context sounds in its last bar are drawn
(numpy seed 0, the same beats for every checkpoint). Each checkpoint draws one beat per context
(torch seed 0, temperature 1, exact decoding). Reported per onset:

* ``far``: more than 7 semitones from every pitch sounding in the context's last bar (a leap out
  of the line's register; rare in real music);
* ``new_pitch_class``: a pitch class that does not sound anywhere in the 4-bar context (a wrong
  note, or a modulation).

Beats are drawn without an outline (the mode likelihoods use); a model trained with outlines also
draws each beat with the outline of its real 8-bar block, as composing and ``transfer`` condition
it (the row ``PATH + outline``).

    python benchmarks/bench_register.py [--checkpoint A.pt --checkpoint B.pt] [--windows 400]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import save  # noqa: E402

from musicflow.checkpoint import load_checkpoint  # noqa: E402
from musicflow.data.dataset import Dataset  # noqa: E402
from musicflow.data.windows import WindowSet  # noqa: E402
from musicflow.flows.base import Condition  # noqa: E402
from musicflow.paths import checkpoints_dir, default_dataset  # noqa: E402
from musicflow.sampling import clean_continuation  # noqa: E402


def onset_stats(beats: np.ndarray, ctx: np.ndarray, bar: int) -> dict[str, float]:
    """Shares of the onsets of ``beats`` ``(B, 2, P, 4)`` that are far from the last bar (``bar``
    steps) of their contexts ``(B, 2, P, C)`` or of a pitch class absent from them, and onsets per
    beat."""
    far = new = n = 0
    for b in range(len(beats)):
        recent = np.flatnonzero(ctx[b, 1, :, -bar:].any(-1))
        classes = set((np.flatnonzero(ctx[b, 1].any(-1)) % 12).tolist())
        for p in np.nonzero(beats[b, 0] > 0)[0]:
            n += 1
            far += bool(np.abs(recent - p).min() > 7)
            new += (p % 12) not in classes
    return {"far": round(far / max(n, 1), 4), "new_pitch_class": round(new / max(n, 1), 4),
            "onsets_per_beat": round(n / max(len(beats), 1), 3)}


def sounding_last_bar(ws: WindowSet, bar: int) -> np.ndarray:
    """Indices of the windows whose context sounds in its last bar (``bar`` steps, within the piece),
    read from the stored rolls: only the chosen windows are then cut out (a genre has up to 45,000
    beats)."""
    sounding = ws.rolls[1].any(0).numpy()
    return np.flatnonzero([sounding[max(s - bar, p):s].any() for s, p in zip(ws.starts, ws.piece_starts)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", action="append", default=None,
                    help="Glow checkpoint(s) [default: checkpoints/glow-music21.pt]")
    ap.add_argument("--windows", type=int, default=400)
    args = ap.parse_args()
    paths = args.checkpoint or [str(checkpoints_dir() / "glow-music21.pt")]
    models = {p: load_checkpoint(p) for p in paths}
    first = next(iter(models.values()))
    outlined = any(ck.model.takes_outline for ck in models.values())
    ds = Dataset.load(default_dataset())
    bar, steps = ds.spec.bar_steps(), first.model.config.steps
    out: dict = {"windows_per_genre": args.windows, "seeds": "windows numpy 0, samples torch 0",
                 "per_genre": {}}
    for g in first.genres:
        def windows(stretches: bool = False, genre: str = g) -> WindowSet:
            return WindowSet(ds, "test", window=steps, context=first.model.config.context_steps,
                             genres=[genre], grid=steps, outlines=outlined, stretches=stretches)

        ws = windows()
        by_stretch = {False: ws}  # the same windows; their outlines as each model was trained on them
        ok = sounding_last_bar(ws, bar)
        idx = np.sort(np.random.default_rng(0).choice(ok, size=min(args.windows, len(ok)), replace=False))
        x, ctx, _ = ws.batch(idx)
        x = x.numpy()
        row = {"real": onset_stats(x, ctx.numpy(), bar)}
        for path, ck in models.items():
            model = ck.model.eval()
            genre = torch.zeros(len(idx), len(ck.genres))
            genre[:, ck.genres.index(g)] = 1
            name = Path(path).name if len(models) == 1 else path
            plans = {name: None}
            if model.takes_outline:
                stretch = model.config.outline_stretch
                if stretch not in by_stretch:
                    by_stretch[stretch] = windows(stretch)
                plans[f"{name} + outline"] = by_stretch[stretch].outlines(idx)
            for key, plan in plans.items():
                gen = torch.Generator().manual_seed(0)
                with torch.no_grad():
                    z = torch.randn(len(idx), model.config.dim, generator=gen)
                    v = model.decode(z, Condition(genre, ctx, plan))
                beats = clean_continuation((v > 0.5).numpy(), ctx[:, 1, :, -1].numpy() > 0)
                row[key] = onset_stats(beats, ctx.numpy(), bar)
        out["per_genre"][g] = row
    save("bench_register", out)


if __name__ == "__main__":
    main()
