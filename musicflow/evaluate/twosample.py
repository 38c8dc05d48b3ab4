"""A two-sample test: can a classifier tell one set of pieces (generated) from another (real)?

Each piece ``(2, P, T)`` is cut into windows of ``window`` steps (4 bars by default), canonical as
:func:`musicflow.roll.decode` reads them, so the test compares the music and not encoding artefacts.
A classifier learns to tell the two sides apart: a logistic regression on interpretable window
features (:func:`window_features`) or a small CNN on the window rolls. Windows of one piece share
much (key, register, texture), so cross-validation keeps each piece's windows in one fold
(:func:`assign_folds`); otherwise the classifier would recognise pieces, not sides. The held-out
balanced accuracy is about 0.5 when the sides cannot be told apart (two random halves of real
pieces, :func:`real_halves`, show the floor on real data) and 1.0 when they always can. Its 95%
interval comes from a cluster bootstrap over pieces, for the same reason; the standardised
feature differences (``giveaways``) say what gives the generated side away.

The idea is the classifier two-sample test of Lopez-Paz & Oquab, "Revisiting classifier two-sample
tests" (ICLR 2017).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from musicflow.errors import MusicflowError
from musicflow.evaluate.features import BEAT_STEPS, FEATURE_NAMES, window_features
from musicflow.roll import canonical
from musicflow.settings import require

FEATURES = ("metrics", "cnn")


def _windows(rolls, window: int, name: str, pitches: int | None, groups_of=None
             ) -> tuple[np.ndarray, np.ndarray, int]:
    """Canonical windows ``(N, 2, P, window)`` of the pieces at least one window long, each
    window's group (``groups_of[i]`` for roll ``i``, else ``i``), and how many pieces were too short."""
    if groups_of is not None and len(groups_of) != len(rolls):
        raise MusicflowError(f"{name}: {len(groups_of)} group labels for {len(rolls)} pieces")
    out, groups, short = [], [], 0
    for i, roll in enumerate(rolls):
        roll = np.asarray(roll)
        if roll.ndim != 3 or roll.shape[0] != 2 or (pitches is not None and roll.shape[1] != pitches):
            want = f"(2, {pitches}, T)" if pitches is not None else "(2, P, T)"
            raise MusicflowError(f"{name}[{i}] has shape {tuple(roll.shape)}, expected {want}")
        pitches = roll.shape[1]
        n = roll.shape[-1] // window
        if not n:
            short += 1
            continue
        cut = canonical(roll[..., : n * window]).reshape(2, pitches, n, window)
        out.append(cut.transpose(2, 0, 1, 3))
        groups += [i if groups_of is None else groups_of[i]] * n
    if not out:
        raise MusicflowError(f"{name} holds no piece of at least window={window} steps")
    return np.concatenate(out), np.unique(np.array(groups), return_inverse=True)[1], short


def assign_folds(labels: np.ndarray, groups: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """The fold of each window: a piece (a ``groups`` value within one ``labels`` value) lies wholly
    in one fold. Each side's pieces are shuffled with ``seed`` and dealt round-robin, so with at
    least ``folds`` pieces a side both sides are in every fold and fold sizes differ by at most one
    piece a side.

    >>> labels, groups = np.array([0, 0, 0, 1, 1, 1]), np.array([0, 0, 1, 0, 1, 1])
    >>> f = assign_folds(labels, groups, 2)
    >>> f.tolist()
    [0, 0, 1, 0, 1, 1]
    """
    rng = np.random.default_rng(seed)
    fold = np.empty(len(labels), dtype=np.int64)
    for side in np.unique(labels):
        here = labels == side
        pieces = np.unique(groups[here])
        deal = np.empty(len(pieces), dtype=np.int64)
        deal[rng.permutation(len(pieces))] = np.arange(len(pieces)) % folds
        fold[here] = deal[np.searchsorted(pieces, groups[here])]
    return fold


def _class_weights(y: torch.Tensor) -> torch.Tensor:
    """Weights that give both sides the same total, so a bigger side does not win by its size."""
    n1 = y.sum()
    return torch.where(y > 0, 0.5 / n1, 0.5 / (len(y) - n1))


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-2) -> Callable[[np.ndarray], np.ndarray]:
    """A class-weighted logistic regression on features ``x`` ``(N, F)`` and labels ``y`` ``(N,)``
    (0/1), fitted by L-BFGS from zero weights (so no seed is needed); returns a function from
    features to the probability of label 1. Features are standardised with the training mean and
    standard deviation (constant features are only centred), and ``l2`` penalises the weights.

    >>> x = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array([0, 0, 1, 1])
    >>> (fit_logistic(x, y)(np.array([[0.2], [2.8]])) > 0.5).tolist()
    [False, True]
    """
    mean, std = x.mean(0), x.std(0)
    std = np.where(std > 1e-8, std, 1.0)
    xt = torch.as_tensor((x - mean) / std, dtype=torch.float64)
    yt = torch.as_tensor(y, dtype=torch.float64)
    weights = _class_weights(yt)
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        bce = nn.functional.binary_cross_entropy_with_logits(xt @ w + b, yt, reduction="none")
        loss = (weights * bce).sum() + l2 * w.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    w, b = w.detach(), b.detach()

    def predict(xs: np.ndarray) -> np.ndarray:
        z = torch.as_tensor((xs - mean) / std, dtype=torch.float64) @ w + b
        return torch.sigmoid(z).numpy()

    return predict


