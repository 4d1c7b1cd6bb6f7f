"""Configuration: precedence of flags, environment, `.env` and defaults; validation; `.env` parsing."""

from __future__ import annotations

import argparse
from pathlib import Path

import attrs
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from madbase.config import (
    Config,
    ConfigError,
    DbSettings,
    HttpSettings,
    add_flags,
    parse_dotenv,
    rate_limits_off,
    setting_names,
    unknown_settings,
)

SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"


def env_name(setting: str) -> str:
    return "MADBASE_" + setting.upper()


def flag_name(setting: str) -> str:
    return "--" + setting.replace("_", "-")


# --- precedence -----------------------------------------------------------------------------


def test_from_sources_empty_gives_defaults() -> None:
    config = Config.from_sources({}, {}, {})
    assert config == Config()
    assert config.port == 8000
    assert config.host == "127.0.0.1"
    assert config.data_dir == Path(".madbase")
    assert config.database_url is None
    assert config.jwt_secret is None
    assert config.jwt_aud is None
    assert config.workers == 1
    assert config.http == HttpSettings()
    assert config.db == DbSettings()


@pytest.mark.parametrize(
    ("flags", "environ", "dotenv", "port"),
    [
        ({"port": "1"}, {"MADBASE_PORT": "2"}, {"MADBASE_PORT": "3"}, 1),
        ({}, {"MADBASE_PORT": "2"}, {"MADBASE_PORT": "3"}, 2),
        ({"port": None}, {"MADBASE_PORT": "2"}, {"MADBASE_PORT": "3"}, 2),
        ({}, {}, {"MADBASE_PORT": "3"}, 3),
        ({"port": "1"}, {}, {"MADBASE_PORT": "3"}, 1),
        ({"port": None}, {}, {}, 8000),
    ],
)
def test_from_sources_precedence_flags_env_dotenv_default(
    flags: dict[str, str | None], environ: dict[str, str], dotenv: dict[str, str], port: int
) -> None:
    assert Config.from_sources(environ, dotenv, flags).port == port


def test_from_sources_mixes_sources_per_setting() -> None:
    config = Config.from_sources(
        {"MADBASE_HOST": "0.0.0.0", "MADBASE_DB_POOL_SIZE": "8"},
        {"MADBASE_PORT": "9000", "MADBASE_HOST": "ignored", "MADBASE_LOG_LEVEL": "debug"},
        {"http_read_timeout": "5", "command": "serve", "env_file": ".env"},
    )
    assert config.host == "0.0.0.0"
    assert config.port == 9000
    assert config.log_level == "debug"
    assert config.db.pool_size == 8
    assert config.http.read_timeout == 5.0
    # Untouched settings keep their defaults.
    assert config.http.keepalive_timeout == HttpSettings().keepalive_timeout
    assert config.db.query_timeout == DbSettings().query_timeout


def test_from_sources_never_parses_shadowed_values() -> None:
    config = Config.from_sources(
        {"MADBASE_PORT": "not a port"}, {"MADBASE_PORT": "nor this"}, {"port": "81"}
    )
    assert config.port == 81


def test_from_sources_ignores_unprefixed_environment() -> None:
    assert Config.from_sources({"PORT": "1", "port": "2"}, {"PORT": "3"}, {}).port == 8000


