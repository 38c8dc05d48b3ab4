"""The one exception type users can cause.

The CLI turns a :class:`MusicflowError` into a single line on stderr and exit code 2; anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations


class MusicflowError(Exception):
    """A problem with the user's input: a file, an argument or a checkpoint.

    The message names the file or argument and the problem, in one line.

    >>> str(MusicflowError("tune.mid: not a MIDI file"))
    'tune.mid: not a MIDI file'
    """
