"""Tests for musicflow.flows: invertibility, exact log-determinants, and the Glow model's behaviour.

Shapes are tiny so the whole file runs in seconds; Jacobian checks run in double precision.
"""

from __future__ import annotations

import functools
import math

import pytest
import torch
from torch.autograd.functional import jacobian

from musicflow.errors import MusicflowError
from musicflow.flows import (
    ActNorm,
    AffineCoupling,
    CondFeatures,
    Condition,
    ConditionalPrior,
    CondNet,
    Coupling,
    Glow,
    GlowConfig,
    InvConv1x1,
    Logit,
    PitchAutoregressive,
    SplineCoupling,
    Split,
    Squeeze,
    VariationalDequantizer,
    centre,
    quantize,
)
from musicflow.flows.frame_layers import FrameCoupling

TINY = GlowConfig(
    pitches=8,
    steps=8,
    n_genres=3,
    levels=2,
    depth=2,
    hidden=8,
    context_steps=8,
    context_channels=4,
    embed_dim=4,
    cond_dim=8,
    dequant_hidden=4,
    dequant_steps=1,
)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tensors here are tiny: extra threads only add synchronisation, which costs seconds per
    test on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _perturb(module: torch.nn.Module, scale: float = 0.2, seed: int = 0) -> None:
    """Move every parameter off its initial value: zero-initialised output layers make a fresh
    coupling the identity and a fresh prior standard, which would hide bugs."""
    g = _gen(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))


def _rolls(batch: int, seed: int = 0, pitches: int = 8, steps: int = 8) -> torch.Tensor:
    return (torch.rand(batch, 2, pitches, steps, generator=_gen(seed)) < 0.3).float()


def _cond(batch: int, genre: int = 0, context: bool = True, seed: int = 1) -> Condition:
    genres = torch.zeros(batch, TINY.n_genres)
    genres[:, genre] = 1.0
    ctx = _rolls(batch, seed, TINY.pitches, TINY.context_steps) if context else None
    return Condition(genres, ctx)


def _model(dequantization: str = "uniform", seed: int = 0, **overrides: object) -> Glow:
    torch.manual_seed(seed)  # parameter initialisation only
    cfg = GlowConfig(**{**TINY.to_dict(), "dequantization": dequantization, **overrides})
    model = Glow(cfg)
    model.initialize(_rolls(16, seed=5), _cond(16))
    _perturb(model, scale=0.06, seed=seed)
    return model.eval()


def _features(batch: int = 2, pitches: int = 8, dtype: torch.dtype = torch.float32) -> CondFeatures:
    g = _gen(3)
    return CondFeatures(
        torch.randn(batch, 3, generator=g, dtype=dtype),
        torch.randn(batch, 2, pitches, generator=g, dtype=dtype),
    )


def _layers() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    net = {"cond_dim": 3, "pitch_channels": 2}
    layers = {
        "actnorm": ActNorm(4),
        "invconv": InvConv1x1(4),
        "coupling": AffineCoupling(4, hidden=8, **net),
        "spline": SplineCoupling(4, hidden=8, bins=4, **net),
        "autoregressive": PitchAutoregressive(4, pitches=4, steps=4, hidden=8, blocks=2, bins=4, **net),
        "squeeze": Squeeze(),
        "split": Split(4, hidden=8, **net),
        "prior": ConditionalPrior(4, pitches=4, steps=4, hidden=8, **net),
        "logit": Logit(0.05),
    }
    for name, layer in layers.items():
        # A strongly perturbed spline has near-flat bins whose float32 inverse loses digits (the
        # float64 Jacobian test below checks it exactly); 0.05 still bends it far from identity.
        _perturb(layer, scale=0.05 if name in ("spline", "autoregressive") else 0.2)
        layer.eval()
    return layers


LAYER_NAMES = list(_layers())


