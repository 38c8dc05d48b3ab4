"""``musicflow serve``: the model kept loaded behind a local HTTP server (see musicflow/server.py)."""

from __future__ import annotations

import signal

import click

from musicflow.cli.options import composer, model_option, quiet_option
from musicflow.errors import MusicflowError


@click.command("serve")
@model_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (the default answers this machine only).")
@click.option("--port", type=int, default=9000, show_default=True, help="Port (0: any free one, printed).")
@click.option("--out", default="musicflow-out", show_default=True,
              help="Folder the MIDI files are written to.")
@click.option("--osc-port", type=int, default=None,
              help="Also answer OSC messages on this UDP port (/musicflow/compose ...; needs python-osc).")
@click.option("--max-pending", type=int, default=64, show_default=True,
              help="Requests that may wait for the model at once; more are turned away (503).")
@quiet_option
def serve_cmd(model, host, port, out, osc_port, max_pending, quiet) -> None:
    """Keep a model loaded and answer compose, continue, infill, variations and classify requests
    (JSON over HTTP: POST /compose {"genre": "celtic", "bars": 8}); Ctrl-C stops it."""
    from musicflow.server import ComposeServer, ServeConfig

    if max_pending < 1:
        raise MusicflowError(f"--max-pending must be at least 1, got {max_pending}")
    c = composer(model)
    try:
        server = ComposeServer(c, out, ServeConfig(host, port, max_pending=max_pending),
                               log=None if quiet else lambda line: click.echo(line, err=True))
    except OSError as e:
        raise MusicflowError(f"{host}:{port}: cannot listen ({e.strerror}); --port 0 picks a free "
                             "port") from None
    click.echo(f"serving {c.ck.kind} on {server.url}: POST /compose, /continue, /infill, /variations, "
               f"/classify; writing to {server.out}; Ctrl-C stops", nl=True)
    osc = None
    if osc_port is not None:
        from musicflow.osc import OSCFrontEnd

        try:
            osc = OSCFrontEnd(server.service, host, osc_port).start()
        except OSError as e:
            server.server_close()
            raise MusicflowError(f"{host}:{osc_port}: cannot listen for OSC ({e.strerror})") from None
        click.echo(f"answering OSC on udp://{osc.address[0]}:{osc.address[1]} (/musicflow/compose ...)")
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: listening on {host}, so other machines can reach it", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the close short
    finally:
        if osc is not None:
            osc.close()
        server.close()
        click.echo(f"stopped after {server.served} requests")
