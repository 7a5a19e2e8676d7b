"""Webhook delivery: the outbox's due rows, POSTed signed, retried with backoff.

A sender claims due rows (``claimed_by``/``claim_until``, ``SKIP LOCKED`` on
PostgreSQL; SQLite's one writer serialises claims), so several processes
never send one row at the same moment. Each attempt is signed afresh
(Standard Webhooks: its own ``webhook-timestamp``, the delivery's id as
``webhook-id``) and its outcome written back in one transaction:

- 2xx: delivered.
- network errors, timeouts, 408, 429 and 5xx: tried again after
  ``retry_base_s * 2**(n-1)`` seconds, jittered to half to all of it, capped
  at ``retry_max_s``; a ``Retry-After`` header (seconds or an HTTP date)
  lengthens the wait, up to the same cap. After ``max_attempts`` it is
  failed: the last error stays in the row, a warning is logged and
  ``moonbase_webhook_deliveries_total{outcome="failed"}`` counts it.
- any other status (3xx: redirects are not followed; 4xx): failed at once,
  since sending the same request again cannot change the answer.

A delivery whose project has no webhook any more fails with that reason.
The URL is read at each attempt, so a corrected URL serves pending retries.

Addresses are not filtered: the webhook is set by the operator or an
organisation's admin of a self-hosted deployment, and a receiver on the
local network (or loopback) is the usual case. See docs/configuration.md.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import aiohttp

from moonbase.alerts import signing
from moonbase.metrics import Metrics
from moonbase.settings import AlertSettings
from moonbase.store.database import Database
from moonbase.store.repositories import spend_alerts
from moonbase.store.repositories import webhook_deliveries as outbox
from moonbase.store.tables import utcnow

log = logging.getLogger(__name__)

CLAIM_BATCH = 16  # deliveries one sender takes (and sends concurrently) at once
CLAIM_MARGIN_S = 30.0  # a claim outlasts one attempt's timeout by this much
MAX_ERROR_CHARS = 500  # the column's bound
USER_AGENT = "moonbase-webhooks/1"


@dataclass(frozen=True)
class Outcome:
    kind: str  # "delivered", "retry" or "failed"
    status: int | None = None  # the HTTP status, when there was an answer
    error: str | None = None
    retry_after_s: float | None = None


def classify(status: int, retry_after: str | None) -> Outcome:
    if 200 <= status < 300:
        return Outcome("delivered", status)
    if status in (408, 429) or status >= 500:
        return Outcome("retry", status, f"HTTP {status}", _retry_after_s(retry_after))
    reason = f"HTTP {status}"
    if 300 <= status < 400:
        reason += " (a redirect: set the webhook to the URL it points to)"
    return Outcome("failed", status, reason)


def _retry_after_s(value: str | None) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def backoff_s(
    attempts: int, settings: AlertSettings, retry_after_s: float | None, rng: Callable[[], float]
) -> float:
    """The wait after the ``attempts``-th failed attempt."""
    ceiling = min(settings.retry_max_s, settings.retry_base_s * 2 ** min(attempts - 1, 60))
    wait = ceiling / 2 + rng() * ceiling / 2  # jitter: receivers that failed together spread out
    if retry_after_s is not None:
        wait = max(wait, min(retry_after_s, settings.retry_max_s))
    return wait


def _storable(text: str) -> str:
    """An error message as the column can hold it (bounded; no NUL, no lone surrogate)."""
    text = text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "")
    return text[:MAX_ERROR_CHARS]


@dataclass(frozen=True)
class _Job:
    id: str
    project_id: str
    payload: str


class WebhookSender:
    def __init__(
        self,
        db: Database,
        settings: AlertSettings,
        metrics: Metrics | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._db = db
        self._settings = settings
        self._metrics = metrics
        self._rng = rng
        self._http: aiohttp.ClientSession | None = None
        self.name = f"{socket.gethostname()}-{secrets.token_hex(4)}"[:64]

    async def run(self) -> None:
        """Send until cancelled."""
        try:
            while True:
                try:
                    worked = await self.step()
                except asyncio.CancelledError:
                    raise
                except Exception:  # the database away: try again at the next poll
                    log.exception("webhook sender step failed")
                    worked = False
                if not worked:
                    await asyncio.sleep(self._settings.poll_interval_s)
        finally:
            await self.close()

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def step(self) -> bool:
        """Claim due deliveries and attempt each once; False if none was due."""
        now = time.time()
        async with self._db.read() as session:
            if not await outbox.any_due(session, now):
                return False
        hold = self._settings.timeout_s + CLAIM_MARGIN_S
        async with self._db.transaction() as session:
            rows = await outbox.claim(session, self.name, now, hold, CLAIM_BATCH)
            jobs = [_Job(row.id, row.project_id, row.payload) for row in rows]
            hooks = await spend_alerts.webhooks(session, {job.project_id for job in jobs})
            targets = {pid: (hook.url, hook.secret) for pid, hook in hooks.items()}
        if not jobs:
            return False
        await asyncio.gather(*(self._attempt(job, targets.get(job.project_id)) for job in jobs))
        return True

    async def _attempt(self, job: _Job, target: tuple[str, str] | None) -> None:
        if target is None:
            outcome = Outcome("failed", None, "the project has no webhook")
        else:
            outcome = await self._post(job, *target)
        await self._record(job, outcome)

    async def _post(self, job: _Job, url: str, secret: str) -> Outcome:
        body = job.payload.encode()
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            **signing.headers(secret, job.id, int(time.time()), body),
        }
        if self._http is None:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._settings.timeout_s)
            )
        try:
            async with self._http.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response:
                return classify(response.status, response.headers.get("retry-after"))
        except TimeoutError:
            return Outcome("retry", None, f"no answer within {self._settings.timeout_s:g} s")
        except aiohttp.InvalidURL as exc:  # no attempt can use it: fix the webhook
            return Outcome("failed", None, f"invalid URL: {exc}")
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            # ValueError: aiohttp refuses some URLs only when used (yarl).
            return Outcome("retry", None, f"{type(exc).__name__}: {exc}")

    async def _record(self, job: _Job, outcome: Outcome) -> None:
        async with self._db.transaction() as session:
            row = await outbox.lock(session, job.id)
            if row is None or row.claimed_by != self.name or row.status != "pending":
                # Our claim lapsed and another sender took the row: its record stands.
                log.warning("webhook delivery %s: claim lost before its outcome", job.id)
                return
            row.attempts += 1
            row.last_status = outcome.status
            row.claimed_by = None
            row.claim_until = None
            kind = outcome.kind
            if kind == "delivered":
                row.status = "delivered"
                row.delivered_at = utcnow()
                row.last_error = None
            elif kind == "retry" and row.attempts < self._settings.max_attempts:
                wait = backoff_s(row.attempts, self._settings, outcome.retry_after_s, self._rng)
                row.next_attempt_at = time.time() + wait
                row.last_error = _storable(outcome.error or "")
                kind = "retried"
            else:  # refused for good, or out of attempts
                row.status = kind = "failed"
                row.last_error = _storable(outcome.error or "")
            attempts = row.attempts
        if kind == "failed":
            log.warning(
                "webhook delivery %s of project %s failed after %d attempts: %s",
                job.id, job.project_id, attempts, outcome.error,
            )  # fmt: skip
        elif kind == "retried":
            log.info("webhook delivery %s: attempt %d: %s", job.id, attempts, outcome.error)
        if self._metrics is not None:
            self._metrics.webhook_deliveries.labels(kind).inc()