def _layer_input(name: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    x = torch.randn(2, 4, 4, 4, generator=_gen(7), dtype=dtype)
    return torch.sigmoid(x) if name == "logit" else x  # the logit layer's domain is (0, 1)


# -- layers -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_layer_inverts(name: str) -> None:
    layer, x, h = _layers()[name], _layer_input(name), _features(pitches=4)
    y, logdet = layer(x, h)
    x_back, logdet_inv = layer.inverse(y, h)
    assert (x_back - x).abs().max() < 1e-5
    assert torch.allclose(logdet, -logdet_inv, atol=1e-4)
    assert logdet.shape == (2,)
    if name not in ("squeeze",):
        assert not torch.allclose(y.reshape(x.shape), x)  # perturbed layers really transform


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_layer_logdet_matches_jacobian(name: str) -> None:
    layer = _layers()[name].double()
    x, h = _layer_input(name, torch.float64), _features(pitches=4, dtype=torch.float64)
    _, logdet = layer(x, h)
    full = jacobian(lambda t: layer(t, h)[0].reshape(2, -1), x, vectorize=True)
    full = full.reshape(2, 64, 2, 64)
    for b in range(2):
        assert full[b, :, 1 - b].abs().max() == 0  # no mixing between batch elements
        sign, logabs = torch.linalg.slogdet(full[b, :, b])
        assert sign != 0
        assert logabs.item() == pytest.approx(logdet[b].item(), abs=1e-6)


def test_pitch_autoregressive_cell_depends_only_on_cells_before_it() -> None:
    """Order: pitch rows upward, within a row step-major; the Jacobian in that order is lower
    triangular with no zero on the diagonal, and cells do depend on lower pitches (it is not
    merely elementwise)."""
    layer = _layers()["autoregressive"].double()
    x, h = _layer_input("autoregressive", torch.float64)[:1], _features(1, pitches=4, dtype=torch.float64)

    def ordered(t: torch.Tensor) -> torch.Tensor:  # (1, 4, 4, 4) -> cells in autoregressive order
        return layer._rows(t).transpose(1, 2).flatten()

    def unordered(flat: torch.Tensor) -> torch.Tensor:
        return layer._unrows(flat.reshape(1, 4, 16).transpose(1, 2))

    full = jacobian(lambda f: ordered(layer(unordered(f), h)[0]), ordered(x))
    assert torch.equal(full.triu(1), torch.zeros_like(full))
    assert (full.diagonal().abs() > 0).all()
    assert full[16:, :16].abs().max() > 1e-3  # row 1 depends on row 0
    assert full[1:16, :1].abs().max() > 1e-3  # later cells of row 0 depend on its first cell


def test_pitch_autoregressive_both_inverses_agree_and_fixed_point_gives_up_cleanly() -> None:
    layer, x, h = _layers()["autoregressive"], _layer_input("autoregressive"), _features(pitches=4)
    y, logdet = layer(x, h)
    seq, ld_seq = layer.inverse_sequential(y, h)
    fixed, ld_fixed, settled = layer.inverse_fixed_point(y, h)
    assert settled.all()
    assert (seq - x).abs().max() < 1e-5 and (fixed - x).abs().max() < 1e-4
    assert torch.allclose(ld_seq, -logdet, atol=1e-4) and torch.allclose(ld_fixed, -logdet, atol=1e-3)
    # One pass cannot settle 64 dependent cells: the windows are marked unsettled, and inverse()
    # finishes them with the sequential solver.
    assert not layer.inverse_fixed_point(y, h, max_iter=1)[2].any()
    inv, ld_inv = layer.inverse(y, h)
    assert (inv - x).abs().max() < 1e-4 and torch.allclose(ld_inv, -logdet, atol=1e-3)


def test_pitch_autoregressive_fixed_point_settles_each_window_on_its_own(monkeypatch) -> None:
    """Windows settle separately: one outside the splines' range (where they are the identity)
    settles in one pass while its neighbour still moves; inverse() finishes the unsettled one
    with the sequential solver; a batch gives each window what it gives that window alone."""
    layer = _layers()["autoregressive"]
    x = _layer_input("autoregressive")
    x[0] = 2 * layer.bound  # every cell outside [-bound, bound]
    h = _features(pitches=4)
    y, logdet = layer(x, h)
    assert torch.equal(y[0], x[0])
    settled = layer.inverse_fixed_point(y, h, max_iter=1)[2]
    assert settled.tolist() == [True, False]
    one_pass = functools.partial(PitchAutoregressive.inverse_fixed_point, layer, max_iter=1)
    monkeypatch.setattr(layer, "inverse_fixed_point", one_pass)
    inv, ld = layer.inverse(y, h)
    assert (inv - x).abs().max() < 1e-4 and torch.allclose(ld, -logdet, atol=1e-3)
    monkeypatch.undo()
    whole, ld_whole, settled = layer.inverse_fixed_point(y, h)
    assert settled.all()
    for i in range(2):
        one = CondFeatures(h.vec[i:i + 1], h.pitch_map[i:i + 1])
        alone, ld_alone, _ = layer.inverse_fixed_point(y[i:i + 1], one)
        assert torch.allclose(alone, whole[i:i + 1], atol=1e-6)
        assert torch.allclose(ld_alone, ld_whole[i:i + 1], atol=1e-5)


def test_pitch_autoregressive_context_and_genre_change_the_map() -> None:
    layer, x = _layers()["autoregressive"], _layer_input("autoregressive")
    h = _features(pitches=4)
    y = layer(x, h)[0]
    assert not torch.allclose(y, layer(x, CondFeatures(h.vec + 1, h.pitch_map))[0])
    assert not torch.allclose(y, layer(x, CondFeatures(h.vec, h.pitch_map + 1))[0])


def test_coupling_net_sees_both_parts_of_the_condition() -> None:
    layer, x, h = _layers()["coupling"], _layer_input("coupling"), _features(pitches=4)
    y = layer(x, h)[0]
    other_vec = CondFeatures(h.vec + 1.0, h.pitch_map)
    other_map = CondFeatures(h.vec, h.pitch_map.flip(-1))
    assert (layer(x, other_vec)[0] - y).abs().max() > 1e-3
    assert (layer(x, other_map)[0] - y).abs().max() > 1e-3
    assert torch.equal(layer(x, CondFeatures(h.vec, h.pitch_map.clone()))[0], y)


class _ScaledShift(Coupling):
    """A coupling with a map of its own, ``y = b * exp(tanh(s)) + t``: what the base class asks of
    a new elementwise map, under a conditioner name of its own."""

    net_name = "scale_net"

    def __init__(self, channels: int) -> None:
        super().__init__(channels, 2, functools.partial(CondNet, hidden=8, cond_dim=3, pitch_channels=2))

    def elementwise(self, b, params, inverse):
        t, s = params[:, 0::2], torch.tanh(params[:, 1::2])
        if inverse:
            return (b - t) * torch.exp(-s), -s.flatten(1).sum(dim=1)
        return b * torch.exp(s) + t, s.flatten(1).sum(dim=1)


def _couplings() -> dict[str, Coupling]:
    layers = _layers()
    torch.manual_seed(0)
    custom = _ScaledShift(5)  # an odd channel count: the second part is the larger one
    _perturb(custom)
    return {"coupling": layers["coupling"], "spline": layers["spline"], "split": layers["split"],
            "custom": custom.eval()}


@pytest.mark.parametrize("name", ["coupling", "spline", "split", "custom"])
def test_coupling_base_keeps_the_first_part_and_inverts(name: str) -> None:
    layer = _couplings()[name]
    x, h = torch.randn(2, 5 if name == "custom" else 4, 4, 4, generator=_gen(7)), _features(pitches=4)
    y, logdet = layer(x, h)
    assert torch.equal(y[:, : layer.half], x[:, : layer.half])
    assert not torch.allclose(y[:, layer.half :], x[:, layer.half :])
    x_back, logdet_inv = layer.inverse(y, h)
    assert (x_back - x).abs().max() < 1e-5 and torch.allclose(logdet, -logdet_inv, atol=1e-4)


def test_coupling_base_logdet_of_a_new_map_matches_jacobian() -> None:
    layer = _couplings()["custom"].double()
    x, h = torch.randn(2, 5, 4, 4, generator=_gen(7), dtype=torch.float64), _features(2, 4, torch.float64)
    _, logdet = layer(x, h)
    full = jacobian(lambda t: layer(t, h)[0].reshape(2, -1), x, vectorize=True).reshape(2, 80, 2, 80)
    for b in range(2):
        assert full[b, :, 1 - b].abs().max() == 0
        assert torch.linalg.slogdet(full[b, :, b])[1].item() == pytest.approx(logdet[b].item(), abs=1e-6)


def test_coupling_nets_keep_the_names_shipped_checkpoints_use() -> None:
    couplings = _couplings()
    assert {k.split(".")[0] for k in couplings["coupling"].state_dict()} == {"net"}
    assert {k.split(".")[0] for k in couplings["spline"].state_dict()} == {"net"}
    assert {k.split(".")[0] for k in couplings["split"].state_dict()} == {"prior"}
    assert {k.split(".")[0] for k in couplings["custom"].state_dict()} == {"scale_net"}
    assert couplings["split"].keep == couplings["split"].half == 2
    with pytest.raises(TypeError):  # the elementwise map is abstract
        Coupling(4, 2, functools.partial(CondNet, hidden=8))


def test_frame_coupling_inverts_and_logdet_matches_jacobian() -> None:
    torch.manual_seed(0)
    layer = FrameCoupling(6, hidden=8, cond_dim=3)
    _perturb(layer)
    layer.double()
    x = torch.randn(2, 6, generator=_gen(7), dtype=torch.float64)
    c = torch.randn(2, 3, generator=_gen(8), dtype=torch.float64)
    y, logdet = layer(x, c)
    assert torch.equal(y[:, :3], x[:, :3]) and not torch.allclose(y[:, 3:], x[:, 3:])
    x_back, logdet_inv = layer.inverse(y, c)
    assert (x_back - x).abs().max() < 1e-10 and torch.allclose(logdet, -logdet_inv)
    full = jacobian(lambda t: layer(t, c)[0], x, vectorize=True)
    for b in range(2):
        assert full[b, :, 1 - b].abs().max() == 0
        assert torch.linalg.slogdet(full[b, :, b])[1].item() == pytest.approx(logdet[b].item(), abs=1e-10)


def test_actnorm_data_dependent_init_and_state_dict() -> None:
    layer = ActNorm(3).train()
    x = torch.randn(32, 3, 4, 4, generator=_gen(0)) * torch.tensor([5.0, 0.5, 2.0])[:, None, None]
    y, _ = layer(x + 3)
    assert bool(layer.initialized)
    assert y.mean(dim=(0, 2, 3)).abs().max() < 1e-5
    assert (y.std(dim=(0, 2, 3), unbiased=False) - 1).abs().max() < 1e-4

    restored = ActNorm(3)
    restored.load_state_dict(layer.state_dict())
    assert bool(restored.initialized)
    restored.train()(torch.randn(8, 3, 4, 4))  # a new batch must not re-initialise
    assert torch.equal(restored.bias, layer.bias) and torch.equal(restored.logs, layer.logs)


def test_squeeze_moves_2x2_patches_into_channels() -> None:
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    y, _ = Squeeze()(x)
    assert y.shape == (1, 4, 2, 2)
    # Channel k holds offset (k // 2, k % 2) of each (pitch, time) patch.
    assert y[0, :, 0, 0].tolist() == [0.0, 1.0, 4.0, 5.0]
    with pytest.raises(MusicflowError):
        Squeeze()(torch.zeros(1, 1, 3, 4))


# -- dequantization -----------------------------------------------------------------------------


def test_quantize_inverts_centre_and_every_dequantized_value() -> None:
    x = _rolls(4)
    assert torch.equal(quantize(centre(x)), x)
    u = torch.rand(x.shape, generator=_gen(1))
    assert torch.equal(quantize((x + u) / 2), x)


def test_variational_dequantizer_log_q_matches_jacobian() -> None:
    torch.manual_seed(0)
    deq = VariationalDequantizer(cond_dim=3, hidden=4, steps=1)
    _perturb(deq)
    deq.double()
    x = _rolls(1, pitches=4, steps=4).double()
    vec = torch.randn(1, 3, generator=_gen(2), dtype=torch.float64)
    eps = torch.randn(x.shape, generator=_gen(3), dtype=torch.float64)
    u, logdet = deq.transform(eps, x, vec)
    assert ((u > 0) & (u < 1)).all()
    full = jacobian(lambda e: deq.transform(e, x, vec)[0].flatten(), eps, vectorize=True)
    full = full.reshape(32, 32)
    assert torch.linalg.slogdet(full)[1].item() == pytest.approx(logdet.item(), abs=1e-6)
    # log q = log N(eps) - log|det|: the same generator seed gives the same draw.
    u2, log_q = deq(x, vec, generator=_gen(3))
    assert torch.allclose(u2, u)
    log_normal = -0.5 * (eps.pow(2) + math.log(2 * math.pi)).sum()
    assert log_q.item() == pytest.approx((log_normal - logdet).item(), abs=1e-6)


# -- the Glow model -----------------------------------------------------------------------------


@pytest.mark.parametrize(("coupling", "autoregressive"),
                         [("affine", False), ("spline", False), ("affine", True)])
def test_glow_bijection_logdet_matches_jacobian(coupling: str, autoregressive: bool) -> None:
    model = _model(coupling=coupling, bins=4, autoregressive=autoregressive, ar_hidden=8,
                   ar_blocks=2).double()
    cond = _cond(1)
    cond = Condition(cond.genre.double(), cond.context.double())
    h = model.features(cond)
    w, _ = model.logit(centre(_rolls(1)).double() + 0.1 * torch.rand(1, 2, 8, 8).double())
    z, logdet = model.flow_forward(w, h)
    assert z.shape == (1, TINY.dim)
    full = jacobian(lambda t: model.flow_forward(t, h)[0][0], w, vectorize=True)
    full = full.reshape(TINY.dim, TINY.dim)
    assert torch.linalg.slogdet(full)[1].item() == pytest.approx(logdet.item(), abs=1e-5)
    w_back, logdet_inv = model.flow_inverse(z, h)
    assert (w_back - w).abs().max() < 1e-9
    assert logdet_inv.item() == pytest.approx(-logdet.item(), abs=1e-8)


@pytest.mark.parametrize(("context", "coupling", "chroma", "autoregressive"),
                         [(True, "affine", False, False), (False, "affine", False, False),
                          (True, "spline", False, False), (True, "affine", True, False),
                          (False, "affine", True, False), (True, "affine", False, True),
                          (False, "affine", False, True)])
def test_encode_decode_round_trip(context: bool, coupling: str, chroma: bool, autoregressive: bool) -> None:
    model = _model(coupling=coupling, chroma=chroma, autoregressive=autoregressive, ar_hidden=8, ar_blocks=2)
    x, cond = _rolls(4), _cond(4, genre=1, context=context)
    z = model.encode(x, cond)
    assert z.shape == (4, TINY.dim)
    v = model.decode(z, cond)
    assert (v - centre(x)).abs().max() < 1e-4
    assert torch.equal(model.quantize(v), x)


@pytest.mark.parametrize(("pitches", "steps"), [(12, 4), (4, 16)])
def test_any_multiple_of_four_pitches_and_steps(pitches: int, steps: int) -> None:
    torch.manual_seed(0)
    model = Glow(GlowConfig(**{**TINY.to_dict(), "pitches": pitches, "steps": steps}))
    _perturb(model, scale=0.06)
    x = _rolls(2, pitches=pitches, steps=steps)
    cond = Condition(torch.eye(TINY.n_genres)[:2], _rolls(2, 1, pitches, 5))  # any context length
    z = model.eval().encode(x, cond)
    assert z.shape == (2, 2 * pitches * steps)
    assert torch.equal(quantize(model.decode(z, cond)), x)
    assert model.sample(2, cond, generator=_gen(0)).shape == (2, 2, pitches, steps)


def test_samples_are_binary_and_follow_the_generator() -> None:
    model, cond = _model(), _cond(1)
    a = model.sample(5, cond, generator=_gen(0))
    b = model.sample(5, cond, generator=_gen(0))
    c = model.sample(5, cond, generator=_gen(1))
    assert a.shape == (5, 2, TINY.pitches, TINY.steps)
    assert ((a == 0) | (a == 1)).all()
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    v = model.sample_continuous(5, cond, generator=_gen(0))
    assert ((v >= 0) & (v <= 1)).all() and torch.equal(quantize(v), a)
    # Temperature zero removes all randomness: every draw is the same latent, zero.
    cold = [model.sample_continuous(2, cond, 0.0, generator=_gen(s)) for s in (0, 1)]
    assert torch.equal(cold[0], cold[1]) and torch.equal(cold[0][0], cold[0][1])


def _sample(model: Glow, cond: Condition) -> torch.Tensor:
    return model.sample_continuous(4, cond, generator=_gen(0))


def test_genre_mix_and_context_change_the_sample() -> None:
    model = _model()
    base = _cond(1, genre=0)
    other = _cond(1, genre=2)
    mix = Condition(torch.tensor([[0.5, 0.0, 0.5]]), base.context)
    no_ctx = Condition(base.genre, None)
    ref = _sample(model, base)
    for cond in (other, mix, no_ctx):
        v = _sample(model, cond)
        assert (v - ref).abs().max() > 1e-2
        assert not torch.equal(quantize(v), quantize(ref))
    # Mixing is linear in the embedding: a mix differs from both of its parts.
    assert (_sample(model, mix) - _sample(model, other)).abs().max() > 1e-2


def test_chroma_context_sees_octaves_the_convolutions_cannot() -> None:
    """With ``chroma``, moving one context note by an octave (beyond the encoder's pitch reach)
    leaves the pitch-class profile and its share of the condition unchanged, while moving it by
    a fifth changes them; without it, the model cannot tell pitch classes apart at a distance."""
    from musicflow.flows.nets import ContextEncoder, chroma_profile

    torch.manual_seed(0)
    enc = ContextEncoder(pitches=48, channels=4, out_dim=6, chroma=True)
    base = torch.zeros(1, 2, 48, 16)
    base[0, :, 5, -4] = 1
    base[0, 1, 5, -3:] = 1
    octave, fifth = base.roll(12 * 2, dims=2), base.roll(7, dims=2)
    assert torch.equal(chroma_profile(base), chroma_profile(octave))
    assert not torch.equal(chroma_profile(base), chroma_profile(fifth))
    # the chroma part of the vector depends on the pitch class only
    part = [enc.chroma_vec(chroma_profile(c).flatten(1)) for c in (base, octave, fifth)]
    assert torch.equal(part[0], part[1]) and (part[0] - part[2]).abs().max() > 1e-4
    # and every pitch of the same class gets the same chroma share of the map
    share = enc.chroma_map(chroma_profile(base))[..., enc.pitch_class]
    assert torch.equal(share[..., 0], share[..., 12]) and torch.equal(share[..., 5], share[..., 41])
    with pytest.raises(MusicflowError, match="chroma"):
        GlowConfig(chroma="yes")


def test_reach_lets_every_pitch_row_see_a_context_note_far_away() -> None:
    """With ``reach``, a context note 20 rows above a row changes that row of the pitch map (the
    line's register reaches every row); without it, the map reaches 3 rows either side only. The
    blocks start as the identity, so they are perturbed here as training would."""
    from musicflow.flows.nets import ContextEncoder

    torch.manual_seed(0)
    ctx = torch.zeros(1, 2, 48, 16)
    moved = ctx.clone()
    moved[0, :, 30, -4:] = 1  # one note at row 30; row 10 is 20 rows below it
    for reach in (False, True):
        enc = ContextEncoder(pitches=48, channels=4, out_dim=6, reach=reach)
        for block in enc.reach or ():
            torch.nn.init.normal_(block.out.weight, std=0.3)
        a, b = (enc(c, batch_size=1)[1] for c in (ctx, moved))
        far = (a[..., 10] - b[..., 10]).abs().max().item()
        assert (far > 1e-4) == reach, (reach, far)
    # untrained, the blocks are the identity: the same encoder as without them (same seed)
    torch.manual_seed(1)
    plain = ContextEncoder(48, 4, 6)
    torch.manual_seed(1)
    wide = ContextEncoder(48, 4, 6, reach=True)
    assert all(torch.equal(p, w) for p, w in zip(plain(moved, 1), wide(moved, 1)))
    with pytest.raises(MusicflowError, match="reach"):
        GlowConfig(reach=1)


def test_echo_tells_the_map_what_sounded_a_bar_back() -> None:
    """With ``echo``, moving one note by a step within the beat four beats back (one 4/4 bar before
    the beat that follows the context) changes the pitch map at its row through the raw beat alone:
    with the strided convolutions silenced, the encoder without echo sees no difference (its
    only other view of the roll is the last beat), the one with echo does."""
    from musicflow.flows.nets import ContextEncoder

    ctx = torch.zeros(1, 2, 48, 64)
    ctx[0, :, 20, 48] = 1  # a sixteenth on the first step of the beat 4 beats back
    moved = torch.zeros_like(ctx)
    moved[0, :, 20, 49] = 1  # the same note one step later
    for echo in (False, True):
        torch.manual_seed(0)
        enc = ContextEncoder(pitches=48, channels=4, out_dim=6, echo=echo)
        torch.nn.init.zeros_(enc.convs[0].weight)  # the pooled summaries see nothing
        a, b = (enc(c, batch_size=1)[1] for c in (ctx, moved))
        diff = (a[..., 20] - b[..., 20]).abs().max().item()
        assert (diff > 1e-4) == echo, (echo, diff)
    with pytest.raises(MusicflowError, match="echo"):
        GlowConfig(echo="yes")


def test_context_dropout_swaps_in_the_no_context_value_per_row() -> None:
    model = _model(context_dropout=0.5)
    x, cond = _rolls(32), _cond(32)
    with_ctx = model.log_prob(x, cond, generator=_gen(0))
    without = model.log_prob(x, Condition(cond.genre, None), generator=_gen(0))
    assert (with_ctx - without).abs().min() > 1e-4
    torch.manual_seed(0)  # dropout draws from the global generator during training
    train = model.train().log_prob(x, cond, generator=_gen(0))
    kept = torch.isclose(train, with_ctx, atol=1e-4)
    dropped = torch.isclose(train, without, atol=1e-4)
    assert (kept ^ dropped).all()
    assert kept.any() and dropped.any()


@pytest.mark.parametrize(("dequantization", "coupling", "autoregressive"),
                         [("uniform", "affine", False), ("variational", "affine", False),
                          ("variational", "spline", False), ("variational", "affine", True)])
def test_bits_per_dim_positive_finite_and_training_lowers_it(
    dequantization: str, coupling: str, autoregressive: bool
) -> None:
    torch.manual_seed(0)
    model = Glow(GlowConfig(**{**TINY.to_dict(), "dequantization": dequantization, "coupling": coupling,
                               "autoregressive": autoregressive, "ar_hidden": 8, "ar_blocks": 2}))
    # A learnable corpus: two fixed patterns, one per genre.
    x = torch.cat([_rolls(1, seed=s).expand(8, -1, -1, -1) for s in (10, 11)])
    genres = torch.zeros(16, TINY.n_genres)
    genres[:8, 0], genres[8:, 1] = 1.0, 1.0
    cond = Condition(genres, None)
    model.initialize(x, cond)

    def evaluate() -> torch.Tensor:
        with torch.no_grad():
            return model.eval().bits_per_dim(x, cond, generator=_gen(0))

    before = evaluate()
    assert torch.isfinite(before).all() and (before > 0).all()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for step in range(25):
        loss = model.bits_per_dim(x, cond, generator=_gen(step)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = evaluate()
    assert torch.isfinite(after).all() and (after > 0).all()
    assert after.mean() < before.mean() - 0.2


def test_fresh_glow_log_prob_matches_the_hand_computed_bound() -> None:
    # Fresh and never initialised, every layer is the identity except the 1x1 convolutions,
    # which are rotations (|det| = 1): z is a rotation of w, so log p(w) = log N(w; 0, I).
    torch.manual_seed(0)
    model = Glow(TINY).eval()
    x, cond, alpha, dim = _rolls(3), _cond(3), TINY.alpha, TINY.dim
    u = torch.rand(x.shape, generator=_gen(4))
    s = alpha + (1 - 2 * alpha) * (x + u) / 2
    w = torch.log(s / (1 - s))
    per_cell = -0.5 * w**2 - 0.5 * math.log(2 * math.pi) + math.log(1 - 2 * alpha)
    per_cell = per_cell - torch.log(s) - torch.log(1 - s)
    expected = per_cell.flatten(1).sum(1) - dim * math.log(2)  # density of x + u, not (x + u) / 2
    log_prob = model.log_prob(x, cond, generator=_gen(4))
    assert torch.allclose(log_prob, expected, atol=1e-3)
    bpd = model.bits_per_dim(x, cond, generator=_gen(4))
    assert torch.allclose(bpd, -expected / (dim * math.log(2)), atol=1e-5)


def test_log_prob_uses_the_generator() -> None:
    model, x, cond = _model("variational"), _rolls(3), _cond(3)
    a = model.log_prob(x, cond, generator=_gen(0))
    assert torch.equal(a, model.log_prob(x, cond, generator=_gen(0)))
    assert not torch.equal(a, model.log_prob(x, cond, generator=_gen(1)))


# -- configuration and errors -------------------------------------------------------------------


def test_config_round_trip_and_validation() -> None:
    assert GlowConfig.from_dict(TINY.to_dict()) == TINY
    model = _model()
    clone = Glow(GlowConfig.from_dict(model.config.to_dict()))
    clone.load_state_dict(model.state_dict())
    x, cond = _rolls(2), _cond(2)
    assert torch.equal(clone.eval().encode(x, cond), model.encode(x, cond))
    for bad in ({"pitches": 6}, {"steps": 10}, {"dequantization": "gaussian"}, {"alpha": 0.5}):
        with pytest.raises(MusicflowError):
            GlowConfig(**{**TINY.to_dict(), **bad})
    with pytest.raises(MusicflowError, match="unknown"):
        GlowConfig.from_dict({**TINY.to_dict(), "colour": "red"})


def test_bad_shapes_raise_musicflow_error() -> None:
    model = _model()
    with pytest.raises(MusicflowError, match="rolls"):
        model.log_prob(torch.zeros(2, 2, 8, 4), _cond(2))
    with pytest.raises(MusicflowError, match="genre"):
        model.log_prob(_rolls(2), Condition(torch.ones(2, 5) / 5))
    with pytest.raises(MusicflowError, match="sum to 1"):
        model.log_prob(_rolls(2), Condition(torch.ones(2, TINY.n_genres)))
    with pytest.raises(MusicflowError, match="context"):
        model.encode(_rolls(2), Condition(_cond(2).genre, torch.zeros(2, 2, 6, 8)))
    with pytest.raises(MusicflowError, match="batch size"):
        model.sample(3, _cond(2))
