"""MIDI in and out.

Reading merges every pitched instrument into one note list (drums are dropped and counted), reads
tempo and time signatures from the file, and snaps notes to the grid in beats. A file is parsed by
symusic (a C++ MIDI parser, tens of times faster than pretty_midi here: ``benchmarks/bench_data.py``),
whose integer ticks give the grid exactly; a ``PrettyMIDI`` the API is handed is read as it is.
Writing goes through pretty_midi, the type the API returns, and puts tempo, time signature, program
and velocity in the file explicitly, atomically.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pretty_midi
import symusic

from musicflow.errors import MusicflowError
from musicflow.files import atomic_write, existing_file
from musicflow.io.notes import Note, Piece, bar_lines_from_signatures


def snap(beats: float, steps_per_quarter: int) -> float:
    """Round a time in beats to the nearest grid step.

    >>> snap(1.13, 4)
    1.25
    """
    return round(beats * steps_per_quarter) / steps_per_quarter


def read_midi(path: str | Path, steps_per_quarter: int = 4, keep_drums: bool = False) -> Piece:
    """Read a MIDI file into a :class:`Piece`, all pitched tracks merged, times in beats.

    Raises :class:`MusicflowError` naming the file when it cannot be read or holds no notes.

    >>> import pretty_midi, tempfile, os
    >>> pm = pretty_midi.PrettyMIDI(initial_tempo=90)
    >>> inst = pretty_midi.Instrument(0); inst.notes.append(pretty_midi.Note(80, 60, 0.0, 2/3))
    >>> pm.instruments.append(inst)
    >>> f = os.path.join(tempfile.mkdtemp(), "a.mid"); pm.write(f)
    >>> read_midi(f).notes
    [Note(pitch=60, start=0.0, end=1.0, velocity=80)]
    """
    path = existing_file(path, "empty file, not a MIDI file")
    try:
        score = symusic.Score(str(path))
    except Exception as e:  # symusic raises RuntimeError and others for broken files
        raise MusicflowError(f"{path}: not a readable MIDI file ({type(e).__name__}: {e})") from None
    return piece_from_score(score, steps_per_quarter, keep_drums, name=str(path))


def piece_from_score(score: symusic.Score, steps_per_quarter: int = 4, keep_drums: bool = False,
                     name: str = "<midi>") -> Piece:
    """Convert a ``symusic.Score`` (in ticks) to a :class:`Piece`: the same notes, bar lines and
    time signatures as :func:`piece_from_pretty_midi` reads from the same file."""
    tpq = score.ticks_per_quarter

    def grid(ticks: np.ndarray) -> np.ndarray:
        return np.round(ticks / tpq * steps_per_quarter) / steps_per_quarter

    notes: list[Note] = []
    drums = 0
    for track in score.tracks:
        a = track.notes.numpy()
        if track.is_drum and not keep_drums:
            drums += len(a["pitch"])
            continue
        # A note off at its own onset's tick sounds for no time (pretty_midi drops it too).
        a = {k: v[a["duration"] > 0] for k, v in a.items()}
        start = grid(a["time"].astype(np.int64))
        end = np.maximum(grid(a["time"].astype(np.int64) + a["duration"]), start + 1.0 / steps_per_quarter)
        notes += map(Note, a["pitch"].tolist(), start.tolist(), end.tolist(), a["velocity"].tolist())
    sigs = [(snap(ts.time / tpq, steps_per_quarter), ts.numerator, ts.denominator)
            for ts in score.time_signatures] or [(0.0, 4, 4)]
    tempos: list[tuple[float, float]] = [(0.0, 120.0)]  # MIDI's default until the first change
    for t in score.tempos:  # the last of several at one tick holds; a repeat is no change
        beat, qpm = t.time / tpq, float(t.qpm)
        if tempos[-1][0] == beat:
            tempos.pop()
        if not tempos or tempos[-1][1] != qpm:
            tempos.append((beat, qpm))
    return _piece(notes, drums, sigs, tempos, name)


def _piece(notes: list[Note], drums: int, sigs: list, tempos: list, name: str) -> Piece:
    """The :class:`Piece` of a MIDI file's pitched notes (sorted by onset, then pitch); an error
    naming the file when there are none."""
    if not notes:
        why = f" ({drums} drum notes dropped)" if drums else ""
        raise MusicflowError(f"{name}: no pitched notes{why}")
    notes.sort(key=lambda n: (n.start, n.pitch))
    return Piece(notes, bar_lines=bar_lines_from_signatures(sigs, max(n.end for n in notes)),
                 time_signatures=sigs, tempos=tempos, title=Path(name).stem,
                 dropped={"drum notes": drums} if drums else {})


def load_midi(midi: str | Path | pretty_midi.PrettyMIDI) -> pretty_midi.PrettyMIDI:
    """A ``PrettyMIDI`` from a path (errors name the file) or the object itself.

    >>> load_midi("missing.mid")
    Traceback (most recent call last):
    musicflow.errors.MusicflowError: missing.mid: no such file
    """
    if isinstance(midi, pretty_midi.PrettyMIDI):
        return midi
    path = existing_file(midi, "empty file, not a MIDI file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pretty_midi.PrettyMIDI(str(path))
    except Exception as e:  # pretty_midi/mido raise many types for broken files
        raise MusicflowError(f"{path}: not a readable MIDI file ({type(e).__name__}: {e})") from None


def piece_from_pretty_midi(
    pm: pretty_midi.PrettyMIDI,
    steps_per_quarter: int = 4,
    keep_drums: bool = False,
    name: str = "<midi>",
) -> Piece:
    """Convert an in-memory ``PrettyMIDI`` to a :class:`Piece` (see :func:`read_midi`)."""

    def beats(t: float) -> float:
        return pm.time_to_tick(t) / pm.resolution

    notes: list[Note] = []
    drums = 0
    for inst in pm.instruments:
        if inst.is_drum and not keep_drums:
            drums += len(inst.notes)
            continue
        for n in inst.notes:
            start = snap(beats(n.start), steps_per_quarter)
            end = snap(beats(n.end), steps_per_quarter)
            end = max(end, start + 1.0 / steps_per_quarter)
            notes.append(Note(int(n.pitch), start, end, int(n.velocity)))
    sigs = [(snap(beats(ts.time), steps_per_quarter), ts.numerator, ts.denominator)
            for ts in pm.time_signature_changes] or [(0.0, 4, 4)]
    times, bpms = pm.get_tempo_changes()
    tempos = [(beats(t), float(b)) for t, b in zip(times, bpms)] or [(0.0, 120.0)]
    return _piece(notes, drums, sigs, tempos, name)


def piece_to_midi(
    piece: Piece, program: int = 0, tempo: float | None = None, velocity: int | None = None
) -> pretty_midi.PrettyMIDI:
    """Write a :class:`Piece` as a one-instrument ``PrettyMIDI`` at a constant tempo.

    ``tempo`` (quarter notes per minute) defaults to the piece's first tempo; ``velocity`` replaces
    every note's velocity when given.

    >>> pm = piece_to_midi(Piece([Note(60, 0.0, 2.0)]), tempo=60)
    >>> pm.instruments[0].notes[0].end
    2.0
    """
    bpm = float(tempo or piece.tempo)
    spb = 60.0 / bpm
    pm = pretty_midi.PrettyMIDI(initial_tempo=bpm)
    for beat, num, den in piece.time_signatures or [(0.0, 4, 4)]:
        pm.time_signature_changes.append(pretty_midi.TimeSignature(num, den, beat * spb))
    inst = pretty_midi.Instrument(program=int(program), name="musicflow")
    for n in piece.notes:
        vel = int(velocity if velocity is not None else n.velocity)
        inst.notes.append(pretty_midi.Note(vel, int(n.pitch), n.start * spb, n.end * spb))
    pm.instruments.append(inst)
    return pm


def save_midi(pm: pretty_midi.PrettyMIDI, path: str | Path) -> Path:
    """Write ``pm`` to ``path`` atomically (temp file, then rename)."""
    return atomic_write(path, pm.write)
