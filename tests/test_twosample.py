"""The two-sample test on synthetic pieces: chance on halves of one set, near 1 against noise and
against an octave shift, folds that keep pieces whole, reproducible reports, one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from musicflow.errors import MusicflowError
from musicflow.evaluate.twosample import (
    FEATURE_NAMES,
    assign_folds,
    real_halves,
    two_sample_test,
    window_features,
)

LOW, PITCHES = 36, 48
_SCALE = np.array([0, 2, 4, 5, 7, 9, 11])
FAST = {"resamples": 200, "epochs": 5}


def synthetic_piece(rng: np.random.Generator, bars: int = 8) -> np.ndarray:
    """A piece of 1-3 voices, each a random walk on the C major scale within its own register (a
    tenth, an octave above the voice below) with notes of 2, 4 or 8 steps and some rests; all lie in
    the lowest 36 pitches, so an octave up still fits."""
    steps = bars * 16
    roll = np.zeros((2, PITCHES, steps), np.float32)
    for v in range(rng.integers(1, 4)):
        degree = int(rng.integers(0, 10)) + 7 * v
        t = 0
        while t < steps:
            length = int(rng.choice([2, 4, 8]))
            degree = int(np.clip(degree + rng.integers(-2, 3), 7 * v, 7 * v + 9))
            pitch = 12 * (degree // 7) + _SCALE[degree % 7]
            if rng.random() > 0.1:
                roll[0, pitch, t] = 1
                roll[1, pitch, t:t + length] = 1
            t += length
    return roll


@pytest.fixture(scope="module")
def pieces() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [synthetic_piece(rng) for _ in range(40)]


@pytest.mark.parametrize("features", ["metrics", "cnn"])
def test_halves_of_one_set_are_at_chance(pieces, features):
    a, b = real_halves(pieces, seed=0)
    out = two_sample_test(a, b, LOW, features=features, **FAST)
    assert 0.35 <= out["accuracy"] <= 0.65
    assert out["pieces"] == {"a": 20, "b": 20} and out["windows"] == {"a": 40, "b": 40}


@pytest.mark.parametrize("features", ["metrics", "cnn"])
def test_noise_is_told_apart(pieces, features):
    rng = np.random.default_rng(1)
    noise = [(rng.random(p.shape) < 0.1).astype(np.float32) for p in pieces]
    out = two_sample_test(pieces, noise, LOW, features=features, **FAST)
    assert out["accuracy"] >= 0.9


@pytest.mark.parametrize("features", ["metrics", "cnn"])
def test_an_octave_shift_is_told_apart(pieces, features):
    up = [np.zeros_like(p) for p in pieces]
    for u, p in zip(up, pieces):
        u[:, 12:] = p[:, :-12]
    out = two_sample_test(pieces, up, LOW, features=features, **FAST)
    assert out["accuracy"] >= 0.9
    if features == "metrics":
        name, d = out["giveaways"][0]  # b sits higher: a register feature, and negative
        assert name in ("mean_pitch", "low_pitch", "high_pitch") and d < 0


def test_folds_keep_pieces_whole_and_hold_both_sides():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], [30, 45])
    groups = np.r_[np.sort(rng.integers(0, 9, 30)), np.sort(rng.integers(0, 12, 45))]
    fold = assign_folds(labels, groups, 5, seed=3)
    for side in (0, 1):
        for g in np.unique(groups[labels == side]):
            assert len(set(fold[(labels == side) & (groups == g)])) == 1
        assert set(fold[labels == side]) == set(range(5))
    assert np.array_equal(fold, assign_folds(labels, groups, 5, seed=3))


def test_report_is_reproducible_and_its_interval_holds_the_accuracy(pieces):
    a, b = pieces[:20], [p[:, :, ::-1].copy() for p in pieces[20:]]  # b runs backwards in time
    reports, state = {}, torch.get_rng_state()
    for features in ("metrics", "cnn"):
        out = reports[features] = two_sample_test(a, b, LOW, features=features, seed=4, **FAST)
        assert out == two_sample_test(a, b, LOW, features=features, seed=4, **FAST)
        lo, hi = out["interval"]
        assert 0.0 <= lo <= out["accuracy"] <= hi <= 1.0
    assert torch.equal(state, torch.get_rng_state())  # the caller's random state is kept
    assert reports["cnn"]["giveaways"] is None
    out = reports["metrics"]
    names = [name for name, _ in out["giveaways"]]
    assert len(names) == 8 and set(names) <= set(FEATURE_NAMES)
    assert abs(out["giveaways"][0][1]) >= abs(out["giveaways"][-1][1])


def test_features_are_finite_on_silence_and_noise():
    silent = window_features(np.zeros((2, PITCHES, 64), np.float32), LOW)
    noise = window_features((np.random.default_rng(0).random((2, PITCHES, 64)) < 0.5).astype(np.float32), LOW)
    assert silent.shape == noise.shape == (len(FEATURE_NAMES),)
    assert np.isfinite(silent).all() and np.isfinite(noise).all()


def test_short_pieces_are_skipped(pieces):
    short = [p[:, :, :32] for p in pieces[:3]]
    out = two_sample_test(pieces[:20] + short, pieces[20:], LOW, resamples=10)
    assert out["skipped"] == {"a": 3, "b": 0} and out["pieces"]["a"] == 20


@pytest.mark.parametrize(
    "a, b, kwargs, named",
    [
        ("few", "ok", {}, "a_rolls"),
        ("ok", "short", {}, "b_rolls"),
        ("ok", "flat", {}, "b_rolls[0]"),
        ("ok", "narrow", {}, "b_rolls[0]"),
        ("ok", "ok", {"folds": 1}, "folds"),
        ("ok", "ok", {"features": "pixels"}, "features"),
        ("ok", "ok", {"window": 0}, "window"),
    ],
)
def test_bad_input_names_the_parameter(pieces, a, b, kwargs, named):
    sets = {
        "ok": pieces[:6],
        "few": pieces[:4],
        "short": [p[:, :, :40] for p in pieces[:6]],
        "flat": [p[0] for p in pieces[:6]],
        "narrow": [p[:, :40] for p in pieces[:6]],
    }
    with pytest.raises(MusicflowError, match=named.replace("[", r"\[")) as err:
        two_sample_test(sets[a], sets[b], LOW, **{"folds": 5, **kwargs})
    assert "\n" not in str(err.value)


def test_excerpts_of_one_piece_count_as_one_piece():
    pieces = [synthetic_piece(np.random.default_rng(i)) for i in range(12)]
    excerpts = [p[..., :64] for p in pieces] + [p[..., 64:] for p in pieces]
    out = two_sample_test(pieces, excerpts, low=LOW, folds=3, resamples=50,
                          b_groups=list(range(12)) * 2)
    assert out["pieces"]["b"] == 12 and out["windows"]["b"] == 24
    with pytest.raises(MusicflowError, match="b_rolls: 3 group labels for 24 pieces"):
        two_sample_test(pieces, excerpts, low=LOW, folds=3, b_groups=[0, 1, 2])
