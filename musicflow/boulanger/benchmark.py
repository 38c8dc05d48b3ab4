"""The polyphonic-music benchmark (Boulanger-Lewandowski et al. 2012): NLL in nats per time step.

Every number here is a negative log-likelihood per time step of the data (one frame of 88 piano
keys, MIDI 21..108), averaged over all time steps of a split, the unit of the published table:

    NLL = -(1 / sum_pieces T_i) * sum_pieces sum_t log p(x_t | x_<t).

For :class:`~musicflow.flows.frame.FrameFlow` each ``log p(x_t | x_<t)`` is the log-likelihood of a
window of one frame given every frame before it in the piece (the first frame of a piece is
scored given nothing: a silent frame and the learned initial state). Scoring longer windows with
their preceding frames as context gives the same sum (the chain rule; ``tests/test_jsb.py`` checks
it). Each window log-likelihood is a dequantization lower bound, ``E_q[log p(x + u) - log q(u|x)]``
estimated with one noise draw per frame, so the NLL estimates an *upper bound* on the model's
discrete NLL (the bound holds in expectation over the draws); :func:`flow_nll` repeats the whole
evaluation with ``samples`` independent noise draws and reports their mean and standard error,
plus the tighter importance-weighted bound ``-sum_pieces log mean_s exp(log w_s(piece)) / sum T_i``
(also an upper bound in expectation, Burda et al. 2016).

The baselines are fitted on the training split: ``uniform`` (each key on with probability 1/2,
``88 ln 2`` nats), ``bernoulli`` (independent Bernoulli per key) and ``markov`` (per key, a
Bernoulli given that key in the previous step), with counts smoothed by +0.5.
"""

from __future__ import annotations

import copy
import hashlib
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from musicflow.errors import MusicflowError
from musicflow.flows.frame import FrameFlow
from musicflow.io.boulanger import KEYS, LOW, frames, read_boulanger

KIND = "frameflow"


def load_split(path: str | Path, split: str) -> list[np.ndarray]:
    """The pieces of one split as boolean ``(T, 88)`` arrays; a missing split is a one-line error."""
    data = read_boulanger(path)
    if split not in data:
        hint = (" (the files in shared/data hold train and valid only; the complete original file "
                "has the test split)") if split == "test" else ""
        raise MusicflowError(f"{path}: no '{split}' split (has {', '.join(data)}){hint}")
    return [frames(p) for p in data[split]]


