"""Form text -> the values the services take, each problem a ``BadRequestError``
naming its field (``param``), which ``Page.error_text`` shows with the
field's label from the catalogue."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from moonbase.errors import BadRequestError

M = TypeVar("M", bound=BaseModel)


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
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise BadRequestError(f"{text[:40]!r} is not an amount", param=param) from None
    if not value.is_finite() or value <= 0:
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
    try:
        value = int(text)
    except ValueError:
        raise BadRequestError(f"{text[:40]!r} is not a whole number", param=param) from None
    if not low <= value <= high:
        raise BadRequestError(f"must be between {low} and {high}", param=param)
    return value
