"""Neural-ODE flow: speed at the default NFE, sample quality against NFE, bits/dim per genre next to
Glow's (same windows, same run), guidance, encode/decode reconstruction, genre fidelity.

    python benchmarks/bench_cnf.py [--checkpoint checkpoints/cnf-music21.pt] [--samples 16]

Samples: ``--samples`` pieces of 8 bars per genre, composed as ``compose`` does (seeds 0 ..
samples - 1, each with its drawn outline, the checkpoint's default guidance), at the exact threshold
0.5 (``--decoding calibrated``: the checkpoint's calibrated thresholds). Sample quality against NFE
compares each solver setting with a many-step reference
decoded from the same latents: the share of cells that agree, and the musical statistics of
:mod:`musicflow.evaluate.fidelity`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_glow import bernoulli_bpd  # noqa: E402
from common import median_time, save  # noqa: E402

from musicflow.checkpoint import load_checkpoint  # noqa: E402
from musicflow.compose import Composer  # noqa: E402
from musicflow.data.dataset import Dataset  # noqa: E402
from musicflow.evaluate.fidelity import STATS, classify_rolls, compare, real_windows, statistics  # noqa: E402
from musicflow.flows.base import Condition  # noqa: E402
from musicflow.paths import checkpoints_dir, default_dataset  # noqa: E402
from musicflow.training import model_windows  # noqa: E402

# (method, steps, spacing): spacing above 1 puts the short steps near the noise end (odefunc.Solver).
SETTINGS = [("euler", 4, 1.0), ("euler", 8, 1.0), ("midpoint", 4, 1.0), ("midpoint", 4, 1.3), ("rk4", 1, 1.0),
            ("rk4", 2, 1.0), ("rk4", 4, 1.0), ("rk4", 8, 1.0)]
REFERENCE = ("rk4", 16)
LIKELIHOOD_SOLVERS = ["rk4:2", "rk4:4", "rk4:8", "rk4:16"]


@torch.no_grad()
def likelihood_solvers(model, windows, per_genre: int, seed: int = 0) -> dict:
    """Fixed-step likelihood solvers against the checkpoint's adaptive one on the same test windows
    (``per_genre`` per genre, numpy seed ``seed``) with the same dequantization noise and Hutchinson
    probes (torch seed ``seed``): per-window difference in nats and time per window."""
    from musicflow.flows.odefunc import Solver

    rng = np.random.default_rng(seed)
    idx = np.concatenate([rng.choice(np.flatnonzero(windows.labels == gi), per_genre, replace=False)
                          for gi in range(len(windows.genres)) if (windows.labels == gi).sum() >= per_genre])
    x, ctx, g = windows.batch(np.sort(idx))
    cond = Condition(g, ctx)

    def run(solver):
        t = time.perf_counter()
        lp, _ = model.log_prob_with_stderr(x, cond, torch.Generator().manual_seed(seed), solver)
        return lp, (time.perf_counter() - t) / len(x), model.last_nfe

    ref, ref_t, ref_nfe = run(None)
    out = {"reference": {"solver": f"{model.config.method} rtol={model.config.rtol} atol={model.config.atol}",
                         "s_per_window": round(ref_t, 4), "nfe": ref_nfe}, "windows": len(x)}
    for text in LIKELIHOOD_SOLVERS:
        lp, t, nfe = run(Solver.parse(text))
        d = (lp - ref).abs()
        out[text] = {"mean_abs_diff_nats": round(d.mean().item(), 4),
                     "max_abs_diff_nats": round(d.max().item(), 4), "s_per_window": round(t, 4),
                     "time_ratio": round(t / ref_t, 3), "nfe": nfe}
    return out


def pieces(comp: Composer, n: int, bars: int, temperature: float, guidance: float | None = None,
           seed: int = 0, outline: bool | None = None) -> tuple[dict, int]:
    """``{genre: rolls (n, 2, P, bars * 16)}`` as ``compose`` writes them for seeds ``seed ..
    seed + n - 1`` (the same latents and outlines for every solver), and the NFE per decoded beat."""
    out = {g: comp.compose_rolls(g, n=n, bars=bars, seed=seed, temperature=temperature, guidance=guidance,
                                 outline=outline)
           for g in comp.genres}
    return out, comp.model.last_nfe


def decoding_note(decoding: str) -> str:
    """How the pieces' cells were cut, for the JSON's notes."""
    return ("the checkpoint's thresholds, calibrated at the default solver and guidance 1 (the pieces "
            "at the checkpoint's own guidance)" if decoding == "calibrated" else "exact decoding at 0.5")


def stat_means(rolls: np.ndarray, low: int) -> dict[str, float]:
    return {k: float(v.mean()) for k, v in statistics(rolls, low).items()}


def same_windows_bpd(models: dict, windows, per_genre: int, seed: int = 0) -> dict:
    """Bits/dim per genre of each model on the same windows and the same dequantization noise."""
    rng = np.random.default_rng(seed)
    out: dict = {}
    for gi, g in enumerate(windows.genres):
        idx = np.flatnonzero(windows.labels == gi)
        if not len(idx):
            continue
        x, ctx, gv = windows.batch(np.sort(rng.choice(idx, min(per_genre, len(idx)), replace=False)))
        row = {}
        for name, m in models.items():
            gen = torch.Generator().manual_seed(seed)
            with torch.no_grad():
                bpd = m.bits_per_dim(x, Condition(gv, ctx), generator=gen)
            row[name] = round(float(bpd.mean()), 4)
            if name == "cnf":
                scale = 1 / (m.config.dim * np.log(2))
                row["cnf_trace_stderr"] = round(float(m.last_stderr.pow(2).mean().sqrt()) * scale
                                                / np.sqrt(len(x)), 5)
                row["cnf_nfe"] = m.last_nfe
        out[g] = row
    return out


TUNING_SEED = 1000  # the settings sweep's pieces: seeds apart from every reported figure's
FLOOR_SEED = 5000  # the NFE sweep's unrelated pieces: what two sets of pieces differ by
RATES = ("empty_beat_rate",)  # shares near zero: compared in points, not relative to the reference


def nfe_sweep(comp: Composer, cfg, low: int, args, result: dict) -> None:
    """Sample quality against NFE: each fixed-step setting against the many-step reference, decoded
    from the same latents and outlines. A setting passes when every statistic is within 5% of the
    reference's, the empty-beat rate (a share near zero, where 5% of it is noise) within 1 point."""
    model, n, bars, temp = comp.model, args.samples, args.bars, args.temperature
    try:
        model.config = replace(cfg, sample_method=REFERENCE[0], sample_steps=REFERENCE[1], sample_spacing=1.0)
        t0 = time.perf_counter()
        ref, ref_nfe = pieces(comp, n, bars, temp)
        ref_s = time.perf_counter() - t0
        ref_stats = {gname: stat_means(r, low) for gname, r in ref.items()}

        def deviations(got: dict) -> tuple[dict, dict, float]:
            """Mean relative drift per statistic, rates' drift in points, and the worst non-rate drift."""
            dev = {s: float(np.mean([abs(got[k][s] - ref_stats[k][s]) / max(abs(ref_stats[k][s]), 1e-3)
                                     for k in got])) for s in STATS}
            points = {s: 100 * float(np.mean([abs(got[k][s] - ref_stats[k][s]) for k in got])) for s in RATES}
            return dev, points, max(v for k, v in dev.items() if k not in RATES)

        # Unrelated pieces: the reference solver again, on other seeds. A setting whose pieces all
        # part ways with the reference's (one note differs and the rest of the piece follows)
        # would differ by about this much; one whose pieces never do, by nothing.
        other, _ = pieces(comp, n, bars, temp, seed=FLOOR_SEED)
        dev, points, worst = deviations({k: stat_means(r, low) for k, r in other.items()})
        floor = {"seeds": f"{FLOOR_SEED}..{FLOOR_SEED + n - 1}",
                 "relative_stat_deviation": {k: round(v, 4) for k, v in dev.items()},
                 "rate_deviation_points": {k: round(v, 2) for k, v in points.items()},
                 "worst_relative_deviation_besides_rates": round(worst, 4)}
        print("floor", floor["worst_relative_deviation_besides_rates"], points, flush=True)
        sweep = [{"method": REFERENCE[0], "steps": REFERENCE[1], "spacing": 1.0, "nfe_per_beat": ref_nfe,
                  "seconds": round(ref_s, 1), "reference": True,
                  "empty_beat_rate": round(float(np.mean([v["empty_beat_rate"] for v in ref_stats.values()])),
                                           4)}]
        for method, steps, spacing in SETTINGS:
            model.config = replace(cfg, sample_method=method, sample_steps=steps, sample_spacing=spacing)
            t0 = time.perf_counter()
            rolls, nfe = pieces(comp, n, bars, temp)
            secs = time.perf_counter() - t0
            agree = float(np.mean([(rolls[k][:, 1] == ref[k][:, 1]).mean() for k in rolls]))
            dev, points, worst = deviations({k: stat_means(r, low) for k, r in rolls.items()})
            sweep.append({"method": method, "steps": steps, "spacing": spacing, "nfe_per_beat": nfe,
                          "seconds": round(secs, 1),
                          "sustain_cells_agreeing_with_reference": round(agree, 4),
                          "mean_relative_stat_deviation_besides_rates": round(float(np.mean(
                              [v for k, v in dev.items() if k not in RATES])), 4),
                          "relative_stat_deviation": {k: round(v, 4) for k, v in dev.items()},
                          "rate_deviation_points": {k: round(v, 2) for k, v in points.items()},
                          "worst_relative_deviation_besides_rates": round(worst, 4),
                          "passes": bool(worst <= 0.05 and all(v <= 1.0 for v in points.values()))})
            print(method, steps, spacing, f"worst {worst:.3f}", points, flush=True)
    finally:
        model.config = cfg
    close = [s for s in sweep[1:] if s["passes"]]
    result["quality_vs_nfe"] = sweep
    result["quality_vs_nfe_floor"] = floor
    result.pop("fewest_nfe_within_5pct_of_reference", None)
    result["fewest_nfe_passing"] = (
        min(close, key=lambda s: (s["nfe_per_beat"], s["worst_relative_deviation_besides_rates"]))
        if close else "none of the settings")
    cut = decoding_note(args.decoding)
    result["quality_vs_nfe_note"] = (
        f"{n} pieces x {bars} bars per genre at guidance {cfg.guidance}, seeds 0..{n - 1}, same latents "
        f"and outlines for every setting; reference {REFERENCE[0]} x {REFERENCE[1]} steps; relative "
        f"deviation = |stat - reference stat| / |reference stat| per genre, averaged over genres; "
        f"passes: every statistic within 5%, the empty-beat rate within 1 point; {cut}; "
        f"quality_vs_nfe_floor: the reference solver's pieces on seeds {FLOOR_SEED}.. against the "
        f"reference, what two unrelated sets of {n} pieces per genre differ by")


