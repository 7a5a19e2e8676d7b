"""Form text -> the values the services take, each problem a ``BadRequestError``
naming its field (``param``), which ``Page.error_text`` shows with the
field's label from the catalogue."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from moonbase.bounds import whole_number
from moonbase.errors import BadRequestError

M = TypeVar("M", bound=BaseModel)
_AMOUNT = re.compile(r"[0-9]{1,15}(\.[0-9]{1,15})?")


def wire(model: type[M], **values: Any) -> M:
    """The management API's own request model, so the console is held to the
    same bounds; its first problem as a 400 naming the field."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = str(first["loc"][0]) if first.get("loc") else None
        raise BadRequestError(first["msg"], param=param) from None


def yuan(text: str, param: str) -> Decimal | None:
    """An amount in yuan ("" is none): digits with at most two decimals."""
    text = text.replace(",", "").replace("¥", "").strip()
    if not text:
        return None
    # ASCII digits only: Decimal also reads "١٢" and "1_000", which no one types as money.
    if not _AMOUNT.fullmatch(text):
        raise BadRequestError(f"{text[:40]!r} is not an amount", param=param)
    value = Decimal(text)
    if value <= 0:
        raise BadRequestError("must be more than 0", param=param)
    return value


def end_of_day(text: str, param: str) -> datetime | None:
    """A date (YYYY-MM-DD, as <input type=date> sends it) -> the end of that UTC day."""
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise BadRequestError(f"{text[:40]!r} is not a date (YYYY-MM-DD)", param=param) from None
    return datetime.combine(day, time(23, 59, 59), UTC)


def words(text: str) -> list[str]:
    """Items separated by commas, spaces or new lines."""
    return [item for item in re.split(r"[\s,，]+", text) if item]


def number(text: str, param: str, low: int, high: int) -> int:
    value = whole_number(text.strip())
    if value is None:  # ASCII digits: int() also reads "٣" and "1_000"
        raise BadRequestError(f"{text[:40]!r} is not a whole number", param=param)
    if not low <= value <= high:
        raise BadRequestError(f"must be between {low} and {high}", param=param)
    return value
