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
from musicflow.lines import bridge_rests, hold_over, one_line
from musicflow.roll import PianoRollSpec, decode, encode_steps, note_steps


def clean(roll: np.ndarray, spec: PianoRollSpec) -> np.ndarray:
    """Re-encode through strict decoding, so generated context looks like the real rolls."""
    steps = note_steps(decode(roll, spec, strict=True), spec.steps_per_quarter)
    return encode_steps(steps, spec, length=roll.shape[-1])[0]


@torch.no_grad()
def generate(model, latents: torch.Tensor, genre: torch.Tensor, spec: PianoRollSpec,
             threshold: float = 0.5, prefix: np.ndarray | None = None,
             guidance: float | None = None, choice: torch.Tensor | None = None,
             return_latents: bool = False, progress: bool = False, outline: torch.Tensor | None = None,
             mix: str = "embed"):
    """Free-running generation of ``B`` pieces window by window: ``latents`` ``(B, W, D)``, one per
    window; each window is decoded given the ``context_steps`` before it (the prefix, then what was
    generated), thresholded, and cleaned. ``genre`` is ``(1, G)`` or ``(B, G)``. Returns rolls
    ``(B, 2, P, prefix + W * steps)``, and with ``return_latents`` also the latent each window
    was decoded from ``(B, W, D)``.

    ``guidance`` scales the genre (1 or ``None``: plain sampling). A model with its own guidance
    (the neural ODE's classifier-free guidance) takes it in ``decode``. For any other model,
    ``latents`` ``(B, W, K, D)`` drive ``K`` particles per piece and ``choice`` ``(B, W)`` holds
    uniform noise: sequential Monte Carlo towards ``p(x | y) p(y | x) ** (guidance - 1)``, where
    ``p(y | x)`` is the model's own posterior of the genre given the whole piece (Bayes' rule over
    the genres, uniform prior; :func:`log_ratio`). Each particle (a piece so far) draws its next
    window from the model and adds the window's log-likelihood under every genre to its running
    totals; particles are then resampled in proportion to how much the window raised
    ``p(y | piece so far) ** (guidance - 1)`` (:func:`resample`), so histories that read as the
    genre multiply and the others die out, and after the last window one particle is kept with
    probability proportional to its weight. Once a piece reads clearly as its genre the weights
    level out: guidance asks the piece as a whole to be recognisable, not every window to be as
    typical as possible (which fills pieces with notes). A piece grown from nothing (no prefix) is
    also conditioned on starting with a note, as real pieces do (:func:`_sounding_start`).
    ``progress`` shows a bar over the windows (beats). ``outline`` ``(1 or B, 4)``: each piece's plan
    (register, density, voices; :func:`musicflow.data.windows.outline`) for a model that takes one,
    shared by the piece's particles; ``(1 or B, W, 4)``: one per window (a piece read block by
    block, or a path between two such pieces). ``mix`` goes to a model's ``decode`` unless it is
    ``"embed"`` (the weighted genre embedding, which every model reads from ``genre``). A model
    whose config sets ``one_voice`` holds each piece whose plan has one voice to one line
    (:func:`one_line`), in which a sustain that no onset leads into starts a note
    (:func:`strike_orphans`) instead of falling silent, and a window that comes out silent right
    after a note holds that note over (:func:`hold_over`); and where every window's plan has one
    voice, a rest of an eighth or less between two notes sounds the note before it on
    (:func:`bridge_rests`): a tune rests far less often
    than such a flow's dropped sustains would make it (measured in ``docs/generation.md``)."""
    # One function, though long: a single loop over windows carries the particles, their weights,
    # the held notes and the chosen latents from window to window; split, all of them would travel
    # through every helper.
    native = model.native_guidance
    one_voice = bool(getattr(model.config, "one_voice", False))
    kw = {"guidance": guidance} if native and guidance is not None else {}
    if mix != "embed":  # a model that mixes its genres' fields itself (the neural ODE)
        kw["mix"] = mix
    if latents.dim() == 3:
        latents = latents[:, :, None]
    b, w, k, _ = latents.shape
    if k > 1 and (native or choice is None or choice.shape != (b, w)):
        raise MusicflowError(f"{k} particles per piece need a model without its own guidance and "
                             f"choice noise of shape {(b, w)}")
    c = model.config.context_steps
    prefix = np.zeros((b, 2, spec.pitches, 0), np.float32) if prefix is None else prefix
    keep = max(c, 1)  # steps of each particle's own piece kept: its context and its last step
    tail = np.repeat(prefix[..., -keep:] if prefix.shape[-1] else prefix, k, axis=0)
    genre_k = genre.expand(b, -1).repeat_interleave(k, 0)
    dev = model_device(model)  # the model may be on a GPU; the pieces stay on the CPU
    genre_dev = genre_k.to(dev)
    plans = None
    if outline is not None:  # (B, W, 4): each window's outline
        outline = outline.float()
        plans = (outline[:, None] if outline.dim() == 2 else outline).expand(b, w, -1)
    chunks, lineage = [], np.zeros((b, k, 0), np.int64)  # lineage: each particle's latent per window
    totals = torch.zeros(b * k, genre.shape[1] + 1)  # each particle's log p(piece | asked, each genre)
    before = torch.zeros(b * k)  # each particle's log_ratio(totals) before its last window
    rows = np.arange(b)[:, None]
    over = np.zeros(b * k, bool)  # a one-line piece's last window held its note over a silent one
    lines = np.full(b, one_voice and plans is not None)  # pieces planned as one line throughout
    for i in tqdm(range(w), desc="compose", unit="beat", disable=not progress, leave=False):
        plan_k = None if plans is None else plans[:, i].repeat_interleave(k, 0)
        plan_dev = None if plan_k is None else plan_k.to(dev)
        ctx = np.zeros((b * k, 2, spec.pitches, c), np.float32)
        n = min(c, tail.shape[-1])
        if n:
            ctx[..., -n:] = tail[..., -n:]
        ctx_t = torch.from_numpy(ctx)
        v = model.decode(latents[:, i].reshape(b * k, -1).to(dev),
                         Condition(genre_dev, ctx_t.to(dev), plan_dev), **kw).cpu()
        held = tail[:, 1, :, -1] > 0 if tail.shape[-1] else None
        raw = (v > threshold).numpy()
        solo = np.zeros(b * k, bool)
        if plan_k is not None and one_voice:
            solo = ((plan_k[:, 3] > 0) & (plan_k[:, 3] <= 1 + 1e-6)).numpy()
        held_solo = None if held is None else held[solo]
        if solo.any():
            raw[solo] = strike_orphans(raw[solo], held_solo)
        chunk = clean_continuation(raw, held)
        if solo.any():
            chunk[solo] = one_line(chunk[solo], v[torch.from_numpy(solo)].numpy(), held_solo)
            if held_solo is not None:
                chunk[solo], over[solo] = hold_over(chunk[solo], held_solo, ~over[solo])
        over &= solo
        lines &= solo.reshape(b, k)[:, 0]  # a piece's particles share its plan
        chunks.append(chunk.reshape(b, k, *chunk.shape[1:]))
        lineage = np.concatenate([lineage, np.broadcast_to(np.arange(k), (b, k))[..., None]], axis=-1)
        tail = np.concatenate([tail, chunk], axis=-1)[..., -keep:]
        if k > 1:
            totals = totals + _unique_log_probs(model, chunk, genre_k, ctx_t, plan_k)
            ratio = log_ratio(totals)
            weight = (float(1.0 if guidance is None else guidance) - 1.0) * (ratio - before).view(b, k)
            if i == 0 and not prefix.shape[-1]:
                weight = _sounding_start(weight, chunk.reshape(b, k, -1))
            anc = resample(weight, choice[:, i], 1 if i == w - 1 else k).numpy()
            lineage = lineage[rows, anc]
            flat = (rows * k + anc).reshape(-1)  # the kept particles' rows of the (B * K) batch
            kept = torch.from_numpy(flat)
            tail, totals, before, over = tail[flat], totals[kept], ratio[kept], over[flat]
    pick = lineage[:, 0]  # (B, W): the kept particle's latent of each window
    rolls = np.concatenate([prefix, *(chunks[j][np.arange(b), pick[:, j]] for j in range(w))], axis=-1)
    if lines.any():
        rolls = bridge_rests(rolls, lines, prefix.shape[-1], max(1, spec.steps_per_quarter // 2))
    if not return_latents:
        return rolls
    return rolls, latents[torch.arange(b)[:, None], torch.arange(w)[None], torch.from_numpy(pick)]


def model_device(model) -> torch.device:
    """Where ``model``'s weights are (the CPU for a model without any)."""
    first = next(model.parameters(), None) if isinstance(model, torch.nn.Module) else None
    return torch.device("cpu") if first is None else first.device


def _sounding_start(log_weight: torch.Tensor, first: np.ndarray) -> torch.Tensor:
    """Condition a piece composed from nothing on starting with a note, as real pieces do (96-100%
    of the corpus's pieces per genre sound on their first step): candidates whose first window
    ``first`` ``(B, K, cells)`` is silent get no weight, unless every candidate of the piece is."""
    silent = torch.from_numpy(~first.any(-1))
    return log_weight.masked_fill(silent & ~silent.all(1, keepdim=True), float("-inf"))


def resample(log_weight: torch.Tensor, u: torch.Tensor, n: int) -> torch.Tensor:
    """Systematic resampling: ``n`` ancestor indices ``(B, n)`` drawn among ``K`` particles in
    proportion to ``softmax(log_weight)`` ``(B, K)``, at the positions ``(u + j) / n`` of the
    weights' cumulative sum (``u`` ``(B,)`` uniform). Each particle gets ``n * weight`` copies
    rounded down or up (unbiased, with less variance than independent draws); ``n = 1`` is one draw.

    >>> resample(torch.log(torch.tensor([[0.25, 0.75]])), torch.tensor([0.5]), 4).tolist()
    [[0, 1, 1, 1]]
    """
    cdf = torch.softmax(log_weight, dim=1).cumsum(1)
    cdf[:, -1] = 1.0  # rounding must not leave a position past the end
    pos = (u[:, None] + torch.arange(n, dtype=cdf.dtype)[None]) / n
    return torch.searchsorted(cdf, pos.contiguous(), right=True).clamp(max=log_weight.shape[1] - 1)


def _unique_log_probs(model, chunk: np.ndarray, genre: torch.Tensor, ctx: torch.Tensor,
                      outline: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`genre_log_probs` of candidate windows, scoring each distinct (genre, context, window)
    once: a window's scores do not depend on the rest of the batch, so duplicates (common where a
    beat only holds what sounded before, and among particles that share a history) get the same
    scores without their own forward passes."""
    plan = [] if outline is None else [outline.numpy()]
    keys = np.concatenate([genre.numpy(), *plan, ctx.reshape(len(ctx), -1).numpy(),
                           chunk.reshape(len(chunk), -1)], axis=1)
    seen: dict[bytes, int] = {}  # hashing rows: np.unique(axis=0) sorts them field by field, slowly
    first, inverse = [], np.empty(len(keys), np.int64)
    for r, row in enumerate(keys):
        inverse[r] = seen.setdefault(row.tobytes(), len(first))
        if inverse[r] == len(first):
            first.append(r)
    sel = torch.tensor(first)
    scores = genre_log_probs(model, torch.from_numpy(chunk[first]), genre[sel], ctx[sel],
                             None if outline is None else outline[sel])
    return scores[torch.from_numpy(inverse)]


@torch.no_grad()
def genre_log_probs(model, x: torch.Tensor, genre: torch.Tensor, ctx: torch.Tensor,
                    outline: torch.Tensor | None = None) -> torch.Tensor:
    """Log-likelihoods ``(B, 1 + G)`` of binary windows ``x`` after their contexts ``ctx``: under the
    asked genre (or mix) ``genre`` ``(B, G)`` in column 0, then under each of the ``G`` genres.
    Every window and every condition sees the same noise of the likelihood bound (seed 0): the
    differences carry less noise than each bound, and a window's scores do not depend on the other
    windows of the batch (so a piece is the same composed alone or in a batch). ``outline``
    ``(B, 4)``: the windows' outlines, the same under every genre."""
    b, n_genres = genre.shape
    dev = model_device(model)
    x, ctx = x.to(dev), ctx.to(dev)
    outline = None if outline is None else outline.to(dev)

    def log_prob(weights: torch.Tensor) -> torch.Tensor:
        reps = len(weights) // b  # several conditions in one batch: the noise is shared anyway
        plan = None if outline is None else outline.repeat(reps, 1)
        return model.log_prob(x.repeat(reps, 1, 1, 1), Condition(weights, ctx.repeat(reps, 1, 1, 1), plan),
                              generator=torch.Generator().manual_seed(0), shared_noise=True)

    eye = torch.eye(n_genres, dtype=genre.dtype, device=dev)
    each = log_prob(eye.repeat_interleave(b, 0)).view(n_genres, b).T.cpu()
    one_hot = bool(((genre == 0) | (genre == 1)).all()) and bool((genre.sum(1) == 1).all())
    asked = each.gather(1, genre.argmax(1, keepdim=True))[:, 0] if one_hot else log_prob(genre.to(dev)).cpu()
    return torch.cat([asked[:, None], each], dim=1)


def log_ratio(log_probs: torch.Tensor) -> torch.Tensor:
    """``log p(x | asked) - log mean_g p(x | g)`` from :func:`genre_log_probs` (summed over a
    piece's windows for the whole piece), in nats: how much better the asked genre or mix explains
    ``x`` than the average genre does; with one genre, its log-posterior plus ``log G`` under a
    uniform prior (at most ``log G``).

    >>> round(float(log_ratio(torch.tensor([[0.0, 0.0, -50.0]]))[0]), 4)  # log 2: sure of genre 0
    0.6931
    """
    each = log_probs[:, 1:]
    return log_probs[:, 0] - (torch.logsumexp(each, dim=1) - math.log(each.shape[1]))


def genre_log_ratio(model, x: torch.Tensor, genre: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
    """:func:`log_ratio` of each window ``(B,)`` on its own: the model's evidence that windows ``x``
    after contexts ``ctx`` are of the asked genre (or mix) ``(B, G)``."""
    return log_ratio(genre_log_probs(model, x, genre, ctx))


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


def strike_orphans(chunk: np.ndarray, held: np.ndarray | None) -> np.ndarray:
    """A binary chunk ``(B, 2, P, T)`` in which every sustain cell that no note leads into (no onset
    in the cell, the pitch silent the step before, here or in ``held`` ``(B, P)``) starts a note:
    :func:`clean_continuation` would drop it and leave a hole where the model asked for a sound.

    >>> c = np.zeros((1, 2, 1, 3), bool); c[0, 1, 0, 1:] = True
    >>> strike_orphans(c, None)[0, 0, 0].tolist()
    [False, True, False]
    """
    on, sus = chunk[:, 0].copy(), chunk[:, 1]
    prev = np.zeros(sus.shape[:2], bool) if held is None else held
    for t in range(sus.shape[-1]):
        on[..., t] |= sus[..., t] & ~prev
        prev = sus[..., t]
    return np.stack([on, sus], axis=1)


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
