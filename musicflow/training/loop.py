"""One training loop for every model musicflow trains by gradient steps.

:class:`Loop` owns what every run shares: AdamW with a linear warm-up then a cosine decay to a
floor, gradient clipping, the wall-time budget (``minutes``), a guard that stops on a non-finite
loss or gradient norm and leaves the last good checkpoint alone, atomic checkpoints with a resume
file beside them, DistributedDataParallel under ``torchrun``, the progress bar and the validation
cadence. A caller supplies only what differs between model families: the objective (a module
whose ``forward`` returns the batch loss, so that DDP sees the call), how to draw a batch, how to
validate, how to write its checkpoint and which extra state its resume file needs.

>>> import torch
>>> from musicflow.training.loop import Loop
>>> class Square(torch.nn.Module):
...     def __init__(self):
...         super().__init__()
...         self.w = torch.nn.Parameter(torch.tensor(3.0))
...     def forward(self, x, generator=None):
...         return (self.w * x) ** 2
>>> class Settings:
...     steps, lr, weight_decay, warmup, clip, valid_every, minutes = 4, 0.1, 0.0, 1, 5.0, 2, None
>>> loop = Loop(Square(), Settings(), "nowhere.pt", torch.Generator(), {}, write=lambda: None,
...             floor=0.1, ema=0.1, label="demo", loss_name="loss", quiet=True, rank=1)  # writes nothing
>>> loop.run(lambda: (torch.tensor(1.0),), validate=lambda loop: None)
>>> loop.step, loop.done
(4, True)
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from musicflow.checkpoint import load_resume_state, resume_path, save_resume_state
from musicflow.errors import MusicflowError


class Settings(Protocol):
    """The optimisation settings a loop reads. ``TrainConfig`` and the benchmark's
    ``BenchmarkTrainConfig`` both have them, each with its own defaults and further fields."""

    steps: int
    lr: float
    weight_decay: float
    warmup: int
    clip: float
    valid_every: int
    minutes: float | None  # stop (and save) after this wall time


def warmup_cosine(warmup: int, steps: int, floor: float) -> Callable[[int], float]:
    """The learning-rate factor of each step: a linear warm-up over ``warmup`` steps, then half a
    cosine from 1 down to ``floor`` at ``steps``, where it stays. A floor above zero keeps the
    last steps learning; each model family keeps the floor it was tuned with.

    >>> f = warmup_cosine(2, 10, 0.1)
    >>> [round(f(s), 3) for s in (0, 1, 2, 6, 10, 12)]
    [0.5, 1.0, 1.0, 0.55, 0.1, 0.1]
    """

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = min((step - warmup) / max(steps - warmup, 1), 1.0)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))

    return factor


def dist_info() -> tuple[int, int, bool]:
    """Rank, world size, and whether to train with DDP: under ``torchrun`` (which sets
    ``LOCAL_RANK``), also with one process, or wherever ``WORLD_SIZE`` is above one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), world, world > 1 or "LOCAL_RANK" in os.environ