def settings_sweep(comp: Composer, ds, clf, args, result: dict) -> None:
    """Guidance and temperature on tuning seeds against the validation split: how the defaults are
    chosen (never on the test split), and the default once more without an outline (what the
    outline brings). Fidelity by the independent genre classifier; notes per bar, pitch range and
    polyphony as relative differences from real validation windows, empty beats in points."""
    n, bars, low = args.tuning_pieces, args.bars, comp.spec.low
    real = {g: stat_means(real_windows(ds, "valid", g, 200, steps=bars * 16), low) for g in comp.genres}
    rows = []
    grid = [(g, t, None) for g in args.guidances for t in args.temperatures]
    grid.append((comp.model.config.guidance, 1.0, False))  # the default without an outline
    for guidance, temp, outline in grid:
        rolls, nfe = pieces(comp, n, bars, temp, guidance=guidance, seed=TUNING_SEED, outline=outline)
        row: dict = {"guidance": guidance, "temperature": temp, "outline": outline is not False,
                     "nfe_per_beat": nfe, "genres": {}}
        for gi, (g, r) in enumerate(rolls.items()):
            st, ref = stat_means(r, low), real[g]
            row["genres"][g] = {
                "fidelity": round(float((classify_rolls(clf, r).argmax(1) == gi).mean()), 3),
                "notes_per_bar": round(st["notes_per_bar"] / ref["notes_per_bar"] - 1, 3),
                "pitch_range": round(st["pitch_range"] / ref["pitch_range"] - 1, 3),
                "empty_beats_points": round(100 * (st["empty_beat_rate"] - ref["empty_beat_rate"]), 1),
                "polyphony": round(st["polyphony"] / ref["polyphony"] - 1, 3)}
        per = row["genres"].values()
        row["fidelity_mean"] = round(float(np.mean([v["fidelity"] for v in per])), 3)
        row["fidelity_lowest"] = min(v["fidelity"] for v in per)
        row["notes_per_bar_worst"] = max(abs(v["notes_per_bar"]) for v in per)
        row["pitch_range_worst"] = max(abs(v["pitch_range"]) for v in per)
        rows.append(row)
        print(f"guidance {guidance} temperature {temp} outline {row['outline']}: fidelity "
              f"{row['fidelity_mean']} (lowest {row['fidelity_lowest']}), notes/bar worst "
              f"{row['notes_per_bar_worst']}, range worst {row['pitch_range_worst']}", flush=True)
    cut = decoding_note(args.decoding)
    suffix = "_calibrated" if args.decoding == "calibrated" else ""
    result[f"settings_on_tuning_seeds{suffix}"] = rows
    result[f"settings_note{suffix}"] = (
        f"{n} pieces x {bars} bars per genre, seeds {TUNING_SEED}..{TUNING_SEED + n - 1}, default "
        f"solver, {cut}, against 200 validation windows per genre (tuning; the figures "
        f"above and musicflow evaluate use other seeds and the test split)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default=str(checkpoints_dir() / "cnf-music21.pt"))
    ap.add_argument("--glow", default=str(checkpoints_dir() / "glow-music21.pt"))
    ap.add_argument("--classifier", default=str(checkpoints_dir() / "genre-classifier.pt"))
    ap.add_argument("--data", default=str(default_dataset()))
    ap.add_argument("--samples", type=int, default=16, help="pieces per genre")
    ap.add_argument("--bars", type=int, default=8)
    ap.add_argument("--bpd-windows", type=int, default=50, help="per genre and split")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--decoding", choices=("exact", "calibrated"), default="exact")
    ap.add_argument("--solver-windows", type=int, default=8, help="per genre, likelihood solver comparison")
    ap.add_argument("--only-solvers", action="store_true",
                    help="run only the likelihood-solver comparison and update it in the saved JSON")
    ap.add_argument("--only-settings", action="store_true",
                    help="run only the guidance x temperature sweep on tuning seeds (valid split)")
    ap.add_argument("--tuning-pieces", type=int, default=10, help="pieces per genre of the settings sweep")
    ap.add_argument("--guidances", type=float, nargs="+", default=[1.0, 1.5, 2.0])
    ap.add_argument("--temperatures", type=float, nargs="+", default=[1.0, 0.9, 0.8])
    ap.add_argument("--only-nfe", action="store_true",
                    help="run only the sample quality against NFE and update it in the saved JSON")
    args = ap.parse_args()
    ck = load_checkpoint(args.checkpoint)
    model, cfg = ck.model, ck.model.config
    spec = ck.spec
    ds = Dataset.load(args.data)
    result: dict = {"checkpoint": args.checkpoint, "params": sum(p.numel() for p in model.parameters()),
                    "config": cfg.to_dict(), "temperature": args.temperature, "decoding": args.decoding,
                    "train_steps": ck.info.get("step"), "train_wall_time_s": ck.info.get("wall_time_s"),
                    "command": ck.info.get("command")}

    def solvers() -> None:
        test_w = model_windows(ds, "test", cfg, ck.genres)
        result["likelihood_solvers"] = likelihood_solvers(model.eval(), test_w, args.solver_windows)
        result["likelihood_solvers_note"] = (
            "log-likelihood per window under fixed-step RK4 against the adaptive reference, same "
            "windows, dequantization noise and Hutchinson probes (musicflow evaluate --ode-solver)")

    if args.only_solvers or args.only_nfe or args.only_settings:
        from common import RESULTS

        path = RESULTS / "bench_cnf.json"
        old = json.loads(path.read_text()) if path.is_file() else {}
        old.pop("benchmark", None)
        old.pop("machine", None)
        fresh = ("checkpoint", "params", "config", "command", "train_steps", "train_wall_time_s")
        result = {**old, **{k: v for k, v in result.items() if k not in old or k in fresh}}
        if args.only_solvers:
            solvers()
        comp = Composer(ck, decoding=args.decoding)
        if args.only_nfe:
            nfe_sweep(comp, cfg, spec.low, args, result)
        if args.only_settings:
            settings_sweep(comp, ds, load_checkpoint(args.classifier).model, args, result)
        save("bench_cnf", result)
        return

    # -- speed ------------------------------------------------------------------------------
    train_w = model_windows(ds, "train", cfg, ck.genres)
    x, ctx, g = train_w.batch(np.arange(64))

    def step():
        model.train()
        model.loss(x, Condition(g, ctx), torch.Generator().manual_seed(0)).backward()
        model.zero_grad()

    result["train_windows_per_s"] = round(64 / median_time(step, 5), 1)
    model.eval()
    cond = Condition(g[:1], torch.zeros(1, 2, cfg.pitches, cfg.context_steps))
    t = median_time(lambda: model.sample(256, cond, 0.8, torch.Generator().manual_seed(0)), 3)
    result["default_solver"] = {"method": cfg.sample_method, "steps": cfg.sample_steps,
                                "spacing": cfg.sample_spacing, "nfe": model.last_nfe}
    result["sample_bars_per_s_batched"] = round(256 * cfg.steps / 16 / t, 1)
    comp = Composer(ck, decoding=args.decoding)
    t = median_time(lambda: comp.compose(ck.genres[0], bars=8, seed=0), 3)
    result["sample_bars_per_s_one_8bar_piece"] = round(8 / t, 1)
    t = median_time(lambda: comp.compose(ck.genres[0], bars=8, seed=0, guidance=2.0), 3)
    result["sample_bars_per_s_one_8bar_piece_guidance_2"] = round(8 / t, 1)
    print("speed done", flush=True)

    nfe_sweep(comp, cfg, spec.low, args, result)
    n, bars, temp = args.samples, args.bars, args.temperature
    cut = decoding_note(args.decoding)

    # -- samples: statistics against real, guidance, genre fidelity ----------------------------
    clf = load_checkpoint(args.classifier).model if Path(args.classifier).exists() else None
    guided = {}
    for guidance in sorted({0.0, 1.0, 2.0, cfg.guidance}):
        rolls, nfe = pieces(comp, n, bars, temp, guidance=guidance)
        entry: dict = {"nfe_per_beat": nfe}
        if clf is not None:
            fid = {gname: round(float((classify_rolls(clf, r).argmax(1) == gi).mean()), 3)
                   for gi, (gname, r) in enumerate(rolls.items())}
            entry["genre_fidelity"] = fid
            entry["genre_fidelity_mean"] = round(float(np.mean(list(fid.values()))), 3)
        entry["sustain_density"] = {k: round(float(r[:, 1].mean()), 4) for k, r in rolls.items()}
        if guidance == cfg.guidance:
            entry["statistics_vs_real"] = {
                gname: {k: {kk: round(vv, 3) for kk, vv in v.items()}
                        for k, v in compare(r, real_windows(ds, "test", gname, 200, steps=bars * 16),
                                            spec.low).items()}
                for gname, r in rolls.items()}
        guided[str(guidance)] = entry
        print("guidance", guidance, entry.get("genre_fidelity_mean"), flush=True)
    result["guidance"] = guided
    if clf is not None:
        settings_sweep(comp, ds, clf, args, result)
    result["sample_note"] = (f"{n} pieces x {bars} bars per genre, latents from seed 0, temperature "
                             f"{temp}, default solver, {cut}")

    # -- encode / decode ----------------------------------------------------------------------
    test_w = model_windows(ds, "test", cfg, ck.genres)
    xs, cs, gs = test_w.batch(np.random.default_rng(0).choice(len(test_w), 32, replace=False))
    c = Condition(gs, cs)
    err = model.reconstruction_error(xs, c)
    result["reconstruction"] = {"max_abs_error_v": err, "nfe_encode_plus_decode": model.last_nfe,
                                "solver": f"{cfg.method} rtol={cfg.rtol} atol={cfg.atol}",
                                "windows": 32}
    z = model.encode(xs, c)
    fast = model.quantize(model.decode(z, c))
    result["reconstruction"]["cells_exact_with_default_sample_solver"] = float((fast == xs).float().mean())
    print("reconstruction", err, flush=True)

    # -- bits/dim per genre next to Glow ------------------------------------------------------
    models = {"cnf": model}
    if Path(args.glow).exists():
        models["glow"] = load_checkpoint(args.glow).model.eval()
    t0 = time.perf_counter()
    bpd = {}
    for split in ("valid", "test"):
        w = test_w if split == "test" else model_windows(ds, "valid", cfg, ck.genres)
        bpd[split] = same_windows_bpd(models, w, args.bpd_windows)
    base = bernoulli_bpd(train_w, test_w)
    for gname, row in bpd["test"].items():
        row["bernoulli"] = round(base[gname], 4)
    result["bpd"] = bpd
    result["bpd_mean"] = {split: {k: round(float(np.mean([r[k] for r in rows.values()])), 4)
                                  for k in models} for split, rows in bpd.items()}
    result["bpd_note"] = (
        f"upper bounds through {cfg.dequantization} (cnf) / variational (glow) dequantization, "
        f"one noise draw, "
        f"the same {args.bpd_windows} windows per genre and split for both models; cnf: "
        f"{cfg.method} rtol={cfg.rtol} atol={cfg.atol}, Hutchinson trace with {cfg.probes} Rademacher "
        f"probes (cnf_trace_stderr: standard error of the genre mean from the trace estimate)")
    result["bpd_eval_s"] = round(time.perf_counter() - t0, 1)
    solvers()
    save("bench_cnf", result)


if __name__ == "__main__":
    main()
