"""Statement bundles the runtime executes: SQL text with bind parameters, and transaction settings.

A protocol stage builds a `Transaction`; `madbase.runtime.db` runs it in one pipelined round trip:
`BEGIN; select set_config(...) ...; <statements>; COMMIT` (or ROLLBACK). Values are always bind
parameters; identifiers go through `quote_ident`.
"""

from __future__ import annotations

from typing import final

import attrs

__all__ = ["DbError", "DbResult", "Statement", "Transaction", "quote_ident", "quote_literal"]


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
    """Postgres refused a statement: the fields the server sent, untouched."""

    sqlstate: str
    message: str
    detail: str | None = None
    hint: str | None = None


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
