"""``musicflow evaluate``: one report that measures a model the way the field does, against baselines.

Sections (each a key of the report dict, rendered by :func:`musicflow.evaluate.tables.to_markdown`):

* ``bits_per_dim``: per genre on test windows, for the model, the Bernoulli baseline and the VAE;
* ``metrics``: musical metrics of generated pieces against real test windows per genre, with the
  overlapping area of their histograms, and the same overlap between train and test windows;
* ``fidelity``: the independent genre classifier on samples of each genre and on 50/50 mixes;
* ``likelihood_classification``: Bayes' rule on each model's likelihoods of real test pieces;
* ``novelty``: distance of each generated window to its nearest training window;
* ``diversity``: how different the pieces of one genre are from each other, beside real pieces';
* ``speed``: bars and pieces composed per second, as the evaluation samples them.

A model without a likelihood (the GAN baseline) has no bits/dim and no likelihood classification;
those sections leave it out and say so.

Every model here is a :class:`~musicflow.compose.Composer` over something with the Flow interface
(``log_prob``, ``bits_per_dim``, ``decode`` and a config with ``steps``, ``context_steps`` and
``dim``), so a new flow kind needs no change here.

>>> from musicflow.evaluate.report import EvalConfig
>>> EvalConfig(samples=2, bars=1).bars
1
"""

from __future__ import annotations

import itertools
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from musicflow.compose import Input
from musicflow.data.dataset import Dataset
from musicflow.data.windows import WindowSet
from musicflow.evaluate.fidelity import STATS, classify_rolls, real_openings, real_windows, statistics
from musicflow.evaluate.metrics import overlap_area
from musicflow.evaluate.novelty import diversity, nearest, segments, summarize
from musicflow.evaluate.settings import EvalConfig
from musicflow.evaluate.subjects import (
    Subject,
    classifier_checkpoint,
    describe,
    load_subjects,
    rel_path,
    use_ode_solver,
)
from musicflow.evaluate.twosample import realism
from musicflow.training import evaluate_bpd, model_windows


def generate_pieces(s: Subject, weights: dict[str, float], n: int, bars: int, seed: int,
                    batch: int = 64) -> np.ndarray:
    """``n`` pieces of ``bars`` bars, piece ``i`` from seed ``seed + i``: the pieces of
    ``Composer.compose(seed=seed + i)`` with the subject's temperature and guidance, generated in
    batches. ``(n, 2, P, T)``."""
    return np.concatenate([
        s.composer.compose_rolls(weights, min(batch, n - i), bars, seed + i, s.temperature, s.guidance,
                                 s.candidates, repeat=s.repeat)
        for i in range(0, n, batch)])


@torch.no_grad()
def test_bpd(model, windows: WindowSet, per_genre: int, seed: int = 0, batch_size: int = 128
             ) -> dict[str, float]:
    """Mean ``model.bits_per_dim`` per genre on up to ``per_genre`` windows of each, chosen and
    noised with ``seed``. Always the model's own ``bits_per_dim`` (its reported bound), never a
    cheaper validation estimate that training may use."""
    return evaluate_bpd(model, windows, per_genre, "cpu", seed, batch_size, estimate=False)


def _bpd(subjects: list[Subject], ds: Dataset, cfg: EvalConfig) -> dict:
    cache: dict = {}
    per: dict[str, dict[str, float]] = {}
    for s in subjects:
        if not s.composer.model.has_likelihood:
            continue
        mc = s.composer.window_config
        key = (mc.steps, mc.context_steps)
        if key not in cache:
            cache[key] = model_windows(ds, "test", mc, s.composer.genres)
        vals = test_bpd(s.composer.model, cache[key], cfg.test_windows, seed=cfg.seed)
        for g, v in vals.items():
            per.setdefault(g, {})[s.name] = round(v, 5)
    names = [s.name for s in subjects if s.composer.model.has_likelihood]
    mean = {n: round(float(np.mean([v[n] for v in per.values() if n in v])), 5) for n in names}
    return {"per_genre": per, "mean": mean, "windows_per_genre": cfg.test_windows,
            "note": "bits per binary cell of a window given its context, test split; flows: upper "
                    "bound through dequantization; vae: negative ELBO (upper bound); bernoulli: "
                    "exact; the same windows and cells for every model of the same window shape; a GAN "
                    "has no likelihood and no figure here"}


