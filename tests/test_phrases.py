"""Restated phrases: bars 5-8 of a period decoded from the latents of the bar four before."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from test_piece_flow import SPEC, _model

from musicflow.checkpoint import save_checkpoint
from musicflow.cli import main
from musicflow.compose import Composer
from musicflow.compose.phrases import SCALE, default_share, restate
from musicflow.data.restatement import restated_bars
from musicflow.errors import MusicflowError


def test_restating_copies_the_second_half_of_every_period_from_its_first():
    z = torch.randn(16 * 4, 3)  # 16 bars of 4 steps
    out = restate(z, 4, 1.0, seed=2)
    bar = lambda x, b: x[4 * b:4 * b + 4]  # noqa: E731
    for b in range(16):
        src = b - 4 if b % 8 >= 4 else b
        torch.testing.assert_close(bar(out, b), bar(z, src), rtol=0, atol=0)
    assert not torch.equal(bar(out, 12), bar(z, 4))  # the second period starts afresh
    assert torch.equal(restate(z, 4, 0.0, seed=2), z)
    part = restate(z[:4 * 6 + 2], 4, 1.0, seed=2)  # a last bar of 2 steps in a second half
    assert torch.equal(part[24:26], z[8:10])


def test_restating_is_seeded_per_bar_and_a_longer_piece_starts_the_same():
    z = torch.randn(32 * 4, 2)
    a, b = restate(z, 4, 0.5, seed=7), restate(z, 4, 0.5, seed=7)
    assert torch.equal(a, b)
    copied = [torch.equal(a[4 * k:4 * k + 4], z[4 * (k - 4):4 * k - 12]) for k in range(32) if k % 8 >= 4]
    assert 0 < sum(copied) < len(copied)  # some bars restated, some not
    assert torch.equal(restate(z[:40], 4, 0.5, seed=7), a[:40])
    assert not torch.equal(restate(z, 4, 0.5, seed=8), a)
    with pytest.raises(MusicflowError, match="repeat must be a share"):
        restate(z, 4, 1.5, seed=0)


def test_restated_bars_counts_sounding_bars_equal_to_the_bar_four_before():
    roll = np.zeros((2, 5, 16 * 2))  # 16 bars of 2 steps
    for b in range(16):
        roll[:, b % 4, 2 * b] = 1  # bar b sounds key b % 4: every bar equals the bar four before
    lines = np.arange(0, 32, 2)
    assert restated_bars(roll, lines, 32) == (8, 8)
    roll[:, 4, 2 * 5] = 1  # a second note in bar 6: it differs from bar 2
    roll[:, :, 2 * 14:2 * 15] = 0  # bar 15 silent: not counted
    assert restated_bars(roll, lines, 32) == (6, 7)
    # A 3-step first bar and a 1-step last bar: bars 5 and 16 are not compared with theirs.
    assert restated_bars(roll, np.r_[0, 3, 5:32:2], 32) == (5, 5)


def test_a_genres_default_share_follows_how_often_its_music_restates():
    rates = {"a": 0.1, "b": 0.0, "c": 0.9}
    assert default_share(rates, {"a": 1.0}) == pytest.approx(SCALE * 0.1)
    assert default_share(rates, {"a": 0.5, "b": 0.5}) == pytest.approx(SCALE * 0.05)
    assert default_share(rates, {"c": 1.0}) == 1.0 and default_share({}, {"a": 1.0}) == 0.0


@pytest.fixture
def phrased(tmp_path) -> Composer:
    model = _model(genres=2)
    with torch.no_grad():
        model.from_genre.weight.mul_(10)
    info = {"phrases": {"high": 0.0, "low": 1.0}, "metres": {"high": {"4/4": 1.0}, "low": {"3/4": 1.0}}}
    return Composer.load(save_checkpoint(tmp_path / "k.pt", "keyflow", model, SPEC, ["high", "low"], info))


def test_composing_restates_by_the_genres_share_and_the_latents_keep_it(phrased):
    r = phrased.compose_result("low", seed=3, bars=8)  # share 1: bars 5-8 from bars 1-4
    assert r.time_signature == "3/4" and r.roll.shape[-1] == 8 * 12
    torch.testing.assert_close(r.latents[48:], r.latents[:48], rtol=0, atol=0)
    plain = phrased.compose_result("low", seed=3, bars=8, repeat=0)
    assert torch.equal(plain.latents[:48], r.latents[:48])
    assert not torch.equal(plain.latents[48:], r.latents[48:])
    high = phrased.compose_result("high", seed=3, bars=8).latents  # 4/4 bars, share 0
    assert high.shape[0] == 128 and not torch.equal(high[64:], high[:64])
    np.testing.assert_array_equal(phrased.decode_latents(r.latents, "low", time_signature="3/4").roll, r.roll)
    rolls = phrased.compose_rolls("low", n=2, bars=8, seed=3)  # batched: the same pieces
    np.testing.assert_array_equal(rolls[0][..., :96], r.roll)
    half = phrased.compose_result("low", seed=5, bars=8, repeat=0.5)  # some bars restated, some not
    np.testing.assert_array_equal(phrased.compose_rolls("low", n=1, bars=8, seed=5, repeat=0.5)[0][..., :96],
                                  half.roll)
    restated = [torch.equal(half.latents[12 * b:12 * b + 12], half.latents[12 * b - 48:12 * b - 36])
                for b in range(4, 8)]
    assert restated == [True, True, False, False]  # the draws of seed 5
    with pytest.raises(MusicflowError, match="repeat must be a share"):
        phrased.compose_result("low", seed=3, repeat=-0.1)


def test_the_repeat_option_through_the_cli_and_as_a_subprocess(phrased, tmp_path):
    model, a, b = str(phrased.ck.path), tmp_path / "a.mid", tmp_path / "b.mid"
    args = ["compose", "--model", model, "-g", "low", "--bars", "8", "--seed", "5", "--repeat", "0.5",
            "--quiet"]
    res = CliRunner().invoke(main, [*args, "-o", str(a)])
    assert res.exit_code == 0, res.output
    subprocess.run([sys.executable, "-m", "musicflow", *args, "-o", str(b)], check=True)
    assert a.read_bytes() == b.read_bytes()
    phrased.save(phrased.compose("low", seed=5, bars=8, repeat=0.5), tmp_path / "c.mid")
    assert (tmp_path / "c.mid").read_bytes() == a.read_bytes()
    res = CliRunner().invoke(main, [*args[:-3], "--repeat", "2", "-o", str(a)])
    assert res.exit_code == 2 and "repeat must be a share in [0, 1]" in res.output
    assert "Traceback" not in res.output


def test_only_the_sequence_flow_restates():
    glow = Composer.load("glow")
    with pytest.raises(MusicflowError, match="only the sequence flow"):
        glow.compose_result("celtic", seed=1, bars=1, repeat=0.5)
    with pytest.raises(MusicflowError, match="only the sequence flow"):
        glow.compose_rolls("celtic", n=1, bars=1, seed=1, repeat=0.5)
