"""The composing commands: compose, decode, continue, variations, transfer, interpolate."""

from __future__ import annotations

from pathlib import Path

import click

from musicflow.cli.options import (
    compose_option,
    composer,
    guidance_options,
    model_option,
    out_paths,
    outline_option,
    parts_option,
    png_option,
    program_option,
    quiet_option,
    seed_option,
    side_path,
    wav_option,
    write_result,
)
from musicflow.compose.options import MIX_METHODS
from musicflow.errors import MusicflowError


def _settings(**given) -> dict:
    """The composing settings a command was given (click passes every option; drop the unset)."""
    return {k: v for k, v in given.items() if v is not None}


@click.command("compose")
@click.option("--genre", "-g", "genres", multiple=True,
              help="NAME or NAME:WEIGHT; repeat to mix, e.g. -g celtic:0.7 -g chorale:0.3 "
                   "[default: chorale].")
@compose_option("bars", type=int)
@compose_option("time_signature")
@compose_option("mix", type=click.Choice(MIX_METHODS))
@compose_option("repeat", type=float)
@compose_option("tempo", type=float)
@compose_option("key")
@program_option
@parts_option
@compose_option("temperature", "--temperature", "-t", type=float)
@guidance_options
@seed_option
@click.option("--num-outputs", "-n", type=int, default=1, show_default=True)
@click.option("--output", "-o", default=None, help="MIDI file, or a folder for several.")
@click.option("--save-latent", is_flag=True, help="Save the latent beside each MIDI (.latent.pt).")
@outline_option
@png_option
@wav_option
@model_option
@quiet_option
def compose_cmd(genres, bars, time_signature, mix, repeat, tempo, key, program, parts, temperature, guidance,
                candidates, seed, num_outputs, output, save_latent, outline, png, wav, model, quiet) -> None:
    """Compose new music in a genre or a mix of genres."""
    from musicflow.compose import Options, new_seed
    from musicflow.compose.outlines import parse_outline

    options = Options(**_settings(bars=bars, tempo=tempo, key=key, program=program, parts=parts,
                                  temperature=temperature, guidance=guidance, candidates=candidates,
                                  outline=parse_outline(outline), time_signature=time_signature, mix=mix,
                                  repeat=repeat))
    c = composer(model, quiet)
    c.sampling(guidance, candidates)  # bad values fail before anything is written
    if num_outputs < 1:
        raise MusicflowError(f"--num-outputs {num_outputs}: must be at least 1")
    base = new_seed(seed)
    genres = list(genres) or [c.default_genre]
    stem = "-".join(g.split(":")[0] for g in genres)
    for i, path in enumerate(out_paths(output, stem, num_outputs)):
        r = c.compose_result(genres, seed=base + i, options=options)
        write_result(c, r, path, save_latent, side_path(png, i, num_outputs), side_path(wav, i, num_outputs))
    more = f" (outputs use {base}..{base + num_outputs - 1})" if num_outputs > 1 else ""
    click.echo(f"seed {base}{more}")
    if c.model.last_nfe is not None and not quiet:
        click.echo(f"neural ODE: {c.model.last_nfe} vector-field evaluations per beat", err=True)


@click.command("decode")
@click.argument("latent", type=click.Path(dir_okay=False))
@click.option("--genre", "-g", "genres", multiple=True, help="[default: the genre it was composed in]")
@compose_option("mix", type=click.Choice(MIX_METHODS))
@compose_option("tempo", type=float)
@compose_option("key")
@program_option
@parts_option
@click.option("--output", "-o", default=None)
@model_option
def decode_cmd(latent, genres, mix, tempo, key, program, parts, output, model) -> None:
    """Re-decode a latent saved by 'compose --save-latent' (optionally under another genre)."""
    import torch

    try:
        payload = torch.load(latent, map_location="cpu", weights_only=True)
        z, saved = payload["latents"], payload["genre"]
    except Exception as e:  # missing, truncated, or not a latent file
        raise MusicflowError(f"{latent}: not a musicflow latent file ({type(e).__name__})") from None
    c = composer(model)
    r = c.decode_latents(z, list(genres) or saved, outline=payload.get("outline"),
                         **_settings(tempo=tempo, key=key, program=program, parts=parts, mix=mix,
                                     time_signature=payload.get("time_signature")))
    write_result(c, r, out_paths(output, Path(latent).name.split(".")[0] + "-decoded", 1)[0])


@click.command("continue")
@click.argument("midi", type=click.Path(dir_okay=False))
@compose_option("bars", type=int)
@click.option("--genre", "-g", "genres", multiple=True, help="[default: the most likely genre]")
@compose_option("temperature", "--temperature", "-t", type=float)
@compose_option("mix", type=click.Choice(MIX_METHODS))
@program_option
@parts_option
@guidance_options
@seed_option
@click.option("--output", "-o", default=None)
@outline_option
@png_option
@wav_option
@model_option
@quiet_option
def continue_cmd(midi, bars, genres, temperature, mix, program, parts, guidance, candidates, seed, output,
                 outline, png, wav, model, quiet) -> None:
    """Continue a MIDI file by BARS new bars."""
    from musicflow.compose.outlines import parse_outline

    settings = _settings(bars=bars, temperature=temperature, program=program, parts=parts, guidance=guidance,
                         candidates=candidates, outline=parse_outline(outline), mix=mix)
    c = composer(model, quiet)
    c.sampling(guidance, candidates)
    inp = c.read(midi)
    click.echo(inp.report, err=True)
    r = c.continue_(inp, list(genres) or None, seed=seed, **settings)
    write_result(c, r, out_paths(output, Path(midi).stem + "-continued", 1)[0], png=png, wav=wav)
    click.echo(f"seed {r.seed}")


