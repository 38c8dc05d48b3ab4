"""The polyphonic-music benchmark (Boulanger-Lewandowski et al. 2012): NLL in nats per time step.

Every number here is a negative log-likelihood per time step of the data (one frame of 88 piano
keys, MIDI 21..108), averaged over all time steps of a split, the unit of the published table:

    NLL = -(1 / sum_pieces T_i) * sum_pieces sum_t log p(x_t | x_<t).

For the benchmark models (:class:`~musicflow.flows.keyflow.KeyFlow`,
:class:`~musicflow.flows.frame.FrameFlow`) each ``log p(x_t | x_<t)`` is the log-likelihood of a
window of one frame given every frame before it in the piece (the first frame of a piece is
scored given nothing: a silent frame and the learned initial state). Scoring longer windows with
their preceding frames as context gives the same sum (the chain rule; ``tests/test_jsb.py`` checks
it). Each window log-likelihood is a dequantization lower bound, ``E_q[log p(x + u) - log q(u|x)]``
estimated with one noise draw per frame, so the NLL estimates an *upper bound* on the model's
discrete NLL (the bound holds in expectation over the draws); :func:`flow_nll` repeats the whole
evaluation with ``samples`` independent noise draws and reports their mean and standard error,
plus the tighter importance-weighted bound ``-sum_pieces log mean_s exp(log w_s(piece)) / sum T_i``
(also an upper bound in expectation, Burda et al. 2016). For the KeyFlow the bound is tight: its
density is constant on each dequantization cell, every draw gives its discrete NLL exactly.

The baselines are fitted on the training split: ``uniform`` (each key on with probability 1/2,
``88 ln 2`` nats), ``bernoulli`` (independent Bernoulli per key) and ``markov`` (per key, a
Bernoulli given that key in the previous step), with counts smoothed by +0.5.

This module is the benchmark's front: the flow's NLL and the pieces come from
:mod:`musicflow.boulanger.pieces`, its training from :mod:`musicflow.boulanger.train`, and both
are importable from here.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from musicflow.boulanger.pieces import file_sha1, flow_nll, load_split, pad
from musicflow.boulanger.settings import BENCHMARK_KINDS, BenchmarkTrainConfig
from musicflow.boulanger.train import train_benchmark
from musicflow.errors import MusicflowError
from musicflow.io.boulanger import KEYS

__all__ = ["BENCHMARK_KINDS", "BenchmarkTrainConfig", "bernoulli_nll", "evaluate", "file_sha1", "flow_nll",
           "load_split", "markov_nll", "pad", "train_benchmark", "uniform_nll"]


# -- baselines ---------------------------------------------------------------------------------


def uniform_nll() -> float:
    """Every key on with probability 1/2: ``88 ln 2`` nats per step."""
    return KEYS * math.log(2)


def bernoulli_nll(train: list[np.ndarray], test: list[np.ndarray], smoothing: float = 0.5) -> float:
    """Nats per step of ``test`` under an independent Bernoulli per key fitted on ``train``.

    >>> train = [np.array([[1] + [0] * 87, [0] * 88], bool)]   # key 0 on in 1 of 2 steps
    >>> round(bernoulli_nll(train, train, smoothing=0.0), 4)   # ln 2: only key 0 is uncertain
    0.6931
    """
    x = np.concatenate(train).astype(np.float64)
    p = (x.sum(0) + smoothing) / (len(x) + 2 * smoothing)
    y = np.concatenate(test)
    with np.errstate(divide="ignore"):
        ll = np.where(y, np.log(p), np.log1p(-p))
    return float(-ll.sum() / len(y))


def markov_nll(train: list[np.ndarray], test: list[np.ndarray], smoothing: float = 0.5) -> float:
    """Nats per step under a first-order Markov chain per key (a silent step before each piece)."""

    def pairs(pieces):
        prev = np.concatenate([np.vstack([np.zeros((1, KEYS), bool), p[:-1]]) for p in pieces])
        return prev, np.concatenate(pieces)

    prev, cur = pairs(train)
    p_on = np.stack([((cur & (prev == s)).sum(0) + smoothing) / ((prev == s).sum(0) + 2 * smoothing)
                     for s in (False, True)])  # (2, 88): P(on | previous off / on)
    prev, cur = pairs(test)
    p = np.where(prev, p_on[1], p_on[0])
    with np.errstate(divide="ignore"):
        ll = np.where(cur, np.log(p), np.log1p(-p))
    return float(-ll.sum() / len(cur))


# -- the report ----------------------------------------------------------------------------------


def evaluate(checkpoint: str | Path, data: str | Path, split: str = "valid", samples: int = 4,
             seed: int = 0) -> dict:
    """The benchmark report for ``checkpoint`` on ``split`` of ``data``, baselines included."""
    from musicflow.checkpoint import load_checkpoint

    ck = load_checkpoint(checkpoint)
    if ck.kind not in BENCHMARK_KINDS:
        raise MusicflowError(f"{checkpoint}: a '{ck.kind}' checkpoint, not a benchmark model "
                             f"({', '.join(BENCHMARK_KINDS)})")
    train, test = load_split(data, "train"), load_split(data, split)
    t0 = time.perf_counter()
    flow = flow_nll(ck.model, test, samples, seed)
    return {
        "data": str(data), "data_sha1": file_sha1(data), "split": split, "checkpoint": str(checkpoint),
        "trained_on_sha1": ck.info.get("data_sha1"),
        "params": sum(p.numel() for p in ck.model.parameters()),
        "flow": flow,
        "baselines_nats_per_step": {"uniform": uniform_nll(), "bernoulli": bernoulli_nll(train, test),
                                    "markov": markov_nll(train, test)},
        "eval_s": round(time.perf_counter() - t0, 1),
        "kind": ck.kind, "corpus": ck.info.get("corpus"),
        "unit": "nats per time step (88 keys, MIDI 21..108), averaged over all steps of the split; "
                "the flow's figures are dequantization upper bounds on its discrete NLL"
                + (", here tight: equal to it" if flow["tight"] else ""),
    }
