"""Operator actions behind the CLI and the admin API: bootstrap, accounts, keys,
limits and usage reports. Money moves through BillingService.credit.

They expect a migrated database (the app migrates at start, the CLI before
each command)."""

from __future__ import annotations

import csv
import io
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from moonbase import admin_projects, bounds
from moonbase.auth.actor import SYSTEM, Actor, cli_actor
from moonbase.auth.key_cache import KeyCache
from moonbase.auth.key_policy import check_models, decode_list, encode_list, parse_networks
from moonbase.auth.project_policy import ProjectLimits
from moonbase.auth.roles import Principal
from moonbase.billing.account_cache import limits_of
from moonbase.billing.money import amount_problem, to_micro, to_yuan
from moonbase.billing.service import BillingService
from moonbase.billing.tiers import Limits, tier_for
from moonbase.catalog import SPECS_BY_ID
from moonbase.errors import BadRequestError, NotFoundError
from moonbase.settings import BillingSettings, Settings
from moonbase.store.database import Database
from moonbase.store.repositories import accounts, api_keys, audit, ledger, projects
from moonbase.store.repositories import usage as usage_repo
from moonbase.store.repositories.api_keys import IssuedKey
from moonbase.store.tables import Account, ApiKey, Project, utcnow

DEFAULT_ACCOUNT = "default"


@dataclass(frozen=True)
class KeyListing:
    id: str
    account: str
    name: str
    display: str
    created_at: datetime
    revoked_at: datetime | None
    expires_at: datetime | None = None
    disabled_at: datetime | None = None
    allowed_ips: list[str] | None = None
    allowed_models: list[str] | None = None
    last_used_at: datetime | None = None
    created_by: str | None = None  # "cli:<login>", "admin-api", "user:<id>", "system"


@dataclass(frozen=True)
class KeyRestrictions:
    """What a key may do; None: no limit of that kind (an operator's input, checked)."""

    expires_at: datetime | None = None
    allowed_ips: list[str] | None = None
    allowed_models: list[str] | None = None

    def checked(self) -> KeyRestrictions:
        if self.expires_at is not None:
            if self.expires_at.tzinfo is None:
                raise BadRequestError("expires_at needs a time zone", param="expires_at")
            if self.expires_at <= datetime.now(UTC):
                raise BadRequestError("expires_at is in the past", param="expires_at")
        ips = None
        if self.allowed_ips is not None:
            ips = [str(network) for network in parse_networks(self.allowed_ips)]
        models = None
        if self.allowed_models is not None:
            models = check_models(self.allowed_models, set(SPECS_BY_ID))
        return KeyRestrictions(self.expires_at, ips, models)

    def as_dict(self) -> dict[str, object]:
        return {
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "allowed_ips": self.allowed_ips,
            "allowed_models": self.allowed_models,
        }


async def bootstrap(db: Database, billing: BillingSettings) -> IssuedKey | None:
    """On an empty store, create the owner's account and key; None if one exists.

    The owner starts with a voucher and a tier (both configurable) so that a
    newcomer can use the API at once.
    """
    try:
        async with db.transaction() as session:
            if await accounts.count(session) > 0:
                return None
            account = await accounts.create(session, DEFAULT_ACCOUNT)
            account.tier_override = billing.owner_tier
            voucher = to_micro(billing.owner_voucher_yuan)
            if voucher:
                ledger.apply(
                    session,
                    account,
                    kind="voucher",
                    cash_micro=0,
                    voucher_micro=voucher,
                    reason="owner's starting voucher",
                )
            issued = await api_keys.create(
                session, account.id, name="first key", created_by=SYSTEM.who
            )
            details = {"name": DEFAULT_ACCOUNT, "voucher": str(billing.owner_voucher_yuan),
                       "tier": billing.owner_tier, "first_key": issued.id}  # fmt: skip
            audit.record(session, SYSTEM, "account.create", account.id, account.id, details)
            return issued
    except IntegrityError:  # another replica bootstrapped at the same moment
        return None


