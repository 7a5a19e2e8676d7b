"""The spec's fourteen model ids, their families' rules, and who serves them.

The catalog is data, not code paths: chat/ reads a model's family rules from
here, and the app resolves which engine serves a model id from here. What a
model *reports* (context length, image/video input) is the catalog's claim
narrowed by what the serving engine can really do; see ``ServedModel``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Thinking(enum.Enum):
    NEVER = "never"  # moonshot-v1, kimi-k2
    ALWAYS = "always"  # kimi-k2-thinking(-turbo)
    DEFAULT_ON = "default_on"  # kimi-k2.5 / k2.6: `thinking.type` may disable it


@dataclass(frozen=True)
class FixedSampling:
    """Sampling the platform pins for a family (kimi-k2.5, kimi-k2.6)."""

    temperature_thinking: float = 1.0
    temperature_plain: float = 0.6
    top_p: float = 0.95
    n: int = 1
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0


@dataclass(frozen=True)
class Family:
    name: str
    default_temperature: float
    thinking: Thinking
    fixed: FixedSampling | None = None
    accepts_thinking_keep: bool = False  # only kimi-k2.6 has `thinking.keep`
    # `tool_choice: {"type": "function", ...}`. Moonshot's newest model refuses
    # it (only "auto", "none" and "required"); every family of the seed's
    # catalog keeps accepting it, as the platform did when they were published.
    accepts_named_tool_choice: bool = True


MOONSHOT_V1 = Family("moonshot-v1", default_temperature=0.0, thinking=Thinking.NEVER)
KIMI_K2 = Family("kimi-k2", default_temperature=0.6, thinking=Thinking.NEVER)
KIMI_K2_THINKING = Family("kimi-k2-thinking", default_temperature=1.0, thinking=Thinking.ALWAYS)
KIMI_K2_5 = Family(
    "kimi-k2.5", default_temperature=1.0, thinking=Thinking.DEFAULT_ON, fixed=FixedSampling()
)
KIMI_K2_6 = Family(
    "kimi-k2.6",
    default_temperature=1.0,
    thinking=Thinking.DEFAULT_ON,
    fixed=FixedSampling(),
    accepts_thinking_keep=True,
)


@dataclass(frozen=True)
class ModelSpec:
    """What the Moonshot platform says a model id is."""

    id: str
    family: Family
    context_length: int
    supports_image_in: bool = False
    supports_video_in: bool = False
    created: int = 1_700_000_000

    @property
    def supports_reasoning(self) -> bool:
        return self.family.thinking is not Thinking.NEVER


K8, K32, K128, K256 = 8_192, 32_768, 131_072, 262_144

MODEL_SPECS: tuple[ModelSpec, ...] = (
    ModelSpec("moonshot-v1-8k", MOONSHOT_V1, K8),
    ModelSpec("moonshot-v1-32k", MOONSHOT_V1, K32),
    ModelSpec("moonshot-v1-128k", MOONSHOT_V1, K128),
    ModelSpec("moonshot-v1-auto", MOONSHOT_V1, K128),
    ModelSpec("moonshot-v1-8k-vision-preview", MOONSHOT_V1, K8, supports_image_in=True),
    ModelSpec("moonshot-v1-32k-vision-preview", MOONSHOT_V1, K32, supports_image_in=True),
    ModelSpec("moonshot-v1-128k-vision-preview", MOONSHOT_V1, K128, supports_image_in=True),
    ModelSpec("kimi-k2-0905-preview", KIMI_K2, K256),
    ModelSpec("kimi-k2-0711-preview", KIMI_K2, K128),
    ModelSpec("kimi-k2-turbo-preview", KIMI_K2, K256),
    ModelSpec("kimi-k2-thinking", KIMI_K2_THINKING, K256),
    ModelSpec("kimi-k2-thinking-turbo", KIMI_K2_THINKING, K256),
    ModelSpec("kimi-k2.5", KIMI_K2_5, K256, supports_image_in=True, supports_video_in=True),
    ModelSpec("kimi-k2.6", KIMI_K2_6, K256, supports_image_in=True, supports_video_in=True),
)

SPECS_BY_ID: dict[str, ModelSpec] = {spec.id: spec for spec in MODEL_SPECS}

AUTO_MODEL_ID = "moonshot-v1-auto"
# moonshot-v1-auto picks the smallest context that holds prompt + max tokens.
AUTO_TIERS: tuple[tuple[int, str], ...] = (
    (K8, "moonshot-v1-8k"),
    (K32, "moonshot-v1-32k"),
    (K128, "moonshot-v1-128k"),
)


def pick_auto_model(prompt_tokens: int, max_tokens: int) -> str:
    needed = prompt_tokens + max_tokens
    for limit, model_id in AUTO_TIERS:
        if needed <= limit:
            return model_id
    return AUTO_TIERS[-1][1]


@dataclass(frozen=True)
class ServedModel:
    """A catalog model as this deployment really serves it."""

    spec: ModelSpec
    engine_name: str
    context_length: int
    supports_image_in: bool
    supports_video_in: bool
    # How the serving model writes tool calls (chat/tool_formats.py), where the
    # platform parses them; "hermes" for an upstream, which parses its own.
    tool_format: str = "hermes"

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def family(self) -> Family:
        return self.spec.family
