"""Learning a user's style: a new genre of a trained flow, fitted to a few of their pieces.

The flow stays frozen. One new genre slot (:mod:`musicflow.flows.styles`: the columns a genre owns
in the flow's weights) starts as a copy of the built-in genre under which the user's held-out music
scores best and is fitted by maximum likelihood to windows of the user's pieces, each file drawn
equally often so that one long file cannot become the style. Learning stops where the held-out
music's likelihood stops improving (whole files kept aside from 5 files on; with fewer, the last
bars of every piece), and the best columns are kept. With ``adapter`` (the KeyFlow), a low-rank
adapter of the new style (:class:`~musicflow.flows.styles.StyleAdapters`) is then fitted with the
columns, and kept only if the held-out music scores better with it. The result is an ordinary
checkpoint whose genres end with the new one, with where it came from in ``info["styles"]``, its
time signatures in ``info["metres"]`` and how often its bars restate a phrase in ``info["phrases"]``.

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
from musicflow.data.restatement import restatements
from musicflow.errors import MusicflowError
from musicflow.flows.base import Condition
from musicflow.flows.styles import add_style, remove_style, style_capable, with_adapter
from musicflow.io import READABLE_SUFFIXES
from musicflow.roll import key_states
from musicflow.training.pieces import METRE, CorpusPieces, metres
from musicflow.training.settings import StyleConfig

#: The least music a style is learnt from: notes in all the readable files together.
MIN_NOTES = 64
#: Steps of each held-out window, and the most windows scored per piece.
HELD_WINDOW, HELD_PER_PIECE = 256, 8
#: The most held-out windows a window flow (Glow, neural ODE) is scored on.
HELD_WINDOWS = 96


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
    embedding_bits_per_dim: float = math.nan  # the embedding alone, where an adapter was tried
    adapter: int = 0  # rank of the adapter kept (0: none)
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
        if not math.isnan(self.embedding_bits_per_dim):
            out.append(f"adapter: {'kept' if self.adapter else 'not kept'} (held-out bits/dim "
                       f"{self.embedding_bits_per_dim:.5f} with the genre's columns alone)")
        return out


def style_files(paths: list[str | Path], name: str) -> list[SourceFile]:
    """The files of ``paths``: files, folders (every readable file below them) or ``.csv``
    manifests (their ``path`` column), each labelled ``name``."""
    out: list[SourceFile] = []
    for p in map(Path, paths):
        if p.is_dir() or p.suffix.lower() == ".csv":
            out += [SourceFile(f.path, name, str(f.path)) for f in resolve_source(str(p), genre=name)]
        elif p.is_file():
            if p.suffix.lower() not in READABLE_SUFFIXES:
                known = ", ".join(sorted(READABLE_SUFFIXES))
                raise MusicflowError(f"{p}: not a file musicflow reads ({known})")
            out.append(SourceFile(p, name, str(p)))
        else:
            raise MusicflowError(f"{p}: no such file or folder")
    if not out:
        raise MusicflowError("style learn: no files given")
    return out


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


def split_records(records: list[dict], share: float, seed: int) -> str:
    """Mark each piece record ``train`` or ``valid`` (the music kept aside to stop on), in place:
    whole files from 5 files on (``share`` of them, at least one), else every piece cut at the bar
    line nearest ``1 - share`` of its length into a head to learn from and a tail to stop on.
    Returns how, in words."""
    by_file = [r["id"].split("#")[0] for r in records]
    names = sorted(set(by_file))
    if len(names) >= 5:
        size = min(max(1, round(share * len(names))), len(names) - 1)
        held = set(np.random.default_rng(seed).choice(names, size=size, replace=False))
        for r, f in zip(records, by_file):
            r["split"] = "valid" if f in held else "train"
        return f"{len(held)} of {len(names)} files"
    for r in list(records):
        notes = np.asarray(r["notes"], dtype=np.int64).reshape(-1, 4)
        length = int(notes[:, 2].max())
        bars = np.asarray(r["bars"], dtype=np.int64)
        inner = bars[(bars > 0) & (bars < length)]
        cut = int(inner[np.argmin(np.abs(inner - (1 - share) * length))]) if len(inner) else length // 2
        head, tail = notes[notes[:, 1] < cut].copy(), notes[notes[:, 1] >= cut].copy()
        head[:, 2] = np.minimum(head[:, 2], cut)
        tail[:, 1:3] -= cut
        r.update(notes=head.tolist(), bars=bars[bars < cut].tolist(), split="train")
        if len(tail):
            records.append({**r, "id": r["id"] + "#tail", "notes": tail.tolist(),
                            "bars": (bars[bars >= cut] - cut).tolist(), "split": "valid"})
    return "the last bars of every piece"


class _Sequences:
    """A sequence flow's view of the user's pieces: windows of ``crop`` steps to learn from (each
    piece drawn equally often, a quarter from its start, the rest from a bar line) and fixed
    held-out windows, scored in bits/dim."""

    def __init__(self, ds: Dataset, cfg: StyleConfig):
        self.train, self.held = CorpusPieces.load(ds, "train", METRE), CorpusPieces.load(ds, "valid", METRE)
        self.picks, self.crop = held_picks(self.held, cfg.seed), cfg.crop
        self.train_picks = held_picks(self.train, cfg.seed)
        self.per_nat = 1 / (2 * ds.spec.pitches * math.log(2))
        self.weight = np.full(len(self.train.states), 1.0 / len(self.train.states))  # not by length

    def _bits(self, model, pieces: CorpusPieces, picks, crop: int, slot: int) -> torch.Tensor:
        rolls, lengths, _, phase = pieces.batch(picks, crop)
        genre = torch.zeros(len(picks), model.genres)
        genre[:, slot] = 1
        lp = model.sequence_log_prob(rolls, lengths, genre=genre, phase=phase)
        return -lp.sum() / lengths.sum() * self.per_nat

    def loss(self, model, slot: int, batch: int, rng: np.random.Generator, gen: torch.Generator):
        picks = []
        for i in rng.choice(len(self.train.states), size=batch, p=self.weight):
            starts = self.train.bars[i][self.train.bars[i] < len(self.train.states[i]) - 1]
            picks.append((int(i), int(rng.choice(starts)) if len(starts) and rng.random() > 0.25 else 0))
        return self._bits(model, self.train, picks, self.crop, slot)

    @torch.no_grad()
    def held_bits(self, model, slot: int) -> float:
        return float(self._bits(model, self.held, self.picks, HELD_WINDOW, slot))

    @torch.no_grad()
    def train_bits(self, model, slot: int) -> float:
        return float(self._bits(model, self.train, self.train_picks, HELD_WINDOW, slot))


class _Windows:
    """A window flow's view (the Glow, the neural ODE): its training windows of the user's pieces
    (each piece's windows together drawn as often as another piece's) and up to ``HELD_WINDOWS``
    fixed held-out windows, scored by the model's validation bits/dim with fixed noise."""

    def __init__(self, ds: Dataset, cfg: StyleConfig, model, genres: list[str]):
        from musicflow.training.windows import model_windows

        self.outlines = model.takes_outline
        self.train = model_windows(ds, "train", model.config, genres, self.outlines)
        self.held = model_windows(ds, "valid", model.config, genres, self.outlines)
        if not len(self.train) or not len(self.held):
            raise MusicflowError("style learn: the pieces are too short to cut into the model's windows")
        _, inverse, counts = np.unique(self.train.piece_starts, return_inverse=True, return_counts=True)
        self.weight = 1.0 / counts[inverse]
        self.weight /= self.weight.sum()
        rng = np.random.default_rng([cfg.seed, 7])
        self.idx = np.sort(rng.choice(len(self.held), min(len(self.held), HELD_WINDOWS), replace=False))
        n = min(len(self.train), HELD_WINDOWS)
        self.train_idx = np.sort(rng.choice(len(self.train), n, replace=False))
        self.seed = cfg.seed

    def _bits(self, model, windows, idx, slot: int, gen: torch.Generator, score) -> torch.Tensor:
        x, ctx, _ = windows.batch(idx)
        genre = torch.zeros(len(idx), model.genre_columns()[0].shape[1])
        genre[:, slot] = 1
        outline = windows.outlines(idx) if self.outlines else None
        return score(x, Condition(genre, ctx, outline), generator=gen).mean()

    def loss(self, model, slot: int, batch: int, rng: np.random.Generator, gen: torch.Generator):
        idx = rng.choice(len(self.train), size=batch, p=self.weight)
        return self._bits(model, self.train, idx, slot, gen, model.loss)

    @torch.no_grad()
    def held_bits(self, model, slot: int, train: bool = False) -> float:
        windows, idx = (self.train, self.train_idx) if train else (self.held, self.idx)
        gen = torch.Generator().manual_seed(self.seed)
        parts = [self._bits(model, windows, idx[a:a + 32], slot, gen, model.valid_bits_per_dim)
                 * len(idx[a:a + 32]) for a in range(0, len(idx), 32)]
        return float(sum(parts) / len(idx))

    def train_bits(self, model, slot: int) -> float:
        return self.held_bits(model, slot, train=True)


