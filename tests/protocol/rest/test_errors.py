"""The RestError family, its rendering, and the SQLSTATE → HTTP table."""

from __future__ import annotations

import json

import pytest

from madbase.protocol import rest
from madbase.protocol.http import ProtocolError
from madbase.protocol.rest import (
    InvalidRange,
    JwtClaimsError,
    JwtDecodeError,
    JwtTokenRequired,
    RestError,
    db_error_response,
    render_rest_error,
    status_for_sqlstate,
)

# Spec/rest.md §13: every PostgREST code and its status.
CODES = {
    "PGRST000": 503, "PGRST001": 503, "PGRST002": 503, "PGRST003": 504,
    "PGRST100": 400, "PGRST101": 405, "PGRST102": 400, "PGRST103": 416, "PGRST105": 405,
    "PGRST106": 406, "PGRST107": 406, "PGRST108": 400, "PGRST111": 500, "PGRST112": 500,
    "PGRST114": 400, "PGRST115": 400, "PGRST116": 406, "PGRST117": 405, "PGRST118": 400,
    "PGRST120": 400, "PGRST121": 500, "PGRST122": 400, "PGRST123": 400, "PGRST124": 400,
    "PGRST125": 404, "PGRST126": 404, "PGRST127": 400, "PGRST128": 400,
    "PGRST200": 400, "PGRST201": 300, "PGRST202": 404, "PGRST203": 300, "PGRST204": 400,
    "PGRST205": 404, "PGRST300": 500, "PGRST301": 401, "PGRST302": 401, "PGRST303": 401,
    "PGRSTX00": 500,
}  # fmt: skip
RETIRED = {"PGRST104", "PGRST109", "PGRST110", "PGRST113", "PGRST119"}


def _error_classes() -> list[type[RestError]]:
    return [
        value
        for value in vars(rest).values()
        if isinstance(value, type) and issubclass(value, RestError) and value is not RestError
    ]


def test_error_classes_cover_every_code_once() -> None:
    codes = [cls.code for cls in _error_classes()]
    assert sorted(codes) == sorted(CODES)
    assert not RETIRED & set(codes)


@pytest.mark.parametrize("cls", _error_classes(), ids=lambda c: c.__name__)
def test_error_class_status_and_body(cls: type[RestError]) -> None:
    err = cls("boom", details="d", hint="h")
    assert isinstance(err, ProtocolError)
    assert cls.status == CODES[cls.code]
    response = render_rest_error(err)
    assert response.status == cls.status
    assert json.loads(response.body) == {
        "code": cls.code,
        "message": "boom",
        "details": "d",
        "hint": "h",
    }
    assert response.header("content-type") == "application/json; charset=utf-8"
    assert response.header("proxy-status") == f"PostgREST; error={cls.code}"
    assert json.loads(err.to_response(verbose=False).body) == {"code": cls.code, "message": "boom"}


@pytest.mark.parametrize(
    ("err", "message", "details", "hint"),
    [
        (rest.InvalidRpcMethod.for_method("PUT"), "Cannot use the PUT method on RPC", None, None),
        (
            InvalidRange.out_of_bounds(10, 3),
            "Requested range not satisfiable",
            "An offset of 10 was requested, but there are only 3 rows.",
            None,
        ),
        (
            InvalidRange.lower_gt_upper(),
            "Requested range not satisfiable",
            "The lower boundary must be lower than or equal to the upper boundary in the Range header.",
            None,
        ),
        (
            rest.NotEmbedded.for_resource("actors"),
            "'actors' is not an embedded resource in this request",
            None,
            "Verify that 'actors' is included in the 'select' query parameter.",
        ),
        (
            rest.NotEmbedded.for_resource("films", "f"),
            "'films' is not an embedded resource in this request",
            "Target names are not allowed in filters if they have an alias",
            "Change 'films' to 'f' in filters, orders or limits.",
        ),
        (
            rest.SingularityError.for_rows(2),
            "Cannot coerce the result to a single JSON object",
            "The result contains 2 rows",
            None,
        ),
        (
            rest.RelatedOrderNotToOne.between("a", "b"),
            "A related order on 'b' is not possible",
            "'a' and 'b' do not form a many-to-one or one-to-one relationship",
            None,
        ),
        (
            rest.UnacceptableFilter.for_target("t"),
            "Bad operator on the 't' embedded resource",
            "Only is null or not is null filters are allowed on embedded resources",
            None,
        ),
        (
            rest.InvalidPreferences.for_prefs(("a", "b")),
            "Invalid preferences given with handling=strict",
            "Invalid preferences: a, b",
            None,
        ),
        (
            rest.MaxAffectedViolation.for_rows(9),
            "Query result exceeds max-affected preference constraint",
            "The query affects 9 rows",
            None,
        ),
        (
            rest.ColumnNotFound.in_relation("t", "c"),
            "Could not find the 'c' column of 't' in the schema cache",
            None,
            None,
        ),
        (
            rest.TableNotFound.in_schema("public", "x", "Perhaps you meant the table 'public.y'"),
            "Could not find the table 'public.x' in the schema cache",
            None,
            "Perhaps you meant the table 'public.y'",
        ),
        (
            rest.SchemaCacheNotLoaded(),
            "Could not query the database for the schema cache. Retrying.",
            None,
            None,
        ),
    ],
)
def test_named_constructors_use_postgrest_wording(
    err: RestError, message: str, details: str | None, hint: str | None
) -> None:
    assert (err.message, err.details, err.hint) == (message, details, hint)


