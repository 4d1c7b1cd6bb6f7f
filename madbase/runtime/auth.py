"""`/auth/v1`: drives the protocol's auth flows against the project's pool, hasher and CSPRNG.

Everything GoTrue-shaped (routing, SQL, statuses, bodies) is `madbase.protocol.auth`'s; this
module only carries out the commands a flow yields: transactions on the pool, argon2id hashing and
password checks in worker threads (bounded by a `CapacityLimiter`, default 2 for the 2-core
machine), random bytes, and HTTP requests to OAuth providers (httpx on trio, one deadline per
request, no redirects followed; GETs marked cacheable are answered from a small cache).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final, final

import argon2
import attrs
import bcrypt
import httpx
import trio

from madbase.config import Config
from madbase.protocol.auth import (
    MAIL_QUOTA_EXCEEDED,
    AuthAnswer,
    AuthCommand,
    AuthLimits,
    AuthSettings,
    CheckPassword,
    DrawRandom,
    ExternalSettings,
    Flow,
    HashPassword,
    HashScheme,
    HttpFailure,
    HttpRequest,
    HttpResponse,
    MailSettings,
    RateLimiter,
    RateLimits,
    RunTransaction,
    SendMail,
    SendSms,
    SmsNotSent,
    auth_answer,
    hash_scheme,
    parse_networks,
    parse_required_characters,
    render_auth_refusal,
)
from madbase.protocol.http import Dispatch, Mount, Request, Response, Service
from madbase.protocol.identity import BearerVerifier
from madbase.runtime import service
from madbase.runtime.db import Pool
from madbase.runtime.mailer import Mailer, MailerError, OutboxMailer, SmsSender, SmtpMailer

if TYPE_CHECKING:
    from madbase.runtime.project import Project

__all__ = [
    "ARGON2_MEMORY_KIB",
    "ARGON2_PARALLELISM",
    "ARGON2_TIME_COST",
    "SERVICE",
    "AuthService",
    "auth_service",
    "mailer_for",
]

# argon2id as the OWASP Password Storage Cheat Sheet's first configuration: 19 MiB, 2 passes,
# one lane. ~21 ms of one core per hash here, where argon2-cffi's defaults (RFC 9106's
# low-memory profile, 64 MiB, t=3, p=4) cost ~180 ms of CPU and capped sign-ins on a 2-core
# machine near 10/s. Hashes made with other parameters still verify. `steps.DUMMY_HASH` must use
# these parameters (tests/runtime/test_auth_service.py checks it).
ARGON2_TIME_COST: Final = 2
ARGON2_MEMORY_KIB: Final = 19456
ARGON2_PARALLELISM: Final = 1

log = logging.getLogger(__name__)

# Worker threads hashing at once: one per core of the 2-core reference machine. argon2id with
# argon2-cffi's defaults takes 64 MiB and ~50 ms per hash, so this also caps memory.
DEFAULT_HASH_THREADS = 2
# Seconds a request to an OAuth provider may take (GoTrue: GOTRUE_INTERNAL_HTTP_TIMEOUT, 10 s).
DEFAULT_PROVIDER_TIMEOUT = 10.0
# Answers of a provider kept at most (discovery documents and JWKS: a few per provider).
_CACHE_ENTRIES = 64
# Bytes of a provider's answer read at most (JWKS and user info are a few KiB).
_MAX_PROVIDER_BODY = 1024 * 1024


@final
class AuthService:
    """The `/auth/v1` service of one project (`App.services[Service.AUTH]`)."""

    def __init__(
        self,
        *,
        pool: Pool,
        secret: str,
        limits: AuthLimits,
        site_url: str,
        bearer: BearerVerifier | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        random: Callable[[int], bytes] = secrets.token_bytes,
        hash_limiter: trio.CapacityLimiter | None = None,
        autoconfirm: bool = True,
        rate_limits: RateLimits | None = None,
        external: ExternalSettings | None = None,
        uri_allow_list: tuple[str, ...] = (),
        http_client: httpx.AsyncClient | None = None,
        provider_timeout: float = DEFAULT_PROVIDER_TIMEOUT,
        mail: MailSettings | None = None,
        mailer: Mailer | None = None,
        sms: SmsSender | None = None,
    ) -> None:
        self._pool = pool
        self._settings = AuthSettings(
            limits=limits,
            secret=secret,
            site_url=site_url,
            autoconfirm=autoconfirm,
            uri_allow_list=uri_allow_list,
            external=external or ExternalSettings(),
            mail=mail or MailSettings(external_url=limits.issuer),
            bearer=bearer or BearerVerifier(secret),
        )
        self._http = http_client
        self._provider_timeout = provider_timeout
        self._cache: dict[str, tuple[float, HttpResponse]] = {}
        self._mailer = mailer
        self._sms = sms
        self._clock = clock
        self._random = random
        self._hash_limiter = hash_limiter or trio.CapacityLimiter(DEFAULT_HASH_THREADS)
        self._hasher = argon2.PasswordHasher(
            time_cost=ARGON2_TIME_COST,
            memory_cost=ARGON2_MEMORY_KIB,
            parallelism=ARGON2_PARALLELISM,
        )
        # None: no rate limits (tests that drive the flows in-process); `serve` always passes some.
        self._limiter = RateLimiter(rate_limits) if rate_limits is not None else None

    async def __call__(self, request: Request, dispatch: Dispatch) -> Response:
        """Answer one request whose path is `/auth/v1` + `dispatch.subpath`."""
        if self._limiter is not None:
            # Sessions and audit entries record the client behind trusted proxies.
            client = self._limiter.client(request)
            refused = self._limiter.admit(
                request, dispatch.subpath, now=trio.current_time(), client=client
            )
            if refused is not None:
                return refused
            request = attrs.evolve(request, client=client)
        flow = auth_answer(
            request,
            dispatch.subpath,
            self._settings,
            now=self._clock(),
            request_id=dispatch.request_id,
            identity=dispatch.identity,
        )
        answer = await self._drive(flow)
        if answer.failure is not None:
            # The whole cause, for the operator; the client got GoTrue's generic 500. The path
            # only: a query string may carry tokens.
            log.error(
                "%s /auth/v1%s failed: %s",
                request.method,
                dispatch.subpath,
                answer.failure,
                extra={"request_id": dispatch.request_id},
            )
        return answer.response

    async def _drive(self, flow: Flow[AuthAnswer]) -> AuthAnswer:
        result: object = None
        try:
            while True:
                command = flow.send(result)
                result = await self._execute(command)
        except StopIteration as stop:
            answer: AuthAnswer = stop.value
            return answer

    async def _execute(self, command: AuthCommand) -> object:
        match command:
            case RunTransaction(tx=tx):
                return await self._pool.run(tx)
            case HashPassword(password=password):
                return await trio.to_thread.run_sync(
                    self._hasher.hash, password, limiter=self._hash_limiter
                )
            case CheckPassword(encrypted_password=encoded, password=password):
                return await trio.to_thread.run_sync(
                    self._check, encoded, password, limiter=self._hash_limiter
                )
            case DrawRandom(size=size):
                return self._random(size)
            case HttpRequest():
                return await self._fetch(command)
            case SendMail():
                return await self._send(command)
            case SendSms():
                return await self._text(command)

    async def _fetch(self, request: HttpRequest) -> HttpResponse | HttpFailure:
        """Send `request` to a provider; network failures and timeouts become `HttpFailure`."""
        cacheable = request.method == "GET" and request.cache_seconds > 0
        if cacheable:
            cached = self._cache.get(request.url)
            if cached is not None and cached[0] > trio.current_time():
                return cached[1]
        if self._http is None:
            # Created lazily: most projects never talk to a provider.
            self._http = httpx.AsyncClient(follow_redirects=False, trust_env=False)
        try:
            with trio.fail_after(self._provider_timeout):
                async with self._http.stream(
                    request.method,
                    request.url,
                    headers=list(request.headers),
                    content=request.body or None,
                    timeout=self._provider_timeout,
                ) as answer:
                    chunks: list[bytes] = []
                    size = 0
                    # Read to the end (within the deadline) but keep at most the limit: leaving
                    # httpx's nested stream generators half-consumed leaks them.
                    async for chunk in answer.aiter_bytes():
                        size += len(chunk)
                        if size <= _MAX_PROVIDER_BODY:
                            chunks.append(chunk)
        except (httpx.HTTPError, trio.TooSlowError, ValueError) as err:
            return HttpFailure(reason=f"{type(err).__name__}: {request.method} {request.url}")
        if size > _MAX_PROVIDER_BODY:
            return HttpFailure(reason=f"answer too large: {request.url}")
        response = HttpResponse(
            status=answer.status_code,
            headers=tuple((k.lower(), v) for k, v in answer.headers.items()),
            body=b"".join(chunks),
        )
        if cacheable and 200 <= answer.status_code < 300:
            if len(self._cache) >= _CACHE_ENTRIES:
                self._cache.clear()
            self._cache[request.url] = (trio.current_time() + request.cache_seconds, response)
        return response

    async def aclose(self) -> None:
        """Close the HTTP client to providers, if one was opened."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _text(self, message: SendSms) -> str | SmsNotSent:
        """Send a text message: its id, or why not (logged here, without the number)."""
        if self._sms is None:
            return SmsNotSent(reason="no SMS sender configured")
        try:
            return await self._sms.send_sms(message)
        except MailerError as err:
            log.warning("%s SMS not sent: %s", message.kind, err)
            return SmsNotSent(reason="the SMS could not be sent")

    async def _send(self, message: SendMail) -> str | None:
        """Deliver a mail; the reason it failed (logged here, never sent to the client)."""
        if self._limiter is not None and not self._limiter.take_mail(now=trio.current_time()):
            log.warning("hourly mail quota used up: %s mail not sent", message.kind)
            return MAIL_QUOTA_EXCEEDED
        if self._mailer is None:
            log.warning("no mailer configured: %s mail to a user was not sent", message.kind)
            return "no mailer configured"
        try:
            await self._mailer.send(message)
        except MailerError as err:
            log.warning("%s mail not delivered: %s", message.kind, err)
            return str(err)
        return None

    def _check(self, encoded: str, password: str) -> bool:
        """Verify by scheme (in a worker thread); unknown schemes and no password never match."""
        match hash_scheme(encoded):
            case HashScheme.ARGON2ID | HashScheme.ARGON2I:
                try:
                    return self._hasher.verify(encoded, password)
                except argon2.exceptions.VerificationError:
                    return False
                except argon2.exceptions.InvalidHashError:
                    return False
            case HashScheme.BCRYPT:
                try:
                    return bcrypt.checkpw(
                        password.encode("utf-8", "surrogatepass"), encoded.encode("ascii")
                    )
                except ValueError:
                    return False
            case _:
                return False


