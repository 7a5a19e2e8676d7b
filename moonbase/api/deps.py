"""Annotated dependencies: the services a route needs and the caller's identity."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from moonbase.batches.service import BatchService
from moonbase.billing.service import BillingService
from moonbase.chat.service import ChatService
from moonbase.errors import AuthenticationError
from moonbase.files.service import FileService
from moonbase.key_cache import KeyCache
from moonbase.registry import ModelRegistry
from moonbase.settings import Settings
from moonbase.store.database import Database
from moonbase.store.repositories.api_keys import KeyOwner


@dataclass(frozen=True)
class Services:
    """Everything the app holds for its lifetime; built once in create_app's lifespan."""

    settings: Settings
    db: Database
    registry: ModelRegistry
    billing: BillingService
    chat: ChatService
    files: FileService
    batches: BatchService
    keys: KeyCache


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_caller(request: Request, services: ServicesDep) -> KeyOwner:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationError(
            "Invalid Authentication: send your API key as 'Authorization: Bearer sk-...'",
            code="missing_api_key",
        )
    owner = await services.keys.owner(token)
    if owner is None:
        raise AuthenticationError("Invalid Authentication", code="invalid_api_key")
    return owner


CallerDep = Annotated[KeyOwner, Depends(get_caller)]


async def get_spending_caller(caller: CallerDep, services: ServicesDep) -> KeyOwner:
    """The caller of a route that spends, refused before its body is even
    parsed when its account has nothing left to spend (a large body costs the
    server more to parse than the refusal)."""
    await services.billing.check_funds(caller.account_id)
    return caller


SpendingCallerDep = Annotated[KeyOwner, Depends(get_spending_caller)]


async def get_request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


RequestIdDep = Annotated[str, Depends(get_request_id)]
