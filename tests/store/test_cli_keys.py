"""`moonbase keys create|list|revoke` on a SQLite data dir."""

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
    assert "active" in listing.stdout

    revoked = runner.invoke(app, ["keys", "revoke", key_id, "--data-dir", str(tmp_path)])
    assert revoked.exit_code == 0
    again = runner.invoke(app, ["keys", "revoke", key_id, "--data-dir", str(tmp_path)])
    assert again.exit_code == 1 and "no active key" in again.stderr
    listing = runner.invoke(app, ["keys", "list", "--data-dir", str(tmp_path)])
    assert "revoked" in listing.stdout
