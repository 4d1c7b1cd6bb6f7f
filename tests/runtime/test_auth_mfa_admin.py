"""`AuthService` against the embedded Postgres: TOTP factors with aal2 sessions, the admin users API."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import jwt
import pytest

from madbase.protocol.auth.mfa.totp import decode_secret, totp_at
from tests.runtime.test_auth_service import SECRET, Auth, auth, body

__all__ = ["auth"]  # the fixture, imported for pytest

pytestmark = pytest.mark.pg


def decode(token: str) -> dict[str, Any]:
    """The claims of an access token (the test clock runs ahead of the real one)."""
    claims: dict[str, Any] = jwt.decode(
        token,
        SECRET,
        algorithms=["HS256"],
        audience="authenticated",
        options={"verify_iat": False, "verify_exp": False},
    )
    return claims


def service_token(role: str = "service_role") -> str:
    return jwt.encode({"role": role, "iss": "supabase", "iat": 0, "exp": 4_102_444_800}, SECRET)


async def enroll_and_verify(auth: Auth, access: str) -> tuple[str, str, dict[str, Any]]:
    """Enrol a TOTP factor, challenge and verify it; the factor id, secret and new session."""
    enrolled = await auth.call("POST", "/factors", {"factor_type": "totp"}, token=access)
    assert enrolled.status == 200, enrolled.body
    factor = body(enrolled)
    secret = factor["totp"]["secret"]
    challenge = await auth.call("POST", f"/factors/{factor['id']}/challenge", {}, token=access)
    assert challenge.status == 200, challenge.body
    code = totp_at(decode_secret(secret), auth.clock.now)
    verified = await auth.call(
        "POST",
        f"/factors/{factor['id']}/verify",
        {"challenge_id": body(challenge)["id"], "code": code},
        token=access,
    )
    assert verified.status == 200, verified.body
    return factor["id"], secret, body(verified)


async def test_totp_enrol_challenge_verify_refresh_unenrol(auth: Auth) -> None:
    session = await auth.signup()
    access = session["access_token"]
    enrolled = await auth.call(
        "POST", "/factors", {"factor_type": "totp", "friendly_name": "phone app"}, token=access
    )
    factor = body(enrolled)
    assert (factor["type"], factor["friendly_name"]) == ("totp", "phone app")
    assert factor["totp"]["uri"].startswith("otpauth://totp/localhost:3000:alice@example.com?")
    assert factor["totp"]["qr_code"].startswith("<?xml")
    me = body(await auth.call("GET", "/user", token=access))
    assert [(f["id"], f["status"]) for f in me["factors"]] == [(factor["id"], "unverified")]

    # The same name again: GoTrue's name conflict.
    again = await auth.call(
        "POST", "/factors", {"factor_type": "totp", "friendly_name": "phone app"}, token=access
    )
    assert (again.status, body(again)["code"]) == (422, "mfa_factor_name_conflict")

    challenge = body(
        await auth.call("POST", f"/factors/{factor['id']}/challenge", {}, token=access)
    )
    assert challenge["type"] == "totp"
    assert challenge["expires_at"] == int(auth.clock.now.timestamp()) + 300
    wrong = await auth.call(
        "POST",
        f"/factors/{factor['id']}/verify",
        {"challenge_id": challenge["id"], "code": "000000"},
        token=access,
    )
    assert (wrong.status, body(wrong)["code"]) == (422, "mfa_verification_failed")
    # One step of skew is accepted.
    code = totp_at(decode_secret(factor["totp"]["secret"]), auth.clock.now - timedelta(seconds=30))
    verified = await auth.call(
        "POST",
        f"/factors/{factor['id']}/verify",
        {"challenge_id": challenge["id"], "code": code},
        token=access,
    )
    assert verified.status == 200, verified.body
    aal2 = body(verified)
    claims = decode(aal2["access_token"])
    assert claims["aal"] == "aal2"
    assert [entry["method"] for entry in claims["amr"]] == ["totp", "password"] or {
        entry["method"] for entry in claims["amr"]
    } == {"totp", "password"}
    assert aal2["user"]["factors"][0]["status"] == "verified"
    # The session's refresh tokens were swapped: the old one is the parent of the new one, so
    # (as in GoTrue's legacy tokens) presenting it again hands out the new one.
    auth.clock.now += timedelta(seconds=11)
    old = await auth.call(
        "POST", "/token?grant_type=refresh_token", {"refresh_token": session["refresh_token"]}
    )
    assert body(old)["refresh_token"] == aal2["refresh_token"]
    refreshed = await auth.call(
        "POST", "/token?grant_type=refresh_token", {"refresh_token": aal2["refresh_token"]}
    )
    assert refreshed.status == 200, refreshed.body
    assert decode(body(refreshed)["access_token"])["aal"] == "aal2"

    # A used challenge cannot be verified again.
    reused = await auth.call(
        "POST",
        f"/factors/{factor['id']}/verify",
        {"challenge_id": challenge["id"], "code": code},
        token=aal2["access_token"],
    )
    assert (reused.status, body(reused)["code"]) == (422, "mfa_ip_address_mismatch")

    # aal1 sessions of a user with a verified factor cannot remove it.
    password = body(
        await auth.call(
            "POST",
            "/token?grant_type=password",
            {"email": "alice@example.com", "password": "s3cret-pass"},
        )
    )
    assert decode(password["access_token"])["aal"] == "aal1"
    refused = await auth.call("DELETE", f"/factors/{factor['id']}", token=password["access_token"])
    assert (refused.status, body(refused)["code"]) == (422, "insufficient_aal")
    second = await auth.call(
        "POST",
        "/factors",
        {"factor_type": "totp", "friendly_name": "x"},
        token=password["access_token"],
    )
    assert (second.status, body(second)["code"]) == (403, "insufficient_aal")

    gone = await auth.call("DELETE", f"/factors/{factor['id']}", token=aal2["access_token"])
    assert (gone.status, body(gone)) == (200, {"id": factor["id"]})
    assert auth.sql("select count(*) from auth.mfa_factors")[0][0] == 0
    # The session is back at aal1.
    after = body(
        await auth.call(
            "POST",
            "/token?grant_type=refresh_token",
            {"refresh_token": body(refreshed)["refresh_token"]},
        )
    )
    assert decode(after["access_token"])["aal"] == "aal1"
    actions = {row[0] for row in auth.sql("select payload->>'action' from auth.audit_log_entries")}
    assert {"factor_in_progress", "challenge_created", "verification_attempted"} <= actions
    assert "factor_unenrolled" in actions


async def test_totp_challenge_expires_and_unknown_factor(auth: Auth) -> None:
    access = (await auth.signup())["access_token"]
    factor = body(await auth.call("POST", "/factors", {"factor_type": "totp"}, token=access))
    challenge = body(await auth.call("POST", f"/factors/{factor['id']}/challenge", token=access))
    auth.clock.now += timedelta(seconds=301)
    code = totp_at(decode_secret(factor["totp"]["secret"]), auth.clock.now)
    expired = await auth.call(
        "POST",
        f"/factors/{factor['id']}/verify",
        {"challenge_id": challenge["id"], "code": code},
        token=access,
    )
    assert (expired.status, body(expired)["code"]) == (422, "mfa_challenge_expired")
    assert auth.sql("select count(*) from auth.mfa_challenges")[0][0] == 0
    unknown = await auth.call(
        "POST", "/factors/7b0e4f8e-0000-4000-8000-000000000000/challenge", token=access
    )
    assert (unknown.status, body(unknown)["code"]) == (404, "mfa_factor_not_found")
    bad = await auth.call("POST", "/factors/not-a-uuid/challenge", token=access)
    assert (bad.status, body(bad)["code"]) == (404, "validation_failed")


async def test_anonymous_user_cannot_enrol(auth: Auth) -> None:
    anon = body(await auth.call("POST", "/signup", {}))
    refused = await auth.call(
        "POST", "/factors", {"factor_type": "totp"}, token=anon["access_token"]
    )
    assert (refused.status, body(refused)["code"]) == (403, "no_authorization")


async def test_admin_requires_service_role(auth: Auth) -> None:
    none = await auth.call("GET", "/admin/users")
    assert (none.status, body(none)["code"]) == (401, "no_authorization")
    anon = await auth.call("GET", "/admin/users", token=service_token("anon"))
    assert (anon.status, body(anon)["code"]) == (403, "not_admin")
    user = await auth.call("GET", "/admin/users", token=(await auth.signup())["access_token"])
    assert (user.status, body(user)["code"]) == (403, "not_admin")


async def test_admin_create_list_get_update_delete(auth: Auth) -> None:
    admin = service_token()
    created = await auth.call(
        "POST",
        "/admin/users",
        {
            "email": "Bob@Example.com",
            "password": "bob-password",
            "email_confirm": True,
            "user_metadata": {"name": "Bob"},
            "app_metadata": {"plan": "pro"},
        },
        token=admin,
    )
    assert created.status == 200, created.body
    bob = body(created)
    assert bob["email"] == "bob@example.com"
    assert bob["app_metadata"] == {"provider": "email", "providers": ["email"], "plan": "pro"}
    assert bob["user_metadata"] == {"name": "Bob", "email_verified": True}
    assert bob["role"] == "authenticated"
    assert bob["identities"][0]["provider"] == "email"
    duplicate = await auth.call("POST", "/admin/users", {"email": "bob@example.com"}, token=admin)
    assert (duplicate.status, body(duplicate)["code"]) == (422, "email_exists")
    signed_in = await auth.call(
        "POST",
        "/token?grant_type=password",
        {"email": "bob@example.com", "password": "bob-password"},
    )
    assert signed_in.status == 200, signed_in.body
    for i in range(3):
        await auth.call("POST", "/admin/users", {"email": f"u{i}@example.com"}, token=admin)

    listed = await auth.call("GET", "/admin/users?page=1&per_page=2", token=admin)
    assert listed.status == 200
    page = body(listed)
    assert page["aud"] == "authenticated"
    assert len(page["users"]) == 2
    assert page["users"][0]["identities"] is None
    assert listed.header("x-total-count") == "4"
    assert listed.header("link") == (
        '</admin/users?page=2&per_page=2>; rel="next", </admin/users?page=2&per_page=2>; rel="last"'
    )
    bad_page = await auth.call("GET", "/admin/users?page=x", token=admin)
    assert (bad_page.status, body(bad_page)["code"]) == (400, "validation_failed")

    fetched = await auth.call("GET", f"/admin/users/{bob['id']}", token=admin)
    assert body(fetched)["id"] == bob["id"]
    missing = await auth.call(
        "GET", "/admin/users/00000000-0000-4000-8000-000000000000", token=admin
    )
    assert (missing.status, body(missing)["code"]) == (404, "user_not_found")
    malformed = await auth.call("GET", "/admin/users/nope", token=admin)
    assert (malformed.status, body(malformed)["code"]) == (404, "validation_failed")

    updated = await auth.call(
        "PUT",
        f"/admin/users/{bob['id']}",
        {"app_metadata": {"plan": None, "tier": 2}, "user_metadata": {"age": 3}, "role": "anon"},
        token=admin,
    )
    assert updated.status == 200, updated.body
    bob2 = body(updated)
    assert bob2["app_metadata"] == {"provider": "email", "providers": ["email"], "tier": 2}
    assert bob2["user_metadata"] == {"name": "Bob", "email_verified": True, "age": 3}
    assert bob2["role"] == "anon"
    # A role tokens may not name is refused (its tokens would run as it).
    refused = await auth.call("PUT", f"/admin/users/{bob['id']}", {"role": "postgres"}, token=admin)
    assert (refused.status, body(refused)["code"]) == (400, "validation_failed")

    # Banned: no sign-in, no refresh, no /user.
    access = body(signed_in)
    banned = await auth.call(
        "PUT", f"/admin/users/{bob['id']}", {"ban_duration": "24h"}, token=admin
    )
    assert body(banned)["banned_until"]
    refused = await auth.call(
        "POST",
        "/token?grant_type=password",
        {"email": "bob@example.com", "password": "bob-password"},
    )
    assert (refused.status, body(refused)["code"]) == (400, "user_banned")
    no_refresh = await auth.call(
        "POST", "/token?grant_type=refresh_token", {"refresh_token": access["refresh_token"]}
    )
    assert (no_refresh.status, body(no_refresh)["code"]) == (400, "user_banned")
    bad_ban = await auth.call(
        "PUT", f"/admin/users/{bob['id']}", {"ban_duration": "1d"}, token=admin
    )
    assert body(bad_ban) == {
        "code": "validation_failed",
        "message": 'invalid format for ban duration: time: unknown unit "d" in duration "1d"',
    }
    unbanned = body(
        await auth.call("PUT", f"/admin/users/{bob['id']}", {"ban_duration": "none"}, token=admin)
    )
    assert "banned_until" not in unbanned
    again = await auth.call(
        "POST",
        "/token?grant_type=password",
        {"email": "bob@example.com", "password": "bob-password"},
    )
    assert again.status == 200

    # Hard delete: the tokens stop working.
    deleted = await auth.call("DELETE", f"/admin/users/{bob['id']}", {}, token=admin)
    assert (deleted.status, body(deleted)) == (200, {})
    me = await auth.call("GET", "/user", token=body(again)["access_token"])
    assert (me.status, body(me)["code"]) == (403, "user_not_found")
    assert auth.sql("select count(*) from auth.sessions")[0][0] == 0


async def test_admin_soft_delete_obfuscates(auth: Auth) -> None:
    admin = service_token()
    carol = body(
        await auth.call(
            "POST",
            "/admin/users",
            {"email": "carol@example.com", "password": "pw-123456"},
            token=admin,
        )
    )
    deleted = await auth.call(
        "DELETE", f"/admin/users/{carol['id']}", {"should_soft_delete": True}, token=admin
    )
    assert deleted.status == 200
    kept = body(await auth.call("GET", f"/admin/users/{carol['id']}", token=admin))
    assert kept["deleted_at"]
    assert kept["email"] != "carol@example.com"
    assert len(kept["email"]) == 43
    assert kept["user_metadata"] == {}
    assert kept["app_metadata"] == {}
    assert kept["identities"][0]["identity_data"] == {}
    # The address is free again.
    again = await auth.call("POST", "/admin/users", {"email": "carol@example.com"}, token=admin)
    assert again.status == 200, again.body


async def test_admin_factors(auth: Auth) -> None:
    admin = service_token()
    session = await auth.signup()
    factor_id, _, aal2 = await enroll_and_verify(auth, session["access_token"])
    user_id = session["user"]["id"]
    listed = await auth.call("GET", f"/admin/users/{user_id}/factors", token=admin)
    factors = json.loads(listed.body)
    assert [(f["id"], f["status"]) for f in factors] == [(factor_id, "verified")]
    renamed = await auth.call(
        "PUT", f"/admin/users/{user_id}/factors/{factor_id}", {"friendly_name": "key"}, token=admin
    )
    assert body(renamed)["friendly_name"] == "key"
    removed = await auth.call("DELETE", f"/admin/users/{user_id}/factors/{factor_id}", token=admin)
    assert (removed.status, body(removed)["id"]) == (200, factor_id)
    refreshed = body(
        await auth.call(
            "POST", "/token?grant_type=refresh_token", {"refresh_token": aal2["refresh_token"]}
        )
    )
    assert decode(refreshed["access_token"])["aal"] == "aal1"
    unknown = await auth.call("DELETE", f"/admin/users/{user_id}/factors/{factor_id}", token=admin)
    assert (unknown.status, body(unknown)["code"]) == (404, "mfa_factor_not_found")
