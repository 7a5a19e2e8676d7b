"""`moonbase users` and `moonbase orgs`, and the operator made on the first start."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import SecretStr
from typer.testing import CliRunner

from moonbase.auth import passwords
from moonbase.cli import app
from moonbase.organization import people
from moonbase.settings import UsersSettings
from moonbase.store.database import Database
from moonbase.store.repositories import credentials, users

runner = CliRunner()
PASSWORD = "a long enough secret"


def run(tmp_path: Path, *args: str, stdin: str | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [*args, "--data-dir", str(tmp_path)], input=stdin)


def test_users_and_organisations_from_the_cli(tmp_path: Path):
    created = run(
        tmp_path,
        "users",
        "create",
        "Ann@Example.com",
        "--name",
        "Ann",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert created.exit_code == 0, created.output
    assert "ann@example.com" in created.stdout
    dup = run(
        tmp_path, "users", "create", "ann@example.com", "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert dup.exit_code == 1 and "exists" in dup.stderr
    weak = run(tmp_path, "users", "create", "bob@example.com", "--password-stdin", stdin="short\n")
    assert weak.exit_code == 1 and "at least" in weak.stderr

    assert run(tmp_path, "accounts", "create", "acme").exit_code == 0
    added = run(tmp_path, "orgs", "add-member", "acme", "ann@example.com", "--role", "admin")
    assert added.exit_code == 0, added.output
    members = run(tmp_path, "orgs", "members", "acme")
    assert "ann@example.com\tadmin" in members.stdout
    assert "acme\t1 members" in run(tmp_path, "orgs", "list").stdout
    bad_role = run(tmp_path, "orgs", "add-member", "acme", "ann@example.com", "--role", "god")
    assert bad_role.exit_code == 1

    invited = run(
        tmp_path,
        "orgs",
        "invite",
        "acme",
        "carol@example.com",
        "--base-url",
        "https://moon.example",
    )
    assert invited.exit_code == 0, invited.output
    assert invited.stdout.strip().startswith("https://moon.example/console/accept-invite#inv-")

    assert run(tmp_path, "users", "disable", "ann@example.com").exit_code == 0
    assert "disabled" in run(tmp_path, "users", "list").stdout
    assert run(tmp_path, "users", "enable", "ann@example.com").exit_code == 0
    reset = run(
        tmp_path,
        "users",
        "password",
        "ann@example.com",
        "--password-stdin",
        stdin="another long secret\n",
    )
    assert reset.exit_code == 0
    missing = run(tmp_path, "users", "disable", "nobody@example.com")
    assert missing.exit_code == 1 and "no user" in missing.stderr


async def test_the_first_start_makes_the_operator_once(database: Database):
    generated = await people.bootstrap_operator(database, UsersSettings())
    assert generated is not None and len(generated) >= 20
    assert await people.bootstrap_operator(database, UsersSettings()) is None
    async with database.read() as session:
        (operator,) = await users.all_users(session)
    assert operator.is_operator and operator.email == "operator@localhost"
    assert await passwords.verify(operator.password_hash, generated)


async def test_a_configured_operator_password_is_used_and_not_shown(database: Database):
    settings = UsersSettings(
        operator_email="root@moon.example", operator_password=SecretStr(PASSWORD)
    )
    assert await people.bootstrap_operator(database, settings) is None
    user = await people.find_user(database, "root@moon.example")
    assert user.is_operator and await passwords.verify(user.password_hash, PASSWORD)
    async with database.transaction() as session:
        token = await credentials.open_session(session, user.id, timedelta(hours=1))
    async with database.read() as session:
        signed_in = await credentials.session_user(session, token)
    assert signed_in is not None and signed_in.id == user.id
