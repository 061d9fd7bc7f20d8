"""All gateway settings in one class, read from a TOML file and SAMLAD_* environment variables.

The file has a ``[gateway]`` table for scalar settings, ``[[issuers]]`` for trusted token
issuers and ``[[sources]]`` for upstream systems. Environment variables (for example
``SAMLAD_DATABASE_URL``) override the file. Nothing is built at import time: call
:func:`load_settings`.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from adapters.config import SourceConfig, SourceConfigError, parse_sources
from consent.online import OnlineExclusions
from consent.policy import CitizenAges
from consent.relations import RegisterConfig
from gateway.notice_config import NoticeConfig
from gateway.trust_config import IssuerConfig, OAuthClientConfig

#: Well-known development keys; refused unless ``dev_mode`` is on.
DEV_ID_KEY = "samlad-dev-id-key-not-secret"
DEV_DATA_KEY = "samlad-dev-data-key-not-secret"
#: Seed of the well-known development key that signs access-log checkpoints (the SHA-256
#: of "samlad-dev-audit-checkpoint-key-not-secret"); refused unless ``dev_mode`` is on.
DEV_AUDIT_CHECKPOINT_KEY = "568cc679dd4d82cf158749da7053e2a42fbff3260b612428283f7858b59933fc"


def _origin(value: str) -> str:
    """``value`` when it is a web origin (``scheme://host[:port]``), else ValueError."""
    parts = urlsplit(value)
    if (
        parts.scheme not in {"http", "https"}
        or not parts.hostname
        or parts.path
        or parts.query
        or parts.fragment
        or parts.username
        or value != f"{parts.scheme}://{parts.netloc}"
    ):
        raise ValueError(f"cors_allowed_origins: {value!r} is not an origin (scheme://host[:port])")
    return value


class ConfigError(ValueError):
    """The configuration cannot be used; the message says what to fix."""


class Settings(BaseSettings):
    """Every setting of a gateway process."""

    model_config = SettingsConfigDict(env_prefix="SAMLAD_", extra="forbid", frozen=True)

    dev_mode: bool = False
    data_dir: Path = Path(".samlad")
    #: ``sqlite:///path.db`` or ``postgresql://user@host/db``; empty means SQLite in data_dir.
    database_url: str = ""
    #: Connections each gateway process keeps open to PostgreSQL (half as many again
    #: may be opened for bursts); workers x this must stay below the server's limit.
    database_pool_size: int = Field(default=20, ge=1, le=500)
    #: Run schema migrations at start-up (default: only in dev mode).
    auto_migrate: bool | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    #: The public base URL of the gateway, used in Bundle links and ``fullUrl``.
    public_base_url: str = "http://127.0.0.1:8000"
    #: ``Strict-Transport-Security: max-age=…`` on every answer (seconds), for a gateway
    #: served over TLS (``public_base_url`` must then be https); 0 sends no HSTS header.
    hsts_max_age: int = Field(default=0, ge=0, le=2 * 365 * 86400)
    #: Key for the opaque, stable unified patient ids (HMAC).
    id_key: SecretStr = SecretStr(DEV_ID_KEY)
    #: Key that encrypts identity numbers at rest.
    data_key: SecretStr = SecretStr(DEV_DATA_KEY)
    #: Ed25519 key (its 32-byte seed, 64 hex digits) that signs the access log's
    #: checkpoints; the database must not hold it.
    audit_checkpoint_key: SecretStr = SecretStr(DEV_AUDIT_CHECKPOINT_KEY)
    #: A checkpoint of the access log's head is written once this many entries are
    #: unanchored ...
    audit_checkpoint_every_entries: int = Field(default=100, ge=1, le=1_000_000)
    #: ... or when the last one is this old and entries arrived since (seconds).
    audit_checkpoint_every_seconds: float = Field(default=60.0, gt=0, le=86400)
    #: The append-only file checkpoints are exported to (JSON lines, fsync'd; default
    #: data_dir/audit-checkpoints.jsonl), where the database's administrators cannot write.
    audit_checkpoint_file: Path | None = None
    #: Upper bound on one overview, whatever the per-source timeouts say (seconds).
    request_deadline: float = Field(default=5.0, gt=0, le=300)
    #: Time allowed to open a TCP/TLS connection to a source (capped by its timeout).
    connect_timeout: float = Field(default=2.0, gt=0, le=60)
    #: Tries per source call, the first included; 1 disables retries.
    retry_attempts: int = Field(default=3, ge=1, le=10)
    #: Exponential backoff with full jitter: wait uniform(0, min(cap, base * 2**n)).
    retry_backoff_base: float = Field(default=0.05, ge=0, le=10)
    retry_backoff_cap: float = Field(default=1.0, ge=0, le=60)
    #: Consecutive transient failures of one source that open its circuit ...
    breaker_failure_threshold: int = Field(default=5, ge=1, le=1000)
    #: ... when they all fall within this many seconds.
    breaker_window: float = Field(default=30.0, gt=0, le=3600)
    #: Seconds an open circuit waits before letting one probe through.
    breaker_cool_down: float = Field(default=10.0, ge=0, le=3600)
    #: Calls in flight to one source at once, across all requests.
    source_max_concurrency: int = Field(default=16, ge=1, le=1000)
    #: Every source is asked about a person at least this often, whatever the engagement
    #: index says: the longest a source that gained data can stay unasked (seconds).
    engagement_full_check_seconds: float = Field(default=3600.0, ge=0, le=7 * 86400)
    #: Cached data younger than this is served without asking the source (seconds; 0
    #: asks every time and keeps the cache only for sources that fail).
    cache_fresh_seconds: float = Field(default=60.0, ge=0, le=86400)
    #: Cached data past freshness but younger than this is served at once (``revalidating``)
    #: while it is refreshed in the background; older data waits (seconds; 0: always waits).
    cache_stale_seconds: float = Field(default=3600.0, ge=0, le=7 * 86400)
    #: A refresh asks only for what changed since the last sync, except that at least this
    #: often it asks for everything, so deletions at the source show (seconds).
    cache_full_refresh_seconds: float = Field(default=3600.0, ge=0, le=7 * 86400)
    #: Cached data not refreshed in full for this long is removed (hours).
    cache_retention_hours: float = Field(default=24.0, gt=0, le=24 * 90)
    #: How long a Practitioner, PractitionerRole, Organization or Location read from a
    #: source by id (and that a source does not hold one) is used again without asking
    #: (seconds; 0 asks every time).
    directory_fresh_seconds: float = Field(default=3600.0, ge=0, le=7 * 86400)
    #: Requests of one worker that ask sources (and normalise their answers) at once; more
    #: wait for a turn, at most a fifth of their deadline, then go ahead anyway.
    max_concurrent_refreshes: int = Field(default=8, ge=1, le=10_000)
    #: Streamed answers (``$everything``) of one worker being read from the store at once:
    #: each holds a database connection while it is sent. More wait for a turn, at most
    #: ``request_deadline``, and are then refused (503).
    max_concurrent_streams: int = Field(default=8, ge=1, le=1_000)
    #: The largest image a person may attach to an answered form (bytes, decoded).
    own_data_max_attachment_bytes: int = Field(default=2_000_000, ge=1_000, le=20_000_000)
    #: Most resources a person may keep in their own source (each read opens them all).
    own_data_max_records: int = Field(default=500, ge=1, le=100_000)
    #: Most bytes (sealed, all resources together) a person's own source may hold.
    own_data_max_bytes: int = Field(default=20_000_000, ge=10_000, le=1_000_000_000)
    # -- Bulk Data export (``$export``, gateway/access/exporter.py).
    #: Patients one worker reads for exports at once, all exports together: each holds
    #: one of the ``max_concurrent_refreshes`` and ``max_concurrent_streams`` turns while
    #: it is read, so interactive reads always have the rest.
    export_max_concurrent_reads: int = Field(default=2, ge=1, le=100)
    #: Patients per set of NDJSON files: an export's files appear a set at a time, each
    #: set once all of its patients are read.
    export_patients_per_file: int = Field(default=100, ge=1, le=100_000)
    #: How long an export's status URL and files are kept after it was asked for (hours).
    export_expiry_hours: float = Field(default=24.0, gt=0, le=24 * 30)
    #: A running export whose process has not said it is alive for this long is taken
    #: over by another process (seconds).
    export_lease_seconds: float = Field(default=60.0, gt=0, le=3600)
    #: How often each worker looks for subscription notifications to send (seconds).
    subscription_poll_seconds: float = Field(default=2.0, gt=0, le=3600)
    #: A failed notification is tried again after this, doubled per attempt (seconds).
    subscription_retry_seconds: float = Field(default=5.0, gt=0, le=3600)
    #: Attempts at a notification before its subscription is set to ``error``.
    subscription_max_attempts: int = Field(default=6, ge=1, le=100)
    #: The person's notices of news and reads (``[gateway.notices]``; gateway/notice_config.py).
    notices: NoticeConfig = Field(default_factory=NoticeConfig)
    #: Access-log entries older than this may be removed by ``samlad audit prune`` (days).
    audit_retention_days: int = Field(default=3 * 365 + 1, ge=1, le=100 * 366)
    #: How long a write waits for the owning system before it is answered 202, queued.
    write_wait_seconds: float = Field(default=10.0, gt=0, le=60)
    #: How long a write sent without an ``Idempotency-Key`` is kept as the answer to the
    #: same request again (its body's digest is its key), in hours.
    write_digest_key_hours: float = Field(default=24.0, gt=0, le=24 * 366)
    #: How often each process looks for queued writes to deliver (seconds).
    write_poll_seconds: float = Field(default=2.0, gt=0, le=3600)
    #: A failed delivery is tried again after this, doubled per attempt, at most
    #: ``write_retry_cap_seconds`` apart; given up after ``write_max_attempts``.
    write_retry_seconds: float = Field(default=5.0, gt=0, le=3600)
    write_retry_cap_seconds: float = Field(default=3600.0, gt=0, le=86400)
    write_max_attempts: int = Field(default=50, ge=1, le=1000)
    #: Most resources each worker keeps decoded and merged in memory for warm reads
    #: (twice this in the worst case: decoded and merged; about 10 kB each); 0 keeps
    #: none. The default covers a typical record and keeps a worker under 150 MB.
    memory_cache_resources: int = Field(default=2_000, ge=0, le=10_000_000)
    #: How long a worker uses a person's standing it read, told of every change by
    #: PostgreSQL (seconds; 0: read on every request; read on every request without it).
    standing_memory_seconds: float = Field(default=60.0, ge=0, le=3600)
    #: The same on SQLite, told only of its own changes (seconds).
    standing_memory_sqlite_seconds: float = Field(default=1.0, ge=0, le=60)
    #: How many people's standing a worker holds in memory (the most recently read).
    standing_memory_people: int = Field(default=10_000, ge=0, le=10_000_000)
    #: How long an emergency access (nödåtkomst) lasts once opened (hours).
    emergency_access_hours: float = Field(default=4.0, gt=0, le=24)
    # -- Request rate limits (gateway/http/ratelimit.py): a token bucket per principal, and one
    # per client address for requests without a valid token. Held in memory, so every
    # worker process counts for itself. A rate of 0 means unlimited for that kind.
    #: Off: no request is ever refused for its rate.
    rate_limit_enabled: bool = True
    #: Sustained requests per second of one citizen ...
    rate_limit_citizen_per_second: float = Field(default=10.0, ge=0, le=1_000_000)
    #: ... and how many they may make at once after a pause (the bucket's size).
    rate_limit_citizen_burst: int = Field(default=200, ge=1, le=1_000_000)
    rate_limit_clinician_per_second: float = Field(default=20.0, ge=0, le=1_000_000)
    rate_limit_clinician_burst: int = Field(default=200, ge=1, le=1_000_000)
    rate_limit_integrator_per_second: float = Field(default=50.0, ge=0, le=1_000_000)
    rate_limit_integrator_burst: int = Field(default=500, ge=1, le=1_000_000)
    #: Requests with no token, or one that fails verification, per client address (an
    #: IPv6 client by its /64): stricter, so that guessing tokens is slow.
    rate_limit_anonymous_per_second: float = Field(default=2.0, ge=0, le=1_000_000)
    rate_limit_anonymous_burst: int = Field(default=30, ge=1, le=1_000_000)
    #: Buckets kept per kind (and verified tokens remembered); the least recently used go.
    rate_limit_max_clients: int = Field(default=10_000, ge=1, le=10_000_000)
    #: The bearer token a metrics scraper must send to read ``/metrics``; unset, metrics
    #: are not served at all. At least 16 characters.
    metrics_token: SecretStr | None = None
    #: ``text`` (one human-readable line per record) or ``json`` (one JSON object per
    #: line, for a log shipper).
    log_format: Literal["text", "json"] = "text"
    #: Addresses or networks (``10.0.0.0/8``) of the reverse proxies in front of the
    #: gateway: only a connection from one of them has its ``X-Forwarded-For`` and
    #: ``X-Forwarded-Proto`` believed, and the client address (which the rate limit and
    #: the request log use) is then the one the proxy names. None by default: every
    #: such header is ignored, from loopback too.
    trusted_proxies: list[str] = Field(default_factory=list)
    #: A person reads their own record (and manages their choices) from this birthday.
    citizen_own_access_age: int = Field(default=16, ge=0, le=18)
    #: A guardian reads and manages a child's record until the child's this birthday.
    guardian_access_until_age: int = Field(default=13, ge=0, le=18)
    #: Where guardian relations come from (files or HTTP endpoints).
    guardian_registers: list[RegisterConfig] = Field(default_factory=list)
    #: Care units (by HSA-id or kind) and record kinds never shown to the person online
    #: (``[gateway.online_exclusions]``; docs/configuration.md).
    online_exclusions: OnlineExclusions = Field(default_factory=OnlineExclusions)
    #: Web origins (``https://app.example``) whose scripts may call the gateway (CORS);
    #: none by default.
    cors_allowed_origins: list[str] = Field(default_factory=list)
    #: IP networks (``127.0.0.1/32``) that notice webhooks and subscription endpoints may
    #: reach although they are not public (loopback, private, link-local), and over
    #: ``http``; none by default (``gateway.access.callbacks``).
    callback_allowed_networks: list[str] = Field(default_factory=list)
    #: Serve the local development issuer as an OAuth 2.0 / OpenID Connect authorization
    #: server at ``{public_base_url}/dev-issuer`` (dev mode only; docs/api.md).
    dev_authorization_server: bool = False
    #: The clients the development authorization server knows (``[[oauth_clients]]``).
    oauth_clients: list[OAuthClientConfig] = Field(default_factory=list)
    #: Serve the web app (the citizen's and the clinician's overview, package ``webapp``)
    #: at ``{public_base_url}/app/``, and redirect ``/`` there; off by default.
    web_app: bool = False
    #: The OAuth client id the web app logs in as (a public client: PKCE, no secret),
    #: told to it in ``/app/config.json``.
    web_app_client_id: str = "samlad-app"
    issuers: list[IssuerConfig] = Field(default_factory=list)
    sources: list[SourceConfig] = Field(default_factory=list)

    @field_validator("trusted_proxies", "callback_allowed_networks")
    @classmethod
    def _addresses_only(cls, value: list[str], info: ValidationInfo) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                # A name or "*" would be taken as a literal or as everyone.
                raise ValueError(f"{info.field_name}: {entry!r} is not an IP network") from None
        return value

    @field_validator("cors_allowed_origins")
    @classmethod
    def _origins_only(cls, value: list[str]) -> list[str]:
        return [_origin(entry) for entry in value]

    @field_validator("audit_checkpoint_key")
    @classmethod
    def _ed25519_seed(cls, value: SecretStr) -> SecretStr:
        seed = value.get_secret_value()
        if len(seed) != 64 or any(c not in "0123456789abcdefABCDEF" for c in seed):
            raise ValueError("must be 64 hex digits (a 32-byte Ed25519 seed)")
        return value

    @model_validator(mode="after")
    def _safe_outside_dev(self) -> Self:
        if self.metrics_token is not None and len(self.metrics_token.get_secret_value()) < 16:
            raise ValueError("metrics_token must be at least 16 characters")
        if not self.dev_mode:
            for name, default in (("id_key", DEV_ID_KEY), ("data_key", DEV_DATA_KEY)):
                value = getattr(self, name).get_secret_value()
                if value == default or len(value) < 16:
                    raise ValueError(
                        f"{name} must be set to a secret of at least 16 characters "
                        "outside dev mode (SAMLAD_" + name.upper() + ")"
                    )
            if self.audit_checkpoint_key.get_secret_value().lower() == DEV_AUDIT_CHECKPOINT_KEY:
                raise ValueError(
                    "audit_checkpoint_key must be set to a key of your own outside dev mode "
                    "(SAMLAD_AUDIT_CHECKPOINT_KEY)"
                )
            if any(i.dev_signing_key_file for i in self.issuers):
                raise ValueError("a development issuer may only be trusted in dev mode")
            if self.dev_authorization_server:
                raise ValueError("the development authorization server runs only in dev mode")
        return self

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        # Browsers ignore HSTS sent over plain HTTP: asking for it there is a mistake.
        if self.hsts_max_age and not self.public_base_url.startswith("https://"):
            raise ValueError("hsts_max_age needs an https public_base_url")
        if self.dev_authorization_server and self.dev_issuer is None:
            raise ValueError(
                "dev_authorization_server needs a development issuer (an [[issuers]] entry "
                f"with dev_signing_key_file) whose issuer is {self.dev_issuer_url}"
            )
        ids = [client.client_id for client in self.oauth_clients]
        if len(ids) != len(set(ids)):
            raise ValueError("oauth_clients: a client_id is registered twice")
        return self

    @property
    def citizen_ages(self) -> CitizenAges:
        """The ages the access policy applies to citizens and guardians."""
        return CitizenAges(self.citizen_own_access_age, self.guardian_access_until_age)

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'samlad.db'}"

    @property
    def effective_audit_checkpoint_file(self) -> Path:
        return self.audit_checkpoint_file or self.data_dir / "audit-checkpoints.jsonl"

    @property
    def should_auto_migrate(self) -> bool:
        return self.dev_mode if self.auto_migrate is None else self.auto_migrate

    @property
    def fhir_base_url(self) -> str:
        return self.public_base_url.rstrip("/") + "/fhir"

    @property
    def dev_issuer_url(self) -> str:
        """The ``iss`` of the development authorization server's tokens."""
        return self.public_base_url.rstrip("/") + "/dev-issuer"

    @property
    def dev_issuer(self) -> IssuerConfig | None:
        """The development issuer the authorization server signs as, when configured."""
        for issuer in self.issuers:
            if issuer.dev_signing_key_file is not None and issuer.issuer == self.dev_issuer_url:
                return issuer
        return None


