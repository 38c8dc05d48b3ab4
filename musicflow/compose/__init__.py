"""Composing: the :class:`Composer` users touch, with the genre, key and outline arguments it reads."""

from __future__ import annotations

from musicflow.compose.composer import (
    ALIASES,
    DEFAULT_CANDIDATES,
    DEFAULT_GUIDANCE,
    DEFAULT_TEMPERATURE,
    SHIPPED,
    Composer,
    Input,
    MidiInput,
    Result,
    parse_key,
    parse_program,
)

__all__ = ["ALIASES", "DEFAULT_CANDIDATES", "DEFAULT_GUIDANCE", "DEFAULT_TEMPERATURE", "SHIPPED", "Composer",
           "Input", "MidiInput", "Result", "parse_key", "parse_program"]
