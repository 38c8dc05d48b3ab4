"""From request to MIDI written: the local server against the command line, in the same run.

The server (``musicflow serve``, here in-process on a free loopback port with the default model
loaded) answers ``POST /compose`` for an 8-bar piece and ``POST /infill`` for 4 bars of an 8-bar
piece; the time is from sending the request to the reply naming the written file. The baseline is
the command a DAW script would otherwise run, end to end: ``musicflow compose --bars 8`` and
``musicflow infill --bars 3-6``, each a new process that imports torch and loads the checkpoint.
Medians over ``--repeats`` seeds (``--seed`` ..), and the ratios CLI / server.

    python benchmarks/bench_serve.py [--repeats 5] [--genre celtic]
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import save  # noqa: E402

from musicflow.compose import Composer  # noqa: E402
from musicflow.server import ComposeServer, ServeConfig  # noqa: E402


def post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read())


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="keyflow")
    ap.add_argument("--genre", default="celtic")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    seeds = range(args.seed, args.seed + args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        c = Composer.load(args.model)
        srv = ComposeServer(c, tmp / "served", ServeConfig(port=0))
        start_s = time.perf_counter() - t
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        source = c.save(c.compose_result(args.genre, seed=0, bars=8).midi, tmp / "source.mid")
        midi = base64.b64encode(source.read_bytes()).decode()
        post(srv.url + "/compose", {"genre": args.genre, "bars": 1, "seed": 0})  # warm the first call
        served = {
            "compose_8_bars": [timed(lambda s=s: post(srv.url + "/compose",
                                                      {"genre": args.genre, "bars": 8, "seed": s}))
                               for s in seeds],
            "infill_4_bars": [timed(lambda s=s: post(srv.url + "/infill",
                                                     {"midi": midi, "span": "3-6", "seed": s}))
                              for s in seeds],
        }
        srv.shutdown()
        srv.close()
        cli = [sys.executable, "-m", "musicflow"]
        model = ["--model", args.model]
        command = {
            "compose_8_bars": [timed(lambda s=s: subprocess.run(
                [*cli, "compose", *model, "-g", args.genre, "--bars", "8", "--seed", str(s), "-q",
                 "-o", str(tmp / f"cli-{s}.mid")], check=True, capture_output=True)) for s in seeds],
            "infill_4_bars": [timed(lambda s=s: subprocess.run(
                [*cli, "infill", str(source), *model, "--bars", "3-6", "--seed", str(s), "-q",
                 "-o", str(tmp / f"cli-infill-{s}.mid")], check=True, capture_output=True)) for s in seeds],
        }
    out = {"model": args.model, "genre": args.genre, "repeats": args.repeats,
           "seeds": f"{seeds[0]}..{seeds[-1]}",
           "server_start_s": round(start_s, 2), "note": "median seconds from request to MIDI written; "
           "CLI: a new process per call (import, checkpoint load, compose, write)"}
    for task in served:
        s, k = statistics.median(served[task]), statistics.median(command[task])
        out[task] = {"server_s": round(s, 3), "cli_s": round(k, 3), "cli_over_server": round(k / s, 1)}
        print(f"{task}: server {s:.3f} s, CLI {k:.3f} s, {k / s:.1f}x", flush=True)
    save("bench_serve", out)


if __name__ == "__main__":
    main()