def _tables(value: Any) -> list[dict[str, Any]]:
    """The tables of an array of tables; anything else is left to validation to refuse."""
    return [entry for entry in value if isinstance(entry, dict)] if isinstance(value, list) else []


def _relative(value: Any) -> bool:
    """Whether ``value`` is a relative path written as a string (anything else is left
    as it is, for validation to accept or refuse)."""
    return isinstance(value, str) and bool(value) and not Path(value).is_absolute()


def _resolve_paths(data: dict[str, Any], base: Path) -> None:
    """Make relative file paths in the config file relative to the file itself."""
    for issuer in _tables(data.get("issuers")):
        for key in ("jwks_file", "dev_signing_key_file"):
            if _relative(issuer.get(key)):
                issuer[key] = str(base / issuer[key])
    for client in _tables(data.get("oauth_clients")):
        if _relative(client.get("jwks_file")):
            client["jwks_file"] = str(base / client["jwks_file"])
    for source in _tables(data.get("sources")):
        auth = source.get("auth")
        if isinstance(auth, dict) and _relative(auth.get("private_key_file")):
            auth["private_key_file"] = str(base / auth["private_key_file"])
    for register in _tables(data.get("guardian_registers")):
        if _relative(register.get("file")):
            register["file"] = str(base / register["file"])
    for key in ("audit_checkpoint_file", "data_dir"):
        if _relative(data.get(key)):
            data[key] = str(base / data[key])


