"""``musicflow data``: build and inspect datasets."""

from __future__ import annotations

import os
from pathlib import Path

import click

from musicflow.cli.boulanger import data_boulanger
from musicflow.cli.options import Group, quiet_option
from musicflow.errors import MusicflowError


@click.group(cls=Group)
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
              help="Pitch-range size, or 'auto': the smallest multiple of 8 keeping 99% of notes.")
@click.option("--no-key-normalize", is_flag=True, help="Keep pieces in their own keys.")
@click.option("--window", type=int, default=64, show_default=True, help="Window length in steps.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Parse cache [default: $MUSICFLOW_CACHE or ~/.cache/musicflow].")
@click.option("--no-cache", is_flag=True, help="Parse every file again, write no cache.")
@click.option("--shard-mb", type=float, default=None,
              help="Write the notes in memory-mapped shards of about this many MB as the files are read "
                   "(a corpus larger than memory; training streams them) [default: one file].")
@quiet_option
def data_build(source, genre, out, jobs, pitches, no_key_normalize, window, cache_dir, no_cache,
               shard_mb, quiet) -> None:
    """Read a corpus into a compact dataset file (notes per piece, train/valid/test by piece)."""
    from musicflow.data.build import build_dataset
    from musicflow.data.cache import default_cache_dir
    from musicflow.paths import data_dir, default_dataset

    if pitches != "auto" and (not pitches.isdigit() or int(pitches) % 4):
        raise MusicflowError(f"--pitches {pitches}: give 'auto' or a multiple of 4")
    if out is None:
        out = default_dataset() if source == "music21" else data_dir() / f"{Path(source).stem}.npz"
    if shard_mb is not None and not shard_mb > 0:
        raise MusicflowError(f"--shard-mb {shard_mb}: give a positive size in MB")
    cache = None if no_cache else Path(cache_dir) if cache_dir else default_cache_dir()
    ds, report = build_dataset(
        source, genre=genre, jobs=jobs or os.cpu_count() or 1,
        pitches=None if pitches == "auto" else int(pitches), key_normalize=not no_key_normalize,
        window_steps=window, cache_dir=cache, quiet=quiet, out=out, shard_mb=shard_mb)
    if not ds.sharded:
        ds.save(out)
    for line in report.lines():
        click.echo(line, err=True)
    shards = f" and {ds.shards} shard(s) beside it" if ds.sharded else ""
    click.echo(f"wrote {out}{shards}: {len(ds)} pieces in {len(ds.genres)} genre(s); pitch range "
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



data.add_command(data_boulanger)
