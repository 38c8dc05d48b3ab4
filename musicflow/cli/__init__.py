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


class _TrainableKind(click.Choice):
    """The model kinds ``musicflow train`` takes, read from the registry when first needed, so that
    ``import musicflow.cli`` does not import torch."""

    def __init__(self) -> None:
        super().__init__([])

    @property
    def choices(self):
        from musicflow.checkpoint import kinds_trained_on

        return kinds_trained_on("windows", "labels")

    @choices.setter
    def choices(self, _value) -> None:
        pass


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
              help="Pitch-range size, or 'auto': the smallest multiple of 8 keeping 99% of notes.")
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
@click.option("--model", "kind", type=_TrainableKind(), default="glow",
              show_default=True, help="vae: the VAE baseline; classifier: the independent genre "
                                      "classifier for evaluation.")
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
@click.option("--init", type=click.Path(dir_okay=False), default=None,
              help="Fine-tune: start from this checkpoint's weights and config (new optimiser).")
@click.option("--context-noise", type=float, default=0.0, show_default=True,
              help="Silence each pitch row of a training context (not rows held into the window) "
                   "with probability up to this, so free-running pieces do not thin out.")
@click.option("--context-noise-scope", type=click.Choice(["all", "polyphonic"]), default="all",
              show_default=True,
              help="Which contexts --context-noise thins: all, or only those of more than one voice "
                   "(a single line keeps its register and scale).")
@click.option("--start-share", type=float, default=0.0, show_default=True,
              help="Draw at least this share of each genre's training windows from the first "
                   "bars of its pieces (the context reaches back before the start).")
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
    from musicflow.training import TrainConfig, train

    data = Path(data) if data else default_dataset()
    out = Path(out) if out else checkpoints_dir() / f"{kind}-{data.stem}.pt"
    cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, warmup=warmup, clip=clip,
                      transpose=transpose, valid_every=valid_every, seed=seed, minutes=minutes,
                      context_noise=context_noise, context_noise_scope=context_noise_scope,
                      start_share=start_share,
                      init=str(init) if init else None)
    command = "musicflow " + " ".join(sys.argv[1:]) if sys.argv and "musicflow" in sys.argv[0] else ""
    if KINDS[kind].data == "labels":  # the classifier learns genres of real windows, not a flow
        _train_classifier(data, out, steps, batch_size, lr, seed, quiet, command)
        return
    overrides = _parse_overrides(overrides)
    if objective is not None:
        if "objective" not in KINDS[kind].config().to_dict():
            raise MusicflowError("--objective applies to the neural-ODE flow (--model cnf) only")
        overrides["objective"] = objective
    record = train(kind, data, out, cfg, overrides, resume, device, quiet, command)
    if int(os.environ.get("RANK", "0")) == 0:
        click.echo(f"wrote {out}: step {record['step']}, valid {record.get('valid_bpd', float('nan')):.4f}"
                   f" bits/dim, {record['wall_time_s']:.0f} s")


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


@main.command("calibrate")
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


def guidance_options(f):
    """``--guidance`` and ``--candidates`` (see ``Composer.sampling``)."""
    f = click.option("--candidates", type=int, default=None,
                     help="Pieces grown side by side under guidance, resampled each beat by how "
                          "clearly they read as the genre [default: 16; not for the neural-ODE flow].")(f)
    return click.option("--guidance", type=float, default=None,
                        help="Genre strength: 1 plain sampling, 0 ignores the genre, above 1 makes "
                             "the piece read more surely as the genre [default: 10 for the Glow, "
                             "1 for the neural-ODE flow].")(f)


# -- evaluation -----------------------------------------------------------------------------------

@main.command("evaluate")
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


# -- composing ------------------------------------------------------------------------------------

model_option = click.option("--model", "model", default=None,
                            help="glow (default), glow-no-outline, cnf, vae, or a checkpoint path.")
program_option = click.option("--program", default=None,
                              help="General MIDI program number or name [default: 0, piano].")
