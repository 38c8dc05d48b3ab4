"""The server's OSC front end: what Max for Live, Pure Data and REAPER speak natively.

``musicflow serve --osc-port 9001`` listens for OSC messages on UDP beside the HTTP server and
answers from the same loaded model (:class:`~musicflow.server.ComposeService`):

- ``/musicflow/compose``, ``/musicflow/continue``, ``/musicflow/infill``,
  ``/musicflow/variations``, ``/musicflow/classify``: one string argument, the request's JSON
  object as for HTTP (``{"genre": "celtic", "bars": 8}``), and optionally an int last, the port
  to reply to (else the port the message came from);
- the reply goes back to the sender's address as ``/musicflow/reply`` with one string, JSON:
  the HTTP reply plus ``"endpoint"``, ``"status"`` and ``"paths"`` (the files' full paths, ready
  for a DAW to import). A malformed message gets a reply with an ``"error"``; others are answered.

It listens on 127.0.0.1 unless told otherwise. A UDP datagram holds at most 64 KB, so a MIDI file
sent in (base64) must be small; the HTTP front end takes up to 4 MB.

Uses ``python-osc`` (public domain, pure Python), installed with ``pip install "musicflow[osc]"``.

>>> ADDRESS
'/musicflow/'
"""

from __future__ import annotations

import json
import threading

from musicflow.errors import MusicflowError
from musicflow.server import ENDPOINTS, ComposeService

#: The prefix of every request address; replies go to ``ADDRESS + "reply"``.
ADDRESS = "/musicflow/"


class OSCFrontEnd:
    """An OSC UDP server answering from ``service`` (one thread per message; the service's lock
    keeps the model to one request at a time)."""

    def __init__(self, service: ComposeService, host: str = "127.0.0.1", port: int = 9001):
        try:
            from pythonosc.dispatcher import Dispatcher
            from pythonosc.osc_server import ThreadingOSCUDPServer
        except ImportError:
            raise MusicflowError('OSC needs python-osc: pip install "musicflow[osc]"') from None
        self.service = service
        dispatcher = Dispatcher()
        dispatcher.set_default_handler(self._message, needs_reply_address=True)
        self.server = ThreadingOSCUDPServer((host, port), dispatcher)
        self.server.daemon_threads = True
        self.thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        return self.server.server_address[:2]

    def start(self) -> OSCFrontEnd:
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _message(self, sender: tuple[str, int], address: str, *args) -> None:
        endpoint = address[len(ADDRESS):] if address.startswith(ADDRESS) else ""
        ports = [a for a in args if isinstance(a, int) and not isinstance(a, bool) and 0 < a < 65536]
        port = ports[-1] if ports else sender[1]
        if endpoint not in ENDPOINTS:
            status, reply = 404, {"error": f"no such address {address}; use {ADDRESS}<{'|'.join(ENDPOINTS)}>"}
        elif not args or not isinstance(args[0], str):
            status, reply = 400, {"error": "give the request as one string argument of JSON"}
        else:
            try:
                req = json.loads(args[0] or "{}")
            except (ValueError, RecursionError):
                status, reply = 400, {"error": "request: not JSON"}
            else:
                status, reply = self.service.handle(endpoint, req)
        reply = {**reply, "endpoint": endpoint, "status": status}
        if "files" in reply:
            reply["paths"] = [str((self.service.out / f).resolve()) for f in reply["files"]]
        self._send(sender[0], port, json.dumps(reply))

    def _send(self, host: str, port: int, text: str) -> None:
        from pythonosc.udp_client import SimpleUDPClient

        try:
            SimpleUDPClient(host, port).send_message(ADDRESS + "reply", text)
        except OSError:  # the reply does not fit a datagram, or nobody listens: say less
            reply = json.loads(text)
            short = {k: reply[k] for k in ("endpoint", "status", "files", "paths", "error") if k in reply}
            try:
                SimpleUDPClient(host, port).send_message(ADDRESS + "reply", json.dumps(short))
            except OSError:
                pass
