"""`factcheck serve` runs both services, and stopping it stops them."""

import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import suppress
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from shared.cli import PORTS, Service
from shared.cli import app as cli

HOST = "127.0.0.1"
POLL_START_SECONDS = 1.5
"""Time for the long poll's request to reach the server before the stop, on a loaded machine."""


def _answering(port: int) -> bool:
    try:
        return httpx.get(f"http://{HOST}:{port}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _long_poll(port: int, polled: list[tuple[int, float]]) -> None:
    """Wait for news on the feed for up to 30 s; note the answer's status and when it came."""
    with suppress(httpx.HTTPError):
        answer = httpx.get(f"http://{HOST}:{port}/feed", params={"wait": 30}, timeout=60)
        polled.append((answer.status_code, time.monotonic()))


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP])
def test_stopping_serve_stops_both_services(tmp_path: Path, stop: signal.Signals) -> None:
    ports = list(PORTS.values())
    assert not any(_answering(port) for port in ports), (
        f"ports {ports} are already serving (a `make run`?); this test needs them free"
    )
    env = {
        **os.environ,
        "SOURCES_DATABASE_URL": f"sqlite:///{tmp_path / 'sources.db'}",
        "CLAIMS_DATABASE_URL": f"sqlite:///{tmp_path / 'claims.db'}",
    }
    serve = subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not all(_answering(port) for port in ports):
            assert serve.poll() is None, "serve exited before both services were up"
            assert time.monotonic() < deadline, "the services did not come up"
            time.sleep(0.2)
        polled: list[tuple[int, float]] = []
        poll = threading.Thread(target=_long_poll, args=(PORTS[Service.sources], polled))
        poll.start()
        time.sleep(POLL_START_SECONDS)
        stopped = time.monotonic()
        serve.send_signal(stop)
        assert serve.wait(timeout=30) == 0
        poll.join(timeout=30)
        assert polled, "the long poll was answered"
        status, answered = polled[0]
        assert status == 200
        assert 0 < answered - stopped < 10, "a long poll in progress held up the stop"
        deadline = time.monotonic() + 30
        while any(_answering(port) for port in ports):
            assert time.monotonic() < deadline, "a service outlived serve"
            time.sleep(0.2)
    finally:
        if serve.poll() is None:
            serve.kill()


@pytest.mark.parametrize(
    ("arguments", "told"),
    [
        (["--port", "9000"], "--port takes one --service"),
        (["--service", "sources", "--load", "scenario.json"], "--load needs both services"),
        (["--service", "claims", "--port", "70000"], "less than or equal to 65535"),
    ],
)
def test_serve_refuses_an_option_it_would_ignore(arguments: list[str], told: str) -> None:
    result = CliRunner().invoke(cli, ["serve", *arguments])
    assert result.exit_code == 2, result.output
    assert told in " ".join(result.output.replace("│", " ").split())
