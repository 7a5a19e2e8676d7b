"""Messages for an upstream engine: the client's own, with media made inline.

An upstream cannot open ``ms://`` files or reach the URLs this gateway may
fetch, so every image and video part is replaced by a data URL of the bytes
the platform already fetched and checked.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from moonbase.engines.base import MediaInput


def inline_media(
    messages: list[dict[str, Any]], media: Mapping[tuple[int, int], MediaInput]
) -> None:
    """Point each resolved media part of ``messages`` (wire dicts) at its bytes."""
    for (message_index, part_index), item in media.items():
        part = messages[message_index]["content"][part_index]
        field = "image_url" if item.kind == "image" else "video_url"
        encoded = base64.b64encode(item.data).decode("ascii")
        part[field] = {"url": f"data:{item.mime_type};base64,{encoded}"}
