"""What a model's tokens cost.

Defaults follow Moonshot's public list prices (CNY per 1M tokens) as known
when this was written; operators set their own in ``[billing.prices]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from pydantic import BaseModel


class Price(BaseModel):
    """CNY per 1M tokens."""

    input: Decimal  # prompt tokens that missed the cache
    input_cached: Decimal  # prompt tokens served from the prefix cache
    output: Decimal


def _p(miss: str, hit: str, out: str) -> Price:
    return Price(input=Decimal(miss), input_cached=Decimal(hit), output=Decimal(out))


DEFAULT_PRICES: dict[str, Price] = {
    "moonshot-v1-8k": _p("2", "2", "10"),
    "moonshot-v1-32k": _p("5", "5", "20"),
    "moonshot-v1-128k": _p("10", "10", "30"),
    "moonshot-v1-8k-vision-preview": _p("2", "2", "10"),
    "moonshot-v1-32k-vision-preview": _p("5", "5", "20"),
    "moonshot-v1-128k-vision-preview": _p("10", "10", "30"),
    "kimi-k2-0905-preview": _p("4", "1", "16"),
    "kimi-k2-0711-preview": _p("4", "1", "16"),
    "kimi-k2-turbo-preview": _p("8", "1", "58"),
    "kimi-k2-thinking": _p("4", "1", "16"),
    "kimi-k2-thinking-turbo": _p("8", "1", "58"),
    "kimi-k2.5": _p("4", "0.7", "21"),
    "kimi-k2.6": _p("6.5", "1.1", "27"),
}
# moonshot-v1-auto is charged as the model it picked.


@dataclass(frozen=True)
class TokenUsage:
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int


def cost_micro(price: Price, usage: TokenUsage, discount: Decimal = Decimal(1)) -> int:
    """Cost in micro-yuan, rounded half up once per request."""
    missed = usage.prompt_tokens - usage.cached_tokens
    yuan_per_million = (
        price.input * missed
        + price.input_cached * usage.cached_tokens
        + price.output * usage.completion_tokens
    ) * discount
    # CNY per 1M tokens * tokens = micro-yuan.
    return int(yuan_per_million.to_integral_value(ROUND_HALF_UP))
