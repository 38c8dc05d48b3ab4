"""Draw docs/images/infill.png: a real celtic tune (the corpus's first celtic test piece, 8 bars)
before and after ``Composer.infill`` composes its bars 3-6 anew (seed 5), with the default model.

    python tools/infill_picture.py
"""

from __future__ import annotations

from pathlib import Path

from musicflow import Composer
from musicflow.data.dataset import Dataset
from musicflow.media.plot import plot_batch, save_png
from musicflow.paths import default_dataset
from musicflow.roll import roll_to_midi

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    c, ds = Composer.load(), Dataset.load(default_dataset())
    i = ds.indices("test", "celtic")[0]
    before = roll_to_midi(ds.roll(i)[..., :8 * 16], c.spec, tempo=100)
    after = c.infill(before, bars=(3, 6), seed=5)
    fig = plot_batch([c.read(before).roll, after.roll], c.spec, cols=1, bar_steps=16,
                     titles=["before: a celtic test tune, 8 bars", "after: bars 3-6 composed anew (seed 5), "
                             "weighed by how well bars 7-8 follow"])
    print(save_png(fig, ROOT / "docs" / "images" / "infill.png"))


if __name__ == "__main__":
    main()
