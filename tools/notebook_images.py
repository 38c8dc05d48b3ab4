"""Run the notebooks at full settings and refresh the README's pictures from what they draw.

    python tools/notebook_images.py            # all four notebooks (a few minutes on a laptop CPU)
    python tools/notebook_images.py 03         # only notebooks whose name contains "03"

Each notebook writes its files to ``notebook_outputs/<notebook>/`` (ignored by git); one picture
per notebook is copied to ``docs/images/nb-<notebook>.png``, which the README shows (and any
further one listed to ``docs/images/nb-<notebook>-<picture>.png``). Outputs are
not written into the notebooks themselves, so nothing needs stripping afterwards. Needs nbclient
and ipykernel (``pip install -e ".[dev]"``).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "notebook_outputs"
IMAGES = ROOT / "docs" / "images"
PICTURE = {  # the pictures of each notebook that the README shows, its own first
    "01_corpus_tour": ("examples.png",),
    "02_compose_and_mix": ("mix_sweep.png",),
    "03_latent_space": ("interpolation.png",),
    "04_likelihood": ("likelihood_matrix.png", "families.png"),
}


def main(argv: list[str]) -> int:
    os.environ.pop("MUSICFLOW_NB_SMALL", None)
    os.environ["MUSICFLOW_NB_OUT"] = str(OUT)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    IMAGES.mkdir(parents=True, exist_ok=True)
    for name, pictures in PICTURE.items():
        if argv and not any(a in name for a in argv):
            continue
        nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
        t = time.perf_counter()
        NotebookClient(nb, timeout=1200, kernel_name="python3",
                       resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
        for i, picture in enumerate(pictures):
            target = f"nb-{name}.png" if i == 0 else f"nb-{name}-{Path(picture).stem}.png"
            shutil.copyfile(OUT / name / picture, IMAGES / target)
            print(f"{name}: {time.perf_counter() - t:.0f} s -> docs/images/{target}")
        for result in ("results.json", "stats.json"):
            if (OUT / name / result).is_file():
                print(json.dumps(json.loads((OUT / name / result).read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
