"""Composer and the composing commands, on a tiny checkpoint trained for a few steps."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pretty_midi
import pytest
import torch
from click.testing import CliRunner
from conftest import make_midi

from musicflow.cli import main
from musicflow.compose import DEFAULT_CANDIDATES, DEFAULT_GUIDANCE, Composer, draw_latents, parse_key
from musicflow.data.build import build_dataset
from musicflow.errors import MusicflowError
from musicflow.evaluate.metrics import note_starts
from musicflow.sampling import clean
from musicflow.training import TrainConfig, train

TINY = {"levels": 1, "depth": 2, "hidden": 8, "context_channels": 4, "cond_dim": 8, "embed_dim": 4}


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    from conftest import ABC_TWO_TUNES

    root = tmp_path_factory.mktemp("c")
    for g, base in (("low", 40), ("high", 70)):
        (root / g).mkdir()
        for i in range(4):
            notes = [(base + (b * 5 + i) % 9, b / 2, b / 2 + 0.5) for b in range(64)]
            make_midi(root / g / f"{i}.mid", notes)
    (root / "high" / "t.abc").write_text(ABC_TWO_TUNES)
    ds, _ = build_dataset(str(root), cache_dir=None, quiet=True, pitches=48)
    for p in ds.pieces:
        p["split"] = "train"
    path = ds.save(root / "d.npz")
    out = root / "tiny.pt"
    train("glow", path, out, TrainConfig(steps=200, batch_size=16, valid_every=200, valid_windows=4,
                                        warmup=5, lr=3e-3), TINY, quiet=True)
    return out


@pytest.fixture(scope="module")
def composer(tiny_ckpt):
    return Composer.load(tiny_ckpt)


def test_compose_returns_midi_of_the_asked_length(composer):
    pm = composer.compose(genre="low", bars=3, seed=1, tempo=120)
    assert isinstance(pm, pretty_midi.PrettyMIDI)
    assert pm.get_end_time() <= 3 * 4 * 0.5 + 1e-6


def test_same_seed_same_music_and_mix_matters(composer):
    a = composer.compose_result(genre="low", bars=2, seed=3)
    b = composer.compose_result(genre="low", bars=2, seed=3)
    assert (a.roll == b.roll).all()
    mix = composer.compose_result(genre={"low": 0.2, "high": 0.8}, bars=2, seed=3)
    assert mix.genre == {"low": 0.2, "high": 0.8}
    # A tiny model's binary samples may coincide; the decoded values under the mix must not.
    ctx = torch.zeros(1, 2, composer.spec.pitches, composer.context)
    z = a.latents[:1]
    vs = [composer.model.decode(z, composer.condition(composer.genre_weights(g)[1], ctx))
          for g in ("low", {"low": 0.2, "high": 0.8}, {"low": 0.5, "high": 0.5})]
    assert (vs[0] - vs[1]).abs().max() > 1e-3 and (vs[1] - vs[2]).abs().max() > 1e-4


def test_compose_rolls_batches_the_pieces_of_consecutive_seeds(composer):
    rolls = composer.compose_rolls(genre="high", n=3, bars=2, seed=5)
    assert rolls.shape == (3, 2, composer.spec.pitches, 2 * composer.spec.bar_steps())
    for i in range(3):
        assert (rolls[i] == composer.compose_result(genre="high", bars=2, seed=5 + i).roll).all()
    assert rolls.any()
    with pytest.raises(MusicflowError, match="n must be at least 1, got 0"):
        composer.compose_rolls(genre="high", n=0)


def test_bad_genres_and_weights(composer):
    with pytest.raises(MusicflowError, match="known: high, low"):
        composer.compose(genre="jazz")
    with pytest.raises(MusicflowError, match="zero or positive"):
        composer.compose(genre=["low:-1", "high"])


def test_key_names():
    assert parse_key("Eb") == 3 and parse_key("c# minor") == 1
    with pytest.raises(MusicflowError):
        parse_key("H")


def test_cli_and_api_give_identical_bytes(tiny_ckpt, composer, tmp_path):
    out = tmp_path / "cli.mid"
    r = CliRunner().invoke(main, ["compose", "--model", str(tiny_ckpt), "-g", "low:0.7", "-g", "high:0.3",
                                  "--bars", "2", "--seed", "7", "-o", str(out), "--save-latent"])
    assert r.exit_code == 0, r.output
    assert "seed 7" in r.output and out.with_suffix(".latent.pt").exists()
    api = tmp_path / "api.mid"
    composer.save(composer.compose(genre={"low": 0.7, "high": 0.3}, bars=2, seed=7), api)
    assert out.read_bytes() == api.read_bytes()
    from music21 import converter

    assert converter.parse(str(out)) is not None and pretty_midi.PrettyMIDI(str(out))
    again = tmp_path / "again.mid"
    r = CliRunner().invoke(main, ["decode", str(out.with_suffix(".latent.pt")), "-o", str(again),
                                  "--model", str(tiny_ckpt)])
    assert r.exit_code == 0, r.output
    assert again.read_bytes() == out.read_bytes()  # the saved latent re-decodes to the same piece
    r = CliRunner().invoke(main, ["decode", str(out), "--model", str(tiny_ckpt)])
    assert r.exit_code == 2 and "not a musicflow latent file" in r.output


def test_user_midi_commands(tiny_ckpt, tmp_path):
    src = make_midi(tmp_path / "in.mid", [(62 + (i % 5), i / 2, i / 2 + 0.5) for i in range(32)],
                    drums=[(36, 0, 1)])
    run = CliRunner().invoke
    m = ["--model", str(tiny_ckpt)]
    r = run(main, ["continue", str(src), "--bars", "2", "--seed", "1", "-o", str(tmp_path / "c.mid"), *m])
    assert r.exit_code == 0, r.output
    assert "1 drum notes" in r.output
    cont = pretty_midi.PrettyMIDI(str(tmp_path / "c.mid"))
    assert cont.get_end_time() > pretty_midi.PrettyMIDI(str(src)).get_end_time()
    r = run(main, ["variations", str(src), "-n", "2", "--amount", "0.5", "-o", str(tmp_path / "v"), *m])
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "v").glob("*.mid"))) == 2
    r = run(main, ["transfer", str(src), "--to", "high", "-o", str(tmp_path / "t.mid"), *m])
    assert r.exit_code == 0, r.output
    r = run(main, ["interpolate", str(src), str(tmp_path / "c.mid"), "--steps", "3",
                   "-o", str(tmp_path / "i"), *m])
    assert r.exit_code == 0 and len(list((tmp_path / "i").glob("*.mid"))) == 3
    r = run(main, ["score", str(src), "--per-window", *m])
    assert r.exit_code == 0 and "bits/dim" in r.output
    r = run(main, ["classify", str(src), *m])
    assert r.exit_code == 0
    probs = [float(line.split()[-1]) for line in r.output.splitlines() if line[:3] in ("low", "hig")]
    assert abs(sum(probs) - 1) < 1e-3
    r = run(main, ["genres", *m])
    assert r.output.split() == ["high", "low"]


def test_transfer_to_the_own_genre_is_exact_and_to_another_keeps_the_length(composer, tmp_path):
    src = make_midi(tmp_path / "in.mid", [(62 + (i % 5), i / 2, i / 2 + 0.5) for i in range(24)])
    roll = composer.read(src).roll
    same = composer.transfer(src, to="low", source="low")
    assert np.array_equal(same.roll, roll)
    other = composer.transfer(src, to="high", source="low")
    assert other.roll.shape == roll.shape
    assert np.array_equal(clean(other.roll, composer.spec), other.roll)  # whole notes only


@pytest.fixture(scope="module")
def shipped_and_tune():
    """The shipped Glow and the first 8 bars of the corpus's first celtic test tune (54 notes)."""
    from musicflow.data.dataset import Dataset
    from musicflow.paths import default_dataset
    from musicflow.roll import roll_to_midi

    c, ds = Composer.load("glow"), Dataset.load(default_dataset())
    i = ds.indices("test", "celtic")[0]
    return c, roll_to_midi(ds.roll(i)[..., :8 * 16], c.spec, tempo=100)


