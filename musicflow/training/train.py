"""Training: a small loop over the Flow interface.

AdamW with linear warm-up then cosine decay, gradient clipping, class-balanced sampling across
genres, transposition augmentation, validation bits/dim per genre, atomic periodic checkpoints,
``resume``, and a guard that stops on a non-finite loss without touching the last good checkpoint.
Under ``torchrun`` (``WORLD_SIZE`` > 1) it trains with DistributedDataParallel, gloo on CPU and
nccl on GPU, with no other flag.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from musicflow.checkpoint import (
    load_checkpoint,
    load_resume_state,
    model_classes,
    require_resume,
    resume_path,
    save_checkpoint,
    save_resume_state,
)
from musicflow.data.dataset import Dataset
from musicflow.data.windows import WindowSet, thin_context
from musicflow.errors import MusicflowError
from musicflow.flows.base import Condition


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; saved in the checkpoint's training record."""

    steps: int = 10000
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-5
    warmup: int = 200
    clip: float = 5.0
    transpose: int = 3  # random shift in [-transpose, transpose] semitones per batch
    valid_every: int = 500
    valid_windows: int = 200  # per genre
    seed: int = 0
    minutes: float | None = None  # stop (and save) after this wall time
    context_noise: float = 0.0  # thin_context's rate: silence context rows (not held ones)
    context_noise_scope: str = "all"  # "polyphonic": thin only contexts of more than one voice
    start_share: float = 0.0  # at least this share of each genre's draws from its pieces' openings
    init: str | None = None  # start from this checkpoint's weights (fine-tuning), new optimiser

    def __post_init__(self) -> None:
        """Bad settings fail here with the CLI's one-line errors, from the CLI and the API alike."""
        if self.steps < 1 or self.batch_size < 1 or not self.lr > 0:
            raise MusicflowError("--steps, --batch-size and --lr must be positive")
        if self.warmup < 0 or self.transpose < 0 or self.weight_decay < 0 or not self.clip > 0:
            raise MusicflowError("--warmup, --transpose and the weight decay must be >= 0, --clip > 0")
        if self.valid_every < 1 or self.valid_windows < 1:
            raise MusicflowError("--valid-every and the validation windows must be at least 1")
        if self.minutes is not None and not self.minutes >= 0:
            raise MusicflowError(f"--minutes {self.minutes}: must be >= 0")
        if not 0.0 <= self.context_noise <= 1.0:
            raise MusicflowError(f"--context-noise {self.context_noise}: must be in [0, 1]")
        if self.context_noise_scope not in ("all", "polyphonic"):
            raise MusicflowError(f"--context-noise-scope {self.context_noise_scope!r}: use all or polyphonic")
        if not 0.0 <= self.start_share < 1.0:
            raise MusicflowError(f"--start-share {self.start_share}: must be in [0, 1)")


class _Objective(nn.Module):
    """The model's training loss of a batch through ``forward``, so DDP sees the call and syncs
    gradients: ``model.loss`` where the model has one (the neural ODE's flow matching or penalised
    likelihood), else bits/dim."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x, ctx, g, generator=None, outline=None):
        return self.model.loss(x, Condition(g, ctx, outline), generator=generator).mean()


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise MusicflowError("--device cuda: no CUDA device is available")
    if device not in ("cpu", "cuda"):
        raise MusicflowError(f"--device {device}: use auto, cpu or cuda")
    return torch.device(device)


def _lr_lambda(cfg: TrainConfig):
    def f(step: int) -> float:
        if step < cfg.warmup:
            return (step + 1) / cfg.warmup
        t = (step - cfg.warmup) / max(cfg.steps - cfg.warmup, 1)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
    return f


@torch.no_grad()
def evaluate_bpd(model, windows: WindowSet, per_genre: int, device, seed: int = 0,
                 batch_size: int = 128, estimate: bool = True) -> dict[str, float]:
    """Mean bits/dim per genre on up to ``per_genre`` windows of each (fixed choice and noise);
    with ``estimate``, a model's ``valid_bits_per_dim`` (a cheaper estimate, e.g. the neural
    ODE's) where it has one, else always its own ``bits_per_dim``."""
    was = model.training
    model.eval()
    rng = np.random.default_rng(seed)
    gen = torch.Generator(device=device).manual_seed(seed)
    bpd = model.valid_bits_per_dim if estimate else model.bits_per_dim
    out = {}
    for gi, name in enumerate(windows.genres):
        idx = np.flatnonzero(windows.labels == gi)
        if not len(idx):
            continue
        idx = rng.choice(idx, size=min(per_genre, len(idx)), replace=False)
        vals = []
        for s in range(0, len(idx), batch_size):
            x, ctx, g = (t.to(device) for t in windows.batch(idx[s:s + batch_size]))
            vals.append(bpd(x, Condition(g, ctx), generator=gen).cpu())
        out[name] = float(torch.cat(vals).mean())
    model.train(was)
    return out