# --- parsed values --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "raw", "read"),
    [
        ("data_dir", " /var/lib/madbase ", lambda c: c.data_dir == Path("/var/lib/madbase")),
        ("host", " 0.0.0.0 ", lambda c: c.host == "0.0.0.0"),
        ("port", " 0 ", lambda c: c.port == 0),
        ("port", "65535", lambda c: c.port == 65535),
        (
            "database_url",
            "postgresql://u:p@h/db",
            lambda c: c.database_url == "postgresql://u:p@h/db",
        ),
        ("database_url", "postgres://h/db", lambda c: c.database_url == "postgres://h/db"),
        ("database_url", "host=/tmp dbname=x", lambda c: c.database_url == "host=/tmp dbname=x"),
        ("jwt_secret", SECRET, lambda c: c.jwt_secret == SECRET),
        ("jwt_secret", " " * 32, lambda c: c.jwt_secret == " " * 32),  # secrets are taken verbatim
        ("jwt_aud", " my-app ", lambda c: c.jwt_aud == "my-app"),
        (
            "public_url",
            "https://api.example.com/",
            lambda c: c.public_url == "https://api.example.com",
        ),
        ("log_level", " DEBUG ", lambda c: c.log_level == "debug"),
        ("log_level", "Warning", lambda c: c.log_level == "warning"),
        ("workers", " 2 ", lambda c: c.workers == 2),
        ("workers", "64", lambda c: c.workers == 64),
        ("pg_fsync", "off", lambda c: c.pg_fsync is False),
        ("pg_fsync", " TRUE ", lambda c: c.pg_fsync is True),
        ("pg_fsync", "0", lambda c: c.pg_fsync is False),
        ("pg_fsync", "yes", lambda c: c.pg_fsync is True),
        ("auth_rate_limit_token", "0", lambda c: c.auth_rate_limit_token == 0),
        ("auth_rate_limit_verify", " 7 ", lambda c: c.auth_rate_limit_verify == 7),
        ("auth_rate_limit_otp", "100000", lambda c: c.auth_rate_limit_otp == 100000),
        ("auth_rate_limit_anonymous", "1", lambda c: c.auth_rate_limit_anonymous == 1),
        ("auth_rate_limit_mfa", "15", lambda c: c.auth_rate_limit_mfa == 15),
        ("auth_rate_limit_address", "3", lambda c: c.auth_rate_limit_address == 3),
        ("auth_password_min_length", "12", lambda c: c.auth.password_min_length == 12),
        (
            "auth_password_required_characters",
            "abc:0123456789",
            lambda c: c.auth.password_required_characters == "abc:0123456789",
        ),
        ("auth_jwt_expiry", "600", lambda c: c.auth.jwt_expiry == 600),
        ("auth_disable_signup", "true", lambda c: c.auth.disable_signup is True),
        ("auth_anonymous_users", "on", lambda c: c.auth.anonymous_users is True),
        (
            "auth_refresh_token_reuse_interval",
            "0",
            lambda c: c.auth.refresh_token_reuse_interval == 0,
        ),
        ("auth_rate_limit_email_sent", "0", lambda c: c.auth_rate_limit_email_sent == 0),
        (
            "trusted_proxies",
            "10.0.0.1/8, ::1",
            lambda c: c.trusted_proxies == ("10.0.0.0/8", "::1/128"),
        ),
        ("trusted_proxies", "", lambda c: c.trusted_proxies == ()),
        ("db_plan_enabled", "on", lambda c: c.db_plan_enabled is True),
        ("db_max_rows", "1000", lambda c: c.db_max_rows == 1000),
        ("openapi_mode", " Disabled ", lambda c: c.openapi_mode == "disabled"),
        ("openapi_mode", "ignore-privileges", lambda c: c.openapi_mode == "ignore-privileges"),
        ("http_max_head_bytes", "1024", lambda c: c.http.max_head_bytes == 1024),
        ("http_max_head_bytes", "1048576", lambda c: c.http.max_head_bytes == 1048576),
        ("http_max_body_bytes", "1_000_000", lambda c: c.http.max_body_bytes == 1_000_000),
        ("http_read_timeout", "0.5", lambda c: c.http.read_timeout == 0.5),
        ("http_keepalive_timeout", "86400", lambda c: c.http.keepalive_timeout == 86400.0),
        ("http_shutdown_timeout", "1e1", lambda c: c.http.shutdown_timeout == 10.0),
        ("http_max_connections", "1", lambda c: c.http.max_connections == 1),
        ("http_parser", "HTTPTOOLS", lambda c: c.http.parser == "httptools"),
        ("http_parser", " h11 ", lambda c: c.http.parser == "h11"),
        ("http_parser", "auto", lambda c: c.http.parser == "auto"),
        ("db_pool_size", "1000", lambda c: c.db.pool_size == 1000),
        ("db_connect_timeout", "2", lambda c: c.db.connect_timeout == 2.0),
        ("db_acquire_timeout", "0.001", lambda c: c.db.acquire_timeout == 0.001),
        ("db_query_timeout", "120", lambda c: c.db.query_timeout == 120.0),
        ("db_prepared_statements", "off", lambda c: c.db.prepared_statements is False),
        ("site_url", "https://app.example/", lambda c: c.site_url == "https://app.example"),
        ("mailer", " SMTP ", lambda c: c.mailer == "smtp"),
        ("mailer_outbox", "/tmp/box", lambda c: c.outbox_dir == Path("/tmp/box")),
        ("smtp_host", "mail.example", lambda c: c.smtp.host == "mail.example"),
        ("smtp_port", "465", lambda c: c.smtp.port == 465),
        ("smtp_user", "ann", lambda c: c.smtp.user == "ann"),
        ("smtp_password", "pw", lambda c: c.smtp.password == "pw"),
        ("smtp_sender", "no@x.example", lambda c: c.smtp.sender == "no@x.example"),
        ("smtp_sender_name", "MadBase", lambda c: c.smtp.sender_name == "MadBase"),
        ("smtp_tls", "TLS", lambda c: c.smtp.tls == "tls"),
        ("smtp_timeout", "3", lambda c: c.smtp.timeout == 3.0),
        ("auth_autoconfirm", "false", lambda c: c.auth.autoconfirm is False),
        (
            "auth_redirect_urls",
            "http://a.example/**, myapp://cb",
            lambda c: c.auth.redirect_urls == ("http://a.example/**", "myapp://cb"),
        ),
        ("auth_otp_expiry", "3600", lambda c: c.auth.otp_expiry == 3600),
        ("auth_email_max_frequency", "0", lambda c: c.auth.email_max_frequency == 0),
        ("auth_secure_email_change", "off", lambda c: c.auth.secure_email_change is False),
        ("auth_secure_password_change", "on", lambda c: c.auth.secure_password_change is True),
        ("auth_phone", "yes", lambda c: c.auth.phone is True),
    ],
)
@pytest.mark.parametrize("source", ["flag", "env", "dotenv"])
def test_from_sources_parses_each_setting(
    setting: str, raw: str, read: object, source: str
) -> None:
    flags = {setting: raw} if source == "flag" else {}
    environ = {env_name(setting): raw} if source == "env" else {}
    dotenv = {env_name(setting): raw} if source == "dotenv" else {}
    config = Config.from_sources(environ, dotenv, flags)
    assert read(config)  # type: ignore[operator]


