"""`moonbase keys create|list|revoke` on a SQLite data dir."""

import json
from pathlib import Path

from typer.testing import CliRunner

from moonbase.cli import app

runner = CliRunner()


def test_create_list_revoke(tmp_path: Path):
    created = runner.invoke(
        app, ["keys", "create", "--account", "ops", "--name", "laptop", "--data-dir", str(tmp_path)]
    )
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[0]
    assert key.startswith("sk-") and len(key) == 51
    key_id = created.stderr.strip().removeprefix("id: ")

    listing = runner.invoke(app, ["keys", "list", "--data-dir", str(tmp_path)])
    assert listing.exit_code == 0
    assert key_id in listing.stdout and "account=ops" in listing.stdout
    assert key not in listing.stdout and f"{key[:7]}...{key[-4:]}" in listing.stdout
    assert "active" in listing.stdout and "by=cli:" in listing.stdout  # its creator

    revoked = runner.invoke(app, ["keys", "revoke", key_id, "--data-dir", str(tmp_path)])
    assert revoked.exit_code == 0
    again = runner.invoke(app, ["keys", "revoke", key_id, "--data-dir", str(tmp_path)])
    assert again.exit_code == 1 and "no active key" in again.stderr
    listing = runner.invoke(app, ["keys", "list", "--data-dir", str(tmp_path)])
    assert "revoked" in listing.stdout


def test_accounts_money_limits_and_usage_from_the_cli(tmp_path: Path):
    def run(*args: str):
        result = runner.invoke(app, [*args, "--data-dir", str(tmp_path)])
        return result

    assert run("accounts", "create", "acme").exit_code == 0
    topped = run("accounts", "topup", "acme", "60")
    assert (
        topped.exit_code == 0 and "cash=¥60.000000" in topped.stdout and "tier=1" in topped.stdout
    )
    assert "voucher=¥2.500000" in run("accounts", "voucher", "acme", "2.5").stdout
    limited = run("accounts", "limits", "acme", "--tier", "4", "--rpm", "9")
    assert "tier=4" in limited.stdout and "rpm=9" in limited.stdout
    assert "acme" in run("accounts", "list").stdout
    missing = run("accounts", "topup", "nobody", "1")
    assert missing.exit_code == 1 and "no account" in missing.stderr
    report = run("usage", "--by", "account", "--csv")
    assert report.exit_code == 0 and report.stdout.splitlines()[-1].startswith("TOTAL,0,")


def test_the_cli_records_who_changed_what(tmp_path: Path):
    data = ["--data-dir", str(tmp_path)]
    created = runner.invoke(app, ["keys", "create", "--account", "ops", "--expires", "7d", *data])
    key_id = created.stderr.strip().removeprefix("id: ")
    for command in (
        ["keys", "restrict", key_id, "--allow-model", "moonshot-v1-8k"],
        ["keys", "disable", key_id],
        ["keys", "enable", key_id],
        ["keys", "rotate", key_id, "--grace", "0s"],
        ["accounts", "topup", "ops", "12.5"],
        ["accounts", "limits", "ops", "--rpm", "7"],
        ["keys", "revoke", key_id],
    ):
        done = runner.invoke(app, [*command, *data])
        assert done.exit_code == 0, (command, done.output)
    listed = runner.invoke(app, ["audit", "--account", "ops", *data])
    assert listed.exit_code == 0, listed.output
    events = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [event["action"] for event in reversed(events)] == [
        "account.create", "key.create", "key.restrict", "key.disable", "key.enable",
        "key.rotate", "account.topup", "account.limits", "key.revoke",
    ]  # fmt: skip
    assert all(event["actor"].startswith("cli:") for event in events)
    by_action = {event["action"]: event for event in events}
    restrict = by_action["key.restrict"]["changes"]
    assert restrict["allowed_models"] == [None, ["moonshot-v1-8k"]]
    assert restrict["expires_at"][0] is not None and restrict["expires_at"][1] is None
    assert by_action["account.topup"]["changes"]["amount"] == "12.5"
    assert by_action["account.limits"]["changes"] == {"rpm": [None, 7]}
