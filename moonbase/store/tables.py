"""Table definitions. Changing one means writing an Alembic migration."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from moonbase import bounds


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Account(Base):
    """Money is kept in integer micro-yuan (1e-6 CNY): sums are exact."""

    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(bounds.ACCOUNT_NAME.column(), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    cash_micro: Mapped[int] = mapped_column(BigInteger, default=0)  # may go negative: arrears
    voucher_micro: Mapped[int] = mapped_column(BigInteger, default=0)  # never negative
    topped_up_micro: Mapped[int] = mapped_column(BigInteger, default=0)  # decides the tier
    tier_override: Mapped[int | None] = mapped_column(Integer, nullable=True)
    limit_concurrency: Mapped[int | None] = mapped_column(Integer, nullable=True)
    limit_rpm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    limit_tpm: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    limit_tpd: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class Project(Base):
    """A part of an account (an organisation): its own keys, and optional budgets
    in micro-yuan that refuse its requests once spent (per UTC day, per UTC
    month). Every account has a ``default`` project."""

    __tablename__ = "projects"
    __table_args__ = (UniqueConstraint("account_id", "name", name="uq_projects_account_name"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    name: Mapped[str] = mapped_column(bounds.PROJECT_NAME.column())
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    daily_budget_micro: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    monthly_budget_micro: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # What its keys may use (auth/project_policy.py): a JSON list of model ids
    # (NULL: any), and rate limits on top of the organisation's (NULL: none).
    allowed_models: Mapped[str | None] = mapped_column(Text, nullable=True)
    limit_concurrency: Mapped[int | None] = mapped_column(Integer, nullable=True)
    limit_rpm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    limit_tpm: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    limit_tpd: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    project_id: Mapped[str | None] = mapped_column(
        ForeignKey("projects.id"), nullable=True, index=True
    )
    name: Mapped[str] = mapped_column(bounds.KEY_NAME.column(), default="")
    # Only a SHA-256 of the key is kept; the key itself is shown once.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # Enough of the key to recognise it in a listing ("sk-AbCd...wxyz").
    display: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # The lifecycle (auth/key_policy.py): unusable after expires_at or while
    # disabled; usable only from allowed_ips and for allowed_models (JSON
    # lists; NULL: anywhere, any model). A rotated key's previous secret keeps
    # working until previous_valid_until. last_used_at is written in batches.
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    allowed_ips: Mapped[str | None] = mapped_column(Text, nullable=True)
    allowed_models: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    previous_hash: Mapped[str | None] = mapped_column(
        String(64), nullable=True, unique=True, index=True
    )
    previous_valid_until: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    # Who made it: "user:<id>" through the management API, "cli:<login>", ...
    created_by: Mapped[str | None] = mapped_column(bounds.ACTOR.column(), nullable=True)


class UsageRecord(Base):
    """One finished (or interrupted) generation, as billing will need it."""

    __tablename__ = "usage_records"
    # A project's spend in a day or a month (its budgets) is a range of this index.
    __table_args__ = (Index("ix_usage_records_project_time", "project_id", "created_at"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    request_id: Mapped[str] = mapped_column(bounds.REQUEST_ID.column(), unique=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    api_key_id: Mapped[str | None] = mapped_column(ForeignKey("api_keys.id"), nullable=True)
    project_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    model: Mapped[str] = mapped_column(bounds.MODEL.column())
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    cached_tokens: Mapped[int] = mapped_column(Integer, default=0)
    # "completed", or "interrupted" when the client went away mid-generation.
    status: Mapped[str] = mapped_column(String(16))
    prompt_cache_key: Mapped[str | None] = mapped_column(
        bounds.PROMPT_CACHE_KEY.column(), nullable=True
    )
    safety_identifier: Mapped[str | None] = mapped_column(
        bounds.SAFETY_IDENTIFIER.column(), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    cost_micro: Mapped[int] = mapped_column(BigInteger, default=0)
    latency_ms: Mapped[int] = mapped_column(Integer, default=0)


class LedgerEntry(Base):
    """Append-only: every change of a balance, with why and what for."""

    __tablename__ = "ledger_entries"
    # The entries that are not charges (the console's billing page), newest
    # first, without reading an organisation's every charge (migration 0015).
    __table_args__ = (
        Index(
            "ix_ledger_entries_account_credits", "account_id", "created_at",
            sqlite_where=text("kind <> 'charge'"), postgresql_where=text("kind <> 'charge'"),
        ),
    )  # fmt: skip

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # topup, voucher, charge, refund, adjustment
    cash_micro: Mapped[int] = mapped_column(BigInteger)
    voucher_micro: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(bounds.LEDGER_REASON.column())
    reference: Mapped[str | None] = mapped_column(bounds.LEDGER_REFERENCE.column(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AuditEvent(Base):
    """Append-only: who changed a key, money or limits, when, from where, and what."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(bounds.ACTOR.column())  # "cli:alice", "admin-api"
    address: Mapped[str | None] = mapped_column(String(64), nullable=True)
    action: Mapped[str] = mapped_column(String(32))  # "key.rotate", "account.topup", ...
    target: Mapped[str] = mapped_column(String(40))  # the key's or the account's id
    account_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    changes: Mapped[str] = mapped_column(Text)  # JSON: {"field": [before, after]} or details


