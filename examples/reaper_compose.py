"""REAPER: a ReaScript (Python) that asks a running ``musicflow serve`` for a clip and inserts it.

Start the server once, outside REAPER (it keeps the model loaded; the first request is then fast):

    musicflow serve --out ~/Music/musicflow

In REAPER, load this file as a ReaScript (Actions > Show action list > New action > Load
ReaScript), select a track and run it: a new 8-bar clip lands at the edit cursor. Edit ``GENRE``,
``BARS``, ``URL`` and ``OUT`` (the server's ``--out`` folder) below. Run outside REAPER, it prints
the path of the clip it got.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_client import request  # noqa: E402 (beside this file)

GENRE = {"celtic": 0.7, "chorale": 0.3}
BARS = 8
URL = "http://127.0.0.1:9000"
OUT = os.path.expanduser("~/Music/musicflow")


def compose_clip(genre=GENRE, bars: int = BARS, seed: int | None = None, url: str = URL, out: str = OUT,
                 insert=None) -> str:
    """Ask the server for one piece and return its path; ``insert(path, 0)`` (REAPER's
    ``RPR_InsertMedia``) puts it on the selected track at the edit cursor."""
    body = {"genre": genre, "bars": bars, **({"seed": seed} if seed is not None else {})}
    reply = request("compose", body, url)
    if "error" in reply:
        raise RuntimeError(f"musicflow serve: {reply['error']}")
    path = os.path.join(out, reply["files"][0])
    if insert is not None:
        insert(path, 0)
    return path


if __name__ == "__main__":
    insert = globals().get("RPR_InsertMedia")  # defined when REAPER runs the script
    print(compose_clip(insert=insert))
