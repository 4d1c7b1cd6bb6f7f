"""SQL for writes: INSERT (bulk and upsert), UPDATE, DELETE and PUT's single-row upsert.

As PostgREST's `Query/QueryBuilder.hs` `mutateRequestToQuery`: the JSON body is ONE text
parameter, expanded in Postgres against the relation's row type, so values are typed by their
columns and never reach the SQL text. Only the payload's columns (the union of the objects' keys,
or `columns=`) are written, so the others keep their defaults. The mutation is a data-modifying
CTE whose rows feed the same body rendering as a read::

    with pgrst_source as (
      insert into "s"."t" as "t" ("a", "b")
      select pgrst_body."a", pgrst_body."b"
      from json_array_elements($1::json) pgrst_j(j)
      cross join lateral json_populate_record(null::"s"."t", pgrst_j.j) pgrst_body
      [on conflict ("id") do update set "a" = excluded."a" | do nothing]
      returning "t".*
    )
    select <total>, (select count(*) from pgrst_source), <body or null>, <location or null>
    from (select <select list> from pgrst_source "t" <embeds>) _t

With `Prefer: missing=default` an absent key takes the column's default: the default expression
Postgres itself reported in the schema snapshot (`pg_get_expr`), or the identity sequence's next
value; the key test (`pgrst_j.j::jsonb ? $n`) binds the key as a parameter.
"""

# S608: this module builds SQL; every request value is a bind parameter and every identifier goes
# through quote_ident (tests/protocol/rest/test_plan_writes.py checks the text never holds them).
# ruff: noqa: S608

from __future__ import annotations

import json
from typing import final

import attrs

from madbase.protocol.rest.build import StatementBuilder, UndefinedColumn, body_aggregate, q
from madbase.protocol.rest.errors import ColumnNotFound, InvalidBody, InvalidFilters
from madbase.protocol.rest.headers import MediaKind
from madbase.protocol.rest.schema import Column, Relation, SchemaSnapshot
from madbase.protocol.rest.syntax import Compare, Operator, QueryParams
from madbase.protocol.sql import Statement

__all__ = ["Output", "Payload", "delete_statement", "insert_statement", "update_statement"]


@final
@attrs.frozen(kw_only=True)
class Payload:
    """A JSON body checked against a relation: the text to bind and the columns it writes."""

    text: str
    columns: tuple[str, ...]
    is_array: bool

    @classmethod
    def parse(
        cls, body: bytes, relation: Relation, columns: tuple[str, ...] | None, *, array_ok: bool
    ) -> Payload:
        """Check `body` (a JSON object, or an array of objects when `array_ok`).

        The columns are `columns` when given (`columns=`), else the union of the objects' keys
        in first-seen order.

        Raises:
            InvalidBody: empty, not JSON, or not objects (PGRST102).
            ColumnNotFound: a column the relation does not have (PGRST204).
        """
        try:
            text = body.decode("utf-8")
            value = json.loads(text)
        except (UnicodeDecodeError, ValueError) as err:
            raise InvalidBody from err
        rows = value if isinstance(value, list) and array_ok else [value]
        if not all(isinstance(row, dict) for row in rows):
            raise InvalidBody(details="the body must be a JSON object or an array of objects")
        if columns is None:
            seen: dict[str, None] = {}
            for row in rows:
                seen.update(dict.fromkeys(row))
            columns = tuple(seen)
        for name in columns:
            if relation.column(name) is None:
                raise ColumnNotFound.in_relation(relation.name.name, name)
        return cls(text=text, columns=columns, is_array=isinstance(value, list))


@final
@attrs.frozen(kw_only=True)
class Output:
    """What the statement returns besides the counts.

    `representation` renders the written rows through `select` (embeds included) as `media`;
    `location` returns the first row's primary key values (a JSON array of texts) for Location.
    """

    representation: bool = False
    count: bool = False
    location: bool = False
    media: MediaKind = MediaKind.JSON
    stripped: bool = False
    max_depth: int = 32


def _default(b: StatementBuilder, relation: Relation, col: Column) -> str:
    if col.default is not None:
        return f"({col.default})"  # Postgres's own text of the default (pg_get_expr)
    if col.identity is not None:
        table = f"{q(relation.name.schema)}.{q(relation.name.name)}"
        return f"nextval(pg_get_serial_sequence({b.param(table)}::text, {b.param(col.name)}::text))"
    return "null"


def _root_where(b: StatementBuilder, relation: Relation, alias: str) -> list[str]:
    where = [b.filter(relation, alias, pf.filter, {}) for pf in b.query.filters if pf.path == ()]
    where += [b.logic(relation, alias, pl.tree, {}) for pl in b.query.logic if pl.path == ()]
    return where


def _finish(
    b: StatementBuilder, relation: Relation, alias: str, mutation: str, out: Output
) -> Statement:
    """The statement around `mutation` (which returns the written rows as `alias`.*)."""
    read = attrs.evolve(
        b.query,
        filters=tuple(f for f in b.query.filters if f.path),
        logic=tuple(t for t in b.query.logic if t.path),
    )
    b.query = read
    source = f"pgrst_source {q(alias)}"
    if out.representation:
        columns, from_sql, tail = b.level(
            relation, alias, read.select, (), correlation=None, source=source
        )
        b.check_paths()
        page = f"select {columns} from {from_sql}{tail}"
        body = body_aggregate(page, out.media, stripped=out.stripped)
        rows = f" from ({page}) _t"
    else:
        body = "null::text"
        rows = ""  # no FROM: still exactly one row
    total = "(select count(*) from pgrst_source)" if out.count else "null::bigint"
    location = "null::text"
    if out.location and relation.primary_key:
        keys = ", ".join(f"pgrst_l.{q(k)}::text" for k in relation.primary_key)
        location = f"(select json_build_array({keys})::text from pgrst_source pgrst_l limit 1)"
    sql = (
        f"with pgrst_source as ({mutation}) "
        f"select {total}, (select count(*) from pgrst_source), {body}, {location}{rows}"
    )
    return Statement(sql, tuple(b.params))


