"""Annotated dependencies: the one service each route uses, and the caller's identity.

A route's signature says what it touches (``ChatDep``, ``FilesDep``, ...);
the services themselves are built by ``moonbase.services``, not here.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from moonbase.admin import AdminService
from moonbase.auth.caller import KeyOwner
from moonbase.auth.key_cache import KeyCache
from moonbase.batches.service import BatchService
from moonbase.billing.service import BillingService
from moonbase.chat.service import ChatService
from moonbase.errors import AuthenticationError
from moonbase.files.service import FileService
from moonbase.health import HealthService
from moonbase.registry import ModelRegistry
from moonbase.services import Services


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_chat(request: Request) -> ChatService:
    return _services(request).chat


async def get_files(request: Request) -> FileService:
    return _services(request).files


async def get_batches(request: Request) -> BatchService:
    return _services(request).batches


async def get_billing(request: Request) -> BillingService:
    return _services(request).billing


async def get_models(request: Request) -> ModelRegistry:
    return _services(request).registry


async def get_admin(request: Request) -> AdminService:
    return _services(request).admin


async def get_health(request: Request) -> HealthService | None:
    """None while the app is still starting (its services are not built yet)."""
    services: Services | None = getattr(request.app.state, "services", None)
    return services.health if services is not None else None


async def get_keys(request: Request) -> KeyCache:
    return _services(request).keys


ChatDep = Annotated[ChatService, Depends(get_chat)]
FilesDep = Annotated[FileService, Depends(get_files)]
BatchesDep = Annotated[BatchService, Depends(get_batches)]
BillingDep = Annotated[BillingService, Depends(get_billing)]
ModelsDep = Annotated[ModelRegistry, Depends(get_models)]
AdminDep = Annotated[AdminService, Depends(get_admin)]
HealthDep = Annotated[HealthService | None, Depends(get_health)]
KeysDep = Annotated[KeyCache, Depends(get_keys)]


async def get_caller(request: Request, keys: KeysDep) -> KeyOwner:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationError(
            "Invalid Authentication: send your API key as 'Authorization: Bearer sk-...'",
            code="missing_api_key",
        )
    owner = await keys.owner(token)
    if owner is None:
        raise AuthenticationError("Invalid Authentication", code="invalid_api_key")
    return owner


CallerDep = Annotated[KeyOwner, Depends(get_caller)]


async def get_spending_caller(caller: CallerDep, billing: BillingDep) -> KeyOwner:
    """The caller of a route that spends, refused before its body is even
    parsed when its account has nothing left to spend (a large body costs the
    server more to parse than the refusal)."""
    await billing.check_funds(caller.account_id)
    return caller


SpendingCallerDep = Annotated[KeyOwner, Depends(get_spending_caller)]


async def get_request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


RequestIdDep = Annotated[str, Depends(get_request_id)]
