"""The `factcheck` command line."""

import os
import signal
import subprocess
import sys
import time
from enum import StrEnum
from typing import Annotated

import httpx
import typer
import uvicorn
from fastapi import FastAPI

from shared.settings import DEFAULT_CLAIMS_URL, ClaimsSettings, SettingError, SourcesSettings
from shared.storage import StorageConfigError

app = typer.Typer(
    help="factcheck: event-sourced claims, evidence and verdicts.", no_args_is_help=True
)


@app.callback()
def main() -> None:
    """factcheck: event-sourced claims, evidence and verdicts."""


class Service(StrEnum):
    all = "all"
    sources = "sources"
    claims = "claims"


PORTS = {Service.sources: 8001, Service.claims: 8000}


def _build(service: Service) -> FastAPI:
    if service is Service.sources:
        from services.sources.bootstrap import create_app as create_sources

        return create_sources(SourcesSettings.from_env())
    from services.claims.bootstrap import create_app as create_claims

    return create_claims(ClaimsSettings.from_env())


def _serve_one(service: Service, host: str, port: int) -> None:
    try:
        api = _build(service)
    except (StorageConfigError, SettingError) as error:
        typer.echo(f"factcheck {service}: {error}", err=True)
        raise typer.Exit(2) from None
    uvicorn.run(api, host=host, port=port, log_level="info", access_log=False)


@app.command()
def serve(
    service: Annotated[Service, typer.Option(help="Which service to run.")] = Service.all,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[
        int | None,
        typer.Option(help="Port, with one --service (default 8000 claims, 8001 sources)."),
    ] = None,
) -> None:
    """Run the services on SQLite by default (see the README's configuration table)."""
    if service is not Service.all:
        _serve_one(service, host, port or PORTS[service])
        return
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "shared.cli", "serve", "--service", str(one), "--host", host],
            env=os.environ.copy(),
        )
        for one in PORTS
    ]
    for one, port in PORTS.items():
        typer.echo(f"{one}: http://{host}:{port}  (API docs at /docs)")
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
        for child in children:
            child.wait(timeout=15)
    failed = [child.returncode for child in children if child.returncode not in (0, None, -2)]
    raise typer.Exit(failed[0] if failed else 0)


@app.command()
def rebuild(
    claims_url: Annotated[
        str, typer.Option(envvar="CLAIMS_URL", help="The claims service.")
    ] = DEFAULT_CLAIMS_URL,
) -> None:
    """Drop the claims service's read models and rebuild them from the events alone."""
    try:
        response = httpx.post(f"{claims_url.rstrip('/')}/admin/rebuild", timeout=600)
    except httpx.HTTPError as error:
        typer.echo(f"factcheck rebuild: cannot reach {claims_url}: {error}", err=True)
        raise typer.Exit(1) from None
    if response.status_code != 200:
        typer.echo(f"factcheck rebuild: {response.status_code} {response.text}", err=True)
        raise typer.Exit(1)
    result = response.json()
    typer.echo(f"rebuilt: {result['claims']} claims, sources feed applied to {result['position']}")


if __name__ == "__main__":
    app()