BAD_VALUES = [
    ("data_dir", ""),
    ("data_dir", "   "),
    ("host", ""),
    ("port", "http"),
    ("port", "80.5"),
    ("port", "-1"),
    ("port", "65536"),
    ("port", ""),
    ("database_url", "mysql://localhost/db"),
    ("database_url", ""),
    ("database_url", "postgresql://u:pw@[::1"),
    ("database_url", "postgresql://h/db?no_such_option=1"),
    ("database_url", "host=h no_such_option=1"),
    ("jwt_secret", "too-short"),
    ("jwt_secret", "x" * 31),
    ("jwt_aud", ""),
    ("jwt_aud", "   "),
    ("public_url", " "),
    ("public_url", "foo"),
    ("public_url", "localhost:8000"),
    ("public_url", "ftp://files.example"),
    ("public_url", "http://"),
    ("public_url", "https://:443"),
    ("public_url", "http://api.example:port"),
    ("public_url", "http://api example"),
    ("db_schemas", ""),
    ("db_schemas", " , ,"),
    ("log_level", "verbose"),
    ("log_level", ""),
    ("workers", "0"),
    ("workers", "65"),
    ("workers", "two"),
    ("pg_fsync", "maybe"),
    ("pg_fsync", ""),
    ("auth_rate_limit_token", "-1"),
    ("auth_rate_limit_verify", "ten"),
    ("auth_rate_limit_otp", "1.5"),
    ("auth_rate_limit_anonymous", ""),
    ("auth_rate_limit_mfa", "1000000001"),
    ("auth_rate_limit_address", "many"),
    ("auth_password_min_length", "5"),
    ("auth_password_required_characters", " "),
    ("auth_jwt_expiry", "10"),
    ("auth_disable_signup", "nope"),
    ("auth_anonymous_users", "2"),
    ("auth_refresh_token_reuse_interval", "-1"),
    ("auth_rate_limit_email_sent", "-3"),
    ("trusted_proxies", "10.0.0.0/33"),
    ("trusted_proxies", "proxy.local"),
    ("db_plan_enabled", "sometimes"),
    ("db_max_rows", "0"),
    ("db_max_rows", "many"),
    ("openapi_mode", "on"),
    ("http_max_head_bytes", "1023"),
    ("http_max_head_bytes", "1048577"),
    ("http_max_body_bytes", "1023"),
    ("http_max_body_bytes", "1e6"),
    ("http_read_timeout", "0"),
    ("http_read_timeout", "-5"),
    ("http_read_timeout", "nan"),
    ("http_read_timeout", "inf"),
    ("http_keepalive_timeout", "86401"),
    ("http_keepalive_timeout", "soon"),
    ("http_shutdown_timeout", ""),
    ("http_max_connections", "0"),
    ("http_max_connections", "1000001"),
    ("http_parser", "llhttp"),
    ("http_parser", ""),
    ("db_pool_size", "0"),
    ("db_pool_size", "1001"),
    ("db_pool_size", "four"),
    ("db_connect_timeout", "0"),
    ("db_acquire_timeout", "-inf"),
    ("db_query_timeout", "1 minute"),
    ("db_prepared_statements", "sometimes"),
    ("auth_manual_linking_enabled", "maybe"),
    ("site_url", "localhost:3000"),
    ("site_url", "https://"),
    ("mailer", "sendmail"),
    ("mailer_outbox", " "),
    ("smtp_host", ""),
    ("smtp_port", "0"),
    ("smtp_user", " "),
    ("smtp_password", ""),
    ("smtp_sender", ""),
    ("smtp_sender_name", ""),
    ("smtp_tls", "ssl"),
    ("smtp_timeout", "0"),
    ("auth_autoconfirm", "sometimes"),
    ("auth_redirect_urls", " , "),
    ("auth_otp_expiry", "59"),
    ("auth_email_max_frequency", "-1"),
    ("auth_secure_email_change", ""),
    ("auth_secure_password_change", "2"),
    ("auth_phone", "sms"),
]


