"""Composing: the :class:`Composer` users touch, its :class:`Options`, and what it reads."""

from __future__ import annotations

from musicflow.compose.composer import (
    ALIASES,
    DEFAULT_CANDIDATES,
    DEFAULT_GUIDANCE,
    SHIPPED,
    Composer,
    Result,
    draw_latents,
    new_seed,
)
from musicflow.compose.keys import parse_key, parse_program
from musicflow.compose.options import DEFAULT_TEMPERATURE, Options
from musicflow.compose.reading import Input, MidiInput, cut_windows, read_input

__all__ = ["ALIASES", "DEFAULT_CANDIDATES", "DEFAULT_GUIDANCE", "DEFAULT_TEMPERATURE", "SHIPPED", "Composer",
           "Input", "MidiInput", "Options", "Result", "cut_windows", "draw_latents", "new_seed", "parse_key",
           "parse_program", "read_input"]
