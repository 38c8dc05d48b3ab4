"""The golden cases: what musicflow produces for fixed seeds, recorded once before a redesign.

Each case returns a JSON-able value: the sha256 of MIDI bytes or of an integer array, or figures as
Python floats. A float array (latents, trained weights) is kept as a short fingerprint of floats
rather than a hash: the last bits of a float sum depend on the CPU's vector kernels, so two machines
running the same code agree on the MIDI and on every figure to about six digits, not on every bit.
``tests/test_golden.py`` compares a fresh run with ``tests/golden.json`` (MIDI exactly, figures to
two parts in a thousand); a redesign that keeps behaviour changes neither. To record anew (only
when behaviour is meant to change, and say so in the commit): ``python tests/golden_cases.py``.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
from pathlib import Path

import numpy as np
import pretty_midi
import torch

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).with_name("golden.json")
JSB = ROOT.parent / "shared" / "data" / "boulanger" / "jsb-chorales-quarter.json"  # the cases that need it
BARS = 2  # short pieces keep the guided cases to seconds; every code path is the same as 8 bars'


def midi_hash(pm: pretty_midi.PrettyMIDI) -> str:
    buf = io.BytesIO()
    pm.write(buf)
    return hashlib.sha256(buf.getvalue()).hexdigest()


def array_hash(a) -> str | list[float]:
    """The sha256 of an integer, boolean or 0/1 array; a fingerprint of any other (see the module doc)."""
    a = np.ascontiguousarray(a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else a)
    if np.issubdtype(a.dtype, np.floating):
        if not np.isin(a, (0.0, 1.0)).all():
            return fingerprint(a)
        a = a.astype(np.uint8)
    return hashlib.sha256(str(a.dtype).encode() + str(a.shape).encode() + a.tobytes()).hexdigest()


def fingerprint(a: np.ndarray, values: int = 8) -> list[float]:
    """A float array's norm, absolute sum, first few values and as many spread evenly over it (a
    change anywhere moves the sums; a reordering or sign change moves the values that see it)."""
    flat = a.astype(np.float64).ravel()
    spread = flat[np.linspace(0, len(flat) - 1, values).astype(int)] if values and len(flat) else []
    return [float(np.linalg.norm(flat)), float(np.abs(flat).sum()), *map(float, flat[:values]),
            *map(float, spread)]


def state_hash(model: torch.nn.Module) -> dict:
    """Each tensor of a state dict by name: its norm and absolute sum (a weight that trained on a
    near-zero gradient may step either way on another CPU; the sums are stable)."""
    return {k: fingerprint(v.detach().cpu().numpy(), values=0) for k, v in sorted(model.state_dict().items())}


def tunes():
    """Two real 8-bar inputs: the first celtic and the first chorale test tunes of the corpus."""
    from musicflow.data.dataset import Dataset
    from musicflow.paths import default_dataset
    from musicflow.roll import roll_to_midi

    ds = Dataset.load(default_dataset())
    out = []
    for g in ("celtic", "chorale"):
        i = ds.indices("test", g)[0]
        out.append(roll_to_midi(ds.roll(i)[..., :8 * 16], ds.spec, tempo=100))
    return out


def glow_cases() -> dict:
    """The shipped Glow: compose (guided and plain, every genre, a mix), the batched rolls,
    continue, variations, transfer, interpolate, decode, score, classify."""
    from musicflow.compose import Composer

    c = Composer.load("glow")
    out = {}
    for g in c.genres:
        out[f"compose guided {g}"] = midi_hash(c.compose(g, bars=BARS, seed=7))
        out[f"compose plain {g}"] = midi_hash(c.compose(g, bars=BARS, seed=7, guidance=1))
    r = c.compose_result({"celtic": 0.6, "chorale": 0.4}, bars=BARS, seed=3, key="D", program="violin",
                         tempo=90)
    out["compose mix"] = midi_hash(r.midi)
    out["compose mix outline"] = r.outline
    out["compose mix latents"] = array_hash(r.latents)
    out["compose outline set"] = midi_hash(c.compose("celtic", bars=BARS, seed=2, candidates=4,
                                                     outline={"low": 60, "high": 84}))
    out["compose no outline"] = midi_hash(c.compose("chorale", bars=BARS, seed=2, outline=False,
                                                    guidance=1))
    out["compose rolls"] = array_hash(c.compose_rolls("medieval", n=2, bars=1, seed=5, candidates=4))
    d = c.decode_latents(r.latents, genre={"celtic": 0.6, "chorale": 0.4}, tempo=90, key="D",
                         program="violin", outline=r.outline)
    out["decode"] = midi_hash(d.midi)
    out["decode other genre"] = midi_hash(c.decode_latents(r.latents, genre="classical").midi)
    a, b = tunes()
    cont = c.continue_(a, bars=1, seed=11, candidates=4)
    out["continue"] = midi_hash(cont.midi)
    out["continue plain"] = midi_hash(c.continue_(a, bars=1, seed=11, guidance=1, genre="celtic").midi)
    out["variations"] = [midi_hash(v.midi) for v in c.variations(a, n=2, amount=0.3, seed=4)]
    t = c.transfer(a, to="chorale", source="celtic")
    out["transfer"] = midi_hash(t.midi)
    out["transfer latents"] = array_hash(t.latents)
    out["interpolate"] = [midi_hash(v.midi) for v in c.interpolate(a, b, steps=3)]
    s = c.score(b)
    out["score whole"] = s["whole"]
    out["score per window"] = s["per_window"]
    out["score report"] = s["report"]
    out["classify"] = c.classify(a)
    out["calibrated"] = midi_hash(Composer(c.ck, decoding="calibrated").compose("german-folk", bars=BARS,
                                                                                seed=1, guidance=1))
    return out


def other_model_cases() -> dict:
    """The other shipped models through the same API: no-outline Glow, neural ODE, VAE."""
    from musicflow.compose import Composer

    out = {}
    c = Composer.load("glow-no-outline")
    out["glow-no-outline compose"] = midi_hash(c.compose("celtic", bars=BARS, seed=7, candidates=4))
    out["glow-no-outline classify"] = c.classify(tunes()[0])
    c = Composer.load("cnf")
    out["cnf compose"] = midi_hash(c.compose("chorale", bars=1, seed=7))
    out["cnf compose guided"] = midi_hash(c.compose("celtic", bars=1, seed=7, guidance=2))
    # Not rounded: the neural ODE's adaptive solve moves the last digits between CPUs, which the
    # comparison's relative tolerance absorbs; rounding would turn 0.04095 into a step of 0.25%.
    out["cnf score"] = c.score(tunes()[1])["whole"]
    c = Composer.load("vae")
    out["vae compose"] = midi_hash(c.compose("classical", bars=BARS, seed=7))
    out["vae classify"] = c.classify(tunes()[1])
    return out


def keyflow_cases() -> dict:
    """The sequence flow, the default: compose in every genre, a mix, the batched rolls, continue,
    variations, transfer, decode, score, classify."""
    from musicflow.compose import Composer

    c = Composer.load()
    out = {f"compose {g}": midi_hash(c.compose(g, bars=BARS, seed=7)) for g in c.genres}
    r = c.compose_result({"celtic": 0.6, "chorale": 0.4}, bars=BARS, seed=3, key="D", time_signature="3/4")
    out["compose mix"] = midi_hash(r.midi)
    out["decode"] = midi_hash(c.decode_latents(r.latents, "renaissance", time_signature="3/4").midi)
    out["compose rolls"] = array_hash(c.compose_rolls("medieval", n=3, bars=BARS, seed=5))
    tune = tunes()[0]
    out["continue"] = midi_hash(c.continue_(tune, "celtic", seed=2, bars=BARS).midi)
    out["variations"] = [midi_hash(v.midi) for v in c.variations(tune, n=2, amount=0.4, seed=1)]
    out["transfer"] = midi_hash(c.transfer(tune, to="chorale").midi)
    out["score"] = c.score(tunes()[1])["whole"]
    out["classify"] = c.classify(tune)
    return out


def cli_cases(tmp: Path) -> dict:
    """The CLI writes the same bytes as the API."""
    from click.testing import CliRunner

    from musicflow.cli import main

    out = {}
    runner = CliRunner()
    f = tmp / "c.mid"
    res = runner.invoke(main, ["compose", "--model", "glow", "-g", "celtic", "--bars", str(BARS), "--seed",
                               "9", "--candidates", "4", "-o", str(f), "--quiet"])
    assert res.exit_code == 0, res.output
    out["cli compose"] = hashlib.sha256(f.read_bytes()).hexdigest()
    res = runner.invoke(main, ["compose", "-g", "celtic", "--bars", str(BARS), "--seed", "9", "-o", str(f),
                               "--quiet"])
    assert res.exit_code == 0, res.output
    out["cli compose default"] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def _tiny_corpus(root: Path) -> Path:
    from conftest import ABC_TWO_TUNES, make_midi

    from musicflow.data.build import build_dataset

    for g, base in (("low", 40), ("high", 70)):
        (root / g).mkdir(parents=True)
        for i in range(4):
            notes = [(base + (b * 5 + i) % 9, b / 2, b / 2 + 0.5) for b in range(64)]
            make_midi(root / g / f"{i}.mid", notes)
    (root / "high" / "t.abc").write_text(ABC_TWO_TUNES)
    ds, _ = build_dataset(str(root), cache_dir=None, quiet=True, pitches=48)
    for k, p in enumerate(ds.pieces):
        p["split"] = "valid" if k % 4 == 3 else "train"
    return ds.save(root / "d.npz")


TINY = {
    "glow": {"levels": 1, "depth": 2, "hidden": 8, "context_channels": 4, "cond_dim": 8, "embed_dim": 4},
    "cnf": {"hidden": 8, "blocks": 1, "context_channels": 4, "cond_dim": 8, "embed_dim": 4},
    "vae": {"dim": 4, "hidden": 8, "blocks": 1, "bottleneck": 16, "context_channels": 4, "cond_dim": 8,
            "embed_dim": 4},
}


def training_cases(tmp: Path) -> dict:
    """A few steps of each training loop: the weights and figures they end with."""
    from musicflow.boulanger.benchmark import BenchmarkTrainConfig, train_benchmark
    from musicflow.checkpoint import load_checkpoint
    from musicflow.training import TrainConfig, train

    data = _tiny_corpus(tmp / "corpus")
    out = {}
    for kind, over in TINY.items():
        extra = {"outline": True} if kind == "glow" else {}
        cfg = TrainConfig(steps=6, batch_size=4, warmup=2, valid_every=3, valid_windows=4, seed=1,
                          context_noise=0.2 if kind == "glow" else 0.0)
        ck_path = tmp / f"{kind}.pt"
        rec = train(kind, data, ck_path, cfg, model_overrides={**over, **extra}, device="cpu", quiet=True)
        out[f"train {kind} history"] = [{k: v for k, v in h.items() if k != "elapsed_s"}
                                        for h in rec["history"]]
        out[f"train {kind} weights"] = state_hash(load_checkpoint(ck_path).model)
        out[f"train {kind} thresholds"] = rec.get("thresholds")
    from musicflow.data.dataset import Dataset
    from musicflow.training.classifier import train_classifier

    model, report = train_classifier(Dataset.load(data), 5, 8, 1e-3, 1, True)
    out["train classifier weights"] = state_hash(model)
    out["train classifier accuracy"] = report["balanced_accuracy"]
    jsb = JSB
    if jsb.is_file():
        cfg = BenchmarkTrainConfig(kind="frameflow", transpose=3, steps=4, batch_size=4, warmup=2,
                                   valid_every=2, seed=1)
        tiny = {"hidden": 16, "rnn_hidden": 16, "cond_dim": 8, "dequant_hidden": 8, "depth": 2}
        rec = train_benchmark(jsb, tmp / "jsb.pt", cfg, tiny, quiet=True)
        out["train jsb history"] = [{k: v for k, v in h.items() if k != "elapsed_s"} for h in rec["history"]]
        out["train jsb weights"] = state_hash(load_checkpoint(tmp / "jsb.pt").model)
    return out


def jsb_cases() -> dict:
    """The shipped benchmark model on the first validation chorales."""
    from musicflow.boulanger.benchmark import flow_nll, load_split
    from musicflow.checkpoint import load_checkpoint

    jsb = JSB
    if not jsb.is_file():
        return {}
    model = load_checkpoint(ROOT / "checkpoints" / "frameflow-jsb-quarter.pt").model
    r = flow_nll(model, load_split(jsb, "valid")[:8], samples=2, seed=3)
    return {"jsb nll": [r["nats_per_step"], r["iw_nats_per_step"], r["per_sample"]]}


GROUPS = {"glow": glow_cases, "keyflow": keyflow_cases, "other models": other_model_cases, "cli": cli_cases,
          "training": training_cases, "jsb": jsb_cases}


def run(group: str, tmp: Path) -> dict:
    fn = GROUPS[group]
    torch.manual_seed(0)
    return fn(tmp) if fn.__code__.co_argcount else fn()


if __name__ == "__main__":
    import tempfile
    import time

    sys.path.insert(0, str(Path(__file__).parent))
    record = {}
    for name in GROUPS:
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as d:
            record[name] = json.loads(json.dumps(run(name, Path(d))))
        print(f"{name}: {len(record[name])} cases, {time.perf_counter() - t0:.1f} s", flush=True)
    GOLDEN.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}")