def _metrics(samples: dict, real: dict, train: dict, low: int, openings: dict) -> dict:
    per: dict = {}
    overlaps: dict[str, list[float]] = {}
    for g, r in real.items():
        rs, ts = statistics(r, low), statistics(train[g], low)
        os_ = statistics(openings[g], low) if len(openings.get(g, ())) else None
        gen = {name: statistics(by_genre[g], low) for name, by_genre in samples.items()}
        row = {}
        for k in STATS:
            ref = overlap_area(ts[k], rs[k])
            row[k] = {"real": round(float(rs[k].mean()), 4), "train_vs_test": round(ref, 4)}
            if os_ is not None:
                row[k]["real_openings"] = round(float(os_[k].mean()), 4)
            overlaps.setdefault("train_vs_test", []).append(ref)
            for name in samples:
                ss = gen[name][k]
                ov = overlap_area(ss, rs[k])
                row[k][name] = {"mean": round(float(ss.mean()), 4), "overlap": round(ov, 4)}
                overlaps.setdefault(name, []).append(ov)
        per[g] = row
    return {"per_genre": per, "mean_overlap": {k: round(float(np.mean(v)), 4) for k, v in overlaps.items()},
            "stats": list(STATS),
            "note": "overlap: overlapping area of the normalised histograms of a metric over generated "
                    "pieces and real test windows (1 = same distribution; Yang & Lerch 2018); real "
                    "windows start on bar lines and lie wholly inside their piece (a composed piece "
                    "never ends); train_vs_test: the same between as many real train windows as "
                    "generated pieces and the test windows, the reference; real_openings: the "
                    "metric's mean over the first bars of real test pieces chosen with the seed "
                    "(pieces composed from nothing are openings)"}


def _fidelity(clf, samples: dict, mixes: dict, real: dict, genres: list[str], openings: dict) -> dict:
    per: dict = {}
    for gi, g in enumerate(genres):
        if g not in real:
            continue
        p = classify_rolls(clf, real[g])
        per[g] = {"real_test": {"accuracy": round(float((p.argmax(1) == gi).mean()), 4),
                                "mean_prob": round(float(p[:, gi].mean()), 4)}}
        if len(openings.get(g, ())):
            p = classify_rolls(clf, openings[g])
            per[g]["real_openings"] = {"accuracy": round(float((p.argmax(1) == gi).mean()), 4),
                                       "mean_prob": round(float(p[:, gi].mean()), 4),
                                       "pieces": len(openings[g])}
        for name, by_genre in samples.items():
            p = classify_rolls(clf, by_genre[g])
            per[g][name] = {"accuracy": round(float((p.argmax(1) == gi).mean()), 4),
                            "mean_prob": round(float(p[:, gi].mean()), 4)}
    names = ["real_test", *samples]
    mean = {n: round(float(np.mean([v[n]["accuracy"] for v in per.values()])), 4) for n in names}
    if any("real_openings" in v for v in per.values()):
        mean["real_openings"] = round(float(np.mean([v["real_openings"]["accuracy"] for v in per.values()
                                                     if "real_openings" in v])), 4)
    mix_out: dict = {}
    for name, by_pair in mixes.items():
        rows, mass = {}, []
        for (a, b), rolls in by_pair.items():
            if a not in per or b not in per:
                continue
            p = classify_rolls(clf, rolls)
            ia, ib = genres.index(a), genres.index(b)
            rows[f"{a}+{b}"] = {"p_a": round(float(p[:, ia].mean()), 4),
                                "p_b": round(float(p[:, ib].mean()), 4),
                                "pure_a_p_a": per[a][name]["mean_prob"],
                                "pure_b_p_b": per[b][name]["mean_prob"]}
            mass.append(p[:, ia].mean() + p[:, ib].mean())
        mix_out[name] = {"pairs": rows, "mean_mass_on_pair": round(float(np.mean(mass)), 4) if mass else None}
    return {"per_genre": per, "mean_accuracy": mean, "mixes": mix_out,
            "note": "accuracy: share of pieces the independent classifier assigns to the genre they "
                    "were conditioned on (real_test: on real test windows, the classifier's ceiling; "
                    "real_openings: on the same number of first bars of real test pieces, what a piece "
                    "composed from nothing is comparable with); "
                    "mixes: mean classifier probability of each genre of a 50/50 mix, beside that of "
                    f"pure samples; chance {1 / len(genres):.3f}"}


