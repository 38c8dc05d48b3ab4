"""Pictures and sound: piano-roll PNGs (musicflow.media.plot) and WAV rendering (musicflow.media.audio)."""

from __future__ import annotations

import math
import subprocess
import sys
import time
import wave

import numpy as np
import pretty_midi
import pytest
from conftest import make_midi

from musicflow.errors import MusicflowError
from musicflow.media import audio
from musicflow.media.audio import PEAK, TAIL_SECONDS, render, render_to_wav, resolve_engine, write_wav
from musicflow.media.plot import plot_batch, plot_midi, plot_roll, save_png
from musicflow.roll import PianoRollSpec

imread = pytest.importorskip("matplotlib.image").imread  # musicflow.media.plot itself imports it lazily

SR = 16000
# Two bars at 120 bpm (1 s each): silence for the first beat, then C4 E4 G4 and a held C5.
NOTES = [(60, 1, 2), (64, 2, 3), (67, 3, 4), (72, 4, 8)]
END_S = 4.0


def read_wav(path) -> tuple:
    with wave.open(str(path)) as w:
        params = w.getparams()
        pcm = np.frombuffer(w.readframes(params.nframes), dtype="<i2")
    return params, pcm


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.asarray(x, np.float64) ** 2))) if len(x) else 0.0


def one_note(pitch: int = 69, velocity: int = 100, start: float = 0.0, end: float = 1.0):
    pm = pretty_midi.PrettyMIDI()
    pm.instruments.append(pretty_midi.Instrument(0))
    pm.instruments[0].notes.append(pretty_midi.Note(velocity, pitch, start, end))
    return pm


@pytest.fixture
def tune(tmp_path):
    return make_midi(tmp_path / "tune.mid", NOTES, tempo=120)


# -- plots ----------------------------------------------------------------------------------------