async def create_key(
    db: Database,
    account_name: str,
    name: str = "",
    restrictions: KeyRestrictions | None = None,
    actor: Actor | None = None,
    project: str | None = None,
) -> IssuedKey:
    """A new key for ``account_name`` (created if new), in its ``project`` (an
    id or a name; the default project when None)."""
    _check(bounds.KEY_NAME, name, "name")
    _check(bounds.ACCOUNT_NAME, account_name, "account")
    limits = (restrictions or KeyRestrictions()).checked()
    async with db.transaction() as session:
        account = await accounts.get_by_name(session, account_name)
        if account is None:
            account = await accounts.create(session, account_name)
            audit.record(session, actor or cli_actor(), "account.create", account.id,
                         account.id, {"name": account_name})  # fmt: skip
        project_id = None
        if project is not None:
            _check(bounds.PROJECT_NAME, project, "project")
            found = await projects.get(session, project)
            if found is None or found.account_id != account.id:
                found = await projects.by_name(session, account.id, project)
            if found is None:
                raise NotFoundError(f"no project {project!r} in {account_name}", param="project")
            project_id = found.id
        issued = await api_keys.create(
            session,
            account.id,
            name=name,
            expires_at=limits.expires_at,
            allowed_ips=limits.allowed_ips,
            allowed_models=limits.allowed_models,
            project_id=project_id,
            created_by=(actor or cli_actor()).who,
        )
        details = {"name": name, "display": issued.display, "project": project_id,
                   **limits.as_dict()}  # fmt: skip
        audit.record(session, actor or cli_actor(), "key.create", issued.id, account.id, details)
        return issued


async def list_keys(db: Database) -> list[KeyListing]:
    async with db.transaction() as session:
        rows = await api_keys.list_all(session)
    return [_listing(key, account) for key, account in rows]


def _listing(key: ApiKey, account: str) -> KeyListing:
    return KeyListing(
        key.id,
        account,
        key.name,
        key.display,
        key.created_at,
        key.revoked_at,
        key.expires_at,
        key.disabled_at,
        decode_list(key.allowed_ips),
        decode_list(key.allowed_models),
        key.last_used_at,
        key.created_by,
    )


async def _live_key(session: AsyncSession, key_id: str) -> ApiKey:
    key = await api_keys.get(session, key_id)
    if key is None or key.revoked_at is not None:
        raise NotFoundError(f"no active key {key_id!r}", param="key_id")
    return key


def _restrictions_of(key: ApiKey) -> dict[str, object]:
    return KeyRestrictions(
        key.expires_at, decode_list(key.allowed_ips), decode_list(key.allowed_models)
    ).as_dict()


async def restrict_key(
    db: Database, key_id: str, restrictions: KeyRestrictions, actor: Actor | None = None
) -> None:
    """Set a key's expiry and allowlists (a None clears that limit)."""
    limits = restrictions.checked()
    async with db.transaction() as session:
        key = await _live_key(session, key_id)
        before = _restrictions_of(key)
        key.expires_at = limits.expires_at
        key.allowed_ips = encode_list(limits.allowed_ips)
        key.allowed_models = encode_list(limits.allowed_models)
        changes = audit.diff(before, limits.as_dict())
        audit.record(session, actor or cli_actor(), "key.restrict", key.id, key.account_id, changes)


async def set_key_disabled(
    db: Database, key_id: str, disabled: bool, actor: Actor | None = None
) -> None:
    async with db.transaction() as session:
        key = await _live_key(session, key_id)
        was = key.disabled_at is not None
        key.disabled_at = (key.disabled_at or utcnow()) if disabled else None
        action = "key.disable" if disabled else "key.enable"
        changes = {"disabled": [was, disabled]}
        audit.record(session, actor or cli_actor(), action, key.id, key.account_id, changes)


MAX_ROTATION_GRACE_S = 30 * 24 * 3600


async def rotate_key(
    db: Database, key_id: str, grace_s: float, actor: Actor | None = None
) -> IssuedKey:
    """A new secret for the key; the old one keeps working for ``grace_s``."""
    if not 0 <= grace_s <= MAX_ROTATION_GRACE_S:
        raise BadRequestError(
            f"grace must be between 0 s and {MAX_ROTATION_GRACE_S} s (30 days)", param="grace_s"
        )
    async with db.transaction() as session:
        key = await _live_key(session, key_id)
        old_display = key.display
        issued = await api_keys.rotate(session, key, utcnow() + timedelta(seconds=grace_s))
        changes = {"display": [old_display, issued.display], "grace_s": grace_s}
        audit.record(session, actor or cli_actor(), "key.rotate", key.id, key.account_id, changes)
        return issued


