"""The models ``--model`` names: the shipped checkpoints, the default, and how a name becomes a file."""

from __future__ import annotations

from pathlib import Path

from musicflow.paths import checkpoint

#: Names of the shipped checkpoints: ``checkpoints/NAME-music21.pt`` (found by
#: :func:`musicflow.paths.checkpoint`). ``keyflow``, the default, is the
#: sequence flow (:mod:`musicflow.compose.pieces`); ``glow`` composes to an outline
#: (:mod:`musicflow.compose.outlines`); ``glow-no-outline`` is the Glow without one.
SHIPPED = ("keyflow", "glow", "glow-no-outline", "cnf", "vae", "gan")
#: The checkpoint ``Composer.load()`` and every command use when none is named.
DEFAULT_MODEL = "keyflow"
#: Former names of shipped checkpoints: ``glow-outline`` became the default ``glow``.
ALIASES = {"glow-outline": "glow"}


def checkpoint_path(model: str | Path | None) -> Path:
    """The file of a ``--model``: a shipped name, a path, or the name of a checkpoint in the home
    folder's ``checkpoints/`` (``keyflow-mine`` for ``checkpoints/keyflow-mine.pt``).

    >>> checkpoint_path("glow").name
    'glow-music21.pt'
    """
    name = ALIASES.get(str(model), str(model)) if model is not None else DEFAULT_MODEL
    if name in SHIPPED:
        return checkpoint(f"{name}-music21.pt")
    path = Path(name)
    own = checkpoint(f"{name}.pt")
    return own if not path.exists() and not path.suffix and own.is_file() else path
