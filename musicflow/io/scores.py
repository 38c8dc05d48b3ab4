"""Scores through music21: streams, and ABC, MusicXML and kern files.

Offsets in music21 are quarter lengths already, so a score maps onto the grid without tempo.
An ABC file holds many tunes: :func:`read_score_file` returns one :class:`Piece` per tune.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from musicflow.errors import MusicflowError
from musicflow.files import existing_file
from musicflow.io.midi import snap
from musicflow.io.notes import Note, Piece, bar_lines_from_signatures

SCORE_SUFFIXES = {".abc", ".krn", ".mxl", ".xml", ".musicxml"}


def piece_from_stream(stream, steps_per_quarter: int = 4, name: str = "<stream>") -> Piece:
    """Convert a music21 ``Score``/``Part``/``Stream`` into a :class:`Piece`.

    Ties are merged, chords split into notes, grace notes (zero length) left out and counted.

    >>> from music21 import converter
    >>> s = converter.parse("tinyNotation: 3/4 c4 d8 e8 f4~ f2.")
    >>> [(n.pitch, n.start, n.end) for n in piece_from_stream(s).notes][-1]
    (65, 2.0, 6.0)
    """
    from music21 import meter, tempo
    from music21 import stream as m21stream

    score = stream.stripTies(inPlace=False) if hasattr(stream, "stripTies") else stream
    parts = list(score.parts) if isinstance(score, m21stream.Score) and score.parts else [score]
    notes: list[Note] = []
    grace = 0
    for part in parts:
        for el in part.flatten().notes:
            ql = float(el.quarterLength)
            if ql <= 0:
                grace += 1
                continue
            start = snap(float(el.offset), steps_per_quarter)
            end = max(snap(float(el.offset) + ql, steps_per_quarter), start + 1 / steps_per_quarter)
            vel = el.volume.velocity if el.volume.velocity is not None else 80
            for p in getattr(el, "pitches", ()):
                notes.append(Note(int(p.midi), start, end, int(vel)))
    if not notes:
        raise MusicflowError(f"{name}: no notes")
    notes.sort(key=lambda n: (n.start, n.pitch))
    flat = parts[0].flatten()
    sigs = [(snap(float(ts.offset), steps_per_quarter), int(ts.numerator), int(ts.denominator))
            for ts in flat.getElementsByClass(meter.TimeSignature)] or [(0.0, 4, 4)]
    tempos = [(float(mm.offset), float(mm.getQuarterBPM() or 120.0))
              for mm in flat.getElementsByClass(tempo.MetronomeMark)] or [(0.0, 120.0)]
    end = max(n.end for n in notes)
    bars = _measure_bar_lines(parts[0], steps_per_quarter) or bar_lines_from_signatures(sigs, end)
    return Piece(notes, bars, sigs, tempos, title=_title(stream, name),
                 dropped={"grace notes": grace} if grace else {})


def _measure_bar_lines(part, steps_per_quarter: int) -> list[float]:
    """Offsets of full measures; a short first measure (an anacrusis) is not a bar line."""
    from music21 import stream as m21stream

    bars = []
    for i, m in enumerate(part.getElementsByClass(m21stream.Measure)):
        if i == 0:
            try:
                full = float(m.barDuration.quarterLength)
            except Exception:  # no time signature in force: take the measure as full
                full = float(m.duration.quarterLength)
            if float(m.duration.quarterLength) < full - 1e-6:
                continue
        bars.append(snap(float(m.offset), steps_per_quarter))
    return sorted(set(bars))


def _title(stream, name: str) -> str:
    md = getattr(stream, "metadata", None)
    title = getattr(md, "title", None) if md is not None else None
    return str(title) if title else Path(name).stem


def read_score_file(path: str | Path, steps_per_quarter: int = 4) -> list[Piece]:
    """Parse an ABC, MusicXML or kern file with music21; one :class:`Piece` per score or tune.

    A tune that fails inside an otherwise good ABC file is skipped and counted on the first piece's
    ``dropped`` (``"unreadable tunes"``). A file with nothing readable raises
    :class:`MusicflowError` naming it.
    """
    from music21 import converter
    from music21 import stream as m21stream

    path = existing_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = converter.parse(str(path))
    except Exception as e:  # music21 raises many types for bad files
        raise MusicflowError(f"{path}: music21 could not parse it ({type(e).__name__}: {e})") from None
    scores = list(parsed.scores) if isinstance(parsed, m21stream.Opus) else [parsed]
    pieces, bad = [], 0
    for i, s in enumerate(scores):
        try:
            piece = piece_from_stream(s, steps_per_quarter, name=f"{path}#{i}")
        except MusicflowError:
            bad += 1
            continue
        except Exception:  # a broken tune must not sink the other tunes of its file
            bad += 1
            continue
        number = getattr(getattr(s, "metadata", None), "number", None)
        piece.title = piece.title if len(scores) == 1 else f"{piece.title} (X:{number or i + 1})"
        pieces.append(piece)
    if not pieces:
        raise MusicflowError(f"{path}: no readable notes in {len(scores)} score(s)")
    if bad:
        pieces[0].dropped["unreadable tunes"] = bad
    return pieces
