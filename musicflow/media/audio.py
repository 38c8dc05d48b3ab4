"""Listen to MIDI: render it to audio and write WAV files.

Two engines. ``"fluidsynth"`` plays General MIDI instruments through pretty_midi's
``fluidsynth()`` with the sound font pretty_midi ships (TimGM6mb); it needs the optional
pyfluidsynth package and the FluidSynth system library. ``"simple"`` is a small built-in
additive synthesiser (numpy only): every note is a few sine partials under an
attack/decay/release envelope, louder with velocity, one timbre for every program, drums left out.
``"auto"`` takes FluidSynth when it works and the simple engine otherwise.

Whatever the engine, audio is float32 mono in [-1, 1] and lasts the MIDI's end time
(``PrettyMIDI.get_end_time()``) plus :data:`TAIL_SECONDS` (0.5 s), so the last release is heard
and the audio lines up with the MIDI: ``ceil((end + TAIL_SECONDS) * sample_rate)`` samples.
"""

from __future__ import annotations

import importlib
import math
import warnings
import wave
from pathlib import Path

import numpy as np
import pretty_midi

from musicflow.errors import MusicflowError
from musicflow.files import atomic_write
from musicflow.io.midi import load_midi

ENGINES = ("auto", "fluidsynth", "simple")
TAIL_SECONDS = 0.5
PEAK = 0.9  # headroom below full scale, so 16-bit conversion and players never clip
INSTALL_HINT = ('pip install "musicflow[audio]" plus the system FluidSynth library '
                "(Debian/Ubuntu: apt install fluidsynth libfluidsynth3; macOS: brew install fluid-synth)")

# The simple engine's voice: soft upper partials and a piano-like decay, so dense chords stay clear.
_PARTIALS = np.array([1.0, 0.45, 0.25, 0.12, 0.06])
_ATTACK, _DECAY, _SUSTAIN, _FADE, _RELEASE = 0.005, 0.2, 0.35, 4.0, 0.15  # seconds, level
_NOTE_GAIN = 0.3  # one full-velocity note; a few together reach PEAK before scaling kicks in
_SAMPLE_RATES = (8000, 96000)


def default_soundfont() -> Path | None:
    """The General MIDI sound font pretty_midi ships, or ``None`` if this install lacks it.

    >>> sf2 = default_soundfont()
    >>> sf2 is None or sf2.suffix == ".sf2"
    True
    """
    names: list[str] = []
    for module in ("pretty_midi.fluidsynth", "pretty_midi.pretty_midi"):  # new, old pretty_midi
        try:
            name = getattr(importlib.import_module(module), "DEFAULT_SF2", None)
        except ImportError:
            continue
        if name:
            names.append(str(name))
    package = Path(pretty_midi.__file__).parent
    for name in [*names, "TimGM6mb.sf2"]:
        p = Path(name) if Path(name).is_absolute() else package / name
        if p.is_file():
            return p
    return None


def _fluidsynth_problem() -> str | None:
    """Why the FluidSynth engine cannot run here, or ``None`` when it can."""
    try:
        # pyfluidsynth loads the C library when imported, so a missing library shows up here too.
        fluidsynth = importlib.import_module("fluidsynth")
    except (ImportError, OSError) as e:
        return f"{type(e).__name__}: {e}"
    if not hasattr(fluidsynth, "Synth"):
        return "the installed 'fluidsynth' module is not pyfluidsynth"
    if default_soundfont() is None:
        return "pretty_midi's sound font TimGM6mb.sf2 is missing"
    return None


def available_engine() -> str:
    """The engine ``"auto"`` picks on this machine: ``"fluidsynth"`` or ``"simple"``.

    >>> available_engine() in ("fluidsynth", "simple")
    True
    """
    return "simple" if _fluidsynth_problem() else "fluidsynth"


def resolve_engine(engine: str = "auto") -> str:
    """The engine that will run for ``engine``; raises when it is unknown or cannot run here.

    >>> resolve_engine("simple")
    'simple'
    >>> resolve_engine("timidity")
    Traceback (most recent call last):
    musicflow.errors.MusicflowError: engine 'timidity': use auto, fluidsynth or simple
    """
    if engine not in ENGINES:
        raise MusicflowError(f"engine {engine!r}: use {', '.join(ENGINES[:-1])} or {ENGINES[-1]}")
    if engine == "auto":
        return available_engine()
    if engine == "fluidsynth":
        problem = _fluidsynth_problem()
        if problem:
            raise MusicflowError(f"engine 'fluidsynth' is not available ({problem}); install it with "
                                 f"{INSTALL_HINT}, or use engine 'simple'")
    return engine


def _check_rate(sample_rate: int) -> int:
    lo, hi = _SAMPLE_RATES
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or not (
            lo <= sample_rate <= hi):
        raise MusicflowError(f"sample_rate {sample_rate!r}: use a whole number of Hz from {lo} to {hi}")
    return int(sample_rate)


def _note_wave(pitch: int, n_on: int, sr: int) -> np.ndarray:
    """One note at unit gain: ``n_on`` samples held, then the release."""
    f = 440.0 * 2.0 ** ((pitch - 69) / 12.0)
    n_rel = max(1, round(_RELEASE * sr))
    t = np.arange(n_on + n_rel) / sr
    wave_ = np.zeros_like(t)
    for k, a in enumerate(_PARTIALS, start=1):
        if k * f < 0.45 * sr:  # partials above Nyquist would alias into audible junk
            wave_ += a * np.sin(2.0 * np.pi * k * f * t)
    t_on = t[:n_on]
    env = np.empty_like(t)
    env[:n_on] = (_SUSTAIN + (1.0 - _SUSTAIN) * np.exp(-t_on / _DECAY)) * np.exp(-t_on / _FADE)
    env[:n_on] *= np.minimum(1.0, (np.arange(n_on) + 1) / max(1, round(_ATTACK * sr)))
    env[n_on:] = env[n_on - 1] * np.linspace(1.0, 0.0, n_rel)  # ends at exactly 0: no click
    return wave_ * env / _PARTIALS.sum()


