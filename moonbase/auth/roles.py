"""Who may do what in an organisation: the roles and the one place that
decides (``Principal``). The management service asks it before each change,
the routes never do.

Organisation roles, from most to least:

- ``owner``: everything, including owners and the organisation's admin keys.
- ``admin``: everything but owners (cannot make, change or remove one).
- ``member``: reads the organisation's people; reads and uses the projects
  they belong to (a project ``owner`` also manages that project: its people,
  keys and budgets; a project ``member`` creates and revokes their own keys).
- ``viewer``: reads everything, changes nothing.

The platform operator (``User.is_operator``) acts as an owner of every
organisation; money and tiers stay on the operator API (``/admin``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from moonbase.auth.actor import Actor
from moonbase.errors import BadRequestError, PermissionDeniedError


class OrgRole(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"
    VIEWER = "viewer"


class ProjectRole(StrEnum):
    OWNER = "owner"
    MEMBER = "member"


def org_role(text: object, param: str = "role") -> OrgRole:
    if isinstance(text, str) and text in OrgRole.__members__.values():
        return OrgRole(text)
    raise BadRequestError(f"{param} must be one of: {', '.join(OrgRole)}", param=param)


def project_role(text: object, param: str = "role") -> ProjectRole:
    if isinstance(text, str) and text in ProjectRole.__members__.values():
        return ProjectRole(text)
    raise BadRequestError(f"{param} must be one of: {', '.join(ProjectRole)}", param=param)


@dataclass(frozen=True)
class Principal:
    """A signed-in user (or their admin key) acting in one organisation."""

    user_id: str
    email: str
    account_id: str
    role: OrgRole
    actor: Actor  # who the audit log names: "user:<email>", and the address
    operator: bool = False
    projects: Mapping[str, ProjectRole] = field(default_factory=dict)

    def _deny(self, what: str) -> PermissionDeniedError:
        return PermissionDeniedError(
            f"Your role in this organisation ({self.role}) cannot {what}", code="role_forbids"
        )

    @property
    def manages_org(self) -> bool:
        return self.role in (OrgRole.OWNER, OrgRole.ADMIN)

    @property
    def sees_all_projects(self) -> bool:
        return self.role is not OrgRole.MEMBER

    def sees_project(self, project_id: str) -> bool:
        return self.sees_all_projects or project_id in self.projects

    def require_org_admin(self, what: str) -> None:
        if not self.manages_org:
            raise self._deny(what)

    def require_owner(self, what: str) -> None:
        if self.role is not OrgRole.OWNER:
            raise self._deny(what)

    def may_grant(self, role: OrgRole) -> None:
        """Only an owner makes, changes or removes an owner."""
        self.require_org_admin("change members")
        if role is OrgRole.OWNER:
            self.require_owner("make or change an owner")

    def require_project_manager(self, project_id: str, what: str) -> None:
        if self.manages_org or (
            self.role is OrgRole.MEMBER and self.projects.get(project_id) is ProjectRole.OWNER
        ):
            return
        raise self._deny(what)

    def require_project_user(self, project_id: str, what: str) -> None:
        """A viewer changes nothing, whatever projects they are in."""
        if self.manages_org or (self.role is OrgRole.MEMBER and project_id in self.projects):
            return
        raise self._deny(what)

    def require_operator(self, what: str) -> None:
        """The platform operator's own actions (the console's operator pages)."""
        if not self.operator:
            raise PermissionDeniedError(
                f"Only the platform operator can {what}", code="operator_only"
            )