async def revoke_key(db: Database, key_id: str, actor: Actor | None = None) -> bool:
    async with db.transaction() as session:
        key = await api_keys.get(session, key_id)
        if key is None or not await api_keys.revoke(session, key_id):
            return False
        audit.record(session, actor or cli_actor(), "key.revoke", key_id, key.account_id, {})
        return True


@dataclass(frozen=True)
class ProjectView:
    id: str
    account_id: str
    name: str
    daily_budget: float | None  # yuan
    monthly_budget: float | None
    allowed_models: list[str] | None = None  # None: any model
    limits: dict[str, int | None] = field(default_factory=dict)  # None: the organisation's


def project_view(project: Project) -> ProjectView:
    return ProjectView(
        project.id,
        project.account_id,
        project.name,
        to_yuan(project.daily_budget_micro) if project.daily_budget_micro is not None else None,
        to_yuan(project.monthly_budget_micro) if project.monthly_budget_micro is not None else None,
        decode_list(project.allowed_models),
        admin_projects.limits_of_project(project).as_dict(),
    )


def budget_micro(yuan: Decimal | None, param: str) -> int | None:
    if yuan is None:
        return None
    problem = amount_problem(yuan)
    if problem is not None or yuan <= 0:
        raise BadRequestError(problem or f"{param} must be positive", param=param)
    return to_micro(yuan)


async def create_project(
    db: Database,
    account: str,
    name: str,
    daily_budget: Decimal | None = None,
    monthly_budget: Decimal | None = None,
    actor: Actor | None = None,
) -> ProjectView:
    _check(bounds.PROJECT_NAME, name, "name")
    if not name:
        raise BadRequestError("name must not be empty", param="name")
    found = await find_account(db, account)
    project = Project(
        id="proj-" + secrets.token_hex(12),
        account_id=found.id,
        name=name,
        daily_budget_micro=budget_micro(daily_budget, "daily_budget"),
        monthly_budget_micro=budget_micro(monthly_budget, "monthly_budget"),
    )
    try:
        async with db.transaction() as session:
            await projects.create(session, project)
            audit.record(session, actor or cli_actor(), "project.create", project.id,
                         found.id, {"name": name, **_budgets_of(project)})  # fmt: skip
    except IntegrityError:
        raise BadRequestError(
            f"account {found.name} has a project named {name!r}", param="name"
        ) from None
    return project_view(project)


def _budgets_of(project: Project) -> dict[str, object]:
    view = project_view(project)
    return {"daily_budget": view.daily_budget, "monthly_budget": view.monthly_budget}


async def find_project(db: Database, account: str, id_or_name: str) -> ProjectView:
    found = await find_account(db, account)
    if bounds.PROJECT_NAME.check(id_or_name, "project") is not None:
        # No project could have that id or name; PostgreSQL would refuse a NUL.
        raise NotFoundError(f"no project {id_or_name!r}", param="project")
    async with db.read() as session:
        project = await projects.get(session, id_or_name)
        if project is None or project.account_id != found.id:
            project = await projects.by_name(session, found.id, id_or_name)
        if project is None:
            raise NotFoundError(f"no project {id_or_name!r} in {found.name}", param="project")
        return project_view(project)


async def list_projects(db: Database, account: str) -> list[ProjectView]:
    found = await find_account(db, account)
    async with db.read() as session:
        return [project_view(p) for p in await projects.of_account(session, found.id)]


async def set_budgets(
    db: Database,
    project_id: str,
    daily_budget: Decimal | None,
    monthly_budget: Decimal | None,
    actor: Actor | None = None,
) -> ProjectView:
    """Set a project's budgets (a None clears that budget)."""
    daily = budget_micro(daily_budget, "daily_budget")
    monthly = budget_micro(monthly_budget, "monthly_budget")
    async with db.transaction() as session:
        project = await projects.get(session, project_id)
        if project is None:
            raise NotFoundError(f"no project {project_id!r}", param="project")
        before = _budgets_of(project)
        project.daily_budget_micro = daily
        project.monthly_budget_micro = monthly
        changes = audit.diff(before, _budgets_of(project))
        audit.record(session, actor or cli_actor(), "project.budgets", project.id,
                     project.account_id, changes)  # fmt: skip
        return project_view(project)