def learn_style(ck: Checkpoint, paths: list[str | Path], name: str, cfg: StyleConfig | None = None, *,
                replace: bool = False, quiet: bool = True) -> tuple[Checkpoint, StyleReport]:
    """A copy of ``ck`` with a new genre ``name`` learnt from the music in ``paths`` (see the module),
    and the report of the learning. ``replace`` re-learns a style the checkpoint already has."""
    cfg = cfg or StyleConfig()
    model = ck.model
    if not style_capable(model):
        raise MusicflowError(f"{ck.kind}: this model cannot learn a style (keyflow, glow and cnf can)")
    if cfg.adapter and not hasattr(model.config, "adapter_rank"):
        raise MusicflowError(f"adapter: {ck.kind} takes no style adapter (the sequence flow, keyflow, does)")
    if cfg.adapter and model.config.adapter_rank not in (0, cfg.adapter):
        raise MusicflowError(f"adapter {cfg.adapter}: this model's styles have adapters of rank "
                             f"{model.config.adapter_rank}; give that rank")
    name = name.strip()
    if not name or ":" in name or "," in name:
        raise MusicflowError(f"name {name!r}: give a genre name without ':' or ','")
    builtin = ck.genres[:len(ck.genres) - model.config.styles]
    if name in builtin:
        raise MusicflowError(f"name {name}: a built-in genre of this model; choose another name")
    if name in ck.genres and not replace:
        raise MusicflowError(f"name {name}: this model already has that style (--replace to learn it again)")
    if name in ck.genres:
        model = remove_style(model, ck.genres.index(name) - len(builtin))
    genres = [g for g in ck.genres if g != name]

    files = style_files(paths, name)
    records, report = parse_files(files, ck.spec.steps_per_quarter, quiet=quiet)
    notes = sum(len(r["notes"]) for r in records)
    if notes < MIN_NOTES:
        bad = "".join(f"; skipped {p}: {why}" for p, why in report.skipped[:3])
        raise MusicflowError(f"style learn: {notes} notes in {len(files)} file(s), at least {MIN_NOTES} "
                             f"are needed{bad}")
    whole = Dataset.from_records([dict(r, split="train") for r in records], ck.spec)
    how = split_records(records, cfg.held_out, cfg.seed)
    if not any(r["split"] == "valid" for r in records) or not any(r["split"] == "train" for r in records):
        raise MusicflowError("style learn: the pieces are too short to keep music aside to stop on; "
                             "give more or longer files")
    ds = Dataset.from_records(records, ck.spec)
    model = copy.deepcopy(model).eval()
    sequence = hasattr(model, "sequence_log_prob")
    data = _Sequences(ds, cfg) if sequence else _Windows(ds, cfg, model, genres + [name])
    before = {g: data.held_bits(model, j) for j, g in enumerate(genres)}
    # The start: the genre under which all the user's music (not only the few files kept aside)
    # scores best; stopping is judged on the kept-aside music alone.
    fits = {g: before[g] + data.train_bits(model, j) for j, g in enumerate(genres)}
    start = min(fits, key=fits.get)
    model = add_style(model, torch.eye(len(genres))[genres.index(start)]).eval()
    out = StyleReport(name, len(files), len(whole), report.skipped, how, start, before,
                      sources=[key_states(whole.roll(i)) for i in range(len(whole))])
    out.learned_bits_per_dim = _fit(model, data, cfg, out, quiet)
    if cfg.adapter:  # kept only where the held-out music scores better with it
        adapted = with_adapter(model, cfg.adapter, torch.Generator().manual_seed(cfg.seed)).eval()
        out.embedding_bits_per_dim = out.learned_bits_per_dim
        bits = _fit(adapted, data, cfg, out, quiet, " (adapter)")
        if bits < out.learned_bits_per_dim:
            model, out.learned_bits_per_dim, out.adapter = adapted, bits, cfg.adapter

    info = copy.deepcopy(ck.info)
    content = hashlib.sha1()
    for f in sorted(files, key=lambda f: str(f.path)):
        if f.path.is_file():
            content.update(f.path.read_bytes())
    info.setdefault("styles", {})[name] = {
        "files": len(files), "pieces": len(whole), "skipped": len(report.skipped),
        "content_hash": content.hexdigest()[:16], "learned": datetime.date.today().isoformat(),
        "held_out": how, "start": start, "held_out_bits_per_dim": round(out.learned_bits_per_dim, 6),
        "start_bits_per_dim": round(out.bits_per_dim[start], 6), "steps": out.steps,
        "adapter": out.adapter, **({"embedding_bits_per_dim": round(out.embedding_bits_per_dim, 6)}
                                   if cfg.adapter else {}),
        "seconds": round(out.seconds, 1), "settings": asdict(cfg)}
    info.setdefault("metres", {})[name] = metres(whole)[name]
    info.setdefault("phrases", {})[name] = restatements(whole)[name]
    if not sequence and model.takes_outline:
        from musicflow.training.windows import model_bank, model_windows

        names = genres + [name]
        windows = model_windows(whole, "train", model.config, names, True)
        bank = model_bank(whole, windows, model.config, names, cfg.seed)
        info.setdefault("outlines", {})[name] = bank[name]
    return Checkpoint(ck.kind, model, ck.spec, genres + [name], info), out


