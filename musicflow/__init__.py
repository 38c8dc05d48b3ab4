"""musicflow: symbolic music generation with normalizing flows.

>>> import musicflow
>>> musicflow.PianoRollSpec().pitches
48
"""

from __future__ import annotations

from musicflow.errors import MusicflowError
from musicflow.roll import PianoRollSpec

__all__ = ["MusicflowError", "PianoRollSpec", "__version__"]
__version__ = "0.1.0"
