"""Rate limits of `/auth/v1`: which buckets a request draws from, and a token-bucket limiter.

Theory of operation. Every request that can send mail, guess a password or mint tokens draws one
token from each bucket `buckets_for` names: a per-client-IP bucket for its endpoint family (GoTrue's
groups, spec/auth.md §9) and, where the body names an email address or phone number, a
per-address bucket, so one address cannot be hammered from many IPs. A bucket holds `limit` tokens
(all may be spent at once, as "N requests per 5 minutes" reads) and refills continuously at
`limit` per `period`; an empty bucket refuses with GoTrue's
`over_request_rate_limit` (429) and a `Retry-After` header: the whole seconds until one token is
back. A refused request draws from no bucket.

The limiter is pure: the caller passes a monotonic clock reading (seconds). Its memory is bounded:
a bucket that has refilled completely is the same as no bucket, so full buckets are dropped
whenever the table grows past `max_keys`; if it is still too full, the fullest go first.

The client address is the socket's peer unless that peer is a trusted proxy (`trusted_proxies`,
CIDR networks): then it is the right-most `X-Forwarded-For` entry that is not itself trusted,
the entry the last trusted proxy saw, which a client cannot forge.
"""

from __future__ import annotations

import ipaddress
import json
import math
from collections.abc import Sequence
from enum import StrEnum
from typing import Final, TypeAlias, final

import attrs

from madbase.protocol.auth.error_response import render_auth_error
from madbase.protocol.auth.errors import OverRequestRateLimit
from madbase.protocol.http.messages import Request, Response

__all__ = [
    "Bucket",
    "Network",
    "RateLimiter",
    "RateLimits",
    "buckets_for",
    "parse_networks",
    "resolve_client",
]

Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
_FIVE_MINUTES: Final = 300.0
_HOUR: Final = 3600.0
_MINUTE: Final = 60.0


class Bucket(StrEnum):
    """GoTrue's rate-limit groups, plus the per-address one."""

    # /token: password, refresh_token, pkce, id_token grants.
    TOKEN = "token"  # noqa: S105 - a bucket name, not a secret
    # /verify, GET and POST.
    VERIFY = "verify"
    # Sign-ins and sign-ups that may send mail: /signup, /otp, /magiclink, /recover, /resend,
    # PUT /user (RATE_LIMIT_OTP).
    OTP = "otp"
    # Anonymous sign-ins (POST /signup without email or phone).
    ANONYMOUS = "anonymous"
    # MFA challenges and verifications.
    MFA = "mfa"
    # Attempts naming one email address or phone number, from any IP.
    ADDRESS = "address"
    # Mails the project sends, whoever asks (RATE_LIMIT_EMAIL_SENT); drawn when one is sent.
    EMAIL_SENT = "email_sent"


@final
@attrs.frozen(kw_only=True)
class Rule:
    """`limit` tokens per `period` seconds, at most `limit` saved up."""

    limit: int
    period: float

    @property
    def interval(self) -> float:
        """Seconds for one token to come back."""
        return self.period / self.limit


@final
@attrs.frozen(kw_only=True)
class RateLimits:
    """Per-project limits; 0 switches a bucket off. Defaults are GoTrue's (spec/auth.md §9)."""

    token_per_5m: int = 150
    verify_per_5m: int = 30
    otp_per_5m: int = 30
    anonymous_per_hour: int = 30
    mfa_per_minute: int = 15
    # Not a GoTrue setting: attempts per address per 5 minutes, whatever the client IP.
    address_per_5m: int = 30
    # Mails the whole project may send per hour.
    email_sent_per_hour: int = 30
    trusted_proxies: tuple[Network, ...] = ()
    # Buckets kept at most before full ones are dropped (bounds memory under many IPs).
    max_keys: int = 100_000

    def rule(self, bucket: Bucket) -> Rule | None:
        """The rule of `bucket`, or None when it is switched off."""
        limit, period = {
            Bucket.TOKEN: (self.token_per_5m, _FIVE_MINUTES),
            Bucket.VERIFY: (self.verify_per_5m, _FIVE_MINUTES),
            Bucket.OTP: (self.otp_per_5m, _FIVE_MINUTES),
            Bucket.ANONYMOUS: (self.anonymous_per_hour, _HOUR),
            Bucket.MFA: (self.mfa_per_minute, _MINUTE),
            Bucket.ADDRESS: (self.address_per_5m, _FIVE_MINUTES),
            Bucket.EMAIL_SENT: (self.email_sent_per_hour, _HOUR),
        }[bucket]
        if limit <= 0:
            return None
        return Rule(limit=limit, period=period)


