"""What one API key may do: until when, from where, with which models.

A key's policy travels with its owner (``KeyOwner.policy``), so the hot path
checks it from memory, like the key itself: a change reaches every gateway
within the key cache's TTL (this gateway at once). Expiry is checked against
the clock on every request, so an expired key stops at its second, cached or
not. The refusals are Moonshot-shaped: an expired or disabled key is a 401
(the key no longer authenticates), a request from an address or for a model
the key does not allow a 403 (the key is fine, this use of it is not).
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from moonbase.errors import AuthenticationError, BadRequestError, PermissionDeniedError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# Bounds of what one key's allowlists may hold (they are kept in a TEXT column
# and checked on every request).
MAX_NETWORKS = 64
MAX_MODELS = 64


@dataclass(frozen=True)
class KeyPolicy:
    expires_at: datetime | None = None
    disabled: bool = False
    networks: tuple[Network, ...] = ()  # empty: any address
    models: frozenset[str] | None = None  # None: any model

    def check_use(self, client_ip: str | None, now: datetime | None = None) -> None:
        """Refuse a request this key may not make at all (before its body is read)."""
        if self.disabled:
            raise AuthenticationError(
                "Invalid Authentication: this API key is disabled", code="api_key_disabled"
            )
        if self.expires_at is not None and (now or datetime.now(UTC)) >= self.expires_at:
            raise AuthenticationError(
                f"Invalid Authentication: this API key expired at "
                f"{self.expires_at.isoformat(timespec='seconds')}",
                code="api_key_expired",
            )
        if self.networks and not _allowed(client_ip, self.networks):
            raise PermissionDeniedError(
                f"this API key may not be used from {client_ip or 'an unknown address'}",
                code="ip_not_allowed",
            )

    def check_model(self, model_id: str) -> None:
        if self.models is not None and model_id not in self.models:
            allowed = ", ".join(sorted(self.models)) or "none"
            raise PermissionDeniedError(
                f"this API key may not use model {model_id}; it may use: {allowed}",
                param="model",
                code="model_not_allowed",
            )


OPEN = KeyPolicy()


def _allowed(client_ip: str | None, networks: tuple[Network, ...]) -> bool:
    if client_ip is None:
        return False
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1
    return any(address in network for network in networks)


def parse_networks(values: list[str]) -> tuple[Network, ...]:
    """CIDRs or single addresses, as an operator writes them; a 400 names the bad one."""
    if len(values) > MAX_NETWORKS:
        raise BadRequestError(
            f"a key may allow at most {MAX_NETWORKS} networks", param="allowed_ips"
        )
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise BadRequestError(
                f"{value!r} is not an IP address or CIDR network (e.g. 10.0.0.0/8)",
                param="allowed_ips",
            ) from None
    return tuple(networks)


def check_models(values: list[str], known: set[str]) -> list[str]:
    if len(values) > MAX_MODELS:
        raise BadRequestError(
            f"an allowlist may hold at most {MAX_MODELS} models", param="allowed_models"
        )
    unknown = sorted(set(values) - known)
    if unknown:
        raise BadRequestError(
            f"unknown model ids: {', '.join(unknown)} (see GET /v1/models)",
            param="allowed_models",
        )
    return sorted(set(values))


def encode_list(values: list[str] | None) -> str | None:
    return None if values is None else json.dumps(values)


def decode_list(text: str | None) -> list[str] | None:
    return None if text is None else [str(value) for value in json.loads(text)]


def policy_of(
    expires_at: datetime | None,
    disabled_at: datetime | None,
    allowed_ips: str | None,
    allowed_models: str | None,
) -> KeyPolicy:
    """The policy of a stored key (its columns as the table keeps them)."""
    ips = decode_list(allowed_ips)
    models = decode_list(allowed_models)
    return KeyPolicy(
        expires_at=_aware(expires_at),
        disabled=disabled_at is not None,
        networks=parse_networks(ips) if ips else (),
        models=frozenset(models) if models is not None else None,
    )


def _aware(moment: datetime | None) -> datetime | None:
    # SQLite returns naive datetimes for timezone-aware columns: they are UTC.
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)
