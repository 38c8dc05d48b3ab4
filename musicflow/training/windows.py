"""Training the window models (Glow, the neural ODE, the VAE) on a corpus's windows.

What is theirs alone lives here: class-balanced sampling across genres, transposition and
context-thinning augmentation, outlines of blocks for an outlined model, validation bits/dim per
genre, fine-tuning from another checkpoint, and threshold calibration at the end. The optimiser,
schedule, clipping, time budget, non-finite guard, checkpoints with resume and DDP are the shared
:class:`~musicflow.training.loop.Loop`'s. Under ``torchrun`` (``WORLD_SIZE`` > 1) it trains with
DistributedDataParallel, gloo on CPU and nccl on GPU, with no other flag.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from musicflow.checkpoint import load_checkpoint, new_model, require_resume, save_checkpoint
from musicflow.data.dataset import Dataset
from musicflow.data.windows import WindowSet, thin_context
from musicflow.errors import MusicflowError
from musicflow.flows.base import Condition
from musicflow.training.loop import Loop, dist_info, distributed, process_group
from musicflow.training.settings import TrainConfig

#: The window models' learning rate decays to this share of its peak.
FLOOR = 0.1
#: How far (relative) a genre's blocks may plan a denser or sparser stretch than its real 128-step
#: stretches before a ``"matched"`` bank draws its plans from those stretches (:func:`outline_bank`).
BANK_TOLERANCE = 0.15
#: The weight of each step's loss in the running training loss the history records.
EMA = 0.02


class _Objective(nn.Module):
    """The model's training loss of a batch through ``forward``, so DDP sees the call and syncs
    gradients: ``model.loss`` where the model has one (the neural ODE's flow matching or penalised
    likelihood), else bits/dim."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x, ctx, g, outline=None, generator=None):
        return self.model.loss(x, Condition(g, ctx, outline), generator=generator).mean()

    def param_groups(self, lr: float) -> list[dict]:
        """The optimiser's parameter groups: the model's own where it splits its weights."""
        own = getattr(self.model, "param_groups", None)
        return own(lr) if callable(own) else [{"params": list(self.model.parameters())}]


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise MusicflowError("device cuda: no CUDA device is available")
    if device not in ("cpu", "cuda"):
        raise MusicflowError(f"device {device!r}: use auto, cpu or cuda")
    return torch.device(device)


def _per_genre(windows: WindowSet, per_genre: int, device, seed: int, batch_size: int):
    """Each genre's name with its batches ``(x, ctx, genre)`` of up to ``per_genre`` of its
    windows, a fixed choice from ``seed`` (drawn genre by genre, in order)."""
    rng = np.random.default_rng(seed)
    for gi, name in enumerate(windows.genres):
        idx = np.flatnonzero(windows.labels == gi)
        if not len(idx):
            continue
        idx = rng.choice(idx, size=min(per_genre, len(idx)), replace=False)
        yield name, (tuple(t.to(device) for t in windows.batch(idx[s:s + batch_size]))
                     for s in range(0, len(idx), batch_size))


@torch.no_grad()
def evaluate_bpd(model, windows: WindowSet, per_genre: int, device, seed: int = 0,
                 batch_size: int = 128, estimate: bool = True) -> dict[str, float]:
    """Mean bits/dim per genre on up to ``per_genre`` windows of each (fixed choice and noise);
    with ``estimate``, a model's ``valid_bits_per_dim`` (a cheaper estimate, e.g. the neural
    ODE's) where it has one, else always its own ``bits_per_dim``."""
    was = model.training
    model.eval()
    gen = torch.Generator(device=device).manual_seed(seed)
    bpd = model.valid_bits_per_dim if estimate else model.bits_per_dim
    out = {}
    for name, batches in _per_genre(windows, per_genre, device, seed, batch_size):
        vals = [bpd(x, Condition(g, ctx), generator=gen).cpu() for x, ctx, g in batches]
        out[name] = float(torch.cat(vals).mean())
    model.train(was)
    return out


