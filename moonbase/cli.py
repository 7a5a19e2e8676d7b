"""The ``moonbase`` command: serve the API, manage API keys."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Annotated, TypeVar

import typer
import uvicorn

from moonbase import admin
from moonbase.billing import dead_letters
from moonbase.billing.money import to_yuan
from moonbase.billing.service import BillingService
from moonbase.errors import BadRequestError, MoonbaseError
from moonbase.logs import configure_logging
from moonbase.services import running_services
from moonbase.settings import Settings, load_settings
from moonbase.store.database import Database
from moonbase.store.repositories.usage import UsageRow

app = typer.Typer(help="moonbase: a self-hosted Moonshot AI (Kimi) platform.", no_args_is_help=True)
keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
accounts_app = typer.Typer(help="Accounts, their money and their limits.", no_args_is_help=True)
app.add_typer(accounts_app, name="accounts")
batch_app = typer.Typer(help="Submit and follow batches.", no_args_is_help=True)
app.add_typer(batch_app, name="batch")

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
            await db.migrate()
            return await action(db)
        finally:
            await db.dispose()

    try:
        return asyncio.run(run())
    except MoonbaseError as exc:  # an operator's mistake: say what, no traceback
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None


@app.command()
def serve(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
) -> None:
    """Serve the Moonshot API (on the embedded model unless configured otherwise)."""
    settings = load_settings(config, data_dir=data_dir, host=host, port=port)
    configure_logging(settings.log_level, settings.log_format)
    issued = _with_db(settings, lambda db: admin.bootstrap(db, settings.billing))
    if issued is not None:
        typer.secho(
            "\nCreated the first account and its API key (shown only this once):\n\n"
            f"    {issued.secret}\n\n"
            "Use it as: Authorization: Bearer <key>   (or OPENAI_API_KEY / MOONSHOT_API_KEY)\n",
            fg=typer.colors.GREEN,
        )
    from moonbase.app import create_app  # the HTTP app only where it is served

    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        log_config=None,  # configure_logging's handlers, not uvicorn's own
        timeout_graceful_shutdown=5,
    )


@app.command()
def worker(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Run only the batch worker (no HTTP), beside gateways started with
    MOONBASE_BATCHES__RUN_WORKER=false; several may share one PostgreSQL."""
    settings = load_settings(config, data_dir=data_dir)
    settings.batches.run_worker = True
    configure_logging(settings.log_level, settings.log_format)

    async def run() -> None:
        async with running_services(settings) as services:
            assert services.worker is not None
            typer.echo(f"batch worker {services.worker.name} running")
            await asyncio.Event().wait()  # until Ctrl-C / SIGTERM

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


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


def _show(view: admin.AccountView) -> str:
    limits = view.limits
    return (
        f"{view.id}  {view.name}  cash=¥{to_yuan(view.cash_micro):.6f}  "
        f"voucher=¥{to_yuan(view.voucher_micro):.6f}  tier={view.tier}  "
        f"concurrency={limits.concurrency} rpm={limits.rpm} tpm={limits.tpm} "
        f"tpd={limits.tpd or 'unlimited'}"
    )