class WindowCNN(nn.Module):
    """A small CNN over window rolls ``(B, 2, P, T)`` giving one logit each.

    The first layer's kernel and stride span a beat (4 steps), so its channels see where in the beat
    notes start without the cost of full time resolution. Pooling over time keeps 8 pitch bands, so
    register stays visible; it takes both the mean (how much of something) and the maximum
    (whether it happens at all: a bass that is never there gives an octave shift away).

    >>> WindowCNN()(torch.zeros(3, 2, 48, 64)).shape
    torch.Size([3])
    """

    def __init__(self, channels: int = 8, bands: int = 8):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(2, channels, (3, BEAT_STEPS), stride=(1, BEAT_STEPS), padding=(1, 0)), nn.ReLU(),
            nn.Conv2d(channels, 2 * channels, 3, padding=1), nn.ReLU(),
        )
        self.bands = bands
        self.out = nn.Linear(4 * channels * bands, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        size = (self.bands, 1)
        mean, peak = nn.functional.adaptive_avg_pool2d(h, size), nn.functional.adaptive_max_pool2d(h, size)
        return self.out(torch.cat([mean, peak], 1).flatten(1)).squeeze(-1)


def fit_cnn(x: np.ndarray, y: np.ndarray, seed: int = 0, epochs: int = 5, batch: int = 16,
            lr: float = 1e-2) -> Callable[[np.ndarray], np.ndarray]:
    """A class-weighted :class:`WindowCNN` trained with Adam on windows ``x`` ``(N, 2, P, T)`` and
    labels ``y``; returns a function from windows to the probability of label 1. Initial weights
    and batch order come from ``seed`` inside a forked RNG, so the caller's random state is kept.

    >>> x = np.zeros((8, 2, 8, 16), np.float32); x[4:, 1] = 1; y = np.array([0] * 4 + [1] * 4)
    >>> (fit_cnn(x, y, epochs=20)(x) > 0.5).astype(int).tolist()
    [0, 0, 0, 0, 1, 1, 1, 1]
    """
    xt, yt = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32)
    weights = _class_weights(yt) * len(yt)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = WindowCNN()
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(epochs):
        for idx in torch.randperm(len(xt), generator=gen).split(batch):
            bce = nn.functional.binary_cross_entropy_with_logits(model(xt[idx]), yt[idx], reduction="none")
            loss = (weights[idx] * bce).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()

    @torch.no_grad()
    def predict(xs: np.ndarray) -> np.ndarray:
        return torch.sigmoid(model(torch.as_tensor(xs, dtype=torch.float32))).numpy()

    return predict


def balanced_accuracy(labels: np.ndarray, correct: np.ndarray) -> float:
    """Mean over the two labels of the share predicted correctly (chance is 0.5 whatever the sizes).

    >>> balanced_accuracy(np.array([0, 0, 0, 1]), np.array([True, True, True, False]))
    0.5
    """
    return float(np.mean([correct[labels == side].mean() for side in (0, 1)]))


