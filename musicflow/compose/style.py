"""A user's style as a new genre of the Composer's model, and a check that it does not copy them.

:func:`learn_style` fits the style (:mod:`musicflow.training.style`), then composes a few pieces in
it and measures how much of them repeats the user's music (:func:`copying`): the share of their
4-bar windows found in the user's pieces, at any offset and after any transposition, and the
longest run of beats copied.

>>> import numpy as np
>>> user = [np.random.default_rng(0).integers(0, 3, (256, 12))]
>>> copying([user[0][64:192]], user, bar=16)["copied_4bar_share"]
1.0
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from musicflow.roll import key_states
from musicflow.training.settings import StyleConfig
from musicflow.training.style import StyleReport
from musicflow.training.style import learn_style as fit_style

#: Pieces (8 bars, seeds 0..) composed in a new style to measure copying.
CHECK_PIECES = 8


def _windows(states: np.ndarray, steps: int, starts) -> set[bytes]:
    """Each window of ``steps`` steps from ``starts`` that sounds, moved down so its lowest
    sounding key is key 0 (equal up to transposition means equal bytes)."""
    out = set()
    k = states.shape[1]
    for s in starts:
        w = states[s:s + steps]
        if len(w) < steps:
            continue
        keys = np.flatnonzero(w.any(axis=0))
        if not len(keys):
            continue
        moved = np.zeros_like(w)
        moved[:, :k - keys[0]] = w[:, keys[0]:]
        out.add(moved.astype(np.uint8).tobytes())
    return out


def copying(pieces: list[np.ndarray], sources: list[np.ndarray], bar: int | list[int] = 16,
            beat: int = 4) -> dict:
    """How much of ``pieces`` repeats ``sources`` (key states ``(T, keys)`` each): the share of the
    pieces' bar-aligned 4-bar windows (``bar`` steps a bar, one for all or one per piece) equal to
    a window of a source at any step and transposition, and the longest run of ``beat``-step beats
    of a piece equal to a stretch of a source (beat-aligned in the piece, anywhere in the source)."""
    bars = [bar] * len(pieces) if isinstance(bar, int) else list(bar)
    known: dict[int, set[bytes]] = {}

    def found(steps: list[int], every: list[int]) -> list[bool]:
        hits = []
        for p, n, e in zip(pieces, steps, every):
            if n not in known:
                known[n] = set().union(*(_windows(s, n, range(len(s) - n + 1)) for s in sources))
            for start in range(0, len(p) - n + 1, e):
                w = _windows(p, n, [start])
                if w:
                    hits.append(bool(w & known[n]))
        return hits

    four = found([4 * b for b in bars], bars)
    lo, hi = 0, max((len(p) for p in pieces), default=0) // beat
    while lo < hi:  # the longest run: a run of n beats copied holds runs of every shorter length
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if any(found([mid * beat] * len(pieces), [beat] * len(pieces))) else (lo, mid - 1)
    return {"copied_4bar_share": float(np.mean(four)) if four else 0.0, "windows": len(four),
            "longest_copied_beats": lo}


@dataclass
class StyleResult:
    """A learnt style: the Composer that knows it, the learning's report and the copy check."""

    composer: object
    report: StyleReport
    copying: dict

    def lines(self) -> list[str]:
        c = self.copying
        return self.report.lines() + [
            f"copying: {c['copied_4bar_share']:.1%} of {c['windows']} 4-bar windows of {CHECK_PIECES} new "
            f"pieces repeat the files; longest run copied {c['longest_copied_beats']} beats"]


def learn_style(composer, paths: list[str | Path], name: str, cfg: StyleConfig | None = None, *,
                replace: bool = False, quiet: bool = True) -> StyleResult:
    """``composer`` with a new genre ``name`` learnt from the music in ``paths`` (files, folders,
    ``.csv`` manifests), checked for copying on ``CHECK_PIECES`` new 8-bar pieces (seeds 0..)."""
    ck, report = fit_style(composer.ck, paths, name, cfg, replace=replace, quiet=quiet)
    new = type(composer)(ck, composer.decoding, progress=False)
    results = [new.compose_result(name, seed=s, bars=8) for s in range(CHECK_PIECES)]
    new.progress = composer.progress
    bars = [new.spec.bar_steps(*map(int, (r.time_signature or "4/4").split("/"))) for r in results]
    stats = copying([key_states(r.roll) for r in results], report.sources, bars)
    ck.info["styles"][name]["copying"] = stats
    return StyleResult(new, report, stats)


class StyleOps:
    """The Composer's methods for users' own styles; they rely on its ``ck``, ``decoding`` and
    ``progress`` only."""

    def learn_style(self, files, name: str, *, replace: bool = False, **settings):
        """A new Composer whose model knows a new genre ``name`` learnt from ``files`` (paths of
        files, folders or ``.csv`` manifests; see :func:`learn_style`); ``settings`` as in
        :class:`~musicflow.training.settings.StyleConfig`. What it learnt from and reached is in
        ``styles[name]``; :meth:`save_model` keeps it."""
        return learn_style(self, files, name, StyleConfig(**settings), replace=replace,
                           quiet=not self.progress).composer

    @property
    def styles(self) -> dict[str, dict]:
        """The genres learnt from users' music and where each came from (``musicflow style learn``)."""
        return dict(self.ck.info.get("styles") or {})

    def save_model(self, path: str | Path) -> Path:
        """Write the model (with any styles learnt into it) as a checkpoint, atomically."""
        return self.ck.save(path)
