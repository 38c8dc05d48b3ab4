"""A new model kind is one module and one registry line: the whole product then takes it.

The kind below (every cell of the dequantized roll an independent Gaussian per genre) lives in this
file; registering it is the only other change. Training, checkpoints, the Composer and the CLI
then work with it untouched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch
from click.testing import CliRunner
from golden_cases import _tiny_corpus
from torch import nn

from musicflow.checkpoint import KINDS, Kind, load_checkpoint, model_classes
from musicflow.cli import main
from musicflow.compose import Composer
from musicflow.errors import MusicflowError
from musicflow.flows.base import Condition, ConfigDict, Flow
from musicflow.training import TrainConfig, train


@dataclass(frozen=True)
class CellsConfig(ConfigDict):
    pitches: int = 48
    steps: int = 4
    n_genres: int = 2
    context_steps: int = 64

    @property
    def dim(self) -> int:
        return 2 * self.pitches * self.steps


class Cells(Flow):
    """``v = mu_genre + sigma_genre * z`` per cell; a 1 is ``v > 0.5`` (cells of width 1)."""

    def __init__(self, config: CellsConfig | None = None) -> None:
        super().__init__()
        self.config = config or CellsConfig()
        self.mu = nn.Parameter(torch.zeros(self.config.n_genres, self.config.dim))
        self.log_sigma = nn.Parameter(torch.zeros(self.config.n_genres, self.config.dim))

    def _params(self, cond: Condition):
        return cond.genre @ self.mu, cond.genre @ self.log_sigma

    def encode(self, x, cond):
        mu, ls = self._params(cond)
        return (x.flatten(1) - mu) / ls.exp()

    def decode(self, z, cond):
        mu, ls = self._params(cond)
        c = self.config
        return (mu + ls.exp() * z).view(-1, 2, c.pitches, c.steps)

    def log_prob(self, x, cond, generator=None, **_):
        mu, ls = self._params(cond)
        u = torch.rand(x.flatten(1).shape, generator=generator) - 0.5
        return torch.distributions.Normal(mu, ls.exp()).log_prob(x.flatten(1) + u).sum(1)

    def bits_per_dim(self, x, cond, generator=None):
        return -self.log_prob(x, cond, generator) / (self.config.dim * math.log(2))

    def sample(self, n, cond, temperature=1.0, generator=None):
        z, cond = self.draw_latents(n, cond, temperature, generator)
        return (self.decode(z, cond) > 0.5).float()


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(KINDS, "cells", Kind(CellsConfig, Cells, "windows"))


def test_a_new_kind_trains_loads_composes_and_scores(registered, tmp_path):
    data = _tiny_corpus(tmp_path / "corpus")
    out = tmp_path / "cells.pt"
    cfg = TrainConfig(steps=60, batch_size=16, lr=0.05, warmup=1, valid_every=30, valid_windows=8)
    record = train("cells", data, out, cfg, model_overrides={"pitches": 48}, device="cpu", quiet=True)
    assert record["history"][-1]["valid_bpd"] < record["history"][0]["valid_bpd"] + 1e-9
    ck = load_checkpoint(out)
    assert isinstance(ck.model, Cells) and ck.kind == "cells"
    c = Composer(ck)
    assert c.sampling() == (1.0, 1)  # the base class's default guidance: plain sampling
    pm = c.compose(c.genres[0], bars=1, seed=0)
    assert pm.get_end_time() >= 0
    probs = c.classify(pm)
    assert set(probs) == set(ck.genres) and abs(sum(probs.values()) - 1) < 1e-6


def test_the_cli_trains_a_registered_kind(registered, tmp_path):
    data = _tiny_corpus(tmp_path / "corpus")
    args = ["train", "--model", "cells", "--data", str(data), "-o", str(tmp_path / "c.pt"),
            "--steps", "2", "--valid-every", "1", "--warmup", "1", "--quiet"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert load_checkpoint(tmp_path / "c.pt").kind == "cells"


def test_unknown_kinds_are_one_line_errors():
    with pytest.raises(MusicflowError, match="unknown model kind 'nope'"):
        model_classes("nope")
    r = CliRunner().invoke(main, ["train", "--model", "nope"])
    assert r.exit_code == 2 and "'nope' is not one of" in r.output


def test_an_incomplete_model_cannot_be_made():
    """The contract is enforced: a Flow without log_prob, bits_per_dim and sample is an error."""

    class NoLikelihood(Flow):
        pass

    with pytest.raises(TypeError, match="abstract"):
        NoLikelihood()
