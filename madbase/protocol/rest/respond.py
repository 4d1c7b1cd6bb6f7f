"""`respond`: the result of a planned transaction to PostgREST's response (`Response.hs`).

Status and Content-Range follow PostgREST's range rules: with a known total, an offset past it is
416 PGRST103 and a page smaller than the total is 206; `Content-Range` is `first-last/total`,
`*` for the range when the page is empty and for the total when none was counted.

Writes (PostgREST `Response.hs` `actionResponse`): POST answers 201, PATCH/DELETE/PUT 200 with
`return=representation` else 204; `Content-Range` is `*/total` (PATCH: `0-(n-1)/total`);
`return=headers-only` on POST adds `Location: /t?pk=eq.v` from the first written row. A PUT
that wrote nothing had a payload key that differs from the URL's (PGRST115).

Function calls (`_call_response`) answer as reads, except that a `void` function answers 204
with no body and no Content-Type (PostgREST `Response.hs`, since 7.0), that the status and
headers a function set in `response.status` / `response.headers` replace PostgREST's
(PGRST112/PGRST111 if invalid), and that a call its statement refused on purpose (see
`rpc.guard_error`) answers that refusal.
"""

from __future__ import annotations

import json
from urllib.parse import quote

from madbase.protocol.http.messages import Headers, Response
from madbase.protocol.rest.errors import (
    InvalidRange,
    PutMatchingPkError,
    RestError,
    SingularityError,
    db_error_response,
)
from madbase.protocol.rest.explain import estimated_total, plan_body, planned_total
from madbase.protocol.rest.headers import MediaKind, PreferCount, PreferReturn, to_mime
from madbase.protocol.rest.openapi import render_openapi
from madbase.protocol.rest.plan import Plan
from madbase.protocol.rest.request import Action
from madbase.protocol.rest.rpc import guard_error, with_response_settings
from madbase.protocol.sql import DbError, DbResult

__all__ = ["content_range", "respond"]


def content_range(lower: int, page_rows: int, total: int | None) -> str:
    """The `Content-Range` value for rows `lower`… of a page of `page_rows` rows.

    >>> content_range(0, 10, None), content_range(0, 0, None), content_range(0, 0, 0)
    ('0-9/*', '*/*', '*/0')
    >>> content_range(5, 5, 100)
    '5-9/100'
    """
    upper = lower + page_rows - 1
    range_part = f"{lower}-{upper}" if total != 0 and lower <= upper else "*"
    return f"{range_part}/{'*' if total is None else total}"


def _int(value: bytes | None) -> int | None:
    return None if value is None else int(value)


def respond(plan: Plan, result: list[DbResult] | DbError) -> Response:
    """The response for `result` of `plan.transaction` (a `DbError` gets PostgREST's status)."""
    if plan.allow is not None:  # OPTIONS: nothing was run
        return Response(status=200, headers=(("allow", plan.allow),))
    if plan.action in (Action.CALL, Action.CALL_READ):
        return _call_response(plan, result)
    if isinstance(result, DbError):
        response = db_error_response(
            result.sqlstate,
            result.message,
            result.detail,
            result.hint,
            authenticated=not plan.anonymous,
        )
        return _strip(plan, response)
    if plan.explain:
        headers: Headers = (("content-type", f"{to_mime(plan.media_type)}; charset=utf-8"),)
        if plan.profile is not None:
            headers += (("content-profile", plan.profile),)
        body = b"" if plan.head else plan_body(result[-1])
        return Response(status=200, headers=headers, body=body)
    if plan.openapi is not None:
        document = render_openapi(plan.openapi, result[plan.result].rows[0][0])
        headers = (("content-type", "application/openapi+json; charset=utf-8"),)
        if plan.profile is not None:
            headers += (("content-profile", plan.profile),)
        return Response(status=200, headers=headers, body=b"" if plan.head else document)
    if plan.action is not Action.READ:
        return _write_response(plan, result[plan.result].rows[0])
    row = result[plan.result].rows[0]
    total = _int(row[0])
    if plan.count is PreferCount.PLANNED:
        total = planned_total(result[-1])
    elif plan.count is PreferCount.ESTIMATED:
        total = estimated_total(total, planned_total(result[-1]), plan.max_rows)
    page_rows = _int(row[1]) or 0
    body = b"" if row[2] is None else row[2]
    lower = plan.offset
    status = 200
    if total is not None:
        if lower > total:
            return _strip(plan, InvalidRange.out_of_bounds(lower, total).to_response())
        if page_rows < total:
            status = 206
    if plan.media_type.kind is MediaKind.OBJECT and page_rows != 1:
        return _strip(plan, SingularityError.for_rows(page_rows).to_response())
    headers = (
        ("content-type", f"{to_mime(plan.media_type)}; charset=utf-8"),
        ("content-range", content_range(lower, page_rows, total)),
    )
    if plan.profile is not None:
        headers += (("content-profile", plan.profile),)
    if plan.preference_applied is not None:
        headers += (("preference-applied", plan.preference_applied),)
    return Response(status=status, headers=headers, body=b"" if plan.head else body)