def _classification(subjects: list[Subject], ds: Dataset, cfg: EvalConfig, bar: tqdm) -> dict:
    out = {}
    genres = subjects[0].composer.genres
    pieces = {g: ds.indices("test", g)[:cfg.classify_pieces] for g in genres}
    for s in subjects:
        if not s.composer.model.has_likelihood:
            continue
        conf = np.zeros((len(genres), len(genres)), dtype=int)
        for gi, g in enumerate(genres):
            for i in pieces[g]:
                roll = ds.roll(i)[..., : cfg.classify_bars * ds.spec.bar_steps()]
                ll, _ = s.composer.log_likelihoods(Input(roll, 0, "", 100.0, None))
                total = np.array([float(ll[h].sum()) for h in genres])
                conf[gi, int(total.argmax())] += 1
        bar.update(1)
        n = conf.sum(1)
        per = {g: round(float(conf[i, i] / n[i]), 4) for i, g in enumerate(genres) if n[i]}
        out[s.name] = {"accuracy": round(float(np.trace(conf) / max(conf.sum(), 1)), 4), "per_genre": per,
                       "confusion": conf.tolist()}
    return {**out, "genres": genres, "pieces_per_genre": {g: len(v) for g, v in pieces.items()},
            "bars_per_piece": cfg.classify_bars, "chance": round(1 / len(genres), 4),
            "note": "Bayes' rule with a uniform prior on the summed window log-likelihoods of the first "
                    "bars of the first test pieces of each genre (dataset order, no selection); "
                    "confusion rows: true genre, columns: predicted"}


def _novelty(samples: dict, real: dict, ds: Dataset, cfg: EvalConfig) -> dict:
    steps = cfg.bars * ds.spec.bar_steps()
    parts: dict[str, list] = {name: [] for name in [*samples, "real_test"]}
    for g, r in real.items():
        groups = {name: segments(by_genre[g], steps) for name, by_genre in samples.items()}
        groups["real_test"] = r[: cfg.samples]  # as many as each model's pieces: the cost is a matmul
        allr = np.concatenate(list(groups.values()))
        ws = WindowSet(ds, "train", window=steps, context=0, hop=cfg.novelty_hop, genres=[g])
        chunks = (ws.batch(np.arange(s, min(s + 2048, len(ws))))[0].numpy() for s in range(0, len(ws), 2048))
        ham, jac = nearest(allr > 0, chunks)
        silent = allr.reshape(len(allr), -1).sum(1) == 0
        o = 0
        for name, rolls in groups.items():
            parts[name].append((ham[o:o + len(rolls)], jac[o:o + len(rolls)], silent[o:o + len(rolls)]))
            o += len(rolls)
    out = {name: summarize(*(np.concatenate(x) for x in zip(*p))) for name, p in parts.items() if p}
    return {**out, "window_steps": steps,
            "note": "nearest training window of the same genre and length, starting on any bar line; "
                    "distances over onset and sustain cells (hamming: cells that differ); exact_copies: "
                    "share of non-silent windows identical to a training window; real_test: as many "
                    "held-out real test windows, the reference"}


def _sample_all(subjects: list[Subject], genres: list[str], pairs: list, cfg: EvalConfig, bar
                ) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, dict], dict]:
    """Each subject's pieces of every genre and of every 50/50 pair, by the report's seeds, and
    how fast each subject composed its pure-genre pieces."""
    samples: dict[str, dict[str, np.ndarray]] = {}
    mixes: dict[str, dict] = {}
    speed: dict = {}
    for s in subjects:
        samples[s.name] = {}
        t, cpu = time.perf_counter(), time.process_time()
        for g in genres:
            samples[s.name][g] = generate_pieces(s, {g: 1.0}, cfg.samples, cfg.bars, cfg.seed)
            bar.update(1)
        wall, cpu = time.perf_counter() - t, time.process_time() - cpu
        pieces = cfg.samples * len(genres)
        speed[s.name] = {"pieces_per_s": round(pieces / wall, 3),
                         "bars_per_s": round(pieces * cfg.bars / wall, 2),
                         "bars_per_cpu_s": round(pieces * cfg.bars / max(cpu, 1e-9), 2)}
        if pairs:
            mixes[s.name] = {(a, b): generate_pieces(s, {a: 0.5, b: 0.5}, cfg.mix_samples, cfg.bars, cfg.seed)
                             for a, b in pairs}
            bar.update(1)
    return samples, mixes, speed


