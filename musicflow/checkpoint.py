"""Self-describing checkpoints: weights plus everything needed to rebuild and trust them.

A checkpoint holds the model kind and config, the representation spec, the genre vocabulary, a
format version, the training data hash, steps and validation bits/dim. Loading needs no config file
and uses ``torch.load(weights_only=True)``, so a checkpoint cannot run code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from musicflow.baselines.classifier import ClassifierConfig, GenreClassifier
from musicflow.baselines.gan import GAN, GANConfig
from musicflow.baselines.vae import VAE, VAEConfig
from musicflow.errors import MusicflowError
from musicflow.files import atomic_write
from musicflow.flows.cnf import CNF, CNFConfig
from musicflow.flows.frame import FrameFlow, FrameFlowConfig
from musicflow.flows.glow import Glow, GlowConfig
from musicflow.flows.keyflow import KeyFlow, KeyFlowConfig
from musicflow.roll import PianoRollSpec

FORMAT = "musicflow-checkpoint"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Kind:
    """A model kind a checkpoint can hold: its config and model classes, and what ``musicflow
    train`` feeds it: ``"windows"`` of a corpus (the window flows), ``"labels"`` (windows with
    their genres: the classifier), ``"pieces"`` (a corpus's whole pieces, genre and bar lines: the
    sequence flow, which also trains on the benchmark) or ``"frames"`` (benchmark sequences only,
    ``musicflow benchmark train``)."""

    config: type
    model: type
    data: str


#: Every model kind, by the name checkpoints store. A new kind is one module and one line here.
KINDS: dict[str, Kind] = {
    "glow": Kind(GlowConfig, Glow, "windows"),
    "cnf": Kind(CNFConfig, CNF, "windows"),
    "vae": Kind(VAEConfig, VAE, "windows"),
    "gan": Kind(GANConfig, GAN, "windows"),
    "frameflow": Kind(FrameFlowConfig, FrameFlow, "frames"),
    "keyflow": Kind(KeyFlowConfig, KeyFlow, "pieces"),
    "classifier": Kind(ClassifierConfig, GenreClassifier, "labels"),
}


def model_classes(kind: str) -> tuple[type, type]:
    """``(ConfigClass, ModelClass)`` of a registered model kind; an unknown one is a one-line error."""
    if kind not in KINDS:
        raise MusicflowError(f"unknown model kind {kind!r} (known: {', '.join(KINDS)})")
    return KINDS[kind].config, KINDS[kind].model


def new_model(kind: str, overrides: dict | None = None) -> torch.nn.Module:
    """A fresh model of ``kind``: its config's defaults with ``overrides`` (checked by the config)."""
    config_cls, model_cls = model_classes(kind)
    return model_cls(config_cls.from_dict({**config_cls().to_dict(), **(overrides or {})}))


def kinds_trained_on(*data: str) -> list[str]:
    """The kinds that train on ``data`` (``"windows"``, ``"labels"``, ``"pieces"``, ``"frames"``)."""
    return [name for name, k in KINDS.items() if k.data in data]


@dataclass
class Checkpoint:
    """A loaded model with its spec, genres and training record."""

    kind: str
    model: torch.nn.Module
    spec: PianoRollSpec
    genres: list[str]
    info: dict = field(default_factory=dict)
    path: Path | None = None

    def save(self, path: str | Path) -> Path:
        return save_checkpoint(path, self.kind, self.model, self.spec, self.genres, self.info)


def save_checkpoint(path: str | Path, kind: str, model: torch.nn.Module, spec: PianoRollSpec,
                    genres: list[str], info: dict) -> Path:
    """Write a checkpoint atomically (temp file, then rename)."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {"format": FORMAT, "version": FORMAT_VERSION, "kind": kind,
               "config": model.config.to_dict(), "spec": spec.to_dict(), "genres": list(genres),
               "info": info, "state_dict": state}
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def resume_path(out: str | Path) -> Path:
    """Where an unfinished run writing ``out`` keeps the state to go on: ``out + '.resume'``."""
    return Path(str(out) + ".resume")


def save_resume_state(out: str | Path, opt: torch.optim.Optimizer, sched, gen: torch.Generator,
                      step: int, elapsed: float, **extra) -> Path:
    """Write (atomically) what a run needs to continue beside its checkpoint ``out``: optimiser,
    schedule, noise generator, step, elapsed seconds, and any ``extra`` tensors or state dicts."""
    state = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "generator": gen.get_state(),
             "step": step, "elapsed": elapsed, **extra}
    return atomic_write(resume_path(out), lambda tmp: torch.save(state, tmp))


def require_resume(out: str | Path) -> Path:
    """The resume file of ``out``; a one-line error when there is none (nothing to resume)."""
    path = resume_path(out)
    if not path.is_file():
        raise MusicflowError(f"{path}: nothing to resume (no unfinished run at {out})")
    return path


def load_resume_state(out: str | Path, opt: torch.optim.Optimizer, sched, gen: torch.Generator) -> dict:
    """Restore optimiser, schedule and generator saved by :func:`save_resume_state` for ``out``;
    return the whole state (``step``, ``elapsed`` and the extras)."""
    state = torch.load(require_resume(out), map_location="cpu", weights_only=True)
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    gen.set_state(state["generator"])
    return state


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    """Load and rebuild a model; a missing, corrupt or mismatched file is a one-line error.

    >>> load_checkpoint("nowhere.pt")
    Traceback (most recent call last):
    musicflow.errors.MusicflowError: nowhere.pt: no such checkpoint
    """
    path = Path(path)
    if not path.is_file():
        raise MusicflowError(f"{path}: no such checkpoint")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # truncated zip, wrong file type, pickled code, ...
        raise MusicflowError(f"{path}: not a readable checkpoint ({type(e).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise MusicflowError(f"{path}: not a musicflow checkpoint")
    if payload.get("version") != FORMAT_VERSION:
        raise MusicflowError(f"{path}: checkpoint format {payload.get('version')} is not supported "
                             f"(this musicflow reads {FORMAT_VERSION})")
    config_cls, model_cls = model_classes(payload["kind"])
    try:
        model = model_cls(config_cls.from_dict(payload["config"]))
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, TypeError, KeyError) as e:
        first = str(e).strip().splitlines()[0]
        raise MusicflowError(f"{path}: weights do not match the model config ({first})") from None
    model.to(device).eval()
    return Checkpoint(payload["kind"], model, PianoRollSpec.from_dict(payload["spec"]),
                      list(payload["genres"]), dict(payload.get("info", {})), path)