def test_bad_values_cover_every_setting() -> None:
    assert {setting for setting, _ in BAD_VALUES} == set(setting_names())


@pytest.mark.parametrize(("setting", "raw"), BAD_VALUES)
@pytest.mark.parametrize("source", ["flag", "env", "dotenv"])
def test_from_sources_bad_value_names_setting(setting: str, raw: str, source: str) -> None:
    flags = {setting: raw} if source == "flag" else {}
    environ = {env_name(setting): raw} if source == "env" else {}
    dotenv = {env_name(setting): raw} if source == "dotenv" else {}
    where = {
        "flag": flag_name(setting),
        "env": env_name(setting),
        "dotenv": f"{env_name(setting)} (in .env)",
    }[source]
    with pytest.raises(ConfigError) as info:
        Config.from_sources(environ, dotenv, flags)
    message = str(info.value)
    assert message.startswith(f"{where}: ")
    assert len(message) > len(where) + 2  # says what is wrong, too
    assert "\n" not in message  # the CLI prints one line
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"flags": {"port": "x"}}, "--port: expected a whole number from 0 to 65535, got 'x'"),
        (
            {"environ": {"MADBASE_PORT": "70000"}},
            "MADBASE_PORT: expected a whole number from 0 to 65535, got 70000",
        ),
        (
            {"dotenv": {"MADBASE_PORT": "x"}},
            "MADBASE_PORT (in .env): expected a whole number from 0 to 65535, got 'x'",
        ),
        ({"flags": {"jwt_secret": "short"}}, "--jwt-secret: must be at least 32 characters long"),
        (
            {"flags": {"http_read_timeout": "0"}},
            "--http-read-timeout: expected seconds between 0 and 86400, got '0'",
        ),
        (
            {"environ": {"MADBASE_PG_FSYNC": "maybe"}},
            "MADBASE_PG_FSYNC: expected true or false, got 'maybe'",
        ),
        ({"environ": {"MADBASE_HOST": " "}}, "MADBASE_HOST: must not be empty"),
    ],
)
def test_config_error_messages(source: dict[str, dict[str, str]], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_sources(
            source.get("environ", {}), source.get("dotenv", {}), source.get("flags", {})
        )
    assert str(info.value) == message


def test_config_error_secret_value_not_echoed() -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_sources({"MADBASE_JWT_SECRET": "hunter2"}, {}, {})
    assert "hunter2" not in str(info.value)


def test_config_error_names_first_bad_setting() -> None:
    with pytest.raises(ConfigError, match=r"^MADBASE_PORT: "):
        Config.from_sources({"MADBASE_PORT": "x", "MADBASE_DB_POOL_SIZE": "0"}, {}, {})


def test_config_error_is_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


# --- Config values --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "url"),
    [
        ({}, "http://127.0.0.1:8000"),
        ({"host": "0.0.0.0", "port": 9000}, "http://127.0.0.1:9000"),
        ({"host": "::"}, "http://127.0.0.1:8000"),
        ({"host": ""}, "http://127.0.0.1:8000"),
        ({"host": "::1"}, "http://[::1]:8000"),
        ({"host": "example.test", "port": 80}, "http://example.test:80"),
        ({"public_url": "https://api.example.com/"}, "https://api.example.com"),
        ({"public_url": "https://x.test/base//", "host": "0.0.0.0"}, "https://x.test/base"),
        ({"public_url": ""}, "http://127.0.0.1:8000"),
    ],
)
def test_config_url(kwargs: dict[str, object], url: str) -> None:
    assert Config(**kwargs).url == url  # type: ignore[arg-type]