def _diversity(samples: dict, real: dict) -> dict:
    """Per genre, :func:`~musicflow.evaluate.novelty.diversity` of each subject's pieces and of
    as many real test windows."""
    per: dict = {}
    for g, r in real.items():
        per[g] = {name: diversity(by_genre[g]) for name, by_genre in samples.items()}
        per[g]["real_test"] = diversity(r[: len(next(iter(samples.values()))[g])])
    names = [*samples, "real_test"]
    kept = {n: [v[n] for v in per.values() if v[n] is not None] for n in names}
    mean = {n: round(float(np.mean(k)), 4) if k else None for n, k in kept.items()}
    return {"per_genre": {g: {n: None if v is None else round(v, 4) for n, v in row.items()}
                          for g, row in per.items()}, "mean": mean,
            "note": "mean Jaccard distance between every two pieces of a genre over their sounding cells "
                    "(1: no cell shared; a model that collapses onto few pieces scores low); real_test: "
                    "as many real test windows of the pieces' length"}


def _two_sample(samples: dict, ds: Dataset, cfg: EvalConfig, steps: int) -> dict:
    """Could the pieces pass for real music? Per genre and subject, the two-sample tests of
    :func:`musicflow.evaluate.twosample.realism` against real test excerpts of the pieces' length
    (each labelled with its piece), and the real-against-real floor."""
    per: dict = {}
    for g in next(iter(samples.values())):
        real, pieces = real_windows(ds, "test", g, 2 * cfg.samples, steps, cfg.seed, with_pieces=True)
        if len(np.unique(pieces)) < 2:
            continue
        per[g] = {}
        for name, by_genre in samples.items():
            out = realism(by_genre[g], real, pieces, ds.spec.low, seed=cfg.seed, window=min(64, steps))
            per[g][name] = None if out["generated"] is None else {
                f: {"accuracy": round(r["accuracy"], 4), "interval": [round(v, 4) for v in r["interval"]],
                    **({"giveaways": {k: round(v, 2) for k, v in r["giveaways"]}} if r["giveaways"] else {})}
                for f, r in out["generated"].items()}
            if "real_halves" not in per[g] and out["real_halves"] is not None:
                per[g]["real_halves"] = {f: {"accuracy": round(r["accuracy"], 4),
                                             "interval": [round(v, 4) for v in r["interval"]]}
                                         for f, r in out["real_halves"].items()}
    return {"per_genre": per,
            "note": "balanced accuracy of a classifier telling 4-bar windows of generated pieces from "
                    "windows of real test excerpts of the same length (0.5: indistinguishable), group "
                    "cross-validated by piece, 95% cluster-bootstrap interval; metrics: logistic "
                    "regression on window features (giveaways: standardised differences, generated "
                    "minus real); cnn: a small convolutional net on the rolls; real_halves: two "
                    "halves of the real pieces, the floor"}


def _seeds(cfg: EvalConfig) -> dict[str, str]:
    """Which seed drew what, as the report states it."""
    return {"samples": f"pieces of each genre use seeds {cfg.seed}..{cfg.seed + cfg.samples - 1}, "
                         f"of each mix {cfg.seed}..{cfg.seed + cfg.mix_samples - 1} "
                         f"(the latents of `musicflow compose --seed`)",
              "real_windows": f"numpy default_rng({cfg.seed})",
              "bits_per_dim": f"window choice and dequantization/ELBO noise seed {cfg.seed}",
              "likelihood_classification": "noise seed 0 (Composer.log_likelihoods)"}


def _subjects(model, vae, baselines: bool, ds: Dataset, cfg: EvalConfig, gan=None) -> list[Subject]:
    """The subjects, the model first, sampled as ``cfg`` asks; bad settings fail before any work."""
    subjects = load_subjects(model, vae, baselines, ds, cfg.temperature, gan)
    main = subjects[0].composer
    main.sampling(cfg.guidance, cfg.candidates)
    main.check_repeat(cfg.repeat)
    subjects[0].guidance, subjects[0].candidates = cfg.guidance, cfg.candidates
    subjects[0].repeat = cfg.repeat
    if cfg.ode_solver:
        use_ode_solver(main, cfg.ode_solver)
    return subjects


