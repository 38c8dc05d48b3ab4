"""Per-file parse cache keyed by content hash, so a rebuild only parses what changed."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path

from musicflow.files import atomic_write

#: Bump when a reader's output changes, so old cache entries are not reused.
READER_VERSION = 2


def default_cache_dir() -> Path:
    """``$MUSICFLOW_CACHE`` or ``~/.cache/musicflow``."""
    env = os.environ.get("MUSICFLOW_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "musicflow"


def file_key(path: Path, steps_per_quarter: int) -> str:
    """A key that changes when the file's bytes, the grid or the readers change."""
    h = hashlib.sha1(path.read_bytes())
    h.update(f"|v{READER_VERSION}|spq{steps_per_quarter}|{path.suffix.lower()}".encode())
    return h.hexdigest()


class ParseCache:
    """A folder of gzipped JSON entries, one per parsed file; ``None`` disables caching."""

    def __init__(self, folder: Path | None):
        self.folder = None if folder is None else Path(folder) / f"pieces-v{READER_VERSION}"

    def _path(self, key: str) -> Path:
        assert self.folder is not None
        return self.folder / key[:2] / f"{key}.json.gz"

    def get(self, key: str) -> dict | None:
        if self.folder is None:
            return None
        p = self._path(key)
        try:
            with gzip.open(p, "rt") as f:
                return json.load(f)
        except (OSError, ValueError):  # missing or damaged entry: parse again
            return None

    def put(self, key: str, entry: dict) -> None:
        if self.folder is None:
            return

        def write(tmp: str) -> None:
            with gzip.open(tmp, "wt") as f:
                json.dump(entry, f, separators=(",", ":"))

        atomic_write(self._path(key), write)
