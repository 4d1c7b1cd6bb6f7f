"""EXPLAIN for `/rest/v1`: the plan media type and the planner's row counts (PostgREST's
`explainF`, `postExplain` and `MainTx.hs`).

`Accept: application/vnd.pgrst.plan+json` (or `+text`; `for="<media type>"`, `options=analyze|
verbose|settings|buffers|wal`) answers the EXPLAIN of the statement the request would run, built
for the inner media type; only when `db-plan-enabled` is on (otherwise the type is not offered:
406 PGRST107). With `analyze` the statement really runs, writes included, as in PostgREST.

`Prefer: count=planned` takes the total from the planner: the row estimate ("Plan Rows") of the
top node of `EXPLAIN (FORMAT JSON)` over the filtered rows. `count=estimated` counts exactly up
to `db-max-rows`; above it (or always, without `db-max-rows`, as PostgREST compares with an
absent limit), the larger of the exact and the planned figures.
"""

from __future__ import annotations

import json

from madbase.protocol.rest.headers import MediaType, PlanFormat, PlanOption
from madbase.protocol.sql import DbResult, Statement

__all__ = ["estimated_total", "explain_statement", "plan_body", "planned_total"]

_OPTIONS = {
    PlanOption.ANALYZE: "ANALYZE",
    PlanOption.VERBOSE: "VERBOSE",
    PlanOption.SETTINGS: "SETTINGS",
    PlanOption.BUFFERS: "BUFFERS",
    PlanOption.WAL: "WAL",
}


def explain_statement(statement: Statement, media: MediaType) -> Statement:
    """`statement` under EXPLAIN with the plan media type's format and options.

    >>> from madbase.protocol.rest.headers import parse_media_type
    >>> m = parse_media_type('application/vnd.pgrst.plan+json; options=analyze|buffers')
    >>> explain_statement(Statement("select 1"), m).sql
    'EXPLAIN (FORMAT JSON, ANALYZE, BUFFERS) select 1'
    """
    parts = ["FORMAT JSON" if media.plan_format is PlanFormat.JSON else "FORMAT TEXT"]
    parts += [_OPTIONS[opt] for opt in media.plan_options]
    return Statement(f"EXPLAIN ({', '.join(parts)}) {statement.sql}", statement.params)


def plan_body(result: DbResult) -> bytes:
    """The response body: EXPLAIN's rows, each followed by a newline (TEXT gives many rows)."""
    return b"".join((row[0] or b"") + b"\n" for row in result.rows)


def planned_total(result: DbResult) -> int | None:
    """The top node's "Plan Rows" of an `EXPLAIN (FORMAT JSON)` result, or None.

    >>> planned_total(DbResult(rows=((b'[{"Plan": {"Plan Rows": 42}}]',),), command="EXPLAIN"))
    42
    """
    try:
        plan = json.loads(result.rows[0][0] or b"null")
        rows = plan[0]["Plan"]["Plan Rows"]
    except (ValueError, LookupError, TypeError):
        return None
    return int(rows) if isinstance(rows, int | float) else None


def estimated_total(exact: int | None, planned: int | None, max_rows: int | None) -> int | None:
    """`count=estimated`: `exact` (counted up to `max_rows` + 1) unless it passed `max_rows`.

    >>> estimated_total(10, 500, 100), estimated_total(101, 500, 100), estimated_total(7, 3, None)
    (10, 500, 7)
    """
    if exact is None:
        return planned
    if max_rows is None or exact > max_rows:
        return exact if planned is None else max(exact, planned)
    return exact
