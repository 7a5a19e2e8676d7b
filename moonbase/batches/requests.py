"""What a client may ask of a batch: window, metadata, endpoint (checked at create)."""

from __future__ import annotations

import re
from typing import Any

from moonbase import bounds
from moonbase.errors import BadRequestError

ENDPOINT = "/v1/chat/completions"
_WINDOW = re.compile(r"^(\d+)([hd])$")
MIN_WINDOW_S = 12 * 3600
MAX_WINDOW_S = 7 * 86400


def window_seconds(window: str) -> int:
    """Seconds of a semantic window ("12h", "24h", "3d", up to "7d")."""
    match = _WINDOW.match(window.strip())
    seconds = 0
    if match:
        seconds = int(match.group(1)) * (3600 if match.group(2) == "h" else 86400)
    if not MIN_WINDOW_S <= seconds <= MAX_WINDOW_S:
        raise BadRequestError(
            f"completion_window must be between 12h and 7d, written like 24h or 3d; got {window!r}",
            param="completion_window",
        )
    return seconds


def check_endpoint(endpoint: str) -> None:
    if endpoint != ENDPOINT:
        raise BadRequestError(f"endpoint must be {ENDPOINT}; got {endpoint!r}", param="endpoint")


def check_metadata(metadata: dict[str, Any] | None) -> dict[str, str]:
    if metadata is None:
        return {}
    if len(metadata) > bounds.METADATA_PAIRS:
        raise BadRequestError(
            f"metadata may have at most {bounds.METADATA_PAIRS} keys, got {len(metadata)}",
            param="metadata",
        )
    for key, value in metadata.items():
        problem = bounds.METADATA_KEY.check(key, "metadata keys")
        if problem is not None:
            raise BadRequestError(f"{problem}: {key[:80]!r}", param="metadata")
        if not isinstance(value, str):
            raise BadRequestError(
                f"metadata values must be strings (key {key!r})", param="metadata"
            )
        problem = bounds.METADATA_VALUE.check(value, "metadata values")
        if problem is not None:
            raise BadRequestError(f"{problem} (key {key!r})", param="metadata")
    return dict(metadata)
