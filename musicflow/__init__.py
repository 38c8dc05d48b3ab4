"""musicflow: symbolic music generation with normalizing flows.

>>> import musicflow
>>> musicflow.PianoRollSpec().pitches
48
"""

from __future__ import annotations

from musicflow.errors import MusicflowError
from musicflow.roll import PianoRollSpec

__all__ = ["Composer", "MusicflowError", "PianoRollSpec", "__version__"]
__version__ = "0.1.0"


def __getattr__(name: str):
    # Composer pulls in torch: load it on first use so `import musicflow` stays light.
    if name == "Composer":
        from musicflow.compose import Composer

        return Composer
    raise AttributeError(f"module 'musicflow' has no attribute {name!r}")