def test_jwt_errors_add_www_authenticate() -> None:
    assert JwtDecodeError('Expected 3 parts in JWT; got "2"').to_response().header(
        "www-authenticate"
    ) == ('Bearer error="invalid_token", error_description="Expected 3 parts in JWT; got \\"2\\""')
    assert JwtClaimsError("JWT expired").to_response().header("www-authenticate") == (
        'Bearer error="invalid_token", error_description="JWT expired"'
    )
    assert JwtTokenRequired().to_response().header("www-authenticate") == "Bearer"


@pytest.mark.parametrize(
    ("sqlstate", "message", "authenticated", "status"),
    [
        ("08006", "", True, 503), ("09000", "", True, 500), ("0L000", "", True, 403),
        ("0P000", "", True, 403), ("21000", "UPDATE requires a WHERE clause", True, 400),
        ("21000", "more than one row returned", True, 500),
        ("22023", 'role "x" does not exist', True, 401), ("22023", "bad value", True, 400),
        ("23503", "", True, 409), ("23505", "", True, 409), ("25006", "", True, 405),
        ("25001", "", True, 500), ("28000", "", True, 403), ("2D000", "", True, 500),
        ("38000", "", True, 500), ("39000", "", True, 500), ("3B000", "", True, 500),
        ("40001", "", True, 500), ("40P01", "", True, 500),
        ("42501", "", False, 401), ("42501", "", True, 403),
        ("42883", "function f() does not exist", True, 404),
        ("42883", "function xmlagg(integer) does not exist", True, 406),
        ("42P01", "", True, 404), ("42P17", "", True, 500), ("53400", "", True, 500),
        ("53100", "", True, 503), ("54000", "", True, 500), ("55000", "", True, 500),
        ("57P01", "", True, 503), ("57014", "", True, 500), ("58000", "", True, 500),
        ("F0000", "", True, 500), ("HV000", "", True, 500), ("P0001", "", True, 400),
        ("P0002", "", True, 500), ("XX000", "", True, 500), ("PT402", "", True, 402),
        ("PT999", "", True, 500), ("PTabc", "", True, 500), ("22P02", "", True, 400),
        ("23502", "", True, 400), ("23514", "", True, 400), ("", "", True, 400),
    ],
)  # fmt: skip
def test_status_for_sqlstate_follows_postgrest(
    sqlstate: str, message: str, authenticated: bool, status: int
) -> None:
    assert status_for_sqlstate(sqlstate, message, authenticated=authenticated) == status


def test_db_error_response_body_and_headers() -> None:
    r = db_error_response("42501", "permission denied for table t", None, None, authenticated=False)
    assert r.status == 401
    assert r.header("www-authenticate") == "Bearer"
    assert r.header("proxy-status") == "PostgREST; error=42501"
    assert json.loads(r.body) == {
        "code": "42501",
        "message": "permission denied for table t",
        "details": None,
        "hint": None,
    }
    minimal = db_error_response("23505", "dup", "d", "h", verbose=False)
    assert json.loads(minimal.body) == {"code": "23505", "message": "dup"}


def test_error_responses_name_their_code_for_the_access_log() -> None:
    assert db_error_response("42501", "denied", authenticated=False).error_code == "42501"
    assert render_rest_error(JwtTokenRequired()).error_code == "PGRST302"
    raised = db_error_response(
        "PGRST", '{"code":"123","message":"m"}', '{"status":402,"headers":{}}'
    )
    assert raised.error_code == "123"
    unparsed = db_error_response("PGRST", "not json", '{"status":400,"headers":{}}')
    assert unparsed.error_code == "PGRST121"


def test_db_error_response_raise_pgrst_takes_full_control() -> None:
    r = db_error_response(
        "PGRST",
        '{"code":"123","message":"Payment Required","details":"Quota exceeded","hint":"Upgrade"}',
        '{"status":402,"status_text":"Payment Required","headers":{"X-Powered-By":"Nerd Rage"}}',
    )
    assert r.status == 402
    assert r.header("x-powered-by") == "Nerd Rage"
    assert json.loads(r.body) == {
        "code": "123",
        "message": "Payment Required",
        "details": "Quota exceeded",
        "hint": "Upgrade",
    }
    minimal = db_error_response(
        "PGRST", '{"code":"1","message":"m"}', '{"status":400,"headers":{}}', verbose=False
    )
    assert json.loads(minimal.body) == {"code": "1", "message": "m"}


@pytest.mark.parametrize(
    ("message", "detail", "details"),
    [
        ("not json", '{"status":400,"headers":{}}', "Invalid JSON value for MESSAGE: 'not json'"),
        (
            '{"message":"no code"}',
            '{"status":400,"headers":{}}',
            'Invalid JSON value for MESSAGE: \'{"message":"no code"}\'',
        ),
        ('{"code":"1","message":"m"}', None, "DETAIL is missing in the RAISE statement"),
        ('{"code":"1","message":"m"}', "{", "Invalid JSON value for DETAIL: '{'"),
        (
            '{"code":"1","message":"m"}',
            '{"status":"400","headers":{}}',
            'Invalid JSON value for DETAIL: \'{"status":"400","headers":{}}\'',
        ),
        (
            '{"code":"1","message":"m"}',
            '{"status":400}',
            "Invalid JSON value for DETAIL: '{\"status\":400}'",
        ),
    ],
)
def test_db_error_response_bad_raise_pgrst_is_pgrst121(
    message: str, detail: str | None, details: str
) -> None:
    r = db_error_response("PGRST", message, detail)
    body = json.loads(r.body)
    assert (r.status, body["code"], body["details"]) == (500, "PGRST121", details)
    assert body["message"] == "Could not parse JSON in the \"RAISE SQLSTATE 'PGRST'\" error"
