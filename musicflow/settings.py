"""Settings written once: a field's default, help and the check of its value live in its dataclass.

The jobs' settings (``compose.options.Options``, ``training.settings.TrainConfig``,
``boulanger.settings.BenchmarkTrainConfig``, ``evaluate.settings.EvalConfig``) declare each field with
:func:`setting`; the CLI builds its options from :func:`default_of` and :func:`help_of`, so a
default is never written twice. Errors name the parameter (``bars must be at least 1, got 0``).

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Job:
...     steps: int = setting(10, "Optimiser steps.")
>>> default_of(Job, "steps"), help_of(Job, "steps")
(10, 'Optimiser steps.')
>>> require(Job().steps >= 1, "steps must be at least 1, got 0")
"""

from __future__ import annotations

from dataclasses import Field, field, fields

from musicflow.errors import MusicflowError


def setting(default, help: str = ""):  # noqa: A002 - "help" is what the CLI calls it
    """A dataclass field with its default and the help text the CLI shows."""
    return field(default=default, metadata={"help": help})


def _field(cls: type, name: str) -> Field:
    for f in fields(cls):
        if f.name == name:
            return f
    raise KeyError(f"{cls.__name__} has no setting {name!r}")


def default_of(cls: type, name: str):
    """The default of setting ``name`` of dataclass ``cls``."""
    return _field(cls, name).default


def help_of(cls: type, name: str) -> str:
    """The help text of setting ``name`` of dataclass ``cls``."""
    return _field(cls, name).metadata.get("help", "")


def require(ok: bool, message: str) -> None:
    """Raise the one-line :class:`MusicflowError` ``message`` unless ``ok``."""
    if not ok:
        raise MusicflowError(message)
