"""Outlines: the register and density plan a Glow can be conditioned on and compose to."""

from __future__ import annotations

import numpy as np
import pretty_midi
import pytest
import torch
from click.testing import CliRunner
from conftest import make_midi
from test_flows import _cond, _gen, _model, _rolls

from musicflow.cli import main
from musicflow.compose import Composer
from musicflow.compose.outlines import draw_outline, outline_for, parse_outline
from musicflow.data.build import build_dataset
from musicflow.data.dataset import Dataset
from musicflow.data.windows import OUTLINE_BARS, WindowSet, outline
from musicflow.errors import MusicflowError
from musicflow.flows.base import Condition
from musicflow.flows.cnf_config import CNFConfig
from musicflow.flows.dequantize import centre
from musicflow.flows.glow import GlowConfig
from musicflow.roll import PianoRollSpec

TINY = {"levels": 1, "depth": 2, "hidden": 8, "context_channels": 4, "cond_dim": 8, "embed_dim": 4,
        "steps": 4, "outline": True}


def test_outline_counts_range_density_and_voices_by_hand():
    r = np.zeros((2, 12, 16), bool)
    r[:, 3, 0] = r[1, 3, 1:8] = True  # one note, rows 3 and 9 together for 8 steps
    r[:, 9, 0] = r[1, 9, 1:8] = True
    r[:, 5, 12] = True  # a one-step note alone
    lo, hi, dens, voices = outline(r, beat=4).tolist()
    assert (lo, hi) == (3, 9)
    assert dens == pytest.approx(3 * 4 / 16)  # three onsets over four beats
    assert voices == pytest.approx((16 + 1) / 9)  # sounding cells per sounding step
    assert outline(np.zeros((2, 12, 16), bool)).tolist() == [6.0, 6.0, 0.0, 0.0]

