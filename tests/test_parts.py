"""Parts on their own tracks: voices separated by voice leading, checked on real chorales."""

from __future__ import annotations

from pathlib import Path

import pretty_midi
import pytest
from click.testing import CliRunner
from conftest import make_midi

from musicflow.cli import main
from musicflow.compose import Composer, Options
from musicflow.errors import MusicflowError
from musicflow.io.parts import auto_layout, separate, split_parts


def _chorale_parts(n: int):
    """The first ``n`` four-part Bach chorales of music21's corpus as (notes, true voice) pairs, read
    as ``benchmarks/bench_parts.py`` reads them."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_parts.py"
    spec = importlib.util.spec_from_file_location("bench_parts", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return [(notes, truth) for _, notes, truth in bench.chorales(n)]


def test_real_chorales_merged_then_separated_come_back_as_their_voices():
    right = total = 0
    for notes, truth in _chorale_parts(10):
        got = separate(notes, 4)
        right += sum(a == b for a, b in zip(got, truth))
        total += len(notes)
    assert total > 1500 and right / total >= 0.9, right / total


def test_voices_follow_the_line_not_fixed_bands():
    # two voices that meet and part: the upper line dips to where the lower one was
    notes = [(72, 0, 1), (60, 0, 1), (67, 1, 2), (62, 1, 2), (65, 2, 3), (63, 2, 3)]
    assert separate(notes, 2) == [0, 1, 0, 1, 0, 1]
    # a held note keeps its voice busy: the notes that join it take the others, in pitch order
    assert separate([(60, 0, 4), (67, 1, 2), (55, 1, 2), (62, 2, 3)], 3) == [0, 1, 2, 1]


def test_split_parts_names_tracks_and_keeps_every_note(tmp_path):
    chord = [(p, b, b + 1) for b in range(8) for p in (72 - b % 2, 67, 60 + b % 3, 48)]
    pm = pretty_midi.PrettyMIDI(str(make_midi(tmp_path / "c.mid", chord, program=19)))
    satb = split_parts(pm, "satb")
    assert [i.name for i in satb.instruments] == ["soprano", "alto", "tenor", "bass"]
    assert sum(len(i.notes) for i in satb.instruments) == len(chord)
    assert all(i.program == 19 for i in satb.instruments)
    assert [n.pitch for n in satb.instruments[3].notes] == [48] * 8
    assert split_parts(pm, "auto").instruments[0].name == "soprano"
    assert split_parts(pm, "one") is pm
    line = pretty_midi.PrettyMIDI(str(make_midi(tmp_path / "l.mid", [(60 + b, b, b + 1) for b in range(8)])))
    assert split_parts(line, "auto") is line and auto_layout([]) == "one"
    tune = [(72 + b % 3, b / 2, b / 2 + 0.5) for b in range(16)] + [(48, 2 * b, 2 * b + 2) for b in range(4)]
    mb = split_parts(pretty_midi.PrettyMIDI(str(make_midi(tmp_path / "t.mid", tune))), "melody-bass")
    assert [i.name for i in mb.instruments] == ["melody", "bass"]
    assert len(mb.instruments[0].notes) == 16
    with pytest.raises(MusicflowError, match="parts"):
        split_parts(pm, "quartet")


def test_compose_writes_parts_from_the_api_and_the_cli_alike(tmp_path):
    c = Composer.load()
    r = c.compose_result("chorale", seed=2, bars=2, parts="satb")
    assert [i.name for i in r.midi.instruments] == ["soprano", "alto", "tenor", "bass"]
    plain = c.compose_result("chorale", seed=2, bars=2)
    assert len(plain.midi.instruments) == 1
    assert sum(len(i.notes) for i in r.midi.instruments) == len(plain.midi.instruments[0].notes)
    out = tmp_path / "cli.mid"
    args = ["compose", "-g", "chorale", "--seed", "2", "--bars", "2", "--parts", "satb", "-o", str(out)]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert out.read_bytes() == c.save(r.midi, tmp_path / "api.mid").read_bytes()
    assert len(c.variations(str(out), n=1, amount=0.2, seed=1, parts="satb")[0].midi.instruments) >= 3
    with pytest.raises(MusicflowError, match="parts must be one of"):
        Options(parts="quartet")


def test_a_program_per_part(tmp_path):
    c = Composer.load()
    r = c.compose_result("chorale", seed=2, bars=1, parts="satb",
                         program="soprano=oboe, alto=clarinet, tenor=french horn, bass=bassoon")
    assert [(i.name, i.program) for i in r.midi.instruments] == [
        ("soprano", 68), ("alto", 71), ("tenor", 60), ("bass", 70)]
    for program, parts, message in (("soprano=oboe", "one", "needs parts"), ("lead=oboe", "satb", "no part"),
                                    ("soprano=kazoo", "satb", "not a General MIDI")):
        with pytest.raises(MusicflowError, match=message):
            Options(program=program, parts=parts)
    res = CliRunner().invoke(main, ["compose", "-g", "chorale", "--program", "lead=oboe", "--parts", "satb"])
    assert res.exit_code == 2 and "no part named lead" in res.output
