"""MadBase configuration: one frozen tree merged from flags, environment and a `.env` file.

Precedence, highest first: command-line flags, `MADBASE_*` environment variables, the `.env` file,
defaults. Only `cli.py` reads the process environment; everything else receives a `Config`.
A bad value raises `ConfigError` whose message names the setting, so the CLI can print one line.
"""

from __future__ import annotations

import argparse
import difflib
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Final, final
from urllib.parse import urlsplit

import attrs
import psycopg
from psycopg.conninfo import conninfo_to_dict

from madbase.protocol.auth import PROVIDERS, ProviderConfig
from madbase.protocol.auth.ratelimit import parse_networks

__all__ = [
    "AuthConfig",
    "Config",
    "ConfigError",
    "DbSettings",
    "HttpSettings",
    "SmtpSettings",
    "parse_dotenv",
    "rate_limits_off",
    "unknown_settings",
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
    # (setting, where its value came from: `--port`, `MADBASE_PORT`, `MADBASE_PORT (in .env)`), so
    # that a value failing only at start-up (a port in use) is named as the user gave it.
    origins: tuple[tuple[str, str], ...] = attrs.field(default=(), eq=False, repr=False)

    def origin(self, name: str) -> str:
        """Where setting `name` (`port`, `http_read_timeout`) was given; its variable if nowhere."""
        return dict(self.origins).get(name, "MADBASE_" + name.upper())

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
        origins: list[tuple[str, str]] = []
        for setting in _SETTINGS:
            raw = flags.get(setting.name)
            where = setting.flag
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
            group = setting.group
            target = groups[group] if group else values
            target[setting.name.removeprefix(f"{group}_")] = value
            origins.append((setting.name, where))
        for name, group_class in _GROUPS.items():
            values[name] = group_class(**groups[name])
        values["auth_providers"] = _providers({**dotenv, **environ})
        return cls(**values, origins=tuple(origins))  # type: ignore[arg-type]


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
        for field in ("url", "redirect_uri"):
            if fields.get(field):
                try:
                    _url(fields[field])
                except ValueError as err:
                    raise ConfigError(
                        f"MADBASE_AUTH_{name.upper()}_{field.upper()}: {err}"
                    ) from None
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


def unknown_settings(environ: Mapping[str, str], dotenv: Mapping[str, str]) -> tuple[str, ...]:
    """A warning for each `MADBASE_*` variable that no setting reads, naming the closest one.

    >>> unknown_settings({"MADBASE_PROT": "9000", "HOME": "/root"}, {})
    ('unknown setting MADBASE_PROT is ignored; did you mean MADBASE_PORT?',)
    """
    known = _known_variables()
    warnings = []
    for where, names in (("", environ), (" (in .env)", dotenv)):
        for name in sorted(names):
            if not name.startswith("MADBASE_") or name in known:
                continue
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
            hint = f"; did you mean {close[0]}?" if close else ""
            warnings.append(f"unknown setting {name}{where} is ignored{hint}")
    return tuple(warnings)


def _known_variables() -> frozenset[str]:
    provider_fields = ("CLIENT_ID", "SECRET", "URL", "REDIRECT_URI", "ENABLED")
    return frozenset(s.env for s in _SETTINGS) | {
        f"MADBASE_AUTH_{provider.upper()}_{field}"
        for provider in PROVIDERS
        for field in provider_fields
    }


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
    try:
        conninfo_to_dict(raw)
    except psycopg.ProgrammingError as err:
        reason = _QUOTED.sub(lambda m: _quoted_if_safe(m[1], raw), str(err))
        raise ValueError(f"not a valid connection string: {' '.join(reason.split())}") from None
    return raw


_QUOTED: Final = re.compile(r'"([^"]*)"')


def _quoted_if_safe(fragment: str, raw: str) -> str:
    """libpq quotes the part it could not parse, which may be the whole string or hold the
    password: such a part is not shown again."""
    if "://" in raw:
        secret = raw.partition("://")[2].rpartition("@")[0]  # user:password
    else:
        secret = raw.partition("password")[2]
    if fragment == raw or (secret and (fragment in secret or secret in fragment)):
        return '"…"'
    return f'"{fragment}"'


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
    """An http(s) URL with a host; trailing slashes dropped."""
    value = raw.strip().rstrip("/")
    try:
        parts = urlsplit(value)
        _ = parts.port  # a port that is not a number in range raises here
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or any(c.isspace() for c in value)
    ):
        raise ValueError(f"expected an http:// or https:// URL with a host, got {raw!r}")
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
@attrs.frozen(kw_only=True)
class _Setting:
    name: str
    parse: Callable[[str], object]
    # One line for `--help`, which adds the default (from the attrs classes, or `default`).
    help: str
    metavar: str = "VALUE"
    # How `--help` shows a default that is not a plain value (None, computed, per source).
    default: str | None = None

    @property
    def env(self) -> str:
        return "MADBASE_" + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def group(self) -> str:
        """The `Config` attribute whose class holds this setting ('' for `Config` itself)."""
        for group, cls in _GROUPS.items():
            field = self.name.removeprefix(f"{group}_")
            if field != self.name and field in attrs.fields_dict(cls):
                return group
        return ""

    def help_line(self) -> str:
        """`--help` text: what it does, its default, its variable."""
        if self.default is not None:
            default = self.default
        else:
            group = self.group
            owner = _GROUPS[group] if group else Config
            field = attrs.fields_dict(owner)[
                self.name.removeprefix(f"{group}_") if group else self.name
            ]
            default = _show(field.default)
        return f"{self.help} (default: {default}; env {self.env})"


