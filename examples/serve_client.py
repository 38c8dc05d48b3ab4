"""Ask a running ``musicflow serve`` for music: what a DAW script does, with the standard library only.

Start the server once (it keeps the model loaded), then call it as often as you like:

    musicflow serve --out ~/Music/musicflow          # prints the address, http://127.0.0.1:9000
    python examples/serve_client.py compose --genre celtic --bars 8 --seed 1
    python examples/serve_client.py infill my.mid --span 5-8
    python examples/serve_client.py classify my.mid

Each call prints the reply as JSON; files land in the server's ``--out`` folder, so a DAW that
watches it (or a script that imports the named file) picks them up. In REAPER, a Python ReaScript
can import this file and call :func:`request`, then insert the file with ``RPR_InsertMedia``; Max
for Live and other OSC/HTTP-speaking hosts send the same JSON to the same paths.
"""

from __future__ import annotations

import argparse
import base64
import json
import urllib.error
import urllib.request
from pathlib import Path


def request(endpoint: str, body: dict, url: str = "http://127.0.0.1:9000", timeout: float = 600.0) -> dict:
    """POST ``body`` to ``url/endpoint``; the reply (or the server's one-line error) as a dict."""
    req = urllib.request.Request(f"{url}/{endpoint}", data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        return json.loads(e.read())


def midi_field(path: str | Path) -> str:
    """A MIDI file as the servers' ``midi`` field (base64)."""
    return base64.b64encode(Path(path).read_bytes()).decode()


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("endpoint", choices=["compose", "continue", "infill", "variations", "classify"])
    ap.add_argument("midi", nargs="?", help="the MIDI file (all but compose)")
    ap.add_argument("--url", default="http://127.0.0.1:9000")
    ap.add_argument("--genre", help='a genre, or a mix as JSON: \'{"celtic": 0.7, "chorale": 0.3}\'')
    ap.add_argument("--bars", type=int)
    ap.add_argument("--span", help="infill: the bars to compose anew, 5-8")
    ap.add_argument("--n", type=int)
    ap.add_argument("--seed", type=int)
    args = ap.parse_args(argv)
    body: dict = {}
    if args.midi:
        body["midi"] = midi_field(args.midi)
    if args.genre:
        body["genre"] = json.loads(args.genre) if args.genre.startswith("{") else args.genre
    for key in ("bars", "span", "n", "seed"):
        if getattr(args, key) is not None:
            body[key] = getattr(args, key)
    reply = request(args.endpoint, body, args.url)
    print(json.dumps(reply, indent=1))
    return reply


if __name__ == "__main__":
    main()