def parse_networks(raw: str) -> tuple[Network, ...]:
    """Comma-separated addresses or CIDR networks; raises ValueError naming a bad entry.

    >>> parse_networks("10.0.0.0/8, ::1")
    (IPv4Network('10.0.0.0/8'), IPv6Network('::1/128'))
    """
    networks: list[Network] = []
    for part in raw.split(","):
        entry = part.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"not an IP address or network: {entry!r}") from None
    return tuple(networks)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _trusted(addr: ipaddress.IPv4Address | ipaddress.IPv6Address, nets: Sequence[Network]) -> bool:
    return any(addr.version == net.version and addr in net for net in nets)


def resolve_client(request: Request, trusted_proxies: Sequence[Network]) -> str | None:
    """The client's IP address as text, behind trusted proxies as the module docstring says.

    >>> xff = (("x-forwarded-for", "6.6.6.6, 1.2.3.4"),)
    >>> r = Request(method="GET", target="/", headers=xff, client="10.0.0.2")
    >>> resolve_client(r, parse_networks("10.0.0.0/8")), resolve_client(r, ())
    ('1.2.3.4', '10.0.0.2')
    """
    peer = _address(request.client) if request.client is not None else None
    if peer is None:
        return request.client
    if not trusted_proxies or not _trusted(peer, trusted_proxies):
        return str(peer)
    hops: list[str] = []
    for name, value in request.headers:
        if name == "x-forwarded-for":
            hops.extend(value.split(","))
    for hop in reversed(hops):
        addr = _address(hop)
        if addr is None:
            break  # a garbled entry: trust nothing left of it
        if not _trusted(addr, trusted_proxies):
            return str(addr)
    return str(peer)


_TOKEN_PATHS: Final = frozenset({"/token"})
_VERIFY_PATHS: Final = frozenset({"/verify"})
_OTP_PATHS: Final = frozenset({"/signup", "/otp", "/magiclink", "/recover", "/resend"})


def _body_address(body: bytes) -> str | None:
    """The email (lower-cased) or phone a JSON body names, if any."""
    if not body or len(body) > 64 * 1024:
        return None
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict):
        return None
    for key in ("email", "phone"):
        value = obj.get(key)
        if isinstance(value, str) and value.strip():
            return f"{key}:{value.strip().lower()}"
    return None


def buckets_for(request: Request, path: str, client: str | None) -> list[tuple[Bucket, str]]:
    """The (bucket, key) pairs `request` to `/auth/v1` + `path` draws from.

    >>> r = Request(method="POST", target="/auth/v1/otp", body=b'{"email":"A@x.io"}')
    >>> buckets_for(r, "/otp", "1.2.3.4")
    [(<Bucket.OTP: 'otp'>, '1.2.3.4'), (<Bucket.ADDRESS: 'address'>, 'email:a@x.io')]
    """
    method = request.method
    path = path.rstrip("/") or "/"
    ip = client or "-"
    pairs: list[tuple[Bucket, str]] = []
    address: str | None = None
    if method == "POST" and path in _TOKEN_PATHS:
        pairs.append((Bucket.TOKEN, ip))
        if request.query_param("grant_type") == "password":
            address = _body_address(request.body)
    elif method in ("GET", "POST") and path in _VERIFY_PATHS:
        pairs.append((Bucket.VERIFY, ip))
        if method == "POST":
            address = _body_address(request.body)
    elif method == "POST" and path in _OTP_PATHS:
        address = _body_address(request.body)
        if path == "/signup" and address is None:
            pairs.append((Bucket.ANONYMOUS, ip))
        else:
            pairs.append((Bucket.OTP, ip))
    elif method == "PUT" and path == "/user":
        pairs.append((Bucket.OTP, ip))
    elif (
        method == "POST"
        and path.startswith("/factors/")
        and path.endswith(("/challenge", "/verify", "/challenge_and_verify"))
    ):
        pairs.append((Bucket.MFA, ip))
    if address is not None:
        pairs.append((Bucket.ADDRESS, address))
    return pairs


