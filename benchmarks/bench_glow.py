"""Glow: training speed, sampling speed, test bits/dim per genre against an independent-Bernoulli
baseline fitted in the same run, and genre fidelity and statistics of samples.

    python benchmarks/bench_glow.py [--checkpoint checkpoints/glow-music21.pt] [--samples 30]

Seeds: sampling uses seeds 0..N-1 per genre; the choice of real windows uses seed 0.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median_time, save  # noqa: E402

from musicflow.baselines.bernoulli import bernoulli_bpd  # noqa: E402
from musicflow.checkpoint import load_checkpoint  # noqa: E402
from musicflow.compose import Composer  # noqa: E402
from musicflow.data.dataset import Dataset  # noqa: E402
from musicflow.evaluate.fidelity import classify_rolls, compare, real_windows  # noqa: E402
from musicflow.flows.base import Condition  # noqa: E402
from musicflow.paths import checkpoints_dir, default_dataset  # noqa: E402
from musicflow.training import evaluate_bpd, model_windows  # noqa: E402


@torch.no_grad()
def teacher_forced(model, windows, thresholds: dict[str, float], temperature: float, n: int = 200,
                   seed: int = 0) -> dict:
    """Median log-likelihood (nats per beat, under the model) of real beats and of one-beat samples
    drawn given the same real contexts, decoded at 0.5 and at the calibrated threshold: decoding
    that turns likely continuous samples into unlikely rolls shows up here."""
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    out = {}
    for gi, gname in enumerate(windows.genres):
        idx = np.flatnonzero(windows.labels == gi)
        x, ctx, g = windows.batch(rng.choice(idx, size=min(n, len(idx)), replace=False))
        cond = Condition(g, ctx)
        v = model.decode(torch.randn(len(x), model.config.dim, generator=gen) * temperature, cond)
        row = {"real": model.log_prob(x, cond, generator=gen).median().item()}
        for name, thr in (("exact_0.5", 0.5), ("calibrated", thresholds.get(gname, 0.5))):
            xs = (v > thr).float()
            row[name] = model.log_prob(xs, cond, generator=gen).median().item()
            row[name + "_density"] = xs.mean().item()
        row["real_density"] = x.mean().item()
        out[gname] = {k: round(val, 4 if "density" in k else 2) for k, val in row.items()}
    return out


@torch.no_grad()
def teacher_forced_fidelity(model, clf, ds, genres: list[str], n: int, temperature: float, seed: int = 0
                            ) -> dict:
    """Is it each beat, or their compounding? For ``n`` real 8-bar test segments per genre, the
    classifier's accuracy on their last 4 bars (``real``), on 4 bars whose every beat is drawn
    given the real 4 bars before it (``teacher_forced``: per-beat quality alone), and on a free
    continuation of their first 4 bars (``continuation``), with the sample statistics of each. A
    model trained with outlines gets the outline of the first 4 bars in both, as ``continue``
    takes its input's."""
    from musicflow.compose.outlines import input_outline
    from musicflow.data.windows import WindowSet
    from musicflow.sampling import clean, generate

    cfg, spec = model.config, ds.spec
    gen = torch.Generator().manual_seed(seed)
    half = 4 * spec.bar_steps()
    out = {}
    for gi, gname in enumerate(genres):
        ws = WindowSet(ds, "test", window=2 * half, context=0, genres=[gname], hop=spec.bar_steps())
        if not len(ws):
            continue
        pick = np.random.default_rng(seed).choice(len(ws), size=min(n, len(ws)), replace=False)
        seg = ws.batch(np.sort(pick))[0].numpy()
        vec = torch.zeros(len(seg), len(genres))
        vec[:, gi] = 1
        plan = None
        if model.takes_outline:
            plan = torch.from_numpy(np.stack([input_outline(r[..., :half], spec) for r in seg]))
        beats = []
        for k in range(half // cfg.steps):
            at = half + k * cfg.steps
            ctx = torch.from_numpy(seg[..., at - cfg.context_steps:at].copy())
            z = torch.randn(len(seg), cfg.dim, generator=gen) * temperature
            beats.append((model.decode(z, Condition(vec, ctx, plan)) > 0.5).numpy().astype(np.float32))
        forced = np.stack([clean(r, spec) for r in np.concatenate(beats, axis=-1)])
        z = torch.randn(len(seg), half // cfg.steps, cfg.dim, generator=gen) * temperature
        cont = generate(model, z, vec[:1], spec, 0.5, prefix=seg[..., :half], outline=plan)[..., half:]
        row = {}
        for name, rolls in (("real", seg[..., half:]), ("teacher_forced", forced), ("continuation", cont)):
            st = compare(rolls, seg[..., half:], spec.low)
            row[name] = {"fidelity": round(float((classify_rolls(clf, rolls).argmax(1) == gi).mean()), 3),
                         **{k: round(st[k]["samples"], 3) for k in
                            ("notes_per_bar", "polyphony", "pitch_range", "empty_beat_rate")}}
        out[gname] = row
    out["mean_fidelity"] = {k: round(float(np.mean([r[k]["fidelity"] for r in out.values()])), 3)
                            for k in ("real", "teacher_forced", "continuation")}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default=str(checkpoints_dir() / "glow-music21.pt"))
    ap.add_argument("--classifier", default=str(checkpoints_dir() / "genre-classifier.pt"))
    ap.add_argument("--data", default=str(default_dataset()))
    ap.add_argument("--samples", type=int, default=30, help="samples per genre for fidelity")
    ap.add_argument("--test-windows", type=int, default=1000, help="per genre")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--guidance", type=float, default=None, help="[default: compose's]")
    ap.add_argument("--candidates", type=int, default=None, help="[default: compose's]")
    args = ap.parse_args()
    ck = load_checkpoint(args.checkpoint)
    model, cfg = ck.model, ck.model.config
    ds = Dataset.load(args.data)
    result: dict = {"checkpoint": args.checkpoint, "params": sum(p.numel() for p in model.parameters()),
                    "config": cfg.to_dict(), "temperature": args.temperature,
                    "decoding": "exact (threshold 0.5)"}

    train_w = model_windows(ds, "train", cfg, ck.genres)
    test_w = model_windows(ds, "test", cfg, ck.genres)
    x, ctx, g = train_w.batch(np.arange(64))

    def step():
        model.train()
        loss = model.bits_per_dim(x, Condition(g, ctx)).mean()
        loss.backward()
        model.zero_grad()

    result["train_windows_per_s"] = round(64 / median_time(step, 5), 1)
    model.eval()
    cond = Condition(g[:1], torch.zeros(1, 2, cfg.pitches, cfg.context_steps))
    t = median_time(lambda: model.sample(256, cond, 0.8, torch.Generator().manual_seed(0)), 3)
    result["sample_bars_per_s_batched"] = round(256 * cfg.steps / 16 / t, 1)
    comp = Composer(ck)
    guidance, candidates = comp.sampling(args.guidance, args.candidates)
    result["sampling"] = {"guidance": guidance, "candidates": candidates,
                          "note": "how compose samples (guidance: candidate pieces resampled each beat); "
                                  "*_plain figures: guidance 1, the model's own distribution"}
    t = median_time(lambda: comp.compose(ck.genres[0], bars=8, seed=0, guidance=guidance,
                                         candidates=candidates), 3)
    t_plain = median_time(lambda: comp.compose(ck.genres[0], bars=8, seed=0, guidance=1.0), 3)
    result["sample_bars_per_s_one_8bar_piece"] = round(8 / t, 2)
    result["sample_bars_per_s_one_8bar_piece_plain"] = round(8 / t_plain, 2)
    result["one_8bar_piece_time_ratio_guided_to_plain"] = round(t / t_plain, 2)

    t0 = time.perf_counter()
    flow = evaluate_bpd(model, test_w, args.test_windows, "cpu", seed=0)
    base = bernoulli_bpd(train_w, test_w)
    result["test_bpd"] = {gname: {"glow": round(flow[gname], 4), "bernoulli": round(base[gname], 4),
                                  "ratio": round(flow[gname] / base[gname], 3)} for gname in flow}
    result["test_bpd_note"] = ("upper bounds through dequantization; glow with its 64-step context; "
                               f"up to {args.test_windows} test windows per genre")
    result["eval_s"] = round(time.perf_counter() - t0, 1)

    result["teacher_forced_loglik"] = teacher_forced(model, test_w, ck.info.get("thresholds", {}),
                                                     args.temperature)
    result["teacher_forced_note"] = ("median log-likelihood under the model, nats per beat, of 200 "
                                     "real test beats and of one-beat samples given their real contexts")
    fidelity, plain, stats = {}, {}, {}
    clf = load_checkpoint(args.classifier).model if Path(args.classifier).exists() else None
    for gi, gname in enumerate(ck.genres):
        rolls = comp.compose_rolls(gname, args.samples, 4, 0, args.temperature, guidance, candidates)
        real = real_windows(ds, "test", gname, 200)
        stats[gname] = {k: {kk: round(vv, 3) for kk, vv in v.items()}
                        for k, v in compare(rolls, real, ds.spec.low).items()}
        if clf is not None:
            fidelity[gname] = round(float((classify_rolls(clf, rolls).argmax(1) == gi).mean()), 3)
            if candidates > 1:
                rolls = comp.compose_rolls(gname, args.samples, 4, 0, args.temperature, guidance=1.0)
                plain[gname] = round(float((classify_rolls(clf, rolls).argmax(1) == gi).mean()), 3)
    result["genre_fidelity"] = fidelity or "no classifier at " + args.classifier
    if plain:
        result["genre_fidelity_plain"] = plain
        result["genre_fidelity_plain_min"] = min(plain.values())
    if clf is not None:
        result["teacher_forced_fidelity"] = teacher_forced_fidelity(model, clf, ds, ck.genres, args.samples,
                                                                    args.temperature)
        result["teacher_forced_fidelity_note"] = (
            f"{args.samples} real 8-bar test segments per genre (numpy seed 0), latents torch seed 0; "
            "classifier accuracy on their last 4 bars, on 4 bars of beats each drawn given the real "
            "4 bars before it, and on a free continuation of their first 4 bars (plain sampling, "
            "no guidance: the model's own distribution)"
            + ("; both given the outline of the first 4 bars, as `continue` takes its input's"
               if model.takes_outline else ""))
    result["sample_statistics"] = stats
    result["samples_per_genre"], result["sample_seeds"] = args.samples, f"0..{args.samples - 1}"
    if fidelity:
        result["genre_fidelity_min"] = min(fidelity.values())
    result["test_bpd_mean"] = {k: round(float(np.mean([v[k] for v in result["test_bpd"].values()])), 4)
                               for k in ("glow", "bernoulli")}
    assert math.isfinite(result["test_bpd_mean"]["glow"])
    save("bench_glow", result)


if __name__ == "__main__":
    main()
