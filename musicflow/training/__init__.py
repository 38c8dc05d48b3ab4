"""Training: one loop over the Flow interface, for the window models and the benchmark models."""

from __future__ import annotations

from musicflow.training.train import (
    TrainConfig,
    calibrate,
    evaluate_bpd,
    model_windows,
    outline_bank,
    pick_device,
    train,
)

__all__ = ["TrainConfig", "calibrate", "evaluate_bpd", "model_windows", "outline_bank", "pick_device",
           "train"]
