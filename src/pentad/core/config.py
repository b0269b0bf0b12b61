"""Settings: one pydantic-settings model, nested per area, read from PENTAD_* variables and .env.

Nested fields use a double underscore: PENTAD_DATABASE__URL, PENTAD_AUTH__ACCESS_TOKEN_TTL. An app's own
settings (AppSpec.settings, a pydantic model) live in its area: PENTAD_CHAT__MAX_MESSAGE_LENGTH; they are
validated when the app is enabled (`Settings.app_settings`). A PENTAD_ variable that names no setting is
reported by `unknown_settings` (a warning, never a stop: a variable may be meant for another version).
Every setting is documented in the README; `pentad config show` prints the effective values with
secrets masked.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_origin

from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from pentad.core.emails import check_email

ENV_PREFIX = "PENTAD_"
NESTED_DELIMITER = "__"
TEST_HARNESS_PREFIX = "PENTAD_TEST_"
"""Variables of the test suite (tests/conftest.py), not settings: never reported as unknown."""
SQLITE_FILE_NAME = "pentad.db"
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 (names them, binds nothing)

AppModel = TypeVar("AppModel", bound=BaseModel)


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
        "http://127.0.0.1:8000",
        description="Public URL of the platform, used in links it hands out (e-mail, files, hooks). "
        "Unset: http://<host>:<port> of this server (127.0.0.1 for a wildcard host).",
    )


class DatabaseSettings(BaseModel):
    url: str = Field(
        "sqlite+aiosqlite:///var/pentad.db",
        description="SQLAlchemy async URL: sqlite+aiosqlite, postgresql+asyncpg or mysql+aiomysql. "
        "Unset: the SQLite file pentad.db in PENTAD_DATA_DIR.",
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
        300.0,
        ge=0,
        le=86400,
        description="Seconds a verified credential is reused without a database check. Revocations clear "
        "it at once in every process through Redis (PENTAD_REDIS__URL or a redis:// realtime broker); "
        "several workers without Redis, or a process not subscribed, keep entries 5 s at most. "
        "0: check every request.",
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
        import limits  # loaded only when classes are given: the command line reads settings without it

        for limit in value.values():
            limits.parse(limit)
        return {name.lower(): limit for name, limit in value.items()}


class RedisSettings(BaseModel):
    url: str | None = Field(
        None,
        description="Redis URL; when set, /readyz checks it, revocations of cached credentials reach "
        "every process through it, and the relay (addressed request/reply) spans processes and nodes.",
    )


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
    max_message_bytes: int = Field(
        65_536, ge=1024, description="Largest client frame, bytes: `pentad serve` refuses more (1009) unread."
    )
    max_unauthenticated: int = Field(
        512,
        ge=1,
        description="Sockets not yet authenticated, in all; more are refused (503) at the handshake.",
    )
    max_unauthenticated_per_address: int = Field(
        32, ge=1, description="Sockets not yet authenticated from one client address; more are refused (429)."
    )


class JobsSettings(BaseModel):
    in_process_worker: bool = Field(True, description="`pentad serve` also runs a job worker.")
    concurrency: int = Field(4, ge=1, le=256, description="Jobs one worker runs at once.")
    queues: CommaList = Field(
        default_factory=list,
        description="Comma-separated queues the in-process worker and `pentad worker` claim from (`--queue` "
        "overrides); empty: every queue.",
    )
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
    metrics_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="`pentad worker` serves its Prometheus metrics (the job series, the database pool, its "
        "services) on this port at GET /metrics, to a service token with `core.metrics.read`, as "
        "`pentad serve` does; unset: not served (a web node's in-process worker is on its /metrics).",
    )
    metrics_host: str = Field(
        "127.0.0.1", description="Address the worker's metrics port binds to (`0.0.0.0` in a container)."
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


class OutboundSettings(BaseModel):
    allowed_networks: CommaList = Field(
        default_factory=list,
        description="CIDRs that outgoing requests to addresses users chose (webhooks, Web Push, callbacks) "
        "may reach although private, loopback or link-local (admin opt-in, e.g. a receiver on the LAN).",
    )
    timeout: float = Field(10.0, gt=0, le=120, description="Timeout of one outgoing request, seconds.")
    max_response_bytes: int = Field(
        1_048_576, ge=0, description="Largest answer read from an outgoing request, bytes; more fails it."
    )

    @field_validator("allowed_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_network(item, strict=False)
        return value


DATACENTER_ASNS = [
    "16509",
    "14618",
    "8987",  # Amazon AWS (EC2 ranges: AWS ip-ranges.json; ASNs as registered at ARIN)
    "15169",
    "396982",
    "19527",  # Google, Google Cloud
    "8075",  # Microsoft Azure
    "24940",
    "213230",  # Hetzner
    "16276",  # OVHcloud
    "14061",  # DigitalOcean
    "63949",  # Linode / Akamai Connected Cloud
    "20473",  # Vultr (Choopa)
    "31898",  # Oracle Cloud
    "45102",  # Alibaba Cloud
    "132203",  # Tencent Cloud
    "12876",  # Scaleway
    "51167",  # Contabo
    "60781",
    "16265",  # Leaseweb
    "36351",  # IBM Cloud (SoftLayer)
]
"""Hosting networks whose requests are counted as bots (bot_reason "datacenter"): the providers' own
registered ASNs (RIR whois / PeeringDB records, checked 2026-12). Consumer VPN networks are left out."""


class VisitorsSettings(BaseModel):
    country_db: Path | None = Field(
        None,
        description="IP-to-country MMDB file, or a folder of them (a combined file, or `*ipv4.mmdb` + "
        "`*ipv6.mmdb`); unset: `<data dir>/geoip/country/`, else the CC0 "
        "`@ip-location-db/geo-whois-asn-country-mmdb` files a checkout installs under web/node_modules. "
        "Missing: countries are unknown and /readyz fails.",
    )
    city_db: Path | None = Field(
        None, description="GeoLite2-City-shaped MMDB for region and city (optional; unset: none)."
    )
    asn_db: Path | None = Field(
        None,
        description="IP-to-ASN MMDB (`autonomous_system_number`, GeoLite2-ASN or iptoasn shape), for the "
        "datacenter flag; unset: `<data dir>/geoip/asn.mmdb` if present, else ASNs are unknown.",
    )
    datacenter_asns: CommaList = Field(
        default_factory=lambda: list(DATACENTER_ASNS),
        description="ASNs of hosting networks: a request from one is flagged `datacenter` (a bot).",
    )
    ua_cache_size: int = Field(
        20_000, ge=0, le=10_000_000, description="Parsed user agents kept per process (LRU)."
    )

    @field_validator("datacenter_asns")
    @classmethod
    def _numbers(cls, value: list[str]) -> list[str]:
        for item in value:
            if not item.isdigit():
                raise ValueError(f"{item!r} is not an AS number")
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


class _AppAreas(PydanticBaseSettingsSource):
    """The PENTAD_ variables that are no core setting, kept as the model's extras: an app's area
    (`PENTAD_CHAT__MAX_MESSAGE_LENGTH` -> {"chat": {"max_message_length": ...}}, deeper levels nest further)
    and, flat, every other name (`PENTAD_SERVER__PROT` -> {"server__prot": ...}) for `unknown_settings`.
    Reads what the environment and .env sources read; the environment wins."""

    def __init__(self, settings_cls: type[BaseSettings], *sources: EnvSettingsSource) -> None:
        super().__init__(settings_cls)
        self._sources = sources

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        prefix = ENV_PREFIX.lower()
        core = {name[len(prefix) :].lower() for name in setting_names(self.settings_cls, areas=True)}
        extras: dict[str, Any] = {}
        for source in self._sources:
            for name, value in source.env_vars.items():
                rest = name[len(prefix) :]
                if value is None or not name.startswith(prefix) or rest in core:
                    continue
                head, nested, tail = rest.partition(NESTED_DELIMITER)
                if not nested or head in self.settings_cls.model_fields:
                    extras[rest] = value
                    continue
                area = extras.get(head)
                if not isinstance(area, dict):
                    area = extras[head] = {}
                *parents, leaf = tail.split(NESTED_DELIMITER)
                for parent in parents:
                    child = area.get(parent)
                    if not isinstance(child, dict):
                        child = area[parent] = {}
                    area = child
                area[leaf] = value
        return extras


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=NESTED_DELIMITER,
        env_file=".env",
        env_file_encoding="utf-8",
        # The extras are the apps' areas (and misspelt names, which `unknown_settings` reports).
        extra="allow",
        dotenv_filtering="only_existing",
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
    outbound: OutboundSettings = Field(default_factory=OutboundSettings)
    visitors: VisitorsSettings = Field(default_factory=VisitorsSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    admin: AdminSettings = Field(default_factory=AdminSettings)

    _apps: dict[str, BaseModel] = PrivateAttr(default_factory=dict)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        assert isinstance(env_settings, EnvSettingsSource)
        assert isinstance(dotenv_settings, DotEnvSettingsSource)
        app_areas = _AppAreas(settings_cls, dotenv_settings, env_settings)
        return init_settings, env_settings, dotenv_settings, app_areas, file_secret_settings

    @model_validator(mode="after")
    def _derive_unset_locations(self) -> Settings:
        """The SQLite file follows PENTAD_DATA_DIR and the public URL follows the served port, unless set."""
        if "url" not in self.database.model_fields_set:
            self.database.url = f"sqlite+aiosqlite:///{self.data_dir / SQLITE_FILE_NAME}"
        if "base_url" not in self.server.model_fields_set:
            host = "127.0.0.1" if self.server.host in WILDCARD_HOSTS else self.server.host
            host = f"[{host}]" if ":" in host else host
            self.server.base_url = f"http://{host}:{self.server.port}"
        return self

    def app_settings(self, app: str, model: type[AppModel]) -> AppModel:
        """App `app`'s settings (its PENTAD_<APP>__… variables, or the `app=` keyword of the constructor)
        as `model`, validated once; a bad value raises SettingsError naming the variable."""
        found = self._apps.get(app)
        if found is None:
            area = (self.model_extra or {}).get(app)
            try:
                found = model.model_validate(area if isinstance(area, dict) else {})
            except ValidationError as exc:
                raise SettingsError(_first_error(exc, (app,))) from None
            self._apps[app] = found
        if not isinstance(found, model):
            raise TypeError(
                f"the settings of app {app!r} are a {type(found).__name__}, not a {model.__name__}"
            )
        return found


def setting_names(model: type[BaseModel], prefix: str = ENV_PREFIX, *, areas: bool = False) -> list[str]:
    """The variable names of a settings model's fields, nested areas joined by a double underscore;
    with `areas`, also the names of the areas themselves (a whole area may be given as JSON)."""
    names = []
    for name, field in model.model_fields.items():
        variable = prefix + name.upper()
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names += [variable] if areas else []
            names += setting_names(annotation, variable + NESTED_DELIMITER, areas=areas)
        else:
            names.append(variable)
    return names


def _mapping_setting_names(model: type[BaseModel], prefix: str = ENV_PREFIX) -> list[str]:
    names = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names += _mapping_setting_names(annotation, prefix + name.upper() + NESTED_DELIMITER)
        elif get_origin(annotation) is dict:
            names.append(prefix + name.upper())
    return names


def app_setting_names(app: str, model: type[BaseModel] | None) -> list[str]:
    """The variable names of one app's settings: PENTAD_<APP>__<NAME>."""
    if app in Settings.model_fields:
        raise SettingsError(f"app {app!r} is named like the core settings area PENTAD_{app.upper()}")
    return setting_names(model, f"{ENV_PREFIX}{app.upper()}{NESTED_DELIMITER}") if model else []


