"""Where musicflow finds its shipped dataset and checkpoints.

A source checkout (or editable install) keeps them in ``data/`` and ``checkpoints/`` beside the
package; ``MUSICFLOW_HOME`` points elsewhere (``$MUSICFLOW_HOME/data``, ``$MUSICFLOW_HOME/checkpoints``).
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    env = os.environ.get("MUSICFLOW_HOME")
    return Path(env) if env else Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    return home() / "data"


def checkpoints_dir() -> Path:
    return home() / "checkpoints"


def default_dataset() -> Path:
    """The built default corpus: ``data/music21.npz``."""
    return data_dir() / "music21.npz"
