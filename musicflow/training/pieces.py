"""Training a sequence flow (:class:`~musicflow.flows.keyflow.KeyFlow`) on a corpus's pieces.

The model reads a piece step by step from its start, so it trains on windows of whole pieces, not
on the window models' short contexts: each batch holds ``crop``-step windows (a share of them
where their piece starts, the rest from a random bar line), each read from the model's initial
state, with its genre and every step's phase in its bar. Genres are drawn in proportion to the
square root of their steps, so the small ones (classical, medieval) are seen more often than
their share of the corpus without being learnt by heart. Validation scores fixed windows of the
``valid`` split (the same number per genre) in nats per step; the checkpoint keeps the best
weights, the resume file the current ones.
"""

from __future__ import annotations

import copy
import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from musicflow.checkpoint import load_checkpoint, new_model, require_resume, save_checkpoint
from musicflow.data.dataset import Dataset
from musicflow.data.restatement import restatements
from musicflow.errors import MusicflowError
from musicflow.roll import bar_phases, key_states
from musicflow.training.loop import Loop, current_state, dist_info, distributed, process_group, run_seeded
from musicflow.training.settings import PieceTrainConfig

#: The learning rate decays to this share of its peak.
FLOOR = 0.05
#: The weight of each step's loss in the running training loss the history records.
EMA = 0.05
#: Phases of a step in its bar the model reads (a bar of 4/4 in sixteenths; longer bars are capped).
METRE = 16


class _Computed(Sequence):
    """Each of a split's pieces as key states or as bar phases, computed from the dataset when asked
    for, the last few kept: a sharded corpus larger than memory is read from its memory-mapped notes
    as batches need them, so only the pieces being drawn are ever held."""

    def __init__(self, ds: Dataset, idx: list[int], lengths: np.ndarray, metre: int, phases: bool,
                 keep: int = 256) -> None:
        self.ds, self.idx, self.lengths, self.metre, self.phases = ds, idx, lengths, metre, phases
        self.keep, self.cache = keep, OrderedDict()

    def __len__(self) -> int:
        return len(self.idx)

    def __getitem__(self, j: int) -> np.ndarray:
        if j in self.cache:
            self.cache.move_to_end(j)
            return self.cache[j]
        i = self.idx[j]
        if self.phases:
            out = bar_phases(self.ds.piece_bars(i), int(self.lengths[j]), self.metre).astype(np.uint8)
        else:
            out = key_states(self.ds.roll(i))
        self.cache[j] = out
        if len(self.cache) > self.keep:
            self.cache.popitem(last=False)
        return out


@dataclass
class CorpusPieces:
    """One split of a corpus as key states ``(T, P)``, bar phases ``(T,)`` and genre indices.

    From a sharded dataset (or with ``lazy``) the states and phases are computed as windows are
    drawn; otherwise all at once."""

    states: Sequence[np.ndarray]
    phases: Sequence[np.ndarray]
    genre: np.ndarray
    bars: list[np.ndarray]
    genres: list[str]
    lengths: np.ndarray  # steps of each piece

    @classmethod
    def load(cls, ds: Dataset, split: str, metre: int = METRE, lazy: bool | None = None) -> CorpusPieces:
        idx = [i for i in ds.indices(split) if ds.length(i) > 0]
        if not idx:
            raise MusicflowError(f"dataset has no {split} pieces")
        genre = np.array([ds.genres.index(ds.pieces[i]["genre"]) for i in idx])
        bars = [np.asarray(ds.piece_bars(i)) for i in idx]
        if ds.sharded if lazy is None else lazy:
            lengths = np.array([ds.length(i) for i in idx], dtype=np.int64)
            return cls(_Computed(ds, idx, lengths, metre, False), _Computed(ds, idx, lengths, metre, True),
                       genre, bars, list(ds.genres), lengths)
        states = [key_states(ds.roll(i)) for i in idx]
        phases = [bar_phases(ds.piece_bars(i), len(s), metre).astype(np.uint8) for i, s in zip(idx, states)]
        return cls(states, phases, genre, bars, list(ds.genres), np.array([len(s) for s in states], np.int64))

    def steps_per_genre(self) -> np.ndarray:
        out = np.zeros(len(self.genres))
        np.add.at(out, self.genre, self.lengths)
        return out

    def window(self, i: int, start: int, crop: int, shift: int = 0) -> tuple[np.ndarray, np.ndarray]:
        s, ph = self.states[i][start:start + crop], self.phases[i][start:start + crop]
        if shift:  # up or down by |shift| keys; what leaves the range is dropped
            moved = np.zeros_like(s)
            if shift > 0:
                moved[:, shift:] = s[:, :-shift]
            else:
                moved[:, :shift] = s[:, -shift:]
            s = moved
        return s, ph

    def batch(self, picks: list[tuple[int, int]], crop: int, shift: int = 0):
        """Padded tensors for ``(piece, start)`` picks: rolls ``(B, L, P)``, lengths, genre
        one-hots ``(B, G)``, phases ``(B, L)``."""
        wins = [self.window(i, s, crop, shift) for i, s in picks]
        length = max(len(w[0]) for w in wins)
        rolls = np.zeros((len(wins), length, wins[0][0].shape[1]), np.float32)
        phase = np.zeros((len(wins), length), np.int64)
        for j, (s, ph) in enumerate(wins):
            rolls[j, :len(s)], phase[j, :len(ph)] = s, ph
        genre = np.eye(len(self.genres), dtype=np.float32)[self.genre[[i for i, _ in picks]]]
        return (torch.from_numpy(rolls), torch.tensor([len(w[0]) for w in wins]),
                torch.from_numpy(genre), torch.from_numpy(phase))


