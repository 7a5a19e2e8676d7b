"""`moonbase projects models|limits` on a SQLite data dir: set, shown, cleared,
refused above the organisation's tier, and audited."""

import json
from pathlib import Path

from typer.testing import CliRunner

from moonbase.cli import app

runner = CliRunner()


def test_a_projects_models_and_limits_from_the_cli(tmp_path: Path):
    def run(*args: str):
        return runner.invoke(app, [*args, "--data-dir", str(tmp_path)])

    assert run("accounts", "create", "acme").exit_code == 0
    assert run("projects", "create", "lab", "--account", "acme").exit_code == 0
    allowed = run("projects", "models", "lab", "--account", "acme",
                  "--allow", "moonshot-v1-8k, kimi-k2-turbo-preview")  # fmt: skip
    assert allowed.exit_code == 0, allowed.output
    assert "models=kimi-k2-turbo-preview,moonshot-v1-8k" in allowed.stdout
    assert "models=any" in run("projects", "models", "lab", "--account", "acme", "--any").stdout
    neither = run("projects", "models", "lab", "--account", "acme")
    assert neither.exit_code == 1 and "--allow" in neither.stderr
    unknown = run("projects", "models", "lab", "--account", "acme", "--allow", "gpt-4")
    assert unknown.exit_code == 1 and "gpt-4" in unknown.stderr

    limited = run("projects", "limits", "lab", "--account", "acme", "--rpm", "2", "--tpd", "900")
    assert limited.exit_code == 0, limited.output
    assert "limits: rpm=2 tpd=900" in limited.stdout
    assert "limits: rpm=2 tpd=900" in run("projects", "list", "--account", "acme").stdout
    # A new account is tier 0: 3 RPM.
    too_high = run("projects", "limits", "lab", "--account", "acme", "--rpm", "4")
    assert too_high.exit_code == 1
    assert "rpm 4 is above 3" in too_high.stderr and "tier 0" in too_high.stderr
    cleared = run("projects", "limits", "lab", "--account", "acme")
    assert cleared.exit_code == 0 and "limits:" not in cleared.stdout

    events = [json.loads(line) for line in run("audit", "--account", "acme").stdout.splitlines()]
    actions = [event["action"] for event in events]
    assert actions.count("project.models") == 2 and actions.count("project.limits") == 2
    assert all(e["actor"].startswith("cli:") for e in events if e["action"].startswith("project."))
