"""The query string as a whole: decoding, reserved keys, embed prefixes, ranges, round trip."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from madbase.protocol.rest import (
    InvalidRange,
    PathRange,
    QueryParamError,
    QueryParams,
    RestError,
    RestLimits,
    Star,
    decode_query,
    parse_query,
    to_query_string,
)
from tests.protocol.rest.strategies import grammar_text, query_params


@pytest.mark.parametrize(
    ("raw", "pairs"),
    [
        ("", ()),
        ("a=1", (("a", "1"),)),
        ("a=x+y", (("a", "x y"),)),
        ("a=%2B%25%2C", (("a", "+%,"),)),
        ("a=1&&b=2", (("a", "1"), ("b", "2"))),
        ("flag&a=", (("a", ""),)),
        ("a=b=c", (("a", "b=c"),)),
        ("a=%C3%A9", (("a", "é"),)),
        ("a=\xc3\xa9", (("a", "é"),)),  # raw UTF-8 bytes the server decoded as latin-1
        ("a;b=1", (("a;b", "1"),)),
    ],
)
def test_decode_query_is_form_urlencoded(raw: str, pairs: tuple[tuple[str, str], ...]) -> None:
    assert decode_query(raw) == pairs


@pytest.mark.parametrize(
    ("raw", "details"),
    [
        ("a=%zz", 'invalid percent-encoding at byte 0 of "%zz"'),
        ("a=%2", 'invalid percent-encoding at byte 0 of "%2"'),
        ("a=%", 'invalid percent-encoding at byte 0 of "%"'),
        ("a=%C3%28", 'invalid UTF-8 in "%C3%28"'),
        ("a=%FF", 'invalid UTF-8 in "%FF"'),
        ("a=\xff", 'invalid UTF-8 in "\\255"'),
        ("a=%00", "NUL characters are not allowed"),
        ("a%00=1", "NUL characters are not allowed"),
        ("a=\x00", "NUL characters are not allowed"),
        ("a=\ud800", 'invalid UTF-8 in "\\55296"'),
    ],
)
def test_decode_query_refuses_bad_encoding_with_400(raw: str, details: str) -> None:
    with pytest.raises(QueryParamError) as info:
        decode_query(raw)
    err = info.value
    assert (err.status, err.code, err.details) == (400, "PGRST100", details)
    assert err.message == f"failed to decode query parameter ({raw})"


def test_parse_query_defaults() -> None:
    assert parse_query("") == QueryParams()
    assert parse_query("").select == (Star(),)
    assert parse_query("select=").select == ()


def test_parse_query_sorts_keys_by_last_word() -> None:
    q = parse_query(
        "select=id,actors(*)&id=eq.1&actors.first_name=eq.Tom&roles.actors.order=last_name"
        "&actors.limit=10&actors.offset=2&a.b.offset=3&actors.or=(a.eq.1)&not.or=(b.eq.2)"
        "&actors.not.and=(c.eq.3)&columns=%22a%22,%22b%22&on_conflict=a,b&order=id.desc"
        "&limit=5&offset=0&apikey=secret&order"
    )
    assert [(f.path, f.filter.field.name) for f in q.filters] == [
        ((), "id"),
        (("actors",), "first_name"),
    ]
    assert [(o.path, len(o.terms)) for o in q.order] == [(("roles", "actors"), 1), ((), 1)]
    assert q.ranges == (
        PathRange(path=("actors",), offset=2, limit=10),
        PathRange(path=("a", "b"), offset=3),
        PathRange(path=(), offset=0, limit=5),
    )
    assert [(item.path, item.tree.negated, item.tree.operator.value) for item in q.logic] == [
        (("actors",), False, "or"),
        ((), True, "or"),
        (("actors",), True, "and"),
    ]
    assert q.columns == ("a", "b")
    assert q.on_conflict == ("a", "b")


def test_parse_query_first_select_wins_and_last_order_wins() -> None:
    q = parse_query("select=a&select=b&order=a&order=b.desc&limit=1&limit=2")
    assert [item.field.name for item in q.select] == ["a"]  # type: ignore[union-attr]
    assert [t.field.name for o in q.order for t in o.terms] == ["b"]
    assert q.ranges == (PathRange(path=(), limit=2),)


def test_parse_query_same_column_may_repeat() -> None:
    q = parse_query("age=gte.18&age=lte.65")
    assert len(q.filters) == 2


def test_parse_query_rpc_read_splits_arguments_from_filters() -> None:
    q = parse_query("a=1&v=1&v=2&id=gt.3&name=in.x&b=", rpc_read=True)
    assert q.rpc_args == (("a", "1"), ("v", "1"), ("v", "2"), ("name", "in.x"), ("b", ""))
    assert [f.filter.field.name for f in q.filters] == ["id"]


def test_parse_query_refuses_non_operators_outside_rpc_read() -> None:
    with pytest.raises(QueryParamError) as info:
        parse_query("a=1")
    assert info.value.message == '"failed to parse filter (1)" (line 1, column 1)'


@pytest.mark.parametrize(
    ("raw", "message", "details"),
    [
        (
            "limit=abc",
            "failed to parse limit parameter (abc)",
            'unexpected "abc" expecting an integer',
        ),
        ("limit=", "failed to parse limit parameter ()", 'unexpected "" expecting an integer'),
        (
            "offset=1.5",
            "failed to parse offset parameter (1.5)",
            'unexpected "1.5" expecting an integer',
        ),
        (
            "offset=-2",
            "failed to parse offset parameter (-2)",
            "Offset should be greater than or equal to zero.",
        ),
        (
            "limit=99999999999999999999",
            "failed to parse limit parameter (99999999999999999999)",
            "99999999999999999999 is out of range for a 64-bit integer",
        ),
        (
            "a..limit=1",
            '"failed to parse tree path (a..limit)" (line 1, column 3)',
            'unexpected "." expecting field name (* or [a..z0..9_$])',
        ),
    ],
)
def test_parse_query_refuses_bad_limits(raw: str, message: str, details: str) -> None:
    with pytest.raises(QueryParamError) as info:
        parse_query(raw)
    assert (info.value.message, info.value.details) == (message, details)


def test_parse_query_negative_limit_is_416() -> None:
    with pytest.raises(InvalidRange) as info:
        parse_query("limit=-1")
    err = info.value
    assert (err.status, err.code, err.details) == (
        416,
        "PGRST103",
        "Limit should be greater than or equal to zero.",
    )


def test_parse_query_logic_depth_comes_from_limits() -> None:
    value = "(" + "or(" * 3 + "a.eq.1" + ")" * 4
    assert parse_query(f"or={value}", limits=RestLimits(max_logic_depth=4)).logic
    with pytest.raises(QueryParamError):
        parse_query(f"or={value}", limits=RestLimits(max_logic_depth=3))


def test_parse_query_embed_depth_comes_from_limits() -> None:
    with pytest.raises(QueryParamError):
        parse_query("select=a(b(c))", limits=RestLimits(max_embed_depth=1))


def test_parse_query_100kb_of_filters_parses() -> None:
    query = "&".join(f"c{i}=eq.{'x' * 20}" for i in range(4000))
    assert len(query) > 100_000
    assert len(parse_query(query).filters) == 4000


def test_parse_query_100kb_value_parses() -> None:
    value = "(" + ",".join(f"a.eq.{i}" for i in range(15000)) + ")"
    assert len(value) > 100_000
    assert len(parse_query(f"or={value}").logic[0].tree.children) == 15000
    assert len(parse_query("id=in.(" + ",".join(map(str, range(20000))) + ")").filters) == 1


def test_parse_query_100kb_of_garbage_is_a_clean_error() -> None:
    with pytest.raises(QueryParamError):
        parse_query("select=" + "(" * 100_000)
    with pytest.raises(QueryParamError):
        parse_query("or=" + "(" * 100_000)


def test_to_query_string_percent_encodes() -> None:
    q = parse_query("a=eq.x%26y%2Bz+w&b=in.(%22%25%22)")
    assert to_query_string(q) == "a=eq.x%26y%2Bz%20w&b=in.(%25)"


@given(query_params())
def test_query_params_round_trip(params: QueryParams) -> None:
    assert parse_query(to_query_string(params)) == params


@given(query_params(rpc_read=True))
def test_query_params_round_trip_for_rpc_reads(params: QueryParams) -> None:
    assert parse_query(to_query_string(params), rpc_read=True) == params


@settings(max_examples=300)
@given(
    st.one_of(
        grammar_text,
        st.text(max_size=300),
        st.lists(
            st.tuples(
                st.sampled_from(
                    [
                        "select",
                        "order",
                        "a.limit",
                        "offset",
                        "or",
                        "not.and",
                        "x",
                        "a.b",
                        "columns",
                        "on_conflict",
                    ]
                ),
                grammar_text,
            ),
            max_size=5,
        ).map(lambda pairs: "&".join(f"{k}={v}" for k, v in pairs)),
    ),
    st.booleans(),
)
@example("select=%", False)
@example("limit=%2D1", False)
def test_parse_query_accepts_or_raises_rest_error(raw: str, rpc_read: bool) -> None:
    with contextlib.suppress(RestError):
        parse_query(raw, rpc_read=rpc_read)


def test_parse_query_reuses_parses_of_short_queries_only() -> None:
    short = "select=id,name&id=eq.42&order=id.desc&limit=3"
    assert parse_query(short) is parse_query(short)
    assert parse_query(short) is not parse_query(short, rpc_read=True)
    strict = RestLimits(max_logic_depth=1)
    nested = "or=(a.eq.1,and(b.eq.2,c.eq.3))"
    assert parse_query(nested).logic
    with pytest.raises(QueryParamError):  # the cached parse under other limits is not reused
        parse_query(nested, limits=strict)
    long = "id=in.(" + ",".join(str(i) for i in range(600)) + ")"
    assert len(long) > 2048
    assert parse_query(long) == parse_query(long)
    assert parse_query(long) is not parse_query(long)
    # Errors are raised every time, never remembered as values.
    for _ in range(2):
        with pytest.raises(QueryParamError):
            parse_query("id=zz.1")
