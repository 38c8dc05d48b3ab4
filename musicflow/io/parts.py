"""Parts on their own tracks: one merged line of notes separated into voices by voice leading.

A chorale comes back as soprano, alto, tenor and bass; a tune with an accompaniment as melody,
accompaniment and bass. Notes are taken in the order they start; the notes that start together,
highest first, go to free voices in the same order (voices do not cross), choosing among the
order-keeping assignments the one that moves each voice least from its last pitch (continuity),
a voice that is still holding a note being busy. More notes at once than voices go to the nearest
voice. The first chord sets each voice's register.

>>> notes = [(72, 0, 4), (64, 0, 2), (55, 0, 4), (48, 0, 4), (65, 2, 4)]
>>> separate(notes, 4)
[0, 1, 2, 3, 1]
"""

from __future__ import annotations

import itertools

import numpy as np
import pretty_midi

from musicflow.errors import MusicflowError

#: The part layouts and the names of their tracks, top to bottom.
LAYOUTS = {"satb": ("soprano", "alto", "tenor", "bass"), "melody-bass": ("melody", "accompaniment", "bass")}
PARTS = ("one", "auto", *LAYOUTS)


def separate(notes, voices: int) -> list[int]:
    """The voice (0 = top) of each ``(pitch, start, end)`` note, by voice leading (the module)."""
    order = sorted(range(len(notes)), key=lambda i: (notes[i][1], -notes[i][0]))
    last: list[float | None] = [None] * voices
    busy = [-np.inf] * voices  # when each voice's current note ends
    out = [0] * len(notes)
    for _, group in itertools.groupby(order, key=lambda i: notes[i][1]):
        group = list(group)
        t = notes[group[0]][1]
        free = [v for v in range(voices) if busy[v] <= t]
        take = group[:len(free)]
        best, best_cost = None, np.inf
        for combo in itertools.combinations(free, len(take)):
            cost = 0.0
            for i, v in zip(take, combo):
                p = notes[i][0]
                ref = last[v] if last[v] is not None else _first_register(notes, group, v, voices)
                cost += abs(p - ref)
                # a held note above (below) a free voice must stay above (below) its new note
                cost += sum(8.0 for u in range(voices) if busy[u] > t and last[u] is not None
                            and ((u < v and last[u] < p) or (u > v and last[u] > p)))
            if cost < best_cost:
                best, best_cost = combo, cost
        for i, v in zip(take, best or ()):
            out[i], last[v], busy[v] = v, notes[i][0], notes[i][2]
        for i in group[len(take):]:  # more notes than free voices: the nearest voice doubles
            v = min(range(voices), key=lambda u: abs(notes[i][0] - (last[u] if last[u] is not None else 60)))
            out[i], busy[v] = v, max(busy[v], notes[i][2])
    return out


def _first_register(notes, group, v: int, voices: int) -> float:
    """Where voice ``v`` starts: its rank in the first chord, spread over the chord's range."""
    pitches = sorted((notes[i][0] for i in group), reverse=True)
    lo, hi = pitches[-1], pitches[0]
    return hi - (hi - lo) * v / max(voices - 1, 1) if len(pitches) > 1 else hi - 7 * v


def auto_layout(notes) -> str:
    """``satb`` for music that mostly sounds three or more notes at once, ``melody-bass`` for a
    line with an accompaniment, ``one`` for a single line."""
    if not notes:
        return "one"
    ends = max(e for _, _, e in notes)
    grid = np.zeros(int(np.ceil(ends * 4)) + 1)
    for _, s, e in notes:
        grid[int(s * 4):max(int(e * 4), int(s * 4) + 1)] += 1
    sounding = grid[grid > 0]
    mean = float(sounding.mean()) if len(sounding) else 0.0
    return "satb" if mean >= 2.5 else "melody-bass" if mean >= 1.3 else "one"


def check_programs(programs: dict[str, int] | None, layout: str) -> None:
    """A one-line error unless ``programs`` (by part name, or ``None``) fit ``layout``: programs
    per part need parts, and name parts of :data:`LAYOUTS`."""
    if programs is None:
        return
    if layout == "one":
        raise MusicflowError("program: a program per part needs parts (satb, melody-bass or auto)")
    known = {name for names in LAYOUTS.values() for name in names}
    unknown = sorted(set(programs) - known)
    if unknown:
        raise MusicflowError(f"program: no part named {', '.join(unknown)} "
                             f"(parts: {', '.join(sorted(known))})")


def split_parts(pm: pretty_midi.PrettyMIDI, layout: str = "auto",
                programs: dict[str, int] | None = None) -> pretty_midi.PrettyMIDI:
    """``pm`` with its notes (all tracks but drums, merged) on one named track per part of
    ``layout`` (:data:`PARTS`; ``one`` returns ``pm`` unchanged), each with its program in
    ``programs`` (by part name) or the first track's; empty parts are left out."""
    if layout not in PARTS:
        raise MusicflowError(f"parts {layout!r}: use one of {', '.join(PARTS)}")
    check_programs(programs, layout)
    if layout == "one":
        return pm
    tracks = [inst for inst in pm.instruments if not inst.is_drum]
    notes = sorted((n for inst in tracks for n in inst.notes), key=lambda n: (n.start, -n.pitch))
    if layout == "auto":
        beats = pm.get_beats() if notes else np.array([0.0])
        spb = float(np.median(np.diff(beats))) if len(beats) > 1 else 0.5
        layout = auto_layout([(n.pitch, n.start / spb, n.end / spb) for n in notes])
        if layout == "one":
            return pm
    names = LAYOUTS[layout]
    voice = separate([(n.pitch, round(n.start, 6), round(n.end, 6)) for n in notes], len(names))
    if layout == "melody-bass":  # the top voice is the melody, the lowest the bass, the rest between
        voice = [0 if v == 0 else 2 if v == len(names) - 1 else 1 for v in voice]
    program = tracks[0].program if tracks else 0
    out = pretty_midi.PrettyMIDI(initial_tempo=float(pm.get_tempo_changes()[1][0]) if notes else 120.0)
    out.time_signature_changes = list(pm.time_signature_changes)
    out.key_signature_changes = list(pm.key_signature_changes)
    for v, name in enumerate(names):
        inst = pretty_midi.Instrument(program=(programs or {}).get(name, program), name=name)
        inst.notes = [n for n, w in zip(notes, voice) if w == v]
        if inst.notes:
            out.instruments.append(inst)
    out.instruments += [inst for inst in pm.instruments if inst.is_drum]
    return out