def test_a_matched_bank_plans_from_stretches_where_the_blocks_plan_another_piece(tmp_path):
    from musicflow.training.windows import model_bank, outline_bank

    # "airs": a 2/4 tune in eighths (256 steps) and a 4/4 one in quarters (640 steps). Eight bars
    # of the 2/4 tune are 64 steps: three whole blocks at 2 onsets per beat, with the 4/4 tune's
    # four at 1 (mean 10/7), where the stretches hold one at 2 and four at 1 (mean 6/5): 19% apart,
    # while most of its blocks are as long as a stretch.
    # "hymns", drawn after it from the same seeded stream: a 4/4 tune, whose blocks are its stretches.
    # "songs": a 2/4 tune in quarters rising a step every 8 notes: as dense in blocks as in
    # stretches, but its blocks are half a stretch, and a stretch spans 3 semitones to a block's 1.
    for genre, pieces in (("airs", ((2, 0.5, 64), (4, 1.0, 160))), ("hymns", ((4, 1.0, 128),)),
                          ("songs", ((2, 1.0, 64),))):
        (tmp_path / genre).mkdir()
        for i, (num, step, beats) in enumerate(pieces):
            pitch = (lambda k: 60 + k // 8) if genre == "songs" else (lambda k: 60 + k % 5)
            notes = [(pitch(k), k * step, (k + 1) * step) for k in range(int(beats / step))]
            midi = make_midi(tmp_path / genre / f"{i}.mid", notes)
            pm = pretty_midi.PrettyMIDI(str(midi))
            pm.time_signature_changes = [pretty_midi.TimeSignature(num, 4, 0.0)]
            pm.write(str(midi))
    ds, _ = build_dataset(str(tmp_path), cache_dir=None, quiet=True, pitches=48)
    for p in ds.pieces:
        p["split"] = "train"
    blocks = WindowSet(ds, "train", 4, 16, grid=4, outlines=True)
    stretches = WindowSet(ds, "train", 4, 16, grid=4, outlines=True, stretches=True)
    plain = outline_bank(blocks, 0, per_genre=2)
    matched = outline_bank(blocks, 0, per_genre=2, stretches=stretches)
    every = {g: blocks.block_outline[blocks.block_labels == i][:, 2] for i, g in enumerate(ds.genres)}
    assert every["airs"].mean() == pytest.approx(10 / 7) and every["hymns"].tolist() == [1.0] * 3
    assert sorted(blocks.block_steps[blocks.block_labels == 0].tolist()) == [64] * 3 + [128] * 4
    airs = outline_bank(blocks, 0, stretches=stretches)["airs"]
    assert sorted(r[2] for r in airs) == pytest.approx([1.0] * 4 + [2.0])  # the five stretches
    assert len(matched["airs"]) == 2 and all(r in airs for r in matched["airs"])
    assert len(plain["hymns"]) == 2 and matched["hymns"] == plain["hymns"]  # the same draw
    assert [r[1] - r[0] for r in plain["songs"]] == [1.0, 1.0] and every["songs"].tolist() == [1.0] * 3
    assert [(r[1] - r[0], r[2]) for r in matched["songs"]] == [(3.0, 1.0)]  # its one stretch
    cfg = CNFConfig(pitches=48, outline=True, outline_bank="matched")
    assert model_bank(ds, blocks, cfg, ds.genres, 0) == outline_bank(blocks, 0, stretches=stretches)
    plain_cfg = CNFConfig(pitches=48, outline=True)
    assert model_bank(ds, blocks, plain_cfg, ds.genres, 0) == outline_bank(blocks, 0)
    with pytest.raises(MusicflowError, match="CNFConfig.outline_bank must be blocks or matched"):
        CNFConfig(outline=True, outline_bank="stretches")
    for bad in ({}, {"outline": True, "outline_stretch": True}):
        with pytest.raises(MusicflowError, match="matched needs outline=true and outline_stretch=false"):
            CNFConfig(outline_bank="matched", **bad)


@pytest.fixture(scope="module")
def registers(tmp_path_factory):
    """One genre whose pieces sit low or high, 16 bars each: only the outline tells them apart."""
    root = tmp_path_factory.mktemp("o")
    (root / "tunes").mkdir()
    for i in range(6):
        base = 40 if i % 2 else 70
        notes = [(base + (b * 3 + i) % 7, b / 2, b / 2 + 0.5) for b in range(128)]
        make_midi(root / "tunes" / f"{i}.mid", notes)
    ds, _ = build_dataset(str(root), cache_dir=None, quiet=True, pitches=48)
    for p in ds.pieces:
        p["split"] = "train"
    return ds.save(root / "d.npz")


def test_windows_carry_their_blocks_outline_and_transposition_moves_it(registers):
    ds = Dataset.load(registers)
    w = WindowSet(ds, "train", 4, 16, grid=4, outlines=True)
    bar = ds.spec.bar_steps()
    # Every piece is 16 bars: two whole-or-last blocks each, of which one is whole.
    assert len(w.block_outline) == len(ds.pieces) and (w.block_labels == 0).all()
    i = int(np.flatnonzero(w.starts - w.piece_starts == OUTLINE_BARS * bar + 4)[0])  # second block
    piece = w.rolls[..., w.piece_starts[i]:].numpy()
    want = outline(piece[..., OUTLINE_BARS * bar:2 * OUTLINE_BARS * bar], ds.spec.steps_per_quarter)
    assert w.outlines(np.array([i]))[0].tolist() == pytest.approx(want.tolist())
    moved = w.outlines(np.array([i]), shift=2)[0]
    assert moved[:2].tolist() == pytest.approx((want[:2] + 2).tolist())
    assert moved[2:].tolist() == pytest.approx(want[2:].tolist())


def test_stretch_outlines_cover_128_steps_whatever_the_metre(tmp_path):
    (tmp_path / "reels").mkdir()
    # 32 bars of 2/4 in eighths (256 steps), an octave higher from bar 9 (step 64) on
    notes = [(60 + b % 5 + 12 * (b >= 32), b / 2, b / 2 + 0.5) for b in range(128)]
    midi = make_midi(tmp_path / "reels" / "a.mid", notes)
    pm = pretty_midi.PrettyMIDI(str(midi))
    pm.time_signature_changes = [pretty_midi.TimeSignature(2, 4, 0.0)]
    pm.write(str(midi))
    ds, _ = build_dataset(str(tmp_path), cache_dir=None, quiet=True, pitches=48)
    ds.pieces[0]["split"] = "train"
    roll = ds.roll(0) > 0
    assert ds.piece_bars(0)[:3].tolist() == [0, 8, 16] and roll.shape[-1] == 256
    for stretches, span in ((False, 8 * 8), (True, 8 * 16)):
        w = WindowSet(ds, "train", 4, 16, grid=4, outlines=True, stretches=stretches)
        # whole blocks but the last: 8 bars of 2/4 (64 steps), or 128-step stretches
        assert len(w.block_outline) == 256 // span - 1
        for at in (0, 60, 64, 124, 128):  # each window reads the outline of the block it starts in
            i = int(np.flatnonzero(w.starts - w.piece_starts == at)[0])
            want = outline(roll[..., at // span * span:(at // span + 1) * span])
            assert w.outlines(np.array([i]))[0].tolist() == pytest.approx(want.tolist())
        low, high = w.outlines(np.flatnonzero(w.starts - w.piece_starts == 64))[0, :2].tolist()
        assert high - low == (4 if span == 64 else 16)  # bar 9 on: one octave, or both octaves
    assert GlowConfig(outline=True, outline_stretch=True).outline_stretch
    with pytest.raises(MusicflowError, match="CNFConfig.outline_stretch must be true or false"):
        CNFConfig(outline_stretch=1)
    for config in (GlowConfig, CNFConfig):  # a stretch option on a model that reads no outline
        with pytest.raises(MusicflowError, match=f"{config.__name__}.outline_stretch needs outline=true"):
            config(outline_stretch=True)


def test_the_glow_sees_the_outline_and_still_inverts_exactly():
    model = _model(outline=True)
    x, cond = _rolls(4), _cond(4)
    plan = torch.tensor([[1.0, 6.0, 1.0, 1.0]]).expand(4, -1)
    with_plan = Condition(cond.genre, cond.context, plan)
    z = model.encode(x, with_plan)
    assert (model.decode(z, with_plan) - centre(x)).abs().max() < 1e-4
    other = Condition(cond.genre, cond.context, torch.tensor([[4.0, 5.0, 3.0, 2.0]]).expand(4, -1))
    lp = [model.log_prob(x, c, generator=_gen(0)) for c in (cond, with_plan, other)]
    assert (lp[0] - lp[1]).abs().min() > 1e-4 and (lp[1] - lp[2]).abs().min() > 1e-4
    # Outline dropout in training swaps in the "no outline" value, row by row.
    model.config.__dict__["outline_dropout"] = 0.5  # frozen dataclass; a test-only change
    torch.manual_seed(0)
    trained = model.train().log_prob(x.repeat(8, 1, 1, 1), Condition(
        cond.genre.repeat(8, 1), None, plan.repeat(8, 1)), generator=_gen(0))
    model.eval()
    plain = model.log_prob(x.repeat(8, 1, 1, 1), Condition(cond.genre.repeat(8, 1), None), generator=_gen(0))
    kept = model.log_prob(x.repeat(8, 1, 1, 1), Condition(cond.genre.repeat(8, 1), None, plan.repeat(8, 1)),
                          generator=_gen(0))
    dropped, used = torch.isclose(trained, plain, atol=1e-4), torch.isclose(trained, kept, atol=1e-4)
    assert (dropped ^ used).all() and dropped.any() and used.any()
    with pytest.raises(MusicflowError, match="outline must have shape"):
        model.log_prob(x, Condition(cond.genre, cond.context, torch.zeros(4, 3)))


@pytest.fixture(scope="module")
def outlined(registers, tmp_path_factory):
    from musicflow.training import TrainConfig, train

    out = tmp_path_factory.mktemp("ck") / "outlined.pt"
    train("glow", registers, out, TrainConfig(steps=300, batch_size=32, valid_every=300, valid_windows=4,
                                             warmup=10, lr=3e-3, transpose=0), TINY, quiet=True)
    return Composer.load(out)


def test_an_outlined_model_learns_the_register_from_the_outline(outlined, registers):
    spec = outlined.spec
    bank = outlined.ck.info["outlines"]["tunes"]
    assert len(bank) == 6 and all(len(o) == 4 for o in bank)
    # Without context only the outline tells a low tune's beat from a high one's: the model must
    # find real beats likelier under their own block's outline than under the other register's.
    w = WindowSet(Dataset.load(registers), "train", 4, 16, grid=4, outlines=True)
    idx = np.arange(0, len(w), 5)
    x, _, g = w.batch(idx)
    own = w.outlines(idx)
    high = own[:, 0] > 25
    swapped = own.clone()
    swapped[high, :2], swapped[~high, :2] = own[~high, :2][0], own[high, :2][0]
    lp = [outlined.model.log_prob(x, Condition(g, None, o), generator=_gen(0)).mean() for o in (own, swapped)]
    assert lp[0] > lp[1] + 10
    low = outlined.compose_result("tunes", bars=2, seed=0, guidance=1, outline={"low": 40, "high": 47})
    assert low.outline[:2] == [40 - spec.low, 47 - spec.low]


def test_pieces_keep_their_drawn_outline(outlined):
    bank = outlined.ck.info["outlines"]["tunes"]
    # The default draws a real block's outline from the seed; decoding its latents gives it back.
    a = outlined.compose_result("tunes", bars=2, seed=3, guidance=1)
    assert a.outline in bank
    assert a.outline == outlined.compose_result("tunes", bars=2, seed=3, guidance=1).outline
    again = outlined.decode_latents(a.latents, "tunes", outline=a.outline)
    assert np.array_equal(again.roll[..., : a.roll.shape[-1]], a.roll)
    assert outlined.compose_result("tunes", bars=2, seed=3, guidance=1, outline=False).outline is None
    rolls = outlined.compose_rolls("tunes", n=2, bars=2, seed=3, guidance=1)
    assert np.array_equal(rolls[0], a.roll)
    guided = outlined.compose_result("tunes", bars=1, seed=3)  # 16 candidates share the outline
    assert guided.outline == a.outline and guided.roll.shape[-1] == outlined.spec.bar_steps()


def test_outline_arguments_fail_clearly(outlined, tmp_path):
    spec = PianoRollSpec(low=36, pitches=48)
    with pytest.raises(MusicflowError, match="outside the model's pitches"):
        outline_for({"low": 20}, np.zeros(4), spec)
    with pytest.raises(MusicflowError, match="is above high"):
        outline_for({"low": 70, "high": 60}, np.zeros(4), spec)
    with pytest.raises(MusicflowError, match="unknown keys"):
        outline_for({"loudness": 3}, np.zeros(4), spec)
    with pytest.raises(MusicflowError, match="KEY=VALUE"):
        parse_outline("lowest=3")
    with pytest.raises(MusicflowError, match="no stored outlines"):
        draw_outline({"a": []}, {"a": 1.0}, 0)
    r = CliRunner().invoke(main, ["compose", "--model", str(outlined.ck.path), "--outline", "low=H9",
                                  "-o", str(tmp_path / "x.mid")])
    assert r.exit_code == 2 and "low='H9'" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(main, ["compose", "--model", str(outlined.ck.path), "-g", "tunes", "--bars", "1",
                                  "--guidance", "1", "--seed", "1", "--outline", "low=C4,high=C5",
                                  "--save-latent", "-o", str(tmp_path / "y.mid"), "--quiet"])
    assert r.exit_code == 0, r.output
    saved = torch.load(tmp_path / "y.latent.pt", weights_only=True)
    assert saved["outline"][:2] == [60 - outlined.spec.low, 72 - outlined.spec.low]


def test_a_continuation_keeps_its_inputs_outline(outlined, tmp_path):
    notes = [(45 + b % 5, b / 2, b / 2 + 0.5) for b in range(80)]  # 10 bars at 120 bpm
    inp = outlined.read(make_midi(tmp_path / "in.mid", notes))
    want = outline(inp.roll[..., -OUTLINE_BARS * outlined.spec.bar_steps():])
    r = outlined.continue_(inp, bars=1, genre="tunes", seed=0, guidance=1)
    assert r.outline == pytest.approx(want.tolist())
    r = outlined.continue_(inp, bars=1, genre="tunes", seed=0, guidance=1, outline={"notes_per_beat": 3})
    assert r.outline[2] == 3 and r.outline[:2] == pytest.approx(want[:2].tolist())


def test_the_default_glow_composes_to_outlines_and_keeps_a_piece_in_the_register_asked_for():
    c = Composer.load("glow")
    assert c.outlines and set(c.outlines) == set(c.genres)
    assert Composer.load("glow-outline").ck.path == c.ck.path  # its former name still loads it
    r = c.compose_result("celtic", bars=2, seed=0, guidance=1, outline={"low": 67, "high": 79})
    pitches = np.nonzero(r.roll[1])[0] + c.spec.low
    assert len(pitches) and pitches.min() >= 67 - 2 and pitches.max() <= 79 + 2
    with pytest.raises(MusicflowError, match="not trained with outlines"):
        Composer.load("glow-no-outline").compose_result("celtic", bars=1, seed=0, guidance=1,
                                                        outline={"low": 60})


def test_a_users_piece_is_read_with_its_own_blocks_outlines(outlined, tmp_path):
    notes = [(72 + b % 5, b / 2, b / 2 + 0.5) for b in range(80)]
    inp = outlined.read(make_midi(tmp_path / "in.mid", notes))
    plans = outlined.block_outlines(inp.roll)
    xs, ctx = outlined.windows(inp.roll)
    assert plans.shape == (len(xs), 4)
    assert plans[0].tolist() == pytest.approx(outline(inp.roll[..., :OUTLINE_BARS * 16]).tolist())
    # Encoding and decoding both read the piece with its outlines: the same genre gives it back.
    back = outlined.transfer(inp, to="tunes", source="tunes")
    assert np.array_equal(back.roll, inp.roll)
    vec = torch.ones(1, 1)
    without = outlined.model.encode(xs, outlined.condition(vec, ctx))  # the same contexts, no outline
    assert not torch.allclose(outlined.encode(inp.roll, vec, plans), without)
    # The result carries each window's outline, and decoding its latents alone with them is exact.
    assert np.allclose(back.outline, plans.numpy())
    again = outlined.decode_latents(back.latents, "tunes", outline=back.outline)
    assert np.array_equal(again.roll[..., :inp.roll.shape[-1]], inp.roll)
    with pytest.raises(MusicflowError, match="four per window"):
        outlined.decode_latents(back.latents, "tunes", outline=back.outline[:-1])


def test_an_interpolation_moves_the_outlines_and_keeps_both_ends_exact(outlined, tmp_path):
    high = outlined.read(make_midi(tmp_path / "a.mid", [(72 + b % 5, b / 2, b / 2 + 0.5) for b in range(64)]))
    low = outlined.read(make_midi(tmp_path / "b.mid", [(48 + b % 3, b / 2, b / 2 + 0.5) for b in range(64)]))
    path = outlined.interpolate(high, low, steps=3, genre="tunes")
    pa, pb = outlined.block_outlines(high.roll), outlined.block_outlines(low.roll)
    assert np.allclose(path[0].outline, pa.numpy()) and np.allclose(path[2].outline, pb.numpy())
    assert np.allclose(path[1].outline, ((pa + pb) / 2).numpy()) and not np.allclose(pa.numpy(), pb.numpy())
    assert np.array_equal(path[0].roll[..., :high.roll.shape[-1]], high.roll)
    assert np.array_equal(path[2].roll[..., :low.roll.shape[-1]], low.roll)


def test_musicflow_models_names_the_default_and_says_which_compose_to_outlines():
    r = CliRunner().invoke(main, ["models"])
    assert r.exit_code == 0, r.output
    lines = {line.split(":")[0]: line for line in r.output.splitlines()}
    assert "composes to outlines" in lines["glow-music21.pt (--model glow)"]
    assert "outlines" not in lines["keyflow-music21.pt (the default)"]
    assert "outlines" not in lines["glow-no-outline-music21.pt (--model glow-no-outline)"]


class _Chords(torch.nn.Module):
    """A stand-in flow whose every beat strikes rows 2 and 5 together and holds them, row 5 the
    more confident: what a flow that puts a stray note under a tune does at its worst."""

    native_guidance = True

    class config:
        context_steps = 8
        one_voice = True

    def decode(self, z, cond, **kw):
        v = torch.zeros(z.shape[0], 2, 8, 4)
        v[:, 1, 2], v[:, 1, 5] = 0.8, 0.8
        v[:, 0, 2, 0], v[:, 0, 5, 0] = 0.7, 0.9
        return v


def test_a_plan_of_one_voice_keeps_one_line_and_a_plan_of_two_keeps_both():
    from musicflow.sampling import generate

    spec, z, g = PianoRollSpec(pitches=8), torch.zeros(1, 3, 64), torch.ones(1, 1)
    for voices, rows in ((1.0, [5]), (2.0, [2, 5])):
        plan = torch.tensor([[0.0, 7.0, 1.0, voices]])
        roll = generate(_Chords(), z, g, spec, outline=plan)[0]
        assert np.flatnonzero(roll[1].any(-1)).tolist() == rows
        assert roll[0].sum() == 3 * len(rows)  # a note struck every beat in each row kept
    # No plan, or a model that does not ask for it: the model's own cells.
    assert np.flatnonzero(generate(_Chords(), z, g, spec)[0, 1].any(-1)).tolist() == [2, 5]
    free = _Chords()
    free.config = type("config", (), {"context_steps": 8, "one_voice": False})
    roll = generate(free, z, g, spec, outline=torch.tensor([[0.0, 7.0, 1.0, 1.0]]))[0]
    assert np.flatnonzero(roll[1].any(-1)).tolist() == [2, 5]
    # A line held into the chunk goes on while the chunk sustains it more strongly than it strikes
    # anything new; a stronger new onset takes the line over.
    from musicflow.lines import one_line

    c = np.zeros((1, 2, 8, 4), np.float32)
    c[0, 1, 2], c[0, 1, 5, 2:], c[0, 0, 5, 2] = 1, 1, 1  # row 2 held, row 5 struck at step 2
    for strike, rows in ((0.9, ([1, 1, 0, 0], [0, 0, 1, 1])), (0.5, ([1, 1, 1, 1], [0, 0, 0, 0]))):
        v = c * 0.7
        v[0, 0, 5, 2] = strike
        out = one_line(c, v, np.eye(8, dtype=bool)[[2]])[0]
        assert (out[1, 2].tolist(), out[1, 5].tolist()) == rows


class _Unstruck(_Chords):
    """A stand-in flow that sustains row 3 on steps 0, 2 and 3 of every beat and never strikes it."""

    def decode(self, z, cond, **kw):
        v = torch.zeros(z.shape[0], 2, 8, 4)
        v[:, 1, 3, 0], v[:, 1, 3, 2:] = 0.8, 0.8
        return v


def test_a_tune_sounds_a_sustain_the_model_never_struck_and_a_plan_of_two_drops_it():
    from musicflow.sampling import generate

    spec, z, g = PianoRollSpec(pitches=8), torch.zeros(1, 3, 64), torch.ones(1, 1)
    tune = generate(_Unstruck(), z, g, spec, outline=torch.tensor([[0.0, 7.0, 1.0, 1.0]]))[0]
    assert tune[1, 3].tolist() == [1] * 12  # each one-step rest then bridged (bridge_rests)
    # Each sound after a rest is a note of its own; a sound held over from the beat before goes on.
    assert tune[0, 3].tolist() == [1, 0, 1, 0] + [0, 0, 1, 0] * 2
    assert tune.sum() == 16
    chords = generate(_Unstruck(), z, g, spec, outline=torch.tensor([[0.0, 7.0, 1.0, 2.0]]))[0]
    assert not chords.any()


class _Falls(_Chords):
    """A stand-in flow that strikes row 4 and holds it through the windows in ``sounding``, and
    falls silent in the others."""

    sounding = (0,)

    def decode(self, z, cond, **kw):
        v = torch.zeros(z.shape[0], 2, 8, 4)
        on = torch.isin(z[:, 0], torch.tensor(self.sounding, dtype=z.dtype))
        v[on, 1, 4], v[on, 0, 4, 0] = 0.9, 0.9
        return v


class _FallsTwice(_Falls):
    sounding = (0, 2)


def test_a_tune_holds_its_note_over_one_silent_beat_and_then_rests():
    from musicflow.sampling import generate

    spec, g, tune_plan = PianoRollSpec(pitches=8), torch.ones(1, 1), torch.tensor([[0.0, 7.0, 1.0, 1.0]])
    z = torch.arange(4.0)[None, :, None].expand(1, 4, 64)  # each window's latent holds its index
    tune = generate(_Falls(), z, g, spec, outline=tune_plan)[0]
    assert tune[1, 4].tolist() == [1] * 8 + [0] * 8  # one beat held over, then a rest
    assert tune[0].sum() == 1 and tune[1].sum() == 8  # held, not struck again
    # One window in a row: after a held-over window the note must sound again to be held again.
    twice = generate(_FallsTwice(), z, g, spec, outline=tune_plan)[0]
    assert twice[1, 4].tolist() == [1] * 16 and twice[0, 4].tolist() == ([1] + [0] * 7) * 2
    chords = generate(_Falls(), z, g, spec, outline=torch.tensor([[0.0, 7.0, 1.0, 2.0]]))[0]
    assert chords[1, 4].tolist() == [1] * 4 + [0] * 12  # a plan of two voices: the model's own rest
    # A window planned with two voices between them (the model's own cells) starts the count anew.
    one, two = [0.0, 7.0, 1.0, 1.0], [0.0, 7.0, 1.0, 2.0]
    plans = torch.tensor([[one, one, two, one]])
    assert generate(_FallsTwice(), z, g, spec, outline=plans)[0, 1, 4].tolist() == [1] * 16


class _Breathes(_Chords):
    """A stand-in flow that strikes row 4 on every beat and holds it for the steps its window's
    latent names (2, 1, 4: rests of two steps, then three)."""

    def decode(self, z, cond, **kw):
        v = torch.zeros(z.shape[0], 2, 8, 4)
        for b, held in enumerate(z[:, 0].long().tolist()):
            v[b, 1, 4, :held], v[b, 0, 4, 0] = 0.9, 0.9
        return v


def test_a_tune_sounds_on_through_a_rest_of_an_eighth_and_keeps_longer_ones():
    from musicflow.sampling import generate

    spec, g, tune_plan = PianoRollSpec(pitches=8), torch.ones(1, 1), torch.tensor([[0.0, 7.0, 1.0, 1.0]])
    z = torch.tensor([2.0, 1.0, 4.0])[None, :, None].expand(1, 3, 64)
    tune = generate(_Breathes(), z, g, spec, outline=tune_plan)[0]
    assert tune[1, 4].tolist() == [1, 1, 1, 1] + [1, 0, 0, 0] + [1, 1, 1, 1]
    assert tune[0, 4].tolist() == [1, 0, 0, 0] * 3  # bridged, not struck again
    chords = generate(_Breathes(), z, g, spec, outline=torch.tensor([[0.0, 7.0, 1.0, 2.0]]))[0]
    assert chords[1, 4].tolist() == [1, 1, 0, 0] + [1, 0, 0, 0] + [1, 1, 1, 1]  # two voices: kept
    one, two = [0.0, 7.0, 1.0, 1.0], [0.0, 7.0, 1.0, 2.0]
    mixed = generate(_Breathes(), z, g, spec, outline=torch.tensor([[one, two, one]]))[0]
    assert mixed[1, 4].tolist() == chords[1, 4].tolist()  # not one line throughout: kept
    # A continuation leaves its prefix alone: the rest on the prefix's last step stays.
    prefix = np.zeros((1, 2, 8, 4), np.float32)
    prefix[0, :, 4, 0], prefix[0, 1, 4, 1:3] = 1, 1
    cont = generate(_Breathes(), z[:, :1], g, spec, outline=tune_plan, prefix=prefix)[0]
    assert cont[1, 4].tolist() == [1, 1, 1, 0] + [1, 1, 0, 0]


def test_the_shipped_neural_ode_keeps_a_tune_planned_with_one_voice_to_one_line():
    c = Composer.load("cnf")
    assert c.model.config.one_voice
    for genre in ("german-folk", "celtic"):
        r = c.compose_result(genre, bars=2, seed=0, outline={"voices": 1})
        assert r.roll[1].any() and (r.roll[1].sum(0) <= 1).all()
