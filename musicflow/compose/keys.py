"""Keys and instruments by name: what a musician types, as numbers."""

from __future__ import annotations

import pretty_midi

from musicflow.errors import MusicflowError

_PITCH_CLASSES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def parse_key(key: str) -> int:
    """Tonic pitch class of a key name: ``"D"``, ``"Bb"``, ``"F#m"``, ``"A minor"``.

    >>> parse_key("Bb"), parse_key("F#m"), parse_key("a minor")
    (10, 6, 9)
    """
    k = key.strip()
    if not k or k[0].upper() not in _PITCH_CLASSES:
        raise MusicflowError(f"key {key!r}: use a note name such as C, F#, Bb or Am")
    pc = _PITCH_CLASSES[k[0].upper()]
    rest = k[1:].strip()
    while rest[:1] in ("#", "b"):
        pc += 1 if rest[0] == "#" else -1
        rest = rest[1:]
    if rest.strip().lower() not in ("", "m", "min", "minor", "maj", "major"):
        raise MusicflowError(f"key {key!r}: use a note name such as C, F#, Bb or Am")
    return pc % 12


def part_programs(program: int | str | None) -> dict[str, int] | None:
    """Programs per part from ``"soprano=oboe,bass=74"`` (part names of
    :data:`musicflow.io.parts.LAYOUTS`), or ``None`` for one program for every track.

    >>> part_programs("melody=violin, bass=cello")
    {'melody': 40, 'bass': 42}
    """
    if not isinstance(program, str) or "=" not in program:
        return None
    out = {}
    for item in program.split(","):
        part, sep, name = item.partition("=")
        if not sep or not part.strip():
            raise MusicflowError(f"program {program!r}: give PART=PROGRAM pairs, e.g. "
                                 "soprano=oboe,bass=bassoon")
        out[part.strip().lower()] = int(parse_program(name.strip()))
    return out


def parse_program(program: int | str | None) -> int:
    """General MIDI program from a number (0-127) or a name (``"Violin"``).

    >>> parse_program("violin"), parse_program(19)
    (40, 19)
    """
    if program is None or part_programs(program) is not None:  # per part: tracks start as piano
        return 0
    if isinstance(program, int) or str(program).isdigit():
        p = int(program)
        if not 0 <= p <= 127:
            raise MusicflowError(f"program {program}: General MIDI programs are 0..127")
        return p
    try:
        return int(pretty_midi.instrument_name_to_program(str(program).strip().title()))
    except ValueError:
        raise MusicflowError(f"program {program!r}: not a General MIDI instrument name") from None