@accounts_app.command("create")
def accounts_create(name: str, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Create an account (then give it a key with `moonbase keys create --account`)."""
    settings = load_settings(config, data_dir=data_dir)
    typer.echo(_show(_with_db(settings, lambda db: admin.create_account(db, name))))


@accounts_app.command("list")
def accounts_list(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Accounts with balances, tier and limits."""
    settings = load_settings(config, data_dir=data_dir)
    for view in _with_db(settings, admin.list_accounts):
        typer.echo(_show(view))


def _credit(kind: str, account: str, amount: str, reason: str, settings: Settings) -> None:
    async def run(db: Database) -> admin.AccountView:
        found = await admin.find_account(db, account)
        billing = BillingService(db, settings.billing)
        try:
            yuan = Decimal(amount)
        except ArithmeticError:
            raise BadRequestError(f"amount {amount!r} is not a number of yuan") from None
        await billing.credit(found.id, kind, yuan, reason or f"{kind} by operator")
        return await admin.find_account(db, found.id)

    typer.echo(_show(_with_db(settings, run)))


@accounts_app.command("topup")
def accounts_topup(
    account: str,
    amount: Annotated[str, typer.Argument(help="CNY, e.g. 50 or 0.01")],
    reason: str = "",
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Add cash (counts toward the rate-limit tier)."""
    _credit("topup", account, amount, reason, load_settings(config, data_dir=data_dir))


@accounts_app.command("voucher")
def accounts_voucher(
    account: str,
    amount: Annotated[str, typer.Argument(help="CNY")],
    reason: str = "",
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Grant a voucher (spent before cash; does not raise the tier)."""
    _credit("voucher", account, amount, reason, load_settings(config, data_dir=data_dir))


@accounts_app.command("limits")
def accounts_limits(
    account: str,
    tier: Annotated[int | None, typer.Option(help="Pin a tier 0-5 (default: by top-ups).")] = None,
    concurrency: int | None = None,
    rpm: int | None = None,
    tpm: int | None = None,
    tpd: int | None = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Set an account's tier and single-limit overrides (unset options clear them)."""
    settings = load_settings(config, data_dir=data_dir)

    async def run(db: Database) -> admin.AccountView:
        found = await admin.find_account(db, account)
        return await admin.set_limits(
            db, found.id, tier, concurrency=concurrency, rpm=rpm, tpm=tpm, tpd=tpd
        )

    typer.echo(_show(_with_db(settings, run)))


@app.command("dead-letters")
def dead_letters_list(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Charges the database refused and billing set aside (one JSON line each)."""
    settings = load_settings(config, data_dir=data_dir)
    for letter in dead_letters.read(settings.data_dir / "journal"):
        typer.echo(json.dumps(letter, ensure_ascii=True))


@app.command()
def usage(
    by: Annotated[str, typer.Option(help="account, key, model or day")] = "model",
    account: Annotated[str | None, typer.Option(help="Only this account.")] = None,
    csv_out: Annotated[bool, typer.Option("--csv", help="CSV with a TOTAL row.")] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Usage and cost totals, grouped."""
    settings = load_settings(config, data_dir=data_dir)

    async def run(db: Database) -> list[UsageRow]:
        account_id = (await admin.find_account(db, account)).id if account else None
        return await admin.usage_report(db, by, account_id)

    rows = _with_db(settings, run)
    if csv_out:
        typer.echo(admin.usage_csv(rows, by), nl=False)
        return
    for row in [*rows, admin.totals(rows)]:
        typer.echo(
            f"{row.group:<40} requests={row.requests} prompt={row.prompt_tokens} "
            f"cached={row.cached_tokens} completion={row.completion_tokens} "
            f"cost=¥{to_yuan(row.cost_micro):.6f}"
        )


if __name__ == "__main__":
    app()


@batch_app.command("submit")
def batch_submit(
    requests: Annotated[Path, typer.Argument(help="A .jsonl file of batch request lines.")],
    wait: Annotated[
        bool, typer.Option(help="Follow the batch, then download its results.")
    ] = False,
    base_url: Annotated[
        str, typer.Option(envvar="MOONSHOT_BASE_URL", help="The API, e.g. http://host:8000/v1.")
    ] = "http://127.0.0.1:8000/v1",
    api_key: Annotated[str, typer.Option(envvar="MOONSHOT_API_KEY", help="An API key.")] = "",
    window: Annotated[str, typer.Option(help="Completion window, 12h to 7d.")] = "24h",
    output_dir: Annotated[Path, typer.Option(help="Where results are written.")] = Path("."),
) -> None:
    """Upload REQUESTS, create a batch; with --wait, show progress and fetch the results."""
    from moonbase.batches.client import BatchClient

    if not api_key:
        typer.echo("error: give --api-key or set MOONSHOT_API_KEY", err=True)
        raise typer.Exit(2)
    client = BatchClient(base_url, api_key)
    try:
        batch = client.submit(requests, window)
        typer.echo(f"batch {batch['id']}: {batch['status']}")
        if not wait:
            return
        batch = client.wait(batch["id"])
    except RuntimeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    counts = batch["request_counts"]
    typer.echo(
        f"batch {batch['id']}: {batch['status']}, "
        f"{counts['completed']} completed, {counts['failed']} failed"
    )
    for error in (batch.get("errors") or {}).get("data", []):
        typer.echo(f"  line {error.get('line')}: {error.get('message')}", err=True)
    for key, suffix in (("output_file_id", "output"), ("error_file_id", "errors")):
        if batch.get(key):
            target = client.download(batch[key], output_dir / f"{batch['id']}_{suffix}.jsonl")
            typer.echo(f"{suffix}: {target}")
    if batch["status"] != "completed":
        raise typer.Exit(1)
