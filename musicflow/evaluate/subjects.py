"""The models an evaluation compares: the model itself, the Bernoulli baseline, the VAE and the GAN, each
with the composer, temperature and guidance it is sampled with; and the independent classifier."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from musicflow.baselines.classifier import GenreClassifier
from musicflow.checkpoint import Checkpoint, load_checkpoint
from musicflow.compose import Composer
from musicflow.data.dataset import Dataset
from musicflow.errors import MusicflowError
from musicflow.training import model_windows


@dataclass
class Subject:
    """One model under evaluation: its role (``model``, ``bernoulli``, ``vae``, ``gan``) and composer."""

    name: str
    composer: Composer
    temperature: float
    source: str
    guidance: float | None = 1.0  # baselines are sampled plainly
    candidates: int | None = None
    repeat: float | None = None  # the sequence flow's restated bars (None: the genre's own)


def rel_path(path: str | Path | None) -> str:
    """A path relative to the musicflow home when it is inside it (reports travel between machines)."""
    from musicflow.paths import home

    try:
        return str(Path(path).resolve().relative_to(home().resolve()))
    except ValueError:
        return str(path)


def params(model: torch.nn.Module) -> int:
    """Trainable parameters; for a fitted table (the Bernoulli baseline), its entries."""
    n = sum(p.numel() for p in model.parameters())
    return n or sum(b.numel() for b in model.buffers())


def _decoding_for_kind(c: Composer) -> Composer:
    """Flows decode exactly (threshold 0.5 on a sample of the dequantized roll); the VAE's decoder
    gives cell probabilities, not a sample, so it is thresholded at its calibrated per-genre
    thresholds (chosen on the validation split to match real note density)."""
    if c.model.decodes_probabilities:
        c.decoding = "calibrated"
    return c


def use_ode_solver(c: Composer, text: str) -> None:
    """Compute a neural-ODE flow's likelihoods with solver ``text`` (``rk4:8``: eight fixed RK4
    steps, a few times cheaper than the adaptive default; see ``benchmarks/bench_cnf.py``)."""
    c.model.use_likelihood_solver(text)


def load_subjects(model: str | Path | None, vae: str | Path | None, baselines: bool, ds: Dataset,
                  temperature: float, gan: str | Path | None = None) -> list[Subject]:
    """The model, then (with ``baselines``) the Bernoulli baseline fitted on the train split and
    the VAE and GAN checkpoints (each where it exists and the model is not itself of its kind)."""
    from musicflow.baselines.bernoulli import Bernoulli

    c = _decoding_for_kind(Composer.load(model))
    if c.spec != ds.spec:
        raise MusicflowError(f"{c.ck.path}: representation differs from the dataset's")
    missing = set(c.genres) - set(ds.genres)
    if missing:
        raise MusicflowError(f"dataset has no pieces of genre(s) {sorted(missing)} of {c.ck.path}")
    subjects = [Subject("model", c, temperature, rel_path(c.ck.path))]
    if not baselines:
        return subjects
    bern = Bernoulli.fit(model_windows(ds, "train", c.window_config, c.genres))
    subjects.append(Subject("bernoulli", Composer(Checkpoint("bernoulli", bern, ds.spec, c.genres)), 1.0,
                            "independent Bernoulli per cell and genre, fitted on the train split"))
    for kind, asked in (("vae", vae), ("gan", gan)):
        if c.ck.kind == kind:
            continue
        path = Path(asked) if asked else Path(c.ck.path).with_name(f"{kind}-music21.pt")
        if path.is_file():
            b = _decoding_for_kind(Composer(load_checkpoint(path)))
            if b.ck.kind != kind:
                raise MusicflowError(f"{path}: a {b.ck.kind} checkpoint, not a {kind}")
            if b.genres != c.genres or b.spec != c.spec:
                raise MusicflowError(f"{path}: genres or representation differ from {c.ck.path}'s")
            # sampled at the temperature its thresholds were calibrated at
            t = float(b.ck.info.get("calibration", {}).get("temperature", temperature))
            subjects.append(Subject(kind, b, t, rel_path(path)))
        elif asked:
            raise MusicflowError(f"{asked}: no such checkpoint")
    return subjects


def classifier_checkpoint(classifier: str | Path | None, genres: list[str]):
    """The independent genre classifier's path and checkpoint; it must know exactly ``genres``."""
    from musicflow.paths import checkpoint

    clf_path = Path(classifier) if classifier else checkpoint("genre-classifier.pt")
    clf_ck = load_checkpoint(clf_path)
    if not isinstance(clf_ck.model, GenreClassifier) or clf_ck.genres != genres:
        raise MusicflowError(f"{clf_path}: not a genre classifier for the genres {genres}")
    return clf_path, clf_ck


def describe(s: Subject) -> dict:
    """What the report says of one subject: kind, size, sampling and training record."""
    c = s.composer
    guidance, candidates = c.sampling(s.guidance, s.candidates)
    return {"kind": c.ck.kind, "source": s.source, "params": params(c.model), "temperature": s.temperature,
            "guidance": guidance, "candidates": candidates, "window_steps": c.window,
            "outlines": c.outlines is not None, "train_steps": c.ck.info.get("step"),
            "train_wall_time_s": c.ck.info.get("wall_time_s"),
            **({"likelihood_solver": c.model.likelihood_solver} if c.model.likelihood_solver else {})}
