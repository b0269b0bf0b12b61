"""Settings: one pydantic-settings model, nested per area, read from PENTAD_* variables and .env.

Nested fields use a double underscore: PENTAD_DATABASE__URL, PENTAD_AUTH__ACCESS_TOKEN_TTL.
Every setting is documented in the README; `pentad config show` prints the effective values with
secrets masked.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import limits
from pydantic import BaseModel, BeforeValidator, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from pentad.core.emails import check_email

ENV_PREFIX = "PENTAD_"
NESTED_DELIMITER = "__"


def _split_commas(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


CommaList = Annotated[list[str], NoDecode, BeforeValidator(_split_commas)]


class SettingsError(Exception):
    """Raised when the environment holds an invalid setting; the message is one line a person can act on."""


class ServerSettings(BaseModel):
    host: str = Field("127.0.0.1", description="Address `pentad serve` binds to.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port `pentad serve` listens on.")
    workers: int = Field(1, ge=1, le=64, description="Number of uvicorn worker processes.")
    base_url: str = Field(
        "http://127.0.0.1:8000", description="Public URL of the platform, used in e-mailed links."
    )


class DatabaseSettings(BaseModel):
    url: str = Field(
        "sqlite+aiosqlite:///./var/pentad.db",
        description="SQLAlchemy async URL: sqlite+aiosqlite, postgresql+asyncpg or mysql+aiomysql.",
    )
    pool_size: int = Field(10, ge=1, le=500, description="Connections kept open (PostgreSQL, MariaDB).")
    max_overflow: int = Field(20, ge=0, le=500, description="Extra connections allowed under load.")
    echo: bool = Field(False, description="Log every SQL statement (development only).")
    sqlite_busy_timeout_ms: int = Field(5000, ge=0, description="How long SQLite waits for a lock.")

    @field_validator("url")
    @classmethod
    def _known_driver(cls, value: str) -> str:
        allowed = ("sqlite+aiosqlite://", "postgresql+asyncpg://", "mysql+aiomysql://")
        if not value.startswith(allowed):
            raise ValueError("must start with one of " + ", ".join(allowed))
        return value

    @property
    def dialect(self) -> str:
        return self.url.split("+", 1)[0]


class AuthSettings(BaseModel):
    secret_key: SecretStr | None = Field(
        None,
        description="Signs access tokens and CSRF tokens (32+ chars). "
        "Unset: generated once into the data directory.",
    )
    access_token_ttl: int = Field(600, ge=30, le=86400, description="Access token lifetime, seconds.")
    refresh_token_ttl: int = Field(
        30 * 86400, ge=300, description="Refresh token / browser session lifetime, seconds."
    )
    issuer: str = Field("pentad", description="`iss` claim of access tokens.")
    password_min_length: int = Field(12, ge=8, le=128, description="Minimum password length.")
    password_reset_ttl: int = Field(1800, ge=60, description="Password reset link lifetime, seconds.")
    reverify_after: int = Field(
        900,
        ge=60,
        le=86400,
        description="Seconds after a sign-in or `POST /api/me/verify` during which a session may set up "
        "two-factor authentication or create API keys without entering its password again.",
    )
    cookie_secure: bool = Field(False, description="Send the session cookie only over HTTPS.")
    mfa_issuer: str = Field("Pentad", description="Name shown in authenticator apps.")
    principal_cache_ttl: float = Field(
        5.0,
        ge=0,
        le=60,
        description="Seconds a verified credential is reused without a database check; revocations clear "
        "it at once on the same process, other nodes within this time. 0: check every request.",
    )


class CryptoSettings(BaseModel):
    keys: SecretStr | None = Field(
        None,
        description="Data-encryption keys as `kid:base64key,kid2:base64key` (32-byte keys). "
        "The first is used to encrypt; all decrypt. Unset: one key is generated into the data directory.",
    )


class SecuritySettings(BaseModel):
    cors_origins: CommaList = Field(
        default_factory=list, description="Origins allowed to call the API from a browser."
    )
    trusted_proxies: CommaList = Field(
        default_factory=list,
        description="Addresses or networks whose X-Forwarded-For header is believed.",
    )
    max_body_bytes: int = Field(1_048_576, ge=1024, description="Largest request body accepted.")
    hsts_max_age: int = Field(31_536_000, ge=0, description="Strict-Transport-Security max-age under TLS.")

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_network(item, strict=False)
        return value


class RateLimitSettings(BaseModel):
    enabled: bool = Field(True, description="Turn all rate limits on or off.")
    storage_url: str = Field(
        "memory://", description="`memory://` or a Redis URL such as `redis://127.0.0.1:6379/0`."
    )
    per_address: str = Field(
        "600/minute", description="Requests per client address to routes that declare no rate-limit class."
    )
    per_principal: str = Field("1200/minute", description="Requests per user, API key or service token.")
    login_per_address: str = Field("20/minute", description="Login attempts per client address.")
    login_per_account: str = Field("10/15minutes", description="Login attempts per account.")
    classes: dict[str, str] = Field(
        default_factory=dict,
        description="Per-address limits of the rate-limit classes routes declare, replacing their defaults, "
        'as JSON (`{"ingest": "6000/minute"}`) or one variable each (`PENTAD_RATELIMIT__CLASSES__INGEST`).',
    )

    @field_validator("classes")
    @classmethod
    def _class_limits(cls, value: dict[str, str]) -> dict[str, str]:
        for limit in value.values():
            limits.parse(limit)
        return {name.lower(): limit for name, limit in value.items()}


class RedisSettings(BaseModel):
    url: str | None = Field(None, description="Redis URL; when set, /readyz checks it.")


class MailSettings(BaseModel):
    host: str | None = Field(
        None, description="SMTP relay host; unset: no mail is sent (a warning without the content is logged)."
    )
    port: int = Field(587, ge=1, le=65535, description="SMTP relay port.")
    username: str | None = Field(None, description="SMTP user name.")
    password: SecretStr | None = Field(None, description="SMTP password.")
    starttls: bool = Field(False, description="Upgrade the SMTP connection with STARTTLS.")
    use_tls: bool = Field(False, description="Connect with implicit TLS (port 465).")
    sender: str = Field("Pentad <pentad@localhost>", description="From address.")
    timeout: float = Field(10.0, gt=0, description="SMTP timeout, seconds.")


class RealtimeSettings(BaseModel):
    broker_url: str | None = Field(
        None,
        description="Unset: in-process fan-out (one process). `redis://…`: fan-out and history across nodes.",
    )
    auth_timeout: float = Field(10.0, gt=0, description="Seconds a new socket has to authenticate.")
    heartbeat_interval: float = Field(25.0, gt=0, description="Seconds between server pings.")
    idle_timeout: float = Field(60.0, gt=0, description="Close a socket silent for this long, seconds.")
    send_queue_size: int = Field(
        1024, ge=16, description="Events queued per connection before it is closed as a slow consumer."
    )
    revalidate_interval: float = Field(
        60.0, gt=0, description="Seconds between re-checks that a socket's credentials are still valid."
    )
    max_subscriptions: int = Field(512, ge=1, description="Topics one connection may subscribe to.")
    max_message_bytes: int = Field(65_536, ge=1024, description="Largest client message accepted.")


class JobsSettings(BaseModel):
    in_process_worker: bool = Field(True, description="`pentad serve` also runs a job worker.")
    concurrency: int = Field(4, ge=1, le=256, description="Jobs one worker runs at once.")
    poll_interval: float = Field(1.0, gt=0, description="Seconds between polls for due jobs when idle.")
    lease_seconds: int = Field(60, ge=5, description="A running job's lease; renewed while it runs.")
    max_attempts: int = Field(5, ge=1, description="Attempts before a job is dead-lettered (default).")
    backoff_base: float = Field(2.0, gt=0, description="First retry delay, seconds; doubles per attempt.")
    backoff_max: float = Field(3600.0, gt=0, description="Longest retry delay, seconds.")
    shutdown_grace: float = Field(
        10.0, ge=0, description="Seconds a stopping worker lets running jobs finish before requeueing them."
    )
    retention_days: int = Field(
        7, ge=1, description="Finished jobs (succeeded or dead) are deleted after this many days."
    )


class StorageSettings(BaseModel):
    backend: Literal["local", "s3"] = Field("local", description="`local` folder or `s3`-compatible store.")
    local_path: Path | None = Field(None, description="Folder of the local backend; unset: <data dir>/files.")
    s3_endpoint_url: str | None = Field(None, description="S3 endpoint (MinIO, Ceph, AWS...); unset: AWS.")
    s3_bucket: str = Field("pentad", description="Bucket holding every object.")
    s3_region: str = Field("us-east-1", description="S3 region.")
    s3_access_key: SecretStr | None = Field(None, description="S3 access key id.")
    s3_secret_key: SecretStr | None = Field(None, description="S3 secret access key.")
    max_object_bytes: int = Field(104_857_600, ge=1, description="Largest object accepted, bytes.")
    signed_url_ttl: int = Field(
        900, ge=1, le=604_800, description="Default lifetime of signed URLs, seconds."
    )
    s3_part_size: int = Field(
        8_388_608,
        ge=5_242_880,
        le=5_368_709_120,
        description="Part size of S3 multipart uploads, bytes (5 MiB-5 GiB); a smaller upload is one PUT.",
    )


class CacheSettings(BaseModel):
    url: str = Field("memory://", description="`memory://` (per process) or a Redis URL shared by all nodes.")
    default_ttl: int = Field(300, ge=1, description="Seconds an entry lives when no TTL is given.")
    lock_timeout: float = Field(
        10.0,
        gt=0,
        description="On Redis, longest a get_or_set loader holds its key's lock, and longest other callers "
        "wait for its value before loading it themselves, seconds.",
    )
    memory_max_entries: int = Field(
        10_000, ge=1, description="Entries the memory cache keeps per process; the least recently written go."
    )

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if value != "memory://" and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("use memory:// or a redis://, rediss:// or unix:// URL")
        return value


class LogSettings(BaseModel):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")
    json_format: bool = Field(True, description="JSON lines (true) or human-readable console output.")


class AdminSettings(BaseModel):
    email: str | None = Field(
        None, description="E-mail of the first admin, created when there is none; unset: admin@example.com."
    )
    password: SecretStr | None = Field(
        None,
        description="Password of the first admin; unset: generated into `<data dir>/first-admin-password` "
        "(mode 0600) and, on a terminal, shown once.",
    )

    @field_validator("email")
    @classmethod
    def _one_email_rule(cls, value: str | None) -> str | None:
        # The rule sign-in applies: an address it would refuse must not become the only admin's.
        return None if value is None else check_email(value)


class ChatSettings(BaseModel):
    """The chat app (apps/chat): limits, integrations and notifications."""

    default_tenant: str = Field(
        "default", description="Slug of the tenant Pentad's own accounts chat in through the web pages."
    )
    user_token_ttl: int = Field(
        3600, ge=60, le=2_592_000, description="Default lifetime of user tokens minted by the server API, s."
    )
    max_message_length: int = Field(5000, ge=1, le=100_000, description="Longest message text, characters.")
    max_payload_bytes: int = Field(
        16_384, ge=256, description="Largest JSON payload of a custom message type, bytes (serialised)."
    )
    history_page_max: int = Field(200, ge=10, le=1000, description="Most messages one history page returns.")
    upload_max_bytes: int = Field(26_214_400, ge=1024, description="Largest attachment upload, bytes.")
    thumbnail_size: int = Field(320, ge=32, le=2048, description="Longest side of image thumbnails, pixels.")
    webhook_allowed_networks: CommaList = Field(
        default_factory=list,
        description="CIDRs outgoing webhooks and push may reach although private or loopback (admin opt-in).",
    )
    webhook_timeout: float = Field(10.0, gt=0, le=60, description="Timeout of one webhook delivery, seconds.")
    webhook_max_attempts: int = Field(8, ge=1, le=30, description="Delivery attempts before giving up.")
    digest_after_minutes: int = Field(
        60, ge=1, description="E-mail a digest of mentions still unread after this many minutes."
    )
    vapid_subject: str = Field(
        "mailto:admin@example.com", description="Contact (mailto: or https:) sent to Web Push services."
    )

    @field_validator("webhook_allowed_networks")
    @classmethod
    def _valid_networks(cls, value: list[str]) -> list[str]:
        for network in value:
            ipaddress.ip_network(network, strict=False)
        return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=NESTED_DELIMITER,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="forbid",
    )

    environment: Literal["development", "production", "test"] = Field(
        "development", description="Deployment kind; production refuses unsafe defaults."
    )
    data_dir: Path = Field(Path("var"), description="Local state: SQLite file, generated keys, uploads.")
    apps: CommaList = Field(
        default_factory=lambda: ["*"],
        description="Apps this process runs, comma-separated or JSON list; `*` means all installed.",
    )
    server: ServerSettings = Field(default_factory=ServerSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    crypto: CryptoSettings = Field(default_factory=CryptoSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    ratelimit: RateLimitSettings = Field(default_factory=RateLimitSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    realtime: RealtimeSettings = Field(default_factory=RealtimeSettings)
    jobs: JobsSettings = Field(default_factory=JobsSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    mail: MailSettings = Field(default_factory=MailSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    admin: AdminSettings = Field(default_factory=AdminSettings)
    chat: ChatSettings = Field(default_factory=ChatSettings)


def _setting_name(location: tuple[int | str, ...]) -> str:
    return ENV_PREFIX + NESTED_DELIMITER.join(str(part).upper() for part in location)


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment; turn validation errors into one clear line."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = _setting_name(tuple(first["loc"]))
        extra = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise SettingsError(f"invalid setting {name}: {first['msg']}{extra}") from None


def masked(settings: Settings) -> dict[str, Any]:
    """Effective settings as plain data, with every secret replaced by a mask."""

    def walk(value: Any) -> Any:
        if isinstance(value, SecretStr):
            return "********" if value.get_secret_value() else ""
        if isinstance(value, BaseModel):
            return {name: walk(getattr(value, name)) for name in type(value).model_fields}
        if isinstance(value, list):
            return [walk(item) for item in value]
        if isinstance(value, Path):
            return str(value)
        return value

    data = walk(settings)
    data["database"]["url"] = _mask_url_password(settings.database.url)
    if settings.redis.url:
        data["redis"]["url"] = _mask_url_password(settings.redis.url)
    data["ratelimit"]["storage_url"] = _mask_url_password(settings.ratelimit.storage_url)
    data["cache"]["url"] = _mask_url_password(settings.cache.url)
    if settings.realtime.broker_url:
        data["realtime"]["broker_url"] = _mask_url_password(settings.realtime.broker_url)
    return data  # type: ignore[no-any-return]


def _mask_url_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user, has_password, _ = credentials.partition(":")
    return f"{scheme}://{user}:********@{host}" if has_password else url
