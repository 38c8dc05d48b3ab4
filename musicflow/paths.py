"""Where musicflow finds its dataset and checkpoints, and where it writes new ones.

A file is looked up by name in the *home* folder, then among the files the package ships:

- home is ``$MUSICFLOW_HOME`` when set; else the source checkout the package runs from (``data/``
  and ``checkpoints/`` beside ``musicflow/``); else ``$XDG_DATA_HOME/musicflow`` (by default
  ``~/.local/share/musicflow``), the user's own folder for an installed package;
- an installed package (a wheel, ``pip install .``) carries the default checkpoints and dataset in
  ``musicflow/shipped/``; the build copies them there from the checkout (``setup.py``), so the
  checkout holds each file once.

New checkpoints and datasets are written under home; a file there of a shipped name (a user's own
retrained default) wins over the shipped one.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

#: What a built package carries, by folder under home: the default model, the Glow, the genre
#: classifier of the evaluation, and the corpus they were trained on (13 MB in all).
SHIPPED_FILES = {
    "checkpoints": ("keyflow-music21.pt", "glow-music21.pt", "genre-classifier.pt"),
    "data": ("music21.npz",),
}


def checkout() -> Path | None:
    """The source checkout the package runs from, or ``None`` for an installed package."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() and (root / "checkpoints").is_dir() else None


def home() -> Path:
    """The folder that holds ``data/`` and ``checkpoints/`` and receives new ones."""
    env = os.environ.get("MUSICFLOW_HOME")
    if env:
        return Path(env)
    root = checkout()
    if root is not None:
        return root
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "musicflow"


def shipped_dir() -> Path:
    """The package's own files (present in an installed package only)."""
    return Path(str(resources.files("musicflow"))) / "shipped"


def find(folder: str, name: str) -> Path:
    """``home()/folder/name`` if it exists, else the shipped file of that name if there is one,
    else the home path (so an error names where the file was expected)."""
    own = home() / folder / name
    shipped = shipped_dir() / name
    if not own.exists() and name in SHIPPED_FILES.get(folder, ()) and shipped.is_file():
        return shipped
    return own


def data_dir() -> Path:
    return home() / "data"


def checkpoints_dir() -> Path:
    """Where new checkpoints are written."""
    return home() / "checkpoints"


def checkpoint(name: str) -> Path:
    """A checkpoint by file name (``keyflow-music21.pt``), in home or shipped."""
    return find("checkpoints", name)


def checkpoints() -> list[Path]:
    """Every checkpoint in home and shipped, one per name (home's wins), sorted by name."""
    found = {p.name: p for p in sorted(shipped_dir().glob("*.pt"))}
    found.update({p.name: p for p in sorted(checkpoints_dir().glob("*.pt"))})
    return [found[n] for n in sorted(found)]


def default_dataset() -> Path:
    """The built default corpus: ``data/music21.npz``."""
    return find("data", "music21.npz")
