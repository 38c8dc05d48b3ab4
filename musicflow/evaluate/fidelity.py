"""Do samples sound like the genre asked for? Sample statistics against real windows, and an
independent classifier's verdict on samples."""

from __future__ import annotations

import numpy as np
import torch

from musicflow.data.dataset import Dataset
from musicflow.data.windows import WindowSet
from musicflow.evaluate.metrics import all_metrics, overlap_area

STATS = ("pitch_range", "pitch_classes_used", "pitch_class_entropy", "scale_consistency",
         "polyphony", "empty_beat_rate", "groove_consistency", "note_density", "notes_per_bar")


def real_windows(ds: Dataset, split: str, genre: str, n: int, steps: int = 64,
                 seed: int = 0) -> np.ndarray:
    """Up to ``n`` real windows of one genre and split, chosen with a fixed seed."""
    ws = WindowSet(ds, split, window=steps, context=0, genres=[genre])
    if not len(ws):
        return np.zeros((0, 2, ds.spec.pitches, steps), np.float32)
    idx = np.random.default_rng(seed).choice(len(ws), size=min(n, len(ws)), replace=False)
    return ws.batch(np.sort(idx))[0].numpy()


def real_openings(ds: Dataset, split: str, genre: str, n: int, steps: int = 64) -> np.ndarray:
    """The first ``steps`` steps of up to ``n`` real pieces of one genre and split (those at least
    that long), in dataset order: what a piece composed from nothing should be compared with,
    since openings are often thinner than the rest (imitative entries, a lone tune)."""
    out = []
    for i in ds.indices(split, genre):
        roll = ds.roll(i)
        if roll.shape[-1] >= steps:
            out.append(roll[..., :steps])
        if len(out) == n:
            break
    return np.stack(out).astype(np.float32) if out else np.zeros((0, 2, ds.spec.pitches, steps), np.float32)


def statistics(rolls: np.ndarray, low: int) -> dict[str, np.ndarray]:
    """Each metric of :data:`STATS` over a batch of rolls."""
    per = [all_metrics(r, low) for r in rolls]
    return {k: np.array([m[k] for m in per]) for k in STATS}


def compare(samples: np.ndarray, real: np.ndarray, low: int) -> dict[str, dict[str, float]]:
    """Mean of each statistic for samples and real windows, and their histogram overlap."""
    s, r = statistics(samples, low), statistics(real, low)
    return {k: {"samples": float(s[k].mean()), "real": float(r[k].mean()),
                "overlap": overlap_area(s[k], r[k])} for k in STATS}


@torch.no_grad()
def classify_rolls(classifier, rolls: np.ndarray) -> np.ndarray:
    """Classifier probabilities ``(n, G)`` for rolls of the classifier's window length (longer rolls
    are cut into windows and their log-probabilities summed)."""
    steps = classifier.config.steps
    x = torch.from_numpy(np.asarray(rolls, np.float32))
    n_win = max(x.shape[-1] // steps, 1)
    logp = 0
    for i in range(n_win):
        chunk = x[..., i * steps:(i + 1) * steps]
        if chunk.shape[-1] < steps:
            chunk = torch.nn.functional.pad(chunk, (0, steps - chunk.shape[-1]))
        logp = logp + classifier.probabilities(chunk).clamp_min(1e-9).log()
    return torch.softmax(logp, -1).numpy()
