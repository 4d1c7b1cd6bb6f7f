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
      returning 1 | "t"."a", "t"."id" | "t".*
    )
    select <total>, (select count(*) from pgrst_source), <body or null>, <location or null>
    from (select <select list> from pgrst_source "t" <embeds>) _t

RETURNING gives only what the rest needs (PostgREST's `returningF`): `1` to count the rows for
`return=minimal`, the columns the body and `Location` read otherwise. Returning a column is
reading it, which needs SELECT on it and lets RLS SELECT policies see the new row; so a role with
column grants, or Supabase's insert-only table (an insert policy and no select policy), can write
with `return=minimal` and read back what it may read.

With `Prefer: missing=default` an absent key takes the column's default: the default expression
Postgres itself reported in the schema snapshot (`pg_get_expr`), or the identity sequence's next
value; the key test (`pgrst_j.j::jsonb ? $n`) binds the key as a parameter.
"""

# S608: this module builds SQL; every request value is a bind parameter and every identifier goes
# through quote_ident (tests/protocol/rest/test_plan_writes.py checks the text never holds them).
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Final, final

import attrs

from madbase.protocol.rest.build import StatementBuilder, UndefinedColumn, body_aggregate, q
from madbase.protocol.rest.errors import InvalidFilters
from madbase.protocol.rest.guard import AFFECTED_SETTING
from madbase.protocol.rest.headers import MediaKind
from madbase.protocol.rest.payload import Payload
from madbase.protocol.rest.schema import Column, Relation, SchemaSnapshot
from madbase.protocol.rest.syntax import Compare, Operator, QueryParams
from madbase.protocol.sql import Statement

__all__ = [
    "Output",
    "Payload",
    "delete_statement",
    "insert_statement",
    "location_keys",
    "update_statement",
]


@final
@attrs.frozen(kw_only=True)
class Output:
    """What the statement returns besides the counts.

    `representation` renders the written rows through `select` (embeds included) as `media`;
    `location` returns the primary key values (a JSON array of texts) of the one written row
    for Location (NULL unless exactly one row was written); `guarded` stores the written row
    count in the setting `guard.GUARD` reads; `upsert` returns how many rows were inserted
    rather than updated (an upsert's DO UPDATE counts its updates in a setting).
    """

    representation: bool = False
    count: bool = False
    location: bool = False
    guarded: bool = False
    upsert: bool = False
    media: MediaKind = MediaKind.JSON
    stripped: bool = False
    max_depth: int = 32


# Counts the rows an upsert's DO UPDATE touched (PostgREST's `pgrst.inserted`, inverted).
_UPDATED: Final = "'madbase.upsert_updated'"
_COUNT_UPDATE: Final = (
    f"set_config({_UPDATED}, (coalesce(nullif(current_setting({_UPDATED}, true), '')::bigint, 0)"
    " + 1)::text, true) is not null"
)


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
    b: StatementBuilder,
    relation: Relation,
    alias: str,
    mutation: Callable[[str], str],
    out: Output,
) -> Statement:
    """The statement around `mutation(returning)`, whose rows are the written rows as `alias`.

    `returning` is what those rows must hold (see `_returning`); the mutation is built before
    this is called (its parameters come first), only its RETURNING list is filled in here.
    """
    read = attrs.evolve(
        b.query,
        filters=tuple(f for f in b.query.filters if f.path),
        logic=tuple(t for t in b.query.logic if t.path),
    )
    b.query = read
    b.reads.clear()  # what the mutation's own WHERE reads is not returned
    b.whole_rows.clear()
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
        # PostgREST: each key as its JSON text (json_each_text), in table order
        keys = ", ".join(f"pgrst_l.r ->> {b.param(k)}::text" for k in location_keys(relation))
        location = (
            "(select json_build_array(" + keys + ")::text from (select row_to_json(pgrst_r) r "
            "from pgrst_source pgrst_r limit 1) pgrst_l "
            "where (select count(*) from pgrst_source) = 1)"
        )
    inserted = "null::bigint"
    if out.upsert:
        inserted = (
            f"(select count(*) - coalesce(nullif(current_setting({_UPDATED}, true), '')::bigint, 0)"
            " from pgrst_source)"
        )
    extra = ""
    if out.guarded:
        extra = (
            f", set_config('{AFFECTED_SETTING}', (select count(*) from pgrst_source)::text, true)"
        )
    sql = (
        f"with pgrst_source as ({mutation(_returning(b, relation, alias, out))}) "
        f"select {total}, (select count(*) from pgrst_source), {body}, {location}, "
        f"{inserted}{extra}{rows}"
    )
    return Statement(sql, tuple(b.params))


def _returning(b: StatementBuilder, relation: Relation, alias: str, out: Output) -> str:
    """What the written rows must give the rest of the statement, and nothing more.

    As PostgREST's `returningF`: `1` when only their number matters (`return=minimal`: a role
    with column grants, or an RLS policy that lets it write but not read, can still write),
    else the columns the body reads and, for `Location`, the primary key. `*` where the body
    reads whole rows (`select=*`, a computed relationship). A computed field is returned by
    name: `alias.f` calls `f` on the written row, which the body then reads as a column.
    """
    if alias in b.whole_rows:
        return f"{q(alias)}.*"
    names = set(b.reads.get(alias, ()))
    if out.location:
        names.update(relation.primary_key)
    if not names:
        return "1"
    order = {col.name: i for i, col in enumerate(relation.columns)}
    ordered = sorted(names, key=lambda n: (order.get(n, len(order)), n))
    return ", ".join(f"{q(alias)}.{q(n)}" for n in ordered)


def location_keys(relation: Relation) -> tuple[str, ...]:
    """The primary key columns in table order, as PostgREST lists them in `Location`."""
    order = {col.name: i for i, col in enumerate(relation.columns)}
    return tuple(sorted(relation.primary_key, key=lambda k: order.get(k, len(order))))


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
            sql += f" do update set {sets} where {_COUNT_UPDATE}"
        else:
            sql += " do nothing"
    return _finish(b, relation, alias, lambda cols: f"{sql} returning {cols}", out)


def update_statement(
    snapshot: SchemaSnapshot,
    relation: Relation,
    query: QueryParams,
    payload: Payload,
    out: Output,
    *,
    missing_default: bool = False,
) -> Statement:
    """UPDATE of the rows the root filters match with the payload object's columns.

    With `missing_default`, a `columns=` column the object lacks takes its default.

    Raises:
        RestError: an unknown filter column or select item.
    """
    b = StatementBuilder(snapshot, query, out.max_depth)
    alias = relation.name.name
    b.aliases.add(alias)
    table = f"{q(relation.name.schema)}.{q(relation.name.name)}"
    if payload.columns:
        body = b.param(payload.text)
        sets = []
        for name in payload.columns:
            value = f"pgrst_body.{q(name)}"
            col = relation.column(name)
            assert col is not None, "Payload.parse checked the columns"
            if missing_default:
                default = _default(b, relation, col)
                value = (
                    f"case when {body}::json::jsonb ? {b.param(name)}::text "
                    f"then {value} else {default} end"
                )
            sets.append(f"{q(name)} = {value}")
        where = _root_where(b, relation, alias)
        sql = (
            f"update {table} as {q(alias)} set {', '.join(sets)} "
            f"from json_populate_record(null::{table}, {body}::json) pgrst_body"
        )
        if where:
            sql += " where " + " and ".join(where)
        return _finish(b, relation, alias, lambda cols: f"{sql} returning {cols}", out)
    # `{}`: nothing to set, nothing written (as PostgREST); no row to read either, so the
    # table is not read at all when the body needs none of its columns
    return _finish(b, relation, alias, partial(_nothing, table, alias), out)


def _nothing(table: str, alias: str, cols: str) -> str:
    """No row, with the columns `cols` of `table` as `alias` (a write of `{}`)."""
    if cols == "1":
        return "select 1 where false"
    return f"select {cols} from {table} {q(alias)} where false"


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
    return _finish(b, relation, alias, lambda cols: f"{sql} returning {cols}", out)
