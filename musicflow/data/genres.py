"""The default genre map over the corpus that ships inside music21 (no download needed)."""

from __future__ import annotations

from pathlib import Path

from musicflow.errors import MusicflowError

#: genre -> music21 corpus folders; essenFolksong is split by file below.
DEFAULT_GENRES: dict[str, tuple[str, ...]] = {
    "chorale": ("bach",),
    "renaissance": ("palestrina", "josquin", "monteverdi"),
    "medieval": ("trecento", "ciconia", "luca"),
    "classical": ("beethoven", "mozart", "haydn", "schubert"),
    "german-folk": ("essenFolksong",),
    "chinese-folk": ("essenFolksong",),
    "celtic": ("oneills1850", "ryansMammoth", "airdsAirs", "essenFolksong"),
}
_ESSEN_CHINESE = {"han1", "han2"}
_ESSEN_CELTIC = {"irl"}


def essen_genre(stem: str) -> str:
    """Which genre an essenFolksong file belongs to.

    >>> essen_genre("han2"), essen_genre("irl"), essen_genre("erk10")
    ('chinese-folk', 'celtic', 'german-folk')
    """
    if stem in _ESSEN_CHINESE:
        return "chinese-folk"
    if stem in _ESSEN_CELTIC:
        return "celtic"
    return "german-folk"


def music21_corpus_dir() -> Path:
    import music21.corpus

    return Path(music21.corpus.__file__).parent


_PREFERENCE = (".mxl", ".musicxml", ".xml", ".krn", ".abc")


def _rank(path: Path) -> int:
    s = path.suffix.lower()
    return _PREFERENCE.index(s) if s in _PREFERENCE else len(_PREFERENCE)


def default_corpus_files(suffixes: set[str]) -> list[tuple[Path, str, str]]:
    """``(path, genre, piece-id prefix)`` for every file of the default genre map.

    The id prefix is the path inside music21's corpus, stable across machines.
    """
    root = music21_corpus_dir()
    out: list[tuple[Path, str, str]] = []
    seen: set[Path] = set()
    stems: set[Path] = set()
    for genre, folders in DEFAULT_GENRES.items():
        for folder in folders:
            base = root / folder
            if not base.is_dir():
                raise MusicflowError(f"{base}: music21 corpus folder missing (reinstall music21)")
            # Some works ship twice (kern and MusicXML): keep the first by _PREFERENCE.
            paths = sorted(base.rglob("*"), key=lambda p: (p.parent, p.stem, _rank(p)))
            for path in paths:
                if path.suffix.lower() not in suffixes or path in seen:
                    continue
                if path.with_suffix("") in stems:
                    continue
                g = essen_genre(path.stem) if folder == "essenFolksong" else genre
                if g != genre:
                    continue
                seen.add(path)
                stems.add(path.with_suffix(""))
                out.append((path, genre, path.relative_to(root).as_posix()))
    return out