seed_option = click.option("--seed", type=int, default=None, help="Random seed [default: random, printed].")



def _composer(model, quiet: bool = True):
    from musicflow.compose import Composer

    return Composer.load(model, progress=not quiet)


def _out_paths(output: str | None, stem: str, n: int) -> list[Path]:
    """``-o`` as a file (n == 1, or numbered beside it) or a folder."""
    if output is None:
        return [Path(f"{stem}.mid")] if n == 1 else [Path(f"{stem}-{i + 1}.mid") for i in range(n)]
    p = Path(output)
    if p.is_dir() or output.endswith(("/", os.sep)) or not p.suffix:
        return [p / (f"{stem}.mid" if n == 1 else f"{stem}-{i + 1}.mid") for i in range(n)]
    return [p] if n == 1 else [p.with_name(f"{p.stem}-{i + 1}{p.suffix}") for i in range(n)]


outline_option = click.option(
    "--outline", default=None,
    help="For a model trained with outlines: none, or parts of the plan to compose to, e.g. "
         "'low=C4,high=C6,notes_per_beat=2,voices=1' [default: a real 8-bar block of the genre; "
         "for continue, the input's last 8 bars].")
png_option = click.option("--png", default=None, help="Also draw the piano roll to this PNG "
                                                      "(numbered when several).")
wav_option = click.option("--wav", default=None, help="Also render audio to this WAV "
                                                      "(numbered when several).")


def _side_path(opt: str | None, i: int, n: int) -> Path | None:
    if opt is None:
        return None
    p = Path(opt)
    return p if n == 1 else p.with_name(f"{p.stem}-{i + 1}{p.suffix}")


def _write(c, result, path: Path, save_latent: bool = False, png: Path | None = None,
           wav: Path | None = None) -> None:
    import torch

    from musicflow.files import atomic_write

    c.save(result.midi, path)
    line = f"wrote {path}"
    if save_latent:
        lat = path.with_suffix(".latent.pt")
        payload = {"latents": result.latents, "genre": result.genre, "seed": result.seed,
                   "outline": result.outline, "checkpoint": str(c.ck.path)}
        atomic_write(lat, lambda tmp: torch.save(payload, tmp))
        line += f" and {lat}"
    if png:
        from musicflow.media.plot import plot_midi, save_png

        line += f" and {save_png(plot_midi(result.midi, title=path.name), png)}"
    if wav:
        from musicflow.media.audio import render_to_wav

        line += f" and {render_to_wav(result.midi, wav)}"
    click.echo(line)


@main.command("compose")
@click.option("--genre", "-g", "genres", multiple=True,
              help="NAME or NAME:WEIGHT; repeat to mix, e.g. -g celtic:0.7 -g chorale:0.3 "
                   "[default: chorale].")
@click.option("--bars", type=int, default=8, show_default=True, help="Length in bars of 4/4.")
@click.option("--tempo", type=float, default=None, help="Quarter notes per minute [default: 100].")
@click.option("--key", default=None, help="Transpose into this key (C, F#, Bb, Am, ...).")
@program_option
@click.option("--temperature", "-t", type=float, default=1.0,  # composer.DEFAULT_TEMPERATURE
              show_default=True)
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
def compose_cmd(genres, bars, tempo, key, program, temperature, guidance, candidates, seed, num_outputs,
                output, save_latent, outline, png, wav, model, quiet) -> None:
    """Compose new music in a genre or a mix of genres."""
    from musicflow.compose.outlines import parse_outline

    plan = parse_outline(outline)
    c = _composer(model, quiet)
    c.sampling(guidance, candidates)  # bad values fail before anything is written
    if num_outputs < 1:
        raise MusicflowError(f"--num-outputs {num_outputs}: must be at least 1")
    base = c._seed(seed)
    genres = list(genres) or [c.default_genre]
    stem = "-".join(g.split(":")[0] for g in genres)
    for i, path in enumerate(_out_paths(output, stem, num_outputs)):
        r = c.compose_result(genres, bars, base + i, temperature, tempo, key, program, guidance=guidance,
                             candidates=candidates, outline=plan)
        _write(c, r, path, save_latent, _side_path(png, i, num_outputs), _side_path(wav, i, num_outputs))
    more = f" (outputs use {base}..{base + num_outputs - 1})" if num_outputs > 1 else ""
    click.echo(f"seed {base}{more}")
    if c.model.last_nfe is not None and not quiet:
        click.echo(f"neural ODE: {c.model.last_nfe} vector-field evaluations per beat", err=True)