def pad(pieces: list[np.ndarray], shift: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Pieces as a zero-padded ``(B, T_max, 88)`` float tensor and their lengths ``(B,)``;
    ``shift`` transposes by semitones (keys moved past the ends are dropped).

    >>> rolls, lengths = pad([np.ones((2, 88), bool), np.ones((3, 88), bool)], shift=1)
    >>> rolls.shape, lengths.tolist(), rolls[0, 0, :2].tolist()
    (torch.Size([2, 3, 88]), [2, 3], [0.0, 1.0])
    """
    lengths = torch.tensor([len(p) for p in pieces])
    out = torch.zeros(len(pieces), int(lengths.max()), KEYS)
    for i, p in enumerate(pieces):
        t = torch.from_numpy(p).float()
        if shift > 0:
            t = torch.cat([t.new_zeros(len(p), shift), t[:, :-shift]], dim=1)
        elif shift < 0:
            t = torch.cat([t[:, -shift:], t.new_zeros(len(p), -shift)], dim=1)
        out[i, : len(p)] = t
    return out, lengths


# -- baselines ---------------------------------------------------------------------------------


def uniform_nll() -> float:
    """Every key on with probability 1/2: ``88 ln 2`` nats per step."""
    return KEYS * math.log(2)


def bernoulli_nll(train: list[np.ndarray], test: list[np.ndarray], smoothing: float = 0.5) -> float:
    """Nats per step of ``test`` under an independent Bernoulli per key fitted on ``train``.

    >>> train = [np.array([[1] + [0] * 87, [0] * 88], bool)]   # key 0 on in 1 of 2 steps
    >>> round(bernoulli_nll(train, train, smoothing=0.0), 4)   # ln 2: only key 0 is uncertain
    0.6931
    """
    x = np.concatenate(train).astype(np.float64)
    p = (x.sum(0) + smoothing) / (len(x) + 2 * smoothing)
    y = np.concatenate(test)
    with np.errstate(divide="ignore"):
        ll = np.where(y, np.log(p), np.log1p(-p))
    return float(-ll.sum() / len(y))


def markov_nll(train: list[np.ndarray], test: list[np.ndarray], smoothing: float = 0.5) -> float:
    """Nats per step under a first-order Markov chain per key (a silent step before each piece)."""

    def pairs(pieces):
        prev = np.concatenate([np.vstack([np.zeros((1, KEYS), bool), p[:-1]]) for p in pieces])
        return prev, np.concatenate(pieces)

    prev, cur = pairs(train)
    p_on = np.stack([((cur & (prev == s)).sum(0) + smoothing) / ((prev == s).sum(0) + 2 * smoothing)
                     for s in (False, True)])  # (2, 88): P(on | previous off / on)
    prev, cur = pairs(test)
    p = np.where(prev, p_on[1], p_on[0])
    with np.errstate(divide="ignore"):
        ll = np.where(cur, np.log(p), np.log1p(-p))
    return float(-ll.sum() / len(cur))


# -- the flow ------------------------------------------------------------------------------------


@torch.no_grad()
def flow_nll(model, pieces: list[np.ndarray], samples: int = 4, seed: int = 0,
             batch_size: int = 32) -> dict:
    """Upper bounds on the model's NLL in nats per step (see the module docstring).

    Returns ``nats_per_step`` (mean over ``samples`` dequantization draws), ``stderr``,
    ``per_sample``, ``iw_nats_per_step``, ``bits_per_dim`` (per key and step), ``frames``, ``pieces``.
    """
    if samples < 1:
        raise MusicflowError(f"--samples must be at least 1, got {samples}")
    was = model.training
    model.eval()
    per_piece = np.zeros((samples, len(pieces)))
    for s in range(samples):
        gen = torch.Generator().manual_seed(seed + s)
        for b in range(0, len(pieces), batch_size):
            rolls, lengths = pad(pieces[b:b + batch_size])
            lp = model.sequence_log_prob(rolls, lengths, gen)
            per_piece[s, b:b + batch_size] = lp.sum(1).double().numpy()
    model.train(was)
    n_frames = int(sum(len(p) for p in pieces))
    nll = -per_piece.sum(1) / n_frames
    iw = per_piece.max(0) + np.log(np.exp(per_piece - per_piece.max(0)).mean(0))
    return {"nats_per_step": float(nll.mean()),
            "stderr": float(nll.std(ddof=1) / math.sqrt(samples)) if samples > 1 else None,
            "per_sample": [round(float(v), 4) for v in nll],
            "iw_nats_per_step": float(-iw.sum() / n_frames),
            "bits_per_dim": float(nll.mean() / (KEYS * math.log(2))),
            "frames": n_frames, "pieces": len(pieces), "samples": samples, "seed": seed}


def evaluate(checkpoint: str | Path, data: str | Path, split: str = "valid", samples: int = 4,
             seed: int = 0) -> dict:
    """The benchmark report for ``checkpoint`` on ``split`` of ``data``, baselines included."""
    from musicflow.checkpoint import load_checkpoint

    ck = load_checkpoint(checkpoint)
    if not isinstance(ck.model, FrameFlow):
        raise MusicflowError(f"{checkpoint}: a '{ck.kind}' checkpoint, not a {KIND} benchmark model")
    train, test = load_split(data, "train"), load_split(data, split)
    t0 = time.perf_counter()
    flow = flow_nll(ck.model, test, samples, seed)
    return {
        "data": str(data), "data_sha1": file_sha1(data), "split": split, "checkpoint": str(checkpoint),
        "trained_on_sha1": ck.info.get("data_sha1"),
        "params": sum(p.numel() for p in ck.model.parameters()),
        "flow": flow,
        "baselines_nats_per_step": {"uniform": uniform_nll(), "bernoulli": bernoulli_nll(train, test),
                                    "markov": markov_nll(train, test)},
        "eval_s": round(time.perf_counter() - t0, 1),
        "unit": "nats per time step (88 keys, MIDI 21..108), averaged over all steps of the split; "
                "the flow's figures are upper bounds through variational dequantization",
    }


def file_sha1(path: str | Path) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()[:16]


# -- training ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JSBTrainConfig:
    """Optimisation settings; saved in the checkpoint's training record."""

    steps: int = 3000
    batch_size: int = 16  # pieces per step
    lr: float = 1e-3
    weight_decay: float = 1e-5
    warmup: int = 100
    clip: float = 5.0
    transpose: int = 3  # random shift in [-transpose, transpose] semitones per batch
    valid_every: int = 250
    seed: int = 0
    minutes: float | None = None
    steps_per_quarter: int = 1  # what one time step of the data is (for the stored spec)


def train_jsb(data: str | Path, out: str | Path, cfg: JSBTrainConfig, overrides: dict | None = None,
              quiet: bool = False, command: str = "", resume: bool = False) -> dict:
    """Train a :class:`~musicflow.flows.frame.FrameFlow` on the ``train`` split of a benchmark
    file, keep the weights with the best ``valid`` NLL, and write the checkpoint to ``out``.

    Whole pieces are scored per step (teacher forcing over all their frames at once). The model
    range defaults to the 64 keys 36..99 (the data uses 43..96); the keys outside get the fixed
    Bernoulli fitted on ``train``. Returns the training record stored in the checkpoint.

    At every validation ``out`` is rewritten (atomically) with the best weights so far, and
    ``out + '.resume'`` holds the current weights, optimiser, schedule and noise state, so that
    ``resume=True`` continues an interrupted run; the resume file goes when training completes.
    """
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
    from musicflow.roll import PianoRollSpec

    train = load_split(data, "train")
    valid = load_split(data, "valid")
    if resume:
        require_resume(out)
        best_ck = load_checkpoint(out)
        if best_ck.kind != KIND or best_ck.info.get("data_sha1") != file_sha1(data):
            raise MusicflowError(f"{out}: not an unfinished {KIND} run on {data}")
        model = copy.deepcopy(best_ck.model)  # its weights: the current ones, restored below
    else:
        config_cls, model_cls = model_classes(KIND)
        config = config_cls.from_dict({**config_cls().to_dict(), **(overrides or {})})
        with torch.random.fork_rng():  # seeded weights without touching the caller's global RNG
            torch.manual_seed(cfg.seed)
            model = model_cls(config)
    all_train = torch.from_numpy(np.concatenate(train))
    if not resume:
        model.fit_outside(all_train)
    inside = all_train[:, model.config.offset:model.config.offset + model.config.keys].sum()
    if inside < all_train.sum():
        raise MusicflowError(f"{data}: training notes lie outside the modelled keys "
                             f"{model.config.low}..{model.config.low + model.config.keys - 1}")
    gen = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)

    def draw():
        idx = rng.choice(len(train), size=min(cfg.batch_size, len(train)), replace=False)
        shift = int(rng.integers(-cfg.transpose, cfg.transpose + 1)) if cfg.transpose else 0
        return pad([train[i] for i in idx], shift)

    if not resume:
        model.initialize(*draw(), generator=gen)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def schedule(step: int) -> float:
        if step < cfg.warmup:
            return (step + 1) / cfg.warmup
        t = min((step - cfg.warmup) / max(cfg.steps - cfg.warmup, 1), 1.0)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    spec = PianoRollSpec(steps_per_quarter=cfg.steps_per_quarter, window_steps=1, low=LOW,
                         pitches=KEYS, key_normalize=False)
    record: dict = {"train_config": asdict(cfg), "data": str(data), "data_sha1": file_sha1(data),
                    "command": command, "train_pieces": len(train), "valid_pieces": len(valid),
                    "history": []}
    best, best_state, step, elapsed = math.inf, None, 0, 0.0
    if resume:
        record = {**best_ck.info, "train_config": asdict(cfg),
                  "command": command or best_ck.info.get("command")}
        best, best_state = best_ck.info["valid_nats_per_step"], copy.deepcopy(best_ck.model.state_dict())
        state = load_resume_state(out, opt, sched, gen)
        model.load_state_dict(state["model"])
        step, elapsed = int(state["step"]), float(state["elapsed"])
        rng = np.random.default_rng([cfg.seed, step])

    def save(final: bool) -> None:
        record.update(step=step, wall_time_s=round(elapsed, 1))
        best_model = copy.deepcopy(model)
        best_model.load_state_dict(best_state)
        save_checkpoint(out, KIND, best_model, spec, ["chorale"], record)
        if final:
            resume_path(out).unlink(missing_ok=True)
        else:
            save_resume_state(out, opt, sched, gen, step, elapsed, model=model.state_dict())

    bar = tqdm(total=cfg.steps, initial=step, desc="train jsb", disable=quiet, unit="step")
    t0, running = time.perf_counter() - elapsed, None
    while step < cfg.steps:
        rolls, lengths = draw()
        lp = model.sequence_log_prob(rolls, lengths, gen)
        loss = -lp.sum() / lengths.sum()
        if not torch.isfinite(loss):
            raise MusicflowError(f"training stopped at step {step}: loss is {loss.item()} (try a lower --lr)")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        opt.step()
        sched.step()
        step += 1
        running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
        bar.update(1)
        bar.set_postfix(nats=f"{running:.3f}")
        elapsed = time.perf_counter() - t0
        out_of_time = cfg.minutes is not None and elapsed > cfg.minutes * 60
        if step % cfg.valid_every == 0 or step == cfg.steps or out_of_time:
            v = flow_nll(model, valid, samples=1, seed=0)["nats_per_step"]
            record["history"].append({"step": step, "train_nats": round(running, 4),
                                      "valid_nats": round(v, 4), "elapsed_s": round(elapsed, 1)})
            if not quiet:
                tqdm.write(f"step {step}: train {running:.3f}  valid {v:.3f} nats/step  ({elapsed:.0f} s)")
            if v < best:
                best, best_state = v, copy.deepcopy(model.state_dict())
                record.update(best_step=step, valid_nats_per_step=round(v, 4))
            model.train()
            save(final=step >= cfg.steps)
        if out_of_time:
            break
    bar.close()
    if step < cfg.steps and not quiet:
        tqdm.write(f"stopped after {cfg.minutes} minutes at step {step}; --resume continues")
    return record
