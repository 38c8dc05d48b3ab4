"""``musicflow evaluate``: a model against baselines, in one JSON report and Markdown tables."""

from __future__ import annotations

from pathlib import Path

import click

from musicflow.cli.options import option_from, quiet_option
from musicflow.evaluate.settings import EvalConfig


def evaluated(name: str, *decls: str, **kw):
    """An option whose default and help come from :class:`EvalConfig`."""
    return option_from(EvalConfig, name, *decls, **kw)


@click.command("evaluate")
@click.option("--model", "model", default="keyflow", show_default=True,
              help="keyflow, glow, glow-no-outline, cnf, vae, gan, or a checkpoint path.")
@click.option("--data", type=click.Path(dir_okay=False), default=None,
              help="Dataset [default: data/music21.npz]; its test split is evaluated.")
@evaluated("samples", type=int)
@evaluated("bars", type=int)
@evaluated("seed", type=int)
@evaluated("temperature", "--temperature", "-t", type=float)
@evaluated("test_windows", type=int)
@evaluated("real_windows", type=int)
@evaluated("mix_samples", type=int)
@evaluated("classify_pieces", type=int)
@evaluated("classify_bars", type=int)
@evaluated("ode_solver")
@evaluated("guidance", type=float)
@evaluated("candidates", type=int)
@evaluated("repeat", type=float)
@click.option("--two-sample/--no-two-sample", default=True, show_default=True,
              help="Two-sample tests: can a classifier tell the pieces from real test excerpts?")
@click.option("--baselines/--no-baselines", default=True, show_default=True,
              help="Also evaluate the Bernoulli baseline and the VAE and GAN checkpoints.")
@click.option("--vae", default=None,
              help="VAE baseline checkpoint [default: vae-music21.pt beside the model].")
@click.option("--gan", default=None,
              help="GAN baseline checkpoint [default: gan-music21.pt beside the model]; a GAN has no "
                   "likelihood, so no bits/dim or likelihood classification.")
@click.option("--classifier", default=None,
              help="Genre classifier [default: checkpoints/genre-classifier.pt].")
@click.option("--output", "-o", default="report.json", show_default=True,
              help="JSON report; the markdown tables go beside it (.md).")
@quiet_option
def evaluate_cmd(model, data, samples, bars, seed, temperature, test_windows, real_windows, mix_samples,
                 classify_pieces, classify_bars, ode_solver, guidance, candidates, repeat, two_sample,
                 baselines, vae, gan, classifier, output, quiet) -> None:
    """Evaluate a model against baselines: bits/dim, musical metrics, genre fidelity, likelihood
    classification, novelty, diversity, speed and two-sample tests against real music, in one JSON
    report and a markdown table."""
    import json

    from musicflow.evaluate.report import evaluate
    from musicflow.evaluate.tables import to_markdown
    from musicflow.files import atomic_write

    cfg = EvalConfig(samples=samples, bars=bars, seed=seed, temperature=temperature,
                     test_windows=test_windows, real_windows=real_windows, mix_samples=mix_samples,
                     classify_pieces=classify_pieces, classify_bars=classify_bars, ode_solver=ode_solver,
                     guidance=guidance, candidates=candidates, repeat=repeat, two_sample=two_sample)
    report = evaluate(model, data, cfg, baselines, vae, classifier, quiet, gan)
    out = Path(output)
    text = json.dumps(report, indent=1) + "\n"
    md = to_markdown(report)

    def _text(content: str):
        return lambda tmp: Path(tmp).write_text(content)

    atomic_write(out, _text(text))
    atomic_write(out.with_suffix(".md"), _text(md))
    click.echo(md)
    rt = report["runtime_s"]
    click.echo(f"wrote {out} and {out.with_suffix('.md')} in {rt['total']:.0f} s "
               f"({rt['total_cpu']:.0f} s CPU)")


