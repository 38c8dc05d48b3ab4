"""Genre weights: one genre, or a mix, as a normalised weight vector over a model's genres."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch

from musicflow.errors import MusicflowError

GenreArg = str | Mapping[str, float] | Iterable[str]


def parse_genre(genre: GenreArg, known: list[str]) -> dict[str, float]:
    """Turn ``"celtic"``, ``"celtic:0.7"``, ``["celtic:0.7", "chorale:0.3"]`` or a dict into
    normalised weights; unknown names and negative or all-zero weights are errors listing the
    known genres.

    >>> parse_genre(["celtic:3", "chorale"], ["celtic", "chorale"])
    {'celtic': 0.75, 'chorale': 0.25}
    >>> parse_genre("jazz", ["celtic"])
    Traceback (most recent call last):
    musicflow.errors.MusicflowError: unknown genre 'jazz' (known: celtic)
    """
    items: list[tuple[str, float]] = []
    if isinstance(genre, Mapping):
        items = [(str(k), float(v)) for k, v in genre.items()]
    else:
        for part in [genre] if isinstance(genre, str) else list(genre):
            name, sep, w = str(part).partition(":")
            try:
                items.append((name.strip(), float(w) if sep else 1.0))
            except ValueError:
                raise MusicflowError(f"genre weight {part!r}: use NAME or NAME:WEIGHT") from None
    if not items:
        raise MusicflowError(f"no genre given (known: {', '.join(known)})")
    weights: dict[str, float] = {}
    for name, w in items:
        if name not in known:
            raise MusicflowError(f"unknown genre {name!r} (known: {', '.join(known)})")
        if not w >= 0:
            raise MusicflowError(f"genre {name!r}: weight {w} must be zero or positive")
        weights[name] = weights.get(name, 0.0) + w
    total = sum(weights.values())
    if total <= 0:
        raise MusicflowError("genre weights sum to zero")
    return {k: v / total for k, v in weights.items()}


def genre_vector(weights: Mapping[str, float], known: list[str]) -> torch.Tensor:
    """Weights as a ``(1, G)`` tensor in the model's genre order."""
    return torch.tensor([[float(weights.get(g, 0.0)) for g in known]])
