"""The ``moonbase`` command: serve the API, manage API keys."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from pydantic import ValidationError

from moonbase import admin, cli_people
from moonbase.alerts import manage as alert_admin
from moonbase.auth.actor import cli_actor
from moonbase.auth.project_policy import ProjectLimits
from moonbase.billing import dead_letters, usage_retention
from moonbase.billing.money import to_micro, to_yuan
from moonbase.billing.service import BillingService
from moonbase.cli_common import ConfigOpt, DataDirOpt, with_db
from moonbase.cli_models import models_app, prepare_models
from moonbase.errors import BadRequestError, MoonbaseError, NotFoundError
from moonbase.logs import configure_logging
from moonbase.organization import people
from moonbase.services import running_services
from moonbase.settings import EngineSettings, Settings, load_settings
from moonbase.store.database import Database
from moonbase.store.repositories import audit
from moonbase.store.repositories.usage import UsageRow

app = typer.Typer(help="moonbase: a self-hosted Moonshot AI (Kimi) platform.", no_args_is_help=True)
keys_app = typer.Typer(
    help="Create, list, restrict, disable, rotate and revoke API keys.", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")
accounts_app = typer.Typer(help="Accounts, their money and their limits.", no_args_is_help=True)
app.add_typer(accounts_app, name="accounts")
projects_app = typer.Typer(
    help="Projects of an account: their keys, budgets, models and rate limits.",
    no_args_is_help=True,
)
app.add_typer(projects_app, name="projects")
app.add_typer(cli_people.users_app, name="users")
app.add_typer(cli_people.orgs_app, name="orgs")
batch_app = typer.Typer(help="Submit and follow batches.", no_args_is_help=True)
app.add_typer(batch_app, name="batch")
# `moonbase usage` alone is the report, as it always was; `usage prune` deletes.
usage_app = typer.Typer(help="Usage reports; pruning old raw usage records.")
app.add_typer(usage_app, name="usage")
app.add_typer(models_app, name="models")


@app.command()
def serve(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="The default engine's GGUF: a path, a package that ships one, or "
            "hf://<owner>/<repo>/<file>.gguf[@revision]."
        ),
    ] = None,
) -> None:
    """Serve the Moonshot API (on the embedded model unless configured otherwise)."""
    settings = load_settings(config, data_dir=data_dir, host=host, port=port)
    configure_logging(settings.log_level, settings.log_format)
    if model is not None:
        engine = settings.engines.get(settings.default_engine)
        if not isinstance(engine, EngineSettings):
            typer.echo(
                f"error: --model sets the embedded engine's model, and the default engine "
                f"'{settings.default_engine}' is not an embedded (llamacpp) one",
                err=True,
            )
            raise typer.Exit(1)
        engine.model, engine.model_path = model, None
    prepare_models(settings)
    issued = with_db(settings, lambda db: admin.bootstrap(db, settings.billing))
    password = with_db(settings, lambda db: people.bootstrap_operator(db, settings.users))
    if password is not None:
        typer.secho(
            f"\nCreated the platform operator {settings.users.operator_email} with the "
            f"password (shown only this once):\n\n    {password}\n\n"
            "Sign in: open /console in a browser, or POST /v1/auth/sessions; "
            "change it: moonbase users password\n",
            fg=typer.colors.GREEN,
        )
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
    MOONBASE_BATCHES__RUN_WORKER=false; several may share one PostgreSQL.
    It sends spend alerts too unless MOONBASE_ALERTS__RUN=false."""
    settings = load_settings(config, data_dir=data_dir)
    settings.batches.run_worker = True
    configure_logging(settings.log_level, settings.log_format)
    prepare_models(settings)

    async def run() -> None:
        async with running_services(settings) as services:
            assert services.worker is not None
            typer.echo(f"batch worker {services.worker.name} running")
            await asyncio.Event().wait()  # until Ctrl-C / SIGTERM

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


