"""The four corpora of the polyphonic benchmark and the published figures they are judged by.

Torch-free, so the command line can list them. Each corpus is one file with ``train``, ``valid``
and (in the complete original) ``test`` splits, one time step per list of sounding pitches; what a
time step is differs between them (the ``step``).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Corpus:
    """One benchmark corpus: its file name in the shared layout, what a time step is, and published
    test-split NLLs in nats per time step (lower is better)."""

    name: str
    title: str
    file: str
    step: str
    steps_per_quarter: int
    published: dict[str, float] = field(default_factory=dict)

    @property
    def checkpoint(self) -> str:
        """The shipped checkpoint's file name under ``checkpoints/``."""
        return f"boulanger-{self.name}.pt"


RNN_NADE = "RNN-NADE (Boulanger-Lewandowski et al., ICML 2012)"

#: The benchmark corpora by the name ``--corpus`` takes. RNN-NADE's figures are those the shared
#: data README gives; the others were recalled from Fraccaro et al. (2016, Table 2) and Ziegler &
#: Rush (2019): check them against the papers before quoting them elsewhere.
CORPORA: dict[str, Corpus] = {
    "jsb": Corpus("jsb", "JSB Chorales", "jsb-chorales-quarter.json", "quarter note", 1, {
        RNN_NADE: 5.19,
        "RNN (Boulanger-Lewandowski et al., ICML 2012)": 8.71,
        "STORN (Bayer & Osendorfer, 2014)": 6.91,
        "TSBN (Gan et al., NeurIPS 2015)": 7.48,
        "SRNN (Fraccaro et al., NeurIPS 2016)": 4.74,
        "Latent normalizing flows, AF/AF (Ziegler & Rush, ICML 2019)": 6.53,
    }),
    "nottingham": Corpus("nottingham", "Nottingham", "nottingham.json", "eighth note", 2, {
        RNN_NADE: 2.31,
        "SRNN (Fraccaro et al., NeurIPS 2016)": 2.94,
    }),
    "musedata": Corpus("musedata", "MuseData", "musedata.json", "eighth note", 2, {
        RNN_NADE: 5.60,
        "SRNN (Fraccaro et al., NeurIPS 2016)": 6.28,
    }),
    "piano-midi": Corpus("piano-midi", "Piano-midi.de", "piano-midi.json", "eighth note", 2, {
        RNN_NADE: 7.05,
        "SRNN (Fraccaro et al., NeurIPS 2016)": 8.20,
    }),
}
