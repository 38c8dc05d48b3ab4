"""Run every benchmark and the evaluation report, then write ``benchmarks/results/SUMMARY.md``.

    python benchmarks/run_all.py                 # every bench_*.py with its defaults, then evaluate
    python benchmarks/run_all.py --quick         # small settings (minutes), for a smoke test
    python benchmarks/run_all.py --only glow     # scripts whose name contains "glow"
    python benchmarks/run_all.py --summary-only  # just rebuild SUMMARY.md from results/*.json

``MUSICFLOW_BENCH_RESULTS=DIR`` writes results and summary to DIR instead (for smoke tests).

Each ``benchmarks/bench_*.py`` runs in its own process and saves ``results/<name>.json``. In quick
mode a script gets the arguments in :data:`QUICK`, or ``--quick`` if its source declares that flag,
or nothing. ``musicflow evaluate`` runs for every shipped flow checkpoint
(``checkpoints/{keyflow,glow,cnf}-music21.pt``) and saves ``results/evaluate-<kind>.json`` and ``.md``.
The summary renders the known results as tables, and the top-level numbers of any other.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = Path(os.environ.get("MUSICFLOW_BENCH_RESULTS") or HERE / "results")
sys.path.insert(0, str(ROOT))

QUICK = {
    "bench_data": ["--files", "40", "--real", "2", "--abc", "3", "--folder", "0", "--scale", "40"],
    "bench_compose": ["--repeats", "1", "--pieces", "2", "--batch", "2", "--model", "keyflow"],
    "bench_quality": ["--pieces", "6", "--bars", "8", "--genre", "celtic"],
    "bench_glow": ["--samples", "3", "--test-windows", "50"],
    "bench_register": ["--windows", "50"],
    "bench_pieces": ["--pieces", "2", "--bars", "2"],
    "bench_mix": ["--pieces", "2", "--bars", "2"],
    "bench_infill": ["--per-genre", "1", "--candidates", "2"],
    "bench_style": ["--styles", "nottingham", "--sizes", "3", "--unseen", "2", "--pieces", "2",
                    "--mix-pieces", "0"],
    "bench_boulanger": ["--corpus", "jsb", "--samples", "1"],
    "bench_serve": ["--repeats", "1"],
    "bench_parts": ["--chorales", "3"],
    "bench_drift": ["--windows", "4", "--pieces", "2", "--genre", "chorale"],
}
EVALUATE_QUICK = ["--samples", "4", "--test-windows", "50", "--real-windows", "20", "--mix-samples", "2",
                  "--classify-pieces", "2"]
FLOWS = ("keyflow", "glow", "cnf")
# The neural ODE's likelihoods cost a solve per window and genre: fixed RK4 steps (within 0.2 nats
# of the adaptive solver per window, benchmarks/bench_cnf.py) and fewer test windows and pieces.
EVALUATE_ARGS = {"cnf": ["--samples", "30", "--bars", "8", "--ode-solver", "rk4:8", "--test-windows", "300",
                         "--classify-pieces", "4", "--classify-bars", "8", "--mix-samples", "2"],
                 # The default model: 100 pieces a genre, so that a two-sample accuracy's interval is
                 # about ten points wide where the test split has the pieces (30 gave fifteen).
                 "keyflow": ["--samples", "100", "--bars", "8", "--mix-samples", "2"],
                 **{kind: ["--samples", "30", "--bars", "8", "--mix-samples", "2"]
                    for kind in ("glow", "glow-no-outline")}}


def _short(path: Path) -> str:
    """``path`` relative to the repository when inside it (commands in the summary stay readable)."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def scripts(only: str | None) -> list[Path]:
    found = sorted(p for p in HERE.glob("bench_*.py"))
    return [p for p in found if only is None or only in p.stem]


def quick_args(script: Path) -> list[str]:
    if script.stem in QUICK:
        return QUICK[script.stem]
    return ["--quick"] if '"--quick"' in script.read_text() else []


def run(cmd: list[str], log: list[dict], name: str) -> None:
    print(f"== {name}: {' '.join(cmd)}", flush=True)
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PYTHONPATH=path)
    t = time.perf_counter()
    rc = subprocess.run(cmd, cwd=ROOT, env=env).returncode
    shown = " ".join(["python" if c == sys.executable else c for c in cmd])
    log.append({"name": name, "command": shown, "returncode": rc,
                "wall_s": round(time.perf_counter() - t, 1)})
    if rc:
        print(f"!! {name} failed with exit code {rc}", flush=True)


# -- the summary --------------------------------------------------------------------------------