def _show(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value) or "none"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if value is None or value == "":
        return "none"
    return str(value)


def _s(name: str, parse: Callable[[str], object], help_: str, **kw: str) -> _Setting:
    return _Setting(name=name, parse=parse, help=help_, **kw)


_N: Final = "N"
_SECONDS: Final = "SECONDS"
_BOOL: Final = "true|false"

_SETTINGS: Final[Sequence[_Setting]] = (
    _s(
        "data_dir",
        lambda raw: Path(_text(raw)),
        "directory for the database, keys and mail outbox",
        metavar="DIR",
    ),
    _s("host", _text, "address to listen on (0.0.0.0: every interface)", metavar="HOST"),
    _s("port", _int(0, 65535), "TCP port to listen on (0: any free port)", metavar="PORT"),
    _s(
        "database_url",
        _database_url,
        "PostgreSQL 14+ to use instead of the embedded one",
        metavar="URL",
        default="the embedded server in the data dir",
    ),
    _s(
        "jwt_secret",
        _secret,
        "HS256 secret for tokens and API keys, at least 32 characters",
        metavar="SECRET",
        default="generated, kept in the data dir",
    ),
    _s(
        "jwt_aud",
        _text,
        "audience a token's aud claim must list (PostgREST jwt-aud)",
        metavar="AUD",
        default="none, no audience check",
    ),
    _s(
        "public_url",
        _url,
        "base URL clients use, behind a proxy",
        metavar="URL",
        default="http://HOST:PORT",
    ),
    _s("log_level", _log_level, "log level", metavar="debug|info|warning|error"),
    # Each worker holds its own pool (db_pool_size connections) plus one listening connection;
    # the embedded Postgres allows 100 connections.
    _s("workers", _int(1, 64), "server processes sharing the port, 1 to 64", metavar=_N),
    _s("db_schemas", _schemas, "schemas /rest/v1 exposes, comma-separated", metavar="LIST"),
    _s("pg_fsync", _bool, "embedded Postgres fsync (off only for throwaway data)", metavar=_BOOL),
    _s(
        "auth_rate_limit_token",
        _int(0, 1_000_000_000),
        "/auth/v1/token requests per IP per 5 minutes (0: off)",
        metavar=_N,
    ),
    _s(
        "auth_rate_limit_verify",
        _int(0, 1_000_000_000),
        "/auth/v1/verify requests per IP per 5 minutes (0: off)",
        metavar=_N,
    ),
    _s(
        "auth_rate_limit_otp",
        _int(0, 1_000_000_000),
        "sign-ups, OTP, recover, resend per IP per 5 minutes (0: off)",
        metavar=_N,
    ),
    _s(
        "auth_rate_limit_anonymous",
        _int(0, 1_000_000_000),
        "anonymous sign-ins per IP per hour (0: off)",
        metavar=_N,
    ),
    _s(
        "auth_rate_limit_mfa",
        _int(0, 1_000_000_000),
        "MFA challenges and verifications per IP per minute (0: off)",
        metavar=_N,
    ),
    _s(
        "auth_rate_limit_address",
        _int(0, 1_000_000_000),
        "attempts naming one email or phone per 5 minutes (0: off)",
        metavar=_N,
    ),
    _s(
        "auth_rate_limit_email_sent",
        _int(0, 1_000_000_000),
        "mails the project sends per hour (0: off)",
        metavar=_N,
    ),
    _s(
        "trusted_proxies",
        _networks,
        "proxies whose X-Forwarded-For is believed, addresses or CIDRs",
        metavar="LIST",
    ),
    _s(
        "db_plan_enabled", _bool, "PostgREST db-plan-enabled: EXPLAIN through Accept", metavar=_BOOL
    ),
    _s(
        "db_max_rows",
        _int(1, 2**62),
        "PostgREST db-max-rows: most rows a read returns",
        metavar=_N,
        default="no limit",
    ),
    _s(
        "openapi_mode",
        _openapi_mode,
        "what GET /rest/v1/ lists",
        metavar="follow-privileges|ignore-privileges|disabled",
    ),
    _s(
        "auth_manual_linking_enabled",
        _bool,
        "let users link and unlink identities themselves",
        metavar=_BOOL,
    ),
    _s(
        "http_max_head_bytes",
        _int(1024, 1024 * 1024),
        "largest request line and headers, bytes",
        metavar=_N,
    ),
    _s("http_max_body_bytes", _int(1024, 1 << 40), "largest request body, bytes", metavar=_N),
    _s("http_read_timeout", _seconds, "seconds to receive a whole request", metavar=_SECONDS),
    _s(
        "http_keepalive_timeout",
        _seconds,
        "seconds an idle keep-alive connection stays open",
        metavar=_SECONDS,
    ),
    _s(
        "http_shutdown_timeout",
        _seconds,
        "seconds requests get to finish on SIGTERM",
        metavar=_SECONDS,
    ),
    _s("http_max_connections", _int(1, 1_000_000), "open connections per process", metavar=_N),
    _s(
        "http_parser",
        _http_parser,
        "HTTP/1.1 parser (auto: httptools when importable)",
        metavar="auto|h11|httptools",
    ),
    _s("db_pool_size", _int(1, 1000), "database connections per process", metavar=_N),
    _s("db_connect_timeout", _seconds, "seconds to open a database connection", metavar=_SECONDS),
    _s(
        "db_acquire_timeout",
        _seconds,
        "seconds a request waits for a connection (then 503)",
        metavar=_SECONDS,
    ),
    _s(
        "db_query_timeout",
        _seconds,
        "seconds a request's statements may run (then 504)",
        metavar=_SECONDS,
    ),
    _s(
        "db_prepared_statements",
        _bool,
        "prepare statements (off behind a transaction-mode pooler)",
        metavar=_BOOL,
    ),
    _s(
        "site_url",
        _url,
        "where auth links send users back",
        metavar="URL",
        default="the server's URL",
    ),
    _s(
        "mailer",
        _choice("outbox", "smtp"),
        "how auth mail leaves: files in the outbox, or SMTP",
        metavar="outbox|smtp",
    ),
    _s(
        "mailer_outbox",
        lambda raw: Path(_text(raw)),
        "directory the outbox mailer writes to",
        metavar="DIR",
        default="DATA_DIR/outbox",
    ),
    _s("smtp_host", _text, "SMTP relay host", metavar="HOST"),
    _s("smtp_port", _int(1, 65535), "SMTP relay port", metavar="PORT"),
    _s("smtp_user", _text, "SMTP user name", metavar="USER", default="none"),
    _s("smtp_password", _text, "SMTP password", metavar="PASSWORD", default="none"),
    _s("smtp_sender", _text, "From address of auth mail", metavar="ADDRESS"),
    _s(
        "smtp_sender_name",
        _text,
        "display name of the From address",
        metavar="NAME",
        default="none",
    ),
    _s(
        "smtp_tls",
        _choice("starttls", "tls", "off"),
        "TLS to the relay",
        metavar="starttls|tls|off",
    ),
    _s(
        "smtp_timeout",
        _seconds,
        "seconds for the connection and each SMTP command",
        metavar=_SECONDS,
    ),
    _s(
        "auth_autoconfirm",
        _bool,
        "sign-up signs in at once, without a confirmation mail",
        metavar=_BOOL,
    ),
    _s(
        "auth_redirect_urls",
        _urls,
        "redirect URLs (globs) allowed besides the site URL, comma-separated",
        metavar="LIST",
    ),
    _s(
        "auth_otp_expiry",
        _int(60, 7 * 86400),
        "seconds a mailed link or code stays valid",
        metavar=_SECONDS,
    ),
    _s(
        "auth_email_max_frequency",
        _int(0, 86400),
        "seconds between two mails of a kind to one user",
        metavar=_SECONDS,
    ),
    _s(
        "auth_secure_email_change",
        _bool,
        "confirm an email change from both addresses",
        metavar=_BOOL,
    ),
    _s("auth_secure_password_change", _bool, "password changes need a mailed nonce", metavar=_BOOL),
    _s("auth_phone", _bool, "phone sign-up and SMS codes (written to the outbox)", metavar=_BOOL),
    _s("auth_password_min_length", _int(6, 72), "shortest password accepted", metavar=_N),
    _s(
        "auth_password_required_characters",
        _text,
        "character groups a password needs, split by ':'",
        metavar="GROUPS",
        default="none",
    ),
    _s("auth_jwt_expiry", _int(30, 604800), "seconds an access token is valid", metavar=_SECONDS),
    _s("auth_disable_signup", _bool, "only admins create users", metavar=_BOOL),
    _s(
        "auth_anonymous_users",
        _bool,
        "POST /signup without credentials signs in anonymously",
        metavar=_BOOL,
    ),
    _s(
        "auth_refresh_token_reuse_interval",
        _int(0, 3600),
        "seconds a rotated refresh token still answers",
        metavar=_SECONDS,
    ),
)