def _simple(pm: pretty_midi.PrettyMIDI, sr: int, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=np.float64)
    # Generated music repeats (pitch, length) pairs a lot; synthesising each pair once is the speed-up.
    cache: dict[tuple[int, int], np.ndarray] = {}
    for inst in pm.instruments:
        if inst.is_drum:
            continue
        for note in inst.notes:
            start = max(0, round(note.start * sr))
            n_on = max(1, round(note.end * sr) - start)
            key = (int(note.pitch), n_on)
            if key not in cache:
                cache[key] = _note_wave(key[0], n_on, sr)
            w = cache[key][: max(0, n - start)]
            out[start:start + len(w)] += (_NOTE_GAIN * note.velocity / 127.0) * w
    peak = float(np.abs(out).max(initial=0.0))
    if peak > PEAK:  # scale only when needed, so quiet music stays quiet
        out *= PEAK / peak
    return out.astype(np.float32)


def _fluidsynth(pm: pretty_midi.PrettyMIDI, sr: int, n: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = np.asarray(pm.fluidsynth(fs=sr), dtype=np.float64)  # default font: TimGM6mb
    out = np.zeros(n, dtype=np.float64)
    m = min(n, len(raw))
    out[:m] = raw[:m]
    if len(raw) > n:  # pretty_midi adds 1 s; fade where we cut so the cut is not a click
        fade = min(m, round(0.02 * sr))
        out[m - fade:m] *= np.linspace(1.0, 0.0, fade)
    peak = float(np.abs(out).max(initial=0.0))
    if peak > 0:  # pretty_midi's raw level differs between versions; make it consistent
        out *= PEAK / peak
    return out.astype(np.float32)


def render(
    midi: str | Path | pretty_midi.PrettyMIDI, sample_rate: int = 22050, engine: str = "auto"
) -> np.ndarray:
    """Render MIDI to float32 mono audio in [-1, 1] (see the module docstring for the engines).

    The audio lasts the MIDI's end time plus :data:`TAIL_SECONDS`; :func:`resolve_engine` says
    which engine ``engine`` means here. The simple engine is deterministic.

    >>> pm = pretty_midi.PrettyMIDI()
    >>> pm.instruments.append(pretty_midi.Instrument(0))
    >>> pm.instruments[0].notes.append(pretty_midi.Note(100, 69, 0.0, 1.0))
    >>> audio = render(pm, sample_rate=8000, engine="simple")
    >>> audio.dtype, audio.shape, bool(0 < abs(audio).max() <= 1)
    (dtype('float32'), (12000,), True)
    """
    sr = _check_rate(sample_rate)
    engine = resolve_engine(engine)
    pm = load_midi(midi)
    n = math.ceil((pm.get_end_time() + TAIL_SECONDS) * sr)
    return _fluidsynth(pm, sr, n) if engine == "fluidsynth" else _simple(pm, sr, n)


def write_wav(audio: np.ndarray, path: str | Path, sample_rate: int = 22050) -> Path:
    """Write mono float audio in [-1, 1] as a 16-bit PCM WAV file, atomically.

    Values outside [-1, 1] are clipped; NaN becomes silence.

    >>> import tempfile, os
    >>> f = write_wav(np.zeros(800, np.float32), os.path.join(tempfile.mkdtemp(), "a.wav"), 8000)
    >>> wave.open(str(f)).getparams()[:4]
    (1, 2, 8000, 800)
    """
    sr = _check_rate(sample_rate)
    a = np.asarray(audio)
    if a.ndim != 1:
        raise MusicflowError(f"{path}: audio of shape {a.shape} is not mono; give a 1-D array")
    pcm = np.round(np.clip(np.nan_to_num(a.astype(np.float64)), -1.0, 1.0) * 32767).astype("<i2")

    def write(tmp: str) -> None:
        with wave.open(tmp, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(sr)
            w.writeframes(pcm.tobytes())

    return atomic_write(path, write)


def render_to_wav(
    midi: str | Path | pretty_midi.PrettyMIDI,
    path: str | Path,
    sample_rate: int = 22050,
    engine: str = "auto",
) -> Path:
    """Render MIDI (see :func:`render`) and write it to ``path`` as a WAV file; return the path.

    >>> import tempfile, os
    >>> pm = pretty_midi.PrettyMIDI()
    >>> pm.instruments.append(pretty_midi.Instrument(0))
    >>> pm.instruments[0].notes.append(pretty_midi.Note(90, 60, 0.0, 0.5))
    >>> f = render_to_wav(pm, os.path.join(tempfile.mkdtemp(), "a.wav"), 8000, engine="simple")
    >>> wave.open(str(f)).getnframes()
    8000
    """
    return write_wav(render(midi, sample_rate, engine), path, sample_rate)


__all__ = ["ENGINES", "INSTALL_HINT", "PEAK", "TAIL_SECONDS", "available_engine", "default_soundfont",
           "load_midi", "render", "render_to_wav", "resolve_engine", "write_wav"]
