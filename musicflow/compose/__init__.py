"""Composing: the :class:`Composer` users touch, its :class:`Options`, and what it reads.

The names load on first use, so that reading :class:`Options` (free of torch) does not import the
models; the command line starts without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_HOME = {"ALIASES": "models", "DEFAULT_MODEL": "models", "DEFAULT_CANDIDATES": "composer",
         "DEFAULT_GUIDANCE": "composer",
         "SHIPPED": "models", "Composer": "composer", "Result": "latent", "draw_latents": "latent",
         "new_seed": "latent", "parse_key": "keys", "parse_program": "keys",
         "DEFAULT_TEMPERATURE": "options", "Options": "options", "Input": "reading",
         "MidiInput": "reading", "cut_windows": "reading", "read_input": "reading"}

if TYPE_CHECKING:
    from musicflow.compose.composer import DEFAULT_CANDIDATES, DEFAULT_GUIDANCE, Composer
    from musicflow.compose.keys import parse_key, parse_program
    from musicflow.compose.latent import Result, draw_latents, new_seed
    from musicflow.compose.models import ALIASES, DEFAULT_MODEL, SHIPPED
    from musicflow.compose.options import DEFAULT_TEMPERATURE, Options
    from musicflow.compose.reading import Input, MidiInput, cut_windows, read_input

__all__ = ["ALIASES", "Composer", "DEFAULT_CANDIDATES", "DEFAULT_GUIDANCE", "DEFAULT_MODEL",
           "DEFAULT_TEMPERATURE", "Input",
           "MidiInput", "Options", "Result", "SHIPPED", "cut_windows", "draw_latents", "new_seed",
           "parse_key", "parse_program", "read_input"]


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module 'musicflow.compose' has no attribute {name!r}")
    return getattr(importlib.import_module(f"musicflow.compose.{_HOME[name]}"), name)
