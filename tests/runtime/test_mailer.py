"""The mailers: the outbox directory, and SMTP against a tiny SMTP server on loopback.

The server is written here (a thread per connection over a listening socket, no network beyond
127.0.0.1): it speaks enough of RFC 5321 for smtplib (EHLO, optional AUTH PLAIN, MAIL, RCPT,
DATA, QUIT), records what it received, and can refuse the recipient.
"""

from __future__ import annotations

import base64
import contextlib
import email
import json
import socket
import threading
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

import pytest

from madbase.config import Config, SmtpSettings
from madbase.protocol.auth import MailKind, SendMail
from madbase.runtime.mailer import MailerError, OutboxMailer, SmtpMailer
from madbase.runtime.serve import mailer_for

MESSAGE = SendMail(
    to="ann@example.com",
    subject="Confirm your email address",
    html="<p>Hello <b>Ann</b></p>\n",
    text="Hello Ann\n",
    kind=MailKind.CONFIRMATION,
)


class SmtpServer:
    """One-thread-per-connection SMTP responder on 127.0.0.1."""

    def __init__(self, *, refuse_rcpt: bool = False, auth: tuple[str, str] | None = None) -> None:
        self.refuse_rcpt = refuse_rcpt
        self.auth = auth
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.logins: list[str] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def close(self) -> None:
        # shutdown() wakes the thread blocked in accept(); close() alone does not on Linux.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(5)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self._dialogue(conn)
        except (OSError, UnicodeDecodeError, ValueError, IndexError):
            conn.close()  # a client speaking TLS, or gone: not SMTP we can answer

    def _dialogue(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as reader:

            def say(line: str) -> None:
                conn.sendall(line.encode() + b"\r\n")

            say("220 test ESMTP")
            sender, recipients = "", []
            while True:
                line = reader.readline()
                if not line:
                    return
                command = line.decode().strip()
                verb = command.split(" ", 1)[0].upper()
                if verb in ("EHLO", "HELO"):
                    if self.auth:
                        say("250-test")
                        say("250 AUTH PLAIN")
                    else:
                        say("250 test")
                elif verb == "AUTH":
                    raw = base64.b64decode(command.split()[2]).split(b"\0")
                    self.logins.append(raw[1].decode())
                    if self.auth == (raw[1].decode(), raw[2].decode()):
                        say("235 ok")
                    else:
                        say("535 bad credentials")
                elif verb == "MAIL":
                    sender = command.split(":", 1)[1].strip("<> ")
                    say("250 ok")
                elif verb == "RCPT":
                    if self.refuse_rcpt:
                        say("550 no such user")
                    else:
                        recipients.append(command.split(":", 1)[1].strip("<> "))
                        say("250 ok")
                elif verb == "DATA":
                    say("354 go on")
                    data = b""
                    while True:
                        chunk = reader.readline()
                        if chunk in (b".\r\n", b""):
                            break
                        data += chunk
                    self.messages.append((sender, recipients, data))
                    say("250 queued")
                elif verb == "QUIT":
                    say("221 bye")
                    return
                else:
                    say("250 ok")


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer()
    try:
        yield server
    finally:
        server.close()


def parsed(data: bytes) -> Message:
    return email.message_from_bytes(data)


async def test_outbox_writes_json_and_eml(tmp_path: Path) -> None:
    mailer = OutboxMailer(tmp_path / "outbox", sender="no@madbase.test")
    await mailer.send(MESSAGE)
    await mailer.send(MESSAGE)
    records = sorted((tmp_path / "outbox").glob("*.json"))
    assert len(records) == 2
    record = json.loads(records[0].read_text())
    assert record["to"] == "ann@example.com"
    assert record["kind"] == "confirmation"
    assert record["subject"] == "Confirm your email address"
    assert record["text"] == "Hello Ann\n"
    eml = parsed(records[0].with_suffix(".eml").read_bytes())
    assert eml["To"] == "ann@example.com"
    assert eml["From"] == "no@madbase.test"
    assert eml.is_multipart()
    assert [p.get_content_type() for p in eml.walk()][1:] == ["text/plain", "text/html"]
    assert not list((tmp_path / "outbox").glob(".*"))  # no temporary files left


async def test_outbox_failure_is_a_mailer_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(MailerError):
        await OutboxMailer(tmp_path / "file" / "outbox").send(MESSAGE)


async def test_smtp_delivers_to_the_server(smtp_server: SmtpServer) -> None:
    settings = SmtpSettings(
        host="127.0.0.1",
        port=smtp_server.port,
        tls="off",
        sender="auth@madbase.test",
        sender_name="MadBase",
    )
    await SmtpMailer(settings).send(MESSAGE)
    ((sender, recipients, data),) = smtp_server.messages
    assert (sender, recipients) == ("auth@madbase.test", ["ann@example.com"])
    message = parsed(data)
    assert message["Subject"] == "Confirm your email address"
    assert message["From"] == "MadBase <auth@madbase.test>"
    assert message["X-MadBase-Mail-Kind"] == "confirmation"


async def test_smtp_logs_in_when_configured() -> None:
    server = SmtpServer(auth=("relay-user", "relay-pass"))
    try:
        settings = SmtpSettings(
            host="127.0.0.1", port=server.port, tls="off", user="relay-user", password="relay-pass"
        )
        await SmtpMailer(settings).send(MESSAGE)
        assert server.logins == ["relay-user"]
        assert len(server.messages) == 1
        wrong = SmtpSettings(
            host="127.0.0.1", port=server.port, tls="off", user="relay-user", password="nope"
        )
        with pytest.raises(MailerError) as raised:
            await SmtpMailer(wrong).send(MESSAGE)
        assert "535" in str(raised.value)
        assert "nope" not in str(raised.value)
    finally:
        server.close()


async def test_smtp_refusals_and_unreachable_servers_are_mailer_errors() -> None:
    server = SmtpServer(refuse_rcpt=True)
    try:
        settings = SmtpSettings(host="127.0.0.1", port=server.port, tls="off")
        with pytest.raises(MailerError) as raised:
            await SmtpMailer(settings).send(MESSAGE)
        assert "550" in str(raised.value) or "Refused" in str(raised.value)
    finally:
        server.close()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    with pytest.raises(MailerError, match="cannot reach"):
        await SmtpMailer(SmtpSettings(host="127.0.0.1", port=port, tls="off", timeout=2)).send(
            MESSAGE
        )


async def test_smtp_starttls_is_required_when_configured(smtp_server: SmtpServer) -> None:
    # The test server offers no STARTTLS: a mailer told to use it must refuse to send in clear.
    settings = SmtpSettings(host="127.0.0.1", port=smtp_server.port, tls="starttls")
    with pytest.raises(MailerError):
        await SmtpMailer(settings).send(MESSAGE)
    assert smtp_server.messages == []


async def test_smtp_implicit_tls_fails_against_a_plain_server(smtp_server: SmtpServer) -> None:
    settings = SmtpSettings(host="127.0.0.1", port=smtp_server.port, tls="tls", timeout=2)
    with pytest.raises(MailerError):
        await SmtpMailer(settings).send(MESSAGE)
    assert smtp_server.messages == []


def test_config_picks_the_mailer(tmp_path: Path) -> None:
    outbox = mailer_for(Config(data_dir=tmp_path))
    assert isinstance(outbox, OutboxMailer)
    assert outbox.directory == tmp_path / "outbox"
    assert isinstance(mailer_for(Config(data_dir=tmp_path, mailer="smtp")), SmtpMailer)
