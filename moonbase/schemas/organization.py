"""Wire models of the management API (/v1/organization/...), shaped after
OpenAI's Administration API so that its clients and habits carry over; the
moonbase extras (budgets, a key's lifecycle) are additional fields."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import Field

from moonbase import bounds
from moonbase.schemas.admin import Budgets, KeyRestrict
from moonbase.schemas.base import StrictWireModel, WireModel

Email = Annotated[str, bounds.EMAIL]
Password = Annotated[str, bounds.PASSWORD]


# Requests ------------------------------------------------------------------


class SignIn(StrictWireModel):
    email: Email
    password: Password


class ProjectGrant(StrictWireModel):
    id: Annotated[str, bounds.ID]
    role: Annotated[str, bounds.Bound(16)]


class InviteCreate(StrictWireModel):
    email: Email
    role: Annotated[str, bounds.Bound(16)]
    projects: list[ProjectGrant] = Field(default_factory=list, max_length=100)


class InviteAccept(StrictWireModel):
    token: Annotated[str, bounds.Bound(100)]
    # A new account's password; someone with an account accepts with their session.
    password: Password | None = None
    name: Annotated[str, bounds.USER_NAME] = ""


class RoleUpdate(StrictWireModel):
    role: Annotated[str, bounds.Bound(16)]


class ProjectUserAdd(StrictWireModel):
    user_id: Annotated[str, bounds.ID]
    role: Annotated[str, bounds.Bound(16)]


class ProjectCreate(Budgets):
    name: Annotated[str, bounds.PROJECT_NAME] = Field(min_length=1)


class ProjectUpdate(Budgets):
    """A project's name and budgets (a budget left out or null: none)."""

    name: Annotated[str, bounds.PROJECT_NAME] | None = Field(None, min_length=1)


class ProjectKeyCreate(KeyRestrict):
    name: Annotated[str, bounds.KEY_NAME] = ""


class AdminKeyCreate(StrictWireModel):
    name: Annotated[str, bounds.KEY_NAME] = ""


# Responses -----------------------------------------------------------------


class OrgUser(WireModel):
    object: Literal["organization.user"] = "organization.user"
    id: str
    name: str
    email: str
    role: str
    added_at: int


class ProjectUser(WireModel):
    object: Literal["organization.project.user"] = "organization.project.user"
    id: str
    name: str
    email: str
    role: str
    added_at: int


class ProjectOut(WireModel):
    object: Literal["organization.project"] = "organization.project"
    id: str
    name: str
    created_at: int
    archived_at: int | None = None
    status: Literal["active"] = "active"
    daily_budget: float | None = None
    monthly_budget: float | None = None


class InviteOut(WireModel):
    object: Literal["organization.invite"] = "organization.invite"
    id: str
    email: str
    role: str
    status: Literal["pending", "accepted", "expired"]
    invited_at: int
    expires_at: int
    accepted_at: int | None
    projects: list[dict[str, str]]
    # Only in the answer that creates it: the single-use token, and the link
    # carrying it (in the fragment, which browsers never send to a server).
    token: str | None = None
    accept_url: str | None = None


class KeyOwner(WireModel):
    type: Literal["user", "operator"]
    user: dict[str, str] | None = None
    name: str | None = None  # who, for a key made outside the management API


class ProjectApiKey(WireModel):
    object: Literal["organization.project.api_key"] = "organization.project.api_key"
    id: str
    name: str
    redacted_value: str
    created_at: int
    last_used_at: int | None
    owner: KeyOwner
    expires_at: int | None
    disabled: bool
    allowed_ips: list[str] | None
    allowed_models: list[str] | None
    value: str | None = None  # only when created


class AdminApiKey(WireModel):
    object: Literal["organization.admin_api_key"] = "organization.admin_api_key"
    id: str
    name: str
    redacted_value: str
    created_at: int
    last_used_at: int | None
    owner: dict[str, str]
    value: str | None = None  # only when created


class Deleted(WireModel):
    object: str
    id: str
    deleted: bool = True


class SessionOut(WireModel):
    object: Literal["session"] = "session"
    token: str
    expires_at: int
    user: dict[str, Any]
    organizations: list[dict[str, str]]


class Page(WireModel):
    """OpenAI's list envelope."""

    object: Literal["list"] = "list"
    data: list[Any]
    first_id: str | None
    last_id: str | None
    has_more: bool


def unix(when: datetime | None) -> int | None:
    """Unix seconds; a naive time (SQLite hands them back so) is UTC."""
    if when is None:
        return None
    return int((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp())
