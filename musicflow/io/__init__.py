"""Readers and the MIDI writer: every format in, one :class:`Piece` type out."""

from __future__ import annotations

from pathlib import Path

from musicflow.errors import MusicflowError
from musicflow.io.midi import piece_to_midi, read_midi, save_midi
from musicflow.io.notes import Note, Piece
from musicflow.io.scores import SCORE_SUFFIXES, piece_from_stream, read_score_file

MIDI_SUFFIXES = {".mid", ".midi"}
READABLE_SUFFIXES = MIDI_SUFFIXES | SCORE_SUFFIXES


def read_file(path: str | Path, steps_per_quarter: int = 4) -> list[Piece]:
    """Read any supported file (MIDI, ABC, MusicXML, kern) into pieces.

    >>> read_file("song.txt")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    musicflow.errors.MusicflowError: song.txt: unsupported file type '.txt' (use .abc, ...)
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in MIDI_SUFFIXES:
        return [read_midi(path, steps_per_quarter)]
    if suffix in SCORE_SUFFIXES:
        return read_score_file(path, steps_per_quarter)
    known = ", ".join(sorted(READABLE_SUFFIXES))  # .abc first: the doctest relies on it
    raise MusicflowError(f"{path}: unsupported file type '{suffix}' (use {known})")


__all__ = ["MIDI_SUFFIXES", "READABLE_SUFFIXES", "MusicflowError", "Note", "Piece",
           "piece_from_stream", "piece_to_midi", "read_file", "read_midi", "read_score_file",
           "save_midi"]
