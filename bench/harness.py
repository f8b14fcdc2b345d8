"""What every benchmark shares: stores, services on loopback, a load driver, percentiles."""

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg

POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def postgres_reachable() -> bool:
    try:
        with psycopg.connect(_dsn(POSTGRES_URL), connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def _dsn(url: str) -> str:
    return url.split("?", 1)[0]


@contextmanager
def database(kind: str, name: str, folder: Path) -> Iterator[str]:
    """A fresh, empty database URL for one service: a SQLite file or a PostgreSQL schema."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / (name + '.db')}"
        return
    schema = f"bench_{name}_{uuid.uuid4().hex[:8]}"
    try:
        yield f"{POSTGRES_URL}?schema={schema}"
    finally:
        with psycopg.connect(_dsn(POSTGRES_URL), autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Services:
    """Both services as uvicorn processes on loopback, the sources one with baseline routes."""

    sources_url: str
    claims_url: str
    sources_database: str
    claims_database: str
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    started_seconds: dict[str, float] = field(default_factory=dict)
    """How long each service took from launch to its first healthy answer."""

    def pid(self, name: str) -> int:
        return self.processes[name].pid

    def peak_rss_mib(self, name: str) -> float:
        """The process's peak resident set (VmHWM), in MiB."""
        status = Path(f"/proc/{self.pid(name)}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024


@contextmanager
def services(
    kind: str,
    env: dict[str, str] | None = None,
    before_start: Callable[[str, str], object] | None = None,
) -> Iterator[Services]:
    """Start both services on fresh `kind` stores; stop them and drop the stores after.

    `before_start(sources_database, claims_database)` may fill the stores first.
    """
    with (
        tempfile.TemporaryDirectory() as tmp,
        database(kind, "sources", Path(tmp)) as sources_db,
        database(kind, "claims", Path(tmp)) as claims_db,
    ):
        ports = {"sources": free_port(), "claims": free_port()}
        running = Services(
            sources_url=f"http://127.0.0.1:{ports['sources']}",
            claims_url=f"http://127.0.0.1:{ports['claims']}",
            sources_database=sources_db,
            claims_database=claims_db,
        )
        environment = {
            **os.environ,
            "SOURCES_DATABASE_URL": sources_db,
            "CLAIMS_DATABASE_URL": claims_db,
            "SOURCES_URL": running.sources_url,
            "CLAIMS_URL": running.claims_url,
            **(env or {}),
        }
        if before_start is not None:
            before_start(sources_db, claims_db)
        try:
            for name in ("sources", "claims"):
                launched = time.perf_counter()
                running.processes[name] = subprocess.Popen(
                    [sys.executable, "-m", "bench.serve", name, str(ports[name])],
                    env=environment,
                    stdout=subprocess.DEVNULL,
                )
                wait_healthy(f"http://127.0.0.1:{ports[name]}", running.processes[name])
                running.started_seconds[name] = time.perf_counter() - launched
            yield running
        finally:
            for process in running.processes.values():
                process.terminate()
            for process in running.processes.values():
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the service exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url}: not healthy after {timeout} s")


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


@dataclass(frozen=True)
class Load:
    """What a closed-loop run measured: completed requests per second and their latencies."""

    rate: float
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]
    cpu: dict[int, float]
    """Per watched process: CPU seconds used per second of the measured run (1.0 = one core)."""


def combined(loads: list[Load]) -> Load:
    """Runs of the same target taken together: their requests over their measured time."""
    seconds = sum(load.seconds for load in loads)
    requests = sum(load.requests for load in loads)
    return Load(
        rate=requests / seconds,
        requests=requests,
        errors=sum(load.errors for load in loads),
        seconds=seconds,
        latencies_ms=[latency for load in loads for latency in load.latencies_ms],
        cpu={
            pid: sum(load.cpu[pid] * load.seconds for load in loads) / seconds
            for pid in loads[0].cpu
        },
    )


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def cpu_between(pids: Iterable[int], start: float, stop: float) -> dict[int, float]:
    """Each process's CPU use, in cores, between two times of the running event loop."""
    loop = asyncio.get_running_loop()
    await asyncio.sleep(start - loop.time())
    began = loop.time()
    before = {pid: cpu_seconds(pid) for pid in pids}
    await asyncio.sleep(stop - loop.time())
    seconds = loop.time() - began
    return {pid: (cpu_seconds(pid) - used) / seconds for pid, used in before.items()}


