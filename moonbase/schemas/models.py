"""Wire models of GET /v1/models."""

from __future__ import annotations

from typing import Literal

from moonbase.schemas.base import WireModel


class ModelCard(WireModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "moonshot"
    context_length: int
    supports_image_in: bool
    supports_video_in: bool
    supports_reasoning: bool


class ModelList(WireModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
