"""What every ``moonbase`` subcommand shares: the settings options and a
migrated database for the length of one command."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from moonbase.errors import MoonbaseError
from moonbase.settings import Settings
from moonbase.store.database import Database

T = TypeVar("T")

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", envvar="MOONBASE_CONFIG", help="TOML settings file."),
]
DataDirOpt = Annotated[
    Path | None, typer.Option("--data-dir", help="Where the database and blobs live.")
]


def with_db(settings: Settings, action: Callable[[Database], Awaitable[T]]) -> T:
    async def run() -> T:
        db = Database(settings.resolved_database_url)
        try:
            await db.migrate()
            return await action(db)
        finally:
            await db.dispose()

    try:
        return asyncio.run(run())
    except MoonbaseError as exc:  # an operator's mistake: say what, no traceback
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None
