"""Training: one loop over the Flow interface, for the window models and the benchmark models.

The names load on first use, so that reading the settings (``training.settings``, free of torch)
does not import the models; the command line starts without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_HOME = {"TrainConfig": "settings", "Optimisation": "settings", "calibrate": "windows",
         "evaluate_bpd": "windows", "model_bank": "windows", "model_windows": "windows",
         "outline_bank": "windows",
         "pick_device": "windows", "train": "windows"}

if TYPE_CHECKING:
    from musicflow.training.settings import Optimisation, TrainConfig
    from musicflow.training.windows import (
        calibrate,
        evaluate_bpd,
        model_bank,
        model_windows,
        outline_bank,
        pick_device,
        train,
    )

__all__ = ["Optimisation", "TrainConfig", "calibrate", "evaluate_bpd", "model_bank", "model_windows",
           "outline_bank", "pick_device", "train"]


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module 'musicflow.training' has no attribute {name!r}")
    return getattr(importlib.import_module(f"musicflow.training.{_HOME[name]}"), name)
