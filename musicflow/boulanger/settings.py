"""The settings of the benchmark models' training (free of torch, for the command line)."""

from __future__ import annotations

from dataclasses import dataclass

from musicflow.settings import require, setting
from musicflow.training.settings import Optimisation

#: The model kinds the benchmark trains and scores (checkpoint kinds, see ``musicflow.checkpoint``).
BENCHMARK_KINDS = ("keyflow", "frameflow")


@dataclass(frozen=True)
class BenchmarkTrainConfig(Optimisation):
    """Settings of a benchmark model's training; saved in the checkpoint's training record."""

    kind: str = setting("keyflow", "Model kind: keyflow (autoregressive over keys) or frameflow "
                                   "(coupling flow over the frame).")
    steps: int = setting(3000, "Optimiser steps.")
    batch_size: int = setting(16, "Pieces (or windows of --crop steps) per step.")
    transpose: int = setting(0, "Augment by random transpositions of up to this many semitones "
                                "(0: the published protocol, which did not augment).")
    warmup: int = setting(100, "Steps of linear warm-up before the cosine decay.")
    valid_every: int = setting(250, "Steps between validations (and checkpoints of the best weights).")
    minutes: float | None = setting(None, "Stop (and save the best) after this wall time.")
    crop: int = setting(0, "Train on random windows of this many time steps (0: whole pieces); "
                           "scoring always reads whole pieces.")
    steps_per_quarter: int = setting(1, "What one time step of the data is (stored in the checkpoint).")

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.kind in BENCHMARK_KINDS,
                f"kind must be one of {', '.join(BENCHMARK_KINDS)}, got {self.kind!r}")
        require(self.crop >= 0, f"crop must be >= 0, got {self.crop}")
        require(self.steps_per_quarter >= 1,
                f"steps_per_quarter must be at least 1, got {self.steps_per_quarter}")
