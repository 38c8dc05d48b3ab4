"""The representation: exact round trips, windows on bar lines, key estimation."""

from __future__ import annotations

import numpy as np
import pretty_midi
from hypothesis import given, settings
from hypothesis import strategies as st

from musicflow.io import piece_from_stream, read_midi
from musicflow.io.midi import piece_from_pretty_midi
from musicflow.roll import (
    PianoRollSpec,
    canonical,
    decode,
    encode,
    encode_steps,
    estimate_key,
    note_steps,
    roll_to_midi,
    window_starts,
)

SPEC = PianoRollSpec(low=36, pitches=48)

notes_strategy = st.lists(
    st.tuples(st.integers(36, 83), st.integers(0, 60), st.integers(1, 12)), min_size=0, max_size=40
)


def _roll(rows, length=64):
    arr = np.array([[p, s, s + d] for p, s, d in rows], dtype=np.int64).reshape(-1, 3)
    return encode_steps(arr, SPEC, length=length)[0]


@settings(max_examples=60, deadline=None)
@given(notes_strategy)
def test_roll_notes_roll_is_exact(rows):
    roll = _roll(rows)
    again = encode_steps(note_steps(decode(roll, SPEC), 4), SPEC, length=64)[0]
    np.testing.assert_array_equal(roll, again)


@settings(max_examples=25, deadline=None)
@given(notes_strategy, st.sampled_from([60.0, 97.0, 140.0]))
def test_roll_midi_roll_is_exact(rows, tempo):
    roll = _roll(rows)
    pm = roll_to_midi(roll, SPEC, tempo=tempo)
    if not pm.instruments[0].notes:
        return
    back = encode_steps(note_steps(piece_from_pretty_midi(pm).notes, 4), SPEC, length=64)[0]
    np.testing.assert_array_equal(roll, back)


def test_repeated_notes_survive_through_onsets():
    roll = _roll([(60, 0, 2), (60, 2, 2)])
    assert roll[1, 24, :4].tolist() == [1, 1, 1, 1]  # one continuous sustain...
    notes = decode(roll, SPEC)
    assert [(n.start, n.end) for n in notes] == [(0.0, 0.5), (0.5, 1.0)]  # ...but two notes


def test_canonical_makes_onsets_sustain():
    roll = np.zeros((2, 48, 4), np.float32)
    roll[0, 3, 1] = 0.9
    c = canonical(roll)
    assert c[1, 3, 1] == 1 and c.sum() == 2


def test_real_chorale_round_trips_through_midi(tmp_path):
    from music21 import corpus

    piece = piece_from_stream(corpus.parse("bach/bwv66.6"))
    roll = encode(piece, SPEC)
    path = tmp_path / "bwv66.mid"
    roll_to_midi(roll, SPEC, tempo=80, path=str(path))
    back = encode(read_midi(path), SPEC)
    assert back.shape[-1] == roll.shape[-1]
    np.testing.assert_array_equal(roll, back)
    assert roll[1].sum() > 100


def test_midi_has_tempo_signature_program_velocity(tmp_path):
    roll = _roll([(60, 0, 4)], length=16)
    path = tmp_path / "o.mid"
    roll_to_midi(roll, SPEC, tempo=90, program=40, velocity=70, time_signature=(3, 4), path=str(path))
    pm = pretty_midi.PrettyMIDI(str(path))
    assert abs(pm.get_tempo_changes()[1][0] - 90) < 1e-3  # MIDI stores whole microseconds
    ts = pm.time_signature_changes[0]
    assert (ts.numerator, ts.denominator) == (3, 4)
    assert pm.instruments[0].program == 40 and pm.instruments[0].notes[0].velocity == 70


def test_tempo_change_does_not_distort_the_grid(tmp_path):
    # Build a file with a tempo change at beat 2 by writing ticks through mido.
    import mido

    mid = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=1_000_000, time=0))
    track.append(mido.Message("note_on", note=60, velocity=80, time=0))
    track.append(mido.Message("note_off", note=60, velocity=0, time=960))
    track.append(mido.MetaMessage("set_tempo", tempo=250_000, time=0))
    track.append(mido.Message("note_on", note=62, velocity=80, time=0))
    track.append(mido.Message("note_off", note=62, velocity=0, time=480))
    path = tmp_path / "t.mid"
    mid.save(str(path))
    notes = read_midi(path).notes
    assert [(n.pitch, n.start, n.end) for n in notes] == [(60, 0.0, 2.0), (62, 2.0, 3.0)]


def test_windows_start_on_bar_lines_in_any_meter():
    bars_34 = np.arange(0, 120, 12)  # 3/4: a bar is 12 sixteenths
    starts = window_starts(bars_34, 120, 64, 64)
    assert all(s % 12 == 0 for s in starts) and starts[0] == 0 and starts[1] >= 64
    pickup = np.array([4, 20, 36, 52, 68, 84])  # a quarter-note anacrusis
    assert window_starts(pickup, 100, 16, 16) == [4, 20, 36, 52, 68, 84]


def test_notes_out_of_range_are_counted():
    rows = np.array([[20, 0, 4], [60, 0, 4], [100, 0, 4]])
    roll, lost = encode_steps(rows, SPEC, length=4)
    assert lost == 2 and roll[1].sum() == 4


def test_key_estimate_on_a_real_piece():
    from music21 import corpus

    piece = piece_from_stream(corpus.parse("bach/bwv66.6"))  # F-sharp minor
    assert estimate_key(note_steps(piece.notes, 4)) == (6, "minor")


@settings(max_examples=40, deadline=None)
@given(notes_strategy)
def test_strict_decoding_agrees_on_encoded_rolls(rows):
    roll = _roll(rows)
    assert decode(roll, SPEC, strict=True) == decode(roll, SPEC)


def test_strict_decoding_drops_single_channel_speckle():
    roll = _roll([(60, 0, 4)], length=16)
    roll[0, 10, 8] = 1  # onset without sustain
    roll[1, 20, 3] = 1  # sustain without onset
    assert len(decode(roll, SPEC)) == 3
    assert [(n.pitch, n.start, n.end) for n in decode(roll, SPEC, strict=True)] == [(60, 0.0, 1.0)]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 47), st.integers(0, 15)), max_size=120),
       st.integers(1, 15))
def test_chunkwise_cleaning_matches_whole_piece_cleaning(cells, cut):
    from musicflow.sampling import clean, clean_continuation

    roll = np.zeros((2, 48, 16), np.float32)
    for ch, p, t in cells:
        roll[ch, p, t] = 1
    whole = clean(roll, SPEC)
    head = clean(roll[..., :cut], SPEC)
    tail = clean_continuation(roll[None, ..., cut:] > 0, head[None, 1, :, -1] > 0)[0]
    np.testing.assert_array_equal(np.concatenate([head, tail], axis=-1), whole)