def unknown_settings(settings: Settings, apps: Mapping[str, type[BaseModel] | None]) -> list[str]:
    """One warning line per PENTAD_ variable that names no setting of the core or of an installed app
    (`apps`: name -> its settings model), with the nearest known name."""
    known = setting_names(Settings)
    for app, model in apps.items():
        known += app_setting_names(app, model)
    # A mapping setting (PENTAD_RATELIMIT__CLASSES) takes one variable per key as well as JSON.
    keyed = tuple(name + NESTED_DELIMITER for name in _mapping_setting_names(Settings))
    warnings = []
    for name in _variable_names(ENV_PREFIX, settings.model_extra or {}):
        if name in known or name.startswith(TEST_HARNESS_PREFIX) or name.startswith(keyed):
            continue
        nearest = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
        hint = f"; did you mean {nearest[0]}?" if nearest else ""
        warnings.append(f"unknown setting {name} is ignored{hint}")
    return sorted(warnings)


def _variable_names(prefix: str, values: Mapping[str, Any]) -> list[str]:
    names = []
    for key, value in values.items():
        name = prefix + key.upper()
        names += _variable_names(name + NESTED_DELIMITER, value) if isinstance(value, Mapping) else [name]
    return names


def _first_error(exc: ValidationError, area: tuple[str, ...] = ()) -> str:
    first = exc.errors()[0]
    name = _setting_name((*area, *first["loc"]))
    extra = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"invalid setting {name}: {first['msg']}{extra}"


def _setting_name(location: tuple[int | str, ...]) -> str:
    return ENV_PREFIX + NESTED_DELIMITER.join(str(part).upper() for part in location)


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment; turn validation errors into one clear line."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(_first_error(exc)) from None


def masked(settings: BaseModel) -> dict[str, Any]:
    """Settings (the core's or an app's) as plain data, with every secret and URL password masked."""

    def walk(value: Any) -> Any:
        if isinstance(value, SecretStr):
            return "********" if value.get_secret_value() else ""
        if isinstance(value, BaseModel):
            return {name: walk(getattr(value, name)) for name in type(value).model_fields}
        if isinstance(value, list):
            return [walk(item) for item in value]
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, str):
            return _mask_url_password(value)
        return value

    return walk(settings)  # type: ignore[no-any-return]


def _mask_url_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user, has_password, _ = credentials.partition(":")
    return f"{scheme}://{user}:********@{host}" if has_password else url