def cluster_bootstrap(labels: np.ndarray, groups: np.ndarray, correct: np.ndarray,
                      resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """The 95% percentile interval of the balanced accuracy when each side's pieces are drawn with
    replacement (a piece brings all its windows): windows of a piece are not independent, so
    resampling windows would make the interval too narrow.

    >>> labels, groups = np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])
    >>> cluster_bootstrap(labels, groups, np.array([True, True, True, True]), resamples=10)
    (1.0, 1.0)
    """
    rng = np.random.default_rng(seed)
    recalls = []
    for side in (0, 1):
        here = labels == side
        _, piece = np.unique(groups[here], return_inverse=True)
        hits = np.bincount(piece, weights=correct[here])
        sizes = np.bincount(piece)
        draw = rng.integers(0, len(sizes), size=(resamples, len(sizes)))
        recalls.append(hits[draw].sum(1) / sizes[draw].sum(1))
    lo, hi = np.percentile((recalls[0] + recalls[1]) / 2, [2.5, 97.5])
    return float(lo), float(hi)


def giveaways(fa: np.ndarray, fb: np.ndarray, top: int = 8) -> list[tuple[str, float]]:
    """The ``top`` features that differ most between window features ``fa`` and ``fb``, as
    (name, standardised difference (mean_a - mean_b) / pooled standard deviation), largest first.
    A feature constant on both sides differs by 0 if equal and by an infinite amount if not.

    >>> fa, fb = np.zeros((4, len(FEATURE_NAMES))), np.zeros((4, len(FEATURE_NAMES)))
    >>> fa[:, 1] = [1, 2, 3, 4]; fb[:, 1] = [0, 1, 2, 3]
    >>> giveaways(fa, fb, top=1)
    [('polyphony', 0.7745966692414834)]
    """
    na, nb = len(fa), len(fb)
    diff = fa.mean(0) - fb.mean(0)
    pooled = np.sqrt(((na - 1) * fa.var(0, ddof=1) + (nb - 1) * fb.var(0, ddof=1)) / max(na + nb - 2, 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(pooled > 0, diff / pooled, np.where(diff == 0, 0.0, np.sign(diff) * np.inf))
    order = np.argsort(-np.abs(d), kind="stable")[:top]
    return [(FEATURE_NAMES[i], float(d[i])) for i in order]


def two_sample_test(a_rolls: Sequence[np.ndarray], b_rolls: Sequence[np.ndarray], low: int,
                    features: str = "metrics", folds: int = 5, seed: int = 0, window: int = 64,
                    resamples: int = 1000, epochs: int = 5, a_groups: Sequence | None = None,
                    b_groups: Sequence | None = None) -> dict:
    """How well a classifier tells pieces ``a_rolls`` from ``b_rolls`` (each a roll ``(2, P, T)``,
    pitches from ``low``) on held-out windows of ``window`` steps.

    ``features`` is ``"metrics"`` (a logistic regression on :func:`window_features`) or ``"cnn"``
    (:class:`WindowCNN` trained ``epochs`` epochs on the rolls). Pieces shorter than one window are
    skipped. Group ``folds``-fold cross-validation, pieces dealt to folds with ``seed``
    (:func:`assign_folds`). Returns ``accuracy`` (balanced, over all held-out windows), its 95%
    ``interval`` from ``resamples`` cluster-bootstrap draws, ``pieces``, ``windows`` and
    ``skipped`` (too short) per side, and for ``"metrics"`` the top 8 ``giveaways``
    (:func:`giveaways`; None for ``"cnn"``). ``a_groups``/``b_groups`` label each roll's source
    piece when several rolls are excerpts of one piece: excerpts of a piece then stay in one fold
    and count as one piece. The same arguments give the same dict.

    >>> rng = np.random.default_rng(0)
    >>> sparse = [(rng.random((2, 12, 64)) < 0.1).astype(np.float32) for _ in range(6)]
    >>> dense = [(rng.random((2, 12, 64)) < 0.4).astype(np.float32) for _ in range(6)]
    >>> out = two_sample_test(sparse, dense, low=60, folds=3, resamples=100)
    >>> out["accuracy"], out["pieces"], out["giveaways"][0][0]
    (1.0, {'a': 6, 'b': 6}, 'voices_mean')
    """
    require(features in FEATURES, f"features must be one of {', '.join(FEATURES)}, got {features!r}")
    require(folds >= 2, f"folds must be at least 2, got {folds}")
    require(window >= 1, f"window must be at least 1, got {window}")
    require(resamples >= 1, f"resamples must be at least 1, got {resamples}")
    require(epochs >= 1, f"epochs must be at least 1, got {epochs}")
    wa, ga, sa = _windows(a_rolls, window, "a_rolls", None, a_groups)
    wb, gb, sb = _windows(b_rolls, window, "b_rolls", wa.shape[2], b_groups)
    for name, g in (("a_rolls", ga), ("b_rolls", gb)):
        n = int(g.max()) + 1
        require(n >= folds, f"{name} has {n} pieces of at least window={window} steps, "
                            f"fewer than folds={folds}")
    labels = np.r_[np.zeros(len(wa), np.int64), np.ones(len(wb), np.int64)]
    groups = np.r_[ga, gb]
    fold = assign_folds(labels, groups, folds, seed)
    if features == "metrics":
        x = np.stack([window_features(w, low) for w in np.concatenate([wa, wb])])
    else:
        x = np.concatenate([wa, wb])
    prob = np.empty(len(labels))
    for k in range(folds):
        test = fold == k
        fit = fit_logistic(x[~test], labels[~test]) if features == "metrics" else \
            fit_cnn(x[~test], labels[~test], seed=seed * folds + k, epochs=epochs)
        prob[test] = fit(x[test])
    correct = (prob > 0.5) == (labels == 1)
    return {
        "features": features,
        "accuracy": balanced_accuracy(labels, correct),
        "interval": cluster_bootstrap(labels, groups, correct, resamples, seed),
        "pieces": {"a": int(ga.max()) + 1, "b": int(gb.max()) + 1},
        "windows": {"a": len(wa), "b": len(wb)},
        "skipped": {"a": sa, "b": sb},
        "giveaways": giveaways(x[labels == 0], x[labels == 1]) if features == "metrics" else None,
    }


def realism(generated: np.ndarray, real: np.ndarray, real_pieces: np.ndarray, low: int, seed: int = 0,
            window: int = 64, resamples: int = 1000, epochs: int = 5) -> dict:
    """The two-sample tests of generated pieces ``(n, 2, P, T)`` against real excerpts (each with
    its source piece in ``real_pieces``, so a piece's excerpts stay in one fold), with the metric
    features and the CNN, beside the same tests between two halves of the real pieces (the floor).
    Folds: five, or as many as the fewest pieces a side allows (at least two)."""
    halves = np.random.default_rng(seed).permutation(np.unique(real_pieces))
    first = np.isin(real_pieces, halves[: len(halves) // 2])
    out: dict = {}
    for name, a, b, ga, gb in (("generated", generated, real, None, real_pieces),
                               ("real_halves", real[first], real[~first], real_pieces[first],
                                real_pieces[~first])):
        n = min(len(a) if ga is None else len(np.unique(ga)), len(np.unique(gb)))
        folds = min(5, n)
        if folds < 2:
            out[name] = None
            continue
        out[name] = {f: two_sample_test(list(a), list(b), low, f, folds, seed, window, resamples, epochs,
                                        a_groups=None if ga is None else list(ga), b_groups=list(gb))
                     for f in FEATURES}
    return out


def real_halves(rolls: Sequence[np.ndarray], seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Real pieces split at random (with ``seed``) into two halves by piece, the first taking the
    smaller half when the count is odd: a two-sample test between them shows the floor (about 0.5)
    of what the same classifier finds on real data.

    >>> a, b = real_halves([np.zeros((2, 4, 8))] * 5, seed=1)
    >>> len(a), len(b)
    (2, 3)
    """
    order = np.random.default_rng(seed).permutation(len(rolls))
    half = len(rolls) // 2
    return [rolls[i] for i in order[:half]], [rolls[i] for i in order[half:]]
