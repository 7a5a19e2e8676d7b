"""Annotated dependencies: the one service each route uses, and the caller's identity.

A route's signature says what it touches (``ChatDep``, ``FilesDep``, ...);
the services themselves are built by ``moonbase.services``, not here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Request

from moonbase.admin import AdminService
from moonbase.alerts.manage import AlertsService
from moonbase.auth.caller import KeyOwner
from moonbase.auth.key_cache import KeyCache
from moonbase.batches.service import BatchService
from moonbase.billing.service import BillingService
from moonbase.chat.service import ChatService
from moonbase.errors import AuthenticationError
from moonbase.files.service import FileService
from moonbase.health import HealthService
from moonbase.organization.service import OrganizationService
from moonbase.registry import ModelRegistry
from moonbase.services import Services
from moonbase.settings import Settings

T = TypeVar("T")


def _service(pick: Callable[[Services], T]) -> Callable[[Request], Awaitable[T]]:
    """A dependency giving a route one of the app's services."""

    async def get(request: Request) -> T:
        return pick(request.app.state.services)

    return get


async def get_health(request: Request) -> HealthService | None:
    """None while the app is still starting (its services are not built yet)."""
    services: Services | None = getattr(request.app.state, "services", None)
    return services.health if services is not None else None


ChatDep = Annotated[ChatService, Depends(_service(lambda services: services.chat))]
FilesDep = Annotated[FileService, Depends(_service(lambda services: services.files))]
BatchesDep = Annotated[BatchService, Depends(_service(lambda services: services.batches))]
BillingDep = Annotated[BillingService, Depends(_service(lambda services: services.billing))]
ModelsDep = Annotated[ModelRegistry, Depends(_service(lambda services: services.registry))]
AdminDep = Annotated[AdminService, Depends(_service(lambda services: services.admin))]
OrganizationDep = Annotated[
    OrganizationService, Depends(_service(lambda services: services.organization))
]
AlertsDep = Annotated[AlertsService, Depends(_service(lambda services: services.alerts))]
KeysDep = Annotated[KeyCache, Depends(_service(lambda services: services.keys))]
SettingsDep = Annotated[Settings, Depends(_service(lambda services: services.settings))]
HealthDep = Annotated[HealthService | None, Depends(get_health)]


async def get_caller(request: Request, keys: KeysDep) -> KeyOwner:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationError(
            "Invalid Authentication: send your API key as 'Authorization: Bearer sk-...'",
            code="missing_api_key",
        )
    return await key_owner(request, keys, token)


async def key_owner(request: Request, keys: KeyCache, token: str) -> KeyOwner:
    """The owner of ``token``, if the key may be used now and from here (its
    policy: expiry, disabled, IP allowlist); noted as used."""
    owner = await keys.owner(token)
    if owner is None:
        raise AuthenticationError("Invalid Authentication", code="invalid_api_key")
    owner.policy.check_use(request.client.host if request.client else None)
    keys.touch(owner.key_id)
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
