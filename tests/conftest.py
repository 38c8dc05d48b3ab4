"""Shared fixtures: tiny files in every format the readers take, and a tiny sequence flow."""

from __future__ import annotations

import os
from pathlib import Path

import pretty_midi
import pytest

ABC_TWO_TUNES = """X:1
T:First Tune
M:4/4
L:1/8
K:G
GABc d2 B2|c2 A2 G4|GABc d2 B2|A2 F2 G4|]

X:2
T:Second Tune
M:3/4
L:1/4
K:D
D F A|d2 A|F2 D|A,3|]
"""

KERN = """**kern
*M4/4
=1
4c
4e
4g
4cc
=2
2g
2c
==
*-
"""


def make_midi(path: Path, notes, tempo: float = 120.0, drums=(), program: int = 0) -> Path:
    """Write a MIDI file of ``(pitch, start_beat, end_beat)`` notes at ``tempo``."""
    spb = 60.0 / tempo
    pm = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    inst = pretty_midi.Instrument(program)
    for p, s, e in notes:
        inst.notes.append(pretty_midi.Note(90, p, s * spb, e * spb))
    pm.instruments.append(inst)
    if drums:
        d = pretty_midi.Instrument(0, is_drum=True)
        for p, s, e in drums:
            d.notes.append(pretty_midi.Note(100, p, s * spb, e * spb))
        pm.instruments.append(d)
    pm.write(str(path))
    return path


#: A sequence flow small enough to build in milliseconds: 12 keys, 3 key states, 2 genres, 16 phases.
TINY_KEYFLOW = {"rnn_hidden": 8, "channels": 4, "history": 2, "reach": 3, "blocks": 1, "dropout": 0.0,
                "keys": 12, "states": 3, "genres": 2, "metre": 16}


def tiny_keyflow(seed: int = 0, **over):
    """A :data:`TINY_KEYFLOW` (fields in ``over`` changed) with weights drawn from N(0, 0.3) under
    ``seed``: away from the near-uniform start, so every dependence shows. In eval mode."""
    import torch

    from musicflow.flows.keyflow import KeyFlow, KeyFlowConfig

    torch.manual_seed(seed)
    model = KeyFlow(KeyFlowConfig(**{**TINY_KEYFLOW, **over}))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    return model.eval()


@pytest.fixture
def midi_file(tmp_path: Path) -> Path:
    return make_midi(tmp_path / "tune.mid", [(60, 0, 1), (64, 1, 2), (67, 2, 4), (72, 4, 8)])


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    """A user folder: two genre subfolders, plus one corrupt and one empty MIDI file."""
    root = tmp_path / "corpus"
    (root / "jazz").mkdir(parents=True)
    (root / "folk").mkdir()
    for i in range(3):
        make_midi(root / "jazz" / f"j{i}.mid", [(60 + i, b, b + 1) for b in range(32)])
    (root / "folk" / "two.abc").write_text(ABC_TWO_TUNES)
    (root / "folk" / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")
    (root / "folk" / "empty.mid").write_bytes(b"")
    return root


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch):
    """Never touch the user's cache from tests."""
    monkeypatch.setenv("MUSICFLOW_CACHE", str(tmp_path / "cache"))
    yield
    os.environ.pop("MUSICFLOW_CACHE_TEST", None)


def pytest_collection_modifyitems(config, items):
    if os.environ.get("MUSICFLOW_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow; run with MUSICFLOW_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
