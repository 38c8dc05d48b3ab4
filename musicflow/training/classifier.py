"""Training the independent genre classifier on real windows (never on samples)."""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from musicflow.baselines.classifier import ClassifierConfig, GenreClassifier, evaluate_classifier
from musicflow.data.dataset import Dataset
from musicflow.data.windows import WindowSet


def train_classifier(ds: Dataset, steps: int = 3000, batch_size: int = 64, lr: float = 2e-3,
                     seed: int = 0, quiet: bool = False) -> tuple[GenreClassifier, dict]:
    """Train on the train split (genre-balanced, transposition-augmented); report valid accuracy."""
    torch.manual_seed(seed)
    cfg = ClassifierConfig(pitches=ds.spec.pitches, n_genres=len(ds.genres))
    model = GenreClassifier(cfg)
    tr = WindowSet(ds, "train", window=cfg.steps, context=0, hop=cfg.steps // 2)
    va = WindowSet(ds, "valid", window=cfg.steps, context=0, hop=cfg.steps)
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    weights = torch.from_numpy(tr.balanced_weights())
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps)
    t0 = time.perf_counter()
    model.train()
    for _ in tqdm(range(steps), desc="train classifier", disable=quiet):
        idx = torch.multinomial(weights, batch_size, replacement=True, generator=gen).numpy()
        x, _, g = tr.batch(idx, int(rng.integers(-2, 3)))
        loss = nn.functional.cross_entropy(model(x), g.argmax(1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    report = evaluate_classifier(model, va, ds.genres)
    report.update(steps=steps, seed=seed, wall_time_s=round(time.perf_counter() - t0, 1),
                  train_windows=len(tr), data_hash=ds.content_hash())
    return model, report
