"""``musicflow evaluate``: a model against baselines, in one JSON report and Markdown tables."""

from __future__ import annotations

from pathlib import Path

import click

from musicflow.cli.options import guidance_options, quiet_option


@click.command("evaluate")
@click.option("--model", "model", default="glow", show_default=True,
              help="glow, cnf, vae, or a checkpoint path.")
@click.option("--data", type=click.Path(dir_okay=False), default=None,
              help="Dataset [default: data/music21.npz]; its test split is evaluated.")
@click.option("--samples", type=int, default=50, show_default=True, help="Generated pieces per genre.")
@click.option("--bars", type=int, default=4, show_default=True, help="Bars per generated piece.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--temperature", "-t", type=float, default=1.0, show_default=True)
@click.option("--test-windows", type=int, default=1000, show_default=True,
              help="Test windows per genre for bits/dim.")
@click.option("--real-windows", type=int, default=300, show_default=True,
              help="Real test windows per genre for the musical metrics.")
@click.option("--mix-samples", type=int, default=10, show_default=True,
              help="Pieces per 50/50 genre pair (0: no mixes).")
@click.option("--classify-pieces", type=int, default=10, show_default=True,
              help="Test pieces per genre for likelihood classification.")
@click.option("--classify-bars", type=int, default=16, show_default=True,
              help="Their first bars, scored under every genre.")
@click.option("--ode-solver", default="",
              help="Neural-ODE flow only: the likelihood solver, e.g. rk4:8 (eight fixed RK4 steps, "
                   "several times cheaper) [default: the checkpoint's own, adaptive dopri5].")
@guidance_options
@click.option("--baselines/--no-baselines", default=True, show_default=True,
              help="Also evaluate the Bernoulli baseline and the VAE checkpoint.")
@click.option("--vae", default=None,
              help="VAE baseline checkpoint [default: vae-music21.pt beside the model].")
@click.option("--classifier", default=None,
              help="Genre classifier [default: checkpoints/genre-classifier.pt].")
@click.option("--output", "-o", default="report.json", show_default=True,
              help="JSON report; the markdown tables go beside it (.md).")
@quiet_option
def evaluate_cmd(model, data, samples, bars, seed, temperature, test_windows, real_windows, mix_samples,
                 classify_pieces, classify_bars, ode_solver, guidance, candidates, baselines, vae, classifier,
                 output, quiet) -> None:
    """Evaluate a model against baselines: bits/dim, musical metrics, genre fidelity, likelihood
    classification and novelty, in one JSON report and a markdown table."""
    import json

    from musicflow.evaluate.report import EvalConfig, evaluate
    from musicflow.evaluate.tables import to_markdown
    from musicflow.files import atomic_write

    cfg = EvalConfig(samples=samples, bars=bars, seed=seed, temperature=temperature,
                     test_windows=test_windows, real_windows=real_windows, mix_samples=mix_samples,
                     classify_pieces=classify_pieces, classify_bars=classify_bars, ode_solver=ode_solver,
                     guidance=guidance, candidates=candidates)
    report = evaluate(model, data, cfg, baselines, vae, classifier, quiet)
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


