"""Commands for the polyphonic benchmark of Boulanger-Lewandowski et al. (2012).

``musicflow data boulanger`` turns a benchmark file into a musicflow dataset; ``musicflow jsb
train`` and ``musicflow jsb evaluate`` train and score the benchmark model
(:mod:`musicflow.boulanger.benchmark`).
:mod:`musicflow.cli` attaches them to its groups.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from musicflow.boulanger.settings import JSBTrainConfig
from musicflow.cli.options import command_line, optimisation_options


@click.command("boulanger")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--out", "-o", type=click.Path(dir_okay=False), default=None,
              help="Dataset file to write [default: data/<file name>.npz].")
@click.option("--steps-per-quarter", type=int, default=1, show_default=True,
              help="What one time step of the file is: 1 for quarter notes, 4 for 16ths.")
@click.option("--genre", default="chorale", show_default=True)
def data_boulanger(path, out, steps_per_quarter, genre) -> None:
    """Read a benchmark file (JSON or pickle: a dict of train/valid/test lists of pieces, each
    step the list of MIDI pitches sounding) into a dataset, splits as in the file.

    One roll step per time step, all 88 keys, no key normalisation. A .pickle/.pkl file is
    unpickled, which can run code: give only files from a source you trust."""
    from musicflow.boulanger.dataset import boulanger_dataset
    from musicflow.paths import data_dir

    ds = boulanger_dataset(path, steps_per_quarter, genre)
    out = Path(out) if out else data_dir() / f"{Path(path).stem}.npz"
    ds.save(out)
    splits = ", ".join(f"{n} {s}" for s, n in ds.info["splits"].items())
    click.echo(f"wrote {out}: {len(ds)} pieces ({splits}), {len(ds.notes)} notes, genre {genre}")


@click.group("jsb")
def jsb() -> None:
    """The JSB Chorales benchmark: NLL in nats per time step (Boulanger-Lewandowski et al. 2012)."""


@jsb.command("train")
@click.option("--data", type=click.Path(dir_okay=False), required=True,
              help="Benchmark file with train and valid splits (.json, .pickle or .pkl).")
@click.option("--out", "-o", type=click.Path(dir_okay=False), required=True, help="Checkpoint to write.")
@optimisation_options(JSBTrainConfig, "steps", "batch_size", "lr", "transpose", "valid_every", "minutes",
                      "steps_per_quarter", "seed")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="FrameFlowConfig field, e.g. --set hidden=128 (repeatable).")
@click.option("--resume", is_flag=True, help="Continue an interrupted run from --out.")
@click.option("--quiet", "-q", is_flag=True)
def jsb_train(data, out, steps, batch_size, lr, transpose, valid_every, minutes, steps_per_quarter,
              seed, overrides, resume, quiet) -> None:
    """Train the benchmark flow; keeps the weights with the best validation NLL."""
    from musicflow.boulanger.train import train_jsb
    from musicflow.cli.options import parse_overrides

    cfg = JSBTrainConfig(steps=steps, batch_size=batch_size, lr=lr, transpose=transpose,
                         valid_every=valid_every, seed=seed, minutes=minutes,
                         steps_per_quarter=steps_per_quarter)
    command = command_line()
    record = train_jsb(data, out, cfg, parse_overrides(overrides), quiet, command, resume)
    click.echo(f"wrote {out}: {record['step']} steps in {record['wall_time_s']:.0f} s; best valid "
               f"{record['valid_nats_per_step']:.3f} nats/step at step {record['best_step']}")


@jsb.command("evaluate")
@click.option("--model", "checkpoint", type=click.Path(dir_okay=False), default=None,
              help="Benchmark checkpoint [default: checkpoints/frameflow-jsb-quarter.pt].")
@click.option("--data", type=click.Path(dir_okay=False), required=True,
              help="Benchmark file (.json, .pickle or .pkl); its train split fits the baselines.")
@click.option("--split", type=click.Choice(["train", "valid", "test"]), default="valid", show_default=True)
@click.option("--samples", type=int, default=4, show_default=True,
              help="Independent dequantization draws (mean and standard error reported).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None,
              help="Also write the full report here (atomically).")
def jsb_evaluate(checkpoint, data, split, samples, seed, json_out) -> None:
    """Negative log-likelihood in nats per time step on a split, with trivial baselines."""
    from musicflow.boulanger.benchmark import evaluate
    from musicflow.files import atomic_write
    from musicflow.paths import checkpoints_dir

    checkpoint = checkpoint or checkpoints_dir() / "frameflow-jsb-quarter.pt"
    rep = evaluate(checkpoint, data, split, samples, seed)
    f = rep["flow"]
    se = f" +- {f['stderr']:.3f} (s.e., {samples} dequantization draws)" if f["stderr"] is not None else ""
    click.echo(f"{split}: {f['pieces']} pieces, {f['frames']} time steps, 88 keys per step")
    click.echo(f"flow      {f['nats_per_step']:.3f} nats/step{se}; {f['bits_per_dim']:.4f} bits/dim")
    click.echo(f"flow (importance-weighted, {samples} draws)  {f['iw_nats_per_step']:.3f} nats/step")
    for name, v in rep["baselines_nats_per_step"].items():
        click.echo(f"{name:<9} {v:.3f} nats/step")
    click.echo("(flow figures are upper bounds through dequantization)")
    if json_out:
        text = json.dumps(rep, indent=2) + "\n"
        atomic_write(json_out, lambda tmp: Path(tmp).write_text(text))
        click.echo(f"wrote {json_out}")

