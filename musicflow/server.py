"""A local server that keeps a model loaded and answers composing requests over HTTP.

A DAW script (REAPER's ReaScript, a Max patch, a Python script in Ableton) pays Python, torch and
the checkpoint once, when the server starts, not on every call. ``musicflow serve`` answers JSON
``POST`` requests on 127.0.0.1 by default:

================  ==============================================================================
``/compose``      ``{"genre": "celtic" or {"celtic": 0.7, "chorale": 0.3}, "bars": 8, "n": 1,
                  "seed": 1, ...}``: new pieces
``/continue``     ``{"midi": BASE64, "bars": 8, ...}``: the piece and new bars after it
``/infill``       ``{"midi": BASE64, "span": "5-8", "candidates": 16, ...}``: those bars anew
``/variations``   ``{"midi": BASE64, "n": 4, "amount": 0.3, ...}``
``/classify``     ``{"midi": BASE64}``: genre probabilities
``GET /health``   the model, its genres, the requests served
================  ==============================================================================

Other keys are the composing settings of :class:`~musicflow.compose.Options` that the entry point
takes (``tempo``, ``key``, ``program``, ``temperature``, ...). A reply names the MIDI files it wrote
into the server's output folder (names the server makes, so nothing is written elsewhere), the
seeds, and with ``"return_midi": true`` carries the files' bytes too. A bad request gets a JSON
``{"error": ...}`` with status 400 (413 for a body over the limit, 503 when the server is busy)
and the server goes on serving.

The model answers one request at a time (a lock); requests wait at most ``wait_s`` seconds for it,
and at most ``max_pending`` wait at once. Files are written atomically, so stopping the server
(Ctrl-C) never leaves half a file.

>>> ServeConfig().host
'127.0.0.1'
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pretty_midi

from musicflow.errors import MusicflowError

#: What each endpoint takes besides the composing settings, and its defaults.
ENDPOINTS = ("compose", "continue", "infill", "variations", "classify")
#: The most pieces one request may ask for, the most bars of each (and of a piece sent in), and the
#: most candidates a guided or infilling request may grow.
MAX_PIECES, MAX_BARS, MAX_CANDIDATES = 16, 128, 64


@dataclass(frozen=True)
class ServeConfig:
    """Where the server listens and what it bounds."""

    host: str = "127.0.0.1"
    port: int = 9000
    max_body: int = 4 * 2**20  # bytes of one request
    max_pending: int = 64  # requests waiting for the model at once
    wait_s: float = 120.0  # the longest a request waits for the model


class ComposeService:
    """What every front end (HTTP, OSC) shares: the Composer, the output folder, the model lock and
    the bound on waiting requests. :meth:`handle` answers one request as ``(status, reply)``."""

    def __init__(self, composer, out: str | Path, cfg: ServeConfig | None = None):
        self.cfg = cfg or ServeConfig()
        self.composer, self.out = composer, Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.model_lock = threading.Lock()
        self.pending = threading.BoundedSemaphore(self.cfg.max_pending)
        # Numbering goes on from the files already in the folder, so a restart overwrites nothing.
        taken = [int(m.group(1)) for f in self.out.glob("*.mid") if (m := re.match(r"[a-z]+-(\d+)-", f.name))]
        self.counter = itertools.count(max(taken, default=0) + 1)
        self.served = 0

    def handle(self, endpoint: str, req: dict) -> tuple[int, dict]:
        """``(HTTP status, reply)`` for one request: 200 and the reply, 400 for bad arguments, 503
        when too many wait or the model stays busy, 500 for a fault of ours."""
        if endpoint not in ENDPOINTS:
            return 404, {"error": f"no such endpoint {endpoint!r}; use {', '.join(ENDPOINTS)}"}
        if not isinstance(req, dict):
            return 400, {"error": "body: give a JSON object"}
        if not self.pending.acquire(blocking=False):
            return 503, {"error": f"busy: {self.cfg.max_pending} requests already wait"}
        try:
            if not self.model_lock.acquire(timeout=self.cfg.wait_s):
                return 503, {"error": f"busy: waited {self.cfg.wait_s:.0f} s for the model"}
            try:
                reply = self.answer(endpoint, req)
                self.served += 1
                return 200, reply
            finally:
                self.model_lock.release()
        except MusicflowError as e:
            return 400, {"error": str(e)}
        except (TypeError, ValueError) as e:  # a setting of the wrong type, say
            return 400, {"error": f"{type(e).__name__}: {e}"}
        except Exception as e:  # a fault of ours: say so, and keep serving
            return 500, {"error": f"internal error: {type(e).__name__}: {e}"}
        finally:
            self.pending.release()

    def wait_idle(self) -> None:
        """Wait for the request the model is answering (its files are written under the lock) and
        keep the lock, so that no waiting request starts once the server is closing."""
        self.model_lock.acquire(timeout=self.cfg.wait_s)

    def answer(self, endpoint: str, req: dict) -> dict:
        """The reply to one request (called with the model lock held); bad arguments raise
        :class:`MusicflowError`."""
        c = self.composer
        req = dict(req)
        want_bytes = bool(req.pop("return_midi", False))
        if req.get("candidates") is not None:
            _count(req["candidates"], "candidates", MAX_CANDIDATES)
        if endpoint == "classify":
            return {"probabilities": c.classify(_midi(req.pop("midi", None)))}
        if endpoint == "compose":
            n = _count(req.pop("n", 1), "n")
            genre, seed = req.pop("genre", None), req.pop("seed", None)
            _bars(req)
            first = c.compose_result(genre, seed=seed, **req)
            results = [first] + [c.compose_result(genre, seed=first.seed + i, **req) for i in range(1, n)]
        elif endpoint == "continue":
            midi, genre, seed = _midi(req.pop("midi", None)), req.pop("genre", None), req.pop("seed", None)
            _bars(req)
            results = [c.continue_(midi, genre, seed=seed, **req)]
        elif endpoint == "infill":
            midi, span = _midi(req.pop("midi", None)), req.pop("span", None)
            if not isinstance(span, (str, list)):
                raise MusicflowError('span: give the bars to compose anew, "5-8" or [5, 8]')
            results = [c.infill(midi, span, req.pop("genre", None), **req)]
        else:  # variations
            midi, n = _midi(req.pop("midi", None)), _count(req.pop("n", 4), "n")
            results = c.variations(midi, n=n, **req)
        files, out = [], {"seeds": [r.seed for r in results], "files": [], "genre": results[0].genre}
        for r in results:
            path = self.out / f"{endpoint}-{next(self.counter):05d}-seed{r.seed}.mid"
            while path.exists():  # another server writing into the same folder
                path = self.out / f"{endpoint}-{next(self.counter):05d}-seed{r.seed}.mid"
            c.save(r.midi, path)
            files.append(path)
        out["files"] = [p.name for p in files]
        if want_bytes:
            out["midi"] = [base64.b64encode(p.read_bytes()).decode() for p in files]
        return out



class ComposeServer(ThreadingHTTPServer):
    """The HTTP front end: one thread per connection, answers from a :class:`ComposeService`."""

    daemon_threads = True
    request_queue_size = 128  # connections the OS holds before accept (the default 5 drops a burst)

    def __init__(self, composer, out: str | Path, cfg: ServeConfig | None = None, log=None,
                 service: ComposeService | None = None):
        self.service = service or ComposeService(composer, out, cfg)
        self.cfg, self.composer, self.out = self.service.cfg, self.service.composer, self.service.out
        self.log = log
        super().__init__((self.cfg.host, self.cfg.port), _Handler)

    @property
    def served(self) -> int:
        return self.service.served

    @property
    def model_lock(self) -> threading.Lock:
        return self.service.model_lock

    def close(self) -> None:
        """Stop listening, then wait for the request in hand, so nothing is left half-written."""
        self.server_close()
        self.service.wait_idle()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


def _midi(data) -> pretty_midi.PrettyMIDI:
    if not isinstance(data, str) or not data:
        raise MusicflowError("midi: give the MIDI file's bytes, base64-encoded")
    try:
        raw = base64.b64decode(data, validate=True)
        pm = pretty_midi.PrettyMIDI(io.BytesIO(raw))
        beats = pm.time_to_tick(pm.get_end_time()) / pm.resolution
    except Exception as e:  # any decoding or parsing failure is the client's file
        raise MusicflowError(f"midi: not a readable MIDI file ({type(e).__name__})") from None
    if beats > 8 * MAX_BARS:
        raise MusicflowError(f"midi: {beats:.0f} beats long; at most {8 * MAX_BARS} here")
    return pm


def _count(n, name: str, most: int = MAX_PIECES) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= most:
        raise MusicflowError(f"{name} must be an integer from 1 to {most}, got {n!r}")
    return n


def _bars(req: dict) -> None:
    bars = req.get("bars", 8)
    if isinstance(bars, int) and not isinstance(bars, bool) and bars > MAX_BARS:
        raise MusicflowError(f"bars must be at most {MAX_BARS} here, got {bars}")


class _Handler(BaseHTTPRequestHandler):
    server: ComposeServer
    protocol_version = "HTTP/1.1"
    timeout = 30  # seconds a stalled or idle connection may hold its thread

    def log_message(self, fmt, *args) -> None:  # the server's own log, not stderr per request
        if self.server.log:
            self.server.log(f"{self.address_string()} {fmt % args}")

    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.rstrip("/") != "/health":
            self._reply(404, {"error": f"no such path {self.path}; GET /health, POST /{'|'.join(ENDPOINTS)}"})
            return
        c = self.server.composer
        self._reply(200, {"ok": True, "model": c.ck.kind, "genres": c.genres, "served": self.server.served})

    def do_POST(self) -> None:
        endpoint = self.path.strip("/")
        if endpoint not in ENDPOINTS:
            self._discard()
            self._reply(404, {"error": f"no such endpoint {self.path}; POST /{'|'.join(ENDPOINTS)}"})
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.close_connection = True
            self._reply(411, {"error": "Content-Length: give the body's length"})
            return
        if not 0 <= length <= self.server.cfg.max_body:
            self.close_connection = True
            self._reply(413, {"error": f"body of {length} bytes: at most {self.server.cfg.max_body}"})
            return
        try:
            req = json.loads(self.rfile.read(length) or b"{}")
        except (ValueError, RecursionError):
            self._reply(400, {"error": "body: not JSON"})
            return
        if not isinstance(req, dict):
            self._reply(400, {"error": "body: give a JSON object"})
            return
        self._serve(endpoint, req)

    def _serve(self, endpoint: str, req: dict) -> None:
        self._reply(*self.server.service.handle(endpoint, req))

    def _discard(self) -> None:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = 0
        if 0 < length <= self.server.cfg.max_body:
            self.rfile.read(length)
        else:
            self.close_connection = True
