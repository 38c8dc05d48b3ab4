"""The JSB Chorales benchmark: the reader, the baselines and the chain-rule NLL, by hand."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from musicflow.boulanger.benchmark import bernoulli_nll, flow_nll, markov_nll, pad
from musicflow.cli import main
from musicflow.data.dataset import Dataset
from musicflow.errors import MusicflowError
from musicflow.flows.base import Condition
from musicflow.flows.frame import FrameFlow, FrameFlowConfig
from musicflow.io.boulanger import frames, read_boulanger

TINY_DATA = {
    "train": [[[60, 64], [60], [], [62, 67]], [[60], [60, 64, 67], [65]]],
    "valid": [[[60], [64]]],
    "test": [[[62], [62, 65], [60, 64, 67]]],
}
TINY_MODEL = {"low": 56, "keys": 16, "depth": 2, "hidden": 8, "rnn_hidden": 8, "cond_dim": 8,
              "dequant_hidden": 8}


@pytest.fixture
def jsb_json(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY_DATA))
    return path


def test_json_and_pickle_read_the_same(jsb_json, tmp_path):
    pkl = tmp_path / "tiny.pickle"
    # The original pickles hold pitches as numbers of any kind; 60.0 must read as 60.
    as_floats = {s: [[[float(p) for p in step] for step in piece] for piece in pieces]
                 for s, pieces in TINY_DATA.items()}
    pkl.write_bytes(pickle.dumps(as_floats, protocol=2))
    a, b = read_boulanger(jsb_json), read_boulanger(pkl)
    assert a == b == TINY_DATA
    assert sorted(a) == ["test", "train", "valid"]
    f = frames(a["train"][1])
    assert f.shape == (3, 88) and f[1, 64 - 21] and f.sum() == 5


@pytest.mark.parametrize("content, message", [
    ({"valid": [[[60]]]}, "no 'train' split"),
    ({"train": [[[60.5]]]}, "pitch 60.5 is not an integer"),
    ({"train": [[["C4"]]]}, "is not a number"),
    ({"train": [[[200]]]}, "outside the piano range"),
    ({"train": []}, "non-empty list of pieces"),
    ({"train": [[60, 64]]}, "expected a list of pitches"),
    ({"train": [[[60]]], "extra": []}, "unknown split"),
    ([1, 2], "expected a dict of splits"),
])
def test_bad_files_are_one_line_errors_naming_the_file(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    with pytest.raises(MusicflowError, match=message) as e:
        read_boulanger(path)
    assert "bad.json" in str(e.value) and "\n" not in str(e.value)
    if "step" in message or "pitch" in message:  # a problem inside a piece names split, piece and step
        assert "train piece 0 step 0" in str(e.value)


def test_unreadable_files(tmp_path):
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "broken.pkl").write_bytes(b"not a pickle")
    (tmp_path / "data.txt").write_text("{}")
    for name, message in [("broken.json", "not valid json"), ("broken.pkl", "cannot be unpickled"),
                          ("data.txt", "unsupported file type"), ("missing.json", "no such file")]:
        with pytest.raises(MusicflowError, match=message):
            read_boulanger(tmp_path / name)


def test_bernoulli_and_markov_match_hand_computed_values():
    train = [frames([[60, 64], [60], [], []])]  # 4 steps: 60 on twice, 64 once
    test = [frames([[60], [64, 67]])]
    # smoothed by +0.5: P(60) = 2.5 / 5, P(64) = 1.5 / 5, every other key 0.5 / 5
    p60, p64, p = 0.5, 0.3, 0.1
    step0 = math.log(p60) + math.log(1 - p64) + 86 * math.log(1 - p)
    step1 = math.log(1 - p60) + math.log(p64) + math.log(p) + 85 * math.log(1 - p)
    assert bernoulli_nll(train, test) == pytest.approx(-(step0 + step1) / 2, rel=1e-12)
    # Markov per key, a silent step before each piece; (previous, current) pairs in train:
    # key 60: off->on, on->on, on->off, off->off, so P(on | off) = (1 + .5) / (2 + 1) = 0.5 and
    # P(on | on) = 0.5; key 64: off->on, on->off, off->off, off->off, so P(on | off) = 1.5 / 4;
    # every other key: four off->off, so P(on | off) = .5 / 5 = 0.1.
    step0 = math.log(0.5) + math.log(1 - 0.375) + 86 * math.log(0.9)
    step1 = math.log(1 - 0.5) + math.log(0.375) + math.log(0.1) + 85 * math.log(0.9)
    assert markov_nll(train, test) == pytest.approx(-(step0 + step1) / 2, rel=1e-12)


def _tiny_flow(train) -> FrameFlow:
    torch.manual_seed(0)
    model = FrameFlow(FrameFlowConfig(**TINY_MODEL))
    model.fit_outside(torch.from_numpy(np.concatenate(train)))
    model.initialize_sequences(*pad(train))
    return model.eval()


def test_chain_rule_nll_is_the_sum_of_window_log_likelihoods_over_frames():
    pieces = [frames(p) for p in TINY_DATA["train"] + TINY_DATA["test"]]
    model = _tiny_flow(pieces)
    got = flow_nll(model, pieces, samples=1, seed=7)
    # Assemble by hand: windows of 2 frames (the last one shorter), each scored given all frames
    # before it in its piece, with the noise flow_nll draws for a padded batch of all pieces.
    rolls, _ = pad(pieces)
    eps = torch.randn(len(pieces), rolls.shape[1], model.config.keys,
                      generator=torch.Generator().manual_seed(7))
    total, n_frames = 0.0, 0
    with torch.no_grad():
        for i, p in enumerate(pieces):
            x = torch.from_numpy(p).float().t()[None, None]  # (1, 1, 88, T)
            for s in range(0, len(p), 2):
                ctx = x[..., :s] if s else None
                e = min(s + 2, len(p))
                total += float(model.log_prob(x[..., s:e], Condition(torch.ones(1, 1), ctx),
                                              eps=eps[i:i + 1, s:e]))
            n_frames += len(p)
    assert got["frames"] == n_frames == 10 and got["pieces"] == 3
    assert got["nats_per_step"] == pytest.approx(-total / n_frames, rel=1e-5)
    assert got["bits_per_dim"] == pytest.approx(got["nats_per_step"] / (88 * math.log(2)))


def test_several_draws_give_mean_stderr_and_a_tighter_importance_weighted_bound():
    pieces = [frames(p) for p in TINY_DATA["train"]]
    got = flow_nll(_tiny_flow(pieces), pieces, samples=3, seed=0)
    per = np.array(got["per_sample"])
    assert got["nats_per_step"] == pytest.approx(per.mean(), abs=1e-4)
    assert got["stderr"] == pytest.approx(per.std(ddof=1) / math.sqrt(3), abs=1e-4)
    assert got["iw_nats_per_step"] <= got["nats_per_step"] + 1e-9


def test_keys_outside_the_modelled_range_cost_their_fitted_bernoulli():
    pieces = [frames(p) for p in TINY_DATA["train"]]
    model = _tiny_flow(pieces)
    n = sum(len(p) for p in pieces)
    p_on = 0.5 / (n + 1)  # never on in train, smoothed by +0.5
    x = torch.from_numpy(pieces[0]).float()[None]
    y = x.clone()
    y[0, 0, 100 - 21] = 1  # pitch 100 lies outside 56..71; frame 0 only, so no context changes
    eps = torch.randn(1, x.shape[1], model.config.keys)
    with torch.no_grad():
        diff = model.sequence_log_prob(y, eps=eps)[0, 0] - model.sequence_log_prob(x, eps=eps)[0, 0]
    assert float(diff) == pytest.approx(math.log(p_on) - math.log1p(-p_on), rel=1e-4)


def test_data_boulanger_command_builds_a_dataset(jsb_json, tmp_path):
    out = tmp_path / "jsb.npz"
    r = CliRunner().invoke(main, ["data", "boulanger", str(jsb_json), "-o", str(out)])
    assert r.exit_code == 0, r.output
    ds = Dataset.load(out)
    assert [p["split"] for p in ds.pieces].count("test") == 1 and ds.genres == ["chorale"]
    assert ds.spec.low == 21 and ds.spec.pitches == 88 and ds.spec.steps_per_quarter == 1
    # The sustain channel is exactly the data (a run of a pitch is one note).
    np.testing.assert_array_equal(ds.roll(0)[1].T > 0, frames(TINY_DATA["train"][0]))


def test_train_and_evaluate_commands(jsb_json, tmp_path):
    ck = tmp_path / "tiny.pt"
    sets = [a for k, v in TINY_MODEL.items() for a in ("--set", f"{k}={v}")]
    r = CliRunner().invoke(main, ["jsb", "train", "--data", str(jsb_json), "--out", str(ck),
                                  "--steps", "3", "--batch-size", "2", "--valid-every", "2",
                                  "--kind", "frameflow", "--quiet", *sets])
    assert r.exit_code == 0, r.output
    assert "best valid" in r.output and ck.is_file()
    report = tmp_path / "report.json"
    r = CliRunner().invoke(main, ["jsb", "evaluate", "--model", str(ck), "--data", str(jsb_json),
                                  "--split", "test", "--samples", "2", "--json", str(report)])
    assert r.exit_code == 0, r.output
    assert "nats/step" in r.output and "bernoulli" in r.output
    rep = json.loads(report.read_text())
    assert rep["split"] == "test" and rep["flow"]["frames"] == 3 and rep["flow"]["samples"] == 2
    assert rep["baselines_nats_per_step"]["uniform"] == pytest.approx(88 * math.log(2))
    no_test = tmp_path / "no-test.json"
    no_test.write_text(json.dumps({"train": TINY_DATA["train"], "valid": TINY_DATA["valid"]}))
    r = CliRunner().invoke(main, ["jsb", "evaluate", "--model", str(ck), "--data", str(no_test),
                                  "--split", "test"])
    assert r.exit_code == 2 and "no-test.json" in r.output and "no 'test' split" in r.output
    assert r.output.strip().count("\n") == 0


def test_sampling_is_binary_seeded_and_continues_a_context():
    pieces = [frames(p) for p in TINY_DATA["train"]]
    model = _tiny_flow(pieces)
    a = model.sample(3, frames=5, generator=torch.Generator().manual_seed(1))
    b = model.sample(3, frames=5, generator=torch.Generator().manual_seed(1))
    assert a.shape == (3, 1, 88, 5) and torch.equal(a, b)
    assert bool(((a == 0) | (a == 1)).all())
    inside = slice(model.config.offset, model.config.offset + model.config.keys)
    assert a.sum() == a[:, :, inside].sum()  # keys outside the modelled range stay silent
    ctx = torch.from_numpy(pieces[0]).float().t()[None, None]
    assert model.sample(2, Condition(torch.ones(1, 1), ctx), frames=4).shape == (2, 1, 88, 4)


def test_training_is_reproducible_from_its_seed(jsb_json, tmp_path):
    from musicflow.boulanger.benchmark import BenchmarkTrainConfig, train_benchmark

    cfg = BenchmarkTrainConfig(kind="frameflow", steps=2, batch_size=2, valid_every=2)
    states = []
    for name in ("a.pt", "b.pt"):
        train_benchmark(jsb_json, tmp_path / name, cfg, TINY_MODEL, quiet=True)
        states.append(torch.load(tmp_path / name, weights_only=True)["state_dict"])
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_an_interrupted_run_resumes_and_keeps_the_best_weights(jsb_json, tmp_path):
    from musicflow.checkpoint import load_checkpoint

    ck, resume = tmp_path / "run.pt", tmp_path / "run.pt.resume"
    sets = [a for k, v in TINY_MODEL.items() for a in ("--set", f"{k}={v}")]
    base = ["jsb", "train", "--data", str(jsb_json), "--out", str(ck), "--steps", "4", "--batch-size", "2",
            "--valid-every", "2", "--kind", "frameflow", "--quiet", *sets]
    r = CliRunner().invoke(main, [*base, "--resume"])
    assert r.exit_code == 2 and "nothing to resume" in r.output and r.output.strip().count("\n") == 0
    r = CliRunner().invoke(main, [*base, "--minutes", "0"])  # out of time after its first step
    assert r.exit_code == 0, r.output
    first = load_checkpoint(ck)
    assert first.info["step"] == 1 and resume.is_file()  # a usable checkpoint and the state to go on
    r = CliRunner().invoke(main, [*base, "--resume"])
    assert r.exit_code == 0, r.output
    done = load_checkpoint(ck)
    assert done.info["step"] == 4 and not resume.is_file()
    assert [h["step"] for h in done.info["history"]] == [1, 2, 4]
    best = min(done.info["history"], key=lambda h: h["valid_nats"])
    assert done.info["best_step"] == best["step"] and done.info["valid_nats_per_step"] == best["valid_nats"]
