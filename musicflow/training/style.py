"""Learning a user's style: a new genre of a trained flow, fitted to a few of their pieces.

The flow stays frozen. One new genre slot (:mod:`musicflow.flows.styles`: the columns a genre owns
in the flow's weights) starts as a copy of the built-in genre under which the user's held-out music
scores best and is fitted by maximum likelihood to windows of the user's pieces, each file drawn
equally often so that one long file cannot become the style. Learning stops where the held-out
music's likelihood stops improving (whole files kept aside from 5 files on; with fewer, the last
bars of every piece), and the best columns are kept. The result is an ordinary checkpoint whose
genres end with the new one, with where it came from in ``info["styles"]`` and its time signatures
in ``info["metres"]``.

>>> from musicflow.training.settings import StyleConfig
>>> StyleConfig().minutes
2.0
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from musicflow.checkpoint import Checkpoint
from musicflow.data.build import SourceFile, parse_files, resolve_source
from musicflow.data.dataset import Dataset
from musicflow.errors import MusicflowError
from musicflow.flows.styles import add_style, remove_style
from musicflow.io import READABLE_SUFFIXES
from musicflow.roll import key_states
from musicflow.training.pieces import METRE, CorpusPieces, metres
from musicflow.training.settings import StyleConfig

#: The least music a style is learnt from: notes in all the readable files together.
MIN_NOTES = 64
#: Steps of each held-out window, and the most windows scored per piece.
HELD_WINDOW, HELD_PER_PIECE = 256, 8


@dataclass
class StyleReport:
    """What learning a style read, kept aside, and reached."""

    name: str
    files: int
    pieces: int
    skipped: list[tuple[str, str]]
    held_out: str  # "files" or "last bars"
    start: str  # the genre the style started from
    bits_per_dim: dict[str, float]  # held-out music under every genre before learning
    learned_bits_per_dim: float = math.nan
    steps: int = 0
    seconds: float = 0.0
    history: list[dict] = field(default_factory=list)
    sources: list[np.ndarray] = field(default_factory=list, repr=False)  # every piece's key states

    def lines(self) -> list[str]:
        out = [f"style {self.name}: {self.pieces} pieces from {self.files} files, held out: {self.held_out}"]
        out += [f"skipped {p}: {why}" for p, why in self.skipped]
        best = min(self.bits_per_dim.values())
        out.append(f"held-out bits/dim: {self.learned_bits_per_dim:.5f} as {self.name}, {best:.5f} as "
                   f"{self.start} (the best built-in start); {self.steps} steps, {self.seconds:.0f} s")
        return out


def style_files(paths: list[str | Path], name: str) -> list[SourceFile]:
    """The files of ``paths``: files, folders (every readable file below them) or ``.csv``
    manifests (their ``path`` column), each labelled ``name``."""
    out: list[SourceFile] = []
    for p in map(Path, paths):
        if p.is_dir() or p.suffix.lower() == ".csv":
            out += [SourceFile(f.path, name, f.path.name) for f in resolve_source(str(p), genre=name)]
        elif p.is_file():
            if p.suffix.lower() not in READABLE_SUFFIXES:
                known = ", ".join(sorted(READABLE_SUFFIXES))
                raise MusicflowError(f"{p}: not a file musicflow reads ({known})")
            out.append(SourceFile(p, name, p.name))
        else:
            raise MusicflowError(f"{p}: no such file or folder")
    if not out:
        raise MusicflowError("style learn: no files given")
    return out


def _pieces(ds: Dataset, idx: list[int], name: str) -> CorpusPieces:
    sub = Dataset.from_records([{**ds.pieces[i], "notes": ds.piece_notes(i), "bars": ds.piece_bars(i),
                                 "split": "train", "genre": name} for i in idx], ds.spec)
    return CorpusPieces.load(sub, "train", METRE)


def _tail_split(pieces: CorpusPieces, share: float) -> tuple[CorpusPieces, CorpusPieces]:
    """Each piece cut at the bar line nearest ``1 - share`` of its length: the heads to learn
    from, the tails to stop on."""
    heads, tails = copy.deepcopy(pieces), copy.deepcopy(pieces)
    for j, (s, bars) in enumerate(zip(pieces.states, pieces.bars)):
        inner = bars[(bars > 0) & (bars < len(s))]
        cut = int(inner[np.argmin(np.abs(inner - (1 - share) * len(s)))]) if len(inner) else len(s) // 2
        heads.states[j], heads.phases[j], heads.bars[j] = s[:cut], pieces.phases[j][:cut], bars[bars < cut]
        tails.states[j], tails.phases[j] = s[cut:], pieces.phases[j][cut:]
        tails.bars[j] = bars[bars >= cut] - cut
    return heads, tails


def held_picks(pieces: CorpusPieces, seed: int) -> list[tuple[int, int]]:
    """Held-out windows: from each piece's start and up to ``HELD_PER_PIECE - 1`` bar lines
    spread through it, ``HELD_WINDOW`` steps each."""
    rng = np.random.default_rng([seed, 7])
    picks = []
    for i, (s, bars) in enumerate(zip(pieces.states, pieces.bars)):
        starts = bars[(bars > 0) & (bars < len(s) - HELD_WINDOW // 4)]
        n = min(len(starts), HELD_PER_PIECE - 1)
        more = rng.choice(starts, size=n, replace=False) if n else []
        picks += [(i, 0)] + [(i, int(b)) for b in sorted(more)]
    return picks


def _nats(model, pieces: CorpusPieces, picks, slot: int, slots: int) -> torch.Tensor:
    """Nats per step of the picked windows under genre slot ``slot`` (differentiable)."""
    rolls, lengths, _, phase = pieces.batch(picks, HELD_WINDOW)
    genre = torch.zeros(len(picks), slots)
    genre[:, slot] = 1
    return -model.sequence_log_prob(rolls, lengths, genre=genre, phase=phase).sum() / lengths.sum()


def learn_style(ck: Checkpoint, paths: list[str | Path], name: str, cfg: StyleConfig | None = None, *,
                replace: bool = False, quiet: bool = True) -> tuple[Checkpoint, StyleReport]:
    """A copy of ``ck`` with a new genre ``name`` learnt from the music in ``paths`` (see the module),
    and the report of the learning. ``replace`` re-learns a style the checkpoint already has."""
    cfg = cfg or StyleConfig()
    model = ck.model
    if "styles" not in type(model.config).__dataclass_fields__ or not model.config.genres:
        raise MusicflowError(f"{ck.kind}: this model cannot learn a style (the sequence flow, keyflow, can)")
    name = name.strip()
    if not name or ":" in name or "," in name:
        raise MusicflowError(f"name {name!r}: give a genre name without ':' or ','")
    builtin = ck.genres[:model.config.genres]
    if name in builtin:
        raise MusicflowError(f"name {name}: a built-in genre of this model; choose another name")
    if name in ck.genres and not replace:
        raise MusicflowError(f"name {name}: this model already has that style (--replace to learn it again)")
    if name in ck.genres:
        model = remove_style(model, ck.genres.index(name) - model.config.genres)
    genres = [g for g in ck.genres if g != name]

    files = style_files(paths, name)
    records, report = parse_files(files, ck.spec.steps_per_quarter, quiet=quiet)
    notes = sum(len(r["notes"]) for r in records)
    if notes < MIN_NOTES:
        bad = "".join(f"; skipped {p}: {why}" for p, why in report.skipped[:3])
        raise MusicflowError(f"style learn: {notes} notes in {len(files)} file(s), at least {MIN_NOTES} "
                             f"are needed{bad}")
    for r in records:
        r["split"] = "train"
    ds = Dataset.from_records(records, ck.spec)
    by_file = [r["id"].split("#")[0] for r in records]
    names = sorted(set(by_file))
    rng = np.random.default_rng(cfg.seed)
    if len(names) >= 5:
        held_files = set(rng.choice(names, size=max(1, round(cfg.held_out * len(names))), replace=False))
        train = _pieces(ds, [i for i, f in enumerate(by_file) if f not in held_files], name)
        held = _pieces(ds, [i for i, f in enumerate(by_file) if f in held_files], name)
        how = f"{len(held_files)} of {len(names)} files"
    else:
        train, held = _tail_split(_pieces(ds, list(range(len(records))), name), cfg.held_out)
        how = "the last bars of every piece"
    picks = held_picks(held, cfg.seed)

    model = copy.deepcopy(model).eval()
    slots = model.genres
    with torch.no_grad():
        before = {g: float(_nats(model, held, picks, j, slots)) for j, g in enumerate(genres)}
    start = min(before, key=before.get)
    model = add_style(model, torch.eye(slots)[genres.index(start)]).eval()
    bits = 1 / (2 * ck.spec.pitches * math.log(2))
    out = StyleReport(name, len(files), len(records), report.skipped, how, start,
                      {g: v * bits for g, v in before.items()},
                      sources=[key_states(ds.roll(i)) for i in range(len(ds))])
    _fit(model, train, held, picks, cfg, out, bits, quiet)

    info = copy.deepcopy(ck.info)
    content = hashlib.sha1()
    for f in sorted(files, key=lambda f: str(f.path)):
        if f.path.is_file():
            content.update(f.path.read_bytes())
    info.setdefault("styles", {})[name] = {
        "files": len(files), "pieces": len(records), "skipped": len(report.skipped),
        "content_hash": content.hexdigest()[:16], "learned": datetime.date.today().isoformat(),
        "held_out": how, "start": start, "held_out_bits_per_dim": round(out.learned_bits_per_dim, 6),
        "start_bits_per_dim": round(out.bits_per_dim[start], 6), "steps": out.steps,
        "seconds": round(out.seconds, 1), "settings": asdict(cfg)}
    info.setdefault("metres", {})[name] = metres(ds)[name]
    return Checkpoint(ck.kind, model, ck.spec, genres + [name], info), out


def _fit(model, train: CorpusPieces, held: CorpusPieces, picks, cfg: StyleConfig, out: StyleReport,
         bits: float, quiet: bool) -> None:
    """Fit the model's last style slot in place, keeping its best columns on the held-out windows."""
    slots, t0 = model.genres, time.monotonic()
    params = [model.styles.input, model.styles.features]
    for p in model.parameters():
        p.requires_grad_(False)
    mask = torch.zeros(slots - model.config.genres)
    mask[-1] = 1
    # Earlier styles keep their columns bit for bit: zero gradient, so a zero Adam step.
    hooks = [p.requires_grad_(True).register_hook(lambda g: g * mask) for p in params]
    opt = torch.optim.Adam(params, lr=cfg.lr)
    rng = np.random.default_rng([cfg.seed, 1])
    weight = np.array([1.0 / len(s) for s in train.states])  # windows by piece, not by length
    best = (float(_nats(model, held, picks, slots - 1, slots).detach()), [p.detach().clone() for p in params])
    out.learned_bits_per_dim, since, step = best[0] * bits, 0, 0
    bar = tqdm(total=cfg.steps, desc=f"learn {out.name}", unit="step", disable=quiet, leave=False)
    for step in range(1, cfg.steps + 1):
        picks_ = []
        for i in rng.choice(len(train.states), size=cfg.batch_size, p=weight / weight.sum()):
            starts = train.bars[i][train.bars[i] < len(train.states[i]) - 1]
            picks_.append((int(i), int(rng.choice(starts)) if len(starts) and rng.random() > 0.25 else 0))
        rolls, lengths, _, phase = train.batch(picks_, cfg.crop)
        genre = torch.zeros(len(picks_), slots)
        genre[:, -1] = 1
        loss = -model.sequence_log_prob(rolls, lengths, genre=genre, phase=phase).sum() / lengths.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        bar.update(1)
        if step % cfg.valid_every and step < cfg.steps:
            continue
        with torch.no_grad():
            v = float(_nats(model, held, picks, slots - 1, slots))
        out.history.append({"step": step, "train_nats": round(float(loss.detach()), 4),
                            "held_out_nats": round(v, 4)})
        since += 1
        if v < best[0]:
            best, since = (v, [p.detach().clone() for p in params]), 0
        bar.set_postfix_str(f"held-out {v * bits:.5f} bits/dim (best {best[0] * bits:.5f})")
        if since >= cfg.patience or time.monotonic() - t0 > 60 * cfg.minutes:
            break
    bar.close()
    with torch.no_grad():
        for p, b in zip(params, best[1]):
            p.copy_(b)
            p.requires_grad_(False)
    for h in hooks:
        h.remove()
    out.learned_bits_per_dim, out.steps, out.seconds = best[0] * bits, step, time.monotonic() - t0