ExpiresOpt = Annotated[
    str | None,
    typer.Option(help="When the key stops working: a duration (30d, 12h, 90m) or an ISO time."),
]
AllowIpOpt = Annotated[
    list[str] | None,
    typer.Option("--allow-ip", help="Only from this address or CIDR network (repeatable)."),
]
AllowModelOpt = Annotated[
    list[str] | None,
    typer.Option("--allow-model", help="Only this model id (repeatable)."),
]
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _moment(text: str | None) -> datetime | None:
    """A duration from now, or an ISO time (UTC when it names no zone)."""
    if text is None:
        return None
    text = text.strip()
    if text[:-1].isdigit() and text[-1:] in _UNITS:
        return datetime.now(UTC) + timedelta(seconds=int(text[:-1]) * _UNITS[text[-1]])
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        typer.echo(f"error: {text!r} is neither a duration (30d) nor an ISO time", err=True)
        raise typer.Exit(1) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _restrictions(
    expires: str | None, allow_ip: list[str] | None, allow_model: list[str] | None
) -> admin.KeyRestrictions:
    return admin.KeyRestrictions(_moment(expires), allow_ip or None, allow_model or None)


@keys_app.command("create")
def keys_create(
    account: Annotated[
        str, typer.Option(help="Account name (created if new).")
    ] = admin.DEFAULT_ACCOUNT,
    name: Annotated[str, typer.Option(help="A label for the key.")] = "",
    project: Annotated[
        str | None, typer.Option(help="The key's project, by id or name (default: default).")
    ] = None,
    expires: ExpiresOpt = None,
    allow_ip: AllowIpOpt = None,
    allow_model: AllowModelOpt = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create an API key and print it (it is shown only once)."""
    settings = load_settings(config, data_dir=data_dir)
    limits = _restrictions(expires, allow_ip, allow_model)
    issued = with_db(
        settings, lambda db: admin.create_key(db, account, name, limits, project=project)
    )
    typer.echo(issued.secret)
    typer.echo(f"id: {issued.id}", err=True)


@keys_app.command("list")
def keys_list(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """List API keys (never the keys themselves)."""
    settings = load_settings(config, data_dir=data_dir)
    for key in with_db(settings, admin.list_keys):
        if key.revoked_at:
            state = f"revoked {key.revoked_at:%Y-%m-%d}"
        elif key.disabled_at:
            state = "disabled"
        else:
            state = "active"
        extras = [
            f"expires={key.expires_at:%Y-%m-%dT%H:%M:%SZ}" if key.expires_at else "",
            f"ips={','.join(key.allowed_ips)}" if key.allowed_ips is not None else "",
            f"models={','.join(key.allowed_models)}" if key.allowed_models is not None else "",
            f"last_used={key.last_used_at:%Y-%m-%dT%H:%M:%SZ}" if key.last_used_at else "",
            f"by={key.created_by}" if key.created_by else "",
        ]
        typer.echo(
            f"{key.id}  {key.display}  account={key.account}  name={key.name!r}  "
            f"created={key.created_at:%Y-%m-%d}  {state}  "
            + "  ".join(extra for extra in extras if extra)
        )


@keys_app.command("revoke")
def keys_revoke(key_id: str, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Revoke an API key by its id (see `moonbase keys list`)."""
    settings = load_settings(config, data_dir=data_dir)
    if not with_db(settings, lambda db: admin.revoke_key(db, key_id)):
        typer.echo(f"no active key with id {key_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {key_id}")


@keys_app.command("restrict")
def keys_restrict(
    key_id: str,
    expires: ExpiresOpt = None,
    allow_ip: AllowIpOpt = None,
    allow_model: AllowModelOpt = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Set a key's expiry and allowlists (options left out clear those limits)."""
    settings = load_settings(config, data_dir=data_dir)
    limits = _restrictions(expires, allow_ip, allow_model)
    with_db(settings, lambda db: admin.restrict_key(db, key_id, limits))
    typer.echo(f"restricted {key_id}")


@keys_app.command("disable")
def keys_disable(key_id: str, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Stop a key from working until it is enabled again."""
    settings = load_settings(config, data_dir=data_dir)
    with_db(settings, lambda db: admin.set_key_disabled(db, key_id, True))
    typer.echo(f"disabled {key_id}")


@keys_app.command("enable")
def keys_enable(key_id: str, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Let a disabled key work again."""
    settings = load_settings(config, data_dir=data_dir)
    with_db(settings, lambda db: admin.set_key_disabled(db, key_id, False))
    typer.echo(f"enabled {key_id}")


@keys_app.command("rotate")
def keys_rotate(
    key_id: str,
    grace: Annotated[
        str, typer.Option(help="How long the old secret keeps working (e.g. 1h, 0s).")
    ] = "1h",
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Give a key a new secret (printed once); the old one works for the grace period."""
    settings = load_settings(config, data_dir=data_dir)
    until = _moment(grace)
    assert until is not None
    grace_s = (until - datetime.now(UTC)).total_seconds()
    issued = with_db(settings, lambda db: admin.rotate_key(db, key_id, max(0.0, grace_s)))
    typer.echo(issued.secret)
    typer.echo(f"id: {issued.id}", err=True)


AccountOpt = Annotated[str, typer.Option(help="The account (id or name).")]
BudgetOpt = Annotated[str | None, typer.Option(help="Yuan; left out: no budget of this kind.")]


def _yuan(text: str | None) -> Decimal | None:
    if text is None:
        return None
    try:
        return Decimal(text)
    except ArithmeticError:
        typer.echo(f"error: {text!r} is not a number of yuan", err=True)
        raise typer.Exit(1) from None


def _show_project(view: admin.ProjectView) -> str:
    def money(yuan: float | None) -> str:
        return f"¥{yuan:.2f}" if yuan is not None else "none"

    models = "any" if view.allowed_models is None else ",".join(view.allowed_models) or "none"
    limits = " ".join(f"{k}={v}" for k, v in view.limits.items() if v is not None)
    return (
        f"{view.id}  name={view.name!r}  daily_budget={money(view.daily_budget)}  "
        f"monthly_budget={money(view.monthly_budget)}  models={models}"
        + (f"  limits: {limits}" if limits else "")
    )


@projects_app.command("create")
def projects_create(
    name: str,
    account: AccountOpt = admin.DEFAULT_ACCOUNT,
    daily_budget: BudgetOpt = None,
    monthly_budget: BudgetOpt = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create a project (then give it keys with `moonbase keys create --project`)."""
    settings = load_settings(config, data_dir=data_dir)
    daily, monthly = _yuan(daily_budget), _yuan(monthly_budget)
    view = with_db(settings, lambda db: admin.create_project(db, account, name, daily, monthly))
    typer.echo(_show_project(view))


@projects_app.command("list")
def projects_list(
    account: AccountOpt = admin.DEFAULT_ACCOUNT,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """An account's projects and their budgets."""
    settings = load_settings(config, data_dir=data_dir)
    for view in with_db(settings, lambda db: admin.list_projects(db, account)):
        typer.echo(_show_project(view))


@projects_app.command("budget")
def projects_budget(
    project: str,
    account: AccountOpt = admin.DEFAULT_ACCOUNT,
    daily_budget: BudgetOpt = None,
    monthly_budget: BudgetOpt = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Set a project's daily and monthly budgets (options left out clear them)."""
    settings = load_settings(config, data_dir=data_dir)
    daily, monthly = _yuan(daily_budget), _yuan(monthly_budget)

    async def run(db: Database) -> admin.ProjectView:
        found = await admin.find_project(db, account, project)
        return await admin.set_budgets(db, found.id, daily, monthly)

    typer.echo(_show_project(with_db(settings, run)))


def _show_alerts(view: alert_admin.ProjectAlerts) -> list[str]:
    hook = view.webhook
    lines = [f"{view.project_id}  webhook={hook.url if hook else 'none'}"]
    for alert in view.alerts:
        crossed = f"  last_crossed={alert.last_crossed}" if alert.last_crossed else ""
        lines.append(f"{alert.id}  {alert.period}:{alert.threshold}{crossed}")
    return lines


@projects_app.command("alerts")
def projects_alerts(
    project: str,
    account: AccountOpt = admin.DEFAULT_ACCOUNT,
    webhook: Annotated[
        str | None,
        typer.Option(help="Send alerts to this http(s) URL (a new one prints a secret)."),
    ] = None,
    add: Annotated[
        list[str] | None, typer.Option(help="A threshold, PERIOD:YUAN: day:5.00, month:300.")
    ] = None,
    remove: Annotated[
        list[str] | None, typer.Option(help="An alert, by id or as PERIOD:YUAN (repeatable).")
    ] = None,
    rotate_secret: Annotated[
        bool, typer.Option("--rotate-secret", help="A new signing secret (printed once).")
    ] = False,
    no_webhook: Annotated[
        bool, typer.Option("--no-webhook", help="Stop sending alerts (removes the webhook).")
    ] = False,
    deliveries: Annotated[
        bool, typer.Option("--deliveries", help="Also list recent deliveries (JSON lines).")
    ] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """A project's spend alerts: signed webhook POSTs when its spend in a UTC
    day or month reaches a threshold. Without options: list them."""
    settings = load_settings(config, data_dir=data_dir)
    try:
        wanted = [alert_admin.parse_alert(text) for text in add or []]
    except MoonbaseError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None

    async def run(db: Database) -> tuple[list[str], alert_admin.ProjectAlerts]:
        found = (await admin.find_project(db, account, project)).id
        secrets_out = []
        if webhook is not None:
            made = await alert_admin.set_webhook(db, found, webhook)
            if made.secret:
                secrets_out.append(made.secret)
        if rotate_secret:
            secrets_out.append((await alert_admin.rotate_secret(db, found)).secret or "")
        for period, threshold in wanted:
            await alert_admin.add_alert(db, found, period, threshold)
        for text in remove or []:
            await alert_admin.remove_alert(db, found, await _alert_id(db, found, text))
        if no_webhook:
            await alert_admin.remove_webhook(db, found)
        return secrets_out, await alert_admin.list_alerts(db, found)

    secrets_out, view = with_db(settings, run)
    for secret in secrets_out:
        typer.echo(f"webhook secret (shown only this once): {secret}")
    for line in _show_alerts(view):
        typer.echo(line)
    if deliveries:
        for item in with_db(settings, lambda db: alert_admin.list_deliveries(db, view.project_id)):
            typer.echo(json.dumps(asdict(item), default=str, ensure_ascii=False))


async def _alert_id(db: Database, project_id: str, text: str) -> str:
    """An alert's id, given its id or its PERIOD:YUAN."""
    if ":" not in text:
        return text
    period, threshold = alert_admin.parse_alert(text)
    micro = to_micro(threshold)
    for alert in (await alert_admin.list_alerts(db, project_id)).alerts:
        if alert.period == period and to_micro(alert.threshold) == micro:
            return alert.id
    raise NotFoundError(f"no {period} alert at ¥{threshold} in {project_id}", param="alert")


@projects_app.command("models")
def projects_models(
    project: str,
    allow: Annotated[
        str | None, typer.Option(help="Comma-separated model ids the project's keys may use.")
    ] = None,
    any_model: Annotated[
        bool, typer.Option("--any", help="Let the project's keys use any model.")
    ] = False,
    account: AccountOpt = admin.DEFAULT_ACCOUNT,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Set the models a project's keys may use (each key's own allowlist still applies)."""
    if (allow is not None) == any_model:  # neither, or both
        typer.echo("error: give either --allow m1,m2 or --any", err=True)
        raise typer.Exit(1)
    models = None if any_model else [m.strip() for m in (allow or "").split(",") if m.strip()]
    settings = load_settings(config, data_dir=data_dir)

    async def run(db: Database) -> admin.ProjectView:
        found = await admin.find_project(db, account, project)
        return await admin.set_project_models(db, found.id, models, cli_actor())

    typer.echo(_show_project(with_db(settings, run)))


LimitOpt = Annotated[
    int | None, typer.Option(help="Left out: only the organisation's limit of this kind.")
]


@projects_app.command("limits")
def projects_limits(
    project: str,
    concurrency: LimitOpt = None,
    rpm: LimitOpt = None,
    tpm: LimitOpt = None,
    tpd: LimitOpt = None,
    account: AccountOpt = admin.DEFAULT_ACCOUNT,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Set a project's own rate limits, on top of its organisation's and no higher
    than them (options left out clear those limits)."""
    settings = load_settings(config, data_dir=data_dir)
    limits = ProjectLimits(concurrency=concurrency, rpm=rpm, tpm=tpm, tpd=tpd)

    async def run(db: Database) -> admin.ProjectView:
        found = await admin.find_project(db, account, project)
        return await admin.set_project_limits(db, found.id, limits, cli_actor())

    typer.echo(_show_project(with_db(settings, run)))


@app.command("audit")
def audit_log(
    account: Annotated[str | None, typer.Option(help="Only this account (id or name).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many, newest first.")] = 50,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Who changed keys, money and limits, when, from where, and what (JSON lines)."""
    settings = load_settings(config, data_dir=data_dir)

    async def read(db: Database) -> list[audit.AuditView]:
        account_id = (await admin.find_account(db, account)).id if account else None
        async with db.read() as session:
            return await audit.events(session, account_id, limit)

    for event in with_db(settings, read):
        typer.echo(json.dumps({**asdict(event), "at": event.at.isoformat()}, ensure_ascii=False))


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
    typer.echo(_show(with_db(settings, lambda db: admin.create_account(db, name))))


@accounts_app.command("list")
def accounts_list(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Accounts with balances, tier and limits."""
    settings = load_settings(config, data_dir=data_dir)
    for view in with_db(settings, admin.list_accounts):
        typer.echo(_show(view))


def _credit(kind: str, account: str, amount: str, reason: str, settings: Settings) -> None:
    async def run(db: Database) -> admin.AccountView:
        found = await admin.find_account(db, account)
        billing = BillingService(db, settings.billing)
        try:
            yuan = Decimal(amount)
        except ArithmeticError:
            raise BadRequestError(f"amount {amount!r} is not a number of yuan") from None
        await billing.credit(found.id, kind, yuan, reason or f"{kind} by operator", None,
                             cli_actor())  # fmt: skip
        return await admin.find_account(db, found.id)

    typer.echo(_show(with_db(settings, run)))


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

    typer.echo(_show(with_db(settings, run)))


@app.command("dead-letters")
def dead_letters_list(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Charges the database refused and billing set aside (one JSON line each)."""
    settings = load_settings(config, data_dir=data_dir)
    for letter in dead_letters.read(settings.data_dir / "journal"):
        typer.echo(json.dumps(letter, ensure_ascii=True))


@usage_app.callback(invoke_without_command=True)
def usage(
    ctx: typer.Context,
    by: Annotated[str, typer.Option(help="account, project, key, model or day")] = "model",
    account: Annotated[str | None, typer.Option(help="Only this account.")] = None,
    csv_out: Annotated[bool, typer.Option("--csv", help="CSV with a TOTAL row.")] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Usage and cost totals, grouped (from the daily rollups: whole UTC days)."""
    if ctx.invoked_subcommand is not None:
        return
    settings = load_settings(config, data_dir=data_dir)

    async def run(db: Database) -> list[UsageRow]:
        account_id = (await admin.find_account(db, account)).id if account else None
        return await admin.usage_report(db, by, account_id)

    rows = with_db(settings, run)
    if csv_out:
        typer.echo(admin.usage_csv(rows, by), nl=False)
        return
    for row in [*rows, admin.totals(rows)]:
        typer.echo(
            f"{row.group:<40} requests={row.requests} prompt={row.prompt_tokens} "
            f"cached={row.cached_tokens} completion={row.completion_tokens} "
            f"cost=¥{to_yuan(row.cost_micro):.6f}"
        )


@usage_app.command("prune")
def usage_prune(
    older_than_days: Annotated[
        int | None,
        typer.Option(min=32, help="Default: the usage.raw_retention_days setting."),
    ] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Delete raw usage records older than the retention now (the daily
    rollups and the ledger are kept); serve and worker also do it every
    usage.prune_interval_s."""
    settings = load_settings(config, data_dir=data_dir)
    days = older_than_days or settings.usage.raw_retention_days
    if not days:
        typer.echo("error: retention is off (usage.raw_retention_days = 0); "
                   "give --older-than-days", err=True)  # fmt: skip
        raise typer.Exit(1)
    deleted = with_db(
        settings, lambda db: usage_retention.prune(db, days, settings.usage.prune_chunk)
    )
    typer.echo(f"deleted {deleted} usage records older than {days} days")


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


def main() -> None:
    """The console script: a settings mistake is one line naming the setting,
    never a traceback (nor a server that fails later)."""
    try:
        app(prog_name="moonbase")
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'settings'}: {error['msg']}"
            for error in exc.errors()
        )
        typer.echo(f"error: invalid settings: {problems}", err=True)
        raise SystemExit(1) from None
