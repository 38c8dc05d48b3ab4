"""Write fresh clips into a folder your DAW watches (Bitwig, Ableton, REAPER media explorer, ...).

Every run composes ``--count`` clips of ``--bars`` bars for a genre or a mix and writes them
atomically, so the DAW never sees half a file. From a REAPER ReaScript (Python), call ``compose_clips``
and then insert the returned files with ``RPR_InsertMedia(path, 0)``.

    python examples/daw_clips.py ~/Music/musicflow-clips --genre celtic:0.7 --genre chorale:0.3 --count 4
"""

from __future__ import annotations

import argparse
from pathlib import Path

from musicflow import Composer


def compose_clips(folder: str | Path, genre: list[str], bars: int = 4, count: int = 4, seed: int = 0,
                  tempo: float = 100.0, key: str | None = None,
                  composer: Composer | None = None) -> list[Path]:
    """Compose ``count`` clips with seeds ``seed..seed+count-1`` into ``folder``; return their paths.

    Pass a ``composer`` to reuse a loaded checkpoint across calls (a DAW script should load once).
    """
    c = composer or Composer.load()
    folder = Path(folder)
    names = "-".join(g.split(":")[0] for g in genre)
    paths = []
    for i in range(count):
        pm = c.compose(genre=genre, bars=bars, seed=seed + i, tempo=tempo, key=key)
        paths.append(c.save(pm, folder / f"{names}-{bars}bars-seed{seed + i}.mid"))
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder")
    ap.add_argument("--genre", action="append", default=None)
    ap.add_argument("--bars", type=int, default=4)
    ap.add_argument("--count", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tempo", type=float, default=100.0)
    ap.add_argument("--key", default=None)
    ap.add_argument("--model", default=None, help="checkpoint path [default: the shipped Glow]")
    args = ap.parse_args()
    c = Composer.load(args.model)
    for p in compose_clips(args.folder, args.genre or [c.default_genre], args.bars, args.count,
                           args.seed, args.tempo, args.key, composer=c):
        print(p)


if __name__ == "__main__":
    main()