async def set_project_models(
    db: Database, project_id: str, models: list[str] | None, actor: Actor | None = None
) -> ProjectView:
    """Let a project's keys use only ``models`` (None: any model)."""
    return project_view(await admin_projects.set_models(db, project_id, models, actor))


async def set_project_limits(
    db: Database, project_id: str, limits: ProjectLimits, actor: Actor | None = None
) -> ProjectView:
    """Set a project's own rate limits, each no higher than its organisation's."""
    return project_view(await admin_projects.set_limits(db, project_id, limits, actor))


@dataclass(frozen=True)
class AccountView:
    id: str
    name: str
    cash_micro: int
    voucher_micro: int
    topped_up_micro: int
    tier: int
    limits: Limits
    # What the operator pinned: "tier" and single limits (None: the tier's own).
    overrides: dict[str, int | None] = field(default_factory=dict)


def _view(account: Account) -> AccountView:
    return AccountView(
        account.id,
        account.name,
        account.cash_micro,
        account.voucher_micro,
        account.topped_up_micro,
        tier_for(account.topped_up_micro, account.tier_override).level,
        limits_of(account),
        _limits_of(account),
    )


def _check(bound: bounds.Bound, text: str, param: str) -> None:
    problem = bound.check(text, param)
    if problem is not None:
        raise BadRequestError(problem, param=param)


async def create_account(db: Database, name: str, actor: Actor | None = None) -> AccountView:
    _check(bounds.ACCOUNT_NAME, name, "name")
    if not name:
        raise BadRequestError("name must not be empty", param="name")
    try:
        async with db.transaction() as session:
            account = await accounts.create(session, name)
            audit.record(session, actor or cli_actor(), "account.create", account.id,
                         account.id, {"name": name})  # fmt: skip
            return _view(account)
    except IntegrityError:
        raise BadRequestError(f"an account named {name!r} exists", param="name") from None


async def find_account(db: Database, id_or_name: str) -> AccountView:
    if bounds.ACCOUNT_NAME.check(id_or_name, "account") is not None:
        # No account could have that id or name; PostgreSQL would refuse a NUL.
        raise NotFoundError(f"no account {id_or_name!r}", param="account")
    async with db.transaction() as session:
        account = await session.get(Account, id_or_name) or await accounts.get_by_name(
            session, id_or_name
        )
        if account is None:
            raise NotFoundError(f"no account {id_or_name!r}", param="account")
        return _view(account)


async def list_accounts(db: Database) -> list[AccountView]:
    async with db.transaction() as session:
        return [_view(a) for a in await session.scalars(select(Account).order_by(Account.name))]


async def set_limits(
    db: Database,
    account_id: str,
    tier: int | None,
    *,
    concurrency: int | None = None,
    rpm: int | None = None,
    tpm: int | None = None,
    tpd: int | None = None,
    actor: Actor | None = None,
) -> AccountView:
    """Pin a tier (None: follow top-ups) and override single limits (None: the tier's)."""
    caps = {
        "concurrency": (concurrency, bounds.MAX_REQUEST_LIMIT),
        "rpm": (rpm, bounds.MAX_REQUEST_LIMIT),
        "tpm": (tpm, bounds.MAX_TOKEN_LIMIT),
        "tpd": (tpd, bounds.MAX_TOKEN_LIMIT),
    }
    for param, (value, cap) in caps.items():
        if value is not None and not 1 <= value <= cap:
            raise BadRequestError(f"{param} must be between 1 and {cap}", param=param)
    if tier is not None and not 0 <= tier <= 5:
        raise BadRequestError("tier must be between 0 and 5", param="tier")
    async with db.transaction() as session:
        account = await ledger.lock_account(session, account_id)
        if account is None:
            raise NotFoundError(f"no account {account_id!r}", param="account")
        before = _limits_of(account)
        account.tier_override = tier
        account.limit_concurrency = concurrency
        account.limit_rpm = rpm
        account.limit_tpm = tpm
        account.limit_tpd = tpd
        changes = audit.diff(before, _limits_of(account))
        audit.record(session, actor or cli_actor(), "account.limits", account.id, account.id,
                     changes)  # fmt: skip
        await session.flush()
        return _view(account)


