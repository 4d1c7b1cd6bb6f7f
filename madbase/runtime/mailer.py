"""Delivery of the auth flows' `SendMail` commands: an SMTP relay, or an outbox directory.

`OutboxMailer` writes every message twice into a directory, as `<time>-<pid>-<n>-<kind>.json`
(recipient, subject, kind, text and HTML bodies, for tests and local development to read) and as
the `.eml` that would have been sent; it is also MadBase's only SMS sender (`<...>-sms.json`). `SmtpMailer` hands the message to an SMTP server with smtplib in a
worker thread: STARTTLS (required when configured), implicit TLS, or plain text for a relay on
loopback. Either raises `MailerError` when the message could not be delivered; credentials never
appear in the error.
"""

from __future__ import annotations

import itertools
import json
import os
import smtplib
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from pathlib import Path
from typing import Protocol, final

import trio

from madbase.config import SmtpSettings
from madbase.protocol.auth import SendMail, SendSms

__all__ = ["Mailer", "MailerError", "OutboxMailer", "SmsSender", "SmtpMailer", "build_message"]


class MailerError(Exception):
    """A message could not be delivered; the text says why, without credentials."""


class Mailer(Protocol):
    """Delivers one message or raises `MailerError`."""

    async def send(self, message: SendMail) -> None:
        """Deliver `message`."""


class SmsSender(Protocol):
    """Sends one text message and returns its id, or raises `MailerError`."""

    async def send_sms(self, message: SendSms) -> str:
        """Send `message`."""


def build_message(message: SendMail, sender: str, sender_name: str = "") -> EmailMessage:
    """The MIME message: text with an HTML alternative."""
    mime = EmailMessage()
    mime["From"] = formataddr((sender_name, sender)) if sender_name else sender
    mime["To"] = message.to
    mime["Subject"] = message.subject
    mime["Date"] = format_datetime(datetime.now(UTC))
    mime["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "localhost")
    mime["X-MadBase-Mail-Kind"] = message.kind.value
    mime.set_content(message.text)
    mime.add_alternative(message.html, subtype="html")
    return mime


@final
class OutboxMailer:
    """Writes each message into `directory` (created on first use)."""

    def __init__(self, directory: Path, *, sender: str = "noreply@localhost") -> None:
        self.directory = directory
        self._sender = sender
        self._counter = itertools.count(1)

    async def send(self, message: SendMail) -> None:
        """Write `<name>.json` and `<name>.eml` (names sort by time)."""
        number = next(self._counter)
        try:
            await trio.to_thread.run_sync(self._write, message, number)
        except OSError as err:
            raise MailerError(f"cannot write to the outbox {self.directory}: {err}") from None

    async def send_sms(self, message: SendSms) -> str:
        """Write `<name>-sms.json` (to, text, kind); the name is the message id."""
        number = next(self._counter)
        try:
            return await trio.to_thread.run_sync(self._write_sms, message, number)
        except OSError as err:
            raise MailerError(f"cannot write to the outbox {self.directory}: {err}") from None

    def _name(self, number: int, kind: str) -> tuple[str, datetime]:
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC)
        # Sortable by time; the process id and a counter keep worker processes apart.
        return f"{stamp.strftime('%Y%m%dT%H%M%S%f')}-{os.getpid()}-{number:06d}-{kind}", stamp

    def _write_json(self, name: str, record: dict[str, str]) -> None:
        # Written under a temporary name first: a reader that sees the file can read it whole.
        tmp = self.directory / f".{name}.json.tmp"
        tmp.write_text(json.dumps(record, ensure_ascii=False, indent=2), encoding="utf-8")
        tmp.replace(self.directory / f"{name}.json")

    def _write_sms(self, message: SendSms, number: int) -> str:
        name, stamp = self._name(number, "sms")
        record = {
            "to": message.to,
            "kind": message.kind,
            "channel": "sms",
            "text": message.text,
            "sent_at": stamp.isoformat(),
        }
        self._write_json(name, record)
        return name

    def _write(self, message: SendMail, number: int) -> None:
        name, stamp = self._name(number, message.kind.value)
        record = {
            "to": message.to,
            "from": self._sender,
            "subject": message.subject,
            "kind": message.kind.value,
            "text": message.text,
            "html": message.html,
            "sent_at": stamp.isoformat(),
        }
        eml = build_message(message, self._sender).as_bytes()
        (self.directory / f"{name}.eml").write_bytes(eml)
        self._write_json(name, record)  # last: a reader that sees it can read both


@final
class SmtpMailer:
    """Sends through one SMTP server, one connection per message."""

    def __init__(
        self,
        settings: SmtpSettings,
        *,
        limiter: trio.CapacityLimiter | None = None,
        context: ssl.SSLContext | None = None,
    ) -> None:
        self._settings = settings
        self._limiter = limiter or trio.CapacityLimiter(4)
        # The system's trust store and host name checks unless a context is given (a private CA).
        self._context = context or ssl.create_default_context()

    async def send(self, message: SendMail) -> None:
        """Deliver `message` (in a worker thread)."""
        mime = build_message(message, self._settings.sender, self._settings.sender_name)
        await trio.to_thread.run_sync(self._send, mime, limiter=self._limiter)

    def _send(self, mime: EmailMessage) -> None:
        s = self._settings
        try:
            if s.tls == "tls":
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    s.host, s.port, timeout=s.timeout, context=self._context
                )
            else:
                client = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            with client:
                client.ehlo()
                if s.tls == "starttls":
                    client.starttls(context=self._context)
                    client.ehlo()
                if s.user:
                    client.login(s.user, s.password or "")
                client.send_message(mime)
        except smtplib.SMTPException as err:
            raise MailerError(
                f"SMTP delivery via {s.host}:{s.port} failed: {_reason(err)}"
            ) from None
        except (OSError, ssl.SSLError) as err:
            raise MailerError(f"cannot reach SMTP server {s.host}:{s.port}: {err}") from None


def _reason(err: smtplib.SMTPException) -> str:
    if isinstance(err, smtplib.SMTPResponseException):
        text = (
            err.smtp_error.decode("utf-8", "replace")
            if isinstance(err.smtp_error, bytes)
            else str(err.smtp_error)
        )
        return f"{err.smtp_code} {text}"
    return type(err).__name__
