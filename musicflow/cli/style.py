"""``musicflow style``: teach the model a user's style from a few of their files."""

from __future__ import annotations

import click

from musicflow.cli.options import Group, model_option, option_from, quiet_option
from musicflow.errors import MusicflowError
from musicflow.training.settings import StyleConfig


@click.group("style", cls=Group)
def style() -> None:
    """Your own style as a new genre of the model (learnt from a few of your files)."""


def _setting(name: str, kind: type):
    return option_from(StyleConfig, name, type=kind)


@style.command("learn")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--name", required=True, help="The new genre's name (compose -g NAME).")
@click.option("--output", "-o", default=None,
              help="Checkpoint to write [default: --into, else checkpoints/NAME.pt in the home folder].")
@click.option("--into", default=None, help="Add the style to this checkpoint (a model that already knows "
                                           "other styles); written back unless -o says otherwise.")
@model_option
@click.option("--replace", is_flag=True, help="Learn again a style the model already has.")
@_setting("steps", int)
@_setting("lr", float)
@_setting("held_out", float)
@_setting("minutes", float)
@_setting("seed", int)
@_setting("adapter", int)
@quiet_option
def learn_cmd(paths, name, output, into, model, replace, steps, lr, held_out, minutes, seed, adapter,
              quiet) -> None:
    """Learn a new genre NAME from MIDI, ABC, MusicXML or kern files (PATHS: files, folders or .csv
    manifests). The model stays as it was; only the new genre's weights are fitted, stopped on
    pieces kept aside. Then: musicflow compose --model NAME -g NAME."""
    from musicflow.compose import Composer
    from musicflow.compose.style import learn_style
    from musicflow.paths import checkpoints_dir

    if into and model:
        raise MusicflowError("--into and --model: give one (--into adds to that checkpoint)")
    c = Composer.load(into or model, progress=not quiet)
    cfg = StyleConfig(steps=steps, lr=lr, held_out=held_out, minutes=minutes, seed=seed, adapter=adapter)
    result = learn_style(c, list(paths), name, cfg, replace=replace, quiet=quiet)
    out = output or into or checkpoints_dir() / f"{name}.pt"
    path = result.composer.save_model(out)
    for line in result.lines():
        click.echo(line, err=line.startswith("skipped"))
    click.echo(f"wrote {path}; compose with: musicflow compose --model {path} -g {name}")
