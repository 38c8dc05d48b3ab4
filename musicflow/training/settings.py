"""The settings of training runs: what every run has, and what the window models add.

Kept free of torch so that the command line can read defaults and help without importing it.
"""

from __future__ import annotations

from dataclasses import dataclass

from musicflow.settings import require, setting


@dataclass(frozen=True)
class Optimisation:
    """The settings every training run has: the optimiser, its schedule, augmentation, validation
    cadence, seed and budget. Each model family's settings extend it (``TrainConfig``,
    ``BenchmarkTrainConfig``), overriding defaults where its runs differ."""

    steps: int = setting(10000, "Optimiser steps.")
    batch_size: int = setting(64, "Windows per step.")
    lr: float = setting(1e-3, "Peak learning rate (AdamW), after the warm-up.")
    weight_decay: float = setting(1e-5, "AdamW weight decay.")
    warmup: int = setting(200, "Steps of linear warm-up before the cosine decay.")
    clip: float = setting(5.0, "Gradient-norm clip.")
    transpose: int = setting(3, "Augment by random transpositions of up to this many semitones.")
    valid_every: int = setting(500, "Steps between validations (and checkpoints).")
    seed: int = setting(0, "Seed of the initial weights, the batches and the noise.")
    minutes: float | None = setting(None, "Stop (and save) after this wall time.")

    def __post_init__(self) -> None:
        """Bad settings fail here, from the CLI and the API alike, naming the parameter."""
        for name in ("steps", "batch_size", "valid_every"):
            require(getattr(self, name) >= 1, f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("lr", "clip"):
            require(getattr(self, name) > 0, f"{name} must be positive, got {getattr(self, name)}")
        for name in ("warmup", "transpose", "weight_decay"):
            require(getattr(self, name) >= 0, f"{name} must be >= 0, got {getattr(self, name)}")
        require(self.minutes is None or self.minutes >= 0, f"minutes must be >= 0, got {self.minutes}")


@dataclass(frozen=True)
class TrainConfig(Optimisation):
    """Settings of the window models' training; saved in the checkpoint's training record."""

    valid_windows: int = setting(200, "Validation windows per genre.")
    context_noise: float = setting(0.0, "Silence each pitch row of a training context (not rows held into "
                                        "the window) with probability up to this, so free-running pieces "
                                        "do not thin out.")
    context_noise_scope: str = setting("all", "Which contexts --context-noise thins: all, or only those of "
                                              "more than one voice (a single line keeps its register and "
                                              "scale).")
    start_share: float = setting(0.0, "Draw at least this share of each genre's training windows from the "
                                      "first bars of its pieces (the context reaches back before the start).")
    init: str | None = setting(None, "Fine-tune: start from this checkpoint's weights and config (new "
                                     "optimiser).")

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.valid_windows >= 1, f"valid_windows must be at least 1, got {self.valid_windows}")
        require(0.0 <= self.context_noise <= 1.0,
                f"context_noise must be in [0, 1], got {self.context_noise}")
        require(self.context_noise_scope in ("all", "polyphonic"),
                f"context_noise_scope must be all or polyphonic, got {self.context_noise_scope!r}")
        require(0.0 <= self.start_share < 1.0, f"start_share must be in [0, 1), got {self.start_share}")


@dataclass(frozen=True)
class PieceTrainConfig(Optimisation):
    """Settings of a sequence model's training on a corpus's pieces (``musicflow train --model
    keyflow``); saved in the checkpoint's training record."""

    steps: int = setting(4000, "Optimiser steps.")
    batch_size: int = setting(32, "Windows of --crop steps per step.")
    warmup: int = setting(100, "Steps of linear warm-up before the cosine decay.")
    transpose: int = setting(0, "Augment by random transpositions of up to this many semitones (0: the "
                                "corpus's keys, normalised to C).")
    valid_every: int = setting(250, "Steps between validations (and checkpoints of the best weights).")
    crop: int = setting(128, "Steps per training window (read from the model's initial state).")
    start_share: float = setting(0.25, "Share of training windows that start where their piece starts.")
    valid_windows: int = setting(48, "Validation windows per genre.")

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.crop >= 1, f"crop must be at least 1, got {self.crop}")
        require(0.0 <= self.start_share <= 1.0, f"start_share must be in [0, 1], got {self.start_share}")
        require(self.valid_windows >= 1, f"valid_windows must be at least 1, got {self.valid_windows}")


@dataclass(frozen=True)
class StyleConfig:
    """Settings of learning a style (``musicflow style learn``): a new genre slot of a trained flow
    fitted to a user's pieces, every other weight frozen; saved with the style."""

    steps: int = setting(500, "Most optimiser steps (learning stops earlier when the held-out pieces stop "
                              "improving).")
    batch_size: int = setting(16, "Windows of --crop steps per step.")
    crop: int = setting(128, "Steps per training window.")
    lr: float = setting(0.02, "Learning rate (Adam) of the style's weights.")
    valid_every: int = setting(15, "Steps between scores of the held-out pieces.")
    patience: int = setting(6, "Stop after this many scores of the held-out pieces without a better one.")
    held_out: float = setting(0.2, "Share kept aside to stop on: whole files from 5 files on, else the last "
                                   "bars of every piece.")
    minutes: float = setting(2.0, "Stop after this wall time (an adapter gets as long again).")
    seed: int = setting(0, "Seed of the held-out choice and the batches.")
    adapter: int = setting(0, "Then also fit a low-rank adapter of this rank (a bias per key and a change of "
                              "the keys' features; the sequence flow only), kept only if the held-out "
                              "pieces score better with it (0: none).")

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "crop", "valid_every", "patience"):
            require(getattr(self, name) >= 1, f"{name} must be at least 1, got {getattr(self, name)}")
        require(self.lr > 0, f"lr must be positive, got {self.lr}")
        require(0 < self.held_out < 1, f"held_out must be in (0, 1), got {self.held_out}")
        require(self.minutes > 0, f"minutes must be positive, got {self.minutes}")
        require(self.adapter >= 0, f"adapter must be a rank >= 0, got {self.adapter}")
