"""Commands that read music or checkpoints: score, classify, genres, models, render."""

from __future__ import annotations

from pathlib import Path

import click

from musicflow.cli.options import composer, model_option, png_option
from musicflow.errors import MusicflowError


@click.command("score")
@click.argument("midi", type=click.Path(dir_okay=False))
@click.option("--per-window", is_flag=True, help="Also print every window's bits/dim.")
@model_option
def score_cmd(midi, per_window, model) -> None:
    """Bits/dim of a MIDI file under each genre (lower = more likely)."""
    c = composer(model)
    s = c.score(midi)
    click.echo(s["report"], err=True)
    for g, v in sorted(s["whole"].items(), key=lambda kv: kv[1]):
        line = f"{g:<14} {v:.4f} bits/dim"
        if per_window:
            line += "  [" + " ".join(f"{x:.3f}" for x in s["per_window"][g]) + "]"
        click.echo(line)
    click.echo("(upper bounds through dequantization)")
    if c.model.last_nfe is not None:
        click.echo(f"neural ODE: {c.model.last_nfe} vector-field evaluations (last genre's solve), "
                   "Hutchinson trace estimate", err=True)


@click.command("classify")
@click.argument("midi", type=click.Path(dir_okay=False))
@model_option
def classify_cmd(midi, model) -> None:
    """Genre probabilities of a MIDI file (Bayes' rule on the likelihoods, uniform prior)."""
    c = composer(model)
    inp = c.read(midi)
    click.echo(inp.report, err=True)
    for g, p in sorted(c.classify(inp).items(), key=lambda kv: -kv[1]):
        click.echo(f"{g:<14} {p:.3f}")


@click.command("render")
@click.argument("midi", type=click.Path(dir_okay=False))
@click.option("--output", "-o", default=None, help="WAV file [default: the MIDI name with .wav].")
@png_option
@click.option("--engine", type=click.Choice(["auto", "fluidsynth", "simple"]), default="auto",
              show_default=True, help="fluidsynth: General MIDI sounds (pip install \"musicflow[audio]\" "
                                      "and the FluidSynth library); simple: the built-in synthesiser.")
@click.option("--sample-rate", type=int, default=22050, show_default=True)
def render_cmd(midi, output, png, engine, sample_rate) -> None:
    """Render a MIDI file to a WAV file (and optionally its piano roll to a PNG)."""
    from musicflow.media.audio import render_to_wav, resolve_engine

    engine = resolve_engine(engine)
    out = Path(output) if output else Path(midi).with_suffix(".wav")
    render_to_wav(midi, out, sample_rate, engine)
    click.echo(f"wrote {out} ({engine})")
    if png:
        from musicflow.media.plot import plot_midi, save_png

        click.echo(f"wrote {save_png(plot_midi(midi), png)}")


@click.command("genres")
@model_option
def genres_cmd(model) -> None:
    """The genres a checkpoint knows; a style learnt from a user's files says where it came from."""
    c = composer(model)
    for g in c.genres:
        s = c.styles.get(g)
        click.echo(g if s is None else f"{g:<14} learnt {s['learned']} from {s['files']} files "
                                       f"(content {s['content_hash']}), held-out "
                                       f"{s['held_out_bits_per_dim']:.4f} bits/dim")


@click.command("models")
def models_cmd() -> None:
    """The checkpoints in checkpoints/ (and those the package ships) and what they are."""
    from musicflow.checkpoint import load_checkpoint
    from musicflow.compose import DEFAULT_MODEL, SHIPPED
    from musicflow.flows.base import Flow
    from musicflow.paths import checkpoints, checkpoints_dir

    found = False
    for p in checkpoints():
        try:
            ck = load_checkpoint(p)
        except MusicflowError as e:
            click.echo(f"{p.name}: unreadable ({e})")
            continue
        found = True
        bpd = ck.info.get("valid_bpd")
        extra = f", valid {bpd:.4f} bits/dim" if isinstance(bpd, float) else ""
        nats = ck.info.get("valid_nats_per_step")
        if isinstance(nats, float) and "data_hash" in ck.info:  # a sequence flow trained on a corpus
            extra += f", valid {nats:.3f} nats/step"
        elif isinstance(nats, float):  # a benchmark model
            extra += f", {ck.info.get('corpus') or 'jsb'} valid {nats:.3f} nats/step (musicflow benchmark)"
        if isinstance(ck.model, Flow) and not ck.model.has_likelihood:
            extra += ", no likelihood (a baseline to compare with)"
        if isinstance(ck.model, Flow) and ck.model.takes_outline:
            extra += ", composes to outlines"
        if ck.info.get("styles"):
            extra += ", learnt styles: " + ", ".join(ck.info["styles"])
        name = p.name.removesuffix("-music21.pt")
        use = (" (the default)" if name == DEFAULT_MODEL else f" (--model {name})") if name in SHIPPED else ""
        click.echo(f"{p.name}{use}: {ck.kind}, {len(ck.genres)} genres, step {ck.info.get('step', '?')}"
                   f"{extra}")
    if not found:
        click.echo(f"no checkpoints in {checkpoints_dir()}")


# The JSB Chorales benchmark lives in its own module; attach its commands here.
