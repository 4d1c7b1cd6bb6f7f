"""Rate limits of /auth/v1: buckets per endpoint family and address, refill, 429 shape, proxies."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from madbase.protocol.auth.ratelimit import (
    Bucket,
    RateLimiter,
    RateLimits,
    buckets_for,
    parse_networks,
    resolve_client,
)
from madbase.protocol.http.messages import Request


def post(path: str, body: object = None, *, client: str = "1.2.3.4", query: str = "") -> Request:
    raw = b"" if body is None else json.dumps(body).encode()
    target = f"/auth/v1{path}" + (f"?{query}" if query else "")
    return Request(method="POST", target=target, body=raw, client=client)


@pytest.mark.parametrize(
    ("request_", "path", "expected"),
    [
        (post("/token", {"email": "A@X.io"}, query="grant_type=password"), "/token",
         [(Bucket.TOKEN, "1.2.3.4"), (Bucket.ADDRESS, "email:a@x.io")]),
        (post("/token", {"refresh_token": "r"}, query="grant_type=refresh_token"), "/token",
         [(Bucket.TOKEN, "1.2.3.4")]),
        (post("/signup", {"email": "b@x.io", "password": "p"}), "/signup",
         [(Bucket.OTP, "1.2.3.4"), (Bucket.ADDRESS, "email:b@x.io")]),
        (post("/signup", {}), "/signup", [(Bucket.ANONYMOUS, "1.2.3.4")]),
        (post("/otp", {"phone": "+15550001"}), "/otp",
         [(Bucket.OTP, "1.2.3.4"), (Bucket.ADDRESS, "phone:+15550001")]),
        (post("/recover", {"email": "c@x.io"}), "/recover/",
         [(Bucket.OTP, "1.2.3.4"), (Bucket.ADDRESS, "email:c@x.io")]),
        (post("/verify", {"type": "signup", "token_hash": "h"}), "/verify",
         [(Bucket.VERIFY, "1.2.3.4")]),
        (Request(method="GET", target="/auth/v1/verify?token=t", client="::1"), "/verify",
         [(Bucket.VERIFY, "::1")]),
        (Request(method="PUT", target="/auth/v1/user", client="1.2.3.4"), "/user",
         [(Bucket.OTP, "1.2.3.4")]),
        (post("/factors/f1/verify", {"code": "1"}), "/factors/f1/verify",
         [(Bucket.MFA, "1.2.3.4")]),
        (Request(method="GET", target="/auth/v1/user", client="1.2.3.4"), "/user", []),
        (Request(method="GET", target="/auth/v1/health"), "/health", []),
    ],
)  # fmt: skip
def test_buckets(request_: Request, path: str, expected: list[tuple[Bucket, str]]) -> None:
    assert buckets_for(request_, path, request_.client) == expected


def test_unparsable_bodies_name_no_address() -> None:
    for body in (b"{", b"[1]", b'{"email": 5}', b'{"email": "  "}', b"\xff"):
        req = Request(method="POST", target="/auth/v1/otp", body=body, client="1.2.3.4")
        assert buckets_for(req, "/otp", "1.2.3.4") == [(Bucket.OTP, "1.2.3.4")]


def test_limit_then_429_with_retry_after_then_refill() -> None:
    limiter = RateLimiter(RateLimits(otp_per_5m=3, address_per_5m=0))
    for i in range(3):
        assert limiter.admit(post("/otp", {"email": f"{i}@x.io"}), "/otp", now=100.0) is None
    refused = limiter.admit(post("/otp", {"email": "z@x.io"}), "/otp", now=100.0)
    assert refused is not None
    assert refused.status == 429
    assert refused.header("retry-after") == "100"  # 300 s / 3 tokens: one back in 100 s
    assert json.loads(refused.body) == {
        "code": 429,
        "error_code": "over_request_rate_limit",
        "msg": "Request rate limit reached",
    }
    # Another IP is not affected.
    assert limiter.admit(post("/otp", {}, client="5.6.7.8"), "/otp", now=100.0) is None
    # Half-way there: still refused, and told how long is left.
    later = limiter.admit(post("/otp", {}), "/otp", now=150.0)
    assert later is not None
    assert later.header("retry-after") == "50"
    assert limiter.admit(post("/otp", {}), "/otp", now=200.0) is None
    assert limiter.admit(post("/otp", {}), "/otp", now=200.0) is not None


def test_versioned_429_body() -> None:
    limiter = RateLimiter(RateLimits(token_per_5m=1))
    req = Request(
        method="POST",
        target="/auth/v1/token?grant_type=refresh_token",
        headers=(("x-supabase-api-version", "2024-01-01"),),
        body=b'{"refresh_token":"x"}',
        client="1.2.3.4",
    )
    assert limiter.admit(req, "/token", now=0.0) is None
    refused = limiter.admit(req, "/token", now=0.0)
    assert refused is not None
    assert json.loads(refused.body) == {
        "code": "over_request_rate_limit",
        "message": "Request rate limit reached",
    }
    assert refused.header("x-supabase-api-version") == "2024-01-01"


def test_address_bucket_spans_ips_and_refusal_draws_nothing() -> None:
    limiter = RateLimiter(RateLimits(token_per_5m=100, address_per_5m=2))
    query = "grant_type=password"
    body = {"email": "victim@x.io", "password": "guess"}
    for ip in ("1.1.1.1", "2.2.2.2"):
        assert limiter.admit(post("/token", body, client=ip, query=query), "/token", now=0) is None
    assert limiter.admit(post("/token", body, client="3.3.3.3", query=query), "/token", now=0)
    # The refused attempt took nothing from 3.3.3.3's own bucket: 100 requests still pass.
    other = {"email": "other@x.io", "password": "p"}
    admitted = sum(
        limiter.admit(post("/token", {**other, "n": i}, client="3.3.3.3"), "/token", now=0) is None
        for i in range(100)
    )
    assert admitted == 100


def test_zero_switches_a_bucket_off() -> None:
    limiter = RateLimiter(RateLimits(otp_per_5m=0, address_per_5m=0))
    assert all(limiter.admit(post("/otp", {}), "/otp", now=0) is None for _ in range(1000))
    assert len(limiter) == 0


def test_memory_is_bounded() -> None:
    limiter = RateLimiter(RateLimits(otp_per_5m=5, address_per_5m=0, max_keys=50))
    for i in range(1000):
        ip = f"10.0.{i // 256}.{i % 256}"
        assert limiter.admit(post("/otp", {}, client=ip), "/otp", now=float(i)) is None
        assert len(limiter) <= 51
    # A client that is out of tokens right now is kept over ones that refilled long ago.
    for _ in range(5):
        limiter.admit(post("/otp", {}, client="9.9.9.9"), "/otp", now=2000.0)
    for i in range(100):
        limiter.admit(post("/otp", {}, client=f"11.0.0.{i}"), "/otp", now=2000.0 + i / 1000)
    assert limiter.admit(post("/otp", {}, client="9.9.9.9"), "/otp", now=2000.2) is not None


@given(
    limit=st.integers(min_value=1, max_value=20),
    gaps=st.lists(st.floats(min_value=0, max_value=120), min_size=1, max_size=80),
)
def test_never_more_than_limit_plus_refill(limit: int, gaps: list[float]) -> None:
    limiter = RateLimiter(RateLimits(verify_per_5m=limit))
    now = 0.0
    admitted = 0
    for gap in gaps:
        now += gap
        req = Request(method="GET", target="/auth/v1/verify", client="1.2.3.4")
        refused = limiter.admit(req, "/verify", now=now)
        if refused is None:
            admitted += 1
        else:
            wait = int(refused.header("retry-after") or "0")
            assert 1 <= wait <= math.ceil(300 / limit)
    assert admitted <= limit + math.floor(now * limit / 300)


def test_trusted_proxies() -> None:
    nets = parse_networks("10.0.0.0/8, 192.168.1.1")
    xff = (("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "7.7.7.7, 10.1.1.1"))
    via_proxy = Request(method="GET", target="/", headers=xff, client="10.0.0.2")
    # The right-most hop that is not a trusted proxy; a client-supplied left part is ignored.
    assert resolve_client(via_proxy, nets) == "7.7.7.7"
    # A client that is not a proxy cannot pick its address.
    direct = Request(method="GET", target="/", headers=xff, client="8.8.8.8")
    assert resolve_client(direct, nets) == "8.8.8.8"
    assert resolve_client(via_proxy, ()) == "10.0.0.2"
    garbled = Request(
        method="GET", target="/", headers=(("x-forwarded-for", "1.1.1.1, junk"),), client="10.0.0.2"
    )
    assert resolve_client(garbled, nets) == "10.0.0.2"
    only_proxies = Request(
        method="GET", target="/", headers=(("x-forwarded-for", "10.9.9.9"),), client="10.0.0.2"
    )
    assert resolve_client(only_proxies, nets) == "10.0.0.2"
    ported = Request(
        method="GET",
        target="/",
        headers=(("x-forwarded-for", "[2001:db8::1]:443"),),
        client="10.0.0.2",
    )
    assert resolve_client(ported, nets) == "2001:db8::1"
    # A proxied limiter counts the forwarded client, not the proxy.
    limiter = RateLimiter(RateLimits(verify_per_5m=1, trusted_proxies=nets))
    for ip in ("1.1.1.1", "2.2.2.2"):
        req = Request(
            method="GET",
            target="/auth/v1/verify",
            headers=(("x-forwarded-for", ip),),
            client="10.0.0.2",
        )
        assert limiter.admit(req, "/verify", now=0) is None


def test_parse_networks_names_the_bad_entry() -> None:
    with pytest.raises(ValueError, match=r"'10\.0\.0\.300'"):
        parse_networks("10.0.0.0/8,10.0.0.300")
    assert parse_networks(" , ") == ()


@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    path=st.text(max_size=30),
    body=st.binary(max_size=200),
    client=st.one_of(st.none(), st.text(max_size=40)),
    xff=st.text(alphabet=st.characters(max_codepoint=255), max_size=60),
)
def test_any_request_is_admitted_or_refused(
    method: str, path: str, body: bytes, client: str | None, xff: str
) -> None:
    limiter = RateLimiter(RateLimits(trusted_proxies=parse_networks("0.0.0.0/0,::/0")))
    req = Request(
        method=method,
        target="/auth/v1" + path,
        headers=(("x-forwarded-for", xff),),
        body=body,
        client=client,
    )
    response = limiter.admit(req, path, now=0.0)
    assert response is None or response.status == 429


def test_project_mail_quota() -> None:
    limiter = RateLimiter(RateLimits(email_sent_per_hour=2))
    assert limiter.take_mail(now=0.0)
    assert limiter.take_mail(now=1.0)
    assert not limiter.take_mail(now=2.0)
    # One mail comes back every 30 minutes; a refusal takes nothing.
    assert not limiter.take_mail(now=1700.0)
    assert limiter.take_mail(now=1801.0)
    assert not limiter.take_mail(now=1802.0)
    unlimited = RateLimiter(RateLimits(email_sent_per_hour=0))
    assert all(unlimited.take_mail(now=0.0) for _ in range(1000))
