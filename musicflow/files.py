"""Atomic file writes: no reader ever sees half a MIDI file, checkpoint, cache or report."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from musicflow.errors import MusicflowError


def atomic_write(path: str | Path, write) -> Path:
    """Call ``write(tmp_path)`` then rename onto ``path``, so no half-written file is ever seen."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def existing_file(path: str | Path, empty: str = "empty file") -> Path:
    """``path`` if it is a non-empty file; otherwise the one-line error that names it."""
    path = Path(path)
    if not path.is_file():
        raise MusicflowError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise MusicflowError(f"{path}: {empty}")
    return path
