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
