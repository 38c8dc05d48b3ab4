"""From a flow's continuous output to notes.

A flow samples the dequantized roll ``v`` in [0, 1]; a cell of value 1 dequantizes to ``v > 0.5``, so
thresholding a sample at 0.5 draws a roll from the model's own discrete distribution exactly: that is
the default (``Composer(decoding="exact")``). Measured on the shipped Glow (benchmarks/bench_glow.py,
``teacher_forced_loglik``), one-beat samples decoded at 0.5 are as likely under the model as real
beats, while lower thresholds turn near-boundary zero cells into notes the model finds very unlikely.

Calibration (``decoding="calibrated"``) is kept as an option: it picks, per genre, the threshold at
which freely generated pieces sound as many cells as real validation windows of the genre do, fitted
to one statistic of the validation split (sustain density), never to the test split, and stored in
the checkpoint.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from tqdm.auto import tqdm

from musicflow.errors import MusicflowError
from musicflow.flows.base import Condition
from musicflow.roll import PianoRollSpec, decode, encode_steps, note_steps


def clean(roll: np.ndarray, spec: PianoRollSpec) -> np.ndarray:
    """Re-encode through strict decoding, so generated context looks like the real rolls."""
    steps = note_steps(decode(roll, spec, strict=True), spec.steps_per_quarter)
    return encode_steps(steps, spec, length=roll.shape[-1])[0]


@torch.no_grad()
def generate(model, latents: torch.Tensor, genre: torch.Tensor, spec: PianoRollSpec,
             threshold: float = 0.5, prefix: np.ndarray | None = None,
             guidance: float | None = None, choice: torch.Tensor | None = None,
             return_latents: bool = False, progress: bool = False):
    """Free-running generation of ``B`` pieces window by window: ``latents`` ``(B, W, D)``, one per
    window; each window is decoded given the ``context_steps`` before it (the prefix, then what was
    generated), thresholded, and cleaned. ``genre`` is ``(1, G)`` or ``(B, G)``. Returns rolls
    ``(B, 2, P, prefix + W * steps)``, and with ``return_latents`` also the latent each window
    was decoded from ``(B, W, D)``.

    ``guidance`` scales the genre (1 or ``None``: plain sampling). A model with its own guidance
    (the neural ODE's classifier-free guidance) takes it in ``decode``. For any other model,
    ``latents`` ``(B, W, K, D)`` hold ``K`` candidates per window and ``choice`` ``(B, W, K)``
    uniform noise: :func:`guided_pick` keeps one candidate of each window (see there).
    ``progress`` shows a bar over the windows (beats)."""
    native = getattr(model, "native_guidance", False)
    kw = {"guidance": guidance} if native and guidance is not None else {}
    if latents.dim() == 3:
        latents = latents[:, :, None]
    b, w, k, _ = latents.shape
    if k > 1 and (native or choice is None or choice.shape != (b, w, k)):
        raise MusicflowError(f"{k} candidates per window need a model without its own guidance and "
                             f"choice noise of shape {(b, w, k)}")
    c = model.config.context_steps
    rolls = np.zeros((b, 2, spec.pitches, 0), np.float32) if prefix is None else prefix.copy()
    genre = genre.expand(b, -1)
    genre_k = genre.repeat_interleave(k, 0)
    picked = []
    for i in tqdm(range(w), desc="compose", unit="beat", disable=not progress, leave=False):
        ctx = np.zeros((b, 2, spec.pitches, c), np.float32)
        tail = rolls[..., -c:] if rolls.shape[-1] else rolls
        if tail.shape[-1]:
            ctx[..., -tail.shape[-1]:] = tail
        ctx_k = torch.from_numpy(ctx).repeat_interleave(k, 0)
        v = model.decode(latents[:, i].reshape(b * k, -1), Condition(genre_k, ctx_k), **kw)
        held = rolls[:, 1, :, -1] > 0 if rolls.shape[-1] else None
        chunk = clean_continuation((v > threshold).numpy(), None if held is None else held.repeat(k, 0))
        pick = np.zeros(b, np.int64)
        if k > 1:
            ratio = _unique_log_ratio(model, chunk, genre_k, ctx_k, k).view(b, k)
            pick = guided_pick(ratio, float(1.0 if guidance is None else guidance), choice[:, i]).numpy()
        rolls = np.concatenate([rolls, chunk.reshape(b, k, *chunk.shape[1:])[np.arange(b), pick]], axis=-1)
        picked.append(latents[torch.arange(b), i, torch.from_numpy(pick)])
    return (rolls, torch.stack(picked, 1)) if return_latents else rolls


def _unique_log_ratio(model, chunk: np.ndarray, genre: torch.Tensor, ctx: torch.Tensor,
                      k: int) -> torch.Tensor:
    """:func:`genre_log_ratio` of ``B * K`` candidate chunks, ``K`` per piece in a row, scoring each
    distinct chunk of a piece once: candidates of a piece share its context and genre, and a
    window's ratio does not depend on the rest of the batch, so duplicates (common where a beat
    only holds what sounded before) get the same ratio without their own forward passes."""
    piece = np.arange(len(chunk)) // k
    keys = np.concatenate([piece[:, None], chunk.reshape(len(chunk), -1)], axis=1)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    sel = torch.from_numpy(first)
    ratio = genre_log_ratio(model, torch.from_numpy(chunk[first]), genre[sel], ctx[sel])
    return ratio[torch.from_numpy(inverse.reshape(-1))]


@torch.no_grad()
def genre_log_ratio(model, x: torch.Tensor, genre: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
    """``log p(x | genre) - log mean_g p(x | g)`` per window ``(B,)``, in nats: how much better the
    asked genre (or mix) ``(B, G)`` explains binary windows ``x`` after their contexts ``ctx`` than
    the average genre does; with one genre, its log-posterior plus ``log G`` under a uniform prior.
    Every window and every condition sees the same noise of the likelihood bound (seed 0): the
    differences carry less noise than each bound, and a window's ratio does not depend on the
    other windows of the batch (so a piece is the same composed alone or in a batch)."""
    b, n_genres = genre.shape

    def log_prob(weights: torch.Tensor) -> torch.Tensor:
        reps = len(weights) // b  # several conditions in one batch: the noise is shared anyway
        return model.log_prob(x.repeat(reps, 1, 1, 1), Condition(weights, ctx.repeat(reps, 1, 1, 1)),
                              generator=torch.Generator().manual_seed(0), shared_noise=True)

    eye = torch.eye(n_genres, dtype=genre.dtype)
    each = log_prob(eye.repeat_interleave(b, 0)).view(n_genres, b).T
    one_hot = bool(((genre == 0) | (genre == 1)).all()) and bool((genre.sum(1) == 1).all())
    asked = each.gather(1, genre.argmax(1, keepdim=True))[:, 0] if one_hot else log_prob(genre)
    return asked - (torch.logsumexp(each, dim=1) - math.log(n_genres))


def guided_pick(log_ratio: torch.Tensor, guidance: float, choice: torch.Tensor) -> torch.Tensor:
    """Sampling-importance-resampling towards ``p(x | y) p(y | x) ** (guidance - 1)``: the index
    ``(B,)`` of one of ``K`` candidates drawn from the model given genre ``y`` (``log_ratio``
    ``(B, K)`` from :func:`genre_log_ratio`, which is ``log p(y | x)`` up to a constant), picked with
    probability proportional to ``p(y | x) ** (guidance - 1)`` by the Gumbel-max trick on the
    uniform noise ``choice`` ``(B, K)``. Guidance 1 keeps the model's own distribution, 0 draws
    from the genre-free mixture ``p(x)``, above 1 favours what is most typical of the genre, the
    analogue of classifier guidance for a flow with exact likelihoods. The more candidates,
    the closer the picks follow that distribution.

    >>> guided_pick(torch.tensor([[0.0, 5.0]]), 3.0, torch.tensor([[0.5, 0.5]])).tolist()
    [1]
    """
    gumbel = -torch.log(-torch.log(choice.clamp(1e-12, 1 - 1e-7)))
    return ((guidance - 1.0) * log_ratio + gumbel).argmax(dim=1)


def clean_continuation(chunk: np.ndarray, held: np.ndarray | None) -> np.ndarray:
    """:func:`clean` for a new chunk ``(B, 2, P, T)`` that follows an already clean roll whose last
    step sounds ``held`` ``(B, P)``: a sustain cell survives only if an onset started its note, here
    or before; an onset only where it also sustains. Linear in the chunk, unlike re-cleaning the
    whole piece.

    >>> c = np.zeros((1, 2, 2, 3), bool); c[0, 1, :, :] = True; c[0, 0, 1, 1] = True
    >>> clean_continuation(c, np.array([[True, False]]))[0, 1].tolist()
    [[1.0, 1.0, 1.0], [0.0, 1.0, 1.0]]
    """
    on, sus = chunk[:, 0] & chunk[:, 1], chunk[:, 1]
    prev = np.zeros(sus.shape[:2], bool) if held is None else held
    keep = np.zeros_like(sus)
    for t in range(sus.shape[-1]):
        prev = sus[..., t] & (on[..., t] | prev)
        keep[..., t] = prev
    return np.stack([on & keep, keep], axis=1).astype(np.float32)


@torch.no_grad()
def calibrate_thresholds(model, windows, spec: PianoRollSpec, temperature: float = 1.0, pieces: int = 16,
                         bars: int = 4, seed: int = 0, iters: int = 7) -> dict[str, float]:
    """Per-genre threshold at which ``pieces`` freely generated ``bars``-bar pieces (seeds fixed)
    sound as many cells as the real validation ``windows`` of that genre do on average. Found by
    bisection in [0.05, 0.6]: a lower threshold sounds more cells."""
    gen = torch.Generator().manual_seed(seed)
    steps = bars * spec.bar_steps()
    n_win = -(-steps // model.config.steps)
    z = torch.randn(pieces, n_win, model.config.dim, generator=gen) * temperature
    model.eval()
    out = {}
    for gi, name in enumerate(windows.genres):
        idx = np.flatnonzero(windows.labels == gi)
        if not len(idx):
            continue
        target = float(np.mean([windows.batch(idx[s:s + 4096])[0][:, 1].mean().item()
                                for s in range(0, len(idx), 4096)]))
        g = torch.zeros(1, len(windows.genres))
        g[0, gi] = 1
        lo, hi = 0.05, 0.6
        for _ in range(iters):
            mid = (lo + hi) / 2
            dens = float(generate(model, z, g, spec, mid)[:, 1].mean())
            lo, hi = (lo, mid) if dens < target else (mid, hi)
        out[name] = round((lo + hi) / 2, 4)
    return out


def mixed_threshold(thresholds: dict[str, float] | None, weights: dict[str, float]) -> float:
    """The threshold for a genre mix: the weighted mean of the genres' thresholds (0.5 if the
    checkpoint has none).

    >>> mixed_threshold({"a": 0.3, "b": 0.5}, {"a": 0.5, "b": 0.5})
    0.4
    """
    if not thresholds:
        return 0.5
    return round(sum(w * thresholds.get(g, 0.5) for g, w in weights.items()), 6)