def read_config_file(path: Path) -> dict[str, Any]:
    """Read a gateway TOML file into keyword arguments for :class:`Settings`."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc}") from exc
    tables = {"gateway", "issuers", "sources", "guardian_registers", "oauth_clients"}
    unknown = set(raw) - tables
    if unknown:
        raise ConfigError(f"unknown tables in {path}: {sorted(unknown)}")
    gateway = raw.get("gateway", {})
    if not isinstance(gateway, dict):
        raise ConfigError(f"[gateway] in {path} must be a table")
    data: dict[str, Any] = dict(gateway)
    data["issuers"] = raw.get("issuers", [])
    data["sources"] = raw.get("sources", [])
    data["guardian_registers"] = raw.get("guardian_registers", [])
    data["oauth_clients"] = raw.get("oauth_clients", [])
    _resolve_paths(data, path.resolve().parent)
    return data


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings from the file (if any), then SAMLAD_* variables, then ``overrides``."""
    file_values = read_config_file(config_file) if config_file else {}
    try:
        merged: dict[str, Any] = {**file_values, **overrides}
        # Environment variables must win over the file but lose to explicit overrides:
        # pydantic-settings gives init arguments priority, so drop file keys set in the env.
        for key in file_values:
            if f"SAMLAD_{key.upper()}" in os.environ and key not in overrides:
                merged.pop(key)
        raw_sources = merged.pop("sources", [])
        if isinstance(raw_sources, list):  # anything else is for parse_sources to refuse
            raw_sources = [
                s.model_dump() if isinstance(s, SourceConfig) else s for s in raw_sources
            ]
        merged["sources"] = parse_sources({"sources": raw_sources})
        return Settings(**merged)
    except ValidationError as exc:
        raise ConfigError(f"invalid configuration: {describe(exc)}") from exc
    except SourceConfigError as exc:
        raise ConfigError(f"invalid configuration: {exc}") from exc


def describe(error: ValidationError) -> str:
    """Each problem as ``location: message``, without the offending values (may be secrets)."""
    return "; ".join(
        f"{'.'.join(str(part) for part in e['loc']) or 'value'}: {e['msg']}" for e in error.errors()
    )
