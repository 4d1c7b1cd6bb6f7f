"""The transaction settings row-level security reads, shared by every service."""

from __future__ import annotations

import json

from madbase.protocol.identity import (
    Principal,
    cookies_json,
    headers_json,
    rls_settings,
    verify_bearer,
)
from tests.strategies import NOW, SECRET


def test_rls_settings_in_postgrest_order() -> None:
    who = Principal(role="authenticated", claims_json='{"role":"authenticated","sub":"u"}')
    settings = rls_settings(
        who,
        method="PATCH",
        path="/todos",
        headers=headers_json((("prefer", "return=minimal"),)),
        cookies=cookies_json((("sb", "1"),)),
    )
    assert settings == (
        ("role", "authenticated"),
        ("request.jwt.claims", '{"role":"authenticated","sub":"u"}'),
        ("request.method", "PATCH"),
        ("request.path", "/todos"),
        ("request.headers", '{"prefer":"return=minimal"}'),
        ("request.cookies", '{"sb":"1"}'),
    )


def test_rls_settings_anonymous_claims_name_the_role() -> None:
    anon = verify_bearer(None, SECRET, now=NOW)
    settings = dict(rls_settings(anon, method="GET", path="/", headers="{}", cookies="{}"))
    assert json.loads(settings["request.jwt.claims"]) == {"role": "anon"}
    assert settings["role"] == "anon"


def test_headers_json_last_value_wins_and_keeps_unicode() -> None:
    assert headers_json((("x-a", "é"), ("x-a", "ü"))) == '{"x-a":"ü"}'
    assert cookies_json(()) == "{}"