def model_windows(ds: Dataset, split: str, mcfg, genres: list[str], outlines: bool = False) -> WindowSet:
    """The windows a model of ``mcfg.steps`` steps trains on: every bar line for windows of a bar
    or more (a hop of half a window lets 3/4 bars all start one), every beat-aligned ``steps``
    for shorter windows; with their blocks' outlines for a model conditioned on them."""
    beat = ds.spec.steps_per_quarter
    kw = {"genres": genres, "outlines": outlines, "stretches": getattr(mcfg, "outline_stretch", False)}
    if mcfg.steps < 4 * beat:
        return WindowSet(ds, split, mcfg.steps, mcfg.context_steps, grid=mcfg.steps, **kw)
    return WindowSet(ds, split, mcfg.steps, mcfg.context_steps, hop=mcfg.steps // 2, **kw)


def outline_bank(windows: WindowSet, seed: int, per_genre: int = 1000,
                 stretches: WindowSet | None = None) -> dict[str, list[list[float]]]:
    """Up to ``per_genre`` outlines of whole blocks per genre (a seeded choice), stored in the
    checkpoint: the real plans that composing with an outlined model draws from.

    With ``stretches`` (the same pieces read in 128-step stretches, :class:`WindowSet`'s
    ``stretches``), a genre draws its plans from the stretches where its blocks plan another piece
    than it composes: where their mean density of onsets differs from the stretches' by more than
    :data:`BANK_TOLERANCE` (eight bars of a 2/4 tune written in eighths plan a denser stretch than
    the genre's real ones hold), or where half its blocks or more hold at most half a stretch (a
    composed piece then spans two of its blocks, and its real range is theirs together: a range grows
    with length, a density does not). The blocks are drawn first whatever a genre's source, so
    the other genres' plans stay as they were."""
    rng = np.random.default_rng(seed)
    bank = {}
    for gi, name in enumerate(windows.genres):
        mine = windows.block_labels == gi
        rows = every = windows.block_outline[mine]
        if len(rows) > per_genre:
            rows = rows[np.sort(rng.choice(len(rows), per_genre, replace=False))]
        theirs = np.zeros(0, bool) if stretches is None else stretches.block_labels == gi
        if len(every) and theirs.any():
            long = stretches.block_outline[theirs]
            short = np.mean(windows.block_steps[mine] * 2 <= np.median(stretches.block_steps[theirs])) >= 0.5
            if short or abs(every[:, 2].mean() / long[:, 2].mean() - 1) > BANK_TOLERANCE:
                pick = np.random.default_rng([seed, gi]).choice(len(long), min(per_genre, len(long)), False)
                rows = long[np.sort(pick)]
        bank[name] = [[round(float(v), 4) for v in r] for r in rows]
    return bank


def model_bank(ds: Dataset, windows: WindowSet, mcfg, genres: list[str],
               seed: int) -> dict[str, list[list[float]]]:
    """The plans an outlined model of config ``mcfg`` stores: :func:`outline_bank` of its training
    ``windows``, matched to 128-step stretches where the config's ``outline_bank`` is ``"matched"``."""
    stretches = None
    if getattr(mcfg, "outline_bank", "blocks") == "matched":  # only the neural ODE's config has it
        stretches = WindowSet(ds, "train", 16, 0, hop=16, genres=genres, outlines=True, stretches=True)
    return outline_bank(windows, seed, stretches=stretches)


def calibrate(model, valid_w: WindowSet, spec, temperature: float = 1.0) -> dict:
    """The checkpoint fields that :mod:`musicflow.sampling` adds: per-genre thresholds."""
    from musicflow.sampling import calibrate_thresholds

    was = model.training
    thresholds = calibrate_thresholds(model, valid_w, spec, temperature)
    model.train(was)
    return {"thresholds": thresholds, "calibration": {
        "temperature": temperature, "split": "valid", "seed": 0, "pieces": 16, "bars": 4,
        "target": "mean sustain density of the genre's validation windows"}}


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
    rank, world, ddp = dist_info()
    with process_group(pick_device(device), ddp) as dev:
        return _train(kind, Path(data), Path(out), cfg, model_overrides or {}, resume, dev,
                      quiet or rank != 0, command, rank, world)


def _initial(kind: str, init: str, ds: Dataset, overrides: dict) -> tuple[nn.Module, list[str], dict]:
    """Model, genres and training record to fine-tune from checkpoint ``init``."""
    ck = load_checkpoint(init)
    if ck.kind != kind:
        raise MusicflowError(f"init {init}: a {ck.kind} checkpoint, not {kind}")
    if overrides:
        raise MusicflowError(f"init {init}: the model config comes from the checkpoint; give no overrides")
    if ck.spec != ds.spec or not set(ck.genres) <= set(ds.genres):
        raise MusicflowError(f"init {init}: trained on another representation or genres than this data")
    earlier = {k: ck.info[k] for k in ("command", "step", "wall_time_s", "valid_bpd", "history")
               if k in ck.info}
    return ck.model, ck.genres, {"init": {"checkpoint": str(init), **earlier}}


def _model(kind: str, ds: Dataset, data: Path, out: Path, cfg: TrainConfig, overrides: dict,
           resume: bool) -> tuple[nn.Module, list[str], dict]:
    """Model, genres and training record to start from: the unfinished run at ``out``, the
    checkpoint to fine-tune, or fresh weights from ``cfg.seed``."""
    if resume:
        require_resume(out)
        ck = load_checkpoint(out)
        if ck.info.get("data_hash") != ds.content_hash():
            raise MusicflowError(f"{out}: was trained on other data than {data}")
        return ck.model, ck.genres, ck.info
    if cfg.init:
        return _initial(kind, cfg.init, ds, overrides)
    base = dict(pitches=ds.spec.pitches, n_genres=len(ds.genres))
    torch.manual_seed(cfg.seed)  # the initial weights (the same on every rank)
    return new_model(kind, {**base, **overrides}), ds.genres, {}


@torch.no_grad()
def sample_gap(model, windows: WindowSet, per_genre: int, device, seed: int = 0,
               batch_size: int = 128) -> dict[str, float]:
    """How far a model's windows, sampled given real contexts, are from the real windows, per
    genre: the total-variation distance between the pitches their sounding cells fall on plus the
    relative error of their density (0: the same). The validation figure of a model without a
    likelihood (the GAN); fixed windows and noise from ``seed``."""
    was = model.training
    model.eval()
    gen = torch.Generator(device=device).manual_seed(seed)
    out = {}
    for name, batches in _per_genre(windows, per_genre, device, seed, batch_size):
        real = fake = torch.zeros(())
        for x, ctx, g in batches:
            y = model.sample(len(x), Condition(g, ctx), generator=gen)
            real = real + x[:, 1].sum(dim=(0, 2)).cpu()
            fake = fake + y[:, 1].sum(dim=(0, 2)).cpu()
        tv = 0.5 * float((real / real.sum().clamp(min=1) - fake / fake.sum().clamp(min=1)).abs().sum())
        out[name] = tv + abs(float(fake.sum() - real.sum())) / max(float(real.sum()), 1.0)
    model.train(was)
    return out


def _validate(loop: Loop, model, valid_w: WindowSet, cfg: TrainConfig, dev, quiet: bool) -> None:
    """Bits/dim per genre on the validation windows (for a model without a likelihood, the
    :func:`sample_gap`), into the record's history."""
    figure = "valid_bpd" if model.has_likelihood else "valid_gap"
    per = (evaluate_bpd if model.has_likelihood else sample_gap)(model, valid_w, cfg.valid_windows, dev)
    mean = float(np.mean(list(per.values()))) if per else float("nan")
    row = {"step": loop.step, f"train_{loop.loss_name}": round(loop.running, 5), figure: round(mean, 5),
           "elapsed_s": round(loop.elapsed, 1)}
    if getattr(model, "last_losses", None) is not None:
        row["critic"], row["generator"] = (round(v, 5) for v in model.last_losses)
    loop.record.setdefault("history", []).append(row)
    loop.record[figure], loop.record[f"{figure}_per_genre"] = mean, per
    if not quiet:
        unit = "bits/dim" if model.has_likelihood else "gap"
        tqdm.write(f"step {loop.step}: train {loop.loss_name} {loop.running:.4f}  valid {mean:.4f} {unit}  "
                   + " ".join(f"{k}={v:.4f}" for k, v in per.items()))


def _train(kind, data, out, cfg, overrides, resume, dev, quiet, command, rank, world) -> dict:
    """The run behind :func:`train` in process ``rank`` of ``world``: data, model, batches, loop."""
    ds = Dataset.load(data)
    model, genres, record = _model(kind, ds, data, out, cfg, overrides, resume)
    mcfg, outlined = model.config, model.takes_outline
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
    loop = Loop(_Objective(model), cfg, out, gen, record,
                lambda: save_checkpoint(out, kind, model, ds.spec, genres, record),
                floor=FLOOR, ema=EMA, label=f"train {kind}", loss_name=model.loss_name, quiet=quiet,
                rank=rank)
    if resume:
        loop.resume()
        np_rng = np.random.default_rng([cfg.seed, loop.step, rank])
    record.update({"train_config": asdict(cfg), "data": str(data), "data_hash": ds.content_hash(),
                   "command": command or record.get("command", ""), "world_size": world,
                   "ddp_backend": torch.distributed.get_backend() if distributed() else None,
                   "train_windows": len(train_w), "valid_windows": len(valid_w)})
    if model.valid_note is not None:
        record["valid_note"] = model.valid_note
    if outlined:
        record["outlines"] = model_bank(ds, train_w, mcfg, genres, cfg.seed)
    loop.run(draw, lambda lp: _validate(lp, model, valid_w, cfg, dev, quiet))
    if rank == 0:
        record.update(calibrate(model, valid_w, ds.spec))
        loop.save(final=loop.done)
    return record
