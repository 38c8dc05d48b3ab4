"""Novelty: how far each generated window is from its nearest training window (no copying).

Rolls are compared cell by cell over both channels (onset and sustain). For binary vectors ``a``
and ``b`` with ``|a|`` cells on, ``a . b`` of them shared, the Hamming distance is
``|a| + |b| - 2 a.b`` and the Jaccard distance ``1 - a.b / (|a| + |b| - a.b)``; both come from
one matrix product per chunk of references, so a sample meets a hundred thousand windows in seconds.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch


def nearest(samples: np.ndarray, references: Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Smallest Hamming and smallest Jaccard distance of each sample to any reference.

    ``samples`` ``(S, ...)`` and each reference chunk ``(N, ...)`` are binary arrays of the same
    cell shape; references come in chunks so that they never need to be in memory at once. Two
    silent rolls are at distance 0. With no reference at all, distances are infinite.

    >>> s = np.array([[1, 1, 0, 0], [0, 0, 0, 0]])
    >>> r = np.array([[1, 0, 0, 0], [0, 1, 1, 1]])
    >>> ham, jac = nearest(s, [r])
    >>> ham.tolist(), jac.tolist()
    ([1.0, 1.0], [0.5, 1.0])
    """
    s = torch.from_numpy(np.asarray(samples, np.float32).reshape(len(samples), -1))
    ns = s.sum(1)
    ham = torch.full((len(s),), float("inf"))
    jac = torch.full((len(s),), float("inf"))
    for chunk in references:
        r = torch.as_tensor(np.asarray(chunk, np.float32)).reshape(len(chunk), -1)
        if not len(r):
            continue
        dot = s @ r.T
        nr = r.sum(1)
        h = ns[:, None] + nr[None] - 2 * dot
        union = ns[:, None] + nr[None] - dot
        j = torch.where(union > 0, 1 - dot / union.clamp_min(1), torch.zeros_like(union))
        ham = torch.minimum(ham, h.min(1).values)
        jac = torch.minimum(jac, j.min(1).values)
    return ham.numpy(), jac.numpy()


def summarize(ham: np.ndarray, jac: np.ndarray, silent: np.ndarray) -> dict:
    """Mean and minimum of the nearest distances over non-silent samples, and the share of exact
    copies (Hamming 0) among them; silent samples are counted apart (silence copies nothing).

    >>> s = summarize(np.array([0.0, 4.0, 0.0]), np.array([0.0, 0.5, 0.0]), np.array([False, False, True]))
    >>> s["silent"], s["exact_copies"], s["jaccard_mean"], s["hamming_mean"], s["hamming_min"]
    (1, 0.5, 0.25, 2.0, 0.0)
    """
    keep = ~np.asarray(silent, bool)
    out = {"samples": int(len(ham)), "silent": int((~keep).sum())}
    if not keep.any() or not np.isfinite(ham[keep]).all():
        return {**out, "exact_copies": None, "jaccard_mean": None, "jaccard_min": None,
                "hamming_mean": None, "hamming_min": None}
    h, j = ham[keep], jac[keep]
    return {**out, "exact_copies": float((h == 0).mean()), "jaccard_mean": float(j.mean()),
            "jaccard_min": float(j.min()), "hamming_mean": float(h.mean()), "hamming_min": float(h.min())}


def segments(rolls: np.ndarray, steps: int) -> np.ndarray:
    """Cut rolls ``(B, 2, P, T)`` into consecutive windows of ``steps`` (a shorter tail is dropped)
    ``(B * (T // steps), 2, P, steps)``.

    >>> segments(np.zeros((2, 2, 3, 10)), 4).shape
    (4, 2, 3, 4)
    """
    b, c, p, t = rolls.shape
    n = t // steps
    r = rolls[..., : n * steps].reshape(b, c, p, n, steps)
    return r.transpose(0, 3, 1, 2, 4).reshape(b * n, c, p, steps)


def diversity(rolls: np.ndarray) -> float | None:
    """Mean Jaccard distance between every two of ``rolls`` ``(S, ...)`` over their sounding cells:
    how different the pieces of one genre are from each other (0: all the same piece; a model that
    collapses onto a few pieces scores low). Silent rolls are left out; ``None`` under two left.

    >>> round(diversity(np.array([[1, 1, 0], [1, 0, 0], [0, 0, 1]])), 3)
    0.833
    """
    s = torch.from_numpy(np.asarray(rolls, np.float32).reshape(len(rolls), -1))
    s = s[s.sum(1) > 0]
    if len(s) < 2:
        return None
    dot = s @ s.T
    n = s.sum(1)
    jac = 1 - dot / (n[:, None] + n[None] - dot)
    i, j = torch.triu_indices(len(s), len(s), offset=1)
    return float(jac[i, j].mean())
