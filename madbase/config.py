"""MadBase configuration: one frozen tree merged from flags, environment and a `.env` file.

Precedence, highest first: command-line flags, `MADBASE_*` environment variables, the `.env` file,
defaults. Only `cli.py` reads the process environment; everything else receives a `Config`.
A bad value raises `ConfigError` whose message names the setting, so the CLI can print one line.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Final, final

import attrs

from madbase.protocol.auth import PROVIDERS, ProviderConfig, parse_networks

__all__ = [
    "AuthConfig",
    "Config",
    "ConfigError",
    "DbSettings",
    "HttpSettings",
    "SmtpSettings",
    "parse_dotenv",
    "rate_limits_off",
]


class ConfigError(ValueError):
    """A setting has a value we cannot use; the message names the setting."""


@final
@attrs.frozen(kw_only=True)
class HttpSettings:
    """Limits and timeouts of the HTTP server."""

    # 16 KiB of URL is the least rest.md asks for; headers from browsers stay far below 64 KiB.
    max_head_bytes: int = 64 * 1024
    max_request_line_bytes: int = 32 * 1024
    # Storage uploads stream and get their own limits; this caps buffered JSON bodies.
    max_body_bytes: int = 50 * 1024 * 1024
    # Seconds to receive a whole request once its first byte arrived (slowloris guard).
    read_timeout: float = 30.0
    # Seconds an idle keep-alive connection stays open (nginx's default is 75).
    keepalive_timeout: float = 75.0
    # Seconds in-flight requests get to finish after SIGTERM before their connections are closed.
    shutdown_timeout: float = 10.0
    max_connections: int = 1024
    # `auto`: httptools (llhttp, C) when importable, else h11 (pure Python), as uvicorn picks;
    # h11 costs ~150 µs of CPU per request, httptools ~40 µs (DESIGN.md).
    parser: str = "auto"


@final
@attrs.frozen(kw_only=True)
class DbSettings:
    """The project's database pool."""

    # DESIGN.md: few connections with many requests each cost Postgres the least CPU.
    pool_size: int = 4
    connect_timeout: float = 5.0
    # Seconds a request waits for a free pooled connection before it gets a 503.
    acquire_timeout: float = 10.0
    # Seconds one statement bundle may take on the wire before the request gets a 504.
    query_timeout: float = 60.0
    # Prepare statements once per connection (Postgres parses and plans them once). Turn off
    # behind a transaction-mode pooler that cannot keep them (PgBouncer < 1.21, Supavisor's
    # transaction mode).
    prepared_statements: bool = True


@final
@attrs.frozen(kw_only=True)
class SmtpSettings:
    """The SMTP relay auth mail goes through when `mailer` is `smtp`."""

    host: str = "localhost"
    # 587 is the submission port (RFC 6409), where STARTTLS is the rule; 465 speaks TLS at once.
    port: int = 587
    user: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    # The From address (GoTrue's SMTP_ADMIN_EMAIL) and its display name (SMTP_SENDER_NAME).
    sender: str = "noreply@localhost"
    sender_name: str = ""
    # starttls: upgrade a plain connection (and refuse if the server cannot); tls: implicit
    # TLS from the first byte (port 465); off: plain text, for a relay on loopback only.
    tls: str = "starttls"
    # Seconds for the connection and each SMTP command.
    timeout: float = 10.0