@click.command("infill")
@click.argument("midi", type=click.Path(dir_okay=False))
@click.option("--bars", "span", required=True,
              help="The bars to compose anew, FIRST-LAST (1-based), e.g. 5-8.")
@click.option("--genre", "-g", "genres", multiple=True, help="[default: the most likely genre]")
@click.option("--candidates", "-k", type=int, default=16, show_default=True,
              help="Spans drawn given the past; one is kept by the likelihood of the bars after it.")
@compose_option("temperature", "--temperature", "-t", type=float)
@compose_option("mix", type=click.Choice(MIX_METHODS))
@program_option
@parts_option
@seed_option
@click.option("--num-outputs", "-n", type=int, default=1, show_default=True)
@click.option("--output", "-o", default=None, help="MIDI file, or a folder for several.")
@png_option
@model_option
@quiet_option
def infill_cmd(midi, span, genres, candidates, temperature, mix, program, parts, seed, num_outputs, output,
               png, model, quiet) -> None:
    """Compose bars of a MIDI file anew, given the music before and after them."""
    from musicflow.compose import new_seed
    from musicflow.compose.infill import parse_span

    bars = parse_span(span)
    if num_outputs < 1:
        raise MusicflowError(f"--num-outputs {num_outputs}: must be at least 1")
    c = composer(model, quiet)
    inp = c.read(midi)
    click.echo(inp.report, err=True)
    base = new_seed(seed)
    settings = _settings(temperature=temperature, program=program, parts=parts, mix=mix)
    for i, path in enumerate(out_paths(output, Path(midi).stem + "-infilled", num_outputs)):
        r = c.infill(inp, bars, list(genres) or None, seed=base + i, candidates=candidates, **settings)
        write_result(c, r, path, png=side_path(png, i, num_outputs))
    more = f" (outputs use {base}..{base + num_outputs - 1})" if num_outputs > 1 else ""
    click.echo(f"seed {base}{more}")


@click.command("variations")
@click.argument("midi", type=click.Path(dir_okay=False))
@click.option("--num-outputs", "-n", type=int, default=4, show_default=True)
@click.option("--amount", type=float, default=0.3, show_default=True,
              help="0 = the input, 1 = every beat drawn afresh.")
@click.option("--genre", "-g", "genres", multiple=True, help="[default: the most likely genre]")
@program_option
@parts_option
@seed_option
@click.option("--output", "-o", default=None)
@png_option
@wav_option
@model_option
@quiet_option
def variations_cmd(midi, num_outputs, amount, genres, program, parts, seed, output, png, wav, model,
                   quiet) -> None:
    """Variations of a MIDI file (its latent perturbed)."""
    c = composer(model)
    inp = c.read(midi)
    click.echo(inp.report, err=True)
    results = c.variations(inp, num_outputs, amount, list(genres) or None, seed,
                           **_settings(program=program, parts=parts))
    n = len(results)
    for i, (r, path) in enumerate(zip(results, out_paths(output, Path(midi).stem + "-var", n))):
        write_result(c, r, path, png=side_path(png, i, n), wav=side_path(wav, i, n))
    click.echo(f"seed {results[0].seed}")


@click.command("transfer")
@click.argument("midi", type=click.Path(dir_okay=False))
@click.option("--to", "to", multiple=True, required=True, help="Target GENRE[:WEIGHT], repeatable.")
@click.option("--from", "source", multiple=True, help="The piece's genre [default: most likely].")
@program_option
@parts_option
@click.option("--output", "-o", default=None)
@png_option
@wav_option
@model_option
@quiet_option
def transfer_cmd(midi, to, source, program, parts, output, png, wav, model, quiet) -> None:
    """Re-decode a MIDI file under another genre."""
    c = composer(model)
    inp = c.read(midi)
    click.echo(inp.report, err=True)
    r = c.transfer(inp, list(to), list(source) or None, **_settings(program=program, parts=parts))
    name = "-".join(t.split(":")[0] for t in to)
    write_result(c, r, out_paths(output, f"{Path(midi).stem}-to-{name}", 1)[0], png=png, wav=wav)


@click.command("interpolate")
@click.argument("a", type=click.Path(dir_okay=False))
@click.argument("b", type=click.Path(dir_okay=False))
@click.option("--steps", type=int, default=5, show_default=True)
@click.option("--genre", "-g", "genres", multiple=True, help="[default: A's most likely genre]")
@program_option
@parts_option
@click.option("--output", "-o", default=None)
@model_option
@quiet_option
def interpolate_cmd(a, b, steps, genres, program, parts, output, model, quiet) -> None:
    """Pieces on the latent path from A to B."""
    c = composer(model)
    results = c.interpolate(a, b, steps, list(genres) or None, **_settings(program=program, parts=parts))
    for r, path in zip(results, out_paths(output, "interpolation", len(results))):
        write_result(c, r, path)
