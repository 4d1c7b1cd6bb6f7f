"""Checks on a write's outcome that must roll it back: PostgREST's `failNotSingular` and
`failExceedsMaxAffectedPref` (`MainTx.hs`), inside the one pipelined transaction.

PostgREST runs the mutation, looks at the affected row count, and condemns the transaction when
`Accept: application/vnd.pgrst.object+json` got other than one row (406 PGRST116) or when
`Prefer: handling=strict, max-affected=N` was exceeded (400 PGRST124). We send BEGIN, the
statement and COMMIT in one round trip, so the decision is made in Postgres: the mutation
statement stores its row count in the transaction-local setting `madbase.affected`, and the
statement `GUARD` that follows it compares the count with the limits the request put in the
settings (`madbase.singular`, `madbase.max_affected`) and, when one is broken, raises
`SQLSTATE 'PGRST'` with PostgREST's error as JSON. The transaction then aborts (nothing is
written) and the error renders like any `RAISE SQLSTATE 'PGRST'` (`errors.db_error_response`).

`GUARD` is constant text: the limits travel as settings, never as SQL.
"""

from __future__ import annotations

from typing import Final

from madbase.protocol.rest.errors import MaxAffectedViolation, SingularityError
from madbase.protocol.sql import Statement, quote_literal

__all__ = ["AFFECTED_SETTING", "GUARD", "guard_settings"]

AFFECTED_SETTING: Final = "madbase.affected"
_SINGULAR: Final = "madbase.singular"
_MAX_AFFECTED: Final = "madbase.max_affected"


def _raise(code: str, message: str, details_format: str, status: int) -> str:
    body = (
        f"json_build_object('code', {quote_literal(code)}, 'message', {quote_literal(message)}, "
        f"'details', format({quote_literal(details_format)}, affected), 'hint', null)::text"
    )
    detail = quote_literal(f'{{"status":{status},"headers":{{}}}}')
    return f"raise sqlstate 'PGRST' using message = {body}, detail = {detail};"


GUARD: Final = Statement(
    "do $madbase_guard$ declare "
    f"affected bigint := current_setting({quote_literal(AFFECTED_SETTING)})::bigint; "
    f"most text := nullif(current_setting({quote_literal(_MAX_AFFECTED)}, true), ''); "
    "begin "
    f"if current_setting({quote_literal(_SINGULAR)}, true) = 'on' and affected <> 1 then "
    + _raise(
        SingularityError.code,
        SingularityError.default_message,
        "The result contains %s rows",
        SingularityError.status,
    )
    + " end if; "
    "if most is not null and affected > most::bigint then "
    + _raise(
        MaxAffectedViolation.code,
        MaxAffectedViolation.default_message,
        "The query affects %s rows",
        MaxAffectedViolation.status,
    )
    + " end if; end $madbase_guard$"
)


def guard_settings(*, singular: bool, max_affected: int | None) -> tuple[tuple[str, str], ...]:
    """The settings `GUARD` reads; empty when there is nothing to check.

    >>> guard_settings(singular=True, max_affected=None)
    (('madbase.singular', 'on'),)
    >>> guard_settings(singular=False, max_affected=None)
    ()
    """
    out: list[tuple[str, str]] = []
    if singular:
        out.append((_SINGULAR, "on"))
    if max_affected is not None:
        out.append((_MAX_AFFECTED, str(max_affected)))
    return tuple(out)