# Settings groups: `<group>_<name>` settings fill the attrs class of `Config.<group>`.
_GROUPS: Final[dict[str, type]] = {
    "http": HttpSettings,
    "db": DbSettings,
    "smtp": SmtpSettings,
    "auth": AuthConfig,
}


def add_flags(parser: argparse.ArgumentParser, names: Collection[str] | None = None) -> None:
    """Add a `--flag` per setting (or per one of `names`) to `parser`, values kept as strings.

    Each flag's help says what it does, its default and its variable; `from_sources` parses.
    """
    sections: dict[str, argparse._ArgumentGroup] = {}
    for setting in _SETTINGS:
        if names is not None and setting.name not in names:
            continue
        title = _section(setting)
        if title not in sections:
            sections[title] = parser.add_argument_group(title)
        sections[title].add_argument(
            setting.flag,
            dest=setting.name,
            default=None,
            metavar=setting.metavar,
            help=setting.help_line(),
        )


def _section(setting: _Setting) -> str:
    """The `--help` heading a setting is listed under."""
    name = setting.name
    if setting.group == "db" or name in ("database_url", "pg_fsync"):
        return "database"
    for prefix, title in (
        ("http_", "HTTP server"),
        ("db_", "data API (/rest/v1)"),
        ("openapi_", "data API (/rest/v1)"),
        ("auth_rate_limit_", "auth rate limits"),
        ("auth_", "auth (/auth/v1)"),
        ("site_", "auth (/auth/v1)"),
        ("mailer", "auth mail"),
        ("smtp_", "auth mail"),
    ):
        if name.startswith(prefix):
            return title
    return "server"


def setting_names() -> tuple[str, ...]:
    """Names of every setting, as flags use them with underscores."""
    return tuple(s.name for s in _SETTINGS)


def rate_limits_off() -> dict[str, str]:
    """Environment that switches every `/auth/v1` rate limit off (0), for tests and benchmarks."""
    return {s.env: "0" for s in _SETTINGS if s.name.startswith("auth_rate_limit_")}
