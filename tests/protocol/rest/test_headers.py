"""Prefer, Range, Accept/Content-Type media types and the schema profiles."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given

from madbase.protocol.rest import (
    MediaKind,
    MediaType,
    MediaTypeError,
    PlanFormat,
    PlanOption,
    PreferCount,
    Preferences,
    PreferHandling,
    PreferMissing,
    PreferResolution,
    PreferReturn,
    PreferTransaction,
    RangeHeader,
    RestError,
    UnacceptableSchema,
    negotiate,
    parse_accept,
    parse_media_type,
    parse_prefer,
    parse_range,
    preference_applied,
    render_prefer,
    render_range,
    select_schema,
    to_mime,
)
from tests.protocol.rest.strategies import header_text, media_types, prefer_text, preferences

# --- Prefer ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([], Preferences()),
        (["return=minimal"], Preferences(return_=PreferReturn.MINIMAL)),
        (["return=headers-only"], Preferences(return_=PreferReturn.HEADERS_ONLY)),
        (["return=representation"], Preferences(return_=PreferReturn.REPRESENTATION)),
        (["count=exact"], Preferences(count=PreferCount.EXACT)),
        (["count=planned"], Preferences(count=PreferCount.PLANNED)),
        (["count=estimated"], Preferences(count=PreferCount.ESTIMATED)),
        (
            ["resolution=merge-duplicates"],
            Preferences(resolution=PreferResolution.MERGE_DUPLICATES),
        ),
        (
            ["resolution=ignore-duplicates"],
            Preferences(resolution=PreferResolution.IGNORE_DUPLICATES),
        ),
        (["missing=default"], Preferences(missing=PreferMissing.DEFAULT)),
        (["missing=null"], Preferences(missing=PreferMissing.NULL)),
        (["handling=strict"], Preferences(handling=PreferHandling.STRICT)),
        (["handling=lenient"], Preferences(handling=PreferHandling.LENIENT)),
        (["timezone=America/Los_Angeles"], Preferences(timezone="America/Los_Angeles")),
        (["max-affected=10"], Preferences(max_affected=10)),
        (["max-affected=abc"], Preferences()),
        (["max-affected=99999999999999999999"], Preferences()),
        (["params=single-object"], Preferences(invalid=("params=single-object",))),
        (["tx=rollback"], Preferences()),  # no override allowed: ignored, not invalid
        # supabase-js joins with ", " (Headers.append), supabase-py with ",".
        (
            ["resolution=merge-duplicates, count=exact"],
            Preferences(resolution=PreferResolution.MERGE_DUPLICATES, count=PreferCount.EXACT),
        ),
        (
            ["handling=strict,max-affected=5"],
            Preferences(handling=PreferHandling.STRICT, max_affected=5),
        ),
        (["count=exact", "count=planned"], Preferences(count=PreferCount.EXACT)),
        (
            ["  return=minimal  ,  bogus ,"],
            Preferences(return_=PreferReturn.MINIMAL, invalid=("bogus",)),
        ),
        (["Return=minimal"], Preferences(invalid=("Return=minimal",))),
    ],
)
def test_parse_prefer_reads_each_preference(headers: list[str], expected: Preferences) -> None:
    assert parse_prefer(headers) == expected


def test_parse_prefer_keeps_tx_only_with_override() -> None:
    assert (
        parse_prefer(["tx=rollback"], tx_allow_override=True).transaction
        is PreferTransaction.ROLLBACK
    )
    assert (
        parse_prefer(["tx=commit, tx=rollback"], tx_allow_override=True).transaction
        is PreferTransaction.COMMIT
    )


def test_preference_applied_echoes_in_postgrest_order() -> None:
    prefs = parse_prefer(
        [
            "count=exact, return=representation, handling=strict, max-affected=3, missing=default, "
            "resolution=merge-duplicates, timezone=UTC, tx=rollback, bogus"
        ],
        tx_allow_override=True,
    )
    assert preference_applied(prefs) == (
        "resolution=merge-duplicates, missing=default, return=representation, count=exact, "
        "tx=rollback, handling=strict, timezone=UTC, max-affected=3"
    )
    assert preference_applied(Preferences(max_affected=3)) is None
    assert preference_applied(Preferences()) is None


@given(preferences)
def test_prefer_round_trips(prefs: Preferences) -> None:
    assert parse_prefer([render_prefer(prefs)], tx_allow_override=True) == prefs


@given(prefer_text)
def test_parse_prefer_is_total(text: str) -> None:
    parse_prefer([text])


# --- Range -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("0-9", RangeHeader(first=0, last=9)),
        ("10-", RangeHeader(first=10)),
        (" 5-2 ", RangeHeader(first=5, last=2)),
        ("items=0-9", None),
        ("-5", None),
        ("a-b", None),
        ("", None),
    ],
)
def test_parse_range_reads_n_to_m(value: str | None, expected: RangeHeader | None) -> None:
    assert parse_range(value) == expected
    if expected is not None:
        assert parse_range(render_range(expected)) == expected


@given(header_text)
def test_parse_range_is_total(text: str) -> None:
    parse_range(text)


# --- media types -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("application/json", MediaType(kind=MediaKind.JSON)),
        ("Application/JSON; charset=utf-8", MediaType(kind=MediaKind.JSON)),
        ("application/geo+json", MediaType(kind=MediaKind.GEOJSON)),
        ("text/csv", MediaType(kind=MediaKind.CSV)),
        ("text/plain", MediaType(kind=MediaKind.TEXT)),
        ("text/xml", MediaType(kind=MediaKind.XML)),
        ("application/openapi+json", MediaType(kind=MediaKind.OPENAPI)),
        ("application/x-www-form-urlencoded", MediaType(kind=MediaKind.URLENCODED)),
        ("application/octet-stream", MediaType(kind=MediaKind.OCTET_STREAM)),
        ("*/*", MediaType(kind=MediaKind.ANY)),
        ("application/vnd.pgrst.object+json", MediaType(kind=MediaKind.OBJECT)),
        ("application/vnd.pgrst.object", MediaType(kind=MediaKind.OBJECT)),
        ("ApplicatIon/vnd.PgRsT.object+json", MediaType(kind=MediaKind.OBJECT)),
        (
            "application/vnd.pgrst.object+json;nulls=stripped",
            MediaType(kind=MediaKind.OBJECT, nulls_stripped=True),
        ),
        (
            "application/vnd.pgrst.array+json;nulls=stripped",
            MediaType(kind=MediaKind.ARRAY_STRIPPED),
        ),
        ("application/vnd.pgrst.array+json", MediaType(kind=MediaKind.JSON)),
        ("application/vnd.pgrst.array", MediaType(kind=MediaKind.JSON)),
        (
            "application/vnd.pgrst.plan",
            MediaType(kind=MediaKind.PLAN, plan_for=MediaType(kind=MediaKind.JSON)),
        ),
        (
            'application/vnd.pgrst.plan ; for="text/xml" ; options=analyze',
            MediaType(
                kind=MediaKind.PLAN,
                plan_for=MediaType(kind=MediaKind.XML),
                plan_options=(PlanOption.ANALYZE,),
            ),
        ),
        (
            'application/vnd.pgrst.plan+json;for="text/csv"',
            MediaType(
                kind=MediaKind.PLAN,
                plan_for=MediaType(kind=MediaKind.CSV),
                plan_format=PlanFormat.JSON,
            ),
        ),
        (
            "application/vnd.pgrst.plan+text; options=wal|buffers|settings|verbose|analyze|nope",
            MediaType(
                kind=MediaKind.PLAN,
                plan_for=MediaType(kind=MediaKind.JSON),
                plan_options=tuple(PlanOption),
            ),
        ),
        ("application/vnd.twkb", MediaType(kind=MediaKind.OTHER, other="application/vnd.twkb")),
        ("garbage", MediaType(kind=MediaKind.OTHER, other="garbage")),
    ],
)
def test_parse_media_type_reads_postgrest_types(text: str, expected: MediaType) -> None:
    assert parse_media_type(text) == expected


@given(media_types)
def test_media_type_round_trips(media: MediaType) -> None:
    assert parse_media_type(to_mime(media)) == media


@pytest.mark.parametrize(
    ("accept", "kinds"),
    [
        (None, [MediaKind.ANY]),
        ("", [MediaKind.ANY]),
        ("application/json", [MediaKind.JSON]),
        ("text/csv;q=0.5, application/json", [MediaKind.JSON, MediaKind.CSV]),
        ("*/*, application/json", [MediaKind.JSON, MediaKind.ANY]),
        ("text/csv;q=0, application/json", [MediaKind.JSON]),
        ("text/csv;q=abc", [MediaKind.CSV]),
        (
            "application/vnd.pgrst.object+json;nulls=stripped, application/json",
            [MediaKind.OBJECT, MediaKind.JSON],
        ),
    ],
)
def test_parse_accept_ranks_by_q_then_specificity(
    accept: str | None, kinds: list[MediaKind]
) -> None:
    assert [m.kind for m in parse_accept(accept)] == kinds


@given(header_text)
def test_parse_accept_is_idempotent_through_to_mime(text: str) -> None:
    accepts = parse_accept(text)
    assert all(isinstance(m, MediaType) for m in accepts)


ROWS = frozenset({MediaKind.JSON, MediaKind.OBJECT, MediaKind.CSV})


def test_negotiate_picks_first_offered() -> None:
    assert negotiate(parse_accept("text/html, text/csv"), ROWS).kind is MediaKind.CSV
    assert negotiate(parse_accept("*/*"), ROWS) == MediaType(kind=MediaKind.JSON)
    assert negotiate(parse_accept(None), frozenset({MediaKind.OPENAPI})) == MediaType(
        kind=MediaKind.OPENAPI
    )


def test_negotiate_refuses_with_406_listing_the_accepted_types() -> None:
    with pytest.raises(MediaTypeError) as info:
        negotiate(parse_accept("text/html, application/xml;q=0.9"), ROWS)
    err = info.value
    assert (err.status, err.code) == (406, "PGRST107")
    assert err.message == "None of these media types are available: text/html, application/xml"


@given(header_text)
def test_negotiate_accepts_or_raises_rest_error(text: str) -> None:
    with contextlib.suppress(RestError):
        negotiate(parse_accept(text), ROWS)


# --- profiles --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "accept", "content", "expected"),
    [
        ("GET", None, None, ("public", True)),
        ("GET", "api", "public", ("api", True)),
        ("HEAD", "api", None, ("api", True)),
        ("POST", "public", "api", ("api", True)),
        ("PATCH", None, "api", ("api", True)),
        ("PUT", None, "api", ("api", True)),
        ("DELETE", None, "api", ("api", True)),
        ("OPTIONS", "api", None, ("api", True)),
    ],
)
def test_select_schema_reads_the_header_for_the_method(
    method: str, accept: str | None, content: str | None, expected: tuple[str, bool]
) -> None:
    assert select_schema(method, accept, content, ("public", "api")) == expected


def test_select_schema_single_schema_is_not_negotiated() -> None:
    assert select_schema("GET", None, None, ("public",)) == ("public", False)


def test_select_schema_refuses_unexposed_schema_with_406() -> None:
    with pytest.raises(UnacceptableSchema) as info:
        select_schema("POST", None, "private", ("public", "api"))
    err = info.value
    assert (err.status, err.code, err.message, err.hint) == (
        406,
        "PGRST106",
        "Invalid schema: private",
        "Only the following schemas are exposed: public, api",
    )
