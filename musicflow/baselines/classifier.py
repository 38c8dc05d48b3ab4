"""An independent genre classifier over real windows: judges whether samples sound like a genre.

It is a small CNN trained on real four-bar windows of the corpus, never on samples, and shares no
weights with the flows; it ships beside the flow checkpoints.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
from torch import nn

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
