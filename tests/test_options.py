"""Composing settings: written once, checked when made, and never silently ignored."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from musicflow.compose import Composer, Options
from musicflow.errors import MusicflowError
from musicflow.settings import default_of, help_of


def test_defaults_and_help_live_in_the_dataclass():
    assert Options().bars == default_of(Options, "bars") == 8
    assert Options().velocity == 80 and "velocity" in help_of(Options, "velocity").lower()


@pytest.mark.parametrize("kw,needle", [
    ({"bars": 0}, "bars must be a whole number of at least 1, got 0"),
    ({"bars": 2.5}, "bars must be a whole number"),
    ({"bars": True}, "bars must be a whole number"),
    ({"temperature": 0}, "temperature must be a positive number"),
    ({"temperature": None}, "temperature must be a positive number"),
    ({"velocity": "loud"}, "velocity must be a whole number in 1..127"),
    ({"velocity": 128}, "velocity must be a whole number in 1..127"),
    ({"tempo": -1}, "tempo must be a positive number"),
    ({"key": "H"}, "key 'H': use a note name"),
    ({"program": 200}, "program 200: General MIDI programs are 0..127"),
])
def test_bad_settings_are_one_line_errors_naming_the_parameter(kw, needle):
    with pytest.raises(MusicflowError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        Options(**kw)


def test_numpy_integers_are_whole_numbers():
    assert Options(bars=np.int64(4), velocity=np.int32(90)).bars == 4


def test_unknown_and_unused_settings_are_errors_not_ignored():
    with pytest.raises(MusicflowError, match="unknown setting"):
        Options.of(None, {"bar": 4})
    with pytest.raises(MusicflowError, match="guidance: transfer does not use this setting"):
        Options.of(None, {"guidance": 2.0}, "transfer", ("program", "velocity"))
    with pytest.raises(MusicflowError, match="options must be an Options"):
        Options.of("violin", {})
    assert Options.of(Options(bars=4), {"key": "D"}).key == "D"


def test_every_setting_after_the_subject_is_a_keyword():
    """A positional number can no longer land in the wrong parameter (``compose("celtic", 4)``
    once meant four bars)."""
    keyword_only = {"compose": ("seed", "options"), "compose_result": ("seed", "options"),
                    "continue_": ("seed", "options"), "decode_latents": ("outline", "options"),
                    "variations": ("options",), "transfer": ("options",), "interpolate": ("options",)}
    for name, params in keyword_only.items():
        sig = inspect.signature(getattr(Composer, name)).parameters
        for p in params:
            assert sig[p].kind is inspect.Parameter.KEYWORD_ONLY, (name, p)