def test_transfer_keeps_a_real_piece_audible_in_every_genre(shipped_and_tune):
    """A celtic tune recast in each genre keeps at least a quarter as many notes, and on average
    most of its onset times (decoding its latents from nothing instead left 1 to 5 notes of 54 in
    five genres)."""
    c, pm = shipped_and_tune
    onsets = note_starts(c.read(pm).roll).any(0)
    kept = []
    for g in c.genres:
        starts = note_starts(c.transfer(pm, to=g, source="celtic").roll)
        assert starts.sum() >= onsets.sum() / 4, (g, starts.sum())
        kept.append((starts.any(0) & onsets).sum() / onsets.sum())
    assert np.mean(kept) >= 0.5, kept


def test_variations_of_a_real_piece_move_away_with_the_amount(shipped_and_tune):
    """Small amounts keep most of the tune's notes (pitch and time), larger ones fewer, and the
    texture stays as full as the tune's (decoded from nothing, amount 0.1 kept 12% of the notes
    and about 20 of 54)."""
    c, pm = shipped_and_tune
    notes = note_starts(c.read(pm).roll) > 0
    kept = {}
    for amount in (0.1, 1.0):
        for r in c.variations(pm, n=2, amount=amount, genre="celtic", seed=0):
            starts = note_starts(r.roll) > 0
            assert starts.sum() >= notes.sum() / 2
            kept[amount] = kept.get(amount, 0) + (starts & notes).sum() / notes.sum() / 2
    assert kept[0.1] >= 0.4 and kept[1.0] < kept[0.1] / 2, kept


