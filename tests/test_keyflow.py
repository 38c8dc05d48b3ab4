"""The KeyFlow benchmark model and the four-corpus benchmark commands."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from musicflow.boulanger.benchmark import (
    BenchmarkTrainConfig,
    file_sha1,
    flow_nll,
    load_split,
    pad,
    train_benchmark,
)
from musicflow.boulanger.corpora import CORPORA
from musicflow.checkpoint import load_checkpoint
from musicflow.cli import main
from musicflow.errors import MusicflowError
from musicflow.flows.base import Condition
from musicflow.flows.keyflow import KeyFlow, KeyFlowConfig
from musicflow.io.boulanger import frames
from musicflow.paths import checkpoints_dir

TINY_DATA = {
    "train": [[[60, 64], [60], [], [62, 67]], [[60], [60, 64, 67], [65]], [[48, 60], [50, 62], [52, 64]]],
    "valid": [[[60], [64]]],
    "test": [[[62], [62, 65], [60, 64, 67]]],
}
TINY = {"rnn_hidden": 8, "channels": 4, "history": 2, "reach": 3, "blocks": 1, "dropout": 0.0}


def _model(seed: int = 0, **over) -> KeyFlow:
    torch.manual_seed(seed)
    model = KeyFlow(KeyFlowConfig(**{**TINY, **over}))
    with torch.no_grad():  # away from the near-uniform start, so every dependence shows
        for p in model.parameters():
            p.normal_(0, 0.3)
    return model.eval()


@pytest.fixture
def tiny_json(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY_DATA))
    return path


def test_each_keys_logit_reads_only_the_keys_below_it_and_the_past():
    model = _model()
    x = (torch.rand(1, 88) < 0.3).float()
    state, past = torch.randn(1, 8), (torch.rand(1, 2, 88) < 0.3).float()
    x.requires_grad_(True)
    jac = torch.autograd.functional.jacobian(lambda v: model.logits(v, state, past)[0], x)[:, 0]  # (88, 88)
    assert torch.count_nonzero(torch.triu(jac)) == 0  # logit k: no key >= k of its own frame
    assert torch.count_nonzero(torch.tril(jac, -1)) > 0  # ...but the keys below it
    # The same with whole keys flipped (the conditioner reads binary keys): flipping key j
    # changes no logit at or below j.
    base = model.logits(x.detach(), state, past)
    for j in (0, 40, 87):
        y = x.detach().clone()
        y[0, j] = 1 - y[0, j]
        diff = (model.logits(y, state, past) - base).abs()[0]
        assert diff[: j + 1].max() == 0 and (j == 87 or diff[j + 1:].max() > 0)


def test_encode_log_determinant_matches_the_autograd_jacobian_and_decode_inverts_it():
    model = _model()
    z = torch.rand(2, 3, 88, generator=torch.Generator().manual_seed(1))
    y = model.decode_frames(z)
    assert y.min() >= 0 and y.max() < 2
    z2, logdet = model.encode_frames(y)
    torch.testing.assert_close(z2, z, atol=1e-5, rtol=0)
    # One frame: the Jacobian of y -> z (88 x 88) is triangular and its log|det| is the log-det.
    one = y[:1, :1]
    jac = torch.autograd.functional.jacobian(lambda v: model.encode_frames(v.view(1, 1, 88))[0].view(88),
                                             one.reshape(88))
    assert torch.count_nonzero(torch.triu(jac, 1)) == 0
    assert float(torch.log(torch.diagonal(jac).abs()).sum()) == pytest.approx(logdet[0, 0].item(), abs=1e-3)
    # A frame's base point under its own encoding is uniform: the log-det is the log-probability.
    x = y.floor()
    torch.testing.assert_close(logdet, model.sequence_log_prob(x), atol=1e-4, rtol=0)


def test_the_dequantization_bound_is_tight_every_draw_gives_the_discrete_log_probability():
    model = _model()
    x = torch.from_numpy(frames(TINY_DATA["train"][1])).float()[None]
    draws = [model.encode_frames(x + torch.rand(x.shape, generator=torch.Generator().manual_seed(s)))[1]
             for s in range(3)]
    for d in draws:
        torch.testing.assert_close(d, draws[0])
    # ...and those are normalised probabilities: one key's two outcomes sum to one given the rest.
    logits = model.logits(x[0], torch.randn(3, 8), torch.zeros(3, 2, 88))
    on = model.key_log_prob(torch.ones_like(logits), logits)
    off = model.key_log_prob(torch.zeros_like(logits), logits)
    torch.testing.assert_close(on.exp() + off.exp(), torch.ones_like(logits))
    pieces = [frames(p) for p in TINY_DATA["train"]]
    got = flow_nll(model, pieces, samples=4)
    assert got["tight"] and got["stderr"] == 0
    assert got["iw_nats_per_step"] == pytest.approx(got["nats_per_step"])


def test_chain_rule_windows_with_their_past_score_the_whole_piece():
    model = _model()
    pieces = [frames(p) for p in TINY_DATA["train"] + TINY_DATA["test"]]
    got = flow_nll(model, pieces, samples=1)
    total, n = 0.0, 0
    with torch.no_grad():
        for p in pieces:
            x = torch.from_numpy(p).float().t()[None, None]
            for s in range(0, len(p), 2):
                ctx = x[..., :s] if s else None
                total += float(model.log_prob(x[..., s:s + 2], Condition(torch.ones(1, 1), ctx)))
            n += len(p)
    assert got["nats_per_step"] == pytest.approx(-total / n, rel=1e-5)
    # Padding a batch changes nothing.
    rolls, lengths = pad(pieces)
    batch = model.sequence_log_prob(rolls, lengths).sum(1)
    alone = torch.stack([model.sequence_log_prob(torch.from_numpy(p).float()[None]).sum() for p in pieces])
    torch.testing.assert_close(batch, alone, atol=1e-4, rtol=0)


def test_sampling_is_seeded_binary_and_matches_the_models_probabilities():
    model = _model()
    a = model.sample(400, frames=1, generator=torch.Generator().manual_seed(3))
    b = model.sample(400, frames=1, generator=torch.Generator().manual_seed(3))
    assert a.shape == (400, 1, 88, 1) and torch.equal(a, b) and bool(((a == 0) | (a == 1)).all())
    # The lowest key of a first frame: empirical frequency against the model's probability.
    first = torch.zeros(1, 1, 88)
    with torch.no_grad():
        logit = model.logits(first[0], model.states(first)[0], model.history(first)[0])[0, 0]
    p_on = float(torch.sigmoid(logit))
    freq = float(a[:, 0, 0, 0].mean())
    assert abs(freq - p_on) < 4 * math.sqrt(p_on * (1 - p_on) / 400) + 1e-3
    ctx = torch.from_numpy(frames(TINY_DATA["train"][0])).float().t()[None, None]
    assert model.sample(2, Condition(torch.ones(1, 1), ctx), frames=3).shape == (2, 1, 88, 3)
    with pytest.raises(MusicflowError, match="temperature"):
        model.decode_frames(torch.rand(1, 1, 88), temperature=0)


def test_training_lowers_the_loss(tiny_json, tmp_path):
    cfg = BenchmarkTrainConfig(steps=40, batch_size=3, lr=1e-2, warmup=1, valid_every=20)
    rec = train_benchmark(tiny_json, tmp_path / "k.pt", cfg, TINY, quiet=True, corpus="jsb")
    first, last = rec["history"][0], rec["history"][-1]
    assert last["train_nats"] < first["train_nats"] and last["valid_nats"] < 88 * math.log(2) / 2
    ck = load_checkpoint(tmp_path / "k.pt")
    assert ck.kind == "keyflow" and ck.info["corpus"] == "jsb" and ck.genres == ["jsb"]


def test_a_resumed_run_reproduces_the_uninterrupted_one(tiny_json, tmp_path):
    over = {**TINY, "dropout": 0.3}  # dropout draws must resume too
    cfg = BenchmarkTrainConfig(steps=6, batch_size=2, valid_every=3, crop=2, seed=4)
    train_benchmark(tiny_json, tmp_path / "a.pt", cfg, over, quiet=True)
    stopped = BenchmarkTrainConfig(**{**cfg.__dict__, "minutes": 0.0})  # stops after its first step
    train_benchmark(tiny_json, tmp_path / "b.pt", stopped, over, quiet=True)
    assert load_checkpoint(tmp_path / "b.pt").info["step"] == 1
    torch.manual_seed(123)  # the caller's global generator must not matter
    rec = train_benchmark(tiny_json, tmp_path / "b.pt", cfg, over, quiet=True, resume=True)
    assert rec["step"] == 6
    a, b = (torch.load(tmp_path / n, weights_only=True)["state_dict"] for n in ("a.pt", "b.pt"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_benchmark_commands_for_every_corpus_name(tiny_json, tmp_path):
    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]
    ck = tmp_path / "n.pt"
    r = CliRunner().invoke(main, ["benchmark", "train", "--corpus", "nottingham", "--data", str(tiny_json),
                                  "--out", str(ck), "--steps", "2", "--batch-size", "2", "--crop", "2",
                                  "--valid-every", "2", "--quiet", *sets])
    assert r.exit_code == 0, r.output
    loaded = load_checkpoint(ck)
    assert loaded.spec.steps_per_quarter == CORPORA["nottingham"].steps_per_quarter == 2
    assert loaded.info["train_config"]["crop"] == 2
    r = CliRunner().invoke(main, ["benchmark", "evaluate", "--corpus", "nottingham", "--model", str(ck),
                                  "--data", str(tiny_json), "--split", "test"])
    assert r.exit_code == 0, r.output
    assert "Nottingham, test: 1 pieces, 3 time steps" in r.output and "tight" in r.output
    r = CliRunner().invoke(main, ["benchmark", "evaluate", "--corpus", "piano-midi", "--model", str(ck),
                                  "--data", str(tmp_path / "none.json")])
    assert r.exit_code == 2 and "none.json: no such file" in r.output and r.output.count("\n") == 1
    r = CliRunner().invoke(main, ["benchmark", "train", "--corpus", "jsb", "--data", str(tiny_json),
                                  "--out", str(ck), "--set", "channels=0"])
    assert r.exit_code == 2 and "channels" in r.output and r.output.count("\n") == 1


def test_benchmark_command_runs_as_a_subprocess(tiny_json, tmp_path):
    ck = tmp_path / "j.pt"
    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]
    r = subprocess.run([sys.executable, "-m", "musicflow", "jsb", "train", "--data", str(tiny_json), "--out",
                        str(ck), "--steps", "1", "--quiet", *sets], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "musicflow", "benchmark", "evaluate", "--model", str(ck),
                        "--data", str(tiny_json)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "JSB Chorales, valid" in r.stdout and "markov" in r.stdout


def test_one_keys_logit_alone_is_that_keys_share_of_the_frames_logits():
    model = _model()
    x = (torch.rand(3, 88) < 0.3).float()
    state, past = torch.randn(3, 8), (torch.rand(3, 2, 88) < 0.3).float()
    features = model.frame_features(state, past)
    alone = torch.stack([model.key_logit(features, x, k) for k in range(88)], dim=1)
    torch.testing.assert_close(alone, model.logits(x, state, past), atol=1e-5, rtol=0)


@pytest.mark.parametrize("experts,temperature", [(1, 1.0), (2, 0.8), (3, 1.3)])
def test_decoding_a_frame_at_once_gives_the_key_by_key_states(experts, temperature):
    """The fixed-point decoder against sampling each key in turn from its own logits (the
    convolution path, not the decoder's plan), for one genre and for a product of genres."""
    model = _model(keys=24, states=3, genres=3).double()
    n, k = 40, 24
    gen = torch.Generator().manual_seed(1)
    state = torch.randn(n * experts, 8, generator=gen, dtype=torch.float64)
    past = (torch.rand(n * experts, 4, k, generator=gen) < 0.3).double()
    genre = torch.eye(3, dtype=torch.float64)[torch.arange(n * experts) % experts]
    features = model.frame_features(state, past, genre)
    u = torch.rand(n, k, generator=gen, dtype=torch.float64)
    share = torch.softmax(torch.randn(n, experts, generator=gen, dtype=torch.float64), 1)
    decoded = model.decode_keys(features, u, temperature, None if experts == 1 else share)

    frame = torch.zeros(n, k, dtype=torch.float64)
    for key in range(k):
        logits = model.key_logit(features, frame.repeat_interleave(experts, 0), key)
        logp = torch.log_softmax(torch.nn.functional.pad(logits, (1, 0)) / temperature, -1)
        logp = logp.view(n, experts, 3)
        p = torch.softmax((share[..., None] * logp).sum(1), -1) if experts > 1 else logp[:, 0].exp()
        frame[:, key] = (u[:, key, None] >= p.cumsum(-1)[:, :-1]).sum(-1).double()
    assert torch.equal(decoded, frame.long())
    assert 0 < (decoded > 0).double().mean() < 1  # both silent and sounding keys were decoded


SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "boulanger"


@pytest.mark.parametrize("name", list(CORPORA))
def test_a_shipped_checkpoint_reproduces_its_recorded_valid_figure(name):
    corpus = CORPORA[name]
    path, data = checkpoints_dir() / corpus.checkpoint, SHARED / corpus.file
    if not data.is_file():
        pytest.skip(f"no {data}")
    assert path.is_file(), f"{path} is not shipped"
    ck = load_checkpoint(path)
    assert ck.kind == "keyflow" and ck.info["corpus"] == name and ck.info["data_sha1"] == file_sha1(data)
    assert ck.spec.steps_per_quarter == corpus.steps_per_quarter and path.stat().st_size < 10 * 2**20
    got = flow_nll(ck.model, load_split(data, "valid"), samples=1)
    assert got["nats_per_step"] == pytest.approx(ck.info["valid_nats_per_step"], abs=2e-4)
