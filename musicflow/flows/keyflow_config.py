"""The settings of a :class:`~musicflow.flows.keyflow.KeyFlow`: its recurrence, per-key features,
states per key, and the genres, metre and learned styles it is conditioned on."""

from __future__ import annotations

from dataclasses import dataclass

from musicflow.errors import MusicflowError
from musicflow.flows.base import ConfigDict
from musicflow.flows.checks import positive_ints
from musicflow.flows.sequence import ALL_KEYS


@dataclass(frozen=True)
class KeyFlowConfig(ConfigDict):
    """Everything needed to rebuild a :class:`KeyFlow`.

    >>> cfg = KeyFlowConfig(channels=32)
    >>> KeyFlowConfig.from_dict(cfg.to_dict()) == cfg
    True
    """

    rnn_hidden: int = 256  # LSTM state over the past frames
    rnn_layers: int = 1
    channels: int = 32  # features per key
    history: int = 2  # previous frames the pitch convolution reads
    reach: int = 24  # semitones each side that convolution sees
    blocks: int = 1  # residual per-key blocks before the logit
    dropout: float = 0.3
    keys: int = ALL_KEYS  # keys per frame
    states: int = 2  # states per key: 2 = off/on (the benchmark), 3 = off/held/struck (a corpus)
    genres: int = 0  # genres the flow is conditioned on (0: none)
    metre: int = 0  # phases of a step in its bar the flow reads (0: none)
    styles: int = 0  # genres learned after training (flows/styles.py), after the ``genres``
    adapter_rank: int = 0  # rank of the styles' adapters (flows/styles.py; 0: none)

    def __post_init__(self) -> None:
        positive_ints(self, ("rnn_hidden", "rnn_layers", "channels", "history", "reach", "blocks", "keys"))
        if not 0 <= self.dropout < 1:
            raise MusicflowError(f"KeyFlowConfig.dropout must be in [0, 1), got {self.dropout!r}")
        bad_styles = self.styles < 0 or (self.styles and not self.genres) or self.adapter_rank < 0 \
            or (self.adapter_rank and not self.styles)
        if self.states < 2 or self.genres < 0 or self.metre < 0 or bad_styles:
            raise MusicflowError(f"KeyFlowConfig: states must be >= 2, genres, metre, styles, adapter_rank "
                                 f">= 0, styles only with genres and adapters with styles, got "
                                 f"{self.states}, {self.genres}, {self.metre}, {self.styles}, "
                                 f"{self.adapter_rank}")
