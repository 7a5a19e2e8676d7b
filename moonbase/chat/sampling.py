"""Per-family sampling rules: defaults, ranges and the platform-fixed values.

moonshot-v1, kimi-k2 and kimi-k2-thinking take temperature 0..1 (defaults
0.0 / 0.6 / 1.0), top_p 0..1, n 1..5 and penalties -2..2. kimi-k2.5 and
kimi-k2.6 sample at fixed values: a temperature inside 0..1 is accepted and
replaced, and top_p, n and the penalties may only repeat the fixed value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from moonbase.catalog import Family, FixedSampling, Thinking
from moonbase.engines.base import SamplingParams
from moonbase.errors import BadRequestError
from moonbase.schemas.chat import ChatCompletionRequest

MAX_CHOICES = 5
# "When temperature is very close to 0, only one result can be returned."
# The platform does not publish the threshold; below this, n > 1 is refused.
NEAR_ZERO_TEMPERATURE = 0.01


@dataclass(frozen=True)
class SamplingPlan:
    temperature: float
    top_p: float
    n: int
    presence_penalty: float
    frequency_penalty: float
    thinking: bool
    keep_reasoning: bool

    @property
    def params(self) -> SamplingParams:
        """What an engine samples with (the rest of the plan is the platform's)."""
        return SamplingParams(
            temperature=self.temperature,
            top_p=self.top_p,
            presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty,
        )


def check_choices(n: int | None) -> int:
    """How many choices a request asks for (``n``, 1 when unset); a 400 out of range."""
    if n is None:
        return 1
    if not 1 <= n <= MAX_CHOICES:
        raise BadRequestError(f"n must be between 1 and {MAX_CHOICES}, got {n}", param="n")
    return n


def plan_sampling(family: Family, request: ChatCompletionRequest) -> SamplingPlan:
    thinking, keep = _thinking(family, request)
    _check_range("temperature", request.temperature, 0.0, 1.0)
    if family.fixed is not None:
        return _fixed_plan(family.fixed, request, thinking, keep)
    _check_range("top_p", request.top_p, 0.0, 1.0)
    _check_range("presence_penalty", request.presence_penalty, -2.0, 2.0)
    _check_range("frequency_penalty", request.frequency_penalty, -2.0, 2.0)
    n = check_choices(request.n)
    temperature = family.default_temperature if request.temperature is None else request.temperature
    if n > 1 and temperature < NEAR_ZERO_TEMPERATURE:
        raise BadRequestError(
            f"n > 1 needs sampling: with temperature {temperature} (close to 0) only one "
            "choice can be returned; raise the temperature or set n to 1",
            param="n",
        )
    return SamplingPlan(
        temperature=float(temperature),
        top_p=float(_or(request.top_p, 1.0)),
        n=n,
        presence_penalty=float(_or(request.presence_penalty, 0.0)),
        frequency_penalty=float(_or(request.frequency_penalty, 0.0)),
        thinking=thinking,
        keep_reasoning=keep,
    )


def _fixed_plan(
    fixed: FixedSampling, request: ChatCompletionRequest, thinking: bool, keep: bool
) -> SamplingPlan:
    _check_fixed("top_p", request.top_p, fixed.top_p)
    _check_fixed("n", request.n, fixed.n)
    _check_fixed("presence_penalty", request.presence_penalty, fixed.presence_penalty)
    _check_fixed("frequency_penalty", request.frequency_penalty, fixed.frequency_penalty)
    return SamplingPlan(
        temperature=fixed.temperature_thinking if thinking else fixed.temperature_plain,
        top_p=fixed.top_p,
        n=fixed.n,
        presence_penalty=fixed.presence_penalty,
        frequency_penalty=fixed.frequency_penalty,
        thinking=thinking,
        keep_reasoning=keep,
    )


def _thinking(family: Family, request: ChatCompletionRequest) -> tuple[bool, bool]:
    """Whether this request thinks, and whether history reasoning is kept.

    Clients send ``thinking`` to every model; on a family without the
    parameter it is accepted and has no effect.
    """
    option = request.thinking
    if family.thinking is Thinking.NEVER:
        return False, False
    if family.thinking is Thinking.ALWAYS:
        return True, False
    if option is None:
        return True, False
    if option.keep is not None and not family.accepts_thinking_keep:
        raise BadRequestError(
            f"thinking.keep is not supported by {family.name}; only kimi-k2.6 accepts it",
            param="thinking.keep",
        )
    return option.type == "enabled", option.keep == "all"


def _check_range(param: str, value: float | None, low: float, high: float) -> None:
    if value is not None and not low <= value <= high:
        raise BadRequestError(
            f"{param} must be between {low:g} and {high:g}, got {value}", param=param
        )


def _check_fixed(param: str, value: float | None, fixed: float) -> None:
    if value is not None and not math.isclose(value, fixed, abs_tol=1e-9):
        raise BadRequestError(
            f"{param} is fixed at {fixed:g} for this model and cannot be changed, got {value}",
            param=param,
        )


def _or(value: float | None, default: float) -> float:
    return default if value is None else value
