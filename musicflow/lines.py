"""A tune's line: what a piece planned as one voice (an outline with voices 1) decodes to.

A flow that decides a beat's cells together can put a stray second note under a tune, end its
notes a step early, or drop a long note's sustain for a whole beat. :func:`one_line` keeps one
line per step, :func:`hold_over` holds a note over a beat that comes out silent, and
:func:`bridge_rests` sounds a note on through a short rest; :func:`musicflow.sampling.generate`
applies them to the neural ODE's one-voice pieces (``CNFConfig.one_voice``).
"""

from __future__ import annotations

import numpy as np


def line_pitch(held: np.ndarray) -> np.ndarray:
    """The pitch that carries a one-line piece's line at a step sounding ``held`` ``(B, P)``: its
    highest sounding pitch, -1 where nothing sounds."""
    return np.where(held.any(1), held.shape[1] - 1 - np.argmax(held[:, ::-1], axis=1), -1)


def hold_over(chunk: np.ndarray, held: np.ndarray, may: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A one-line chunk ``(B, 2, P, T)`` (:func:`one_line`) that sounds nothing, right after a step
    that sounds a note (the highest of ``held`` ``(B, P)``), holds that note through the chunk
    instead, where ``may`` ``(B,)`` allows it: the caller forbids a second window in a row. Returns
    the chunk and which rows were held over.

    A flow that decides a beat at a time must restate a long note's sustain in every beat it
    spans; where it fails, a hole opens in the middle of a phrase. One beat held over mends a
    dropped sustain; a longer rest still falls silent, and a one-beat rest right after a note is
    lost (``docs/generation.md``).

    >>> c = np.zeros((2, 2, 3, 2), np.float32); c[1, :, 0, 0] = 1
    >>> held = np.array([[True, True, False], [False, True, False]])
    >>> out, did = hold_over(c, held, np.array([True, True]))
    >>> out[0, 1].astype(int).tolist(), bool(out[0, 0].any()), did.tolist()  # pitch 1 held, unstruck
    ([[0, 0], [1, 1], [0, 0]], False, [True, False])
    """
    out = chunk.copy()
    top = line_pitch(held)
    did = may & (top >= 0) & ~out[:, 1].any(axis=(1, 2))
    out[did, 1, top[did], :] = 1
    return out, did


def bridge_rests(rolls: np.ndarray, lines: np.ndarray, start: int = 0, gap: int = 2) -> np.ndarray:
    """Rolls ``(B, 2, P, T)`` in which each one-line piece (``lines`` ``(B,)``) sounds its note on
    through every rest of at most ``gap`` steps that lies between two notes, from step ``start``
    on (a continuation leaves its prefix alone). The rest goes to the note before it (the highest
    it sounds), held unstruck.

    A flow that decides a beat at a time ends a tune's notes a step or two early, so its tunes
    rest for a sixteenth or an eighth many times more often than real ones, which breathe at phrase
    ends in rests of a beat or more; those stay (measured in ``docs/experiments.md``).

    >>> r = np.zeros((2, 2, 3, 8), np.float32); r[:, :, 1, [0, 3, 7]] = 1; r[:, 1, 1, 1] = 1
    >>> bridge_rests(r, np.array([True, False]))[:, 1, 1].astype(int).tolist()  # rests of 1 and 3
    [[1, 1, 1, 1, 0, 0, 0, 1], [1, 1, 0, 1, 0, 0, 0, 1]]
    >>> r = np.zeros((1, 2, 3, 4), np.float32); r[0, :, :2, 0] = 1; r[0, :, 2, 3] = 1
    >>> bridge_rests(r, np.array([True]))[0, 1].astype(int).tolist()  # the higher note goes on
    [[1, 0, 0, 0], [1, 1, 1, 0], [0, 0, 0, 1]]
    """
    out = rolls.copy()
    for b in np.flatnonzero(lines):
        sounding = out[b, 1].any(0)
        edge = np.diff(np.r_[1, sounding.astype(np.int8), 1])
        for t, e in zip(np.flatnonzero(edge == -1), np.flatnonzero(edge == 1)):
            if t >= max(start, 1) and e < len(sounding) and e - t <= gap:
                top = line_pitch(out[b, 1, :, t - 1][None] > 0)[0]
                out[b, 1, top, t:e] = 1
    return out


def one_line(chunk: np.ndarray, values: np.ndarray, held: np.ndarray | None) -> np.ndarray:
    """A clean chunk ``(B, 2, P, T)`` held to one voice, for pieces whose outline plans one
    (voices 1: a tune). At each step the line either goes on with the note it sounds, where the
    chunk sustains that note without striking it again, or starts one of the step's new onsets,
    whichever the model's continuous output ``values`` ``(B, 2, P, T)`` holds more strongly (the
    sustain cell of the going note, the onset cells of the new ones; ties keep the going note).
    Every other cell falls silent. ``held`` ``(B, P)``: what the step before the chunk sounds (its
    highest pitch carries the line).

    A flow that decides a beat's cells together can put a stray second note under a tune; the
    outline says there is none, so the line keeps its own notes and loses only the strays.

    >>> c = np.zeros((1, 2, 3, 2), bool); c[0, :, 0, 0] = c[0, :, 2, 0] = True; c[0, 1, 0, 1] = True
    >>> v = np.zeros((1, 2, 3, 2)); v[0, 0, 2, 0] = 0.9; v[0, 0, 0, 0] = 0.7
    >>> one_line(c, v, None)[0, 1].astype(int).tolist()  # the stronger onset wins; row 0 then rests
    [[0, 0], [0, 0], [1, 0]]
    """
    on, sus = chunk[:, 0] > 0, chunk[:, 1] > 0
    b, _, t_len = sus.shape
    rows = np.arange(b)
    cur = np.full(b, -1)
    if held is not None:
        cur = line_pitch(held)
    keep = np.zeros_like(sus)
    for t in range(t_len):
        at = cur.clip(0)
        goes_on = (cur >= 0) & sus[rows, at, t] & ~on[rows, at, t]
        stay = np.where(goes_on, values[rows, 1, at, t], -np.inf)
        score = np.where(on[..., t], values[:, 0, :, t], -np.inf)
        best = score.max(1)
        new = np.where(np.isfinite(best), score.argmax(1), -1)
        cur = np.where(goes_on & (stay >= best), cur, new)
        keep[rows[cur >= 0], cur[cur >= 0], t] = True
    return np.stack([on & keep, keep], axis=1).astype(chunk.dtype)
