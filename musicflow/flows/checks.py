"""The checks the frozen config dataclasses of the models share, each a one-line
:class:`~musicflow.errors.MusicflowError` that names the class and the field.

A config's ``__post_init__`` calls them in the order it wants its errors, then adds its own.

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Tiny:
...     size: int = 2
...     def __post_init__(self):
...         positive_ints(self, ("size",))
>>> Tiny(0)
Traceback (most recent call last):
...
musicflow.errors.MusicflowError: Tiny.size must be a positive integer, got 0
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from musicflow.errors import MusicflowError


def _fail(config: Any, name: str, must: str, value: object) -> None:
    raise MusicflowError(f"{type(config).__name__}.{name} must be {must}, got {value}")


def positive_ints(config: Any, names: Iterable[str]) -> None:
    """Each field in ``names`` is an ``int`` of at least 1."""
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, int) or value < 1:
            _fail(config, name, "a positive integer", repr(value))


def flags(config: Any, names: Iterable[str]) -> None:
    """Each field in ``names`` is a ``bool`` (a 1 or a "yes" from a hand-written file is not)."""
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, bool):
            _fail(config, name, "true or false", repr(value))


def needs(config: Any, name: str, flag: str) -> None:
    """The flag ``name`` is set only with the flag ``flag`` it refines (a setting that would
    otherwise do nothing, silently)."""
    if getattr(config, name) and not getattr(config, flag):
        raise MusicflowError(f"{type(config).__name__}.{name} needs {flag}=true")


def probabilities(config: Any, names: Iterable[str]) -> None:
    """Each field in ``names`` (a dropout rate) is in ``[0, 1)``."""
    for name in names:
        value = getattr(config, name)
        if not 0.0 <= value < 1.0:
            _fail(config, name, "in [0, 1)", value)


def logit_alpha(config: Any) -> None:
    """The field ``alpha`` of :class:`~musicflow.flows.dequantize.Logit` is in ``(0, 0.5)``."""
    if not 0.0 < config.alpha < 0.5:
        _fail(config, "alpha", "in (0, 0.5)", config.alpha)