def _location(plan: Plan, keys: bytes | None) -> str | None:
    """`/t?id=eq.1&...` for the one written row (None: no key, or not exactly one row).

    The key columns come in table order, as the statement listed them; a NULL key is `is.null`.
    """
    if plan.location is None or keys is None or not plan.primary_key:
        return None
    values = json.loads(keys)
    query = "&".join(
        f"{quote(k, safe='')}=" + ("is.null" if v is None else "eq." + quote(v, safe=""))
        for k, v in zip(plan.primary_key, values, strict=True)
    )
    return f"{plan.location}?{query}"


def _write_response(plan: Plan, row: tuple[bytes | None, ...]) -> Response:
    total = _int(row[0])
    affected = _int(row[1]) or 0
    inserted = _int(row[4])
    if plan.action is Action.SINGLE_UPSERT and affected == 0:
        return PutMatchingPkError().to_response()
    representation = plan.return_ is PreferReturn.REPRESENTATION
    if plan.media_type.kind is MediaKind.OBJECT and affected != 1:
        # the guard statement rolled this back already; kept for plans without one
        return SingularityError.for_rows(affected).to_response()
    if plan.action is Action.UPDATE:
        range_ = content_range(0, affected, total)
    else:
        range_ = f"*/{'*' if total is None else total}"
    headers: Headers = ()
    if representation:
        headers += (("content-type", f"{to_mime(plan.media_type)}; charset=utf-8"),)
    headers += (("content-range", range_),)
    creating = plan.action in (Action.CREATE, Action.UPSERT)
    if creating and plan.return_ is PreferReturn.HEADERS_ONLY:
        location = _location(plan, row[3])
        if location is not None:
            headers += (("location", location),)
    if plan.profile is not None:
        headers += (("content-profile", plan.profile),)
    if plan.preference_applied is not None:
        headers += (("preference-applied", plan.preference_applied),)
    if creating:
        # a merging upsert that only updated rows is 200 (PostgREST's `pgrst.inserted`)
        status = 200 if plan.upsert_merge and inserted is not None and inserted <= 0 else 201
    elif not representation:
        status = 204
    elif plan.action is Action.SINGLE_UPSERT:
        status = 201 if inserted else 200
    else:
        status = 200
    body = (b"" if row[2] is None else row[2]) if representation else b""
    return Response(status=status, headers=headers, body=body)


def _strip(plan: Plan, response: Response) -> Response:
    """Errors on HEAD keep their status and headers but send no body."""
    if plan.head:
        return Response(
            status=response.status,
            headers=response.headers,
            body=b"",
            error_code=response.error_code,
        )
    return response


def _call_response(plan: Plan, result: list[DbResult] | DbError) -> Response:
    """A function call's response: a read's, but void is 204 and the function has a say."""
    if isinstance(result, DbError):
        refused = guard_error(result.sqlstate, result.message)
        if refused is not None:
            return _strip(plan, refused.to_response())
        response = db_error_response(
            result.sqlstate,
            result.message,
            result.detail,
            result.hint,
            authenticated=not plan.anonymous,
        )
        return _strip(plan, response)
    row = result[-1].rows[0]
    total = _int(row[0])
    page_rows = _int(row[1]) or 0
    lower = plan.offset
    status = 200
    if total is not None:
        if lower > total:
            return _strip(plan, InvalidRange.out_of_bounds(lower, total).to_response())
        if page_rows < total:
            status = 206
    headers: Headers = (("content-range", content_range(lower, page_rows, total)),)
    body = b""
    if plan.returns_void:
        status = 204
    else:
        if plan.media_type.kind is MediaKind.OBJECT and page_rows != 1:
            return _strip(plan, SingularityError.for_rows(page_rows).to_response())
        headers = (("content-type", f"{to_mime(plan.media_type)}; charset=utf-8"), *headers)
        if plan.profile is not None:
            headers += (("content-profile", plan.profile),)
        if not plan.head and row[2] is not None:
            body = row[2]
    if plan.preference_applied is not None:
        headers += (("preference-applied", plan.preference_applied),)
    try:
        return with_response_settings(
            Response(status=status, headers=headers, body=body), row[3], row[4]
        )
    except RestError as err:
        return _strip(plan, err.to_response())
