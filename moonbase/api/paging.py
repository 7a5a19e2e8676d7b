"""Cursor pages (`limit`, `after`; `has_more`, `first_id`, `last_id`) shared by list routes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypedDict

from moonbase.bounds import whole_number
from moonbase.errors import BadRequestError


class _HasId(Protocol):
    id: str


def page_size(raw: str | None, default: int, most: int) -> int:
    # Parsed here rather than by FastAPI so that a bad value is Moonshot's 400, not a 422.
    if raw is None:
        return default
    size = whole_number(raw)
    if size is None or not 1 <= size <= most:
        raise BadRequestError(f"limit must be an integer from 1 to {most}", param="limit")
    return size


class PageEnds(TypedDict):
    first_id: str | None
    last_id: str | None


def page_ends(data: Sequence[_HasId]) -> PageEnds:
    return {
        "first_id": data[0].id if data else None,
        "last_id": data[-1].id if data else None,
    }
