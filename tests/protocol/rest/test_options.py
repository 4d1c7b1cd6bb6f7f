"""OPTIONS on /rest/v1: the Allow header PostgREST sends, from what each object can do."""

from __future__ import annotations

import attrs
import pytest

from madbase.protocol.http.messages import Request
from madbase.protocol.identity.bearer import Principal
from madbase.protocol.rest import (
    RestError,
    RestLimits,
    SchemaSnapshot,
    Volatility,
    parse_request,
    plan_request,
    respond,
)
from tests.protocol.rest.test_rpc import FILMS, fn, q

AUTH = Principal(role="anon", claims_json='{"role":"anon"}')
WRITABLE = attrs.evolve(FILMS, insertable=True, updatable=True, deletable=True)
SNAP = SchemaSnapshot.build(
    schemas=("public",),
    relations=(
        WRITABLE,
        attrs.evolve(WRITABLE, name=q("no_pk"), primary_key=()),
        attrs.evolve(FILMS, name=q("read_only_view")),
        attrs.evolve(FILMS, name=q("insert_only"), insertable=True),
        attrs.evolve(FILMS, name=q("update_only"), updatable=True),
        attrs.evolve(FILMS, name=q("delete_only"), deletable=True),
    ),
    functions=(
        fn("stable", volatility=Volatility.STABLE),
        fn("immutable"),
        fn("volatile", volatility=Volatility.VOLATILE),
    ),
)


def options(path: str) -> str | None:
    limits = RestLimits()
    request = Request(method="OPTIONS", target="/rest/v1" + path)
    api = parse_request(request, path, limits, ("public",))
    plan = plan_request(api, SNAP, AUTH, limits=limits, path=path, headers_json="{}")
    assert plan.transaction.statements == ()
    response = respond(plan, [])
    assert (response.status, response.body) == (200, b"")
    return response.header("allow")


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/films", "OPTIONS,GET,HEAD,POST,PUT,PATCH,DELETE"),
        ("/no_pk", "OPTIONS,GET,HEAD,POST,PATCH,DELETE"),
        ("/read_only_view", "OPTIONS,GET,HEAD"),
        ("/insert_only", "OPTIONS,GET,HEAD,POST"),
        ("/update_only", "OPTIONS,GET,HEAD,PATCH"),
        ("/delete_only", "OPTIONS,GET,HEAD,DELETE"),
        ("/rpc/stable", "OPTIONS,GET,HEAD,POST"),
        ("/rpc/immutable", "OPTIONS,GET,HEAD,POST"),
        ("/rpc/volatile", "OPTIONS,POST"),
        ("/", "OPTIONS,GET,HEAD"),
    ],
)
def test_allow_header(path: str, allow: str) -> None:
    assert options(path) == allow


@pytest.mark.parametrize(("path", "code"), [("/flims", "PGRST205"), ("/rpc/nope", "PGRST202")])
def test_unknown_objects_are_404(path: str, code: str) -> None:
    with pytest.raises(RestError) as info:
        options(path)
    assert (info.value.status, info.value.code) == (404, code)
