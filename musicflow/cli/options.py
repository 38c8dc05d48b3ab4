"""What the commands share: the error-to-one-line group, options read from the settings
dataclasses, output paths and writing results."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from musicflow.compose.options import Options
from musicflow.errors import MusicflowError
from musicflow.io.parts import PARTS
from musicflow.settings import default_of, help_of


class Group(click.Group):
    """A click group that turns :class:`MusicflowError` into one line and exit code 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except MusicflowError as e:
            click.echo(f"Error: {e}", err=True)
            ctx.exit(2)


class TrainableKind(click.Choice):
    """The model kinds ``musicflow train`` takes, read from the registry when first needed, so that
    ``import musicflow.cli`` does not import torch."""

    def __init__(self) -> None:
        super().__init__([])

    @property
    def choices(self):
        from musicflow.checkpoint import kinds_trained_on

        return kinds_trained_on("windows", "labels", "pieces")

    @choices.setter
    def choices(self, _value) -> None:
        pass


quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress bars or chatter.")


def command_line() -> str:
    """The command that runs, as the training record keeps it (empty when not run as ``musicflow``)."""
    return "musicflow " + " ".join(sys.argv[1:]) if sys.argv and "musicflow" in sys.argv[0] else ""


def parse_overrides(items: tuple[str, ...]) -> dict:
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


def option_from(cls: type, name: str, *decls: str, **kw):
    """A click option for setting ``name`` of the settings dataclass ``cls``: its default and help
    are read from the field (:mod:`musicflow.settings`), never written again here."""
    default = default_of(cls, name)
    kw.setdefault("help", help_of(cls, name))
    kw.setdefault("show_default", default not in (None, ""))
    return click.option(*(decls or (f"--{name.replace('_', '-')}",)), name, default=default, **kw)


def optimisation_options(cls: type, *names: str):
    """The options of ``names`` (fields of an ``Optimisation`` settings class ``cls``), typed by
    their defaults' field types, in the order given."""
    from dataclasses import fields

    types = {f.name: f.type for f in fields(cls)}

    def apply(f):
        for name in reversed(names):
            kind = float if "float" in str(types[name]) else int
            f = option_from(cls, name, type=kind)(f)
        return f

    return apply


def compose_option(name: str, *decls: str, **kw):
    """An option for the composing setting ``name`` (:class:`musicflow.compose.Options`)."""
    return option_from(Options, name, *decls, **kw)


def guidance_options(f):
    """``--guidance`` and ``--candidates`` (see ``Composer.sampling``)."""
    return compose_option("guidance", type=float)(compose_option("candidates", type=int)(f))


model_option = click.option("--model", "model", default=None,
                            help="keyflow (default), glow, glow-no-outline, cnf, vae, or a checkpoint path.")
program_option = compose_option("program")
parts_option = compose_option("parts", type=click.Choice(PARTS))
seed_option = click.option("--seed", type=int, default=None, help="Random seed [default: random, printed].")


def composer(model, quiet: bool = True):
    from musicflow.compose import Composer

    return Composer.load(model, progress=not quiet)


def out_paths(output: str | None, stem: str, n: int) -> list[Path]:
    """``-o`` as a file (n == 1, or numbered beside it) or a folder."""
    if output is None:
        return [Path(f"{stem}.mid")] if n == 1 else [Path(f"{stem}-{i + 1}.mid") for i in range(n)]
    p = Path(output)
    if p.is_dir() or output.endswith(("/", os.sep)) or not p.suffix:
        return [p / (f"{stem}.mid" if n == 1 else f"{stem}-{i + 1}.mid") for i in range(n)]
    return [p] if n == 1 else [p.with_name(f"{p.stem}-{i + 1}{p.suffix}") for i in range(n)]


outline_option = compose_option("outline")
png_option = click.option("--png", default=None, help="Also draw the piano roll to this PNG "
                                                      "(numbered when several).")
wav_option = click.option("--wav", default=None, help="Also render audio to this WAV "
                                                      "(numbered when several).")


def side_path(opt: str | None, i: int, n: int) -> Path | None:
    if opt is None:
        return None
    p = Path(opt)
    return p if n == 1 else p.with_name(f"{p.stem}-{i + 1}{p.suffix}")


def write_result(c, result, path: Path, save_latent: bool = False, png: Path | None = None,
                 wav: Path | None = None) -> None:
    """Write a result's MIDI (and its latents, roll picture, audio where asked) and say where."""
    c.save(result.midi, path)
    line = f"wrote {path}"
    if save_latent:
        line += f" and {c.save_latents(result, path.with_suffix('.latent.pt'))}"
    if png:
        from musicflow.media.plot import plot_midi, save_png

        line += f" and {save_png(plot_midi(result.midi, title=path.name), png)}"
    if wav:
        from musicflow.media.audio import render_to_wav

        line += f" and {render_to_wav(result.midi, wav)}"
    click.echo(line)
