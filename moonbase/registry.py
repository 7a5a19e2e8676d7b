"""Which engine serves which model id, what each model really offers here, and
the chat backend that reaches its engine (chosen here, once, by engine kind)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from moonbase.catalog import MODEL_SPECS, SPECS_BY_ID, ServedModel
from moonbase.chat.backend import ChatBackend
from moonbase.chat.passthrough import PassthroughBackend
from moonbase.chat.templated import TemplatedBackend
from moonbase.engines.base import ChatEngine, Engine
from moonbase.errors import NotFoundError
from moonbase.settings import Settings


def backend_for(engine: Engine | ChatEngine) -> ChatBackend:
    """The platform templates for an engine that takes tokens; one that takes
    conversations (an upstream server) gets the request as it was sent."""
    # The capability flag is the engine's word on its kind: a Protocol
    # isinstance check would test method names, not what the engine is.
    if engine.capabilities.takes_conversations:
        return PassthroughBackend(cast(ChatEngine, engine))
    return TemplatedBackend(cast(Engine, engine))


class ModelRegistry:
    def __init__(
        self, models: Mapping[str, ServedModel], engines: Mapping[str, Engine | ChatEngine]
    ) -> None:
        self._models = dict(models)
        self._engines = dict(engines)
        self._backends = {name: backend_for(engine) for name, engine in self._engines.items()}

    @classmethod
    def build(cls, settings: Settings, engines: Mapping[str, Engine | ChatEngine]) -> ModelRegistry:
        """Serve every enabled catalog model on its configured engine.

        A model reports (and enforces) the smaller of the catalog's context and
        the engine's, and image/video input only where the engine has it. A
        vision model (``-vision-preview``, kimi-k2.5/k2.6) whose engine is not
        set explicitly goes to the first engine that reads images, if any.
        """
        seeing = [name for name, engine in engines.items() if engine.capabilities.supports_image_in]
        served: dict[str, ServedModel] = {}
        for spec in MODEL_SPECS:
            config = settings.model_settings(spec.id)
            if not config.enabled:
                continue
            engine_name = config.engine or settings.default_engine
            if spec.supports_image_in and seeing and config.engine is None:
                engine_name = seeing[0]
            if engine_name not in engines:
                raise ValueError(f"model {spec.id} is served by unknown engine '{engine_name}'")
            caps = engines[engine_name].capabilities
            context = min(spec.context_length, caps.context_length)
            if config.context_length is not None:
                context = min(context, config.context_length)
            served[spec.id] = ServedModel(
                spec=spec,
                engine_name=engine_name,
                context_length=context,
                supports_image_in=spec.supports_image_in and caps.supports_image_in,
                supports_video_in=spec.supports_video_in and caps.supports_video_in,
                tool_format=caps.tool_format,
            )
        return cls(served, engines)

    def get(self, model_id: str) -> ServedModel:
        model = self._models.get(model_id)
        if model is None:
            known = (
                "is not a Moonshot model" if model_id not in SPECS_BY_ID else "is not served here"
            )
            raise NotFoundError(
                f"Not found the model {model_id} or Permission denied: the model {known}",
                param="model",
                code="model_not_found",
            )
        return model

    def backend(self, model: ServedModel) -> ChatBackend:
        return self._backends[model.engine_name]

    def all(self) -> list[ServedModel]:
        return list(self._models.values())

    def engines(self) -> Mapping[str, Engine | ChatEngine]:
        return self._engines
