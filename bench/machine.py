"""What the figures were measured on."""

import os
import platform
import sqlite3
from pathlib import Path

import psycopg

from bench.harness import POSTGRES_URL, postgres_reachable


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def postgres_version() -> str | None:
    if not postgres_reachable():
        return None
    with psycopg.connect(POSTGRES_URL.split("?", 1)[0]) as connection:
        row = connection.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else None


def describe() -> dict[str, str | int | None]:
    return {
        "cores": os.cpu_count(),
        "cpu": cpu_model(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": postgres_version(),
    }
