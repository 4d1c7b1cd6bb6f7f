"""`/auth/v1`: drives the protocol's auth flows against the project's pool, hasher and CSPRNG.

Everything GoTrue-shaped (routing, SQL, statuses, bodies) is `madbase.protocol.auth`'s; this
module only carries out the commands a flow yields: transactions on the pool, argon2id hashing and
password checks in worker threads (bounded by a `CapacityLimiter`, default 2 for the 2-core
machine), and random bytes.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import final

import argon2
import bcrypt
import trio

from madbase.protocol.auth import (
    AuthCommand,
    AuthLimits,
    AuthSettings,
    CheckPassword,
    DrawRandom,
    Flow,
    HashPassword,
    HashScheme,
    MailSettings,
    RunTransaction,
    SendMail,
    SendSms,
    SmsNotSent,
    auth_flow,
    hash_scheme,
)
from madbase.protocol.http import Dispatch, Request, Response
from madbase.runtime.db import Pool
from madbase.runtime.mailer import Mailer, MailerError, SmsSender

__all__ = ["AuthService"]

log = logging.getLogger(__name__)

# Worker threads hashing at once: one per core of the 2-core reference machine. argon2id with
# argon2-cffi's defaults takes 64 MiB and ~50 ms per hash, so this also caps memory.
DEFAULT_HASH_THREADS = 2


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
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        random: Callable[[int], bytes] = secrets.token_bytes,
        hash_limiter: trio.CapacityLimiter | None = None,
        autoconfirm: bool = True,
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
            mail=mail or MailSettings(external_url=limits.issuer),
        )
        self._mailer = mailer
        self._sms = sms
        self._clock = clock
        self._random = random
        self._limiter = hash_limiter or trio.CapacityLimiter(DEFAULT_HASH_THREADS)
        # argon2-cffi's defaults (RFC 9106's low-memory profile): m=64 MiB, t=3, p=4.
        self._hasher = argon2.PasswordHasher()

    async def __call__(self, request: Request, dispatch: Dispatch) -> Response:
        """Answer one request whose path is `/auth/v1` + `dispatch.subpath`."""
        flow = auth_flow(request, dispatch.subpath, self._settings, now=self._clock())
        return await self._drive(flow)

    async def _drive(self, flow: Flow[Response]) -> Response:
        result: object = None
        try:
            while True:
                command = flow.send(result)
                result = await self._execute(command)
        except StopIteration as stop:
            response: Response = stop.value
            return response

    async def _execute(self, command: AuthCommand) -> object:
        match command:
            case RunTransaction(tx=tx):
                return await self._pool.run(tx)
            case HashPassword(password=password):
                return await trio.to_thread.run_sync(
                    self._hasher.hash, password, limiter=self._limiter
                )
            case CheckPassword(encrypted_password=encoded, password=password):
                return await trio.to_thread.run_sync(
                    self._check, encoded, password, limiter=self._limiter
                )
            case DrawRandom(size=size):
                return self._random(size)
            case SendMail():
                return await self._send(command)
            case SendSms():
                return await self._text(command)

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
