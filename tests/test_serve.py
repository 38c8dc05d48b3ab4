"""The local server: every request type over loopback, bad requests answered and survived, many
at once, bounds on waiting, and a clean stop on SIGINT."""

from __future__ import annotations

import base64
import json
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import make_midi, tiny_keyflow

from musicflow.checkpoint import save_checkpoint
from musicflow.compose import Composer
from musicflow.roll import PianoRollSpec
from musicflow.server import ComposeServer, ServeConfig


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("serve") / "tiny.pt"
    spec = PianoRollSpec(low=60, pitches=12)
    return save_checkpoint(path, "keyflow", tiny_keyflow(0), spec, ["high", "low"], {})


@pytest.fixture
def server(checkpoint, tmp_path):
    srv = ComposeServer(Composer.load(checkpoint), tmp_path / "out", ServeConfig(port=0, wait_s=30))
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.close()


def call(srv, path: str, body=None, raw: bytes | None = None, method: str = "POST") -> tuple[int, dict]:
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(srv.url + path, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture
def tune(tmp_path) -> str:
    path = make_midi(tmp_path / "in.mid", [(60 + (b * 3) % 10, b / 2, b / 2 + 0.5) for b in range(64)])
    return base64.b64encode(path.read_bytes()).decode()


def test_every_request_type_answers_with_files_in_its_folder(server, tune):
    status, health = call(server, "/health", method="GET")
    assert status == 200 and health["genres"] == ["high", "low"]
    status, r = call(server, "/compose", {"genre": "low", "bars": 2, "seed": 4, "n": 2, "return_midi": True})
    assert status == 200 and r["seeds"] == [4, 5] and len(r["files"]) == 2
    written = list(r["files"])
    path = server.out / r["files"][0]
    assert base64.b64decode(r["midi"][0]) == path.read_bytes()
    api = server.composer.compose_result("low", seed=4, bars=2)  # the same piece as the API gives
    assert server.composer.save(api.midi, server.out.parent / "api.mid").read_bytes() == path.read_bytes()
    for endpoint, body in (("continue", {"midi": tune, "bars": 1, "seed": 1}),
                           ("infill", {"midi": tune, "span": "2-3", "seed": 1, "candidates": 2}),
                           ("variations", {"midi": tune, "n": 2, "amount": 0.5, "seed": 1})):
        status, r = call(server, f"/{endpoint}", body)
        assert status == 200, r
        assert all((server.out / f).is_file() for f in r["files"]) and r["files"][0].startswith(endpoint)
        written += r["files"]
    status, r = call(server, "/classify", {"midi": tune})
    assert status == 200 and sum(r["probabilities"].values()) == pytest.approx(1.0)
    assert sorted(f.name for f in server.out.iterdir()) == sorted(written)  # its own folder, nothing else


def test_a_hundred_bad_requests_each_get_an_error_and_the_server_goes_on(server, tune, tmp_path):
    long_path = make_midi(tmp_path / "long.mid", [(60, 0, 1), (62, 5000, 5001)])  # 5,000 beats
    long_tune = base64.b64encode(long_path.read_bytes()).decode()
    bad = [("/compose", {"genre": "jazz"}), ("/compose", {"bars": -1}), ("/compose", {"bars": 10**6}),
           ("/compose", {"n": 0}), ("/compose", {"n": "x"}), ("/compose", {"wobble": 1}),
           ("/compose", {"genre": {"low": -1}}), ("/continue", {"midi": "not base64!"}),
           ("/continue", {"midi": base64.b64encode(b"garbage").decode()}), ("/infill", {"midi": tune}),
           ("/infill", {"midi": tune, "span": "9-2"}), ("/classify", {}), ("/nowhere", {}),
           ("/variations", {"midi": tune, "amount": 3}), ("/compose", [1, 2]),
           ("/infill", {"midi": tune, "span": "1-1", "candidates": 10**7}),
           ("/continue", {"midi": long_tune})]
    raws = [b"{not json", b"\xff\xfe", b"null", b"[" * 100000]
    codes = []
    for i in range(100):
        if i % 6 == 5:
            status, r = call(server, "/compose", raw=raws[i % 4])
        else:
            path, body = bad[i % len(bad)]
            status, r = call(server, path, body)
        codes.append(status)
        assert 400 <= status < 500 and r["error"] and "\n" not in r["error"], (i, r)
    status, r = call(server, "/compose", {"genre": "high", "bars": 1, "seed": 1})
    assert status == 200 and len(r["files"]) == 1
    assert not list(server.out.glob("*.tmp")) and not list(server.out.glob(".*"))
    again = ComposeServer(server.composer, server.out, ServeConfig(port=0))  # a restart: nothing overwritten
    try:
        assert again.service.answer("compose", {"genre": "high", "bars": 1, "seed": 1})["files"] != r["files"]
    finally:
        again.server_close()


def test_a_body_over_the_limit_is_refused(checkpoint, tmp_path):
    srv = ComposeServer(Composer.load(checkpoint), tmp_path / "o", ServeConfig(port=0, max_body=1000))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        status, r = call(srv, "/classify", {"midi": "A" * 5000})
        assert status == 413 and "at most 1000" in r["error"]
        assert call(srv, "/health", method="GET")[0] == 200
    finally:
        srv.shutdown()
        srv.close()


def test_fifty_requests_at_once_are_all_answered(server):
    def one(i):
        return call(server, "/compose", {"genre": "low", "bars": 1, "seed": i})

    with ThreadPoolExecutor(50) as pool:
        replies = list(pool.map(one, range(50)))
    assert all(status == 200 for status, _ in replies)
    files = {r["files"][0] for _, r in replies}
    assert len(files) == 50 and all((server.out / f).is_file() for f in files)
    assert call(server, "/health", method="GET")[1]["served"] == 50


def test_waiting_is_bounded_in_count_and_time(checkpoint, tmp_path):
    cfg = ServeConfig(port=0, max_pending=1, wait_s=1)
    srv = ComposeServer(Composer.load(checkpoint), tmp_path / "o", cfg)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        srv.model_lock.acquire()  # the model busy with a long request
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(call, srv, "/compose", {"bars": 1})
            second = pool.submit(call, srv, "/compose", {"bars": 1})
            replies = sorted([first.result(), second.result()], key=lambda r: r[1]["error"])
        assert [s for s, _ in replies] == [503, 503]
        assert "already wait" in replies[0][1]["error"] and "waited" in replies[1][1]["error"]
        srv.model_lock.release()
        assert call(srv, "/compose", {"bars": 1, "seed": 2})[0] == 200
    finally:
        srv.shutdown()
        srv.close()


def test_serve_runs_as_a_command_and_stops_cleanly_on_sigint(checkpoint, tmp_path):
    out = tmp_path / "files"
    cmd = [sys.executable, "-m", "musicflow", "serve", "--model", str(checkpoint), "--port", "0",
           "--out", str(out), "-q"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        found = re.search(r"serving keyflow on (http://127\.0\.0\.1:\d+)", line)
        assert found, line + p.stderr.read()
        srv = SimpleNamespace(url=found.group(1))
        status, r = call(srv, "/compose", {"genre": "low", "bars": 2, "seed": 3})
        assert status == 200 and (out / r["files"][0]).is_file()
        p.send_signal(signal.SIGINT)
        stdout, stderr = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, stderr
    assert "stopped after 1 requests" in stdout
    assert sorted(f.name for f in out.iterdir()) == [r["files"][0]]  # nothing half-written


def test_the_example_client_talks_to_the_server(server, tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "serve_client.py"
    spec = importlib.util.spec_from_file_location("serve_client", path)
    client = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(client)
    mix = '{"low": 0.5, "high": 0.5}'
    reply = client.main(["compose", "--url", server.url, "--genre", mix, "--bars", "2", "--seed", "7"])
    made = server.out / reply["files"][0]
    assert made.is_file() and reply["seeds"] == [7]
    reply = client.main(["infill", str(made), "--url", server.url, "--span", "1-1", "--seed", "1"])
    assert (server.out / reply["files"][0]).is_file()
    assert set(client.main(["classify", str(made), "--url", server.url])["probabilities"]) == {"high", "low"}
    assert "error" in client.main(["compose", "--url", server.url, "--genre", "jazz"])


def test_the_reaper_script_inserts_what_the_server_wrote(server):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "reaper_compose.py"
    spec = importlib.util.spec_from_file_location("reaper_compose", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    inserted = []
    clip = script.compose_clip(genre="low", bars=2, seed=5, url=server.url, out=str(server.out),
                               insert=lambda p, mode: inserted.append((p, mode)))
    assert inserted == [(clip, 0)] and Path(clip).is_file() and "seed5" in clip
    with pytest.raises(RuntimeError, match="unknown genre"):
        script.compose_clip(genre="jazz", url=server.url, out=str(server.out))


def test_osc_messages_are_answered_to_the_sender(server, tune):
    pytest.importorskip("pythonosc", reason="pip install -e '.[dev]' brings python-osc")
    from pythonosc.dispatcher import Dispatcher
    from pythonosc.osc_server import ThreadingOSCUDPServer
    from pythonosc.udp_client import SimpleUDPClient

    from musicflow.osc import OSCFrontEnd

    osc = OSCFrontEnd(server.service, port=0).start()
    replies, arrived = [], threading.Event()

    def got(address, text):
        replies.append((address, json.loads(text)))
        arrived.set()

    dispatcher = Dispatcher()
    dispatcher.map("/musicflow/reply", got)
    inbox = ThreadingOSCUDPServer(("127.0.0.1", 0), dispatcher)
    threading.Thread(target=inbox.serve_forever, daemon=True).start()
    client = SimpleUDPClient(*osc.address)
    reply_port = inbox.server_address[1]

    def ask(address, *args):
        arrived.clear()
        client.send_message(address, [*args, reply_port] if args else [reply_port])
        assert arrived.wait(60), address
        return replies[-1][1]

    try:
        r = ask("/musicflow/compose", json.dumps({"genre": "low", "bars": 2, "seed": 9}))
        assert r["status"] == 200 and r["seeds"] == [9] and Path(r["paths"][0]).is_file()
        assert Path(r["paths"][0]).parent == server.out.resolve()
        r = ask("/musicflow/classify", json.dumps({"midi": tune}))
        assert r["status"] == 200 and set(r["probabilities"]) == {"high", "low"}
        bad = (("/musicflow/compose", ('{"genre": "jazz"}',)), ("/musicflow/compose", ("{oops",)),
               ("/musicflow/nowhere", ("{}",)), ("/musicflow/compose", ()))
        for address, args in bad:
            r = ask(address, *args)
            assert r["status"] >= 400 and r["error"], (address, r)
        assert ask("/musicflow/compose", json.dumps({"bars": 1, "seed": 1}))["status"] == 200
    finally:
        osc.close()
        inbox.shutdown()
        inbox.server_close()