def model_windows(ds: Dataset, split: str, mcfg, genres: list[str], outlines: bool = False) -> WindowSet:
    """The windows a model of ``mcfg.steps`` steps trains on: every bar line for windows of a bar
    or more (a hop of half a window lets 3/4 bars all start one), every beat-aligned ``steps``
    for shorter windows; with their blocks' outlines for a model conditioned on them."""
    beat = ds.spec.steps_per_quarter
    kw = {"genres": genres, "outlines": outlines}
    if mcfg.steps < 4 * beat:
        return WindowSet(ds, split, mcfg.steps, mcfg.context_steps, grid=mcfg.steps, **kw)
    return WindowSet(ds, split, mcfg.steps, mcfg.context_steps, hop=mcfg.steps // 2, **kw)


def outline_bank(windows: WindowSet, seed: int, per_genre: int = 1000) -> dict[str, list[list[float]]]:
    """Up to ``per_genre`` outlines of whole blocks per genre (a seeded choice), stored in the
    checkpoint: the real plans that composing with an outlined model draws from."""
    rng = np.random.default_rng(seed)
    bank = {}
    for gi, name in enumerate(windows.genres):
        rows = windows.block_outline[windows.block_labels == gi]
        if len(rows) > per_genre:
            rows = rows[np.sort(rng.choice(len(rows), per_genre, replace=False))]
        bank[name] = [[round(float(v), 4) for v in r] for r in rows]
    return bank


def calibrate(model, valid_w: WindowSet, spec, temperature: float = 1.0) -> dict:
    """The checkpoint fields that :mod:`musicflow.sampling` adds: per-genre thresholds."""
    from musicflow.sampling import calibrate_thresholds

    was = model.training
    thresholds = calibrate_thresholds(model, valid_w, spec, temperature)
    model.train(was)
    return {"thresholds": thresholds, "calibration": {
        "temperature": temperature, "split": "valid", "seed": 0, "pieces": 16, "bars": 4,
        "target": "mean sustain density of the genre's validation windows"}}


def _dist_info() -> tuple[int, int, bool]:
    """Rank, world size, and whether to train with DDP: under ``torchrun`` (which sets
    ``LOCAL_RANK``), also with one process, or wherever ``WORLD_SIZE`` is above one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), world, world > 1 or "LOCAL_RANK" in os.environ


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def train(
    kind: str,
    data: str | Path,
    out: str | Path,
    cfg: TrainConfig,
    model_overrides: dict | None = None,
    resume: bool = False,
    device: str = "auto",
    quiet: bool = False,
    command: str = "",
) -> dict:
    """Train a model of ``kind`` on dataset ``data``; write the checkpoint to ``out``.

    Returns the training record stored in the checkpoint. The optimiser state lives beside the
    checkpoint in ``out + '.resume'`` until training completes.
    """
    rank, world, ddp = _dist_info()
    dev = pick_device(device)
    if ddp:
        import torch.distributed as dist

        if dev.type == "cuda":
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(dev)
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    try:
        return _train(kind, Path(data), Path(out), cfg, model_overrides or {}, resume, dev,
                      quiet or rank != 0, command, rank, world)
    finally:
        if ddp:
            torch.distributed.destroy_process_group()


def _initial(kind: str, init: str, ds: Dataset, overrides: dict) -> tuple[nn.Module, list[str], dict]:
    """Model, genres and training record to fine-tune from checkpoint ``init``."""
    ck = load_checkpoint(init)
    if ck.kind != kind:
        raise MusicflowError(f"--init {init}: a {ck.kind} checkpoint, not {kind}")
    if overrides:
        raise MusicflowError(f"--init {init}: the model's config comes from the checkpoint; drop --set")
    if ck.spec != ds.spec or not set(ck.genres) <= set(ds.genres):
        raise MusicflowError(f"--init {init}: trained on another representation or genres than this data")
    earlier = {k: ck.info[k] for k in ("command", "step", "wall_time_s", "valid_bpd", "history")
               if k in ck.info}
    return ck.model, ck.genres, {"init": {"checkpoint": str(init), **earlier}}


def _train(kind, data, out, cfg, overrides, resume, dev, quiet, command, rank, world) -> dict:
    ds = Dataset.load(data)
    config_cls, model_cls = model_classes(kind)
    if resume:
        require_resume(out)
        ck = load_checkpoint(out)
        if ck.info.get("data_hash") != ds.content_hash():
            raise MusicflowError(f"{out}: was trained on other data than {data}")
        model, genres = ck.model, ck.genres
        record = ck.info
    elif cfg.init:
        model, genres, record = _initial(kind, cfg.init, ds, overrides)
    else:
        genres = ds.genres
        base = dict(pitches=ds.spec.pitches, n_genres=len(genres))
        torch.manual_seed(cfg.seed)  # the initial weights (the same on every rank)
        model = model_cls(config_cls.from_dict({**config_cls().to_dict(), **base, **overrides}))
        record = {}
    mcfg = model.config
    outlined = model.takes_outline
    train_w, valid_w = (model_windows(ds, split, mcfg, genres, outlined) for split in ("train", "valid"))
    if not len(train_w):
        raise MusicflowError(f"{data}: no training windows")
    model.to(dev).train()
    run_seed = cfg.seed * 1000 + rank
    torch.manual_seed(run_seed)  # noise drawn inside the model: dequantization, dropout
    gen = torch.Generator().manual_seed(run_seed)
    weights = torch.from_numpy(train_w.balanced_weights(cfg.start_share))
    np_rng = np.random.default_rng(run_seed)

    def draw():
        idx = torch.multinomial(weights, cfg.batch_size, replacement=True, generator=gen).numpy()
        shift = int(np_rng.integers(-cfg.transpose, cfg.transpose + 1)) if cfg.transpose else 0
        x, ctx, g = train_w.batch(idx, shift)
        ctx = thin_context(ctx, cfg.context_noise, gen, cfg.context_noise_scope == "polyphonic")
        plan = train_w.outlines(idx, shift).to(dev) if outlined else None
        return x.to(dev), ctx.to(dev), g.to(dev), plan

    if not resume and not cfg.init and model.data_init:
        x, ctx, g, plan = draw()
        model.initialize(x, Condition(g, ctx, plan))
    objective = _Objective(model)
    if _distributed():
        from torch.nn.parallel import DistributedDataParallel

        objective = DistributedDataParallel(objective)  # broadcasts rank 0's initialised weights
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg))
    step, elapsed = 0, 0.0
    if resume:
        state = load_resume_state(out, opt, sched, gen)
        step, elapsed = int(state["step"]), float(state["elapsed"])
        np_rng = np.random.default_rng([cfg.seed, step, rank])
    record.update({"train_config": asdict(cfg), "data": str(data), "data_hash": ds.content_hash(),
                   "command": command or record.get("command", ""), "world_size": world,
                   "ddp_backend": torch.distributed.get_backend() if _distributed() else None,
                   "train_windows": len(train_w), "valid_windows": len(valid_w)})
    if model.valid_note is not None:
        record["valid_note"] = model.valid_note
    if outlined:
        record["outlines"] = outline_bank(train_w, cfg.seed)
    loss_name = model.loss_name

    def save(final: bool) -> None:
        if rank != 0:
            return
        record.update(step=step, wall_time_s=round(elapsed, 1))
        save_checkpoint(out, kind, model, ds.spec, genres, record)
        if final:
            resume_path(out).unlink(missing_ok=True)
        else:
            save_resume_state(out, opt, sched, gen, step, elapsed)

    bar = tqdm(total=cfg.steps, initial=step, desc=f"train {kind}", disable=quiet, unit="step")
    t0 = time.perf_counter() - elapsed
    running = None
    while step < cfg.steps:
        x, ctx, g, plan = draw()
        loss = objective(x, ctx, g, generator=gen, outline=plan)
        if not torch.isfinite(loss):
            bar.close()
            raise MusicflowError(f"training stopped at step {step}: loss is {loss.item()} "
                                 f"(last good checkpoint kept at {out}; try a lower --lr)")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        if not torch.isfinite(gnorm):
            bar.close()
            raise MusicflowError(f"training stopped at step {step}: gradient is not finite "
                                 f"(last good checkpoint kept at {out}; try a lower --lr)")
        opt.step()
        sched.step()
        step += 1
        elapsed = time.perf_counter() - t0
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        bar.update(1)
        bar.set_postfix({loss_name: f"{running:.4f}"})
        out_of_time = cfg.minutes is not None and elapsed > cfg.minutes * 60
        if step % cfg.valid_every == 0 or step == cfg.steps or out_of_time:
            if rank == 0:
                per = evaluate_bpd(model, valid_w, cfg.valid_windows, dev)
                mean = float(np.mean(list(per.values()))) if per else float("nan")
                record.setdefault("history", []).append(
                    {"step": step, f"train_{loss_name}": round(running, 5), "valid_bpd": round(mean, 5),
                     "elapsed_s": round(elapsed, 1)})
                record["valid_bpd"], record["valid_bpd_per_genre"] = mean, per
                if not quiet:
                    tqdm.write(f"step {step}: train {loss_name} {running:.4f}  valid {mean:.4f} bits/dim  "
                               + " ".join(f"{k}={v:.4f}" for k, v in per.items()))
            save(final=step >= cfg.steps)
            if _distributed():
                torch.distributed.barrier()
        if out_of_time:
            break
    bar.close()
    if rank == 0:
        record.update(calibrate(model, valid_w, ds.spec))
        save(final=step >= cfg.steps)
    if step < cfg.steps and rank == 0 and not quiet:
        tqdm.write(f"stopped after {cfg.minutes} minutes at step {step}; --resume continues")
    return record
