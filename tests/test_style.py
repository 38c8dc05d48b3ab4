"""A user's style as a new genre: the new slot leaves the trained flow alone, learning lowers the
held-out bits/dim, the new genre works everywhere a genre does, and bad input is one line."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import make_midi, tiny_keyflow

from musicflow.checkpoint import load_checkpoint, save_checkpoint
from musicflow.cli import main
from musicflow.compose import Composer
from musicflow.compose.style import copying, learn_style
from musicflow.errors import MusicflowError
from musicflow.flows.keyflow import KeyFlow
from musicflow.flows.styles import add_style, remove_style, with_adapter
from musicflow.roll import PianoRollSpec
from musicflow.training.settings import StyleConfig

SPEC = PianoRollSpec(low=60, pitches=12)
FAST = {"steps": 40, "valid_every": 5, "patience": 4, "lr": 0.05}


def _model(seed: int = 0) -> KeyFlow:
    model = tiny_keyflow(seed)
    with torch.no_grad():
        model.from_genre.weight.mul_(10)
    return model


@pytest.fixture
def checkpoint(tmp_path):
    return save_checkpoint(tmp_path / "base.pt", "keyflow", _model(), SPEC, ["high", "low"], {})


def _tune(path, shift: int = 0, bars: int = 8):
    """A user's tune: a rising arpeggio in quavers over a held low note, every bar."""
    notes = []
    for b in range(bars):
        notes.append((60 + shift, 4 * b, 4 * b + 4))
        notes += [(64 + shift + (i % 4) * 2, 4 * b + i / 2, 4 * b + i / 2 + 0.5) for i in range(8)]
    return make_midi(path, notes)


