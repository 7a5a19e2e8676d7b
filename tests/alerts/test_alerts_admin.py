"""Spend alerts over the admin API and the CLI: alerts and a webhook per
project, the secret shown once (never in listings, deliveries or the audit
log), every change audited, hostile input a clean 400 (or 404), on SQLite
and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from moonbase import admin
from moonbase.app import create_app
from moonbase.cli import app as cli
from moonbase.settings import EMBEDDED_ENGINE, Settings
from moonbase.store.database import Database
from tests.fakes import ScriptedEngine

TOKEN = "admin-" + "a" * 32
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
JSON = {**ADMIN, "content-type": "application/json"}


@pytest.fixture
async def http(database: Database, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(data_dir=tmp_path, admin_token=TOKEN)
    settings.alerts.run = False  # no background sending here
    app = create_app(settings, engines={EMBEDDED_ENGINE: ScriptedEngine()}, db=database)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://moonbase") as client:
            yield client


async def new_project(database: Database, account: str = "acme") -> str:
    await admin.create_account(database, account)
    return (await admin.create_project(database, account, "ops")).id


async def test_alerts_and_webhook_over_the_admin_api(http: httpx.AsyncClient, database: Database):
    project = await new_project(database)
    base = f"/admin/projects/{project}/alerts"
    empty = await http.get(base, headers=ADMIN)
    assert empty.status_code == 200
    assert empty.json() == {"project_id": project, "webhook": None, "alerts": []}

    made = await http.put(
        f"{base}/webhook", json={"url": "http://10.0.0.5:9000/hook"}, headers=ADMIN
    )
    assert made.status_code == 200
    secret = made.json()["secret"]
    assert secret.startswith("whsec_") and made.json()["url"] == "http://10.0.0.5:9000/hook"
    moved = await http.put(
        f"{base}/webhook", json={"url": "https://hooks.example/x"}, headers=ADMIN
    )
    assert moved.json() == {"url": "https://hooks.example/x", "secret": None}  # kept, not shown

    day = await http.post(base, json={"period": "day", "threshold": "5.5"}, headers=ADMIN)
    assert day.status_code == 201
    assert (day.json()["period"], day.json()["threshold"]) == ("day", "5.500000")
    month = await http.post(base, json={"period": "month", "threshold": 300}, headers=ADMIN)
    assert month.status_code == 201
    twice = await http.post(base, json={"period": "day", "threshold": "5.50"}, headers=ADMIN)
    assert twice.status_code == 400 and twice.json()["error"]["param"] == "threshold"

    listing = (await http.get(base, headers=ADMIN)).json()
    assert listing["webhook"]["url"] == "https://hooks.example/x"
    assert [(a["period"], a["threshold"]) for a in listing["alerts"]] == [
        ("day", "5.500000"), ("month", "300.000000"),
    ]  # fmt: skip

    rotated = (await http.post(f"{base}/webhook/rotate", headers=ADMIN)).json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != secret
    gone = await http.delete(f"{base}/{day.json()['id']}", headers=ADMIN)
    assert gone.status_code == 200
    again = await http.delete(f"{base}/{day.json()['id']}", headers=ADMIN)
    assert again.status_code == 404
    assert (await http.delete(f"{base}/webhook", headers=ADMIN)).status_code == 200
    assert (await http.delete(f"{base}/webhook", headers=ADMIN)).status_code == 404
    assert (await http.post(f"{base}/webhook/rotate", headers=ADMIN)).status_code == 404

    audit = (await http.get("/admin/audit", params={"account": "acme"}, headers=ADMIN)).json()
    events = [e for e in reversed(audit) if e["action"].startswith(("alert.", "webhook."))]
    assert [e["action"] for e in events] == [
        "webhook.set", "webhook.set", "alert.create", "alert.create", "webhook.rotate",
        "alert.delete", "webhook.delete",
    ]  # fmt: skip
    assert {(e["actor"], e["address"]) for e in events} == {("admin-api", "127.0.0.1")}
    assert events[1]["changes"]["url"] == ["http://10.0.0.5:9000/hook", "https://hooks.example/x"]
    assert events[2]["changes"]["threshold"] == "5.5"

    after = await http.get(base, headers=ADMIN)
    deliveries = await http.get(f"{base}/deliveries", headers=ADMIN)
    for text in (after.text, deliveries.text, str(audit)):
        for leaked in (secret, rotated["secret"]):
            assert leaked not in text and leaked.removeprefix("whsec_") not in text


async def test_the_admin_token_guards_the_alert_routes(http: httpx.AsyncClient, database: Database):
    project = await new_project(database)
    for method, path in (
        ("GET", f"/admin/projects/{project}/alerts"),
        ("PUT", f"/admin/projects/{project}/alerts/webhook"),
        ("GET", f"/admin/projects/{project}/alerts/deliveries"),
    ):
        response = await http.request(method, path, json={"url": "http://x/"})
        assert response.status_code == 401


HOSTILE_WEBHOOKS = [
    {"url": "http://127.0.0.1/\x00hook"},
    {"url": "http://127.0.0.1/\ud800"},
    {"url": "http://x/" + "a" * 1_000_000},
    {"url": "http://x/" + "a" * 2049},
    {"url": "ftp://files.example/hook"},
    {"url": "javascript:alert(1)"},
    {"url": "file:///etc/passwd"},
    {"url": "http:///no-host"},
    {"url": "http://user:pw@hooks.example/x"},
    {"url": "http://hooks.example:99999/x"},
    {"url": "http://hooks.example:0/x"},
    {"url": "http://hooks .example/x"},
    {"url": "http://hooks.example/x\r\nX-Injected: 1"},
    {"url": "http://hooks.example/x#frag"},
    {"url": ""},
    {"url": 42},
    {"url": ["http://x/"]},
    {"url": None},
    {},
    {"url": "http://x/", "secret": "whsec_mine"},
]
HOSTILE_ALERTS = [
    {"period": "day", "threshold": "-1"},
    {"period": "day", "threshold": 0},
    {"period": "day", "threshold": "abc"},
    {"period": "day", "threshold": "NaN"},
    {"period": "day", "threshold": "Infinity"},
    {"period": "day", "threshold": 1e30},
    {"period": "day", "threshold": "1.0000001"},
    {"period": "day", "threshold": True},
    {"period": "day", "threshold": {"yuan": 1}},
    {"period": "week", "threshold": "5"},
    {"period": "\x00", "threshold": "5"},
    {"period": "day"},
    {"threshold": "5"},
    {"period": "day", "threshold": "5", "extra": 1},
]


async def test_hostile_input_is_a_clean_400(http: httpx.AsyncClient, database: Database):
    project = await new_project(database)
    base = f"/admin/projects/{project}/alerts"
    for body in HOSTILE_WEBHOOKS:
        # json.dumps escapes a lone surrogate (\ud800), as a client's JSON may
        response = await http.put(f"{base}/webhook", content=json.dumps(body), headers=JSON)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"]["type"] == "invalid_request_error"
    for body in HOSTILE_ALERTS:
        response = await http.post(base, content=json.dumps(body), headers=JSON)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"]["type"] == "invalid_request_error"
    for raw in (b"not json", b"[]", b'{"url": "\\ud800"}', b"[" * 100_000):
        response = await http.put(f"{base}/webhook", content=raw, headers=ADMIN)
        assert response.status_code == 400, raw[:20]
    for path in (
        "/admin/projects/proj-nope/alerts",
        "/admin/projects/" + "p" * 5000 + "/alerts",
        "/admin/projects/proj%00x/alerts",
    ):
        response = await http.get(path, headers=ADMIN)
        assert response.status_code in (400, 404), path
        assert "error" in response.json()
    listing = (await http.get(base, headers=ADMIN)).json()
    assert listing == {"project_id": project, "webhook": None, "alerts": []}


async def test_a_project_has_a_bounded_number_of_alerts(
    http: httpx.AsyncClient, database: Database
):
    project = await new_project(database)
    base = f"/admin/projects/{project}/alerts"
    for n in range(1, 21):
        created = await http.post(base, json={"period": "day", "threshold": n}, headers=ADMIN)
        assert created.status_code == 201
    refused = await http.post(base, json={"period": "day", "threshold": 99}, headers=ADMIN)
    assert refused.status_code == 400 and "at most 20" in refused.json()["error"]["message"]


runner = CliRunner()


def test_alerts_from_the_cli(tmp_path: Path):
    def run(*args: str):
        return runner.invoke(cli, [*args, "--data-dir", str(tmp_path)])

    assert run("accounts", "create", "acme").exit_code == 0
    assert run("projects", "create", "nightly", "--account", "acme").exit_code == 0
    made = run(
        "projects", "alerts", "nightly", "--account", "acme",
        "--webhook", "http://127.0.0.1:9000/hook", "--add", "day:5.00", "--add", "month:300",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    secret_line = next(line for line in made.stdout.splitlines() if "whsec_" in line)
    secret = secret_line.rsplit(" ", 1)[1]
    assert "shown only this once" in secret_line
    assert "webhook=http://127.0.0.1:9000/hook" in made.stdout
    assert "day:5.000000" in made.stdout and "month:300.000000" in made.stdout

    removed = run("projects", "alerts", "nightly", "--account", "acme", "--remove", "day:5")
    assert removed.exit_code == 0, removed.output
    assert "day:" not in removed.stdout and "month:300.000000" in removed.stdout
    listing = run("projects", "alerts", "nightly", "--account", "acme", "--deliveries")
    assert listing.exit_code == 0 and secret not in listing.output

    rotated = run("projects", "alerts", "nightly", "--account", "acme", "--rotate-secret")
    new_secret = rotated.stdout.splitlines()[0].rsplit(" ", 1)[1]
    assert new_secret.startswith("whsec_") and new_secret != secret

    for bad in (["--add", "week:5"], ["--add", "day:-1"], ["--add", "day:abc"],
                ["--webhook", "ftp://x/"], ["--remove", "alert-nope"]):  # fmt: skip
        refused = run("projects", "alerts", "nightly", "--account", "acme", *bad)
        assert refused.exit_code == 1 and refused.stderr.startswith("error: "), bad
    audit = run("audit", "--account", "acme")
    assert audit.exit_code == 0
    assert audit.stdout.count('"action": "alert.create"') == 2
    assert '"action": "webhook.rotate"' in audit.stdout and "cli:" in audit.stdout
    assert secret not in audit.stdout and new_secret not in audit.stdout
