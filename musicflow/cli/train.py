"""``musicflow train`` and ``musicflow calibrate``."""

from __future__ import annotations

import os
from pathlib import Path

import click

from musicflow.cli.options import (
    TrainableKind,
    command_line,
    optimisation_options,
    option_from,
    parse_overrides,
    quiet_option,
)
from musicflow.errors import MusicflowError
from musicflow.training.settings import TrainConfig


def trained(name: str, **kw):
    """An option whose default and help come from :class:`TrainConfig`."""
    return option_from(TrainConfig, name, **kw)


@click.command("train")
@click.option("--model", "kind", type=TrainableKind(), default="glow",
              show_default=True, help="keyflow: the sequence flow over whole pieces; vae, gan: the "
                                      "VAE and GAN baselines; classifier: the independent genre "
                                      "classifier for evaluation.")
@click.option("--data", type=click.Path(dir_okay=False), default=None,
              help="Dataset from 'musicflow data build' [default: data/music21.npz].")
@click.option("--out", "-o", type=click.Path(dir_okay=False), default=None,
              help="Checkpoint to write [default: checkpoints/<model>-<data name>.pt].")
@optimisation_options(TrainConfig, "steps", "batch_size", "lr", "warmup", "clip", "transpose", "valid_every",
                      "minutes", "seed")
@click.option("--resume", is_flag=True, help="Continue an interrupted run from --out.")
@trained("init", type=click.Path(dir_okay=False))
@trained("context_noise", type=float)
@trained("context_noise_scope", type=click.Choice(["all", "polyphonic"]))
@trained("start_share", type=float)
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Model config field, e.g. --set hidden=64 (repeatable).")
@click.option("--objective", type=click.Choice(["fm", "ml"]), default=None,
              help="Neural-ODE flow only: flow matching (fm, default) or maximum likelihood (ml).")
@quiet_option
def train_cmd(kind, data, out, steps, batch_size, lr, warmup, clip, transpose, valid_every, minutes,
              seed, resume, init, context_noise, context_noise_scope, start_share, device, overrides,
              objective, quiet) -> None:
    """Train a flow; under torchrun it uses DistributedDataParallel automatically."""
    from musicflow.checkpoint import KINDS
    from musicflow.paths import checkpoints_dir, default_dataset
    from musicflow.training import train

    data = Path(data) if data else default_dataset()
    out = Path(out) if out else checkpoints_dir() / f"{kind}-{data.stem}.pt"
    cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, warmup=warmup, clip=clip,
                      transpose=transpose, valid_every=valid_every, seed=seed, minutes=minutes,
                      context_noise=context_noise, context_noise_scope=context_noise_scope,
                      start_share=start_share,
                      init=str(init) if init else None)
    command = command_line()
    if KINDS[kind].data == "labels":  # the classifier learns genres of real windows, not a flow
        _train_classifier(data, out, steps, batch_size, lr, seed, quiet, command)
        return
    overrides = parse_overrides(overrides)
    if KINDS[kind].data == "pieces":
        _train_pieces(kind, data, out, overrides, resume, quiet, command, device)
        return
    if objective is not None:
        if "objective" not in KINDS[kind].config().to_dict():
            raise MusicflowError("--objective applies to the neural-ODE flow (--model cnf) only")
        overrides["objective"] = objective
    record = train(kind, data, out, cfg, overrides, resume, device, quiet, command)
    if int(os.environ.get("RANK", "0")) == 0:
        figure = (f"{record['valid_bpd']:.4f} bits/dim" if "valid_bpd" in record
                  else f"sample gap {record.get('valid_gap', float('nan')):.4f}")
        click.echo(f"wrote {out}: step {record['step']}, valid {figure}, {record['wall_time_s']:.0f} s")


def _train_pieces(kind, data, out, overrides, resume, quiet, command, device) -> None:
    """The sequence flow's run: its own defaults (:class:`PieceTrainConfig`), overridden by the
    options given on the command line."""
    from musicflow.training.pieces import train_pieces
    from musicflow.training.settings import PieceTrainConfig

    ctx = click.get_current_context()
    given = {name: ctx.params[name] for name in ("steps", "batch_size", "lr", "warmup", "clip", "transpose",
                                                 "valid_every", "minutes", "seed", "start_share")
             if ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT}
    for name in ("init", "context_noise"):
        if ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT:
            raise MusicflowError(f"--{name.replace('_', '-')} applies to the window models, "
                                 f"not --model {kind}")
    record = train_pieces(data, out, PieceTrainConfig(**given), overrides, quiet, command, resume, kind,
                          device)
    if int(os.environ.get("RANK", "0")) == 0:
        click.echo(f"wrote {out}: step {record['step']}, valid {record['valid_nats_per_step']:.4f} "
                   f"nats/step, {record['wall_time_s']:.0f} s")


def _train_classifier(data, out, steps, batch_size, lr, seed, quiet, command) -> None:
    from musicflow.checkpoint import save_checkpoint
    from musicflow.data.dataset import Dataset
    from musicflow.training.classifier import train_classifier

    ds = Dataset.load(data)
    model, report = train_classifier(ds, steps, batch_size, lr, seed, quiet)
    report["command"] = command
    save_checkpoint(out, "classifier", model, ds.spec, ds.genres, report)
    per = " ".join(f"{g}={a:.2f}" for g, a in report["accuracy_per_genre"].items())
    click.echo(f"wrote {out}: valid balanced accuracy {report['balanced_accuracy']:.3f} ({per})")


@click.command("calibrate")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--data", type=click.Path(dir_okay=False), default=None,
              help="Dataset whose validation split calibrates [default: data/music21.npz].")
@click.option("--temperature", "-t", type=float, default=1.0, show_default=True)
def calibrate_cmd(checkpoint, data, temperature) -> None:
    """Choose a checkpoint's per-genre decoding thresholds from validation data (training does this
    at its end; use this for older checkpoints or another temperature)."""
    from musicflow.checkpoint import load_checkpoint
    from musicflow.data.dataset import Dataset
    from musicflow.paths import default_dataset
    from musicflow.training import calibrate, model_windows

    ck = load_checkpoint(checkpoint)
    ds = Dataset.load(data or default_dataset())
    if ds.spec != ck.spec:
        raise MusicflowError(f"{data or default_dataset()}: representation differs from {checkpoint}'s")
    windows = model_windows(ds, "valid", ck.model.config, ck.genres)
    ck.info.update(calibrate(ck.model, windows, ds.spec, temperature))
    ck.save(checkpoint)
    click.echo("thresholds: " + " ".join(f"{g}={t:.2f}" for g, t in ck.info["thresholds"].items()))