def _style_params(model) -> list[tuple[torch.nn.Parameter, int]]:
    """The weights a style owns, each with the axis its styles are indexed on."""
    out = [(p, 1) for p in model.styles.columns]
    if getattr(model, "adapters", None) is not None:
        out += [(p, 0) for p in model.adapters.parameters()]
    return out


def _fit(model, data, cfg: StyleConfig, out: StyleReport, quiet: bool, label: str = "") -> float:
    """Fit the weights of the model's last style slot (its columns, and its adapter if the model has
    adapters) in place, keeping the best on the held-out music; returns that held-out figure."""
    slot, t0 = model.genre_columns()[0].shape[1] - 1, time.monotonic()
    owned = _style_params(model)
    params = [p for p, _ in owned]
    for p in model.parameters():
        p.requires_grad_(False)
    # Earlier styles keep their weights bit for bit: zero gradient, so a zero Adam step.
    hooks = []
    for p, axis in owned:
        mask = torch.zeros(p.shape[axis], device=p.device)
        mask[-1] = 1
        mask = mask.view(-1, *([1] * (p.dim() - 1))) if axis == 0 else mask
        hooks.append(p.requires_grad_(True).register_hook(lambda g, m=mask: g * m))
    opt = torch.optim.Adam(params, lr=cfg.lr)
    rng, gen = np.random.default_rng([cfg.seed, 1]), torch.Generator().manual_seed(cfg.seed)
    best = (data.held_bits(model, slot), [p.detach().clone() for p in params])
    since, step = 0, 0
    bar = tqdm(total=cfg.steps, desc=f"learn {out.name}{label}", unit="step", disable=quiet, leave=False)
    for step in range(1, cfg.steps + 1):
        loss = data.loss(model, slot, cfg.batch_size, rng, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        bar.update(1)
        if step % cfg.valid_every and step < cfg.steps:
            continue
        v = data.held_bits(model, slot)
        out.history.append({"step": step, "train_loss": round(float(loss.detach()), 6),
                            "held_out_bits_per_dim": round(v, 6), **({"adapter": True} if label else {})})
        since += 1
        if v < best[0]:
            best, since = (v, [p.detach().clone() for p in params]), 0
        bar.set_postfix_str(f"held-out {v:.5f} bits/dim (best {best[0]:.5f})")
        if since >= cfg.patience or time.monotonic() - t0 > 60 * cfg.minutes:
            break
    bar.close()
    with torch.no_grad():
        for p, b in zip(params, best[1]):
            p.copy_(b)
            p.requires_grad_(False)
    for h in hooks:
        h.remove()
    out.steps += step
    out.seconds += time.monotonic() - t0
    return best[0]
