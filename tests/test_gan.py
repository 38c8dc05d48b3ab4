"""The GAN baseline: its two players learn, its windows are binary and clean, its checkpoint loads
with no flags, and whatever needs a likelihood or an encoder refuses it in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import make_midi

from musicflow.baselines.gan import GAN, GANConfig, clean
from musicflow.checkpoint import load_checkpoint, save_checkpoint
from musicflow.cli import main
from musicflow.compose import Composer
from musicflow.errors import MusicflowError
from musicflow.flows.base import Condition
from musicflow.roll import PianoRollSpec
from musicflow.sampling import clean_continuation

TINY = dict(pitches=8, steps=4, n_genres=2, noise=4, hidden=8, critic_hidden=8, bottleneck=16,
            context_steps=8, context_channels=4, cond_dim=8, embed_dim=4)


def _gan(**over) -> GAN:
    torch.manual_seed(0)
    return GAN(GANConfig(**{**TINY, **over}))


def _batch(n: int = 16):
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(n, 2, 8, 4, generator=g) < 0.3).float()
    x = torch.from_numpy(clean_continuation(x.numpy().astype(bool), None))
    ctx = torch.from_numpy(clean_continuation((torch.rand(n, 2, 8, 8, generator=g) < 0.3).numpy(), None))
    return x, Condition(torch.eye(2)[torch.arange(n) % 2], ctx)


def _losses(gan: GAN, x, cond) -> tuple[float, float]:
    gan.loss(x, cond, generator=torch.Generator().manual_seed(0))
    return gan.last_losses


@pytest.mark.parametrize("objective", ["wgan-gp", "hinge"])
@pytest.mark.parametrize("player", ["critic", "generator"])
def test_each_player_lowers_its_own_loss_against_a_fixed_other(player, objective):
    gan = _gan(objective=objective)
    x, cond = _batch()
    critic = set(map(id, gan.critic.parameters()))
    params = [p for p in gan.parameters() if (id(p) in critic) == (player == "critic")]
    opt = torch.optim.Adam(params, lr=3e-3)
    which = 0 if player == "critic" else 1
    before = _losses(gan, x, cond)[which]
    for _ in range(25):
        loss = gan.loss(x, cond, generator=torch.Generator().manual_seed(0)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = _losses(gan, x, cond)[which]
    assert after < before - 0.01, (before, after)


def test_each_loss_reaches_its_own_player_only():
    gan = _gan()
    x, cond = _batch()
    critic = list(gan.critic.parameters())
    ids = set(map(id, critic))
    generator = [p for p in gan.parameters() if id(p) not in ids]
    loss_d, loss_g = gan.losses(x, cond, generator=torch.Generator().manual_seed(0))
    for loss, own, other in ((loss_d, critic, generator), (loss_g, generator, critic)):
        grads = torch.autograd.grad(loss.mean(), own + other, retain_graph=True, allow_unused=True)
        mine, theirs = grads[:len(own)], grads[len(own):]
        assert any(g is not None and g.abs().sum() > 0 for g in mine)
        assert all(g is None or g.abs().sum() == 0 for g in theirs)
    assert all(p.requires_grad for p in critic)  # restored after the frozen block


def test_joint_training_stays_finite_and_the_critic_learns():
    gan = _gan()
    x, cond = _batch(32)
    opt = torch.optim.Adam(gan.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(0)
    hist = []
    for _ in range(40):
        loss = gan.loss(x, cond, generator=gen).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        hist.append(gan.last_losses)
    hist = np.array(hist)
    assert np.isfinite(hist).all()
    assert hist[-5:, 0].mean() < hist[:5, 0].mean()  # the critic learns to tell them apart


def test_mode_seeking_moves_windows_of_different_latents_apart():
    def spread(gan, cond) -> float:
        z = torch.randn(2, 16, gan.config.dim, generator=torch.Generator().manual_seed(5))
        vec, pmap = gan.context_encoder(cond.context, 16)
        held = gan._held(cond, None, vec)
        w1, w2 = (gan._window(zi, gan._condition(cond, vec), pmap, held) for zi in z)
        return float((w1 - w2).abs().mean().detach())

    x, cond = _batch()
    alone = {}  # the generator's windows after 25 steps against a fixed critic
    for weight in (0.0, 1.0):
        gan = _gan(mode_seeking=weight)
        ids = set(map(id, gan.critic.parameters()))
        opt = torch.optim.Adam([p for p in gan.parameters() if id(p) not in ids], lr=3e-3)
        for _ in range(25):
            loss = gan.loss(x, cond, generator=torch.Generator().manual_seed(0)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        alone[weight] = spread(gan, cond)
    assert alone[1.0] > 1.5 * alone[0.0], alone


def test_clean_is_the_composers_rule_and_passes_gradients():
    g = torch.Generator().manual_seed(3)
    w = (torch.rand(64, 2, 8, 4, generator=g) < 0.5).float()
    held = (torch.rand(64, 8, generator=g) < 0.5).float()
    want = clean_continuation(w.numpy().astype(bool), held.numpy().astype(bool))
    assert np.array_equal(clean(w, held).numpy(), want)
    probs = torch.full((1, 2, 8, 4), 0.7, requires_grad=True)
    st = (probs > 0.5).float() + probs - probs.detach()
    clean(st, torch.zeros(1, 8)).sum().backward()
    assert probs.grad.abs().sum() > 0


@pytest.mark.parametrize("binary", ["soft", "stochastic", "deterministic"])
def test_windows_are_binary_clean_and_a_function_of_the_latent(binary):
    gan = _gan(binary=binary).eval()
    _, cond = _batch(6)
    assert gan.config.dim == 4 + (2 * 8 * 4 if binary == "stochastic" else 0)
    z = torch.randn(6, gan.config.dim, generator=torch.Generator().manual_seed(0))
    # Start the generator denser than the corpus so some cells sound.
    with torch.no_grad():
        gan.cell_bias.fill_(0.5)
    w = gan.decode(z, cond)
    assert w.shape == (6, 2, 8, 4) and set(w.unique().tolist()) <= {0.0, 1.0} and w.sum() > 0
    held = cond.context[:, 1, :, -1].numpy() > 0
    assert np.array_equal(clean_continuation(w.numpy().astype(bool), held), w.numpy())
    assert torch.equal(gan.decode(z, cond), w)
    s = gan.sample(6, cond, generator=torch.Generator().manual_seed(0))
    assert torch.equal(s, w)  # sample draws the latents decode reads


def test_config_rejects_bad_values():
    with pytest.raises(MusicflowError, match="binary"):
        GANConfig(binary="fuzzy")
    with pytest.raises(MusicflowError, match="kernel"):
        GANConfig(kernel=4)
    with pytest.raises(MusicflowError, match="objective"):
        GANConfig(objective="minimax")
    with pytest.raises(MusicflowError, match="critic_lr"):
        GANConfig(critic_lr=0.0)
    with pytest.raises(MusicflowError, match="mode_seeking"):
        GANConfig(mode_seeking=-1.0)


# -- the checkpoint and the Composer -----------------------------------------------------------------

@pytest.fixture
def gan_ck(tmp_path):
    gan = _gan().eval()
    with torch.no_grad():
        gan.cell_bias.fill_(0.0)
    path = tmp_path / "gan-tiny.pt"
    save_checkpoint(path, "gan", gan, PianoRollSpec(pitches=8), ["folk", "jazz"], {})
    return path


def test_checkpoint_loads_with_no_flags_and_composes(gan_ck):
    ck = load_checkpoint(gan_ck)
    assert ck.kind == "gan" and isinstance(ck.model, GAN)
    c = Composer.load(gan_ck)
    r = c.compose_result("folk", bars=2, seed=4)
    assert r.roll.shape == (2, 8, 32) and r.roll.sum() > 0
    assert np.array_equal(Composer.load(gan_ck).compose_result("folk", bars=2, seed=4).roll, r.roll)
    mix = c.compose_result({"folk": 0.5, "jazz": 0.5}, bars=1, seed=4)  # the weighted embedding
    assert mix.roll.shape == (2, 8, 16)
    assert c.compose_result("folk", bars=2, seed=4, temperature=0.5).roll.shape == (2, 8, 32)


def test_what_needs_a_likelihood_or_an_encoder_refuses_a_gan(gan_ck, tmp_path):
    c = Composer.load(gan_ck)
    mid = make_midi(tmp_path / "in.mid", [(36 + i % 5, i * 0.5, i * 0.5 + 0.5) for i in range(16)])
    for call, words in ((lambda: c.score(mid), "no likelihood"), (lambda: c.classify(mid), "no likelihood"),
                        (lambda: c.compose("folk", bars=1, guidance=2.0), "guidance"),
                        (lambda: c.compose("folk", bars=1, mix="product"), "mix"),
                        (lambda: c.transfer(mid, to="jazz", source="folk"), "no encoder"),
                        (lambda: c.variations(mid, n=2, genre="folk"), "no encoder"),
                        (lambda: c.continue_(mid), "no likelihood")):
        with pytest.raises(MusicflowError, match=words) as e:
            call()
        assert "\n" not in str(e.value)
    assert c.continue_(mid, "folk", bars=1, seed=0).roll.shape[-1] > 16  # with a genre given: works


@pytest.mark.parametrize("args", [["score"], ["classify"], ["transfer", "--to", "jazz"]])
def test_cli_refuses_a_gan_in_one_line(gan_ck, tmp_path, args):
    mid = make_midi(tmp_path / "in.mid", [(36 + i % 5, i * 0.5, i * 0.5 + 0.5) for i in range(16)])
    cmd = [args[0], str(mid), *args[1:], "--model", str(gan_ck)]
    if args[0] == "transfer":
        cmd += ["--from", "folk", "-o", str(tmp_path / "out.mid")]
    r = CliRunner().invoke(main, cmd)
    assert r.exit_code == 2, r.output
    error = [line for line in r.output.splitlines() if line.startswith("Error")]
    assert len(error) == 1 and "Traceback" not in r.output  # the reading report, then one error line
    assert "no likelihood" in error[0] or "no encoder" in error[0]


def test_cli_composes_with_a_gan(gan_ck, tmp_path):
    out = tmp_path / "g.mid"
    r = CliRunner().invoke(main, ["compose", "--model", str(gan_ck), "-g", "folk", "--bars", "2",
                                  "--seed", "1", "-o", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    assert out.stat().st_size > 0
    r = CliRunner().invoke(main, ["compose", "--model", str(gan_ck), "-g", "folk", "--guidance", "2",
                                  "-o", str(out), "--quiet"])
    assert r.exit_code == 2 and "guidance" in r.output and r.output.strip().count("\n") == 0
