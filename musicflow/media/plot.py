"""Look at piano rolls: one roll, a MIDI file, or a grid of samples, and save them as PNG.

matplotlib is imported inside the functions, so ``import musicflow`` never needs it. Figures are
made without pyplot (no display, no global figure list; they render with Agg when saved) unless
the caller already uses pyplot, as notebooks do, so ``plt.show()`` and inline display still work.

Sustain cells are filled (shaded by value, so a model's probabilities show as greys), each onset
darkens the left quarter of its cell, black-key rows are tinted, bars are drawn as lines, C notes
are named on the y axis (``C4`` is middle C) and the x axis counts bars from 1.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pretty_midi

from musicflow.errors import MusicflowError
from musicflow.files import atomic_write
from musicflow.io.midi import piece_from_pretty_midi, read_midi
from musicflow.roll import ONSET, SUSTAIN, PianoRollSpec, encode

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

_BACKGROUND = np.array([1.0, 1.0, 1.0])
_BLACK_KEY = np.array([0.93, 0.94, 0.96])
_SUSTAIN_RGB = np.array([0.42, 0.62, 0.85])
_ONSET_RGB = np.array([0.05, 0.16, 0.40])
_SUB = 4  # columns per step in the image; the first one carries the onset mark


def _numpy(roll) -> np.ndarray:
    if hasattr(roll, "detach"):  # a torch tensor, possibly on the GPU
        roll = roll.detach().cpu().numpy()
    return np.asarray(roll, dtype=np.float32)


def _figure(figsize: tuple[float, float]) -> Figure:
    if "matplotlib.pyplot" in sys.modules:  # the caller's pyplot session: keep show()/inline working
        import matplotlib.pyplot as plt

        return plt.figure(figsize=figsize)
    from matplotlib.figure import Figure

    return Figure(figsize=figsize)


def _image(roll: np.ndarray, spec: PianoRollSpec, onsets: bool) -> np.ndarray:
    """An RGB image (P, T * _SUB, 3), lowest pitch in row 0."""
    pitches = spec.low + np.arange(spec.pitches)
    black = np.isin(pitches % 12, [1, 3, 6, 8, 10])
    base = np.where(black[:, None], _BLACK_KEY, _BACKGROUND)[:, None, :]  # (P, 1, 3)
    sustain = np.clip(np.repeat(roll[SUSTAIN], _SUB, axis=1), 0.0, 1.0)[..., None]
    img = base * (1.0 - sustain) + _SUSTAIN_RGB * sustain
    if onsets:
        onset = np.zeros(sustain.shape[:2], dtype=np.float32)
        onset[:, ::_SUB] = np.clip(roll[ONSET], 0.0, 1.0)
        img = img * (1.0 - onset[..., None]) + _ONSET_RGB * onset[..., None]
    return np.clip(img, 0.0, 1.0)  # float32 blending can overshoot 1 by an ulp; imshow warns then


def plot_roll(
    roll: np.ndarray,
    spec: PianoRollSpec,
    ax: Axes | None = None,
    title: str | None = None,
    bar_steps: int | None = None,
    onsets: bool = True,
) -> Axes:
    """Draw a ``(2, P, T)`` roll; return the Axes (its figure is ``ax.figure``).

    ``bar_steps`` defaults to a 4/4 bar of ``spec`` (16 steps at 4 per quarter). Values between 0
    and 1 (a model's probabilities) are drawn as lighter cells.

    >>> spec = PianoRollSpec(low=48, pitches=24)
    >>> roll = np.zeros((2, 24, 32)); roll[:, 12, 0] = 1; roll[1, 12, 1:8] = 1
    >>> ax = plot_roll(roll, spec, title="one C4")
    >>> [t.get_text() for t in ax.get_yticklabels()], len(ax.lines)
    (['C3', 'C4'], 1)
    """
    r = _numpy(roll)
    if r.ndim != 3 or r.shape[0] != 2 or r.shape[1] != spec.pitches:
        raise MusicflowError(f"roll of shape {tuple(r.shape)} does not match 2 x {spec.pitches} x T")
    bar = int(bar_steps or spec.bar_steps())
    if bar < 1:
        raise MusicflowError(f"bar_steps {bar_steps}: must be at least 1")
    steps = r.shape[2]
    if ax is None:
        width = min(20.0, max(6.0, 2.0 + 1.2 * steps / bar))
        ax = _figure((width, min(8.0, max(3.0, 0.09 * spec.pitches)))).add_subplot()
    ax.imshow(_image(r, spec, onsets), origin="lower", aspect="auto", interpolation="nearest",
              extent=(0, max(steps, 1), spec.low - 0.5, spec.high + 0.5))
    for x in range(bar, steps, bar):
        ax.axvline(x, color="0.25", linewidth=0.8)
    nbars = max(1, math.ceil(steps / bar))
    every = max(1, math.ceil(nbars / 16))  # at most ~16 numbers, however long the piece
    ax.set_xticks([b * bar for b in range(0, nbars, every)], [str(b + 1) for b in range(0, nbars, every)])
    cs = [p for p in range(spec.low, spec.high + 1) if p % 12 == 0]
    ax.set_yticks(cs, [pretty_midi.note_number_to_name(p) for p in cs])
    ax.set_xlim(0, max(steps, 1))
    ax.set_ylim(spec.low - 0.5, spec.high + 0.5)
    ax.set_xlabel("bar")
    ax.set_ylabel("pitch")
    if title:
        ax.set_title(title)
    return ax


def _spec_for(notes_pitches: list[int], steps_per_quarter: int) -> PianoRollSpec:
    """The smallest range from a C at or below the lowest note, at least an octave, so a C is named."""
    lo, hi = min(notes_pitches), max(notes_pitches)
    low = max(0, (lo // 12) * 12)
    return PianoRollSpec(steps_per_quarter=steps_per_quarter, low=low,
                         pitches=max(12, min(127, hi + 1) - low + 1), key_normalize=False)


def plot_midi(
    midi: str | Path | pretty_midi.PrettyMIDI,
    spec: PianoRollSpec | None = None,
    ax: Axes | None = None,
    title: str | None = None,
    bar_steps: int | None = None,
    onsets: bool = True,
) -> Axes:
    """Draw a MIDI file or ``PrettyMIDI`` as a roll (all pitched tracks merged, drums left out).

    Without ``spec`` the pitch range is chosen from the notes (from a C up to the highest note);
    with one, notes outside its range are not drawn. ``bar_steps`` defaults to the file's first time
    signature; ``title`` to the file name.

    >>> pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    >>> pm.instruments.append(pretty_midi.Instrument(0))
    >>> pm.instruments[0].notes += [pretty_midi.Note(90, p, i * 0.5, i * 0.5 + 0.5)
    ...                            for i, p in enumerate([60, 64, 67, 72])]
    >>> ax = plot_midi(pm)
    >>> [float(y) for y in ax.get_ylim()], [t.get_text() for t in ax.get_yticklabels()]
    ([59.5, 73.5], ['C4', 'C5'])
    """
    spq = spec.steps_per_quarter if spec else 4
    if isinstance(midi, pretty_midi.PrettyMIDI):
        piece = piece_from_pretty_midi(midi, spq)
    else:
        piece = read_midi(midi, spq)
        title = title if title is not None else Path(midi).name
    spec = spec or _spec_for([n.pitch for n in piece.notes], spq)
    _, num, den = piece.time_signatures[0] if piece.time_signatures else (0.0, 4, 4)
    return plot_roll(encode(piece, spec), spec, ax=ax, title=title,
                     bar_steps=bar_steps or spec.bar_steps(num, den), onsets=onsets)


def plot_batch(
    rolls,
    spec: PianoRollSpec,
    titles: list[str] | None = None,
    cols: int = 4,
    bar_steps: int | None = None,
    onsets: bool = True,
) -> Figure:
    """A grid of rolls, e.g. a batch of samples: ``(B, 2, P, T)`` array/tensor or a list of rolls.

    >>> fig = plot_batch(np.zeros((3, 2, 24, 16)), PianoRollSpec(low=48, pitches=24), cols=2)
    >>> len([a for a in fig.axes if a.get_visible()])
    3
    """
    items = [_numpy(r) for r in rolls]
    if not items:
        raise MusicflowError("rolls: empty batch, nothing to plot")
    if titles is not None and len(titles) != len(items):
        raise MusicflowError(f"titles: {len(titles)} given for {len(items)} rolls")
    if cols < 1:
        raise MusicflowError(f"cols {cols}: must be at least 1")
    cols = min(cols, len(items))
    rows = math.ceil(len(items) / cols)
    fig = _figure((4.5 * cols, 2.8 * rows))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for i, ax in enumerate(axes):
        if i >= len(items):
            ax.set_visible(False)
            continue
        plot_roll(items[i], spec, ax=ax, title=titles[i] if titles else None, bar_steps=bar_steps,
                  onsets=onsets)
        if i % cols:  # pitch names once per row is enough
            ax.set_ylabel("")
    fig.tight_layout()
    return fig


def save_png(fig: Figure | Axes, path: str | Path, dpi: int = 100) -> Path:
    """Write a figure (or an Axes' figure) to ``path`` as PNG, atomically; return the path.

    >>> import tempfile, os
    >>> ax = plot_roll(np.zeros((2, 12, 16)), PianoRollSpec(low=60, pitches=12))
    >>> save_png(ax, os.path.join(tempfile.mkdtemp(), "roll.png")).stat().st_size > 0
    True
    """
    figure = getattr(fig, "figure", None) if not hasattr(fig, "savefig") else fig
    if figure is None:
        raise MusicflowError(f"{path}: save_png takes a matplotlib Figure or Axes")
    # format= because the temporary file's suffix is .tmp, which matplotlib cannot guess from
    return atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight"))


__all__ = ["plot_batch", "plot_midi", "plot_roll", "save_png"]