def put_keys(relation: Relation, query: QueryParams) -> tuple[tuple[str, str], ...]:
    """PUT's filters as (primary key column, value): exactly the key columns, each with `eq`.

    Raises:
        InvalidFilters: anything else (PGRST105).
    """
    root = [pf.filter for pf in query.filters if pf.path == ()]
    pairs: list[tuple[str, str]] = []
    for flt in root:
        op = flt.operation
        if (
            flt.negated
            or flt.field.json_path
            or not isinstance(op, Compare)
            or op.operator is not Operator.EQ
            or op.quantifier is not None
        ):
            raise InvalidFilters
        pairs.append((flt.field.name, op.value))
    names = [name for name, _ in pairs]
    if (
        not relation.primary_key
        or any(pl.path == () for pl in query.logic)
        or sorted(names) != sorted(relation.primary_key)
    ):
        raise InvalidFilters
    return tuple(pairs)


def insert_statement(
    snapshot: SchemaSnapshot,
    relation: Relation,
    query: QueryParams,
    payload: Payload,
    out: Output,
    *,
    conflict: tuple[str, ...] | None = None,
    merge: bool = False,
    missing_default: bool = False,
    put: tuple[tuple[str, str], ...] = (),
) -> Statement:
    """INSERT of `payload`; with `conflict`, an upsert (`merge`: DO UPDATE, else DO NOTHING).

    `put` are PUT's (key, value) pairs: only payload rows whose keys equal them are written, so
    a mismatch writes nothing (the planner answers PGRST115).

    Raises:
        RestError: an unknown `on_conflict` column (42703) or select item.
    """
    b = StatementBuilder(snapshot, query, out.max_depth)
    alias = relation.name.name
    b.aliases.add(alias)
    table = f"{q(relation.name.schema)}.{q(relation.name.name)}"
    arr = f"{b.param(payload.text)}::json"
    if not payload.is_array:
        arr = f"json_build_array({arr})"
    exprs = []
    for name in payload.columns:
        value = f"pgrst_body.{q(name)}"
        col = relation.column(name)
        assert col is not None, "Payload.parse checked the columns"
        if missing_default:
            value = (
                f"case when pgrst_j.j::jsonb ? {b.param(name)}::text then {value} "
                f"else {_default(b, relation, col)} end"
            )
        exprs.append(value)
    target = f" ({', '.join(q(c) for c in payload.columns)})" if payload.columns else ""
    sql = (
        f"insert into {table} as {q(alias)}{target} select {', '.join(exprs)} "
        f"from json_array_elements({arr}) pgrst_j(j) "
        f"cross join lateral json_populate_record(null::{table}, pgrst_j.j) pgrst_body"
    )
    if put:
        sql += " where " + " and ".join(f"pgrst_body.{q(k)} = {b.param(v)}" for k, v in put)
    if conflict is not None:
        for name in conflict:
            if relation.column(name) is None:
                raise UndefinedColumn.in_table(relation.name.name, name)
        sql += f" on conflict ({', '.join(q(c) for c in conflict)})"
        if merge and payload.columns:
            sets = ", ".join(f"{q(c)} = excluded.{q(c)}" for c in payload.columns)
            sql += f" do update set {sets}"
        else:
            sql += " do nothing"
    sql += f" returning {q(alias)}.*"
    return _finish(b, relation, alias, sql, out)


def update_statement(
    snapshot: SchemaSnapshot,
    relation: Relation,
    query: QueryParams,
    payload: Payload,
    out: Output,
) -> Statement:
    """UPDATE of the rows the root filters match with the payload object's columns.

    Raises:
        RestError: an unknown filter column or select item.
    """
    b = StatementBuilder(snapshot, query, out.max_depth)
    alias = relation.name.name
    b.aliases.add(alias)
    table = f"{q(relation.name.schema)}.{q(relation.name.name)}"
    if payload.columns:
        where = _root_where(b, relation, alias)
        sets = ", ".join(f"{q(c)} = pgrst_body.{q(c)}" for c in payload.columns)
        sql = (
            f"update {table} as {q(alias)} set {sets} "
            f"from json_populate_record(null::{table}, {b.param(payload.text)}::json) pgrst_body"
        )
        if where:
            sql += " where " + " and ".join(where)
    else:  # `{}`: nothing to set, nothing written (as PostgREST)
        sql = f"select {q(alias)}.* from {table} {q(alias)} where false"
    if payload.columns:
        sql += f" returning {q(alias)}.*"
    return _finish(b, relation, alias, sql, out)


def delete_statement(
    snapshot: SchemaSnapshot, relation: Relation, query: QueryParams, out: Output
) -> Statement:
    """DELETE of the rows the root filters match.

    Raises:
        RestError: an unknown filter column or select item.
    """
    b = StatementBuilder(snapshot, query, out.max_depth)
    alias = relation.name.name
    b.aliases.add(alias)
    table = f"{q(relation.name.schema)}.{q(relation.name.name)}"
    sql = f"delete from {table} as {q(alias)}"
    where = _root_where(b, relation, alias)
    if where:
        sql += " where " + " and ".join(where)
    sql += f" returning {q(alias)}.*"
    return _finish(b, relation, alias, sql, out)
