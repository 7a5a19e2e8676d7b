"""Deliveries reach a local receiver signed (checked by the spec's algorithm,
written in the test), retried with backoff after 5xx, 429, timeouts and
refused connections, given up after max_attempts, never retried after a
permanent 4xx; the secret stays out of the logs. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from sqlalchemy import select, update

from moonbase.alerts import manage
from moonbase.alerts.delivery import WebhookSender, classify
from moonbase.alerts.detector import SpendAlertDetector
from moonbase.metrics import Metrics
from moonbase.settings import AlertSettings
from moonbase.store.database import Database
from moonbase.store.tables import WebhookDelivery
from tests.alerts.projects import FAST, Alerting, alerting_project, spend
from tests.alerts.receiver import receiver, verify
from tests.e2e.server import free_port


async def crossed(db: Database, url: str, account: str = "acme") -> Alerting:
    """A project whose day alert (¥1) has been crossed and recorded."""
    target = await alerting_project(db, account, url, ("day", "1"))
    await spend(db, target, 1_500_000)
    assert await SpendAlertDetector(db, FAST).check() == 1
    return target


async def the_delivery(db: Database) -> WebhookDelivery:
    async with db.read() as session:
        rows = list(await session.scalars(select(WebhookDelivery)))
    assert len(rows) == 1
    return rows[0]


async def make_due(db: Database) -> None:
    """Skip the wait of a scheduled retry (its length is checked separately)."""
    async with db.transaction() as session:
        await session.execute(update(WebhookDelivery).values(next_attempt_at=0))


def failures(metrics: Metrics, outcome: str) -> float:
    value = metrics.registry.get_sample_value(
        "moonbase_webhook_deliveries_total", {"outcome": outcome}
    )
    return value or 0.0


async def test_a_crossing_arrives_once_signed(database: Database):
    async with receiver() as hook:
        target = await crossed(database, hook.url)
        sender = WebhookSender(database, FAST)
        try:
            assert await sender.step()
            assert not await sender.step()  # delivered: nothing is due
        finally:
            await sender.close()
        assert await SpendAlertDetector(database, FAST).check() == 0
    assert len(hook.received) == 1
    post = hook.received[0]
    assert post.headers["content-type"] == "application/json"
    assert verify(target.secret, post.headers, post.body)
    row = await the_delivery(database)
    assert post.headers["webhook-id"] == row.id
    assert post.body == row.payload.encode()
    event = json.loads(post.body)
    assert event["type"] == "spend_alert.crossed"
    assert event["data"]["project_id"] == target.project_id
    assert event["data"]["organization_id"] == target.account_id
    assert (event["data"]["threshold"], event["data"]["spend"]) == ("1.000000", "1.500000")
    assert (row.status, row.attempts, row.last_status) == ("delivered", 1, 200)
    assert row.delivered_at is not None and row.claimed_by is None


async def test_500s_are_retried_with_exponential_backoff(database: Database):
    settings = FAST.model_copy(update={"max_attempts": 5, "retry_base_s": 10, "retry_max_s": 25})
    async with receiver(500, 502, 503, 200) as hook:
        target = await crossed(database, hook.url)
        sender = WebhookSender(database, settings, rng=lambda: 1.0)  # the jitter's top: exact
        try:
            waits = []
            for status in (500, 502, 503):
                before = time.time()
                assert await sender.step()
                row = await the_delivery(database)
                assert (row.status, row.last_status) == ("pending", status)
                waits.append((row.next_attempt_at - before, row.next_attempt_at - time.time()))
                assert not await sender.step()  # not due before its time
                await make_due(database)
            assert await sender.step()
        finally:
            await sender.close()
    for (most, least), expected in zip(waits, (10, 20, 25), strict=True):  # doubling, capped
        assert least <= expected <= most
    assert len(hook.received) == 4
    assert len({post.headers["webhook-id"] for post in hook.received}) == 1  # one event
    assert all(verify(target.secret, post.headers, post.body) for post in hook.received)
    row = await the_delivery(database)
    assert (row.status, row.attempts, row.last_status, row.last_error) == (
        "delivered",
        4,
        200,
        None,
    )


async def test_jitter_spreads_a_retry_between_half_and_all_of_its_wait(database: Database):
    settings = FAST.model_copy(update={"retry_base_s": 100, "retry_max_s": 1000})
    async with receiver(500) as hook:
        await crossed(database, hook.url)
        sender = WebhookSender(database, settings, rng=lambda: 0.0)  # the jitter's bottom
        try:
            before = time.time()
            await sender.step()
        finally:
            await sender.close()
    row = await the_delivery(database)
    assert before + 50 <= row.next_attempt_at <= time.time() + 50


async def test_retry_after_is_honoured(database: Database):
    settings = FAST.model_copy(update={"retry_base_s": 1, "retry_max_s": 3600})
    async with receiver((429, {"Retry-After": "120"}), (503, {"Retry-After": "7"})) as hook:
        await crossed(database, hook.url)
        sender = WebhookSender(database, settings, rng=lambda: 1.0)
        try:
            before = time.time()
            await sender.step()
            row = await the_delivery(database)
            assert row.next_attempt_at >= before + 120  # not the 1 s backoff
            assert (row.status, row.last_status) == ("pending", 429)
            await make_due(database)
            before = time.time()
            await sender.step()
            row = await the_delivery(database)
            assert before + 7 <= row.next_attempt_at <= time.time() + 7  # 7 s over the 2 s backoff
        finally:
            await sender.close()


async def test_given_up_after_max_attempts_with_the_failure_kept(
    database: Database, caplog: pytest.LogCaptureFixture
):
    metrics = Metrics()
    caplog.set_level(logging.INFO)
    async with receiver(default=500) as hook:
        target = await crossed(database, hook.url)
        sender = WebhookSender(database, FAST, metrics)  # 3 attempts, 0.05 s base
        task = asyncio.create_task(sender.run())
        try:
            await hook.wait_for(3)
            for _ in range(200):  # the third attempt's outcome is written just after its answer
                if (await the_delivery(database)).status == "failed":
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)  # a fourth attempt would be due by now
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert len(hook.received) == 3
    row = await the_delivery(database)
    assert (row.status, row.attempts, row.last_status, row.last_error) == (
        "failed", 3, 500, "HTTP 500",
    )  # fmt: skip
    assert (failures(metrics, "retried"), failures(metrics, "failed")) == (2, 1)
    gave_up = [r for r in caplog.records if "failed after 3 attempts" in r.getMessage()]
    assert len(gave_up) == 1 and gave_up[0].levelno == logging.WARNING
    assert row.id in gave_up[0].getMessage()
    assert target.secret not in caplog.text
    assert target.secret.removeprefix("whsec_") not in caplog.text
    views = await manage.list_deliveries(database, target.project_id)
    assert [(v.status, v.last_error) for v in views] == [("failed", "HTTP 500")]


@pytest.mark.parametrize("status", [400, 404, 410, 301])
async def test_a_permanent_refusal_is_not_retried(database: Database, status: int):
    headers = {"Location": "http://127.0.0.1:9/elsewhere"} if status == 301 else {}
    async with receiver((status, headers), default=200) as hook:
        await crossed(database, hook.url)
        sender = WebhookSender(database, FAST)
        try:
            assert await sender.step()
            await make_due(database)
            assert not await sender.step()
        finally:
            await sender.close()
    assert len(hook.received) == 1  # and no redirect followed
    row = await the_delivery(database)
    assert (row.status, row.attempts, row.last_status) == ("failed", 1, status)
    assert row.last_error is not None and row.last_error.startswith(f"HTTP {status}")


async def test_a_refused_connection_and_a_silent_receiver_are_retried(database: Database):
    target = await crossed(database, f"http://127.0.0.1:{free_port()}/hook")  # nobody listens
    settings = FAST.model_copy(update={"timeout_s": 0.5, "max_attempts": 5})
    sender = WebhookSender(database, settings)
    try:
        assert await sender.step()
        row = await the_delivery(database)
        assert (row.status, row.attempts, row.last_status) == ("pending", 1, None)
        assert row.last_error is not None and "Connect" in row.last_error
        async with receiver(delay_s=5) as hook:  # answers long after the timeout
            await manage.set_webhook(database, target.project_id, hook.url)
            await make_due(database)
            assert await sender.step()
            assert len(hook.received) == 1
        row = await the_delivery(database)
        assert (row.status, row.attempts) == ("pending", 2)
        assert row.last_error == "no answer within 0.5 s"
        async with receiver() as hook:  # the URL is read at each attempt
            await manage.set_webhook(database, target.project_id, hook.url)
            await make_due(database)
            assert await sender.step()
        assert (await the_delivery(database)).status == "delivered"
        assert verify(target.secret, hook.received[0].headers, hook.received[0].body)
    finally:
        await sender.close()


async def test_a_rotated_secret_signs_the_next_attempt(database: Database):
    async with receiver(500, 200) as hook:
        target = await crossed(database, hook.url)
        sender = WebhookSender(database, FAST)
        try:
            await sender.step()
            rotated = await manage.rotate_secret(database, target.project_id)
            assert rotated.secret is not None and rotated.secret != target.secret
            await make_due(database)
            await sender.step()
        finally:
            await sender.close()
    first, second = hook.received
    assert verify(target.secret, first.headers, first.body)
    assert verify(rotated.secret, second.headers, second.body)
    assert not verify(target.secret, second.headers, second.body)


async def test_a_removed_webhook_fails_its_pending_delivery(database: Database):
    target = await crossed(database, "http://127.0.0.1:9/hook")
    await manage.remove_webhook(database, target.project_id)
    sender = WebhookSender(database, FAST)
    try:
        assert await sender.step()
    finally:
        await sender.close()
    row = await the_delivery(database)
    assert (row.status, row.last_error) == ("failed", "the project has no webhook")


async def test_two_senders_never_send_one_delivery_twice(database: Database):
    async with receiver(delay_s=0.3) as hook:
        await crossed(database, hook.url)
        other = Database(database.url)
        senders = [WebhookSender(database, FAST), WebhookSender(other, FAST)]
        try:
            worked = await asyncio.gather(*(s.step() for s in senders for _ in range(3)))
        finally:
            for sender in senders:
                await sender.close()
            await other.dispose()
    assert worked.count(True) == 1
    assert len(hook.received) == 1


def test_settings_bound_the_retry_schedule():
    with pytest.raises(ValueError):
        AlertSettings(max_attempts=0)
    with pytest.raises(ValueError):
        AlertSettings(timeout_s=0)


@pytest.mark.parametrize(
    ("status", "kind"),
    [(200, "delivered"), (204, "delivered"), (299, "delivered"), (301, "failed"),
     (307, "failed"), (400, "failed"), (401, "failed"), (404, "failed"), (408, "retry"),
     (410, "failed"), (422, "failed"), (429, "retry"), (500, "retry"), (502, "retry"),
     (503, "retry"), (504, "retry")],
)  # fmt: skip
def test_what_each_answer_means(status: int, kind: str):
    assert classify(status, None).kind == kind


def test_retry_after_in_seconds_or_as_a_date():
    assert classify(429, "120").retry_after_s == 120
    assert classify(503, "Wed, 21 Oct 2015 07:28:00 GMT").retry_after_s == 0  # past
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=600), usegmt=True)
    waited = classify(503, later).retry_after_s
    assert waited is not None and 500 < waited <= 600
    for junk in ("soon", "-5", "²", "", "1e9"):
        assert classify(429, junk).retry_after_s is None