def _limits_of(account: Account) -> dict[str, int | None]:
    return {
        "tier": account.tier_override,
        "concurrency": account.limit_concurrency,
        "rpm": account.limit_rpm,
        "tpm": account.limit_tpm,
        "tpd": account.limit_tpd,
    }


async def usage_report(
    db: Database,
    group_by: str,
    account_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[usage_repo.UsageRow]:
    if group_by not in usage_repo.GROUPINGS:
        raise BadRequestError(
            f"group_by must be one of {', '.join(usage_repo.GROUPINGS)}", param="group_by"
        )
    async with db.transaction() as session:
        return await usage_repo.summarize(session, group_by, account_id, since, until)


def usage_csv(rows: list[usage_repo.UsageRow], group_by: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [group_by, "requests", "prompt_tokens", "cached_tokens", "completion_tokens", "cost_cny"]
    )
    for row in [*rows, totals(rows)]:
        writer.writerow(
            [
                row.group,
                row.requests,
                row.prompt_tokens,
                row.cached_tokens,
                row.completion_tokens,
                f"{to_yuan(row.cost_micro):.6f}",
            ]
        )
    return out.getvalue()


def totals(rows: list[usage_repo.UsageRow]) -> usage_repo.UsageRow:
    return usage_repo.UsageRow(
        "TOTAL",
        sum(r.requests for r in rows),
        sum(r.prompt_tokens for r in rows),
        sum(r.cached_tokens for r in rows),
        sum(r.completion_tokens for r in rows),
        sum(r.cost_micro for r in rows),
    )


class AdminService:
    """The admin API's operations: the functions above on this process's store,
    with its billing (a credit goes through the same ledger writer as charges)
    and its key cache (a revoked key is forgotten here at once)."""

    def __init__(
        self, db: Database, billing: BillingService, keys: KeyCache, settings: Settings
    ) -> None:
        self._db = db
        self._billing = billing
        self._keys = keys
        self._settings = settings

    @property
    def token(self) -> str | None:
        """The admin API's bearer token; None: the admin API is off."""
        return self._settings.admin_token or None

    async def create_account(self, name: str, actor: Actor) -> AccountView:
        return await create_account(self._db, name, actor)

    async def list_accounts(self) -> list[AccountView]:
        return await list_accounts(self._db)

    async def find_account(self, id_or_name: str) -> AccountView:
        return await find_account(self._db, id_or_name)

    async def create_key(
        self,
        account_id: str,
        name: str,
        restrictions: KeyRestrictions,
        actor: Actor,
        project: str | None = None,
    ) -> IssuedKey:
        account = await find_account(self._db, account_id)
        return await create_key(self._db, account.name, name, restrictions, actor, project)

    async def revoke_key(self, key_id: str, actor: Actor) -> None:
        if not await revoke_key(self._db, key_id, actor):
            raise NotFoundError(f"no active key {key_id}", param="key_id")
        self._keys.forget_key(key_id)

    async def create_project(
        self,
        account_id: str,
        name: str,
        daily: Decimal | None,
        monthly: Decimal | None,
        actor: Actor,
    ) -> ProjectView:
        return await create_project(self._db, account_id, name, daily, monthly, actor)

    async def list_projects(self, account_id: str) -> list[ProjectView]:
        return await list_projects(self._db, account_id)

    async def set_budgets(
        self, project_id: str, daily: Decimal | None, monthly: Decimal | None, actor: Actor
    ) -> ProjectView:
        view = await set_budgets(self._db, project_id, daily, monthly, actor)
        self._billing.budgets.forget(project_id)  # this gateway: at once
        return view

    async def set_project_models(
        self, project_id: str, models: list[str] | None, actor: Actor
    ) -> ProjectView:
        view = await set_project_models(self._db, project_id, models, actor)
        self._keys.forget_project(project_id)  # this gateway: at once
        return view

    async def set_project_limits(
        self, project_id: str, limits: ProjectLimits, actor: Actor
    ) -> ProjectView:
        view = await set_project_limits(self._db, project_id, limits, actor)
        self._keys.forget_project(project_id)  # this gateway: at once
        return view

    async def list_keys(self) -> list[KeyListing]:
        return await list_keys(self._db)

    async def restrict_key(self, key_id: str, restrictions: KeyRestrictions, actor: Actor) -> None:
        await restrict_key(self._db, key_id, restrictions, actor)
        self._keys.forget_key(key_id)

    async def set_key_disabled(self, key_id: str, disabled: bool, actor: Actor) -> None:
        await set_key_disabled(self._db, key_id, disabled, actor)
        self._keys.forget_key(key_id)

    async def rotate_key(self, key_id: str, grace_s: float, actor: Actor) -> IssuedKey:
        issued = await rotate_key(self._db, key_id, grace_s, actor)
        self._keys.forget_key(key_id)
        return issued

    async def credit(
        self,
        account_id: str,
        kind: str,
        amount: Decimal,
        reason: str,
        reference: str | None,
        actor: Actor,
    ) -> AccountView:
        account = await find_account(self._db, account_id)
        await self._billing.credit(
            account.id, kind, amount, reason or f"{kind} by admin", reference, actor
        )
        return await find_account(self._db, account.id)

    async def set_limits(
        self, account_id: str, tier: int | None, actor: Actor, **limits: int | None
    ) -> AccountView:
        account = await find_account(self._db, account_id)
        return await set_limits(self._db, account.id, tier, actor=actor, **limits)

    async def audit_events(self, account: str | None, limit: int) -> list[audit.AuditView]:
        account_id = (await find_account(self._db, account)).id if account else None
        async with self._db.read() as session:
            return await audit.events(session, account_id, limit)

    async def usage(
        self,
        group_by: str,
        account: str | None,
        since: datetime | None,
        until: datetime | None,
    ) -> list[usage_repo.UsageRow]:
        account_id = (await find_account(self._db, account)).id if account else None
        # this process's latest charges included, unless the database refuses them
        await self._billing.flushed(self._settings.billing.read_wait_s)
        return await usage_report(self._db, group_by, account_id, since, until)

    # The console's operator pages: the same operations for a signed-in
    # person, refused to anyone but the platform operator ----------------------

    async def organisations(self, p: Principal) -> list[AccountView]:
        p.require_operator("list every organisation")
        return await self.list_accounts()

    async def organisation(self, p: Principal, account_id: str) -> AccountView:
        p.require_operator("read another organisation's balance and limits")
        return await self.find_account(account_id)

    async def create_organisation(self, p: Principal, name: str) -> AccountView:
        p.require_operator("create organisations")
        return await self.create_account(name, p.actor)

    async def credit_organisation(
        self, p: Principal, account_id: str, kind: str, amount: Decimal, reason: str
    ) -> AccountView:
        """A top-up (cash) or a voucher, through the same ledger as the admin API."""
        p.require_operator("top up or grant vouchers")
        if kind not in ("topup", "voucher"):
            raise BadRequestError("kind must be topup or voucher", param="kind")
        return await self.credit(account_id, kind, amount, reason, None, p.actor)

    async def set_organisation_limits(
        self, p: Principal, account_id: str, tier: int | None, **limits: int | None
    ) -> AccountView:
        p.require_operator("change tiers and limits")
        return await self.set_limits(account_id, tier, p.actor, **limits)

    async def audit_page(
        self,
        p: Principal,
        account: str | None,
        actor: str | None,
        action: str | None,
        limit: int,
        before_id: int | None,
    ) -> list[audit.AuditView]:
        """Newest first, ``limit`` of them older than ``before_id``; filtered by
        organisation (id or name), actor (a part of it) and action (a prefix)."""
        p.require_operator("read the platform's audit log")
        account_id = (await find_account(self._db, account)).id if account else None
        async with self._db.read() as session:
            return await audit.events(
                session, account_id, limit, before_id=before_id, actor=actor, action=action
            )
