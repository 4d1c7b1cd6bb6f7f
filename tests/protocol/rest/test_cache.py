"""PlanCache: a remembered read is the same plan as a fresh one, with this caller's settings."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial

import pytest
from hypothesis import given
from hypothesis import strategies as st

from madbase.protocol.http.messages import Request, Response
from madbase.protocol.identity.bearer import Principal
from madbase.protocol.rest import (
    Plan,
    PlanCache,
    RestError,
    RestLimits,
    SchemaSnapshot,
    parse_request,
    plan_request,
    render_rest_error,
)
from tests.protocol.rest.test_plan import SNAP, table

ANON = Principal(role="anon", claims_json='{"role":"anon"}')
USER = Principal(role="authenticated", claims_json='{"role":"authenticated","sub":"u1"}')
LIMITS = RestLimits()


def req(target: str, *headers: tuple[str, str], method: str = "GET", body: bytes = b"") -> Request:
    return Request(method=method, target="/rest/v1" + target, headers=headers, body=body)


def fresh(request: Request, auth: Principal, headers_json: str, snap: SchemaSnapshot = SNAP):
    path = request.path.removeprefix("/rest/v1")
    api = parse_request(request, path, LIMITS, ("public",))
    return plan_request(api, snap, auth, limits=LIMITS, path=path, headers_json=headers_json)


def cached(cache: PlanCache, request: Request, auth: Principal, headers_json: str = "{}"):
    path = request.path.removeprefix("/rest/v1")
    return cache.plan(request, path, SNAP, auth, headers_json=headers_json)


def test_hit_is_the_fresh_plan_for_the_new_caller() -> None:
    cache = PlanCache(LIMITS, ("public",))
    first = req("/cities?select=id,name&id=eq.7", ("prefer", "count=exact"))
    assert cached(cache, first, ANON, '{"x":"1"}') == fresh(first, ANON, '{"x":"1"}')
    again = req(
        "/cities?select=id,name&id=eq.7",
        ("prefer", "count=exact"),
        ("cookie", "session=abc; theme=dark"),
        ("authorization", "Bearer t"),
    )
    hit = cached(cache, again, USER, '{"y":"2"}')
    assert (cache.hits, cache.misses) == (1, 1)
    assert hit == fresh(again, USER, '{"y":"2"}')
    settings = dict(hit.transaction.settings)
    assert settings["role"] == "authenticated"
    assert settings["request.jwt.claims"] == USER.claims_json
    assert settings["request.headers"] == '{"y":"2"}'
    assert settings["request.cookies"] == '{"session":"abc","theme":"dark"}'
    assert hit.anonymous is False


@pytest.mark.parametrize(
    "other",
    [
        req("/cities?select=id,name&id=eq.8"),
        req("/cities?select=id,name&id=eq.7", ("accept", "application/vnd.pgrst.object+json")),
        req("/cities?select=id,name&id=eq.7", ("range", "0-1")),
        req("/cities?select=id,name&id=eq.7", ("prefer", "count=exact")),
        req("/cities?select=id,name&id=eq.7", method="HEAD"),
        req("/countries?select=id,name&id=eq.7"),
    ],
)
def test_anything_that_shapes_the_plan_is_in_the_key(other: Request) -> None:
    cache = PlanCache(LIMITS, ("public",))
    cached(cache, req("/cities?select=id,name&id=eq.7"), ANON)
    assert cached(cache, other, ANON) == fresh(other, ANON, "{}")
    assert cache.hits == 0


def test_other_writes_calls_bodies_errors_and_long_queries_are_not_kept() -> None:
    cache = PlanCache(LIMITS, ("public",))
    upsert = ("prefer", "resolution=merge-duplicates")
    cached(cache, req("/cities", upsert, method="POST", body=b'{"id":1}'), ANON)
    cached(cache, req("/cities?id=eq.1", method="PATCH", body=b'{"name":"x"}'), ANON)
    cached(cache, req("/cities?id=eq.1", method="PUT", body=b'{"id":1,"name":"x"}'), ANON)
    cached(cache, req("/cities?id=eq.1", method="DELETE"), ANON)
    cached(cache, req("/cities?select=id", method="GET", body=b"{}"), ANON)
    long = "/cities?id=in.(" + ",".join(str(i) for i in range(600)) + ")"
    cached(cache, req(long), ANON)
    for _ in range(2):
        with pytest.raises(RestError):
            cached(cache, req("/cities?select=nope"), ANON)
    assert len(cache) == 0
    assert cache.hits == 0


def test_an_explained_insert_is_not_kept() -> None:
    limits = RestLimits(plan_enabled=True)
    cache = PlanCache(limits, ("public",))
    explain = ("accept", "application/vnd.pgrst.plan+json")
    for _ in range(2):
        plan = cache.plan(post(b'{"id":1}', explain), "/cities", SNAP, ANON, headers_json="{}")
        assert plan.explain
    assert len(cache) == 0
    assert cache.hits == 0


def test_a_new_snapshot_empties_the_cache_and_size_is_bounded() -> None:
    cache = PlanCache(LIMITS, ("public",), size=3)
    for i in range(5):
        cached(cache, req(f"/cities?id=eq.{i}"), ANON)
    assert len(cache) == 3
    cached(cache, req("/cities?id=eq.4"), ANON)
    assert cache.hits == 1
    # The table loses a column: the remembered plan must not be used.
    narrower = SchemaSnapshot.build(schemas=("public",), relations=(table("cities", "id"),))
    request = req("/cities?select=id,name")
    cached(cache, request, ANON)
    with pytest.raises(RestError):
        cache.plan(request, "/cities", narrower, ANON, headers_json="{}")
    assert len(cache) == 0


@given(
    query=st.sampled_from(["select=*", "select=id,country:countries(name)", "id=gt.1&order=id"]),
    role=st.sampled_from([ANON, USER]),
    headers_json=st.sampled_from(["{}", '{"a":"b"}']),
    repeat=st.integers(min_value=1, max_value=3),
)
def test_cached_equals_fresh(query: str, role: Principal, headers_json: str, repeat: int) -> None:
    cache = PlanCache(LIMITS, ("public",))
    request = req(f"/cities?{query}")
    for _ in range(repeat):
        assert cached(cache, request, role, headers_json) == fresh(request, role, headers_json)


# --- inserts ----------------------------------------------------------------------------------


def post(body: bytes, *headers: tuple[str, str], target: str = "/cities") -> Request:
    return req(target, *headers, method="POST", body=body)


def test_an_insert_of_the_same_shape_binds_the_new_body() -> None:
    cache = PlanCache(LIMITS, ("public",))
    minimal = ("prefer", "return=minimal")
    first = post(b'{"id":1,"name":"a"}', minimal)
    assert cached(cache, first, ANON) == fresh(first, ANON, "{}")
    again = post(b'{"id": 2, "name": "b\\u00e9"}', minimal, ("authorization", "Bearer t"))
    hit = cached(cache, again, USER, '{"y":"2"}')
    assert (cache.hits, cache.misses) == (1, 1)
    assert hit == fresh(again, USER, '{"y":"2"}')
    assert hit.transaction.statements[0].params[0] == again.body.decode()
    assert dict(hit.transaction.settings)["role"] == "authenticated"
    assert hit.anonymous is False


@pytest.mark.parametrize(
    "other",
    [
        post(b'{"id":1}'),  # other columns
        post(b'{"name":"a","id":1}'),  # the same columns in another order
        post(b'[{"id":1,"name":"a"}]'),  # an array
        post(b'{"id":1,"name":"a"}', ("prefer", "return=representation")),
        post(b'{"id":1,"name":"a"}', target="/cities?columns=id,name"),
        post(b'{"id":1,"name":"a"}', target="/countries"),
    ],
)
def test_an_insert_of_another_shape_is_planned_afresh(other: Request) -> None:
    cache = PlanCache(LIMITS, ("public",))
    cached(cache, post(b'{"id":1,"name":"a"}'), ANON)
    assert cached(cache, other, ANON) == fresh(other, ANON, "{}")
    assert cache.hits == 0


@pytest.mark.parametrize(
    "body",
    [b'{"id":1,"nope":2}', b'{"id":1', b"[1, 2]", b'[{"id":1},{"name":"x"}]', b"\xff"],
)
def test_a_bad_body_after_a_cached_insert_fails_as_it_would_uncached(body: bytes) -> None:
    cache = PlanCache(LIMITS, ("public",))
    cached(cache, post(b'{"id":1,"name":"a"}'), ANON)
    with pytest.raises(RestError) as uncached:
        fresh(post(body), ANON, "{}")
    with pytest.raises(RestError) as after_hit:
        cached(cache, post(body), ANON)
    assert render_rest_error(after_hit.value) == render_rest_error(uncached.value)


ROWS = st.lists(
    st.dictionaries(
        st.sampled_from(["id", "name", "country_id", "data"]),
        st.one_of(st.none(), st.integers(), st.text(max_size=5)),
        max_size=4,
    ),
    min_size=1,
    max_size=3,
)


@given(
    bodies=st.lists(st.one_of(ROWS, ROWS.map(lambda rows: rows[0])), min_size=1, max_size=4),
    role=st.sampled_from([ANON, USER]),
    missing=st.sampled_from(["", "missing=default"]),
    # what the statement returns depends on these (RETURNING 1, the key, the selected columns)
    return_=st.sampled_from(["", "return=minimal", "return=headers-only", "return=representation"]),
    target=st.sampled_from(["/cities", "/cities?select=name", "/cities?select=id,countries(id)"]),
)
def test_cached_insert_equals_fresh(
    bodies: list[object], role: Principal, missing: str, return_: str, target: str
) -> None:
    cache = PlanCache(LIMITS, ("public",))
    for value in bodies:
        prefer = ("prefer", ",".join(p for p in (missing, return_) if p))
        request = post(json.dumps(value).encode(), prefer, target=target)
        assert outcome(partial(cached, cache, request, role)) == outcome(
            partial(fresh, request, role, "{}")
        )


def outcome(planning: Callable[[], Plan]) -> Plan | Response:
    """The plan, or the error response planning raised."""
    try:
        return planning()
    except RestError as err:
        return render_rest_error(err)
