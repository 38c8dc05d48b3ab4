"""The evaluation report as readable markdown tables (the JSON holds every number).

>>> to_markdown({"models": {"model": {"kind": "glow", "params": 3, "source": "x.pt"}}}).splitlines()[0]
'# musicflow evaluation'
"""

from __future__ import annotations


def _f(v, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _table(head: list[str], rows: list[list]) -> list[str]:
    align = ["---"] + ["---:"] * (len(head) - 1)
    out = ["| " + " | ".join(head) + " |", "| " + " | ".join(align) + " |"]
    out += ["| " + " | ".join(_f(c) if not isinstance(c, str) else c for c in r) + " |" for r in rows]
    return out + [""]


def _mean(values) -> float:
    v = list(values)
    return sum(v) / len(v) if v else float("nan")


def _names(report: dict) -> list[str]:
    return list(report.get("models", {}))


def headline(report: dict) -> list[str]:
    """One row per genre: every section's figure for each model, ``model / vae / gan / bernoulli``,
    with the reference in brackets (train-vs-test overlap, classifier accuracy on real windows); a
    model without a likelihood (the GAN) shows ``–`` for bits/dim and likelihood classification."""
    names = [n for n in ("model", "vae", "gan", "bernoulli") if n in report.get("models", {})]
    b, m = report["bits_per_dim"], report["metrics"]
    f, c = report["fidelity"], report["likelihood_classification"]

    def join(vals, digits=3):
        return " / ".join(_f(v, digits) for v in vals)

    rows = []
    for g in report["data"]["genres"]:
        row = m["per_genre"].get(g)
        ov = [_mean(row[k][n]["overlap"] for k in m["stats"]) for n in names] if row else []
        ref = _mean(row[k]["train_vs_test"] for k in m["stats"]) if row else None
        fid = f["per_genre"].get(g, {})
        rows.append([g, join(b["per_genre"].get(g, {}).get(n) for n in names),
                     f"{join(ov, 2)} ({_f(ref, 2)})",
                     f"{join((fid.get(n, {}).get('accuracy') for n in names), 2)} "
                     f"({_f(fid.get('real_test', {}).get('accuracy'), 2)}; "
                     f"{_f(fid.get('real_openings', {}).get('accuracy'), 2)})",
                     join((c.get(n, {}).get("per_genre", {}).get(g) for n in names), 2)])
    ref = m["mean_overlap"].get("train_vs_test")
    rows.append(["**mean**", join(b["mean"].get(n) for n in names),
                 f"{join((m['mean_overlap'].get(n) for n in names), 2)} ({_f(ref, 2)})",
                 f"{join((f['mean_accuracy'].get(n) for n in names), 2)} "
                 f"({_f(f['mean_accuracy'].get('real_test'), 2)}; "
                 f"{_f(f['mean_accuracy'].get('real_openings'), 2)})",
                 join((c.get(n, {}).get("accuracy") for n in names), 2)])
    who = " / ".join(report["models"][n].get("kind", n) for n in names)
    return _table(["genre", f"test bits/dim ({who})", f"metric overlap ({who}; train vs test)",
                   f"classifier fidelity ({who}; real windows; real openings)",
                   f"likelihood classification ({who})"], rows)


def to_markdown(report: dict) -> str:
    """Render the report of :func:`musicflow.evaluate.report.evaluate`; missing sections are left out."""
    names = _names(report)
    lines = _header_md(report)
    sections = (("bits_per_dim", _bits_per_dim_md), ("metrics", _metrics_md), ("fidelity", _fidelity_md),
                ("likelihood_classification", _likelihood_classification_md), ("novelty", _novelty_md),
                ("diversity", _diversity_md), ("speed", _speed_md), ("two_sample", _two_sample_md))
    for key, section in sections:
        if key in report:
            lines += section(report, names)
    if "runtime_s" in report:
        lines += ["Runtime (s): " + ", ".join(f"{k} {v}" for k, v in report["runtime_s"].items()), ""]
    return "\n".join(lines).rstrip() + "\n"


def _header_md(report: dict) -> list[str]:
    """The models, the data and settings, and the summary."""
    lines = ["# musicflow evaluation", ""]
    models = report.get("models", {})
    rows = [[n, m.get("kind"), f"{m.get('params', 0):,}", m.get("source", "")] for n, m in models.items()]
    lines += _table(["role", "kind", "parameters", "source"], rows)
    if "data" in report:
        s = report.get("settings", {})
        lines += [f"Data `{report['data']['path']}` (hash {report['data']['hash']}); "
                  f"{s.get('samples')} pieces of {s.get('bars')} bars per genre, seed {s.get('seed')}, "
                  f"temperature {s.get('temperature')} (bernoulli draws as fitted).", ""]
        for n, m in models.items():
            if m.get("candidates", 1) > 1:
                lines += [f"The {n} is sampled as `compose` samples it: genre guidance {m['guidance']:g}, "
                          f"{m['candidates']} candidate pieces resampled each beat.", ""]
            if m.get("outlines"):
                lines += [f"Each of the {n}'s pieces is composed to the outline (register, density, "
                          "voices) of a real 8-bar block of its genre from the training split, drawn "
                          "by its seed (`musicflow/compose/outlines.py`); its likelihoods use no "
                          "outline.", ""]
            if m.get("likelihood_solver"):
                lines += [f"The {n}'s likelihoods (a neural-ODE flow) use the solver "
                          f"{m['likelihood_solver']}.", ""]
    if all(k in report for k in ("data", "bits_per_dim", "metrics", "fidelity", "likelihood_classification")):
        lines += ["## Summary", ""] + headline(report)
    return lines


def _bits_per_dim_md(report: dict, names: list[str]) -> list[str]:
    lines: list[str] = []
    b = report["bits_per_dim"]
    lines += ["## Bits per dimension (test split, lower is better)", ""]
    rows = [[g, *[v.get(n) for n in names]] for g, v in b["per_genre"].items()]
    rows.append(["**mean**", *[b["mean"].get(n) for n in names]])
    lines += _table(["genre", *names], rows)
    lines += [f"_{b['note']}; up to {b['windows_per_genre']} windows per genre._", ""]
    return lines


def _metrics_md(report: dict, names: list[str]) -> list[str]:
    lines: list[str] = []
    m = report["metrics"]
    gen = [n for n in names if n in m["mean_overlap"]]
    lines += ["## Musical metrics: overlap of generated and real test distributions (1 = same)", ""]
    rows = []
    for g, row in m["per_genre"].items():
        rows.append([g, *[sum(row[k][n]["overlap"] for k in m["stats"]) / len(m["stats"]) for n in gen],
                     sum(row[k]["train_vs_test"] for k in m["stats"]) / len(m["stats"])])
    rows.append(["**mean**", *[m["mean_overlap"][n] for n in gen], m["mean_overlap"]["train_vs_test"]])
    lines += _table(["genre (mean over metrics)", *gen, "train vs test"], rows)
    rows = []
    per = list(m["per_genre"].values())
    for k in m["stats"]:
        cells = [r[k] for r in per]
        gen_cells = [f"{_mean(c[n]['mean'] for c in cells):.3f} "
                     f"({_mean(c[n]['overlap'] for c in cells):.2f})" for n in gen]
        opening = [c["real_openings"] for c in cells if "real_openings" in c]
        rows.append([k, _mean(c["real"] for c in cells), _mean(opening) if opening else None,
                     *gen_cells, _mean(c["train_vs_test"] for c in cells)])
    lines += ["Per metric, mean over genres: real mean (test windows wholly inside their pieces; "
              "first bars of test pieces); "
              "generated mean (overlap with real windows); train-vs-test overlap.", ""]
    lines += _table(["metric", "real", "real openings", *gen, "train vs test"], rows)
    first = gen[0] if gen else None
    if first:
        lines += [f"Per genre and metric for `{first}`: overlap (generated mean / real mean; "
                  "real openings' mean).", ""]
        def cell(c: dict) -> str:
            opening = f"; {c['real_openings']:.2f}" if "real_openings" in c else ""
            return f"{c[first]['overlap']:.2f} ({c[first]['mean']:.2f}/{c['real']:.2f}{opening})"

        rows = [[g, *[cell(row[k]) for k in m["stats"]]] for g, row in m["per_genre"].items()]
        lines += _table(["genre", *m["stats"]], rows)
    return lines


def _fidelity_md(report: dict, names: list[str]) -> list[str]:
    lines: list[str] = []
    f = report["fidelity"]
    cols = list(f["mean_accuracy"])
    lines += ["## Genre fidelity (independent classifier: share recognised as the genre asked for)", ""]
    rows = [[g, *[v.get(c, {}).get("accuracy") for c in cols]] for g, v in f["per_genre"].items()]
    rows.append(["**mean**", *[f["mean_accuracy"][c] for c in cols]])
    lines += _table(["genre", *cols], rows)
    for n, mix in f["mixes"].items():
        if n != "model" or not mix["pairs"]:
            continue
        lines += ["50/50 mixes (`model`): mean classifier probability of each genre of the pair, "
                  "beside that of pure samples of the genre.", ""]
        rows = [[pair, v["p_a"], v["p_b"], v["pure_a_p_a"], v["pure_b_p_b"]]
                for pair, v in mix["pairs"].items()]
        lines += _table(["a+b", "p(a) mix", "p(b) mix", "p(a) pure a", "p(b) pure b"], rows)
    lines += ["Mean probability mass on the two genres of a mix: "
              + ", ".join(f"{n} {_f(v['mean_mass_on_pair'])}" for n, v in f["mixes"].items()), ""]
    return lines


def _likelihood_classification_md(report: dict, names: list[str]) -> list[str]:
    lines: list[str] = []
    c = report["likelihood_classification"]
    cl = [n for n in names if n in c]
    lines += ["## Likelihood classification of real test pieces", ""]
    rows = [[g, c["pieces_per_genre"][g], *[c[n]["per_genre"].get(g) for n in cl]] for g in c["genres"]]
    rows.append(["**all**", sum(c["pieces_per_genre"].values()), *[c[n]["accuracy"] for n in cl]])
    lines += _table(["genre", "pieces", *cl], rows)
    if "model" in c:
        lines += ["Confusion matrix (`model`; rows: true genre, columns: predicted):", ""]
        rows = [[g, *r] for g, r in zip(c["genres"], c["model"]["confusion"])]
        lines += _table(["", *c["genres"]], rows)
    lines += [f"_First {c['bars_per_piece']} bars; chance {c['chance']}._", ""]
    return lines


def _novelty_md(report: dict, names: list[str]) -> list[str]:
    lines: list[str] = []
    nv = report["novelty"]
    lines += ["## Novelty: nearest training window of the same genre", ""]
    rows = [[n, v["samples"], v["silent"], v["exact_copies"], v["jaccard_mean"], v["jaccard_min"],
             v["hamming_mean"]] for n, v in nv.items() if isinstance(v, dict)]
    lines += _table(["", "windows", "silent", "exact copies", "Jaccard mean", "Jaccard min",
                     "differing cells, mean"], rows)
    return lines


def _diversity_md(report: dict, names: list[str]) -> list[str]:
    d = report["diversity"]
    cols = [*[n for n in names if n in d["mean"]], "real_test"]
    rows = [[g, *[v.get(n) for n in cols]] for g, v in d["per_genre"].items()]
    rows.append(["**mean**", *[d["mean"].get(n) for n in cols]])
    return ["## Diversity within a genre", ""] + _table(["genre", *cols], rows) + [f"_{d['note']}._", ""]


def _speed_md(report: dict, names: list[str]) -> list[str]:
    sp = report["speed"]
    rows = [[n, sp[n]["pieces_per_s"], sp[n]["bars_per_s"], sp[n]["bars_per_cpu_s"]]
            for n in names if n in sp]
    return (["## Speed", ""] + _table(["", "pieces / s", "bars / s", "bars / CPU s"], rows)
            + [f"_{sp['note']}._", ""])


def _two_sample_md(report: dict, names: list[str]) -> list[str]:
    per = report["two_sample"]["per_genre"]

    def cell(r: dict | None, f: str) -> str:
        if not r:
            return "-"
        lo, hi = r[f]["interval"]
        return f"{r[f]['accuracy']:.2f} ({lo:.2f}-{hi:.2f})"

    cols = [*names, "real_halves"]
    rows = [[g] + [f"{cell(v.get(n), 'metrics')} / {cell(v.get(n), 'cnn')}" for n in cols]
            for g, v in per.items()]
    lines = ["## Two-sample tests: generated against real windows (metrics / cnn)", ""]
    lines += _table(["genre", *cols], rows)
    give = [f"{g}: " + ", ".join(f"{k} {d:+.1f}"
                                 for k, d in list(v[names[0]]["metrics"]["giveaways"].items())[:4])
            for g, v in per.items() if v.get(names[0]) and "giveaways" in v[names[0]]["metrics"]]
    if give:
        lines += [f"_What gives {names[0]}'s pieces away (standardised difference, generated minus real):_ "
                  + "; ".join(give) + "."]
    return lines + ["", f"_{report['two_sample']['note']}._", ""]