def _table(head: list[str], rows: list[list]) -> list[str]:
    def cell(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    return (["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
            + ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows] + [""])


def _bench_data(d: dict) -> list[str]:
    m = d.get("midi", {})
    rows = [[f"MIDI files read per second, {what}: pretty_midi / symusic (same notes)",
             f"{r['pretty_midi_files_per_s']} / {r['symusic_files_per_s']} "
             f"({r['files_identical']} of {r['files']})"]
            for what, r in (("generated", d.get("read_generated")), ("real", d.get("read_real"))) if r]
    rows += [["MIDI files encoded per second", m.get("files_per_s")],
            ["cold build (s)", m.get("cold_build_s")],
            ["rebuild from cache (s)", m.get("cache_reload_s_median")]]
    if "folder" in d:
        f = d["folder"]
        rows += [[f"{f['files']:,}-file folder, cold: files per second per core (peak MB)",
                  f"{f['files_per_s_per_core']} ({f['peak_rss_mb_builder']})"]]
    for r in d.get("scaling", []):
        one, sh = r["one_file"], r["sharded"]
        rows += [[f"{r['files']:,} files: MB above imports building one file / in {sh['shard_mb']} MB shards",
                  f"{one['builder_mb_above_imports']} / {sh['builder_mb_above_imports']}"],
                 [f"{r['files']:,} files: MB above imports reading them for training, one file / shards",
                  f"{one['training_read']['mb_above_imports']} / {sh['training_read']['mb_above_imports']}"]]
    if "music21" in d:
        rows += [["full music21 corpus, cold (s)", d["music21"].get("cold_build_s")]]
    return _table(["what", "value"], rows)


def _bench_compose(d: dict) -> list[str]:
    models = d.get("models") or {"default": d}  # results written before one run timed several models
    rows = [["`python -c 'import torch'` (s)", d.get("python_import_torch_s_median")]]
    for name, m in models.items():
        api = m.get("api", {})
        rows += [[f"{name}: `musicflow compose --bars 8` end to end (s)",
                  m.get("cli_compose_8_bars_s_median")],
                 [f"{name}: peak memory of that command (MB)", m.get("cli_peak_rss_mb")],
                 *[[f"{name}: API {k.replace('_s_median', ' (s)').replace('_', ' ')}", v]
                   for k, v in api.items() if not isinstance(v, dict)],
                 [f"{name}: likelihood classification of test pieces",
                  m.get("classify_test_pieces", {}).get("accuracy")]]
    rows += [[f"{name}: API 8 bars as composed, over the Glow's plain sampling", v]
             for name, v in d.get("8_bars_default_over_glow_plain", {}).items()]
    return _table(["what", "value"], rows)


def _bench_quality(d: dict) -> list[str]:
    rows = []
    for name, m in d.get("models", {}).items():
        for g, v in m.get("per_genre", {}).items():
            floor = d.get("floor", {}).get(g) or {}
            rows.append([name, g, v["metrics"]["accuracy"], v["cnn"]["accuracy"],
                         (floor.get("metrics") or {}).get("accuracy"),
                         (floor.get("cnn") or {}).get("accuracy"), v["fidelity"]])
    return _table(["model", "genre", "two-sample metrics", "two-sample cnn", "floor metrics", "floor cnn",
                   "fidelity"], rows)


def _bench_glow(d: dict) -> list[str]:
    rows = [[g, v["glow"], v["bernoulli"], v["ratio"]] for g, v in d.get("test_bpd", {}).items()]
    out = _table(["genre", "glow bits/dim", "bernoulli", "ratio"], rows)
    fid = d.get("genre_fidelity")
    if isinstance(fid, dict):
        how = d.get("sampling", {})
        label = (f"guidance {how['guidance']:g}, {how['candidates']} candidate pieces"
                 if how.get("candidates", 1) > 1 else "plain sampling")
        out += [f"Genre fidelity (classifier; {label}): " + ", ".join(f"{g} {v}" for g, v in fid.items()), ""]
    plain = d.get("genre_fidelity_plain")
    if isinstance(plain, dict):
        out += ["Genre fidelity (classifier; plain sampling, same run): "
                + ", ".join(f"{g} {v}" for g, v in plain.items()), ""]
    return out


def _bench_pieces(d: dict) -> list[str]:
    rows = []
    for path, c in d.get("checkpoints", {}).items():
        err = c.get("mean_relative_error", {})
        found = (err.get(k) for k in ("notes_per_bar", "pitch_range"))
        cells = [f"{e['mean']} {e['ci95']}" for e in found if e]
        rows.append([Path(path).name, c.get("lowest_fidelity"), *cells])
    head = ["checkpoint", "lowest genre fidelity", "notes per bar error [95%]", "pitch range error [95%]"]
    out = _table(head, rows)
    return [f"Settings: {d.get('settings')}", ""] + out


def _evaluate(d: dict) -> list[str]:
    from musicflow.evaluate.tables import to_markdown

    md = to_markdown(d).splitlines()
    return ["#" + line if line.startswith("#") else line for line in md[1:]] + [""]


def _bench_mix(d: dict) -> list[str]:
    rows = [[m, f"{r['at_half']['pairs_meeting_both']} of {r['at_half']['pairs']}",
             r["at_half"]["mean_mass_on_parents"], r["at_half"]["weakest_parent_min"],
             r["mean_third_genre_share_at_half"], r["mean_spearman"]]
            for m, r in d.get("methods", {}).items()]
    head = ["mix", "pairs that blend at 50/50", "mass on parents", "weakest parent", "third genre",
            "Spearman"]
    return [f"Model {d.get('model')}, {d.get('pieces')} pieces of {d.get('bars')} bars per cell.", "",
            *_table(head, rows)]


def _bench_style(d: dict) -> list[str]:
    rows = [[s, n, c["learn_seconds"], c["unseen_bits_per_dim_style"], c["unseen_bits_per_dim_best_builtin"],
             c["classified_as_style"], c["overlap_style_pieces"], c["overlap_nearest_builtin_pieces"],
             c.get("overlap_learning_files", ""), c["copied_4bar_share"]]
            for s, row in d.get("styles", {}).items() for n, c in row["by_size"].items()]
    head = ["style", "files", "learn s", "unseen bits/dim", "best built-in", "classified as style",
            "overlap", "nearest built-in overlap", "learning files' overlap", "copied 4-bar share"]
    if d.get("adapter"):
        head.append("adapter kept (rank)")
        rows = [r + [c.get("adapter_kept", 0)]
                for r, c in zip(rows, [c for row in d["styles"].values() for c in row["by_size"].values()])]
    return [f"Model {d.get('model')}; unseen pieces per style {d.get('unseen_pieces')}, "
            f"{d.get('pieces')} composed pieces per cell.", "", *_table(head, rows)]


def _generic(d: dict) -> list[str]:
    rows = [[k, v] for k, v in d.items() if isinstance(v, int | float | str) and k != "benchmark"]
    return _table(["key", "value"], rows) if rows else ["(no scalar results)", ""]


RENDER = {"bench_data": _bench_data, "bench_compose": _bench_compose, "bench_glow": _bench_glow,
          "bench_pieces": _bench_pieces, "bench_quality": _bench_quality, "bench_mix": _bench_mix,
          "bench_style": _bench_style}


def summary(log: list[dict] | None = None) -> Path:
    """Write ``results/SUMMARY.md`` from every ``results/*.json``."""
    lines = ["# Benchmark summary", "",
             "Written by `python benchmarks/run_all.py` from `benchmarks/results/*.json` "
             "(each JSON records its machine and settings).", ""]
    for path in sorted(RESULTS.glob("*.json")):
        try:
            d = json.loads(path.read_text())
        except ValueError:
            lines += [f"## {path.stem}", "", "(unreadable JSON)", ""]
            continue
        machine = d.get("machine", {})
        lines += [f"## {path.stem}", ""]
        if path.stem.startswith("evaluate-"):
            kind = path.stem.split("-", 1)[1]
            extra = "".join(f"{a} " for a in EVALUATE_ARGS.get(kind, []))
            lines += [f"Reproduce: `musicflow evaluate --model {kind} {extra}"
                      f"-o benchmarks/results/{path.name}` "
                      f"(settings: {d.get('settings')}).", ""]
        elif (HERE / f"{d.get('script') or d.get('benchmark', path.stem)}.py").is_file():  # a named run's too
            lines += [f"Reproduce: `python benchmarks/{d.get('script') or d.get('benchmark', path.stem)}.py` "
                      "(its settings are in the JSON).", ""]
        if machine:
            lines += [f"_torch {machine.get('torch')}, {machine.get('cpus')} CPUs, "
                      f"{machine.get('threads')} threads._", ""]
        render = (_evaluate if d.get("format") == "musicflow-evaluation"
                  else RENDER.get(path.stem) or RENDER.get(d.get("benchmark")) or RENDER.get(d.get("script"))
                  or _generic)
        lines += render(d)
    if log:
        lines += ["## This run", ""]
        lines += _table(["step", "exit code", "wall (s)", "command"],
                        [[r["name"], r["returncode"], r["wall_s"], f"`{r['command']}`"] for r in log])
    out = RESULTS / "SUMMARY.md"
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines).rstrip() + "\n")
    tmp.replace(out)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small settings, for a smoke test")
    ap.add_argument("--only", default=None,
                    help="run only scripts (and evaluations) whose name contains this")
    ap.add_argument("--no-evaluate", action="store_true", help="skip musicflow evaluate")
    ap.add_argument("--summary-only", action="store_true", help="rebuild SUMMARY.md, run nothing")
    args = ap.parse_args()
    log: list[dict] = []
    if not args.summary_only:
        for script in scripts(args.only):
            cmd = [sys.executable, str(script.relative_to(ROOT))] + (quick_args(script) if args.quick else [])
            run(cmd, log, script.stem)
        if not args.no_evaluate:
            for kind in FLOWS:
                name = f"evaluate-{kind}"
                if not (ROOT / "checkpoints" / f"{kind}-music21.pt").is_file():
                    continue
                if args.only and args.only not in name:
                    continue
                out = RESULTS / f"{name}.json"
                cmd = [sys.executable, "-m", "musicflow", "evaluate", "--model", kind, "-o", _short(out),
                       "--quiet", *EVALUATE_ARGS.get(kind, []), *(EVALUATE_QUICK if args.quick else [])]
                run(cmd, log, name)
    path = summary(log)
    print(f"wrote {path}")
    return 1 if any(r["returncode"] for r in log) else 0


if __name__ == "__main__":
    sys.exit(main())
