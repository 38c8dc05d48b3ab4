"""The sequence flow on a corpus: three key states, genre and metre conditioning, its training on
whole pieces, and the Composer that composes with it."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys

import numpy as np
import pretty_midi
import pytest
import torch
from click.testing import CliRunner
from conftest import tiny_keyflow

from musicflow.checkpoint import load_checkpoint, save_checkpoint
from musicflow.cli import main
from musicflow.compose import Composer
from musicflow.compose.pieces import PieceComposer, to_normal, to_uniform
from musicflow.data.dataset import Dataset
from musicflow.errors import MusicflowError
from musicflow.flows import keydecode
from musicflow.flows.base import Condition
from musicflow.flows.keydecode import AHEAD
from musicflow.flows.keyflow import KeyFlow, KeyFlowConfig
from musicflow.roll import PianoRollSpec, key_states, states_roll
from musicflow.training.pieces import train_pieces
from musicflow.training.settings import PieceTrainConfig

SPEC = PianoRollSpec(low=60, pitches=12)


def _model(seed: int = 0, **over) -> KeyFlow:
    return tiny_keyflow(seed, **{"genres": 3, **over})


def _genre(n: int, g: int = 0, genres: int = 3) -> torch.Tensor:
    return torch.eye(genres)[[g] * n]


def _phase(n: int, t: int) -> torch.Tensor:
    return (torch.arange(t) % 16)[None].expand(n, -1)


def test_logits_of_a_key_read_only_the_keys_below_it():
    model = _model()
    x = torch.randint(0, 3, (1, 12)).float()
    state, past, g = torch.randn(1, 8), torch.randint(0, 2, (1, 4, 12)).float(), _genre(1)
    base = model.logits(x, state, past, g)
    for j in (0, 5, 11):
        y = x.clone()
        y[0, j] = (y[0, j] + 1) % 3
        diff = (model.logits(y, state, past, g) - base).abs()[0].amax(-1)
        assert diff[: j + 1].max() == 0 and (j == 11 or diff[j + 1:].max() > 0)


def test_frame_probabilities_sum_to_one_under_every_genre_and_phase():
    model = _model(keys=3, reach=2)
    frames = torch.tensor(list(itertools.product(range(3), repeat=3))).float()  # all 27 frames
    past = torch.tensor([[2.0, 0.0, 1.0], [1.0, 2.0, 0.0]])
    rolls = torch.cat([past.expand(27, -1, -1), frames[:, None]], dim=1)
    for g, start in ((0, 0), (2, 7)):
        phase = (start + torch.arange(3))[None].expand(27, -1)
        lp = model.sequence_log_prob(rolls, genre=_genre(27, g), phase=phase)
        torch.testing.assert_close(lp[:, -1].exp().sum(), torch.tensor(1.0))


def test_genre_and_metre_change_the_distribution():
    model = _model()
    rolls = torch.randint(0, 3, (1, 6, 12)).float()
    a = model.sequence_log_prob(rolls, genre=_genre(1, 0), phase=_phase(1, 6))
    assert (a - model.sequence_log_prob(rolls, genre=_genre(1, 1), phase=_phase(1, 6))).abs().max() > 1e-3
    assert (a - model.sequence_log_prob(rolls, genre=_genre(1, 0), phase=_phase(1, 6) + 3)).abs().max() > 1e-3


def test_encode_log_determinant_matches_the_autograd_jacobian_and_decode_inverts_it():
    model = _model()
    g, ph = _genre(2, 1), _phase(2, 4)
    z = torch.rand(2, 4, 12, generator=torch.Generator().manual_seed(3))
    y = model.decode_frames(z, genre=g, phase=ph)
    assert y.min() >= 0 and y.max() < 3 and set(y.floor().unique().tolist()) <= {0.0, 1.0, 2.0}
    z2, logdet = model.encode_frames(y, g, ph)
    torch.testing.assert_close(z2, z, atol=1e-5, rtol=0)
    # The Jacobian of one frame's map (the past fixed by floor(y)) is triangular; its log-det is
    # the frame's log-probability.
    frame = y[:1, :1]
    jac = torch.autograd.functional.jacobian(lambda v: model.encode_frames(v, g[:1], ph[:1, :1])[0], frame)
    jac = jac.reshape(12, 12)
    assert torch.count_nonzero(torch.triu(jac, 1)) == 0
    torch.testing.assert_close(torch.slogdet(jac)[1], logdet[0, 0], atol=1e-4, rtol=0)
    exact = model.sequence_log_prob(y.floor(), genre=g, phase=ph)
    torch.testing.assert_close(logdet, exact, atol=1e-5, rtol=0)


def test_continuing_a_context_decodes_as_the_whole_sequence_encodes():
    model = _model()
    g, ph = _genre(2, 2), _phase(2, 7)
    ctx = model.decode_frames(torch.rand(2, 4, 12), genre=g, phase=ph[:, :4]).floor()
    z = torch.rand(2, 3, 12)
    y = model.decode_frames(z, context=ctx, genre=g, phase=ph)
    z2, _ = model.encode_frames(torch.cat([ctx, y], dim=1), g, ph)
    torch.testing.assert_close(z2[:, 4:], z, atol=1e-5, rtol=0)


def test_a_corpus_flow_needs_its_conditions():
    model = _model()
    rolls = torch.zeros(1, 3, 12)
    with pytest.raises(MusicflowError, match="genre"):
        model.sequence_log_prob(rolls, phase=_phase(1, 3))
    with pytest.raises(MusicflowError, match="phase"):
        model.sequence_log_prob(rolls, genre=_genre(1))
    with pytest.raises(MusicflowError, match=r"\(B, 2, 12, T\)"):
        model.log_prob(torch.zeros(1, 1, 12, 4), Condition(_genre(1)))


def test_key_states_round_trip_a_canonical_roll():
    rng = np.random.default_rng(0)
    sustain = (rng.random((12, 40)) < 0.3).astype(np.float32)
    onset = sustain * (rng.random((12, 40)) < 0.5)
    onset[:, 0] = sustain[:, 0]  # a note sounding from the first step starts there
    roll = np.stack([onset, sustain])
    np.testing.assert_array_equal(states_roll(key_states(roll)), roll)


# -- training on a corpus ---------------------------------------------------------------------

def _corpus(path) -> str:
    rng = np.random.default_rng(0)
    records = []
    for i in range(12):
        genre = ("low", "high")[i % 2]
        base = 62 if genre == "low" else 68
        notes = [[base + int(rng.integers(0, 4)), 4 * b, 4 * b + 4, 80] for b in range(24)]
        records.append({"id": f"p{i}", "genre": genre, "split": "valid" if i >= 10 else "train",
                        "title": f"P{i}", "notes": notes, "bars": list(range(0, 96, 16)), "tonic": 0})
    ds = Dataset.from_records(records, SPEC)
    ds.save(path)
    return str(path)


SMALL = {"rnn_hidden": 16, "channels": 8, "reach": 4, "dropout": 0.0}


def test_training_lowers_the_loss_and_keeps_the_best_validation(tmp_path):
    data = _corpus(tmp_path / "c.npz")
    cfg = PieceTrainConfig(steps=40, batch_size=8, crop=32, valid_every=20, warmup=5, lr=1e-2,
                           valid_windows=4)
    record = train_pieces(data, tmp_path / "k.pt", cfg, SMALL, quiet=True)
    first, last = record["history"][0]["valid_nats"], record["history"][-1]["valid_nats"]
    assert last < first and record["valid_nats_per_step"] == min(h["valid_nats"] for h in record["history"])
    ck = load_checkpoint(tmp_path / "k.pt")
    assert ck.kind == "keyflow" and ck.genres == ["high", "low"] and ck.model.config.states == 3
    assert set(ck.info["phrases"]) == {"high", "low"}  # how often each genre restates a bar
    assert not (tmp_path / "k.pt.resume").exists()


def test_resume_reproduces_an_uninterrupted_run(tmp_path):
    data = _corpus(tmp_path / "c.npz")
    over = {**SMALL, "dropout": 0.2}  # dropout draws too must continue where they stopped
    run = {"steps": 12, "batch_size": 4, "crop": 32, "valid_every": 6, "warmup": 2, "valid_windows": 2}
    cfg = PieceTrainConfig(**run)
    train_pieces(data, tmp_path / "whole.pt", cfg, over, quiet=True)
    half = PieceTrainConfig(**run, minutes=0)
    train_pieces(data, tmp_path / "cut.pt", half, over, quiet=True)  # stops after its first step
    assert (tmp_path / "cut.pt.resume").exists()
    train_pieces(data, tmp_path / "cut.pt", cfg, over, quiet=True, resume=True)
    a, b = load_checkpoint(tmp_path / "whole.pt"), load_checkpoint(tmp_path / "cut.pt")
    assert a.info["history"][-1] == {**b.info["history"][-1], "elapsed_s": a.info["history"][-1]["elapsed_s"]}
    for k, v in a.model.state_dict().items():
        torch.testing.assert_close(b.model.state_dict()[k], v)


def test_train_command_trains_the_sequence_flow(tmp_path):
    data = _corpus(tmp_path / "c.npz")
    out = tmp_path / "k.pt"
    res = CliRunner().invoke(main, ["train", "--model", "keyflow", "--data", data, "--out", str(out),
                                    "--steps", "4", "--valid-every", "2", "--quiet",
                                    "--set", "rnn_hidden=8", "--set", "channels=4"])
    assert res.exit_code == 0, res.output
    assert "nats/step" in res.output and load_checkpoint(out).info["train_config"]["steps"] == 4
    res = CliRunner().invoke(main, ["train", "--model", "keyflow", "--data", data, "--out", str(out),
                                    "--init", str(out)])
    assert res.exit_code != 0 and "--init applies to the window models" in res.output


def test_two_processes_train_the_sequence_flow_with_ddp(tmp_path):
    """Under torchrun the sequence flow trains with DistributedDataParallel (gloo on CPU), each
    process drawing its own batches; process 0 writes the checkpoint."""
    import os
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    data, out = _corpus(tmp_path / "c.npz"), tmp_path / "ddp.pt"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
           "-m", "musicflow", "train", "--model", "keyflow", "--data", data, "--out", str(out),
           "--steps", "3", "--batch-size", "4", "--valid-every", "3", "--device", "cpu", "--quiet",
           "--set", "rnn_hidden=8", "--set", "channels=4"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stderr[-2000:]
    ck = load_checkpoint(out)
    assert ck.info["world_size"] == 2 and ck.info["ddp_backend"] == "gloo" and ck.info["step"] == 3


# -- composing ----------------------------------------------------------------------------------

@pytest.fixture
def composer(tmp_path) -> PieceComposer:
    path = tmp_path / "keyflow.pt"
    model = _model(genres=2)
    with torch.no_grad():
        model.from_genre.weight.mul_(10)  # genres far apart, as a trained model's are
    save_checkpoint(path, "keyflow", model, SPEC, ["high", "low"], {})
    c = Composer.load(path)
    assert isinstance(c, PieceComposer)
    return c


@pytest.mark.parametrize("experts,prefix", [(1, False), (1, True), (2, True)])
def test_decoding_steps_ahead_gives_the_step_by_step_states(experts, prefix):
    """Speculative passes (the next frames guessed to hold every sounding key, kept up to the first
    wrong guess) against the flow's own key-by-key decoding and against one step at a time, for one
    genre and a product of two, from the start and after a prefix, alone and in a batch."""
    model = _model()
    t, k, t0 = 40, 12, 5 if prefix else 0
    gen = torch.Generator().manual_seed(3)
    u = torch.rand(3, t, k, generator=gen)
    u[:, 12:30] = 0.0  # silence, whatever came before: the guesses come true there
    genres = torch.eye(3)[1:1 + experts]
    share = None if experts == 1 else torch.tensor([[0.3, 0.7]])
    pre = torch.randint(0, 3, (1, t0, k), generator=gen).float() if prefix else None
    phase = _phase(1, t0 + t)
    kept = []
    ahead = model.decode_steps(u[:1], genres, share, phase, pre, progress=kept.append)
    assert torch.equal(ahead, model.decode_steps(u[:1], genres, share, phase, pre, ahead=1))
    assert sum(kept) == t and min(kept) == 1 and max(kept) == AHEAD  # both kinds of pass ran
    assert ahead.shape == (1, t, k) and (ahead[0, :12] > 0).any()
    if experts == 1:
        keys = model.decode_frames(u[:1], pre, genre=genres, phase=phase).floor()
        assert torch.equal(ahead, keys)
        batch = model.decode_steps(u, genres, share, phase.expand(3, -1),
                                   None if pre is None else pre.expand(3, -1, -1))
        assert torch.equal(batch[:1], ahead)


def test_steps_ahead_decode_held_chords_back_with_the_lstm_caught_up_and_in_mixed_batches(monkeypatch):
    """A roll of struck-then-held chords, encoded, decodes back ahead (the guesses come true for the
    held steps, so windows are kept long and the LSTM's unread inputs are caught up); a batch under
    a product of two genres with a different share per piece decodes as each piece alone."""
    monkeypatch.setattr(keydecode, "CATCH_UP", 3)
    model = _model()
    t, k = 36, 12
    gen = torch.Generator().manual_seed(5)
    roll = torch.zeros(1, t, k)
    for start in range(0, t, 6):
        keys = torch.randperm(k, generator=gen)[:3]
        roll[0, start, keys], roll[0, start + 1:start + 6, keys] = 2.0, 1.0
    genre, phase = torch.eye(3)[1:2], _phase(1, t)
    edge = torch.where(torch.rand(roll.shape, generator=gen) < 0.5, 0.001, 0.999)  # near bin edges:
    z, _ = model.encode_frames(roll + edge, genre, phase)  # a slightly wrong LSTM state shows
    kept = []
    assert torch.equal(model.decode_steps(z, genre, None, phase, progress=kept.append), roll)
    assert torch.equal(model.decode_steps(z, genre, None, phase, ahead=1), roll)
    assert max(kept) >= 6 and sum(kept) == t

    experts, share = torch.eye(3)[:2], torch.tensor([[0.2, 0.8], [0.5, 0.5], [0.9, 0.1]])
    u = torch.cat([z, torch.rand(2, t, k, generator=gen)])
    batch = model.decode_steps(u, experts, share, phase.expand(3, -1))
    for i in range(3):
        assert torch.equal(batch[i:i + 1], model.decode_steps(u[i:i + 1], experts, share[i:i + 1], phase))
    assert not torch.equal(batch[1], batch[2])
    with pytest.raises(MusicflowError, match="ahead"):
        model.decode_steps(z, genre, None, phase, ahead=0)
    assert model.decode_steps(z[:, :0], genre, None, phase).shape == (1, 0, k)


def test_normal_latents_map_to_the_base_and_back():
    z = torch.randn(50, 12)
    u = to_uniform(z)
    assert u.min() >= 0 and u.max() < 1
    torch.testing.assert_close(to_normal(u), z, atol=1e-3, rtol=0)


def test_compose_is_seeded_and_batched_composing_gives_the_same_pieces(composer):
    a = composer.compose_result("low", seed=5, bars=2)
    b = composer.compose_result("low", seed=5, bars=2)
    assert a.roll.shape == (2, 12, 32) and np.array_equal(a.roll, b.roll)
    assert a.roll[1].sum() > 0
    rolls = composer.compose_rolls("low", n=3, bars=2, seed=4)
    np.testing.assert_array_equal(rolls[1], a.roll)
    np.testing.assert_array_equal(composer.decode_latents(a.latents, "low").roll, a.roll)
    with pytest.raises(MusicflowError, match="samples plainly"):
        composer.compose_result("low", seed=1, guidance=2)


def test_piece_phases_follow_the_time_signature_each_piece_is_composed_in(composer):
    composer.ck.info["metres"] = {"low": {"3/4": 0.5, "4/4": 0.5}}
    phases = composer.piece_phases({"low": 1.0}, 6, 48, seed=10).numpy()
    sigs = [composer.compose_result("low", seed=10 + i, bars=1).time_signature for i in range(6)]
    assert set(sigs) == {"3/4", "4/4"}  # both drawn, so the check below reads both
    for ph, sig in zip(phases, sigs):
        bar = 12 if sig == "3/4" else 16
        np.testing.assert_array_equal(ph, np.arange(48) % bar)


def test_a_mix_of_one_genre_is_that_genre_and_a_mix_differs_from_both(composer):
    z = composer._latents(1, 32)[None]
    low = composer._grow_states(z, torch.tensor([[0.0, 1.0]]), None)
    np.testing.assert_array_equal(composer._grow_states(z, torch.tensor([[0.0, 3.0]]), None), low)
    high = composer._grow_states(z, torch.tensor([[1.0, 0.0]]), None)
    mix = composer._grow_states(z, torch.tensor([[0.5, 0.5]]), None)
    assert not np.array_equal(mix, low) and not np.array_equal(mix, high)


def test_mix_methods_agree_on_one_genre_and_differ_on_a_mix(composer, tmp_path):
    """``embed`` conditions on the weighted genre vector, ``product`` (the default) multiplies the
    genres' distributions: the same for one genre, different music for a mix; CLI and API agree."""
    one = composer.compose_result("low", seed=4, bars=2).roll
    np.testing.assert_array_equal(composer.compose_result("low", seed=4, bars=2, mix="embed").roll, one)
    np.testing.assert_array_equal(composer.compose_result("low", seed=4, bars=2, mix="product").roll, one)
    mix = {"low": 0.5, "high": 0.5}
    product = composer.compose_result(mix, seed=4, bars=2)
    embed = composer.compose_result(mix, seed=4, bars=2, mix="embed")
    assert not np.array_equal(product.roll, embed.roll)
    batched = composer.compose_rolls(mix, n=1, bars=2, seed=4, mix="embed")
    np.testing.assert_array_equal(batched[0], embed.roll)
    out = tmp_path / "e.mid"
    args = ["-g", "low:0.5", "-g", "high:0.5", "--mix", "embed", "--bars", "2", "--seed", "4", "-o", str(out)]
    res = CliRunner().invoke(main, ["compose", "--model", str(composer.ck.path), *args])
    assert res.exit_code == 0, res.output
    assert out.read_bytes() == composer.save(embed.midi, tmp_path / "api.mid").read_bytes()
    with pytest.raises(MusicflowError, match="mix must be one of"):
        composer.compose_result(mix, seed=4, mix="blend")
    with pytest.raises(MusicflowError, match="mix"):
        composer.transfer(composer.save(embed.midi, tmp_path / "x.mid"), to="low", mix="embed")


def test_infill_keeps_the_bars_outside_the_span_and_weighs_what_follows(composer, tmp_path):
    src = composer.save(composer.compose_result("high", seed=2, bars=4).midi, tmp_path / "p.mid")
    inp = composer.read(src)
    r = composer.infill(src, (2, 3), seed=7, candidates=6)
    assert r.roll.shape == inp.roll.shape and r.latents.shape[0] == 32
    np.testing.assert_array_equal(r.roll[..., :16], inp.roll[..., :16])
    np.testing.assert_array_equal(r.roll[..., 49:], inp.roll[..., 49:])
    assert not np.array_equal(r.roll[..., 16:48], inp.roll[..., 16:48])
    np.testing.assert_array_equal(composer.infill(src, "2-3", seed=7, candidates=6).roll, r.roll)
    last = composer.infill(src, "4", seed=1, candidates=3)  # nothing after: a continuation of bars 1-3
    np.testing.assert_array_equal(last.roll[..., :48], inp.roll[..., :48])
    for bars, why in (((3, 9), "the piece has 4 bars"), ((0, 1), "at least 1"), ((3, 2), "not after")):
        with pytest.raises(MusicflowError, match=why):
            composer.infill(src, bars, seed=1)
    with pytest.raises(MusicflowError, match="candidates"):
        composer.infill(src, (2, 2), candidates=0)
    out = tmp_path / "i.mid"
    args = ["--bars", "2-3", "-k", "6", "--seed", "7", "-o", str(out), "--model", str(composer.ck.path),
            "--quiet"]
    res = CliRunner().invoke(main, ["infill", str(src), *args])
    assert res.exit_code == 0, res.output
    assert out.read_bytes() == composer.save(r.midi, tmp_path / "api.mid").read_bytes()
    res = CliRunner().invoke(main, ["infill", str(src), "--bars", "five", "--model", str(composer.ck.path)])
    assert res.exit_code == 2 and "use FIRST-LAST" in res.output and "Traceback" not in res.output


def test_a_piece_encodes_and_decodes_back_and_transfer_to_its_own_genre_keeps_it(composer, tmp_path):
    piece = composer.compose_result("high", seed=2, bars=2)
    path = composer.save(piece.midi, tmp_path / "p.mid")
    inp = composer.read(path)
    _, vec = composer.genre_weights("high")
    z = composer.encode(inp.roll, vec)
    np.testing.assert_array_equal(composer.grow(z, vec, None)[0], inp.roll)
    np.testing.assert_array_equal(composer.transfer(path, to="high", source="high").roll, inp.roll)
    assert not np.array_equal(composer.transfer(path, to="low", source="high").roll, inp.roll)
    assert len(composer.variations(path, n=2, seed=0)) == 2
    assert len(composer.interpolate(path, path, steps=3)) == 3


def test_continue_keeps_the_input_and_scoring_reads_every_bar(composer, midi_file):
    res = composer.continue_(midi_file, "low", seed=1, bars=2)
    inp = composer.read(midi_file)
    np.testing.assert_array_equal(res.roll[..., : inp.roll.shape[-1]], inp.roll)
    assert res.roll.shape[-1] == 32 + 32  # the input's two bars, then two new ones
    probs = composer.classify(midi_file)
    assert set(probs) == {"high", "low"} and abs(sum(probs.values()) - 1) < 1e-6
    ll, _ = composer.log_likelihoods(midi_file)
    assert len(ll["low"]) == 2 and np.all(ll["low"] < 0)


def test_compose_command_with_a_sequence_flow(composer, tmp_path):
    out = tmp_path / "a.mid"
    res = CliRunner().invoke(main, ["compose", "--model", str(composer.ck.path), "--genre", "low",
                                    "--bars", "2", "--seed", "3", "-o", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    again = tmp_path / "b.mid"
    subprocess.run([sys.executable, "-m", "musicflow", "compose", "--model", str(composer.ck.path), "--genre",
                    "low", "--bars", "2", "--seed", "3", "-o", str(again), "--quiet"], check=True)
    assert out.read_bytes() == again.read_bytes()
    res = CliRunner().invoke(main, ["compose", "--model", str(composer.ck.path), "--genre", "low",
                                    "--guidance", "3", "-o", str(out)])
    assert res.exit_code != 0 and "samples plainly" in res.output and "Traceback" not in res.output


def test_the_time_signature_is_drawn_from_the_genres_pieces_or_asked(composer, tmp_path):
    ck = composer.ck
    ck.info["metres"] = {"low": {"3/4": 1.0}, "high": {"4/4": 0.5, "6/8": 0.5}}
    path = save_checkpoint(tmp_path / "m.pt", "keyflow", ck.model, ck.spec, ck.genres, ck.info)
    c = Composer.load(path)
    r = c.compose_result("low", seed=1, bars=2)
    assert r.time_signature == "3/4" and r.roll.shape[-1] == 24
    assert r.midi.time_signature_changes[0].numerator == 3
    drawn = {c.compose_result("high", seed=s, bars=1).time_signature for s in range(12)}
    assert drawn == {"4/4", "6/8"}
    r = c.compose_result("low", seed=1, bars=2, time_signature="6/8")
    assert r.time_signature == "6/8" and r.roll.shape[-1] == 24
    np.testing.assert_array_equal(c.decode_latents(r.latents, "low", time_signature="6/8").roll, r.roll)
    # Batched pieces keep their own metre, cut to the length of 4/4 bars.
    rolls = c.compose_rolls("low", n=2, bars=2, seed=1)
    np.testing.assert_array_equal(rolls[0][..., :24], c.compose_result("low", seed=1, bars=2).roll)
    with pytest.raises(MusicflowError, match="time_signature"):
        c.compose_result("low", seed=1, time_signature="5/3")


def test_the_glow_composes_in_four_four_only():
    c = Composer.load("glow")
    with pytest.raises(MusicflowError, match="composes in 4/4"):
        c.compose_result("celtic", seed=1, bars=1, time_signature="3/4")


def test_bits_per_dim_counts_onset_and_sustain_cells_as_the_window_flows_do():
    model = _model()
    x = torch.from_numpy(states_roll(np.random.default_rng(1).integers(0, 3, (4, 12))))[None]  # (1, 2, 12, 4)
    cond = Condition(_genre(1), torch.zeros(1, 2, 12, 8))
    bpd = model.bits_per_dim(x, cond)
    torch.testing.assert_close(bpd, -model.log_prob(x, cond) / (2 * 12 * 4 * math.log(2)))


def test_a_saved_latent_decodes_to_the_same_file_in_its_time_signature(composer, tmp_path):
    ck = composer.ck
    ck.info["metres"] = {"low": {"6/8": 1.0}, "high": {"6/8": 1.0}}
    model = str(save_checkpoint(tmp_path / "m.pt", "keyflow", ck.model, ck.spec, ck.genres, ck.info))
    a, b = tmp_path / "a.mid", tmp_path / "b.mid"
    runner = CliRunner()
    res = runner.invoke(main, ["compose", "--model", model, "-g", "low", "--bars", "2", "--seed", "4",
                               "-o", str(a), "--save-latent", "--quiet"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["decode", str(tmp_path / "a.latent.pt"), "--model", model, "-o", str(b)])
    assert res.exit_code == 0, res.output
    assert a.read_bytes() == b.read_bytes()
    mix = ["-g", "low:0.5", "-g", "high:0.5", "--mix", "embed", "--bars", "2", "--seed", "4"]
    res = runner.invoke(main, ["compose", "--model", model, *mix, "-o", str(a), "--save-latent", "--quiet"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["decode", str(tmp_path / "a.latent.pt"), "--model", model, "--mix", "embed",
                               "-o", str(b)])
    assert res.exit_code == 0 and a.read_bytes() == b.read_bytes(), res.output
    res = runner.invoke(main, ["compose", "--model", model, "--time-signature", "7/3", "-o", str(a)])
    assert res.exit_code == 2 and "time_signature '7/3'" in res.output


def test_a_users_piece_is_read_in_its_own_bars(composer, tmp_path):
    from conftest import make_midi

    waltz = make_midi(tmp_path / "w.mid", [(64 + (b % 3), b, b + 1) for b in range(12)])
    pm = pretty_midi.PrettyMIDI(str(waltz))
    pm.time_signature_changes = [pretty_midi.TimeSignature(3, 4, 0.0)]
    pm.write(str(waltz))
    inp = composer.read(waltz)
    assert composer.bar_lines(inp)[:3].tolist() == [0, 12, 24]
    _, vec = composer.genre_weights("low")
    z3 = composer.encode(inp.roll, vec, None, composer.bar_lines(inp))
    assert not torch.equal(z3, composer.encode(inp.roll, vec, None))  # the metre is read
    np.testing.assert_array_equal(composer.transfer(waltz, to="low", source="low").roll, inp.roll)
    # Scored bar by bar in its own bars: bits per cell of each bar, and of the whole piece.
    scores = composer.score(waltz)
    ll, _ = composer.log_likelihoods(waltz)
    assert len(scores["per_window"]["low"]) == 4 == len(ll["low"])
    whole = -ll["low"].sum() / (2 * 12 * inp.roll.shape[-1] * math.log(2))
    assert scores["whole"]["low"] == pytest.approx(whole)
    # A continuation keeps every step of the input, even when its last bar is cut short.
    res = composer.continue_(waltz, "low", seed=1, bars=1)
    np.testing.assert_array_equal(res.roll[..., : inp.roll.shape[-1]], inp.roll)
    assert res.time_signature == "3/4" and res.midi.time_signature_changes[0].numerator == 3


def test_a_benchmark_checkpoint_cannot_compose_and_says_so(tmp_path):
    path = save_checkpoint(tmp_path / "b.pt", "keyflow", KeyFlow(KeyFlowConfig(rnn_hidden=8, channels=4)),
                           SPEC, ["chorale"], {})
    with pytest.raises(MusicflowError, match="cannot compose"):
        Composer.load(path)