class StoredFile(Base):
    """An uploaded file. The bytes live in the blob store, never in the database."""

    __tablename__ = "files"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    filename: Mapped[str] = mapped_column(bounds.FILENAME.column())
    purpose: Mapped[str] = mapped_column(bounds.PURPOSE.column())
    bytes: Mapped[int] = mapped_column(BigInteger)
    # "ready" or "error"; rows are written once inspection is over, so no file
    # is ever left half-processed.
    status: Mapped[str] = mapped_column(String(16))
    status_details: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    # Sniffed from the content, not from the filename.
    content_type: Mapped[str] = mapped_column(String(128))
    sha256: Mapped[str] = mapped_column(String(64))
    blob_key: Mapped[str] = mapped_column(String(256))
    # The extracted document (file-extract), a blob of its own.
    extract_key: Mapped[str | None] = mapped_column(String(256), nullable=True)
    width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    duration_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The project of the key that uploaded it (batch results: the batch's);
    # only that project's keys see it. NULL: the account's default project.
    project_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)


class Batch(Base):
    """A batch job. Times are unix seconds, as the API reports them."""

    __tablename__ = "batches"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    api_key_id: Mapped[str | None] = mapped_column(ForeignKey("api_keys.id"), nullable=True)
    endpoint: Mapped[str] = mapped_column(bounds.BATCH_ENDPOINT.column())
    input_file_id: Mapped[str] = mapped_column(bounds.ID.column())
    completion_window: Mapped[str] = mapped_column(bounds.COMPLETION_WINDOW.column())
    status: Mapped[str] = mapped_column(String(16), index=True)
    model: Mapped[str | None] = mapped_column(String(64), nullable=True)
    metadata_json: Mapped[str] = mapped_column(Text, default="{}")
    errors_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    total: Mapped[int] = mapped_column(Integer, default=0)
    completed: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    output_file_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    error_file_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    in_progress_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    finalizing_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    completed_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    failed_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    expired_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    cancelling_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    cancelled_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # A worker holds a batch while claim_until (unix seconds) is in the future;
    # a crashed worker's claim lapses and another takes the batch over.
    claimed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    claim_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    # When a worker last ended a turn on it (unix seconds): the next claim
    # takes the batch of the account served least recently.
    served_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # The project of the key that created it; only that project's keys see it.
    # NULL: the account's default project.
    project_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)