def distributed() -> bool:
    """Whether a process group is up, so that gradients are shared across processes."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()


@contextmanager
def process_group(dev: torch.device, enabled: bool) -> Iterator[torch.device]:
    """With ``enabled``, a process group for the run (nccl on GPU, gloo on CPU), torn down after
    it; yields the device this process trains on (its own GPU under ``torchrun``)."""
    if not enabled:
        yield dev
        return
    if dev.type == "cuda":
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(dev)
    torch.distributed.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    try:
        yield dev
    finally:
        torch.distributed.destroy_process_group()


class Loop:
    """Optimisation of ``objective`` for ``cfg.steps`` steps, with checkpoints at ``out``.

    ``record`` is the training record the checkpoint stores: the loop keeps its ``step`` and
    ``wall_time_s`` current before each ``write()``, which writes the checkpoint (atomically).
    ``resume_extra()`` adds state to the resume file that the checkpoint does not hold (the
    current weights, where the checkpoint keeps the best ones). ``floor`` ends the learning-rate
    schedule; ``ema`` is the weight of each step's loss in the running training loss that the bar
    shows and ``validate`` reads. Only rank 0 validates and writes; other ranks only train.
    """

    def __init__(self, objective: nn.Module, cfg: Settings, out: str | Path, generator: torch.Generator,
                 record: dict, write: Callable[[], object], *, floor: float, ema: float,
                 label: str, loss_name: str, quiet: bool = False, rank: int = 0,
                 resume_extra: Callable[[], dict] = dict):
        self.cfg, self.out, self.generator, self.record = cfg, Path(out), generator, record
        self.write, self.resume_extra = write, resume_extra
        self.ema, self.label, self.loss_name = ema, label, loss_name
        self.quiet, self.rank = quiet, rank
        self.params = list(objective.parameters())
        # DDP broadcasts rank 0's (possibly data-initialised) weights and syncs gradients.
        self.objective = DistributedDataParallel(objective) if distributed() else objective
        # A model may split its weights into groups with their own learning-rate scale and Adam
        # betas (the GAN's two players); the schedule scales every group alike.
        groups = getattr(objective, "param_groups", None)
        groups = groups(cfg.lr) if callable(groups) else [{"params": self.params}]
        self.opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, warmup_cosine(cfg.warmup, cfg.steps, floor))
        self.step, self.elapsed = 0, 0.0
        self.running: float | None = None

    @property
    def done(self) -> bool:
        """Whether every step has run (the resume file then goes)."""
        return self.step >= self.cfg.steps

    def resume(self) -> dict:
        """Continue an interrupted run: restore optimiser, schedule, noise generator, step and
        elapsed time from the resume file; return its whole state, the caller's extras among it."""
        state = load_resume_state(self.out, self.opt, self.sched, self.generator)
        self.step, self.elapsed = int(state["step"]), float(state["elapsed"])
        self.running = state.get("running", self.running)
        return state

    def save(self, final: bool) -> None:
        """On rank 0, write the checkpoint, then the resume file beside it or, once ``final``,
        remove it: a finished run leaves only its checkpoint."""
        if self.rank != 0:
            return
        self.record.update(step=self.step, wall_time_s=round(self.elapsed, 1))
        self.write()
        if final:
            resume_path(self.out).unlink(missing_ok=True)
        else:
            save_resume_state(self.out, self.opt, self.sched, self.generator, self.step, self.elapsed,
                              running=self.running, **self.resume_extra())

    def run(self, draw: Callable[[], tuple], validate: Callable[[Loop], None]) -> None:
        """Train from the current step until ``cfg.steps`` or until ``cfg.minutes`` are spent.

        Each step calls ``objective(*draw(), generator=...)``. Every ``valid_every`` steps, at
        the last step and when time is up, rank 0 calls ``validate(self)`` (which reads
        ``step``, ``running`` and ``elapsed``) and the checkpoint is saved.
        """
        cfg = self.cfg
        bar = tqdm(total=cfg.steps, initial=self.step, desc=self.label, disable=self.quiet, unit="step")
        t0 = time.perf_counter() - self.elapsed
        while self.step < cfg.steps:
            loss = self.objective(*draw(), generator=self.generator)
            if not torch.isfinite(loss):
                raise self._stopped(bar, f"loss is {loss.item()}")
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            if not torch.isfinite(nn.utils.clip_grad_norm_(self.params, cfg.clip)):
                raise self._stopped(bar, "gradient is not finite")
            self.opt.step()
            self.sched.step()
            self.step += 1
            self.elapsed = time.perf_counter() - t0
            w = self.ema
            self.running = loss.item() if self.running is None else (1 - w) * self.running + w * loss.item()
            bar.update(1)
            bar.set_postfix({self.loss_name: f"{self.running:.4f}"})
            out_of_time = cfg.minutes is not None and self.elapsed > cfg.minutes * 60
            if self.step % cfg.valid_every == 0 or self.step == cfg.steps or out_of_time:
                if self.rank == 0:
                    validate(self)
                self.save(final=self.done)
                if distributed():
                    torch.distributed.barrier()
            if out_of_time:
                break
        bar.close()
        if not self.done and not self.quiet:
            tqdm.write(f"stopped after {cfg.minutes} minutes at step {self.step}; resume=True continues")

    def _stopped(self, bar, why: str) -> MusicflowError:
        bar.close()
        return MusicflowError(f"training stopped at step {self.step}: {why} "
                              f"(last good checkpoint kept at {self.out}; try a lower lr)")


def current_state(model: nn.Module, rng) -> Callable[[], dict]:
    """What a resume file adds for a run that continues exactly: the current weights (the
    checkpoint keeps the best), the batch stream ``rng`` (a numpy Generator) and the dropout stream."""
    return lambda: {"model": model.state_dict(), "batches": rng.bit_generator.state,
                    "torch_rng": torch.get_rng_state()}


def run_seeded(loop: Loop, model: nn.Module, rng, seed: int, resume: bool,
               draw: Callable[[], tuple], validate: Callable[[Loop], None], rank: int = 0) -> None:
    """Run ``loop`` with dropout drawn from the global generator seeded with ``seed`` (the caller's
    generator left as it was). With ``resume``, restore what :func:`current_state` saved, so the
    run continues as an uninterrupted one would; a resume file without the batch stream (an older
    run) reseeds the batches from ``seed`` and the step, as does every process but the first of a
    distributed run (the resume file holds the first process's streams)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        if resume:
            state = loop.resume()
            model.load_state_dict(state["model"])
            if "batches" in state and rank == 0:
                rng.bit_generator.state = state["batches"]
                torch.set_rng_state(state["torch_rng"])
            else:
                rng.bit_generator.state = np.random.default_rng([seed, loop.step]).bit_generator.state
        loop.run(draw, validate)
