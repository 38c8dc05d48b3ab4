"""What ``musicflow evaluate`` measures and with which seeds (free of torch, for the command line)."""

from __future__ import annotations

from dataclasses import dataclass

from musicflow.settings import require, setting


@dataclass(frozen=True)
class EvalConfig:
    """What ``musicflow evaluate`` measures and with which seeds; saved in the report."""

    samples: int = setting(50, "Generated pieces per genre (seeds seed .. seed + samples - 1).")
    bars: int = setting(4, "Bars per generated piece.")
    seed: int = setting(0, "Seed of the pieces, the real windows and the likelihood noise.")
    temperature: float = setting(1.0, "Latent temperature of the flows and the VAE (the Bernoulli "
                                      "baseline draws as fitted).")
    test_windows: int = setting(1000, "Test windows per genre for bits/dim.")
    real_windows: int = setting(300, "Real test windows per genre for the musical metrics.")
    mix_samples: int = setting(10, "Pieces per 50/50 genre pair (0: no mixes).")
    classify_pieces: int = setting(10, "Test pieces per genre for likelihood classification.")
    classify_bars: int = setting(16, "Their first bars, scored under every genre.")
    novelty_hop: int = setting(16, "Training windows for novelty start every this many steps (a bar).")
    ode_solver: str = setting("", "Neural-ODE flow only: the likelihood solver, e.g. rk4:8 (eight fixed RK4 "
                                  "steps, several times cheaper) [default: the checkpoint's own, adaptive "
                                  "dopri5].")
    guidance: float | None = setting(None, "The model's genre guidance [default: what compose uses].")
    candidates: int | None = setting(None, "Candidates per window under guidance [default: compose's].")
    repeat: float | None = setting(None, "The sequence flow's share of restated bars, 0 to 1 [default: "
                                         "each genre's own, as compose uses].")
    two_sample: bool = setting(True, "Two-sample tests: can a classifier tell the pieces from real test "
                                     "excerpts?")

    def __post_init__(self) -> None:
        for name in ("samples", "bars", "test_windows", "classify_pieces", "classify_bars", "novelty_hop"):
            require(getattr(self, name) >= 1, f"{name} must be at least 1, got {getattr(self, name)}")
        require(self.real_windows >= 2, f"real_windows must be at least 2, got {self.real_windows}")
        require(self.mix_samples >= 0, f"mix_samples must be >= 0, got {self.mix_samples}")
        require(self.temperature > 0, f"temperature must be positive, got {self.temperature}")
        require(self.repeat is None or 0 <= self.repeat <= 1, f"repeat must be in [0, 1], got {self.repeat}")