@pytest.mark.parametrize("args,needle", [
    (["compose", "-g", "jazz"], "unknown genre 'jazz'"),
    (["compose", "-g", "low:-2"], "zero or positive"),
    (["classify", "BROKEN"], "not a readable MIDI"),
    (["compose", "--key", "H"], "key 'H': use a note name"),
])
def test_user_errors_are_one_line_exit_2(tiny_ckpt, tmp_path, args, needle):
    broken = tmp_path / "broken.mid"
    broken.write_bytes(b"MThd nonsense")
    args = [str(broken) if a == "BROKEN" else a for a in args] + ["--model", str(tiny_ckpt)]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2 and needle in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_missing_checkpoint_subprocess(tmp_path):
    p = subprocess.run([sys.executable, "-m", "musicflow", "compose", "--model", str(tmp_path / "no.pt")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "no such checkpoint" in p.stderr and "Traceback" not in p.stderr


def test_compose_end_to_end_subprocess(tiny_ckpt, tmp_path):
    out = tmp_path / "x.mid"
    p = subprocess.run([sys.executable, "-m", "musicflow", "compose", "--model", str(tiny_ckpt), "-g", "high",
                        "--bars", "2", "--seed", "5", "-o", str(out)], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert out.exists() and "seed 5" in p.stdout


def test_daw_example_writes_clips(tiny_ckpt, composer, tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "daw_clips.py"
    spec = importlib.util.spec_from_file_location("daw_clips", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    paths = mod.compose_clips(tmp_path / "clips", ["low:0.5", "high:0.5"], bars=1, count=2, seed=4,
                              composer=composer)
    assert [p.name for p in paths] == ["low-high-1bars-seed4.mid", "low-high-1bars-seed5.mid"]
    tempos = [pretty_midi.PrettyMIDI(str(p)).get_tempo_changes()[1][0] for p in paths]
    assert all(abs(t - 100) < 1e-3 for t in tempos)  # real MIDI files, written with the asked tempo
    cmd = [sys.executable, str(path), str(tmp_path / "cli"), "--genre", "low", "--count", "1",
           "--bars", "1", "--model", str(tiny_ckpt)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert len(list((tmp_path / "cli").glob("*.mid"))) == 1


def test_png_and_wav_beside_the_midi(tiny_ckpt, tmp_path):
    import wave

    out = tmp_path / "p.mid"
    r = CliRunner().invoke(main, ["compose", "--model", str(tiny_ckpt), "-g", "high", "--bars", "2",
                                  "--seed", "2", "-t", "1.0", "-o", str(out),
                                  "--png", str(tmp_path / "p.png"), "--wav", str(tmp_path / "p.wav")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "p.png").stat().st_size > 1000
    with wave.open(str(tmp_path / "p.wav")) as w:
        assert w.getframerate() == 22050 and w.getnframes() > 0
    r = CliRunner().invoke(main, ["render", str(out), "-o", str(tmp_path / "r.wav"), "--engine", "simple"])
    assert r.exit_code == 0 and "(simple)" in r.output


def test_decoding_modes(tiny_ckpt, composer):
    from musicflow.compose import DEFAULT_TEMPERATURE

    w = {"low": 0.5, "high": 0.5}
    assert composer.threshold(w) == 0.5  # exact: the dequantization cell boundary
    cal = Composer.load(tiny_ckpt, decoding="calibrated")
    cal.ck.info["thresholds"] = {"low": 0.2, "high": 0.4}
    assert cal.threshold(w) == pytest.approx(0.3)
    assert Composer.load(tiny_ckpt, decoding=0.3).threshold(w) == 0.3
    low = Composer.load(tiny_ckpt, decoding=0.05).compose_result("low", bars=2, seed=2).roll.sum()
    high = Composer.load(tiny_ckpt, decoding=0.95).compose_result("low", bars=2, seed=2).roll.sum()
    assert low >= high
    with pytest.raises(MusicflowError, match="decoding"):
        Composer.load(tiny_ckpt, decoding="loud")
    compose_default = next(p for p in main.commands["compose"].params if p.name == "temperature").default
    assert compose_default == DEFAULT_TEMPERATURE


# -- genre guidance (candidate pieces resampled by the model's own genre posterior) ----------------


def test_resampling_follows_the_weights():
    """One draw (the kept particle) picks two particles whose weights differ by a factor 2 in the
    ratio 1:2; systematic resampling gives each particle its expected number of copies rounded
    down or up, and never a particle of weight zero."""
    from musicflow.sampling import resample

    u = torch.rand(30000, generator=torch.Generator().manual_seed(0))
    logw = torch.tensor([[0.0, float(np.log(2))]]).expand(30000, -1)
    assert abs(resample(logw, u, 1).float().mean().item() - 2 / 3) < 0.01
    p = torch.tensor([[0.05, 0.0, 0.5, 0.2, 0.25]])
    for ui in torch.rand(200, generator=torch.Generator().manual_seed(1)):
        anc = resample(p.log(), ui[None], 8)[0]
        counts = torch.bincount(anc, minlength=5).float()
        assert torch.all((counts - 8 * p[0]).abs() < 1) and counts[1] == 0


def _stub(evidence: float, held_pitch: bool):
    """A model of 2-pitch windows of 2 steps: pitch 0 sounds where the latent's first value is
    positive (pitch 1 always, with ``held_pitch``); a sounding pitch 0 adds ``evidence`` nats to the
    first genre's log-likelihood."""
    from types import SimpleNamespace

    class Stub:
        config = SimpleNamespace(context_steps=2)
        native_guidance = False

        def decode(self, z, cond):
            other = torch.full((len(z),), float(held_pitch))
            return torch.stack([(z[:, 0] > 0).float(), other], 1)[:, None, :, None].expand(-1, 2, 2, 2)

        def log_prob(self, x, cond, generator=None, shared_noise=False):
            return evidence * x[:, 0, 0, 0] * cond.genre[:, 0]

    return Stub()


def test_resampling_keeps_the_particles_typical_of_the_genre():
    """Guidance as sequential Monte Carlo on a stub model whose windows are all the same and whose
    genre evidence favours particles by their latent's sign: strong guidance keeps only
    positive-latent histories, guidance 1 (with particles) keeps both kinds."""
    from types import SimpleNamespace

    import musicflow.sampling as dec

    spec = SimpleNamespace(pitches=2)

    stub = _stub(0.1, held_pitch=True)  # weak evidence: the piece stays far from certain

    z = torch.randn(40, 3, 8, 1, generator=torch.Generator().manual_seed(2))
    z[:, :, 0] = z[:, :, 0].abs()  # every window has a positive candidate
    u = torch.rand(40, 3, generator=torch.Generator().manual_seed(3))
    genre = torch.tensor([[1.0, 0.0]])
    for guidance, lo, hi in ((1e3, 1.0, 1.0), (1.0, 0.3, 0.8)):
        rolls, picked = dec.generate(stub, z, genre, spec, guidance=guidance, choice=u, return_latents=True)
        assert rolls.shape == (40, 2, 2, 6)
        share = float((picked[..., 0] > 0).float().mean())
        assert lo <= share <= hi, (guidance, share)
        assert np.array_equal(rolls[:, 0, 0, ::2], (picked[..., 0] > 0).float().numpy())


def test_guidance_stops_pressing_once_the_piece_reads_as_its_genre():
    """The weights follow the genre posterior of the whole piece: on a stub model where one
    sounding window makes the asked genre certain, strong guidance keeps a sounding first window
    in every piece and then leaves the later windows as the model draws them (about half sound),
    where weighting each window on its own would make every window sound."""
    from types import SimpleNamespace

    import musicflow.sampling as dec

    stub = _stub(60.0, held_pitch=True)

    z = torch.randn(60, 3, 8, 1, generator=torch.Generator().manual_seed(4))
    z[:, 0, 0] = z[:, 0, 0].abs()
    u = torch.rand(60, 3, generator=torch.Generator().manual_seed(5))
    _, picked = dec.generate(stub, z, torch.tensor([[1.0, 0.0]]), SimpleNamespace(pitches=2),
                             guidance=1e3, choice=u, return_latents=True)
    assert bool((picked[:, 0, 0] > 0).all())
    assert 0.3 <= float((picked[:, 1:, 0] > 0).float().mean()) <= 0.7


def test_pieces_composed_from_nothing_start_with_a_note():
    """Candidates whose first window is silent get no weight when a piece starts from nothing (real
    pieces start on a note); after a prefix, and when every candidate is silent, nothing changes."""
    from types import SimpleNamespace

    import musicflow.sampling as dec

    stub = _stub(0.0, held_pitch=False)

    z = torch.randn(200, 2, 4, 1, generator=torch.Generator().manual_seed(6))
    u = torch.rand(200, 2, generator=torch.Generator().manual_seed(7))
    genre, spec = torch.tensor([[1.0, 0.0]]), SimpleNamespace(pitches=2)
    _, picked = dec.generate(stub, z, genre, spec, guidance=1.0, choice=u, return_latents=True)
    first = z[:, 0, :, 0] > 0
    assert bool((picked[first.any(1), 0, 0] > 0).all())  # a sounding candidate existed: one is kept
    assert 0.3 < float((picked[:, 1, 0] > 0).float().mean()) < 0.7  # later windows as drawn
    prefix = np.ones((200, 2, 2, 2), np.float32)
    _, after = dec.generate(stub, z, genre, spec, guidance=1.0, choice=u, prefix=prefix,
                            return_latents=True)
    assert 0.3 < float((after[:, 0, 0] > 0).float().mean()) < 0.7
    silent = z.clone()
    silent[:, 0] = -silent[:, 0].abs()
    rolls = dec.generate(stub, silent, genre, spec, guidance=1.0, choice=u)
    assert rolls[:, :, :, :2].sum() == 0  # no sounding candidate: the piece keeps a silent start


def test_plain_sampling_is_guidance_one(composer):
    assert composer.sampling() == (DEFAULT_GUIDANCE, DEFAULT_CANDIDATES)
    assert composer.sampling(1.0, 8) == (1.0, 1)
    r = composer.compose_result(genre="low", bars=2, seed=4, guidance=1)
    want = draw_latents(len(r.latents), 4, 1.0, composer.model.config.dim)[0]
    assert np.array_equal(r.latents.numpy(), want.numpy())


def test_guided_piece_is_made_of_its_candidates_and_decodes_back(composer):
    r = composer.compose_result(genre="high", bars=2, seed=2, candidates=4)
    z, _ = draw_latents(len(r.latents), 2, 1.0, composer.model.config.dim, 4)
    for i, picked in enumerate(r.latents):
        assert any(torch.equal(picked, c) for c in z[i])
    assert np.array_equal(composer.decode_latents(r.latents, "high").roll, r.roll)


def test_strong_guidance_keeps_the_candidate_most_typical_of_the_genre(composer):
    """With guidance 1e6 the first window (no context yet) is the candidate whose binary window
    the model finds most likely under the asked genre relative to the average genre, among the
    candidates that sound (a piece from nothing starts with a note)."""
    from musicflow.flows.base import Condition
    from musicflow.sampling import clean_continuation, genre_log_ratio

    k = 6
    r = composer.compose_result(genre="low", bars=1, seed=9, guidance=1e6, candidates=k)
    z, _ = draw_latents(len(r.latents), 9, 1.0, composer.model.config.dim, k)
    vec = composer.genre_weights("low")[1].expand(k, -1)
    ctx = torch.zeros(k, 2, composer.spec.pitches, composer.context)
    with torch.no_grad():
        chunks = clean_continuation((composer.model.decode(z[0], Condition(vec, ctx)) > 0.5).numpy(), None)
    ratio = genre_log_ratio(composer.model, torch.from_numpy(chunks), vec, ctx)
    assert len(set(ratio.tolist())) > 1
    silent = torch.from_numpy(~chunks.reshape(k, -1).any(1))
    assert not silent.all()
    chosen = [j for j in range(k) if torch.equal(r.latents[0], z[0, j])]
    assert len(chosen) == 1  # candidates whose windows are identical score alike: either is right
    assert ratio[chosen[0]] >= ratio.masked_fill(silent, float("-inf")).max() - 1e-5


def test_duplicate_candidates_are_scored_once_with_the_same_scores(composer, monkeypatch):
    """Two pieces of three candidates each, with repeated chunks: the deduplicated scoring gives
    every candidate the scores of scoring all six, and scores only the distinct (genre, context,
    chunk) triples (a chunk shared across pieces is scored per piece: contexts differ)."""
    import musicflow.sampling as dec

    gen = torch.Generator().manual_seed(3)
    a, b = (torch.rand(1, 2, composer.spec.pitches, composer.model.config.steps, generator=gen) > 0.8
            for _ in range(2))
    chunk = torch.cat([a, b, a, a, a, b]).float().numpy()
    vec = torch.eye(2)[[0, 0, 0, 1, 1, 1]]
    ctx = (torch.rand(2, 2, composer.spec.pitches, composer.context, generator=gen) > 0.9).float()
    ctx = ctx.repeat_interleave(3, 0)
    seen = []
    real = dec.genre_log_probs
    monkeypatch.setattr(dec, "genre_log_probs",
                        lambda m, x, g, c, o=None: seen.append(len(x)) or real(m, x, g, c, o))
    got = dec._unique_log_probs(composer.model, chunk, vec, ctx)
    want = real(composer.model, torch.from_numpy(chunk), vec, ctx)
    assert got.shape == (6, 3) and seen == [4] and torch.allclose(got, want, atol=1e-4)
    assert torch.equal(got[0], got[2]) and torch.equal(got[3], got[4]) and not torch.equal(got[0], got[3])


def test_guidance_makes_pieces_more_typical_of_their_genre(composer):
    """Mean per-window genre log-ratio (the model's own evidence for the asked genre) of 6 pieces
    per genre, guided against plain, same seeds."""
    from musicflow.sampling import genre_log_ratio

    def evidence(guidance):
        total = []
        for g in ("low", "high"):
            rolls = composer.compose_rolls(g, n=6, bars=2, seed=0, guidance=guidance, candidates=8)
            for roll in rolls:
                xs, ctx = composer.windows(roll)
                vec = composer.genre_weights(g)[1].expand(len(xs), -1)
                total.append(genre_log_ratio(composer.model, xs, vec, ctx).mean().item())
        return float(np.mean(total))

    assert evidence(4.0) > evidence(1.0) + 0.1


def test_guidance_arguments_are_checked(composer, tiny_ckpt):
    with pytest.raises(MusicflowError, match=r"guidance must be a number >= 0 \(1 is plain sampling\)"):
        composer.compose(genre="low", bars=1, guidance=-1)
    with pytest.raises(MusicflowError, match="candidates must be at least 2 under guidance, got 1"):
        composer.compose(genre="low", bars=1, guidance=2, candidates=1)
    r = CliRunner().invoke(main, ["compose", "--model", str(tiny_ckpt), "--guidance", "nan", "-o", "x.mid"])
    assert r.exit_code != 0 and "Error: guidance must be a number >= 0" in r.output and "nan" in r.output
    assert "Traceback" not in r.output


def test_cli_compose_and_continue_take_guidance(tiny_ckpt, composer, tmp_path):
    out = tmp_path / "g.mid"
    r = CliRunner().invoke(main, ["compose", "--model", str(tiny_ckpt), "-g", "low", "--bars", "1",
                                  "--seed", "3", "--guidance", "2", "--candidates", "4", "-o", str(out)])
    assert r.exit_code == 0, r.output
    api = tmp_path / "api.mid"
    composer.save(composer.compose(genre="low", bars=1, seed=3, guidance=2, candidates=4), api)
    assert out.read_bytes() == api.read_bytes()
    cont = tmp_path / "c.mid"
    r = CliRunner().invoke(main, ["continue", str(out), "--model", str(tiny_ckpt), "-g", "low", "--bars", "1",
                                  "--seed", "1", "--guidance", "1", "-o", str(cont)])
    assert r.exit_code == 0, r.output
    api = tmp_path / "api-c.mid"
    composer.save(composer.continue_(str(out), bars=1, genre="low", seed=1, guidance=1).midi, api)
    assert cont.read_bytes() == api.read_bytes()


def test_the_glow_mixes_by_embedding_only(composer):
    a = composer.compose_result({"high": 0.5, "low": 0.5}, seed=3, bars=1, guidance=1.0)
    b = composer.compose_result({"high": 0.5, "low": 0.5}, seed=3, bars=1, guidance=1.0, mix="embed")
    assert np.array_equal(a.roll, b.roll)
    with pytest.raises(MusicflowError, match="mixes genres by embed"):
        composer.compose_result("low", seed=3, bars=1, mix="product")