def evaluate(model: str | Path | None = None, data: str | Path | None = None,
             config: EvalConfig | None = None, baselines: bool = True, vae: str | Path | None = None,
             classifier: str | Path | None = None, quiet: bool = True, gan: str | Path | None = None
             ) -> dict:
    """Build the evaluation report (a JSON-able dict) of ``model`` (``keyflow``, ``glow``, ``cnf``,
    ``vae``, ``gan`` or a checkpoint path) on dataset ``data``, beside the baselines (``vae`` and
    ``gan``: their checkpoints, by default those beside the model's); see the module docstring for
    its sections."""
    from musicflow.paths import default_dataset

    cfg = config or EvalConfig()
    t_all, cpu0 = time.perf_counter(), time.process_time()
    data = Path(data) if data else default_dataset()
    ds = Dataset.load(data)
    subjects = _subjects(model, vae, baselines, ds, cfg, gan)
    genres = subjects[0].composer.genres
    clf_path, clf_ck = classifier_checkpoint(classifier, genres)
    clf = clf_ck.model
    pairs = list(itertools.combinations(genres, 2)) if cfg.mix_samples else []
    steps = cfg.bars * ds.spec.bar_steps()
    times: dict[str, float] = {}
    bar = tqdm(total=4 + len(subjects) * (len(genres) + 1 + bool(pairs)), desc="evaluate",
               disable=quiet, unit="part")

    t = time.perf_counter()
    bpd = _bpd(subjects, ds, cfg)
    times["bits_per_dim"] = time.perf_counter() - t
    bar.update(1)

    t = time.perf_counter()
    samples, mixes, speed = _sample_all(subjects, genres, pairs, cfg, bar)
    real = {g: real_windows(ds, "test", g, cfg.real_windows, steps, cfg.seed) for g in genres}
    real = {g: r for g, r in real.items() if len(r)}
    # As many train windows as generated pieces, so the reference overlap has the same sampling noise.
    train = {g: real_windows(ds, "train", g, cfg.samples, steps, cfg.seed) for g in real}
    times["sampling"] = time.perf_counter() - t

    t = time.perf_counter()
    openings = {g: real_openings(ds, "test", g, cfg.real_windows, steps, cfg.seed) for g in genres}
    metrics = _metrics(samples, real, train, ds.spec.low, openings)
    fidelity = _fidelity(clf, samples, mixes, real, genres, openings)
    times["metrics_and_fidelity"] = time.perf_counter() - t
    bar.update(1)

    t = time.perf_counter()
    classification = _classification(subjects, ds, cfg, bar)
    times["likelihood_classification"] = time.perf_counter() - t

    t = time.perf_counter()
    novelty = _novelty(samples, real, ds, cfg)
    spread = _diversity(samples, real)
    times["novelty"] = time.perf_counter() - t

    t = time.perf_counter()
    two_sample = _two_sample(samples, ds, cfg, steps) if cfg.two_sample else None
    times["two_sample"] = time.perf_counter() - t
    bar.update(2)
    bar.close()
    times["total"] = time.perf_counter() - t_all
    times["total_cpu"] = time.process_time() - cpu0  # wall time misleads on a shared machine
    return {
        "format": "musicflow-evaluation", "version": 1,
        "models": {s.name: describe(s) for s in subjects},
        "data": {"path": rel_path(data), "hash": ds.content_hash(), "genres": genres},
        "classifier": {"path": rel_path(clf_path),
                       "valid_balanced_accuracy": clf_ck.info.get("balanced_accuracy")},
        "settings": asdict(cfg),
        "seeds": _seeds(cfg),
        "bits_per_dim": bpd,
        "metrics": metrics,
        "fidelity": fidelity,
        "likelihood_classification": classification,
        "novelty": novelty,
        "diversity": spread,
        "speed": {**speed, "note": "pure-genre pieces composed per second of wall time (and bars per "
                                   "second of process CPU time), each model sampled as above, in batches "
                                   "of up to 64 pieces"},
        **({"two_sample": two_sample} if two_sample is not None else {}),
        "runtime_s": {k: round(v, 1) for k, v in times.items()},
    }
