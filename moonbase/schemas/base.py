"""The one base class of every wire model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class WireModel(BaseModel):
    """Requests ignore unknown fields, as the platform does: clients send
    vendor extras (``reasoning_effort``, ...) that must not break them."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class StrictWireModel(BaseModel):
    """For objects whose spec says ``additionalProperties: false``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
