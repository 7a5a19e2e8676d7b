"""The ``moonbase`` command: serve the API, manage API keys."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
import uvicorn

from moonbase import admin
from moonbase.app import create_app
from moonbase.settings import Settings, load_settings
from moonbase.store.database import Database

app = typer.Typer(help="moonbase: a self-hosted Moonshot AI (Kimi) platform.", no_args_is_help=True)
keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

T = TypeVar("T")

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", envvar="MOONBASE_CONFIG", help="TOML settings file."),
]
DataDirOpt = Annotated[
    Path | None, typer.Option("--data-dir", help="Where the database and blobs live.")
]


def _with_db(settings: Settings, action: Callable[[Database], Awaitable[T]]) -> T:
    async def run() -> T:
        db = Database(settings.resolved_database_url)
        try:
            return await action(db)
        finally:
            await db.dispose()

    return asyncio.run(run())


@app.command()
def serve(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
) -> None:
    """Serve the Moonshot API (on the embedded model unless configured otherwise)."""
    settings = load_settings(config, data_dir=data_dir, host=host, port=port)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s"
    )
    issued = _with_db(settings, lambda db: admin.bootstrap(db, settings.billing))
    if issued is not None:
        typer.secho(
            "\nCreated the first account and its API key (shown only this once):\n\n"
            f"    {issued.secret}\n\n"
            "Use it as: Authorization: Bearer <key>   (or OPENAI_API_KEY / MOONSHOT_API_KEY)\n",
            fg=typer.colors.GREEN,
        )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=5,
    )


@keys_app.command("create")
def keys_create(
    account: Annotated[
        str, typer.Option(help="Account name (created if new).")
    ] = admin.DEFAULT_ACCOUNT,
    name: Annotated[str, typer.Option(help="A label for the key.")] = "",
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create an API key and print it (it is shown only once)."""
    settings = load_settings(config, data_dir=data_dir)
    issued = _with_db(settings, lambda db: admin.create_key(db, account, name))
    typer.echo(issued.secret)
    typer.echo(f"id: {issued.id}", err=True)


@keys_app.command("list")
def keys_list(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """List API keys (never the keys themselves)."""
    settings = load_settings(config, data_dir=data_dir)
    for key in _with_db(settings, admin.list_keys):
        state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
        typer.echo(
            f"{key.id}  {key.display}  account={key.account}  name={key.name!r}  "
            f"created={key.created_at:%Y-%m-%d}  {state}"
        )


@keys_app.command("revoke")
def keys_revoke(key_id: str, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Revoke an API key by its id (see `moonbase keys list`)."""
    settings = load_settings(config, data_dir=data_dir)
    if not _with_db(settings, lambda db: admin.revoke_key(db, key_id)):
        typer.echo(f"no active key with id {key_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {key_id}")


if __name__ == "__main__":
    app()
