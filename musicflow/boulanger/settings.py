"""The settings of the benchmark model's training (free of torch, for the command line)."""

from __future__ import annotations

from dataclasses import dataclass

from musicflow.settings import require, setting
from musicflow.training.settings import Optimisation


@dataclass(frozen=True)
class JSBTrainConfig(Optimisation):
    """Settings of the benchmark model's training; saved in the checkpoint's training record."""

    steps: int = setting(3000, "Optimiser steps.")
    batch_size: int = setting(16, "Pieces per step.")
    warmup: int = setting(100, "Steps of linear warm-up before the cosine decay.")
    valid_every: int = setting(250, "Steps between validations (and checkpoints of the best weights).")
    minutes: float | None = setting(None, "Stop (and save the best) after this wall time.")
    steps_per_quarter: int = setting(1, "What one time step of the data is (stored in the checkpoint).")

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.steps_per_quarter >= 1,
                f"steps_per_quarter must be at least 1, got {self.steps_per_quarter}")