def test_plot_roll_draws_bar_lines_pitch_names_and_bar_numbers():
    spec = PianoRollSpec()  # C2..B5
    roll = np.zeros((2, spec.pitches, 64), np.float32)
    roll[:, 60 - spec.low, 0] = 1
    ax = plot_roll(roll, spec, title="four bars")
    assert sorted(float(line.get_xdata()[0]) for line in ax.lines) == [16.0, 32.0, 48.0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["C2", "C3", "C4", "C5"]
    assert [float(y) for y in ax.get_yticks()] == [36.0, 48.0, 60.0, 72.0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "3", "4"]
    assert ax.get_title() == "four bars"
    ax3 = plot_roll(roll, spec, bar_steps=12)  # 3/4
    assert sorted(float(line.get_xdata()[0]) for line in ax3.lines) == [12.0, 24.0, 36.0, 48.0, 60.0]


def test_plot_roll_marks_onsets_darker_than_sustain():
    spec = PianoRollSpec(low=60, pitches=12)
    roll = np.zeros((2, 12, 8), np.float32)
    roll[:, 0, 0] = 1
    roll[1, 0, 1:4] = 1
    img = np.asarray(plot_roll(roll, spec).images[0].get_array())
    onset_px, sustain_px, empty_px = img[0, 0].sum(), img[0, 1].sum(), img[0, -1].sum()
    assert onset_px < sustain_px < empty_px
    img_plain = np.asarray(plot_roll(roll, spec, onsets=False).images[0].get_array())
    assert img_plain[0, 0].sum() == pytest.approx(sustain_px)


def test_plot_midi_png_is_an_image_of_the_right_shape(tune, tmp_path):
    ax = plot_midi(tune)
    assert ax.get_title() == "tune.mid"
    lo, hi = ax.get_ylim()
    assert lo < 60 < 72 < hi and lo >= 59 - 0.5  # range chosen from the notes, starting at a C
    assert "C4" in [t.get_text() for t in ax.get_yticklabels()]
    assert [float(line.get_xdata()[0]) for line in ax.lines] == [16.0]  # 2 bars of 4/4
    out = save_png(ax, tmp_path / "plots" / "tune.png")
    assert out.stat().st_size > 1000
    img = imread(out)
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    assert 150 < img.shape[0] < img.shape[1]  # wider than tall, not a thumbnail
    assert img[..., :3].std() > 0.05  # something was drawn
    assert [p.name for p in out.parent.iterdir()] == ["tune.png"]  # no temporary left behind


def test_plot_midi_takes_pretty_midi_and_a_spec():
    spec = PianoRollSpec(low=36, pitches=48)
    ax = plot_midi(one_note(60), spec=spec, title="x")
    assert [float(y) for y in ax.get_ylim()] == [35.5, 83.5]
    assert ax.get_title() == "x"


def test_plot_batch_grid_and_png(tmp_path):
    spec = PianoRollSpec(low=48, pitches=24)
    rolls = np.random.default_rng(0).random((5, 2, 24, 32)).astype(np.float32)
    fig = plot_batch(rolls, spec, titles=[f"sample {i}" for i in range(5)], cols=2)
    shown = [a for a in fig.axes if a.get_visible()]
    assert len(fig.axes) == 6 and len(shown) == 5
    assert [a.get_title() for a in shown] == [f"sample {i}" for i in range(5)]
    img = imread(save_png(fig, tmp_path / "batch.png"))
    assert img.shape[0] > img.shape[1] / 2  # three rows of two: not a single strip
    fig_list = plot_batch(list(rolls[:2]), spec)
    assert len(fig_list.axes) == 2


def test_plot_errors_are_musicflow_errors(tmp_path):
    spec = PianoRollSpec()
    with pytest.raises(MusicflowError, match="does not match 2 x 48"):
        plot_roll(np.zeros((2, 40, 16)), spec)
    with pytest.raises(MusicflowError, match="titles"):
        plot_batch(np.zeros((2, 2, 48, 16)), spec, titles=["one"])
    with pytest.raises(MusicflowError, match="missing.mid: no such file"):
        plot_midi(tmp_path / "missing.mid")


def test_import_musicflow_does_not_need_matplotlib():
    code = ("import sys, musicflow, musicflow.media.audio, musicflow.media.plot; "
            "assert 'matplotlib' not in sys.modules, 'matplotlib imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# -- audio ----------------------------------------------------------------------------------------

def test_wav_format_duration_and_where_it_sounds(tune, tmp_path):
    out = render_to_wav(tune, tmp_path / "wav" / "tune.wav", sample_rate=SR, engine="simple")
    params, pcm = read_wav(out)
    assert (params.nchannels, params.sampwidth, params.framerate) == (1, 2, SR)
    assert params.nframes == math.ceil((END_S + TAIL_SECONDS) * SR)
    assert END_S < params.nframes / SR <= END_S + 1.0
    a = pcm / 32767.0
    assert rms(a[: int(0.45 * SR)]) < 1e-4  # the first beat is a rest
    for t in (0.6, 1.2, 1.7, 3.0, 3.9):  # each note, and late in the held one
        assert rms(a[int(t * SR): int((t + 0.05) * SR)]) > 0.01, t
    assert rms(a[-int(0.1 * SR):]) < 1e-4  # the release has ended inside the tail
    assert np.abs(pcm).max() <= PEAK * 32767 + 1  # headroom: not clipped
    assert [p.name for p in out.parent.iterdir()] == ["tune.wav"]


def test_simple_engine_pitch_velocity_and_determinism():
    a = render(one_note(69, 100), sample_rate=SR, engine="simple")
    spectrum = np.abs(np.fft.rfft(a[: SR // 2]))
    assert np.fft.rfftfreq(SR // 2, 1 / SR)[spectrum.argmax()] == pytest.approx(440, abs=4)
    quiet = render(one_note(69, 30), sample_rate=SR, engine="simple")
    assert rms(quiet) < 0.5 * rms(a)
    assert np.array_equal(a, render(one_note(69, 100), sample_rate=SR, engine="simple"))
    assert a.dtype == np.float32 and a.ndim == 1


def test_dense_music_is_normalised_not_clipped_and_fast():
    pm = pretty_midi.PrettyMIDI(initial_tempo=100)
    inst = pretty_midi.Instrument(0)
    for b in range(128):  # 32 bars of 4/4: 22-note chords on every beat
        for p in range(36, 100, 3):
            inst.notes.append(pretty_midi.Note(127, p, b * 0.6, (b + 1) * 0.6))
    pm.instruments.append(inst)
    t = time.perf_counter()
    a = render(pm, sample_rate=22050, engine="simple")
    assert time.perf_counter() - t < 3.0  # ~0.2 s here; a per-sample Python loop would take minutes
    assert np.abs(a).max() == pytest.approx(PEAK, rel=1e-4)


def test_write_wav_clips_and_wants_mono(tmp_path):
    _, pcm = read_wav(write_wav(np.array([0.0, 2.0, -2.0, np.nan], np.float32), tmp_path / "a.wav", SR))
    assert pcm.tolist() == [0, 32767, -32767, 0]
    with pytest.raises(MusicflowError, match="not mono"):
        write_wav(np.zeros((2, 100)), tmp_path / "b.wav", SR)
    assert not (tmp_path / "b.wav").exists()


def test_audio_errors_are_musicflow_errors(tmp_path):
    with pytest.raises(MusicflowError, match="missing.mid: no such file"):
        render_to_wav(tmp_path / "missing.mid", tmp_path / "out.wav")
    assert not (tmp_path / "out.wav").exists()
    (tmp_path / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")
    with pytest.raises(MusicflowError, match="broken.mid: not a readable MIDI file"):
        render(tmp_path / "broken.mid")
    with pytest.raises(MusicflowError, match="engine 'timidity'"):
        render(one_note(), engine="timidity")
    with pytest.raises(MusicflowError, match="sample_rate 100"):
        render(one_note(), sample_rate=100, engine="simple")


def test_fluidsynth_unavailable_says_how_to_install(monkeypatch):
    monkeypatch.setattr(audio, "_fluidsynth_problem", lambda: "ImportError: No module named 'fluidsynth'")
    with pytest.raises(MusicflowError, match=r'pip install "musicflow\[audio\]".*libfluidsynth3'):
        render(one_note(), engine="fluidsynth")
    assert audio.available_engine() == "simple"
    assert resolve_engine("auto") == "simple"
    assert len(render(one_note(), sample_rate=SR)) == math.ceil((1.0 + TAIL_SECONDS) * SR)


def test_fluidsynth_output_is_fitted_to_the_documented_length(monkeypatch):
    """The glue around pretty_midi's fluidsynth(), with the synthesiser faked out."""
    monkeypatch.setattr(audio, "_fluidsynth_problem", lambda: None)
    calls = []

    def fake(self, fs=44100, **kw):
        calls.append(fs)
        return np.full(int((self.get_end_time() + 1.0) * fs), 0.01)  # pretty_midi adds 1 s

    monkeypatch.setattr(pretty_midi.PrettyMIDI, "fluidsynth", fake)
    a = render(one_note(end=2.0), sample_rate=SR, engine="auto")
    assert calls == [SR]
    assert len(a) == math.ceil((2.0 + TAIL_SECONDS) * SR)
    assert np.abs(a).max() == pytest.approx(PEAK)
    assert abs(a[-1]) < 1e-3 < abs(a[-int(0.05 * SR)])  # faded where the extra second was cut


@pytest.mark.skipif(audio._fluidsynth_problem() is not None, reason="pyfluidsynth/FluidSynth not installed")
def test_real_fluidsynth_renders(tune, tmp_path):
    params, pcm = read_wav(render_to_wav(tune, tmp_path / "fs.wav", SR, engine="fluidsynth"))
    assert params.nframes == math.ceil((END_S + TAIL_SECONDS) * SR)
    assert rms(pcm[SR: 2 * SR] / 32767.0) > 0.01
