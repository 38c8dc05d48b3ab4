"""Training a benchmark model (:class:`~musicflow.flows.keyflow.KeyFlow` or
:class:`~musicflow.flows.frame.FrameFlow`) on the pieces of one corpus.

What is the benchmark's alone lives here: batches of whole pieces or random windows of them
(teacher forcing over all their frames at once), optionally transposed at random, the FrameFlow's
fixed Bernoulli for the keys outside its range and its data-dependent initialisation,
validation NLL in nats per time step on whole pieces, and a checkpoint that keeps the weights with
the best validation NLL while the resume file keeps the current ones. The optimiser, schedule, clipping,
time budget, non-finite guard, checkpoints with resume and progress are the shared
:class:`~musicflow.training.loop.Loop`'s.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from musicflow.boulanger.pieces import file_sha1, flow_nll, load_split, pad
from musicflow.boulanger.settings import BenchmarkTrainConfig
from musicflow.checkpoint import load_checkpoint, new_model, require_resume, save_checkpoint
from musicflow.errors import MusicflowError
from musicflow.io.boulanger import KEYS, LOW
from musicflow.roll import PianoRollSpec
from musicflow.training.loop import Loop, current_state, run_seeded

#: The benchmark model's learning rate decays to this share of its peak.
FLOOR = 0.05
#: The weight of each step's loss in the running training loss the history records.
EMA = 0.05


class _PieceNLL(nn.Module):
    """Nats per frame of a batch of whole pieces through ``forward``, the loop's objective."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, rolls: torch.Tensor, lengths: torch.Tensor, generator=None) -> torch.Tensor:
        return -self.model.sequence_log_prob(rolls, lengths, generator).sum() / lengths.sum()


def train_benchmark(data: str | Path, out: str | Path, cfg: BenchmarkTrainConfig,
                    overrides: dict | None = None, quiet: bool = False, command: str = "",
                    resume: bool = False, corpus: str = "") -> dict:
    """Train a ``cfg.kind`` model on the ``train`` split of a benchmark file, keep the weights
    with the best ``valid`` NLL (nats per time step over whole pieces, the published measure),
    and write the checkpoint to ``out``. ``corpus`` names the corpus in the record.

    Each step scores a batch of pieces, or of random windows of ``cfg.crop`` steps (each read from
    the model's initial state), teacher-forced. A FrameFlow models a range of keys (36..99 by
    default) and gives the keys outside it a fixed Bernoulli fitted on ``train``; a KeyFlow models
    all 88. Returns the training record stored in the checkpoint.

    At every validation ``out`` is rewritten (atomically) with the best weights so far, and
    ``out + '.resume'`` holds the current weights, optimiser, schedule and noise state, so that
    ``resume=True`` continues an interrupted run; the resume file goes when training completes.
    """
    train, valid = load_split(data, "train"), load_split(data, "valid")
    model, record, best = _start(data, out, cfg, overrides, resume, train, len(valid), command)
    record["corpus"] = corpus or record.get("corpus", "")
    gen = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)

    def draw():
        idx = rng.choice(len(train), size=min(cfg.batch_size, len(train)), replace=False)
        shift = int(rng.integers(-cfg.transpose, cfg.transpose + 1)) if cfg.transpose else 0
        pieces = [train[i] for i in idx]
        if cfg.crop:
            starts = [int(rng.integers(0, max(len(p) - cfg.crop, 0) + 1)) for p in pieces]
            pieces = [p[s:s + cfg.crop] for p, s in zip(pieces, starts)]
        return pad(pieces, shift)

    if not resume:
        model.prepare(torch.from_numpy(np.concatenate(train)), draw, gen)
    model.train()
    spec = PianoRollSpec(steps_per_quarter=cfg.steps_per_quarter, window_steps=1, low=LOW,
                         pitches=KEYS, key_normalize=False)

    def write() -> None:
        best_model = copy.deepcopy(model)
        best_model.load_state_dict(best["state"])
        save_checkpoint(out, cfg.kind, best_model, spec, [corpus or "chorale"], record)

    def validate(loop: Loop) -> None:
        v = flow_nll(model, valid, samples=1, seed=0)["nats_per_step"]
        record["history"].append({"step": loop.step, "train_nats": round(loop.running, 4),
                                  "valid_nats": round(v, 4), "elapsed_s": round(loop.elapsed, 1)})
        if not quiet:
            tqdm.write(f"step {loop.step}: train {loop.running:.3f}  valid {v:.3f} nats/step  "
                       f"({loop.elapsed:.0f} s)")
        if v < best["nats"]:
            best.update(nats=v, state=copy.deepcopy(model.state_dict()))
            record.update(best_step=loop.step, valid_nats_per_step=round(v, 4))

    loop = Loop(_PieceNLL(model), cfg, out, gen, record, write, floor=FLOOR, ema=EMA,
                label=f"train {corpus or cfg.kind}", loss_name="nats", quiet=quiet,
                resume_extra=current_state(model, rng))
    run_seeded(loop, model, rng, cfg.seed, resume, draw, validate)
    return record


def _start(data, out, cfg: BenchmarkTrainConfig, overrides: dict | None, resume: bool,
           train: list[np.ndarray], n_valid: int, command: str) -> tuple[nn.Module, dict, dict]:
    """The model, training record and best validation so far (``nats``, ``state``) to start
    from: the unfinished run at ``out``, or fresh weights from ``cfg.seed``. Training notes outside
    the keys the model models are an error."""
    if resume:
        require_resume(out)
        ck = load_checkpoint(out)
        if ck.kind != cfg.kind or ck.info.get("data_sha1") != file_sha1(data):
            raise MusicflowError(f"{out}: not an unfinished {cfg.kind} run on {data}")
        model = copy.deepcopy(ck.model)  # its weights: the current ones, restored from the resume file
        record = {**ck.info, "train_config": asdict(cfg), "command": command or ck.info.get("command")}
        best = {"nats": ck.info["valid_nats_per_step"], "state": copy.deepcopy(ck.model.state_dict())}
    else:
        with torch.random.fork_rng():  # seeded weights without touching the caller's global RNG
            torch.manual_seed(cfg.seed)
            model = new_model(cfg.kind, overrides)
        record = {"train_config": asdict(cfg), "data": str(data), "data_sha1": file_sha1(data),
                  "command": command, "train_pieces": len(train), "valid_pieces": n_valid, "history": []}
        best = {"nats": math.inf, "state": None}
    all_train = torch.from_numpy(np.concatenate(train))
    keys = model.modelled_keys()
    if all_train[:, keys].sum() < all_train.sum():
        raise MusicflowError(f"{data}: training notes lie outside the modelled keys "
                             f"{LOW + keys.start}..{LOW + keys.stop - 1}")
    return model, record, best
