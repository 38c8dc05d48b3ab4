"""Commands for the polyphonic benchmark of Boulanger-Lewandowski et al. (2012).

``musicflow data boulanger`` turns a benchmark file into a musicflow dataset; ``musicflow benchmark
train`` and ``musicflow benchmark evaluate`` train and score a benchmark model on one of the four
corpora (:mod:`musicflow.boulanger.benchmark`); ``musicflow jsb train|evaluate``, the older
spelling, are the same commands with ``--corpus jsb``.
:mod:`musicflow.cli` attaches them to its groups.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from musicflow.boulanger.corpora import CORPORA
from musicflow.boulanger.settings import BENCHMARK_KINDS, BenchmarkTrainConfig
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


corpus_option = click.option("--corpus", type=click.Choice(list(CORPORA)), default="jsb", show_default=True,
                             help="Which benchmark corpus the data file holds.")


def _train_options(f):
    for decorator in reversed([
        click.option("--data", type=click.Path(dir_okay=False), required=True,
                     help="Benchmark file with train and valid splits (.json, .pickle or .pkl)."),
        click.option("--out", "-o", type=click.Path(dir_okay=False), default=None,
                     help="Checkpoint to write [default: checkpoints/boulanger-<corpus>.pt]."),
        click.option("--kind", type=click.Choice(BENCHMARK_KINDS), default="keyflow", show_default=True,
                     help="keyflow: autoregressive over keys (tight bound); frameflow: coupling flow."),
        optimisation_options(BenchmarkTrainConfig, "steps", "batch_size", "lr", "weight_decay", "crop",
                             "transpose", "valid_every", "minutes", "seed"),
        click.option("--steps-per-quarter", type=int, default=None,
                     help="What one time step of the data is [default: the corpus's: 1 for JSB, 2 for the "
                          "eighth-note corpora]."),
        click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                     help="Model config field, e.g. --set rnn_hidden=128 (repeatable)."),
        click.option("--resume", is_flag=True, help="Continue an interrupted run from --out."),
        click.option("--quiet", "-q", is_flag=True),
    ]):
        f = decorator(f)
    return f


def _train(corpus, data, out, kind, overrides, resume, quiet, steps_per_quarter, **settings) -> None:
    from musicflow.boulanger.train import train_benchmark
    from musicflow.cli.options import parse_overrides
    from musicflow.paths import checkpoints_dir

    spq = steps_per_quarter if steps_per_quarter is not None else CORPORA[corpus].steps_per_quarter
    cfg = BenchmarkTrainConfig(kind=kind, steps_per_quarter=spq, **settings)
    out = out or checkpoints_dir() / CORPORA[corpus].checkpoint
    record = train_benchmark(data, out, cfg, parse_overrides(overrides), quiet, command_line(), resume,
                             corpus)
    click.echo(f"wrote {out}: {record['step']} steps in {record['wall_time_s']:.0f} s; best valid "
               f"{record['valid_nats_per_step']:.3f} nats/step at step {record['best_step']}")


def _evaluate_options(f):
    for decorator in reversed([
        click.option("--model", "checkpoint", type=click.Path(dir_okay=False), default=None,
                     help="Benchmark checkpoint [default: checkpoints/boulanger-<corpus>.pt]."),
        click.option("--data", type=click.Path(dir_okay=False), required=True,
                     help="Benchmark file (.json, .pickle or .pkl); its train split fits the baselines."),
        click.option("--split", type=click.Choice(["train", "valid", "test"]), default="valid",
                     show_default=True),
        click.option("--samples", type=int, default=4, show_default=True,
                     help="Independent dequantization draws (mean and standard error reported)."),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None,
                     help="Also write the full report here (atomically)."),
    ]):
        f = decorator(f)
    return f


def _evaluate(corpus, checkpoint, data, split, samples, seed, json_out) -> None:
    from musicflow.boulanger.benchmark import evaluate
    from musicflow.files import atomic_write
    from musicflow.paths import checkpoints_dir

    checkpoint = checkpoint or checkpoints_dir() / CORPORA[corpus].checkpoint
    rep = evaluate(checkpoint, data, split, samples, seed)
    f = rep["flow"]
    click.echo(f"{CORPORA[corpus].title}, {split}: {f['pieces']} pieces, {f['frames']} time steps, "
               f"88 keys per step")
    if f["tight"]:
        click.echo(f"model     {f['nats_per_step']:.3f} nats/step; {f['bits_per_dim']:.4f} bits/dim "
                   f"(its dequantization bound is tight: every draw gives this, the model's discrete NLL)")
    else:
        se = "" if f["stderr"] is None else f" +- {f['stderr']:.3f} (s.e., {samples} dequantization draws)"
        click.echo(f"model     {f['nats_per_step']:.3f} nats/step{se}; {f['bits_per_dim']:.4f} bits/dim")
        click.echo(f"model (importance-weighted, {samples} draws)  {f['iw_nats_per_step']:.3f} nats/step")
        click.echo("(upper bounds on the model's discrete NLL, through dequantization)")
    for name, v in rep["baselines_nats_per_step"].items():
        click.echo(f"{name:<9} {v:.3f} nats/step")
    if json_out:
        text = json.dumps(rep, indent=2) + "\n"
        atomic_write(json_out, lambda tmp: Path(tmp).write_text(text))
        click.echo(f"wrote {json_out}")


@click.group("benchmark")
def benchmark() -> None:
    """The polyphonic benchmark (Boulanger-Lewandowski et al. 2012): NLL in nats per time step on
    JSB Chorales, Nottingham, MuseData and Piano-midi.de."""


@benchmark.command("train")
@corpus_option
@_train_options
def benchmark_train(corpus, **kw) -> None:
    """Train a benchmark model on a corpus; keeps the weights with the best validation NLL."""
    _train(corpus, **kw)


@benchmark.command("evaluate")
@corpus_option
@_evaluate_options
def benchmark_evaluate(corpus, **kw) -> None:
    """Negative log-likelihood in nats per time step on a split, with trivial baselines."""
    _evaluate(corpus, **kw)


@click.group("jsb")
def jsb() -> None:
    """The JSB Chorales benchmark (``musicflow benchmark ... --corpus jsb``)."""


@jsb.command("train")
@_train_options
def jsb_train(**kw) -> None:
    """Train a benchmark model on JSB Chorales; keeps the weights with the best validation NLL."""
    _train("jsb", **kw)


@jsb.command("evaluate")
@_evaluate_options
def jsb_evaluate(**kw) -> None:
    """Negative log-likelihood in nats per time step on a JSB split, with trivial baselines."""
    _evaluate("jsb", **kw)
