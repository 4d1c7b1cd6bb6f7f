"""Statement bundles the runtime executes: SQL text with bind parameters, and transaction settings.

A protocol stage builds a `Transaction`; `madbase.runtime.db` runs it in one pipelined round trip:
`BEGIN; select set_config(...) ...; <statements>; COMMIT` (or ROLLBACK). Values are always bind
parameters; identifiers go through `quote_ident`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final, final

import attrs

__all__ = [
    "DbError",
    "DbResult",
    "Statement",
    "Transaction",
    "describe_error",
    "quote_ident",
    "quote_literal",
]

# Characters of a statement's SQL that name it in a log line.
_LABEL_CHARS: Final = 80
# Postgres quotes an input value after a colon ('invalid input syntax for type uuid: "..."').
_QUOTED_VALUE: Final = re.compile(r': ".*', re.DOTALL)


@final
@attrs.frozen
class Statement:
    """One SQL statement with `$n` placeholders and text parameters (None is SQL NULL)."""

    sql: str
    params: tuple[str | None, ...] = ()


@final
@attrs.frozen(kw_only=True)
class Transaction:
    """A transaction: local settings (`set_config(name, value, true)`), then statements.

    `rollback` ends it with ROLLBACK instead of COMMIT (PostgREST's `Prefer: tx=rollback`).
    """

    settings: tuple[tuple[str, str], ...] = ()
    statements: tuple[Statement, ...] = ()
    read_only: bool = False
    rollback: bool = False


@final
@attrs.frozen(kw_only=True)
class DbResult:
    """One statement's outcome: its rows as text values (None is NULL) and its command tag."""

    rows: tuple[tuple[bytes | None, ...], ...]
    command: str


@final
@attrs.frozen(kw_only=True)
class DbError:
    """Postgres refused a statement: the fields the server sent, untouched.

    `statement` is the index in `Transaction.statements` of the one that failed (None: the
    transaction's settings, or it is not known).
    """

    sqlstate: str
    message: str
    detail: str | None = None
    hint: str | None = None
    statement: int | None = None


def describe_error(error: DbError, statements: Sequence[Statement]) -> str:
    """One line for the server's log: the SQLSTATE, the message and the statement that failed.

    Parameter values never appear: not the parameters, not the detail (`Key (email)=(...)`), not
    an input value the message quotes.

    >>> describe_error(
    ...     DbError(sqlstate="22P02", message='invalid input syntax for type uuid: "x"', statement=1),
    ...     [Statement("select 1"), Statement("update auth.users  set email = $1 where id = $2")],
    ... )
    '22P02 invalid input syntax for type uuid: "…" in statement 2 of 2: update auth.users set email = $1 where id = $2'
    """
    message = _QUOTED_VALUE.sub(': "…"', error.message)
    where = "outside the transaction's statements"
    index = error.statement
    if index is not None and 0 <= index < len(statements):
        label = " ".join(statements[index].sql.split())
        if len(label) > _LABEL_CHARS:
            label = label[:_LABEL_CHARS] + "…"
        where = f"in statement {index + 1} of {len(statements)}: {label}"
    return f"{error.sqlstate} {message} {where}"


def quote_ident(name: str) -> str:
    """Quote an SQL identifier.

    >>> quote_ident('a"b')
    '"a""b"'

    Raises:
        ValueError: the name contains a NUL character, which Postgres cannot store.
    """
    if "\x00" in name:
        raise ValueError("identifier contains a NUL character")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """Quote an SQL string literal (for DDL that cannot take parameters).

    >>> quote_literal("it's")
    "'it''s'"

    Raises:
        ValueError: the value contains a NUL character.
    """
    if "\x00" in value:
        raise ValueError("literal contains a NUL character")
    quoted = "'" + value.replace("'", "''") + "'"
    if "\\" in value:
        return "E" + quoted.replace("\\", "\\\\")
    return quoted