class _WindowNLL(nn.Module):
    """Nats per step of a batch of windows, the loop's objective."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, rolls, lengths, genre, phase, generator=None) -> torch.Tensor:
        lp = self.model.sequence_log_prob(rolls, lengths, genre=genre, phase=phase)
        return -lp.sum() / lengths.sum()


def metres(ds: Dataset, split: str = "train") -> dict[str, dict[str, float]]:
    """Each genre's time signatures (``"3/4"``) and the share of its ``split`` pieces in each, from
    the pieces' first signature: what composing draws a new piece's metre from. Signatures under 2%
    of a genre's pieces, or whose bar is shorter than 6 or longer than 32 steps (a pick-up's
    signature, a free rhythm), are left out."""
    out: dict[str, dict[str, float]] = {}
    for g in ds.genres:
        sigs = [ds.pieces[i].get("time_signature") or [4, 4] for i in ds.indices(split, g)]
        sigs = [f"{n}/{d}" for n, d in sigs if 6 <= ds.spec.bar_steps(n, d) <= 32]
        names, counts = np.unique(sigs, return_counts=True)
        keep = counts >= 0.02 * len(sigs)
        names, counts = names[keep], counts[keep]
        out[g] = {str(k): round(float(c / counts.sum()), 4) for k, c in zip(names, counts)} or {"4/4": 1.0}
    return out


def valid_picks(pieces: CorpusPieces, per_genre: int, crop: int, seed: int = 0) -> list[tuple[int, int]]:
    """Fixed validation windows: ``per_genre`` per genre, from random bar lines of random pieces."""
    rng = np.random.default_rng(seed)
    picks = []
    for g in range(len(pieces.genres)):
        members = np.flatnonzero(pieces.genre == g)
        if not len(members):
            continue
        for i in rng.choice(members, size=per_genre, replace=len(members) < per_genre):
            starts = pieces.bars[i][pieces.bars[i] < max(pieces.lengths[i] - crop // 2, 1)]
            picks.append((int(i), int(rng.choice(starts)) if len(starts) else 0))
    return picks


@torch.no_grad()
def window_nll(model, pieces: CorpusPieces, picks: list[tuple[int, int]], crop: int,
               batch: int = 64) -> dict[str, float]:
    """Nats per step of the picked windows, overall (every window's steps alike) and per genre."""
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    total = np.zeros(len(pieces.genres)), np.zeros(len(pieces.genres))
    for a in range(0, len(picks), batch):
        rolls, lengths, genre, phase = pieces.batch(picks[a:a + batch], crop)
        lp = model.sequence_log_prob(rolls.to(dev), lengths.to(dev), genre=genre.to(dev), phase=phase.to(dev))
        lp = lp.sum(1).double().cpu().numpy()
        g = genre.argmax(1).numpy()
        np.add.at(total[0], g, -lp)
        np.add.at(total[1], g, lengths.numpy())
    model.train(was)
    out = {"nats_per_step": float(total[0].sum() / total[1].sum())}
    out.update({name: float(total[0][g] / total[1][g])
                for g, name in enumerate(pieces.genres) if total[1][g]})
    return out


def train_pieces(data: str | Path, out: str | Path, cfg: PieceTrainConfig, overrides: dict | None = None,
                 quiet: bool = False, command: str = "", resume: bool = False, kind: str = "keyflow",
                 device: str = "cpu") -> dict:
    """Train a genre-conditioned ``kind`` sequence flow on the ``train`` split of a corpus (a
    ``musicflow data build`` file), keep the weights with the best validation NLL, and write the
    checkpoint to ``out`` (atomically, at every validation), with ``out + '.resume'`` holding
    the current state until the run completes. Returns the training record.

    On ``device`` (``auto``, ``cpu``, ``cuda``); under ``torchrun`` with DistributedDataParallel,
    each process drawing its own batches (process 0 draws what a single process would)."""
    from musicflow.training.windows import pick_device

    rank, world, ddp = dist_info()
    with process_group(pick_device(device), ddp) as dev:
        return _train_pieces(data, out, cfg, overrides, quiet or rank != 0, command, resume, kind, dev,
                             rank, world)


def _train_pieces(data, out, cfg: PieceTrainConfig, overrides, quiet, command, resume, kind, dev,
                  rank: int, world: int) -> dict:
    ds = Dataset.load(data)
    train, valid = CorpusPieces.load(ds, "train"), CorpusPieces.load(ds, "valid")
    overrides = {"keys": ds.spec.pitches, "states": 3, "genres": len(ds.genres), "metre": METRE,
                 **(overrides or {})}
    model, record, best = _start(ds, data, out, cfg, kind, overrides, resume, command)
    model.to(dev)
    record.update(world_size=world, ddp_backend=torch.distributed.get_backend() if distributed() else None)
    picks = valid_picks(valid, cfg.valid_windows, cfg.crop)
    steps = train.steps_per_genre()
    genre_p = np.sqrt(steps) / np.sqrt(steps).sum()
    members = [np.flatnonzero(train.genre == g) for g in range(len(ds.genres))]
    weights = [train.lengths[m].astype(float) for m in members]
    seed = cfg.seed if rank == 0 else cfg.seed * 1000 + rank
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)

    def draw():
        picks_ = []
        for g in rng.choice(len(ds.genres), size=cfg.batch_size, p=genre_p):
            i = int(rng.choice(members[g], p=weights[g] / weights[g].sum()))
            starts = train.bars[i][train.bars[i] < train.lengths[i] - 1]
            start = 0 if rng.random() < cfg.start_share or not len(starts) else int(rng.choice(starts))
            picks_.append((i, start))
        shift = int(rng.integers(-cfg.transpose, cfg.transpose + 1)) if cfg.transpose else 0
        return tuple(x.to(dev) for x in train.batch(picks_, cfg.crop, shift))

    def write() -> None:
        best_model = copy.deepcopy(model)
        best_model.load_state_dict(best["state"])
        save_checkpoint(out, kind, best_model, ds.spec, ds.genres, record)

    def validate(loop: Loop) -> None:
        v = window_nll(model, valid, picks, cfg.crop)
        record["history"].append({"step": loop.step, "train_nats": round(loop.running, 4),
                                  "valid_nats": round(v["nats_per_step"], 4),
                                  "elapsed_s": round(loop.elapsed, 1)})
        if not quiet:
            tqdm.write(f"step {loop.step}: train {loop.running:.4f}  valid {v['nats_per_step']:.4f} "
                       f"nats/step  ({loop.elapsed:.0f} s)")
        if v["nats_per_step"] < best["nats"]:
            best.update(nats=v["nats_per_step"], state=copy.deepcopy(model.state_dict()))
            record.update(best_step=loop.step, valid_nats_per_step=round(v["nats_per_step"], 4),
                          valid_nats_per_genre={g: round(v[g], 4) for g in ds.genres if g in v})

    model.train()
    loop = Loop(_WindowNLL(model), cfg, out, gen, record, write, floor=FLOOR, ema=EMA, label=f"train {kind}",
                loss_name="nats", quiet=quiet, rank=rank, resume_extra=current_state(model, rng))
    run_seeded(loop, model, rng, seed, resume, draw, validate, rank)
    return record


def _start(ds: Dataset, data, out, cfg: PieceTrainConfig, kind: str, overrides: dict, resume: bool,
           command: str) -> tuple[nn.Module, dict, dict]:
    """The model, training record and best validation so far to start from: the unfinished run at
    ``out``, or fresh weights from ``cfg.seed``."""
    if resume:
        require_resume(out)
        ck = load_checkpoint(out)
        if ck.kind != kind or ck.info.get("data_hash") != ds.content_hash():
            raise MusicflowError(f"{out}: not an unfinished {kind} run on {data}")
        model = copy.deepcopy(ck.model)
        record = {**ck.info, "train_config": asdict(cfg), "command": command or ck.info.get("command")}
        return model, record, {"nats": ck.info["valid_nats_per_step"],
                               "state": copy.deepcopy(ck.model.state_dict())}
    with torch.random.fork_rng():  # seeded weights without touching the caller's global RNG
        torch.manual_seed(cfg.seed)
        model = new_model(kind, overrides)
    record = {"train_config": asdict(cfg), "data": str(data), "data_hash": ds.content_hash(),
              "command": command, "history": [], "metres": metres(ds), "phrases": restatements(ds)}
    return model, record, {"nats": math.inf, "state": None}