@main.command("decode")
@click.argument("latent", type=click.Path(dir_okay=False))
@click.option("--genre", "-g", "genres", multiple=True, help="[default: the genre it was composed in]")
@click.option("--tempo", type=float, default=None)
@click.option("--key", default=None)
@program_option
@click.option("--output", "-o", default=None)
@model_option
def decode_cmd(latent, genres, tempo, key, program, output, model) -> None:
    """Re-decode a latent saved by 'compose --save-latent' (optionally under another genre)."""
    import torch

    try:
        payload = torch.load(latent, map_location="cpu", weights_only=True)
        z, saved = payload["latents"], payload["genre"]
    except Exception as e:  # missing, truncated, or not a latent file
        raise MusicflowError(f"{latent}: not a musicflow latent file ({type(e).__name__})") from None
    c = _composer(model)
    r = c.decode_latents(z, list(genres) or saved, tempo, key, program, outline=payload.get("outline"))
    _write(c, r, _out_paths(output, Path(latent).name.split(".")[0] + "-decoded", 1)[0])


@main.command("continue")
@click.argument("midi", type=click.Path(dir_okay=False))
@click.option("--bars", type=int, default=8, show_default=True)
@click.option("--genre", "-g", "genres", multiple=True, help="[default: the most likely genre]")
@click.option("--temperature", "-t", type=float, default=1.0,  # composer.DEFAULT_TEMPERATURE
              show_default=True)
@program_option
@guidance_options
@seed_option
@click.option("--output", "-o", default=None)
@outline_option
@png_option
@wav_option
@model_option
@quiet_option
def continue_cmd(midi, bars, genres, temperature, program, guidance, candidates, seed, output, outline,
                 png, wav, model, quiet) -> None:
    """Continue a MIDI file by BARS new bars."""
    from musicflow.compose.outlines import parse_outline

    plan = parse_outline(outline)
    c = _composer(model, quiet)
    c.sampling(guidance, candidates)
    inp = c.read(midi)
    click.echo(inp.report, err=True)
    r = c.continue_(inp, bars, list(genres) or None, seed, temperature, program, guidance=guidance,
                    candidates=candidates, outline=plan)
    _write(c, r, _out_paths(output, Path(midi).stem + "-continued", 1)[0], png=png, wav=wav)
    click.echo(f"seed {r.seed}")


@main.command("variations")
@click.argument("midi", type=click.Path(dir_okay=False))
@click.option("--num-outputs", "-n", type=int, default=4, show_default=True)
@click.option("--amount", type=float, default=0.3, show_default=True,
              help="0 = the input, 1 = every beat drawn afresh.")
@click.option("--genre", "-g", "genres", multiple=True, help="[default: the most likely genre]")
@program_option
@seed_option
@click.option("--output", "-o", default=None)
@png_option
@wav_option
@model_option
@quiet_option
def variations_cmd(midi, num_outputs, amount, genres, program, seed, output, png, wav, model,
                   quiet) -> None:
    """Variations of a MIDI file (its latent perturbed)."""
    c = _composer(model)
    inp = c.read(midi)
    click.echo(inp.report, err=True)
    results = c.variations(inp, num_outputs, amount, list(genres) or None, seed, program)
    n = len(results)
    for i, (r, path) in enumerate(zip(results, _out_paths(output, Path(midi).stem + "-var", n))):
        _write(c, r, path, png=_side_path(png, i, n), wav=_side_path(wav, i, n))
    click.echo(f"seed {results[0].seed}")


