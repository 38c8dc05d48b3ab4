"""The ``musicflow`` command line: a thin layer over the library.

Errors users can cause print one line and exit with code 2; progress goes to stderr and
``--quiet`` silences it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from musicflow.errors import MusicflowError


class _Group(click.Group):
    """A click group that turns :class:`MusicflowError` into one line and exit code 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except MusicflowError as e:
            click.echo(f"Error: {e}", err=True)
            ctx.exit(2)


quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress bars or chatter.")


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="musicflow")
def main() -> None:
    """musicflow: symbolic music generation with normalizing flows."""


@main.group(cls=_Group)
def data() -> None:
    """Build and inspect datasets (the music21 corpus or your own MIDI)."""


@data.command("build")
@click.option("--source", default="music21", show_default=True,
              help="'music21' (the corpus inside music21), a folder (subfolders are genres) "
                   "or a CSV manifest with path,genre columns.")
@click.option("--genre", default=None, help="Label every file of a folder source with this genre.")
@click.option("--out", "-o", type=click.Path(dir_okay=False), default=None,
              help="Dataset file to write [default: data/music21.npz for music21, else "
                   "data/<source name>.npz].")
@click.option("--jobs", "-j", type=int, default=None, help="Worker processes [default: all cores].")
@click.option("--pitches", default="auto", show_default=True,
              help="Pitch-range size, or 'auto': the smallest multiple of 4 keeping 99% of notes.")
@click.option("--no-key-normalize", is_flag=True, help="Keep pieces in their own keys.")
@click.option("--window", type=int, default=64, show_default=True, help="Window length in steps.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Parse cache [default: $MUSICFLOW_CACHE or ~/.cache/musicflow].")
@click.option("--no-cache", is_flag=True, help="Parse every file again, write no cache.")
@quiet_option
def data_build(source, genre, out, jobs, pitches, no_key_normalize, window, cache_dir, no_cache,
               quiet) -> None:
    """Read a corpus into a compact dataset file (notes per piece, train/valid/test by piece)."""
    from musicflow.data.build import build_dataset
    from musicflow.data.cache import default_cache_dir
    from musicflow.paths import data_dir, default_dataset

    if pitches != "auto" and (not pitches.isdigit() or int(pitches) % 4):
        raise MusicflowError(f"--pitches {pitches}: give 'auto' or a multiple of 4")
    if out is None:
        out = default_dataset() if source == "music21" else data_dir() / f"{Path(source).stem}.npz"
    cache = None if no_cache else Path(cache_dir) if cache_dir else default_cache_dir()
    ds, report = build_dataset(
        source, genre=genre, jobs=jobs or os.cpu_count() or 1,
        pitches=None if pitches == "auto" else int(pitches), key_normalize=not no_key_normalize,
        window_steps=window, cache_dir=cache, quiet=quiet)
    ds.save(out)
    for line in report.lines():
        click.echo(line, err=True)
    click.echo(f"wrote {out}: {len(ds)} pieces in {len(ds.genres)} genre(s); pitch range "
               f"{ds.spec.low}..{ds.spec.high} keeps {100 * ds.info['coverage']:.2f}% of notes")


@data.command("info")
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@click.option("--window", type=int, default=None, help="Count windows of this many steps.")
def data_info(path, window) -> None:
    """Pieces, windows and bars per genre and split, and pitch-range coverage."""
    from musicflow.data.dataset import Dataset
    from musicflow.paths import default_dataset

    ds = Dataset.load(path or default_dataset())
    click.echo(ds.describe(window), nl=False)
    skipped = ds.info.get("skipped", [])
    if skipped:
        click.echo(f"{len(skipped)} file(s) were skipped at build time "
                   f"(first: {skipped[0][0]}: {skipped[0][1]})")


def _parse_overrides(items: tuple[str, ...]) -> dict:
    """``("hidden=64", "dequantization=variational")`` -> ``{"hidden": 64, ...}``."""
    import json

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise MusicflowError(f"--set {item}: use KEY=VALUE")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


@main.command("train")
@click.option("--model", "kind", type=click.Choice(["glow", "cnf"]), default="glow", show_default=True)
@click.option("--data", type=click.Path(dir_okay=False), default=None,
              help="Dataset from 'musicflow data build' [default: data/music21.npz].")
@click.option("--out", "-o", type=click.Path(dir_okay=False), default=None,
              help="Checkpoint to write [default: checkpoints/<model>-<data name>.pt].")
@click.option("--steps", type=int, default=10000, show_default=True)
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option("--warmup", type=int, default=200, show_default=True)
@click.option("--clip", type=float, default=5.0, show_default=True, help="Gradient-norm clip.")
@click.option("--transpose", type=int, default=3, show_default=True,
              help="Augment by random transpositions of up to this many semitones.")
@click.option("--valid-every", type=int, default=500, show_default=True)
@click.option("--minutes", type=float, default=None, help="Stop (and save) after this wall time.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--resume", is_flag=True, help="Continue an interrupted run from --out.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Model config field, e.g. --set hidden=64 (repeatable).")
@quiet_option
def train_cmd(kind, data, out, steps, batch_size, lr, warmup, clip, transpose, valid_every, minutes,
              seed, resume, device, overrides, quiet) -> None:
    """Train a flow; under torchrun it uses DistributedDataParallel automatically."""
    from musicflow.paths import checkpoints_dir, default_dataset
    from musicflow.train import TrainConfig, train

    data = Path(data) if data else default_dataset()
    out = Path(out) if out else checkpoints_dir() / f"{kind}-{data.stem}.pt"
    if steps < 1 or batch_size < 1 or lr <= 0:
        raise MusicflowError("--steps, --batch-size and --lr must be positive")
    cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, warmup=warmup, clip=clip,
                      transpose=transpose, valid_every=valid_every, seed=seed, minutes=minutes)
    command = "musicflow " + " ".join(sys.argv[1:]) if sys.argv and "musicflow" in sys.argv[0] else ""
    record = train(kind, data, out, cfg, _parse_overrides(overrides), resume, device, quiet, command)
    if int(os.environ.get("RANK", "0")) == 0:
        click.echo(f"wrote {out}: step {record['step']}, valid {record.get('valid_bpd', float('nan')):.4f}"
                   f" bits/dim, {record['wall_time_s']:.0f} s")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