def test_config_repr_hides_secrets() -> None:
    config = Config(database_url="postgresql://u:hunter2@h/db", jwt_secret=SECRET)
    assert "hunter2" not in repr(config)
    assert SECRET not in repr(config)


def test_add_flags_defines_one_flag_per_setting() -> None:
    parser = argparse.ArgumentParser()
    add_flags(parser)
    defaults = vars(parser.parse_args([]))
    assert defaults == dict.fromkeys(setting_names())
    flags = vars(
        parser.parse_args(["--port", "9001", "--http-read-timeout", "3", "--pg-fsync", "off"])
    )
    config = Config.from_sources({}, {}, flags)
    assert (config.port, config.http.read_timeout, config.pg_fsync) == (9001, 3.0, False)


# --- .env -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        ("\n\n   \n", {}),
        ("# only a comment\n", {}),
        ("   # indented comment\nA=1", {"A": "1"}),
        ("A=1\nB=2\n", {"A": "1", "B": "2"}),
        ("A=1\r\nB=2\r\n", {"A": "1", "B": "2"}),
        ("export A=1", {"A": "1"}),
        ("export   A = 1 ", {"A": "1"}),
        ("A = spaced value ", {"A": "spaced value"}),
        ("A=", {"A": ""}),
        ("A=a=b=c", {"A": "a=b=c"}),
        ('A="double quoted"', {"A": "double quoted"}),
        ("A='single quoted'", {"A": "single quoted"}),
        ('A=""', {"A": ""}),
        ('A="', {"A": '"'}),
        ("A='unterminated", {"A": "'unterminated"}),
        ("A=\"mixed'", {"A": "\"mixed'"}),
        ('A="  keep inner spaces  "', {"A": "  keep inner spaces  "}),
        ("A=value # trailing comment", {"A": "value"}),
        ("A=value#not-a-comment", {"A": "value#not-a-comment"}),
        ('A="quoted # not a comment"', {"A": "quoted # not a comment"}),
        ('A="0.0.0.0" # bind all interfaces', {"A": "0.0.0.0"}),
        ("A='x'   # comment", {"A": "x"}),
        ('A="x"# comment', {"A": "x"}),
        ('A="a # b" # c', {"A": "a # b"}),
        ('A="a" # say "b"', {"A": "a"}),
        ("no equals sign here", {}),
        ("A=1\nA=2", {"A": "2"}),
        ("MADBASE_JWT_SECRET=abc#def==", {"MADBASE_JWT_SECRET": "abc#def=="}),
    ],
)
def test_parse_dotenv(text: str, expected: dict[str, str]) -> None:
    assert parse_dotenv(text) == expected


def test_parse_dotenv_feeds_from_sources() -> None:
    dotenv = parse_dotenv('# local\nexport MADBASE_PORT=9000\nMADBASE_HOST="0.0.0.0" # all\n')
    config = Config.from_sources({}, dotenv, {})
    assert (config.host, config.port) == ("0.0.0.0", 9000)


@given(st.text())
@example('A="')
@example("=")
@example("export =")
def test_parse_dotenv_accepts_any_text(text: str) -> None:
    parsed = parse_dotenv(text)
    for key, value in parsed.items():
        assert key == key.strip()
        assert "=" not in key
        assert "\n" not in key + value


_plain = st.text(
    alphabet=st.characters(codec="ascii", categories=("L", "N"), include_characters="_-./:"),
    min_size=1,
    max_size=20,
)