@main.command("transfer")
@click.argument("midi", type=click.Path(dir_okay=False))
@click.option("--to", "to", multiple=True, required=True, help="Target GENRE[:WEIGHT], repeatable.")
@click.option("--from", "source", multiple=True, help="The piece's genre [default: most likely].")
@program_option
@click.option("--output", "-o", default=None)
@png_option
@wav_option
@model_option
@quiet_option
def transfer_cmd(midi, to, source, program, output, png, wav, model, quiet) -> None:
    """Re-decode a MIDI file under another genre."""
    c = _composer(model)
    inp = c.read(midi)
    click.echo(inp.report, err=True)
    r = c.transfer(inp, list(to), list(source) or None, program)
    name = "-".join(t.split(":")[0] for t in to)
    _write(c, r, _out_paths(output, f"{Path(midi).stem}-to-{name}", 1)[0], png=png, wav=wav)


@main.command("interpolate")
@click.argument("a", type=click.Path(dir_okay=False))
@click.argument("b", type=click.Path(dir_okay=False))
@click.option("--steps", type=int, default=5, show_default=True)
@click.option("--genre", "-g", "genres", multiple=True, help="[default: A's most likely genre]")
@program_option
@click.option("--output", "-o", default=None)
@model_option
@quiet_option
def interpolate_cmd(a, b, steps, genres, program, output, model, quiet) -> None:
    """Pieces on the latent path from A to B."""
    c = _composer(model)
    results = c.interpolate(a, b, steps, list(genres) or None, program)
    for r, path in zip(results, _out_paths(output, "interpolation", len(results))):
        _write(c, r, path)


@main.command("score")
@click.argument("midi", type=click.Path(dir_okay=False))
@click.option("--per-window", is_flag=True, help="Also print every window's bits/dim.")
@model_option
def score_cmd(midi, per_window, model) -> None:
    """Bits/dim of a MIDI file under each genre (lower = more likely)."""
    c = _composer(model)
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


@main.command("classify")
@click.argument("midi", type=click.Path(dir_okay=False))
@model_option
def classify_cmd(midi, model) -> None:
    """Genre probabilities of a MIDI file (Bayes' rule on the likelihoods, uniform prior)."""
    c = _composer(model)
    inp = c.read(midi)
    click.echo(inp.report, err=True)
    for g, p in sorted(c.classify(inp).items(), key=lambda kv: -kv[1]):
        click.echo(f"{g:<14} {p:.3f}")


@main.command("render")
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


@main.command("genres")
@model_option
def genres_cmd(model) -> None:
    """The genres a checkpoint knows."""
    for g in _composer(model).genres:
        click.echo(g)


@main.command("models")
def models_cmd() -> None:
    """The checkpoints in checkpoints/ and what they are."""
    from musicflow.checkpoint import load_checkpoint
    from musicflow.compose import SHIPPED
    from musicflow.flows.base import Flow
    from musicflow.paths import checkpoints_dir

    found = False
    for p in sorted(checkpoints_dir().glob("*.pt")):
        try:
            ck = load_checkpoint(p)
        except MusicflowError as e:
            click.echo(f"{p.name}: unreadable ({e})")
            continue
        found = True
        bpd = ck.info.get("valid_bpd")
        extra = f", valid {bpd:.4f} bits/dim" if isinstance(bpd, float) else ""
        if isinstance(ck.model, Flow) and ck.model.takes_outline:
            extra += ", composes to outlines"
        name = p.name.removesuffix("-music21.pt")
        use = (" (the default)" if name == "glow" else f" (--model {name})") if name in SHIPPED else ""
        click.echo(f"{p.name}{use}: {ck.kind}, {len(ck.genres)} genres, step {ck.info.get('step', '?')}"
                   f"{extra}")
    if not found:
        click.echo(f"no checkpoints in {checkpoints_dir()}")


# The JSB Chorales benchmark lives in its own module; attach its commands here.
from musicflow.cli.boulanger import data_boulanger, jsb  # noqa: E402

data.add_command(data_boulanger)
main.add_command(jsb)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