@pytest.fixture
def tunes(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    for i in range(6):
        _tune(folder / f"t{i}.mid", shift=i % 2, bars=6 + i)
    return folder


def test_a_style_slot_leaves_the_built_in_genres_bit_for_bit_and_starts_as_its_copy():
    model = _model()
    rolls = torch.randint(0, 3, (2, 9, 12)).float()
    phase = (torch.arange(9) % 16)[None].expand(2, -1)
    genre = torch.eye(2)[[0, 1]]
    before = model.sequence_log_prob(rolls, genre=genre, phase=phase)
    styled = add_style(model, torch.tensor([0.0, 1.0]))
    after = styled.sequence_log_prob(rolls, genre=torch.cat([genre, torch.zeros(2, 1)], 1), phase=phase)
    assert torch.equal(before, after)
    as_low = styled.sequence_log_prob(rolls, genre=torch.tensor([[0.0, 0.0, 1.0]] * 2), phase=phase)
    low = model.sequence_log_prob(rolls, genre=torch.eye(2)[[1, 1]], phase=phase)
    torch.testing.assert_close(as_low, low)
    with torch.no_grad():
        styled.styles.columns[0].add_(1.0)
    moved = styled.sequence_log_prob(rolls, genre=torch.tensor([[0.0, 0.0, 1.0]] * 2), phase=phase)
    assert (moved - as_low).abs().max() > 1e-3  # the style's own columns are read
    two = add_style(styled, torch.tensor([1.0, 0.0, 0.0]))
    assert torch.equal(two.styles.columns[0][:, 0], styled.styles.columns[0][:, 0])
    assert torch.equal(remove_style(two, 1).styles.columns[0], styled.styles.columns[0])
    torch.testing.assert_close(styled.sequence_log_prob(rolls, genre=genre, phase=phase), before)  # no style
    with pytest.raises(MusicflowError, match="3 columns"):
        styled.sequence_log_prob(rolls, genre=torch.ones(2, 4) / 4, phase=phase)


def test_learning_fits_only_the_new_genre_and_lowers_held_out_bits(checkpoint, tunes):
    ck = load_checkpoint(checkpoint)
    new, report = learn_style_ck(ck, tunes)
    assert new.genres == ["high", "low", "mine"] and report.held_out == "1 of 6 files"
    old = ck.model.state_dict()
    state = new.model.state_dict()
    assert set(state) - set(old) == {"styles.columns.0", "styles.columns.1"}
    assert all(torch.equal(old[k], state[k]) for k in old)  # the flow itself, bit for bit
    start = report.bits_per_dim[report.start]
    assert report.learned_bits_per_dim < 0.9 * start
    info = new.info["styles"]["mine"]
    assert info["files"] == 6 and len(info["content_hash"]) == 16 and info["held_out_bits_per_dim"] < start
    assert 0 <= new.info["phrases"]["mine"] <= 1  # how often the user's bars restate a phrase


def learn_style_ck(ck, tunes, **kw):
    from musicflow.training.style import learn_style as fit

    return fit(ck, [tunes], "mine", StyleConfig(**{**FAST, **kw}))


def test_the_new_genre_composes_mixes_transfers_and_classifies_and_built_ins_are_unchanged(
        checkpoint, tunes, tmp_path):
    c = Composer.load(checkpoint)
    before = c.compose_result("low", seed=3, bars=4)
    result = learn_style(c, [tunes], "mine", StyleConfig(**FAST))
    new = result.composer
    after = new.compose_result("low", seed=3, bars=4)
    assert np.array_equal(before.roll, after.roll)
    a, b = c.save(before.midi, tmp_path / "a.mid"), new.save(after.midi, tmp_path / "b.mid")
    assert a.read_bytes() == b.read_bytes()
    assert new.classify(str(tunes / "t0.mid"))["mine"] > 0.5
    assert new.score(str(tunes / "t0.mid"))["whole"].keys() == {"high", "low", "mine"}
    mine = new.compose_result("mine", seed=3, bars=4)
    mix = new.compose_result({"mine": 0.5, "low": 0.5}, seed=3, bars=4)
    assert not np.array_equal(mine.roll, after.roll) and not np.array_equal(mix.roll, mine.roll)
    assert new.transfer(str(tunes / "t1.mid"), "mine").roll.shape[1] == 12
    assert new.continue_(str(tunes / "t1.mid"), "mine", seed=1, bars=1).roll.shape[1] == 12
    assert 0 <= result.copying["copied_4bar_share"] <= 1 and result.copying["windows"] > 0
    assert new.styles["mine"]["copying"] == result.copying


def test_cli_and_api_agree_for_one_seed_and_styles_add_up(checkpoint, tunes, tmp_path):
    out = tmp_path / "mine.pt"
    runner = CliRunner()
    args = ["--steps", "40", "--lr", "0.05", "--seed", "2", "-q"]
    res = runner.invoke(main, ["style", "learn", str(tunes), "--name", "mine", "--model", str(checkpoint),
                               "-o", str(out), *args])
    assert res.exit_code == 0, res.output
    assert "held-out bits/dim" in res.output and "copying:" in res.output
    api = Composer.load(checkpoint).learn_style([tunes], "mine", steps=40, lr=0.05, seed=2)
    cli = Composer.load(out)
    assert torch.equal(cli.model.styles.columns[0], api.model.styles.columns[0])
    res = runner.invoke(main, ["genres", "--model", str(out)])
    assert res.output.splitlines()[:2] == ["high", "low"] and "from 6 files" in res.output.splitlines()[2]
    # a second style into the same file; the first keeps its weights
    two = [str(tunes / "t0.mid"), str(tunes / "t1.mid")]
    res = runner.invoke(main, ["style", "learn", *two, "--name", "other", "--into", str(out), *args])
    assert res.exit_code == 0, res.output
    both = Composer.load(out)
    assert both.genres == ["high", "low", "mine", "other"]
    assert torch.equal(both.model.styles.columns[0][:, 0], cli.model.styles.columns[0][:, 0])
    assert both.styles["other"]["held_out"] == "the last bars of every piece"
    home = tmp_path / "home"
    (home / "checkpoints").mkdir(parents=True)
    out.rename(home / "checkpoints" / "mine.pt")
    res = runner.invoke(main, ["models"], env={"MUSICFLOW_HOME": str(home)})
    assert "mine.pt: keyflow, 4 genres" in res.output and "learnt styles: mine, other" in res.output


def test_bad_input_is_one_line_and_leaves_no_checkpoint(checkpoint, tunes, tmp_path, monkeypatch):
    runner = CliRunner()
    out = tmp_path / "out.pt"
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")
    cases = [([str(bad)], "mine", "at least 64"),
             ([str(tmp_path / "nowhere")], "mine", "no such file"),
             ([str(tunes)], "low", "built-in genre"),
             ([str(tunes)], "a:b", "without ':'")]
    for paths, name, message in cases:
        res = runner.invoke(main, ["style", "learn", *paths, "--name", name, "--model", str(checkpoint),
                                   "-o", str(out), "-q"])
        assert res.exit_code == 2 and message in res.output, res.output
        assert len(res.output.strip().splitlines()) == 1, res.output
    assert "broken.mid" in runner.invoke(main, ["style", "learn", str(bad), "--name", "x", "--model",
                                                 str(checkpoint), "-q"]).output
    # a corrupt file among good ones is skipped and named
    (tunes / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")
    res = runner.invoke(main, ["style", "learn", str(tunes), "--name", "mine", "--model", str(checkpoint),
                               "-o", str(out), "--steps", "5", "-q"])
    assert res.exit_code == 0 and "skipped" in res.output and "broken.mid" in res.output
    res = runner.invoke(main, ["style", "learn", str(tunes), "--name", "mine", "--into", str(out), "-q"])
    assert res.exit_code == 2 and "--replace" in res.output
    res = runner.invoke(main, ["style", "learn", str(tunes), "--name", "mine", "--into", str(out), "-q",
                               "--replace", "--steps", "5"])
    assert res.exit_code == 0 and Composer.load(out).genres == ["high", "low", "mine"]
    # interrupted: nothing written
    from musicflow.training import style

    def stop(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(style, "_fit", stop)
    fresh = tmp_path / "fresh.pt"
    with pytest.raises(KeyboardInterrupt):
        Composer.load(checkpoint).learn_style([tunes], "again")
    res = runner.invoke(main, ["style", "learn", str(tunes), "--name", "x", "--model", str(checkpoint),
                               "-o", str(fresh), "-q"])
    assert res.exit_code != 0 and not fresh.exists() and not list(tmp_path.glob("fresh*"))


def test_copying_finds_transposed_copies_and_the_longest_copied_run():
    rng = np.random.default_rng(0)
    src = rng.integers(0, 3, (200, 12)) * (rng.random((200, 12)) < 0.3)
    src[:, 10:] = 0
    moved = np.zeros_like(src)
    moved[:, 2:] = src[:, :-2]  # up two keys
    piece = np.concatenate([moved[40:104], rng.integers(0, 3, (64, 12))])
    piece[:, :2] = 0
    stats = copying([piece], [src], bar=16)
    assert stats["windows"] == 5 and stats["copied_4bar_share"] == pytest.approx(0.2)
    assert stats["longest_copied_beats"] == 16
    assert copying([rng.integers(0, 3, (64, 12))], [src])["copied_4bar_share"] == 0.0


def test_style_learn_runs_as_a_subprocess(checkpoint, tunes, tmp_path):
    out = tmp_path / "sub.pt"
    res = subprocess.run([sys.executable, "-m", "musicflow", "style", "learn", str(tunes), "--name", "mine",
                          "--model", str(checkpoint), "-o", str(out), "--steps", "5", "-q"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert out.is_file() and "wrote" in res.stdout


WINDOW_FLOWS = {
    "glow": {"pitches": 12, "steps": 16, "n_genres": 2, "context_steps": 64, "levels": 1, "depth": 1,
             "hidden": 8, "context_channels": 4, "cond_dim": 8, "embed_dim": 4},
    "cnf": {"pitches": 12, "steps": 16, "n_genres": 2, "context_steps": 64, "hidden": 8,
            "context_channels": 4, "cond_dim": 8, "embed_dim": 4},
}


@pytest.mark.parametrize("kind", sorted(WINDOW_FLOWS))
def test_the_window_flows_learn_a_style_through_their_genre_table(kind, tunes, tmp_path):
    """The Glow (guided by its own genre posterior) and the neural ODE take a style as a new row
    of their genre embedding: the rest frozen, held-out bits/dim lower, built-ins unchanged."""
    from musicflow.checkpoint import new_model

    torch.manual_seed(0)
    model = new_model(kind, WINDOW_FLOWS[kind])
    with torch.no_grad():  # away from the zero-initialised layers that ignore the condition
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    c = Composer.load(save_checkpoint(tmp_path / f"{kind}.pt", kind, model, SPEC, ["high", "low"], {}))
    before = c.compose_result("low", seed=3, bars=2)
    new = c.learn_style([tunes], "mine", steps=30, valid_every=5)
    info = new.styles["mine"]
    assert info["held_out_bits_per_dim"] < info["start_bits_per_dim"]
    assert np.array_equal(new.compose_result("low", seed=3, bars=2).roll, before.roll)
    old = c.model.state_dict()
    assert all(torch.equal(v, new.model.state_dict()[k]) for k, v in old.items())
    assert new.model.styles.columns[0].shape == (4, 1)
    assert max(new.classify(str(tunes / "t0.mid")), key=new.classify(str(tunes / "t0.mid")).get) == "mine"
    assert new.compose_result({"mine": 0.5, "low": 0.5}, seed=3, bars=2).roll.shape == before.roll.shape


def test_a_model_without_style_slots_refuses_in_one_line(tunes):
    with pytest.raises(MusicflowError, match="cannot learn a style"):
        Composer.load("vae").learn_style([tunes], "mine")


# -- adapters -------------------------------------------------------------------------------------

def test_an_adapter_starts_as_no_change_vanishes_for_built_ins_and_follows_its_style():
    model = add_style(_model(), torch.tensor([0.0, 1.0]))
    rolls = torch.randint(0, 3, (2, 9, 12)).float()
    phase = (torch.arange(9) % 16)[None].expand(2, -1)
    genres = {"built-in": torch.eye(3)[[0, 1]], "style": torch.eye(3)[[2, 2]],
              "mix": torch.tensor([[0.0, 0.5, 0.5]] * 2)}
    before = {k: model.sequence_log_prob(rolls, genre=g, phase=phase) for k, g in genres.items()}
    adapted = with_adapter(model, 2, torch.Generator().manual_seed(0))
    assert adapted.config.adapter_rank == 2 and adapted.adapters.down[-1].abs().sum() > 0
    for k, g in genres.items():  # up and the key bias start at zero: the same flow
        assert torch.equal(adapted.sequence_log_prob(rolls, genre=g, phase=phase), before[k])
    with torch.no_grad():
        adapted.adapters.up.normal_()
        adapted.adapters.bias.normal_()
    assert torch.equal(adapted.sequence_log_prob(rolls, genre=genres["built-in"], phase=phase),
                       before["built-in"])
    moved = {k: adapted.sequence_log_prob(rolls, genre=g, phase=phase) for k, g in genres.items()}
    assert (moved["style"] - before["style"]).abs().max() > 1e-3
    assert (moved["mix"] - before["mix"]).abs().max() > 1e-3
    # A second style starts without an adapter; removing the first keeps the second's weights.
    two = add_style(adapted, torch.tensor([1.0, 0.0, 0.0]))
    assert torch.equal(two.adapters.up[0], adapted.adapters.up[0]) and two.adapters.up[1].abs().sum() == 0
    assert torch.equal(remove_style(two, 0).adapters.up, two.adapters.up[1:])
    with pytest.raises(MusicflowError, match="rank 2"):
        with_adapter(two, 3)


def test_an_adapter_is_fitted_only_for_the_new_style_and_kept_only_if_it_helps(checkpoint, tunes):
    ck = load_checkpoint(checkpoint)
    new, report = learn_style_ck(ck, tunes, adapter=2)
    info = new.info["styles"]["mine"]
    assert info["embedding_bits_per_dim"] >= info["held_out_bits_per_dim"]
    assert report.learned_bits_per_dim == min(report.learned_bits_per_dim, report.embedding_bits_per_dim)
    old = ck.model.state_dict()
    assert all(torch.equal(old[k], new.model.state_dict()[k]) for k in old)  # the flow, bit for bit
    if info["adapter"]:
        assert new.model.config.adapter_rank == 2 and new.model.adapters.up.abs().sum() > 0
        assert any("adapter" in line for line in report.lines())
    c = Composer.load(checkpoint)
    before = c.compose_result("low", seed=3, bars=4)
    styled = type(c)(new)
    assert np.array_equal(styled.compose_result("low", seed=3, bars=4).roll, before.roll)


def test_an_adapter_for_a_model_that_takes_none_is_a_one_line_error(tunes, tmp_path):
    from musicflow.checkpoint import new_model

    glow = save_checkpoint(tmp_path / "g.pt", "glow", new_model("glow", WINDOW_FLOWS["glow"]), SPEC,
                           ["high", "low"], {})
    res = CliRunner().invoke(main, ["style", "learn", str(tunes), "--name", "mine", "--model", str(glow),
                                    "--adapter", "2", "-q"])
    assert res.exit_code == 2 and "adapter: glow takes no style adapter" in res.output
    res = CliRunner().invoke(main, ["style", "learn", str(tunes), "--name", "mine", "--adapter", "-1"])
    assert res.exit_code == 2 and "adapter must be a rank >= 0" in res.output