def mailer_for(config: Config) -> Mailer:
    """The mailer `config.mailer` names."""
    if config.mailer == "smtp":
        return SmtpMailer(config.smtp)
    return OutboxMailer(config.outbox_dir, sender=config.smtp.sender)


def auth_service(
    config: Config,
    pool: Pool,
    secret: str,
    *,
    url: str | None = None,
    bearer: BearerVerifier | None = None,
) -> AuthService:
    """The `/auth/v1` service as configured; `url` overrides the server's base URL.

    `bearer` checks the access tokens (the project verifier's, shared with the other services);
    None: one for `secret` with the configured audience and the default roles.
    """
    base = url or config.url
    auth = config.auth
    site_url = config.site_url or base
    limits = AuthLimits(
        issuer=f"{base}/auth/v1",
        phone_enabled=auth.phone,
        password_min_length=auth.password_min_length,
        password_required_characters=parse_required_characters(auth.password_required_characters),
        jwt_expiry_seconds=auth.jwt_expiry,
        disable_signup=auth.disable_signup,
        anonymous_users_enabled=auth.anonymous_users,
        refresh_token_reuse_interval_seconds=auth.refresh_token_reuse_interval,
    )
    if config.jwt_aud is not None:  # GoTrue's JWT_AUD: new users' audience, so their tokens pass
        limits = attrs.evolve(limits, audience=config.jwt_aud)
    return AuthService(
        pool=pool,
        secret=secret,
        bearer=bearer or BearerVerifier(secret, audience=config.jwt_aud),
        limits=limits,
        site_url=site_url,
        autoconfirm=auth.autoconfirm,
        uri_allow_list=auth.redirect_urls,
        external=ExternalSettings(
            providers=config.auth_providers,
            redirect_uri=f"{base}/auth/v1/callback",
            manual_linking_enabled=config.auth_manual_linking_enabled,
        ),
        rate_limits=RateLimits(
            token_per_5m=config.auth_rate_limit_token,
            verify_per_5m=config.auth_rate_limit_verify,
            otp_per_5m=config.auth_rate_limit_otp,
            anonymous_per_hour=config.auth_rate_limit_anonymous,
            mfa_per_minute=config.auth_rate_limit_mfa,
            address_per_5m=config.auth_rate_limit_address,
            email_sent_per_hour=config.auth_rate_limit_email_sent,
            trusted_proxies=parse_networks(",".join(config.trusted_proxies)),
        ),
        mail=MailSettings(
            external_url=f"{base}/auth/v1",
            redirect_allow_list=auth.redirect_urls,
            otp_expiry_seconds=auth.otp_expiry,
            max_frequency_seconds=auth.email_max_frequency,
            secure_email_change=auth.secure_email_change,
            password_require_reauthentication=auth.secure_password_change,
            sms_enabled=auth.phone,
        ),
        mailer=mailer_for(config),
        sms=OutboxMailer(config.outbox_dir, sender=config.smtp.sender) if auth.phone else None,
    )


def build(project: Project) -> service.Built:
    """The `/auth/v1` service of `project`, on its auth pool, with the project's verifier."""
    auth = auth_service(
        project.config,
        project.auth_pool,
        project.secrets.jwt_secret,
        url=project.url,
        bearer=project.verifier.bearer,
    )
    return service.Built(handle=auth, aclose=auth.aclose)


# GoTrue answers these without a key; dispatched with the anon role. Browsers reach /authorize,
# /callback and /verify through links and provider redirects, which carry no key (Supabase's Kong
# leaves them open).
_OPEN_PATHS: Final = frozenset({"/health", "/settings", "/authorize", "/callback", "/verify"})

SERVICE = service.Service(
    mount=Mount("/auth/v1", Service.AUTH, open_paths=_OPEN_PATHS),
    render_refusal=render_auth_refusal,
    build=build,
)