@final
@attrs.frozen(kw_only=True)
class AuthConfig:
    """The `/auth/v1` settings of the project (defaults: GoTrue's, except autoconfirm)."""

    # MAILER_AUTOCONFIRM: on for local development, so signup signs in without a mail.
    autoconfirm: bool = True
    # URI_ALLOW_LIST: redirect URLs (globs) accepted besides the site URL.
    redirect_urls: tuple[str, ...] = ()
    # MAILER_OTP_EXP: seconds a mailed link or code stays valid (one day).
    otp_expiry: int = 86400
    # SMTP_MAX_FREQUENCY: seconds between two mails of one kind to one user.
    email_max_frequency: int = 60
    # MAILER_SECURE_EMAIL_CHANGE_ENABLED: confirm an email change from both addresses.
    secure_email_change: bool = True
    # SECURITY_UPDATE_PASSWORD_REQUIRE_REAUTHENTICATION: a mailed nonce for password changes.
    secure_password_change: bool = False
    # PASSWORD_MIN_LENGTH (GoTrue raises anything below 6 to 6).
    password_min_length: int = 6
    # PASSWORD_REQUIRED_CHARACTERS: groups separated by `:`, one character of each required.
    password_required_characters: str = ""
    # JWT_EXP: seconds an access token is valid.
    jwt_expiry: int = 3600
    # DISABLE_SIGNUP: only admins create users.
    disable_signup: bool = False
    # EXTERNAL_ANONYMOUS_USERS_ENABLED: POST /signup without credentials signs in anonymously.
    anonymous_users: bool = False
    # SECURITY_REFRESH_TOKEN_REUSE_INTERVAL: seconds a rotated refresh token still answers.
    refresh_token_reuse_interval: int = 10
    # EXTERNAL_PHONE_ENABLED: phone sign-up and SMS codes, which go to the outbox directory as
    # `*-sms.json` files (MadBase has no SMS provider).
    phone: bool = False


