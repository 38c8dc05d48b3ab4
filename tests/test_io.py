"""Readers: MIDI, ABC, MusicXML, kern and music21 streams all give the same Piece type."""

from __future__ import annotations

import pytest
from conftest import ABC_TWO_TUNES, KERN, make_midi

from musicflow.errors import MusicflowError
from musicflow.io import Piece, read_file, read_midi


def test_midi_reader_merges_tracks_and_drops_drums(tmp_path):
    path = make_midi(tmp_path / "a.mid", [(60, 0, 1), (62, 1, 1.5)], tempo=90, drums=[(36, 0, 1)] * 3)
    piece = read_midi(path)
    assert isinstance(piece, Piece)
    assert [(n.pitch, n.start, n.end) for n in piece.notes] == [(60, 0.0, 1.0), (62, 1.0, 1.5)]
    assert piece.dropped == {"drum notes": 3}
    assert "3 drum notes" in piece.summary()
    assert abs(piece.tempo - 90) < 1e-3


def test_midi_reader_snaps_to_the_grid(tmp_path):
    path = make_midi(tmp_path / "a.mid", [(60, 0.02, 0.97), (64, 1.0, 1.01)])
    notes = read_midi(path).notes
    assert [(n.start, n.end) for n in notes] == [(0.0, 1.0), (1.0, 1.25)]  # never zero length


def test_abc_file_gives_one_piece_per_tune(tmp_path):
    path = tmp_path / "t.abc"
    path.write_text(ABC_TWO_TUNES)
    pieces = read_file(path)
    assert len(pieces) == 2
    first, second = pieces
    assert first.notes[0].pitch == 67  # G4
    assert second.time_signatures[0][1:] == (3, 4)
    assert second.bar_lines[:3] == [0.0, 3.0, 6.0]


def test_kern_file(tmp_path):
    path = tmp_path / "t.krn"
    path.write_text(KERN)
    (piece,) = read_file(path)
    assert [n.pitch for n in piece.notes] == [60, 64, 67, 72, 67, 60]
    assert piece.bar_lines == [0.0, 4.0]


def test_musicxml_file(tmp_path):
    from music21 import converter

    s = converter.parse("tinyNotation: 4/4 c4 d4 e4 f4 g1")
    path = tmp_path / "t.musicxml"
    s.write("musicxml", fp=str(path))
    (piece,) = read_file(path)
    assert [n.pitch for n in piece.notes] == [60, 62, 64, 65, 67]
    assert piece.notes[-1].end == 8.0


def test_pickup_bar_is_not_a_bar_line():
    from music21 import converter

    from musicflow.io import piece_from_stream

    s = converter.parse("tinyNotation: 4/4 c4 d1 e1")
    s.makeMeasures(inPlace=True) if not s.hasMeasures() else None
    piece = piece_from_stream(s)
    assert piece.bar_lines[0] == 0.0  # this one starts with a full bar
    chorale = __import__("music21").corpus.parse("bach/bwv1.6")  # quarter-note pickup
    assert piece_from_stream(chorale).bar_lines[0] == 1.0


@pytest.mark.parametrize("content,why", [(b"", "empty"), (b"MThd\x00\x00\x00\x06junk", "not a readable")])
def test_bad_midi_gets_a_clear_error(tmp_path, content, why):
    path = tmp_path / "bad.mid"
    path.write_bytes(content)
    with pytest.raises(MusicflowError, match=why) as e:
        read_midi(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_unknown_suffix(tmp_path):
    with pytest.raises(MusicflowError, match="unsupported file type"):
        read_file(tmp_path / "x.wav")


def test_midi_reader_agrees_with_pretty_midi(tmp_path):
    """The symusic reader gives what pretty_midi reads from the same file: notes, bar lines, time
    signatures and tempos, across tracks, a metre change, a tempo change and off-grid times."""
    import pretty_midi

    from musicflow.io.midi import load_midi, piece_from_pretty_midi

    pm = pretty_midi.PrettyMIDI(initial_tempo=100)
    pm.time_signature_changes += [pretty_midi.TimeSignature(3, 4, 0.0), pretty_midi.TimeSignature(6, 8, 3.6)]
    for program, notes in ((0, [(60, 0.0, 0.61), (64, 0.6, 1.33), (67, 2.0, 4.1)]),
                           (40, [(72, 0.05, 0.3), (71, 3.6, 5.0)])):
        inst = pretty_midi.Instrument(program)
        inst.notes += [pretty_midi.Note(70 + p % 7, p, s, e) for p, s, e in notes]
        pm.instruments.append(inst)
    path = tmp_path / "m.mid"
    pm.write(str(path))
    new, old = read_midi(path), piece_from_pretty_midi(load_midi(path), name=str(path))
    assert new.notes == old.notes and len(new.notes) == 5
    assert new.bar_lines == old.bar_lines and new.time_signatures == old.time_signatures
    assert len(new.tempos) == len(old.tempos)
    assert [x for t in new.tempos for x in t] == pytest.approx([float(x) for t in old.tempos for x in t])


def test_midi_reader_pairs_unison_notes_first_in_first_out(tmp_path):
    """Two voices on one pitch and channel: each note keeps its own end (pretty_midi would end both
    at the first note off)."""
    import mido

    mid = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    track += [mido.Message("note_on", note=60, velocity=80, time=0),
              mido.Message("note_on", note=60, velocity=70, time=480),
              mido.Message("note_off", note=60, time=480),
              mido.Message("note_off", note=60, time=960)]
    mid.tracks.append(track)
    mid.save(tmp_path / "u.mid")
    notes = read_midi(tmp_path / "u.mid").notes
    assert [(n.start, n.end, n.velocity) for n in notes] == [(0.0, 2.0, 80), (1.0, 4.0, 70)]
