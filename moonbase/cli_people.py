"""``moonbase users`` and ``moonbase orgs``: the operator's tools for people
and the organisations they belong to (the management API is theirs)."""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import Annotated

import typer

from moonbase.auth.actor import cli_actor
from moonbase.auth.roles import OrgRole, org_role
from moonbase.cli_common import ConfigOpt, DataDirOpt, with_db
from moonbase.organization import people
from moonbase.settings import load_settings
from moonbase.store.database import Database
from moonbase.store.repositories import api_keys, audit, credentials, users
from moonbase.store.tables import utcnow

users_app = typer.Typer(
    help="People who sign in: create, list, disable, reset.", no_args_is_help=True
)
orgs_app = typer.Typer(help="Organisations and their members.", no_args_is_help=True)

RoleOpt = Annotated[str, typer.Option(help="owner, admin, member or viewer.")]


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


@users_app.command("create")
def users_create(
    email: str,
    name: Annotated[str, typer.Option(help="How they are shown.")] = "",
    operator: Annotated[
        bool, typer.Option(help="A platform operator (every organisation).")
    ] = False,
    password_stdin: Annotated[bool, typer.Option(help="Read the password from stdin.")] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create a user (then add them to an organisation with `moonbase orgs add-member`)."""
    settings = load_settings(config, data_dir=data_dir)
    password = _password(password_stdin)
    user = with_db(
        settings, lambda db: people.create_user(db, email, password, name, operator, cli_actor())
    )
    typer.echo(f"{user.id}\t{user.email}\t{'operator' if user.is_operator else ''}")


@users_app.command("list")
def users_list(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Every user, with their organisations and roles."""
    settings = load_settings(config, data_dir=data_dir)

    async def read(db: Database) -> list[str]:
        lines = []
        async with db.read() as session:
            for user in await users.all_users(session):
                orgs = await users.organisations_of(session, user.id)
                roles = ",".join(f"{m.account_id}:{m.role}" for m in orgs)
                state = "disabled" if user.disabled_at else ""
                kind = "operator" if user.is_operator else ""
                lines.append(f"{user.id}\t{user.email}\t{kind}\t{state}\t{roles}")
        return lines

    for line in with_db(settings, read):
        typer.echo(line)


def _set_disabled(email: str, disabled: bool, config: ConfigOpt, data_dir: DataDirOpt) -> None:
    settings = load_settings(config, data_dir=data_dir)

    async def run(db: Database) -> None:
        user = await people.find_user(db, email)
        stopped: list[str] = []
        async with db.transaction() as session:
            row = await users.get(session, user.id)
            assert row is not None
            row.disabled_at = utcnow() if disabled else None
            if disabled:  # signed out everywhere; their admin keys stop with them,
                # their invitations are withdrawn and the API keys they made disabled
                await credentials.close_sessions_of(session, user.id)
                await users.revoke_invites_by(session, None, row)
                stopped = await api_keys.disable_made_by(session, f"user:{user.id}")
            action = "user.disable" if disabled else "user.enable"
            details = {"email": user.email, **({"keys_disabled": stopped} if disabled else {})}
            audit.record(session, cli_actor(), action, user.id, None, details)

    with_db(settings, run)


@users_app.command("disable")
def users_disable(email: str, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Stop a user: their sessions end and their admin keys stop working."""
    _set_disabled(email, True, config, data_dir)


@users_app.command("enable")
def users_enable(email: str, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Let a disabled user sign in again."""
    _set_disabled(email, False, config, data_dir)


@users_app.command("password")
def users_password(
    email: str,
    password_stdin: Annotated[bool, typer.Option(help="Read the password from stdin.")] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Set a user's password (their sessions end)."""
    settings = load_settings(config, data_dir=data_dir)
    password = _password(password_stdin)

    async def run(db: Database) -> None:
        user = await people.find_user(db, email)
        await people.set_password(db, user.id, password, cli_actor())

    with_db(settings, run)


@orgs_app.command("list")
def orgs_list(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Every organisation (an account: its money, tier, projects and people)."""
    settings = load_settings(config, data_dir=data_dir)

    async def read(db: Database) -> list[str]:
        async with db.read() as session:
            rows = await people.organisations(session)
        return [f"{a.id}\t{a.name}\t{n} members" for a, n in rows]

    for line in with_db(settings, read):
        typer.echo(line)


@orgs_app.command("members")
def orgs_members(org: str, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """An organisation's members and their roles."""
    settings = load_settings(config, data_dir=data_dir)

    async def read(db: Database) -> list[str]:
        account = await people.find_organisation(db, org)
        async with db.read() as session:
            rows = await users.members(session, account.id)
        return [f"{user.id}\t{user.email}\t{member.role}" for member, user in rows]

    for line in with_db(settings, read):
        typer.echo(line)


@orgs_app.command("add-member")
def orgs_add_member(
    org: str,
    email: str,
    role: RoleOpt = OrgRole.MEMBER.value,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Add an existing user to an organisation with a role."""
    settings = load_settings(config, data_dir=data_dir)

    async def run(db: Database) -> None:
        account = await people.find_organisation(db, org)
        user = await people.find_user(db, email)
        await people.add_to_organisation(db, account, user, org_role(role), cli_actor())

    with_db(settings, run)


@orgs_app.command("invite")
def orgs_invite(
    org: str,
    email: str,
    role: RoleOpt = OrgRole.MEMBER.value,
    base_url: Annotated[str, typer.Option(help="Where this moonbase is reached.")] = "",
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Invite someone (a single-use link that expires after users.invite_hours)."""
    settings = load_settings(config, data_dir=data_dir)
    base = base_url or f"http://{settings.host}:{settings.port}"

    async def run(db: Database) -> str:
        account = await people.find_organisation(db, org)
        lifetime = timedelta(hours=settings.users.invite_hours)
        _, token = await people.invite(
            db, account.id, email, org_role(role), [], cli_actor(), lifetime
        )
        return token

    token = with_db(settings, run)
    typer.echo(f"{base.rstrip('/')}/console/accept-invite#{token}")
