"""An independent genre classifier over real windows: judges whether samples sound like a genre.

It is a small CNN trained on real four-bar windows of the corpus, never on samples, and shares no
weights with the flows; it ships beside the flow checkpoints.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from musicflow.data.dataset import Dataset
from musicflow.data.windows import WindowSet


@dataclass(frozen=True)
class ClassifierConfig:
    """Shape of the classifier. ``steps`` is the window it judges (four bars of 16ths)."""

    pitches: int = 48
    steps: int = 64
    n_genres: int = 7
    channels: int = 32
    dropout: float = 0.3

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ClassifierConfig:
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


class GenreClassifier(nn.Module):
    """Rolls ``(B, 2, P, T)`` -> genre logits ``(B, G)``.

    >>> clf = GenreClassifier(ClassifierConfig(pitches=12, steps=16, n_genres=3, channels=4))
    >>> clf(torch.zeros(5, 2, 12, 16)).shape
    torch.Size([5, 3])
    """

    def __init__(self, config: ClassifierConfig | None = None):
        super().__init__()
        self.config = c = config or ClassifierConfig()
        ch = c.channels

        def block(i, o):
            return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.GELU(),
                                 nn.MaxPool2d(2))

        self.features = nn.Sequential(block(2, ch), block(ch, 2 * ch), block(2 * ch, 2 * ch))
        # Register matters (a bass line vs a fiddle tune), so keep pitch position: pool time only.
        self.head = nn.Sequential(
            nn.Dropout(c.dropout), nn.Linear(2 * ch * (c.pitches // 8), 128), nn.GELU(),
            nn.Dropout(c.dropout), nn.Linear(128, c.n_genres))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x).mean(-1)
        return self.head(f.flatten(1))

    @torch.no_grad()
    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        self.eval()
        return self.forward(x).softmax(-1)


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


@torch.no_grad()
def evaluate_classifier(model: GenreClassifier, windows: WindowSet, genres: list[str]) -> dict:
    """Accuracy per genre, balanced accuracy and the confusion matrix (rows: true genre)."""
    preds = []
    for s in range(0, len(windows), 256):
        x, _, _ = windows.batch(np.arange(s, min(s + 256, len(windows))))
        preds.append(model.probabilities(x).argmax(1).numpy())
    pred = np.concatenate(preds) if preds else np.zeros(0, int)
    n = len(genres)
    conf = np.zeros((n, n), dtype=int)
    np.add.at(conf, (windows.labels, pred), 1)
    per = {g: float(conf[i, i] / conf[i].sum()) for i, g in enumerate(genres) if conf[i].sum()}
    return {"accuracy_per_genre": per, "balanced_accuracy": float(np.mean(list(per.values()))),
            "confusion": conf.tolist(), "genres": genres}