@final
class RateLimiter:
    """Token buckets for one project; pure (the caller passes the clock)."""

    def __init__(self, limits: RateLimits) -> None:
        self.limits = limits
        # (bucket, key) -> (tokens left, clock reading when counted)
        self._buckets: dict[tuple[Bucket, str], tuple[float, float]] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def client(self, request: Request) -> str | None:
        """`request`'s client address behind this project's trusted proxies."""
        return resolve_client(request, self.limits.trusted_proxies)

    def admit(
        self, request: Request, path: str, *, now: float, client: str | None = None
    ) -> Response | None:
        """Draw `request`'s tokens; None if admitted, else the 429 to send (nothing drawn).

        `client`: the request's address as `client()` resolved it, if the caller has it already.
        """
        if client is None:
            client = self.client(request)
        pairs = [
            (key, rule)
            for bucket, ident in buckets_for(request, path, client)
            if (rule := self.limits.rule(bucket)) is not None
            for key in [(bucket, ident)]
        ]
        wait = 0.0
        levels: list[float] = []
        for key, rule in pairs:
            level = self._level(key, rule, now)
            levels.append(level)
            if level < 1.0:
                wait = max(wait, (1.0 - level) * rule.interval)
        if wait > 0:
            response = render_auth_error(
                OverRequestRateLimit(),
                api_version=request.header("x-supabase-api-version"),
            )
            return response.with_headers((("retry-after", str(max(1, math.ceil(wait)))),))
        for (key, _), level in zip(pairs, levels, strict=True):
            self._buckets[key] = (level - 1.0, now)
        if len(self._buckets) > self.limits.max_keys:
            self._prune(now)
        return None

    def take_mail(self, *, now: float) -> bool:
        """Draw one mail from the project's hourly quota; False when it is used up."""
        rule = self.limits.rule(Bucket.EMAIL_SENT)
        if rule is None:
            return True
        key = (Bucket.EMAIL_SENT, "*")
        level = self._level(key, rule, now)
        if level < 1.0:
            return False
        self._buckets[key] = (level - 1.0, now)
        return True

    def _level(self, key: tuple[Bucket, str], rule: Rule, now: float) -> float:
        seen = self._buckets.get(key)
        if seen is None:
            return float(rule.limit)
        tokens, then = seen
        return min(float(rule.limit), tokens + max(0.0, now - then) / rule.interval)

    def _prune(self, now: float) -> None:
        """Forget full buckets, then the fullest, down to 90 % of `max_keys` (amortised)."""
        levels: dict[tuple[Bucket, str], float] = {}
        for key in list(self._buckets):
            rule = self.limits.rule(key[0])
            level = self._level(key, rule, now) if rule is not None else math.inf
            if rule is None or level >= rule.limit:
                del self._buckets[key]
            else:
                levels[key] = level / rule.limit
        excess = len(self._buckets) - self.limits.max_keys * 9 // 10
        if excess > 0:
            # The emptiest buckets are the ones that matter: a client spraying new keys must
            # not get a throttled client forgotten.
            for key in sorted(levels, key=levels.__getitem__, reverse=True)[:excess]:
                del self._buckets[key]