class BatchLine(Base):
    """One request of a batch; its result is written in the transaction that charges it."""

    __tablename__ = "batch_lines"
    __table_args__ = (UniqueConstraint("batch_id", "line"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id"), index=True)
    line: Mapped[int] = mapped_column(Integer)  # 1-based line number in the input file
    custom_id: Mapped[str] = mapped_column(bounds.CUSTOM_ID.column())
    body_json: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending, done, failed
    result_json: Mapped[str | None] = mapped_column(Text, nullable=True)


class User(Base):
    """A person who signs in (the console, the management API). The platform
    operator is a user with ``is_operator``; everyone else reaches an
    organisation (an account) through an ``OrgMember`` row."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    email: Mapped[str] = mapped_column(bounds.EMAIL.column(), unique=True)  # lower-cased
    name: Mapped[str] = mapped_column(bounds.USER_NAME.column(), default="")
    password_hash: Mapped[str] = mapped_column(String(200))  # argon2id, PHC string
    is_operator: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class OrgMember(Base):
    """A user's role in an organisation: owner, admin, member or viewer."""

    __tablename__ = "org_members"

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True, index=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ProjectMember(Base):
    """A user's role in a project: owner (manages it) or member (uses it)."""

    __tablename__ = "project_members"

    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True, index=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Invite(Base):
    """A single-use, expiring invitation into an organisation (and projects).
    Only a SHA-256 of its token is kept; the token travels in the link."""

    __tablename__ = "invites"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    email: Mapped[str] = mapped_column(bounds.EMAIL.column())
    role: Mapped[str] = mapped_column(String(16))
    projects: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON [[id, role]]
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[str] = mapped_column(bounds.ACTOR.column())
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class UserSession(Base):
    """A signed-in user's bearer token (``sess-...``), kept as a SHA-256."""

    __tablename__ = "user_sessions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class FailedSignIn(Base):
    """A sign-in that failed (or is being checked), kept for the throttle's
    window so that every gateway counts the same failures. The email is kept
    as a SHA-256: a guess at someone else's address is not stored."""

    __tablename__ = "failed_sign_ins"
    __table_args__ = (Index("ix_failed_sign_ins_email_at", "email_hash", "failed_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    email_hash: Mapped[str] = mapped_column(String(64))
    failed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class AdminKey(Base):
    """An organisation's management API key (``sk-admin-...``). It acts with
    its creator's current role in the organisation, so a demoted or removed
    creator's keys shrink or stop with them."""

    __tablename__ = "admin_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(bounds.KEY_NAME.column(), default="")
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    display: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class SpendAlert(Base):
    """A threshold on a project's spend in a UTC day or month: crossing it sends
    the project's webhook one signed POST per period (moonbase/alerts/)."""

    __tablename__ = "spend_alerts"
    __table_args__ = (
        UniqueConstraint("project_id", "period", "threshold_micro", name="uq_spend_alerts"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    period: Mapped[str] = mapped_column(String(8))  # "day" | "month"
    threshold_micro: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ProjectWebhook(Base):
    """Where a project's alerts are POSTed, and the secret they are signed with
    (Standard Webhooks: ``whsec_`` + base64). The secret is kept as is because
    signing needs it; it is shown once, when made, and never listed."""

    __tablename__ = "project_webhooks"

    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    url: Mapped[str] = mapped_column(bounds.WEBHOOK_URL.column())
    secret: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WebhookDelivery(Base):
    """The outbox: one row per event to send, inserted once (``idempotency_key``
    is unique: an alert's id and its period) and sent until delivered or given
    up on. A sender holds a row while ``claim_until`` (unix seconds) is ahead."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # the webhook-id header
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    # The alert that fired; kept (no foreign key) when the alert is deleted.
    alert_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    event_type: Mapped[str] = mapped_column(String(64))  # "spend_alert.crossed"
    payload: Mapped[str] = mapped_column(Text)  # the exact JSON body that is signed and sent
    idempotency_key: Mapped[str] = mapped_column(String(96), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # delivered, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float] = mapped_column(Float)  # unix seconds
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)  # HTTP status
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    claim_until: Mapped[float | None] = mapped_column(Float, nullable=True)


class UsageDaily(Base):
    """Usage per UTC day, organisation, project, key and model: the sums of the
    usage records of that day, kept in the transaction that writes them
    (``repositories/usage_rollups.py``). Reports, budgets and exports read these,
    so they cost the days and groups asked for, not the requests; raw records
    may be pruned (``usage.raw_retention_days``), these are kept.

    A record without a project or key counts under "" here: a unique key over
    NULLs would count each NULL apart (NULLs are distinct in unique
    constraints on both databases), and the upsert needs one row per group.
    The primary key is that group, account and day first: it is also the index
    of an organisation's days."""

    __tablename__ = "usage_daily"
    __table_args__ = (Index("ix_usage_daily_project_day", "project_id", "day"),)

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    project_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    api_key_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    model: Mapped[str] = mapped_column(bounds.MODEL.column(), primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cached_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_micro: Mapped[int] = mapped_column(BigInteger, default=0)