@given(st.dictionaries(_plain.filter(lambda k: k != "export"), _plain, max_size=5), st.booleans())
def test_parse_dotenv_reads_plain_assignments(values: dict[str, str], quote: bool) -> None:
    text = "\n".join(f'{k}="{v}"' if quote else f"{k}={v}" for k, v in values.items())
    assert parse_dotenv(text) == values


def test_config_db_schemas_is_a_trimmed_list() -> None:
    config = Config.from_sources({"MADBASE_DB_SCHEMAS": " public , api ,"}, {}, {})
    assert config.db_schemas == ("public", "api")
    assert Config.from_sources({}, {}, {}).db_schemas == ("public",)


def test_oauth_providers_from_environment_and_dotenv() -> None:
    environ = {
        "MADBASE_AUTH_GITHUB_CLIENT_ID": "gh-id",
        "MADBASE_AUTH_GITHUB_SECRET": "gh-secret",
        "MADBASE_AUTH_GITHUB_URL": "http://127.0.0.1:9999",
        "MADBASE_AUTH_GOOGLE_CLIENT_ID": "web-id, ios-id",
        "MADBASE_AUTH_GOOGLE_ENABLED": "false",
        "MADBASE_SITE_URL": "http://app.test",
    }
    dotenv = {
        "MADBASE_AUTH_GITHUB_SECRET": "ignored: the environment wins",
        "MADBASE_AUTH_GITLAB_CLIENT_ID": "gl-id",
        "MADBASE_AUTH_GITLAB_REDIRECT_URI": "http://api.test/auth/v1/callback",
        # Settings of a provider without a client id configure nothing.
        "MADBASE_AUTH_DISCORD_SECRET": "s",
    }
    config = Config.from_sources(environ, dotenv, {})
    github, gitlab, google = config.auth_providers
    assert (github.name, github.client_ids, github.secret, github.url) == (
        "github",
        ("gh-id",),
        "gh-secret",
        "http://127.0.0.1:9999",
    )
    assert "gh-secret" not in repr(config)
    assert (gitlab.name, gitlab.redirect_uri, gitlab.enabled) == (
        "gitlab",
        "http://api.test/auth/v1/callback",
        True,
    )
    assert (google.client_ids, google.client_id, google.enabled) == (
        ("web-id", "ios-id"),
        "web-id",
        False,
    )
    assert config.site_url == "http://app.test"


def test_oauth_provider_unknown_or_bad_is_named() -> None:
    with pytest.raises(ConfigError, match="MADBASE_AUTH_MYSPACE_CLIENT_ID: unknown OAuth provider"):
        Config.from_sources({"MADBASE_AUTH_MYSPACE_CLIENT_ID": "x"}, {}, {})
    with pytest.raises(ConfigError, match="MADBASE_AUTH_GITHUB_ENABLED: expected true or false"):
        Config.from_sources(
            {"MADBASE_AUTH_GITHUB_CLIENT_ID": "x", "MADBASE_AUTH_GITHUB_ENABLED": "perhaps"}, {}, {}
        )


@pytest.mark.parametrize("field", ["URL", "REDIRECT_URI"])
@pytest.mark.parametrize("raw", ["github.example", "ftp://github.example", "https://"])
def test_oauth_provider_urls_are_checked(field: str, raw: str) -> None:
    environ = {"MADBASE_AUTH_GITHUB_CLIENT_ID": "x", f"MADBASE_AUTH_GITHUB_{field}": raw}
    with pytest.raises(ConfigError, match=f"^MADBASE_AUTH_GITHUB_{field}: expected an http"):
        Config.from_sources(environ, {}, {})


# --- unknown variables ------------------------------------------------------------------------