@final
@attrs.frozen(kw_only=True)
class Config:
    """Everything `madbase serve` needs, frozen."""

    data_dir: Path = Path(".madbase")
    host: str = "127.0.0.1"
    port: int = 8000
    # None: start the embedded PostgreSQL server in data_dir.
    database_url: str | None = attrs.field(default=None, repr=False)
    # None: generated on first start and kept in data_dir.
    jwt_secret: str | None = attrs.field(default=None, repr=False)
    # PostgREST `jwt-aud`: a token with an `aud` claim must list it, on every service (tokens
    # without one, like the API keys, pass). Also GoTrue's JWT_AUD: the audience auth gives new
    # users and their tokens. None: no check; auth uses `authenticated`.
    jwt_aud: str | None = None
    public_url: str | None = None
    log_level: str = "info"
    # Server processes sharing the listening socket (DESIGN.md "Cores"): the main one plus
    # `workers - 1` started by it. 1, the default, serves from the main process alone.
    workers: int = 1
    # PostgREST `db-schemas`: the schemas /rest/v1 exposes, the first is the default profile.
    db_schemas: tuple[str, ...] = ("public",)
    # PostgREST `db-plan-enabled`: the EXPLAIN media type (application/vnd.pgrst.plan), off by
    # default as in PostgREST (plans reveal the schema and cost the database).
    db_plan_enabled: bool = False
    # PostgREST `db-max-rows`: the most rows a read returns (None: no limit); also the threshold
    # of `Prefer: count=estimated`.
    db_max_rows: int | None = None
    # PostgREST `openapi-mode`: what `GET /rest/v1/` lists (`follow-privileges`: what the caller's
    # role may use; `ignore-privileges`: everything in the schema; `disabled`: 404 PGRST126).
    openapi_mode: str = "follow-privileges"
    # Embedded Postgres only: fsync off is for throwaway test clusters.
    pg_fsync: bool = True
    # /auth/v1 rate limits (GoTrue's defaults, spec/auth.md §9); 0 switches one off.
    auth_rate_limit_token: int = 150  # /token requests per IP per 5 minutes
    auth_rate_limit_verify: int = 30  # /verify per IP per 5 minutes
    auth_rate_limit_otp: int = 30  # sign-ups, OTP, recover, resend, PUT /user per IP per 5 min
    auth_rate_limit_anonymous: int = 30  # anonymous sign-ins per IP per hour
    auth_rate_limit_mfa: int = 15  # MFA challenges and verifications per IP per minute
    auth_rate_limit_address: int = 30  # attempts naming one email/phone per 5 minutes
    auth_rate_limit_email_sent: int = 30  # mails the project sends per hour
    # Proxies whose X-Forwarded-For is believed (addresses or CIDR networks); none by default.
    trusted_proxies: tuple[str, ...] = ()
    # GoTrue's SECURITY_MANUAL_LINKING_ENABLED.
    auth_manual_linking_enabled: bool = False
    # OAuth providers: MADBASE_AUTH_<PROVIDER>_CLIENT_ID, _SECRET, _URL, _REDIRECT_URI, _ENABLED
    # (environment or .env only).
    auth_providers: tuple[ProviderConfig, ...] = ()
    # Where auth links send users afterwards (GoTrue's SITE_URL); None: the server's URL.
    site_url: str | None = None
    # How auth mail leaves: "outbox" writes each message into `mailer_outbox` (default
    # `<data_dir>/outbox`) for local development and tests; "smtp" sends it through `smtp`.
    mailer: str = "outbox"
    mailer_outbox: Path | None = None
    http: HttpSettings = HttpSettings()
    db: DbSettings = DbSettings()
    smtp: SmtpSettings = SmtpSettings()
    auth: AuthConfig = AuthConfig()

    @property
    def outbox_dir(self) -> Path:
        """The outbox mailer's directory."""
        return self.mailer_outbox if self.mailer_outbox is not None else self.data_dir / "outbox"

    @property
    def url(self) -> str:
        """Base URL clients use (the public URL when one is configured)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = self.host
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 - reading a bind address, not binding
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @classmethod
    def from_sources(
        cls,
        environ: Mapping[str, str],
        dotenv: Mapping[str, str],
        flags: Mapping[str, str | None],
    ) -> Config:
        """Merge the three sources; raise `ConfigError` naming the first bad setting."""
        values: dict[str, object] = {}
        groups: dict[str, dict[str, object]] = {name: {} for name in _GROUPS}
        for setting in _SETTINGS:
            raw = flags.get(setting.name)
            where = f"--{setting.name.replace('_', '-')}"
            if raw is None:
                raw = environ.get(setting.env)
                where = setting.env
            if raw is None:
                raw = dotenv.get(setting.env)
                where = f"{setting.env} (in .env)"
            if raw is None:
                continue
            try:
                value = setting.parse(raw)
            except ValueError as err:
                raise ConfigError(f"{where}: {err}") from None
            target = groups[setting.group] if setting.group else values
            target[setting.name.removeprefix(f"{setting.group}_")] = value
        for name, group in _GROUPS.items():
            values[name] = group(**groups[name])
        values["auth_providers"] = _providers({**dotenv, **environ})
        return cls(**values)  # type: ignore[arg-type]


_PROVIDER_SETTING: Final = re.compile(
    r"MADBASE_AUTH_([A-Z0-9_]+?)_(CLIENT_ID|SECRET|URL|REDIRECT_URI|ENABLED)"
)


def _providers(sources: Mapping[str, str]) -> tuple[ProviderConfig, ...]:
    """The OAuth providers configured by `MADBASE_AUTH_<PROVIDER>_*` variables.

    A provider counts once its CLIENT_ID is set (a comma-separated list: the first is the OAuth
    client, all are accepted as id_token audiences); ENABLED=false turns it off again.
    """
    found: dict[str, dict[str, str]] = {}
    for key, raw in sources.items():
        match = _PROVIDER_SETTING.fullmatch(key)
        if match is None:
            continue
        name, field = match[1].lower(), match[2].lower()
        if name not in PROVIDERS:
            if field == "client_id":
                known = ", ".join(sorted(PROVIDERS))
                raise ConfigError(f"{key}: unknown OAuth provider {name!r} (known: {known})")
            continue
        found.setdefault(name, {})[field] = raw.strip()
    providers = []
    for name, fields in sorted(found.items()):
        client_ids = tuple(c.strip() for c in fields.get("client_id", "").split(",") if c.strip())
        if not client_ids:
            continue
        enabled = True
        if "enabled" in fields:
            try:
                enabled = _bool(fields["enabled"])
            except ValueError as err:
                raise ConfigError(f"MADBASE_AUTH_{name.upper()}_ENABLED: {err}") from None
        providers.append(
            ProviderConfig(
                name=name,
                client_ids=client_ids,
                secret=fields.get("secret", ""),
                url=fields.get("url", ""),
                redirect_uri=fields.get("redirect_uri", ""),
                enabled=enabled,
            )
        )
    return tuple(providers)


def parse_dotenv(text: str) -> dict[str, str]:
    """Parse `.env` text: `KEY=value` lines, `#` comments, optional `export`, quoted values.

    >>> parse_dotenv('# c\\nexport MADBASE_PORT=9000\\nMADBASE_HOST="0.0.0.0"\\n')
    {'MADBASE_PORT': '9000', 'MADBASE_HOST': '0.0.0.0'}
    """
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.strip().removeprefix("export ").strip()
        value = value.strip()
        quote = value[:1]
        end = value.find(quote, 1) if quote in ("'", '"') else -1
        if end > 0 and value[end + 1 :].lstrip().startswith("#"):  # "quoted" # comment
            value = value[1:end]
        elif len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        out[key] = value
    return out


def _int(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError(f"expected a whole number from {low} to {high}, got {raw!r}") from None
        if not low <= value <= high:
            raise ValueError(f"expected a whole number from {low} to {high}, got {value}")
        return value

    return parse


def _seconds(raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError(f"expected a number of seconds, got {raw!r}") from None
    if not 0 < value <= 86400:
        raise ValueError(f"expected seconds between 0 and 86400, got {raw!r}")
    return value


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


def _text(raw: str) -> str:
    if not raw.strip():
        raise ValueError("must not be empty")
    return raw.strip()


def _secret(raw: str) -> str:
    if len(raw) < 32:
        raise ValueError("must be at least 32 characters long")
    return raw


def _database_url(raw: str) -> str:
    if not raw.startswith(("postgres://", "postgresql://")) and "=" not in raw:
        raise ValueError("expected a postgresql:// URL or a libpq key=value string")
    return raw


def _schemas(raw: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in raw.split(",") if name.strip())
    if not names:
        raise ValueError("expected a comma-separated list of schema names")
    return names


def _networks(raw: str) -> tuple[str, ...]:
    # Checked here so a typo stops `madbase serve` with the setting's name; kept as text.
    return tuple(str(net) for net in parse_networks(raw))


def _openapi_mode(raw: str) -> str:
    value = raw.strip().lower()
    if value not in ("follow-privileges", "ignore-privileges", "disabled"):
        raise ValueError(f"expected follow-privileges, ignore-privileges or disabled, got {raw!r}")
    return value


def _http_parser(raw: str) -> str:
    value = raw.strip().lower()
    if value not in ("auto", "h11", "httptools"):
        raise ValueError(f"expected auto, h11 or httptools, got {raw!r}")
    return value


def _url(raw: str) -> str:
    value = raw.strip().rstrip("/")
    if not value.startswith(("http://", "https://")) or len(value) <= len("https://"):
        raise ValueError(f"expected an http:// or https:// URL, got {raw!r}")
    return value


def _urls(raw: str) -> tuple[str, ...]:
    patterns = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not patterns:
        raise ValueError("expected a comma-separated list of URLs or URL globs")
    return patterns


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}, got {raw!r}")
        return value

    return parse


def _log_level(raw: str) -> str:
    value = raw.strip().lower()
    if value not in ("debug", "info", "warning", "error"):
        raise ValueError(f"expected debug, info, warning or error, got {raw!r}")
    return value


@final
@attrs.frozen
class _Setting:
    name: str
    parse: Callable[[str], object]
    group: str = ""

    @property
    def env(self) -> str:
        return "MADBASE_" + self.name.upper()


_SETTINGS: Final[Sequence[_Setting]] = (
    _Setting("data_dir", lambda raw: Path(_text(raw))),
    _Setting("host", _text),
    _Setting("port", _int(0, 65535)),
    _Setting("database_url", _database_url),
    _Setting("jwt_secret", _secret),
    _Setting("jwt_aud", _text),
    _Setting("public_url", _text),
    _Setting("log_level", _log_level),
    # Each worker holds its own pool (db_pool_size connections) plus one listening connection;
    # the embedded Postgres allows 100 connections.
    _Setting("workers", _int(1, 64)),
    _Setting("db_schemas", _schemas),
    _Setting("pg_fsync", _bool),
    _Setting("auth_rate_limit_token", _int(0, 1_000_000_000)),
    _Setting("auth_rate_limit_verify", _int(0, 1_000_000_000)),
    _Setting("auth_rate_limit_otp", _int(0, 1_000_000_000)),
    _Setting("auth_rate_limit_anonymous", _int(0, 1_000_000_000)),
    _Setting("auth_rate_limit_mfa", _int(0, 1_000_000_000)),
    _Setting("auth_rate_limit_address", _int(0, 1_000_000_000)),
    _Setting("auth_rate_limit_email_sent", _int(0, 1_000_000_000)),
    _Setting("trusted_proxies", _networks),
    _Setting("db_plan_enabled", _bool),
    _Setting("db_max_rows", _int(1, 2**62)),
    _Setting("openapi_mode", _openapi_mode),
    _Setting("auth_manual_linking_enabled", _bool),
    _Setting("http_max_head_bytes", _int(1024, 1024 * 1024), "http"),
    _Setting("http_max_body_bytes", _int(1024, 1 << 40), "http"),
    _Setting("http_read_timeout", _seconds, "http"),
    _Setting("http_keepalive_timeout", _seconds, "http"),
    _Setting("http_shutdown_timeout", _seconds, "http"),
    _Setting("http_max_connections", _int(1, 1_000_000), "http"),
    _Setting("http_parser", _http_parser, "http"),
    _Setting("db_pool_size", _int(1, 1000), "db"),
    _Setting("db_connect_timeout", _seconds, "db"),
    _Setting("db_acquire_timeout", _seconds, "db"),
    _Setting("db_query_timeout", _seconds, "db"),
    _Setting("db_prepared_statements", _bool, "db"),
    _Setting("site_url", _url),
    _Setting("mailer", _choice("outbox", "smtp")),
    _Setting("mailer_outbox", lambda raw: Path(_text(raw))),
    _Setting("smtp_host", _text, "smtp"),
    _Setting("smtp_port", _int(1, 65535), "smtp"),
    _Setting("smtp_user", _text, "smtp"),
    _Setting("smtp_password", _text, "smtp"),
    _Setting("smtp_sender", _text, "smtp"),
    _Setting("smtp_sender_name", _text, "smtp"),
    _Setting("smtp_tls", _choice("starttls", "tls", "off"), "smtp"),
    _Setting("smtp_timeout", _seconds, "smtp"),
    _Setting("auth_autoconfirm", _bool, "auth"),
    _Setting("auth_redirect_urls", _urls, "auth"),
    _Setting("auth_otp_expiry", _int(60, 7 * 86400), "auth"),
    _Setting("auth_email_max_frequency", _int(0, 86400), "auth"),
    _Setting("auth_secure_email_change", _bool, "auth"),
    _Setting("auth_secure_password_change", _bool, "auth"),
    _Setting("auth_phone", _bool, "auth"),
    _Setting("auth_password_min_length", _int(6, 72), "auth"),
    _Setting("auth_password_required_characters", _text, "auth"),
    _Setting("auth_jwt_expiry", _int(30, 604800), "auth"),
    _Setting("auth_disable_signup", _bool, "auth"),
    _Setting("auth_anonymous_users", _bool, "auth"),
    _Setting("auth_refresh_token_reuse_interval", _int(0, 3600), "auth"),
)

# Settings groups: `<group>_<name>` settings fill the attrs class of `Config.<group>`.
_GROUPS: Final[dict[str, Callable[..., object]]] = {
    "http": HttpSettings,
    "db": DbSettings,
    "smtp": SmtpSettings,
    "auth": AuthConfig,
}


def add_flags(parser: argparse.ArgumentParser) -> None:
    """Add one `--flag` per setting to `parser` (values stay strings until `from_sources`)."""
    for setting in _SETTINGS:
        parser.add_argument(
            f"--{setting.name.replace('_', '-')}",
            dest=setting.name,
            default=None,
            metavar="VALUE",
            help=f"(env {setting.env})",
        )


def setting_names() -> tuple[str, ...]:
    """Names of every setting, as flags use them with underscores."""
    return tuple(s.name for s in _SETTINGS)


def rate_limits_off() -> dict[str, str]:
    """Environment that switches every `/auth/v1` rate limit off (0), for tests and benchmarks."""
    return {s.env: "0" for s in _SETTINGS if s.name.startswith("auth_rate_limit_")}
