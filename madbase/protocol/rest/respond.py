"""`respond`: the result of a planned transaction to PostgREST's response (`Response.hs`).

Status and Content-Range follow PostgREST's range rules: with a known total, an offset past it is
416 PGRST103 and a page smaller than the total is 206; `Content-Range` is `first-last/total`,
`*` for the range when the page is empty and for the total when none was counted.
"""

from __future__ import annotations

from madbase.protocol.http.messages import Headers, Response
from madbase.protocol.rest.errors import InvalidRange, SingularityError, db_error_response
from madbase.protocol.rest.headers import MediaKind, to_mime
from madbase.protocol.rest.plan import Plan
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
    if isinstance(result, DbError):
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
    headers: Headers = (
        ("content-type", f"{to_mime(plan.media_type)}; charset=utf-8"),
        ("content-range", content_range(lower, page_rows, total)),
    )
    if plan.profile is not None:
        headers += (("content-profile", plan.profile),)
    if plan.preference_applied is not None:
        headers += (("preference-applied", plan.preference_applied),)
    return Response(status=status, headers=headers, body=b"" if plan.head else body)


def _strip(plan: Plan, response: Response) -> Response:
    """Errors on HEAD keep their status and headers but send no body."""
    if plan.head:
        return Response(status=response.status, headers=response.headers, body=b"")
    return response
