"""Wire models of POST /v1/tokenizers/estimate-token-count."""

from __future__ import annotations

from pydantic import Field, StrictStr

from moonbase.schemas.base import WireModel
from moonbase.schemas.chat import Message


class EstimateTokenRequest(WireModel):
    model: StrictStr
    messages: list[Message] = Field(min_length=1)


class TokenCount(WireModel):
    total_tokens: int


class EstimateTokenResponse(WireModel):
    data: TokenCount