@dataclass(frozen=True)
class Request:
    """One HTTP/1.1 request, encoded once."""

    method: str
    path: str
    body: bytes = b""

    def encode(self, host: str) -> bytes:
        head = f"{self.method} {self.path} HTTP/1.1\r\nHost: {host}\r\n"
        if self.body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(self.body)}\r\n"
        return (head + "\r\n").encode() + self.body


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes]:
    """Send one request on a kept-alive connection; read the whole answer: status and body."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    body = await reader.readexactly(length)
    return int(lines[0].split()[1]), body


KEEP_ALIVE_SECONDS = 4.0
"""How long the driver reuses an idle connection: less than uvicorn's 5 s keep-alive timeout."""
DROPPED = 0
"""The status `Connections.send` gives when the server dropped the connection: an error."""


class Connections:
    """Kept-alive HTTP/1.1 connections to one server, opened as more requests overlap.

    A connection idle for longer than the server keeps it is closed and replaced before a
    request is sent on it; a request is never sent twice, and one whose connection drops
    counts as an error.
    """

    def __init__(self, url: str) -> None:
        self.host, port = url.removeprefix("http://").split(":")
        self.port = int(port)
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []

    async def send(self, request: Request) -> tuple[int, bytes]:
        """Send on an idle connection still kept by the server, or on a new one."""
        encoded = request.encode(f"{self.host}:{self.port}")
        loop = asyncio.get_running_loop()
        connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while self._idle and connection is None:
            reader, writer, last_used = self._idle.pop()
            if loop.time() - last_used < KEEP_ALIVE_SECONDS:
                connection = reader, writer
            else:
                writer.close()
        if connection is None:
            connection = await asyncio.open_connection(self.host, self.port)
        try:
            answer = await exchange(*connection, encoded)
        except (asyncio.IncompleteReadError, ConnectionError):
            connection[1].close()
            return DROPPED, b""
        self._idle.append((*connection, loop.time()))
        return answer

    def close(self) -> None:
        for _, writer, _ in self._idle:
            writer.close()


async def drive(
    url: str,
    request_for: Callable[[int], Request],
    concurrency: int,
    warmup: float,
    duration: float,
    watch: tuple[int, ...] = (),
) -> Load:
    """Keep `concurrency` requests in flight, one per kept-alive connection: `warmup` seconds
    unmeasured, then `duration` measured. The processes in `watch` have their CPU use
    measured over the same window.

    The driver writes pre-encoded HTTP/1.1 on asyncio streams, so that its own cost stays
    well below the server's (see `driver_headroom` in the results).
    """
    counter = iter(range(10**12))
    latencies: list[float] = []
    errors = 0
    loop = asyncio.get_running_loop()
    start = loop.time() + warmup
    stop = start + duration
    cpu: dict[int, float] = {}

    async def worker() -> None:
        nonlocal errors
        connection = Connections(url)
        try:
            while (began := loop.time()) < stop:
                status, _ = await connection.send(request_for(next(counter)))
                ended = loop.time()
                if began >= start and ended <= stop:
                    if 200 <= status < 300:
                        latencies.append((ended - began) * 1000)
                    else:
                        errors += 1
        finally:
            connection.close()

    async def meter() -> None:
        cpu.update(await cpu_between(watch, start, stop))

    await asyncio.gather(meter(), *(worker() for _ in range(concurrency)))
    return Load(
        rate=len(latencies) / duration,
        requests=len(latencies),
        errors=errors,
        seconds=duration,
        latencies_ms=latencies,
        cpu=cpu,
    )
