"""The one note-list type every reader returns and the MIDI writer takes.

Time is measured in quarter-note beats, never seconds, so tempo changes cannot distort the grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Note:
    """One sounding note: MIDI ``pitch``, ``start`` and ``end`` in quarter-note beats.

    >>> Note(60, 0.0, 1.0).duration
    1.0
    """

    pitch: int
    start: float
    end: float
    velocity: int = 80

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class Piece:
    """A piece of music as notes plus the timing facts the grid needs.

    ``bar_lines`` are the beats where full bars begin (a pickup bar is not one); ``time_signatures``
    and ``tempos`` are ``(beat, ...)`` change lists. ``dropped`` counts what a reader left out and
    why (``{"drum notes": 120}``), so callers can report it in one line.

    >>> p = Piece([Note(60, 0.0, 1.0)], bar_lines=[0.0])
    >>> p.length_beats
    1.0
    """

    notes: list[Note]
    bar_lines: list[float] = field(default_factory=lambda: [0.0])
    time_signatures: list[tuple[float, int, int]] = field(default_factory=lambda: [(0.0, 4, 4)])
    tempos: list[tuple[float, float]] = field(default_factory=lambda: [(0.0, 120.0)])
    title: str = ""
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def length_beats(self) -> float:
        return max((n.end for n in self.notes), default=0.0)

    @property
    def tempo(self) -> float:
        """The first tempo in quarter notes per minute."""
        return self.tempos[0][1] if self.tempos else 120.0

    def summary(self) -> str:
        """One line saying what was kept and what was left out."""
        kept = f"{len(self.notes)} notes, {len(self.bar_lines)} bars"
        if not self.dropped:
            return kept
        gone = ", ".join(f"{v} {k}" for k, v in sorted(self.dropped.items()) if v)
        return f"{kept}; dropped {gone}" if gone else kept


def bar_lines_from_signatures(
    time_signatures: list[tuple[float, int, int]], end: float, start: float = 0.0
) -> list[float]:
    """Bar lines (in beats) implied by time-signature changes, up to ``end``.

    >>> bar_lines_from_signatures([(0.0, 3, 4)], 7.0)
    [0.0, 3.0, 6.0]
    >>> bar_lines_from_signatures([(0.0, 4, 4), (4.0, 6, 8)], 10.0)
    [0.0, 4.0, 7.0]
    """
    sigs = sorted(time_signatures) or [(0.0, 4, 4)]
    if sigs[0][0] > start:
        sigs.insert(0, (start, 4, 4))
    bars: list[float] = []
    for i, (beat, num, den) in enumerate(sigs):
        stop = sigs[i + 1][0] if i + 1 < len(sigs) else end
        length = num * 4.0 / den
        b = beat
        while b < stop - 1e-9 and b < end - 1e-9:
            bars.append(round(b, 6))
            b += length
    return bars