def test_unknown_settings_name_the_closest_known_one() -> None:
    environ = {
        "MADBASE_PROT": "9000",
        "MADBASE_DATABSE_URL": "postgresql://h/db",
        "MADBASE_AUTH_GITHUB_SECERT": "s",
        "MADBASE_NOTHING_LIKE_ANY_SETTING_AT_ALL": "1",
        "PATH": "/usr/bin",
    }
    assert unknown_settings(environ, {"MADBASE_HTTP_READTIMEOUT": "5"}) == (
        "unknown setting MADBASE_AUTH_GITHUB_SECERT is ignored; "
        "did you mean MADBASE_AUTH_GITHUB_SECRET?",
        "unknown setting MADBASE_DATABSE_URL is ignored; did you mean MADBASE_DATABASE_URL?",
        "unknown setting MADBASE_NOTHING_LIKE_ANY_SETTING_AT_ALL is ignored",
        "unknown setting MADBASE_PROT is ignored; did you mean MADBASE_PORT?",
        "unknown setting MADBASE_HTTP_READTIMEOUT (in .env) is ignored; "
        "did you mean MADBASE_HTTP_READ_TIMEOUT?",
    )


def test_unknown_settings_knows_every_setting_and_provider_variable() -> None:
    known = {env_name(name): "x" for name in setting_names()}
    for provider in ("GITHUB", "GOOGLE", "KEYCLOAK"):
        for field in ("CLIENT_ID", "SECRET", "URL", "REDIRECT_URI", "ENABLED"):
            known[f"MADBASE_AUTH_{provider}_{field}"] = "x"
    assert unknown_settings(known, known) == ()


# --- where a setting came from ----------------------------------------------------------------


def test_config_origin_names_the_source_of_each_setting() -> None:
    config = Config.from_sources(
        {"MADBASE_HOST": "0.0.0.0"},
        {"MADBASE_DATA_DIR": "/srv/madbase"},
        {"port": "9000", "host": None},
    )
    assert config.origin("port") == "--port"
    assert config.origin("host") == "MADBASE_HOST"
    assert config.origin("data_dir") == "MADBASE_DATA_DIR (in .env)"
    assert config.origin("database_url") == "MADBASE_DATABASE_URL"  # not given: its variable
    assert attrs.evolve(config, port=1234).origin("port") == "--port"


def test_database_url_error_never_repeats_the_password() -> None:
    for raw in (
        "postgresql://admin:hunter2@[::1",
        "postgresql://admin:hun%zzter2@db/app",
        "host=db password=hunter2 x",
    ):
        with pytest.raises(ConfigError) as info:
            Config.from_sources({"MADBASE_DATABASE_URL": raw}, {}, {})
        assert str(info.value).startswith("MADBASE_DATABASE_URL: not a valid connection string: ")
        assert "hunter2" not in str(info.value)
        assert "hun%zz" not in str(info.value)
    with pytest.raises(ConfigError, match='invalid URI query parameter: "sslmod"'):
        Config.from_sources({"MADBASE_DATABASE_URL": "postgresql://h/db?sslmod=require"}, {}, {})


# --- help -----------------------------------------------------------------------------------


def test_add_flags_gives_every_flag_a_help_line_with_its_default() -> None:
    parser = argparse.ArgumentParser()
    add_flags(parser)
    flags = [a for a in parser._actions if a.dest in setting_names()]
    assert len(flags) == len(setting_names())
    for action in flags:
        assert action.help is not None
        what, _, rest = action.help.partition(" (default: ")
        assert what, action.dest
        assert rest.endswith(f"; env {env_name(action.dest)})"), action.help
        assert rest.removesuffix(f"; env {env_name(action.dest)})"), action.help
    helps = {a.dest: a.help for a in flags}
    assert "(default: 8000; env MADBASE_PORT)" in str(helps["port"])
    assert "(default: 10; env MADBASE_HTTP_SHUTDOWN_TIMEOUT)" in str(helps["http_shutdown_timeout"])
    assert "(default: public; env MADBASE_DB_SCHEMAS)" in str(helps["db_schemas"])
    assert "(default: true; env MADBASE_PG_FSYNC)" in str(helps["pg_fsync"])


def test_add_flags_can_define_only_some() -> None:
    parser = argparse.ArgumentParser()
    add_flags(parser, ("data_dir", "port"))
    assert vars(parser.parse_args([])) == {"data_dir": None, "port": None}


def test_rate_limits_off_switches_every_auth_rate_limit_off() -> None:
    config = Config.from_sources(rate_limits_off(), {}, {})
    limits = {f.name for f in attrs.fields(Config) if f.name.startswith("auth_rate_limit_")}
    assert len(limits) >= 7
    assert {name: getattr(config, name) for name in limits} == dict.fromkeys(limits, 0)
    default = Config.from_sources({}, {}, {})
    assert all(getattr(default, name) > 0 for name in limits)
