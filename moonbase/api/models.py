"""GET /v1/models: what this deployment really serves."""

from __future__ import annotations

from fastapi import APIRouter

from moonbase.api.deps import CallerDep, ModelsDep
from moonbase.schemas.models import ModelCard, ModelList

router = APIRouter()


@router.get("/v1/models", response_model=ModelList)
async def list_models(models: ModelsDep, _caller: CallerDep) -> ModelList:
    return ModelList(
        data=[
            ModelCard(
                id=model.id,
                created=model.spec.created,
                context_length=model.context_length,
                supports_image_in=model.supports_image_in,
                supports_video_in=model.supports_video_in,
                supports_reasoning=model.spec.supports_reasoning,
            )
            for model in models.all()
        ]
    )
