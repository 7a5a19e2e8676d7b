"""An API key's lifecycle against a real ``moonbase serve``, driven by the
openai SDK: expiry, IP and model allowlists, disabling, rotation with a grace
period; a project's budget and model allowlist, and its files unseen by
another project. Keys are made and changed with the CLI while the server runs, as an
operator would; a change reaches the server within its key cache's TTL
(``billing.state_refresh_s``, 1 s)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

import openai
import pytest

from tests.e2e.server import RunningServer, openai_client

MODEL = "moonshot-v1-8k"
ASK = [{"role": "user", "content": "Say yes."}]
CHANGE_SETTLES_S = 15.0  # far beyond the 1 s TTL: the machine may be busy


def cli(server: RunningServer, *args: str) -> str:
    command = [sys.executable, "-m", "moonbase", *args, "--data-dir", str(server.data_dir)]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def new_key(server: RunningServer, *options: str) -> tuple[str, str]:
    """A key of the default account with ``options``; (secret, id)."""
    command = [sys.executable, "-m", "moonbase", "keys", "create", *options,
               "--data-dir", str(server.data_dir)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return done.stdout.strip(), done.stderr.strip().removeprefix("id: ")


def ask(server: RunningServer, secret: str, model: str = MODEL) -> str:
    client = openai_client(f"{server.base_url}/v1", secret)
    reply = client.chat.completions.create(model=model, messages=ASK, max_tokens=4)  # type: ignore[arg-type]
    return reply.id


def eventually(check: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + CHANGE_SETTLES_S
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def refused(server: RunningServer, secret: str, error: type[Exception]) -> bool:
    try:
        ask(server, secret)
    except error:
        return True
    return False


def test_an_expired_key_is_refused_at_its_second(server: RunningServer):
    secret, _ = new_key(server, "--expires", "3s")
    assert ask(server, secret)  # works, and is now cached by the server
    time.sleep(3.5)
    with pytest.raises(openai.AuthenticationError) as expired:
        ask(server, secret)
    assert expired.value.code == "api_key_expired"
    assert "expired at" in expired.value.message


def test_an_ip_allowlist_admits_only_its_networks(server: RunningServer):
    elsewhere, _ = new_key(server, "--allow-ip", "10.0.0.0/8", "--allow-ip", "192.168.1.7")
    with pytest.raises(openai.PermissionDeniedError) as blocked:
        ask(server, elsewhere)
    assert blocked.value.code == "ip_not_allowed" and "127.0.0.1" in blocked.value.message
    here, _ = new_key(server, "--allow-ip", "127.0.0.0/8")
    assert ask(server, here)


def test_a_model_allowlist_admits_only_its_models(server: RunningServer):
    secret, _ = new_key(server, "--allow-model", MODEL)
    assert ask(server, secret, MODEL)
    with pytest.raises(openai.PermissionDeniedError) as blocked:
        ask(server, secret, "kimi-k2-turbo-preview")
    assert blocked.value.code == "model_not_allowed"
    assert MODEL in blocked.value.message  # says what the key may use
    # counting tokens for another model is refused too
    client = openai_client(f"{server.base_url}/v1", secret)
    with pytest.raises(openai.PermissionDeniedError):
        client.post(
            "/tokenizers/estimate-token-count",
            body={"model": "kimi-k2-turbo-preview", "messages": ASK},
            cast_to=object,
        )


def test_a_disabled_key_stops_and_an_enabled_one_works_again(server: RunningServer):
    secret, key_id = new_key(server)
    assert ask(server, secret)
    cli(server, "keys", "disable", key_id)
    assert eventually(lambda: refused(server, secret, openai.AuthenticationError))
    with pytest.raises(openai.AuthenticationError) as disabled:
        ask(server, secret)
    assert disabled.value.code == "api_key_disabled"
    assert "disabled" in cli(server, "keys", "list").split(key_id, 1)[1].splitlines()[0]
    cli(server, "keys", "enable", key_id)
    assert eventually(lambda: not refused(server, secret, openai.AuthenticationError))


def test_rotation_keeps_the_old_secret_for_its_grace(server: RunningServer):
    old, key_id = new_key(server, "--name", "rotated")
    assert ask(server, old)
    new = cli(server, "keys", "rotate", key_id, "--grace", "20s")
    rotated = time.monotonic()
    assert new.startswith("sk-") and new != old
    assert ask(server, old)  # within the grace period
    assert ask(server, new)
    assert time.monotonic() - rotated < 20, "too slow to see the grace period"
    time.sleep(max(0.0, 20 - (time.monotonic() - rotated)))
    assert eventually(lambda: refused(server, old, openai.AuthenticationError))
    assert ask(server, new)
    # one key throughout: its listing shows one id, with the new secret's display
    listing = [line for line in cli(server, "keys", "list").splitlines() if key_id in line]
    assert len(listing) == 1 and f"{new[:7]}...{new[-4:]}" in listing[0]


def test_a_projects_daily_budget_refuses_once_spent(server: RunningServer):
    cli(server, "projects", "create", "tight", "--daily-budget", "0.0001")
    secret, _ = new_key(server, "--project", "tight")
    assert ask(server, secret)  # the budget is not spent yet: let in
    with pytest.raises(openai.RateLimitError) as spent:
        for _ in range(5):  # its charge reaches the count at once on this gateway
            ask(server, secret)
    assert spent.value.code == "project_budget_exceeded"
    assert "daily budget of ¥0.0001" in spent.value.message and "tight" in spent.value.message
    assert "tight" in cli(server, "projects", "list")
    cli(server, "projects", "budget", "tight", "--daily-budget", "100")
    assert eventually(lambda: not refused(server, secret, openai.RateLimitError))


def test_a_projects_model_allowlist_refuses_other_models(server: RunningServer):
    cli(server, "projects", "create", "narrow")
    secret, _ = new_key(server, "--project", "narrow")  # the key itself allows any model
    assert ask(server, secret)  # cached by the server now, with its project's policy
    cli(server, "projects", "models", "narrow", "--allow", MODEL)

    def refused_other() -> bool:
        try:
            ask(server, secret, "kimi-k2-turbo-preview")
        except openai.PermissionDeniedError:
            return True
        return False

    assert eventually(refused_other)  # within the key cache's TTL
    with pytest.raises(openai.PermissionDeniedError) as blocked:
        ask(server, secret, "kimi-k2-turbo-preview")
    assert blocked.value.code == "model_not_allowed"
    assert "project narrow" in blocked.value.message and MODEL in blocked.value.message
    assert ask(server, secret, MODEL)


def test_a_file_of_one_project_is_invisible_from_another(server: RunningServer):
    cli(server, "projects", "create", "files-a")
    cli(server, "projects", "create", "files-b")
    mine = openai_client(f"{server.base_url}/v1", new_key(server, "--project", "files-a")[0])
    theirs = openai_client(f"{server.base_url}/v1", new_key(server, "--project", "files-b")[0])
    uploaded = mine.files.create(file=("notes.txt", b"project notes"), purpose="file-extract")
    assert mine.files.retrieve(uploaded.id).id == uploaded.id
    assert uploaded.id in [f.id for f in mine.files.list()]
    assert uploaded.id not in [f.id for f in theirs.files.list()]
    for look in (theirs.files.retrieve, theirs.files.content, theirs.files.delete):
        with pytest.raises(openai.NotFoundError):
            look(uploaded.id)
    assert mine.files.content(uploaded.id).read()  # still there for its own project
