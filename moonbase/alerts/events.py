"""What a spend alert sends: its periods, its idempotency key, its payload.

The payload follows the Standard Webhooks shape (``type``, ``timestamp``,
``data``). Money is a string of yuan with six decimals, exact (micro-yuan
are integers; a float would round), so receivers parse it as a decimal.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from decimal import Decimal

from moonbase.billing.money import MICRO_PER_YUAN

CROSSED = "spend_alert.crossed"
PERIODS = ("day", "month")


def yuan_text(micro: int) -> str:
    return f"{Decimal(micro) / MICRO_PER_YUAN:.6f}"


def period_start(period: str, now: datetime) -> datetime:
    """The start of the UTC day or month that ``now`` is in."""
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day if period == "day" else day.replace(day=1)


def period_label(period: str, now: datetime) -> str:
    """ "2026-12-03" for a day, "2026-12" for a month (UTC)."""
    return period_start(period, now).strftime("%Y-%m-%d" if period == "day" else "%Y-%m")


def idempotency_key(alert_id: str, period: str, now: datetime) -> str:
    """One delivery per alert per period: the unique key of the outbox."""
    return f"{alert_id}:{period_label(period, now)}"


def new_delivery_id() -> str:
    # The webhook-id header; the spec asks for no "." in it (it is signed
    # between dots).
    return "msg_" + secrets.token_hex(12)


def crossed_payload(
    *,
    alert_id: str,
    project_id: str,
    organization_id: str,
    period: str,
    threshold_micro: int,
    spend_micro: int,
    now: datetime,
) -> str:
    """The exact JSON body that is signed and sent (compact, stored as is)."""
    event = {
        "type": CROSSED,
        "timestamp": now.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "data": {
            "alert_id": alert_id,
            "project_id": project_id,
            "organization_id": organization_id,
            "period": period,
            "period_start": period_label(period, now),
            "threshold": yuan_text(threshold_micro),
            "spend": yuan_text(spend_micro),
            "currency": "CNY",
        },
    }
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)
