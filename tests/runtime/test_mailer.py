"""The mailers: the outbox directory, and SMTP against a tiny SMTP server on loopback.

The server is written here (a thread per connection over a listening socket, no network beyond
127.0.0.1): it speaks enough of RFC 5321 for smtplib (EHLO, optional AUTH PLAIN, MAIL, RCPT,
DATA, QUIT), records what it received, and can refuse the recipient.
"""

from __future__ import annotations

import base64
import contextlib
import email
import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from madbase.config import Config, SmtpSettings
from madbase.protocol.auth import SendMail, SendSms
from madbase.protocol.auth.mail.messages import MailKind
from madbase.runtime.auth import mailer_for
from madbase.runtime.mailer import MailerError, OutboxMailer, SmtpMailer

MESSAGE = SendMail(
    to="ann@example.com",
    subject="Confirm your email address",
    html="<p>Hello <b>Ann</b></p>\n",
    text="Hello Ann\n",
    kind=MailKind.CONFIRMATION,
)


class SmtpServer:
    """One-thread-per-connection SMTP responder on 127.0.0.1.

    With `tls` (a server-side SSL context) it offers STARTTLS, or, with `implicit`, speaks TLS
    from the first byte (port-465 style).
    """

    def __init__(
        self,
        *,
        refuse_rcpt: bool = False,
        auth: tuple[str, str] | None = None,
        tls: ssl.SSLContext | None = None,
        implicit: bool = False,
    ) -> None:
        self.refuse_rcpt = refuse_rcpt
        self.auth = auth
        self.tls = tls
        self.implicit = implicit
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.logins: list[str] = []
        self.encrypted: list[bool] = []  # per message: was the session under TLS?
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
            if self.implicit:
                assert self.tls is not None
                conn = self.tls.wrap_socket(conn, server_side=True)
            self._dialogue(conn)
        except (OSError, UnicodeDecodeError, ValueError, IndexError):
            pass  # a client speaking TLS to a plain server, or gone: not SMTP we can answer
        finally:
            conn.close()

    def _dialogue(self, conn: socket.socket) -> None:
        self.current = conn
        try:
            self._commands(conn)
        finally:
            self.current.close()

    def _commands(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")

        def say(line: str) -> None:
            conn.sendall(line.encode() + b"\r\n")

        say("220 test ESMTP")
        sender, recipients = "", []
        while True:
            line = reader.readline()
            if not line:
                reader.close()
                return
            command = line.decode().strip()
            verb = command.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                extensions = []
                if (
                    self.tls is not None
                    and not self.implicit
                    and not isinstance(conn, ssl.SSLSocket)
                ):
                    extensions.append("STARTTLS")
                if self.auth:
                    extensions.append("AUTH PLAIN")
                lines = ["test", *extensions]  # smtplib takes the first line as the greeting
                for i, text in enumerate(lines):
                    say(f"250{' ' if i == len(lines) - 1 else '-'}{text}")
            elif verb == "STARTTLS":
                assert self.tls is not None
                say("220 go ahead")
                reader.close()
                conn = self.current = self.tls.wrap_socket(conn, server_side=True)
                reader = conn.makefile("rb")
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
                self.encrypted.append(isinstance(conn, ssl.SSLSocket))
                say("250 queued")
            elif verb == "QUIT":
                say("221 bye")
                reader.close()
                return
            else:
                say("250 ok")


def certificates(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A throw-away CA and a certificate for 127.0.0.1: (server context, client context)."""
    now = datetime.now(UTC)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("test CA"))
        .issuer_name(name("test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    cert_file, key_file, ca_file = tmp_path / "leaf.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert_file.write_bytes(leaf.public_bytes(pem))
    ca_file.write_bytes(ca.public_bytes(pem))
    key_file.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(ca_file))
    return server, client


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


async def test_outbox_writes_text_messages(tmp_path: Path) -> None:
    outbox = OutboxMailer(tmp_path / "outbox")
    message_id = await outbox.send_sms(
        SendSms(to="15550100", text="Your code is 123456", kind="confirmation")
    )
    (record,) = (tmp_path / "outbox").glob("*-sms.json")
    assert record.stem == message_id
    assert json.loads(record.read_text())["text"] == "Your code is 123456"
    (tmp_path / "blocked").write_text("x")
    with pytest.raises(MailerError):
        await OutboxMailer(tmp_path / "blocked" / "o").send_sms(
            SendSms(to="1", text="t", kind="confirmation")
        )


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


@pytest.mark.parametrize("implicit", [False, True])
async def test_smtp_over_tls(tmp_path: Path, implicit: bool) -> None:
    server_context, client_context = certificates(tmp_path)
    server = SmtpServer(tls=server_context, implicit=implicit, auth=("u", "p"))
    try:
        settings = SmtpSettings(
            host="127.0.0.1",
            port=server.port,
            tls="tls" if implicit else "starttls",
            user="u",
            password="p",
        )
        await SmtpMailer(settings, context=client_context).send(MESSAGE)
        assert server.encrypted == [True]
        assert server.logins == ["u"]
        # The system trust store does not know the test CA: refused, nothing sent.
        with pytest.raises(MailerError):
            await SmtpMailer(settings).send(MESSAGE)
        assert len(server.messages) == 1
    finally:
        server.close()


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
