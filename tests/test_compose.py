"""docker-compose.yml held to the code: its settings are read, its commands run and serve.

No container engine runs here, so each service's command runs as a local process with the
compose environment, its database host pointed at the local PostgreSQL, its schema made unique,
its other service's host pointed at loopback, and its port swapped for a free one.
"""

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
import yaml

from shared.eventstore import WRITES_DRAIN_SECONDS
from shared.server import STOP_LIMIT_SECONDS
from shared.settings import ClaimsSettings, SourcesSettings
from tests.conftest import POSTGRES_URL
from tests.servers import free_port

COMPOSE = yaml.safe_load((Path(__file__).parent.parent / "docker-compose.yml").read_text())
SERVICES = ("sources", "claims")


class ReadKeys(dict[str, str]):
    """An environment that remembers which variables the code asked for."""

    def __init__(self, values: Mapping[str, str]) -> None:
        super().__init__(values)
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return super().get(key, default)


def test_every_variable_compose_sets_is_one_the_code_reads() -> None:
    environment = ReadKeys({})
    SourcesSettings.from_env(environment)
    ClaimsSettings.from_env(environment)
    for name in SERVICES:
        assert set(COMPOSE["services"][name]["environment"]) <= environment.asked, name


def test_services_wait_for_a_healthy_database_and_have_healthchecks() -> None:
    assert COMPOSE["services"]["postgres"]["image"].startswith("postgres:15")
    assert "pgdata" in COMPOSE["volumes"]
    for name in SERVICES:
        service = COMPOSE["services"][name]
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert "/health" in " ".join(service["healthcheck"]["test"])
        port = service["ports"][0].split(":")[-1]
        assert f"127.0.0.1:{port}/health" in " ".join(service["healthcheck"]["test"])
        assert service["command"][service["command"].index("--port") + 1] == port


@pytest.mark.parametrize("name", SERVICES)
def test_compose_gives_a_stopping_service_the_time_its_stop_takes(name: str) -> None:
    """Killed sooner, a service under load would be killed while it stores writes begun."""
    grace = COMPOSE["services"][name]["stop_grace_period"]
    assert grace.endswith("s"), grace
    assert int(grace.removesuffix("s")) > STOP_LIMIT_SECONDS + WRITES_DRAIN_SECONDS


@pytest.mark.parametrize("name", SERVICES)
def test_each_compose_command_serves_health(name: str) -> None:
    service = COMPOSE["services"][name]
    command = list(service["command"])
    executable = Path(sys.executable).parent / command[0]
    assert executable.exists(), f"{command[0]} is not installed beside {sys.executable}"
    port = free_port()
    command[0] = str(executable)
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--port") + 1] = str(port)
    schema = f"t_compose_{uuid.uuid4().hex[:10]}"
    env = {
        **os.environ,
        **{key: _local(value, schema) for key, value in service["environment"].items()},
    }
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        health = _wait_for_health(port, process)
        assert health["service"] == name
    finally:
        process.terminate()
        process.wait(timeout=20)
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _local(value: str, schema: str) -> str:
    """The compose value with its hosts moved to this machine and the test's own schema."""
    parts = urlsplit(value)
    if parts.scheme.startswith("postgres"):
        local = urlsplit(POSTGRES_URL)
        return urlunsplit((local.scheme, local.netloc, local.path, f"schema={schema}", ""))
    if parts.scheme == "http":
        return urlunsplit(("http", f"127.0.0.1:{parts.port}", parts.path, "", ""))
    return value


def _wait_for_health(port: int, process: subprocess.Popen[bytes]) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(process.stderr.read().decode() if process.stderr else "exited")
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError("no /health within 60 s")
