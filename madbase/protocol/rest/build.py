"""SQL for reads: one statement that filters, orders, pages, embeds and renders the body in Postgres.

The shape follows PostgREST's `Query/QueryBuilder.hs` (ours, not its text). The main statement
returns one row: the total (`count(*)` over the filtered relation, or NULL when no count was
asked for), the page's row count, and the body as one text value::

    select (select count(*) from <source> <joins> where <filters>),
           count(*), <body aggregate of _t>
    from (select <columns> from <source> <joins> where <filters> order by ... limit/offset) _t

Embeds are lateral subqueries that each yield one json column `body`: a to-one embed the row
object (no row: NULL), a to-many embed `json_agg` of its rows with `having count(*) > 0` (no
rows: no row, shown as `[]`). `!inner` turns `left join lateral` into `join lateral`, dropping
parents without a match. A spread's lateral yields the child's columns, selected as `j.*`.

Rules that make the text independent of user values: every filter value, `in` list, JSON key and
array index is a bind parameter (`$n`, typed by Postgres from the column it meets, or cast
explicitly where the context says nothing); every identifier goes through `quote_ident`; casts
must be plain type names (letters, digits, `_`, single spaces) and are written `CAST(x AS t)`.
"""

# S608: this module is the SQL builder; every value is a bind parameter and every identifier goes
# through quote_ident (tests/protocol/rest/test_plan.py checks the text never holds filter values).
# ruff: noqa: S608

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final, final

import attrs

from madbase.protocol.rest.errors import (
    AmbiguousRelationship,
    NoRelationship,
    NotEmbedded,
    NotImplementedFeature,
    QueryParamError,
    RelatedOrderNotToOne,
    RestError,
    UnacceptableFilter,
)
from madbase.protocol.rest.headers import MediaKind
from madbase.protocol.rest.schema import Relation, Relationship, SchemaSnapshot
from madbase.protocol.rest.syntax import (
    Arrow,
    Compare,
    EmbedPath,
    Field,
    Filter,
    InList,
    IsCheck,
    IsValue,
    JoinType,
    LogicNode,
    LogicOperator,
    LogicTree,
    Operator,
    OrderTerm,
    QueryParams,
    SelectEmbed,
    SelectField,
    SelectItem,
    Star,
    TextSearch,
)
from madbase.protocol.sql import Statement, quote_ident

__all__ = ["UndefinedColumn", "body_aggregate", "read_statement"]

_OPERATORS: Final = {
    Operator.EQ: "=",
    Operator.NEQ: "<>",
    Operator.GT: ">",
    Operator.GTE: ">=",
    Operator.LT: "<",
    Operator.LTE: "<=",
    Operator.LIKE: "like",
    Operator.ILIKE: "ilike",
    Operator.MATCH: "~",
    Operator.IMATCH: "~*",
    Operator.ISDISTINCT: "is distinct from",
    Operator.CS: "@>",
    Operator.CD: "<@",
    Operator.OV: "&&",
    Operator.SL: "<<",
    Operator.SR: ">>",
    Operator.NXR: "&<",
    Operator.NXL: "&>",
    Operator.ADJ: "-|-",
}
_TSQUERY: Final = {
    Operator.FTS: "to_tsquery",
    Operator.PLFTS: "plainto_tsquery",
    Operator.PHFTS: "phraseto_tsquery",
    Operator.WFTS: "websearch_to_tsquery",
}
_IS: Final = {
    IsValue.NULL: "is null",
    IsValue.NOT_NULL: "is not null",
    IsValue.TRUE: "is true",
    IsValue.FALSE: "is false",
    IsValue.UNKNOWN: "is unknown",
}
_TYPE_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?: [A-Za-z_][A-Za-z0-9_]*)*")


class UndefinedColumn(RestError):
    """A column the relation does not have: PostgREST passes on Postgres's 42703 (400)."""

    status = 400
    code = "42703"

    @classmethod
    def in_table(cls, table: str, column: str) -> UndefinedColumn:
        """The error Postgres would raise for `table.column`."""
        return cls(f"column {table}.{column} does not exist")


def q(name: str) -> str:
    """`quote_ident`, shorter."""
    return quote_ident(name)


def pg_array(values: Sequence[str]) -> str:
    """A Postgres array literal holding `values` as they are (each element double-quoted).

    >>> pg_array(['a', 'b,"c"', 'd\\\\'])
    '{"a","b,\\\\"c\\\\"","d\\\\\\\\"}'
    """
    return (
        "{"
        + ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
        + "}"
    )


def output_name(item: SelectField) -> str:
    """The JSON key of a selected field: alias, else the last JSON key, else the column name."""
    if item.alias is not None:
        return item.alias
    assert item.field is not None
    for step in reversed(item.field.json_path):
        if isinstance(step.operand, str):
            return step.operand
    return item.field.name


@final
@attrs.frozen(kw_only=True)
class _Embed:
    """An embed resolved against the schema, with its SQL pieces."""

    key: str  # what prefixed parameters call it: the alias, else the name
    name: str
    relationship: Relationship
    join_alias: str
    inner: bool
    spread: bool
    empty: bool


class StatementBuilder:
    """Collects parameters and aliases while one statement is built."""

    def __init__(self, snapshot: SchemaSnapshot, query: QueryParams, max_depth: int) -> None:
        self.snapshot = snapshot
        self.query = query
        self.max_depth = max_depth
        self.params: list[str | None] = []
        self.aliases: set[str] = set()
        self.paths: set[EmbedPath] = {()}
        # (parent path, target name) -> alias, for PGRST108's "use the alias" hint
        self.aliased: dict[tuple[EmbedPath, str], str] = {}
        # What the SQL reads of each alias: the names of `alias.name` references (columns and
        # computed fields), and the aliases read as whole rows (`*`, computed relationships).
        # A write returns just these from its target (`mutate`), as PostgREST's RETURNING does.
        self.reads: dict[str, set[str]] = {}
        self.whole_rows: set[str] = set()

    def param(self, value: str) -> str:
        self.params.append(value)
        return f"${len(self.params)}"

    def alias(self, base: str) -> str:
        n = 1
        while f"{base}_{n}" in self.aliases:
            n += 1
        name = f"{base}_{n}"
        self.aliases.add(name)
        return name

    # --- fields -----------------------------------------------------------------------------

    def column(self, rel: Relation, alias: str, name: str) -> str:
        if rel.column(name) is None and not self._computed(rel, name):
            raise UndefinedColumn.in_table(rel.name.name, name)
        return self.read(alias, name)

    def read(self, alias: str, name: str) -> str:
        """`alias.name`, remembered in `reads`."""
        self.reads.setdefault(alias, set()).add(name)
        return f"{q(alias)}.{q(name)}"

    def _computed(self, rel: Relation, name: str) -> bool:
        """True if `name` is a computed field: a function taking `rel`'s row type."""
        return any(
            len(fn.input_args) == 1 and fn.input_args[0].relation == rel.name
            for fn in self.snapshot.find_functions(rel.name.schema, name)
        )

    def field(self, rel: Relation, alias: str, field: Field) -> str:
        sql = self.column(rel, alias, field.name)
        for step in field.json_path:
            arrow = "->" if step.arrow is Arrow.JSON else "->>"
            if isinstance(step.operand, int):
                sql += f" {arrow} {self.param(str(step.operand))}::integer"
            else:
                sql += f" {arrow} {self.param(step.operand)}::text"
        return sql

    # --- filters ----------------------------------------------------------------------------

    def filter(self, rel: Relation, alias: str, flt: Filter, embeds: dict[str, _Embed]) -> str:
        op = flt.operation
        name = flt.field.name
        if name in embeds and rel.column(name) is None and not flt.field.json_path:
            sql = self._embed_null_filter(embeds[name], op)
        else:
            sql = self.operation(self.field(rel, alias, flt.field), op, rel, flt.field)
        return f"not ({sql})" if flt.negated else sql

    def _embed_null_filter(self, embed: _Embed, op: object) -> str:
        if not isinstance(op, IsCheck) or op.value not in (IsValue.NULL, IsValue.NOT_NULL):
            raise UnacceptableFilter.for_target(embed.key)
        if embed.spread:
            raise NotImplementedFeature(details="is.null filters on spread embeds")
        return f"{q(embed.join_alias)}.body {_IS[op.value]}"

    def operation(self, lhs: str, op: object, rel: Relation, field: Field) -> str:
        match op:
            case Compare(operator=operator, value=value, quantifier=quantifier):
                if operator in (Operator.LIKE, Operator.ILIKE):
                    value = value.replace("*", "%")
                sql_op = _OPERATORS[operator]
                if quantifier is not None:
                    return f"{lhs} {sql_op} {quantifier.value}({self.param(value)})"
                return f"{lhs} {sql_op} {self.param(value)}"
            case InList(values=values):
                return f"{lhs} = any({self.param(pg_array(values))})"
            case IsCheck(value=value):
                return f"{lhs} {_IS[value]}"
            case TextSearch(operator=operator, query=query, language=language):
                col = rel.column(field.name)
                is_vector = not field.json_path and col is not None and col.base_type == "tsvector"
                if language is None:
                    vector = lhs if is_vector else f"to_tsvector({lhs})"
                    tsq = f"{_TSQUERY[operator]}({self.param(query)}::text)"
                else:
                    lang = self.param(language)
                    vector = lhs if is_vector else f"to_tsvector({lang}::regconfig, {lhs})"
                    tsq = f"{_TSQUERY[operator]}({lang}::regconfig, {self.param(query)}::text)"
                return f"{vector} @@ {tsq}"
            case _:  # pragma: no cover - the grammar makes no other operation
                raise AssertionError(op)

    def logic(self, rel: Relation, alias: str, tree: LogicTree, embeds: dict[str, _Embed]) -> str:
        joiner = " and " if tree.operator is LogicOperator.AND else " or "
        parts = [self._node(rel, alias, child, embeds) for child in tree.children]
        sql = "(" + joiner.join(parts) + ")"
        return f"not {sql}" if tree.negated else sql

    def _node(self, rel: Relation, alias: str, node: LogicNode, embeds: dict[str, _Embed]) -> str:
        if isinstance(node, Filter):
            return self.filter(rel, alias, node, embeds)
        return self.logic(rel, alias, node, embeds)

    # --- order ------------------------------------------------------------------------------

    def order(
        self, rel: Relation, alias: str, terms: tuple[OrderTerm, ...], embeds: dict[str, _Embed]
    ) -> str:
        out = []
        for term in terms:
            if term.relation is None:
                expr = self.field(rel, alias, term.field)
            else:
                expr = self._related_order(rel, term, embeds)
            if term.direction is not None:
                expr += f" {term.direction.value}"
            if term.nulls is not None:
                expr += " nulls first" if term.nulls.value == "nullsfirst" else " nulls last"
            out.append(expr)
        return ", ".join(out)

    def _related_order(self, rel: Relation, term: OrderTerm, embeds: dict[str, _Embed]) -> str:
        assert term.relation is not None
        embed = embeds.get(term.relation)
        if embed is None:
            raise NotEmbedded.for_resource(term.relation)
        if not embed.relationship.to_one:
            raise RelatedOrderNotToOne.between(rel.name.name, term.relation)
        target = self.snapshot.find_relation(
            embed.relationship.target.schema, embed.relationship.target.name
        )
        assert target is not None
        if target.column(term.field.name) is None:
            raise UndefinedColumn.in_table(target.name.name, term.field.name)
        if embed.spread:
            return self.field(target, embed.join_alias, term.field)
        sql = f"({q(embed.join_alias)}.body::jsonb) -> {self.param(term.field.name)}::text"
        for step in term.field.json_path:
            arrow = "->" if step.arrow is Arrow.JSON else "->>"
            cast = "integer" if isinstance(step.operand, int) else "text"
            sql += f" {arrow} {self.param(str(step.operand))}::{cast}"
        return sql

    # --- one level --------------------------------------------------------------------------

    def level(
        self,
        rel: Relation,
        alias: str,
        items: tuple[SelectItem, ...],
        path: EmbedPath,
        *,
        correlation: str | None,
        source: str,
    ) -> tuple[str, str, str]:
        """`select list`, `from ... joins where ...` and `order by ... limit ... offset ...`."""
        if len(path) > self.max_depth:
            raise NotImplementedFeature(details=f"embedding deeper than {self.max_depth} levels")
        self.paths.add(path)
        embeds: dict[str, _Embed] = {}
        joins: list[str] = []
        columns: list[str] = []
        for item in items:
            match item:
                case Star():
                    self.whole_rows.add(alias)
                    columns.append(f"{q(alias)}.*")
                case SelectField():
                    columns.append(self._select_field(rel, alias, item))
                case SelectEmbed():
                    embed, join_sql = self._embed(rel, alias, item, path)
                    if embed.key in embeds:
                        raise QueryParamError(
                            f"Duplicate embedded resource '{embed.key}'",
                            hint="Use an alias to embed the same resource twice.",
                        )
                    embeds[embed.key] = embed
                    joins.append(join_sql)
                    if embed.spread:
                        columns.append(f"{q(embed.join_alias)}.*")
                    elif not embed.empty:
                        body = f"{q(embed.join_alias)}.body"
                        if not embed.relationship.to_one:
                            body = f"coalesce({body}, '[]'::json)"
                        columns.append(f"{body} as {q(embed.key)}")
        where: list[str] = [] if correlation is None else [correlation]
        where.extend(
            self.filter(rel, alias, pf.filter, embeds)
            for pf in self.query.filters
            if pf.path == path
        )
        where.extend(
            self.logic(rel, alias, pl.tree, embeds) for pl in self.query.logic if pl.path == path
        )
        from_sql = source + "".join(joins)
        if where:
            from_sql += " where " + " and ".join(where)
        tail = ""
        for po in self.query.order:
            if po.path == path and po.terms:
                tail += " order by " + self.order(rel, alias, po.terms, embeds)
        for pr in self.query.ranges:
            if pr.path == path and path:
                if pr.limit is not None:
                    tail += f" limit {int(pr.limit)}"
                if pr.offset:
                    tail += f" offset {int(pr.offset)}"
        return ", ".join(columns), from_sql, tail

    def _select_field(self, rel: Relation, alias: str, item: SelectField) -> str:
        if item.aggregate is not None or item.field is None:
            raise NotImplementedFeature(details="aggregate functions are not implemented yet")
        expr = self.field(rel, alias, item.field)
        if item.cast is not None:
            if _TYPE_NAME.fullmatch(item.cast) is None:
                raise QueryParamError(
                    f'"failed to parse select parameter ({item.cast})"',
                    details="a cast must name a type: letters, digits, underscores and spaces",
                )
            expr = f"cast({expr} as {item.cast})"
        return f"{expr} as {q(output_name(item))}"

    def _embed(
        self, parent: Relation, parent_alias: str, item: SelectEmbed, path: EmbedPath
    ) -> tuple[_Embed, str]:
        found = self.snapshot.find_relationships(parent.name, item.name, item.hint)
        if not found:
            raise _no_relationship(self.snapshot, parent, item)
        if len(found) > 1:
            raise _ambiguous(parent, item, found)
        relationship = found[0]
        target = self.snapshot.find_relation(relationship.target.schema, relationship.target.name)
        assert target is not None, "relationships only point to known relations"
        key = item.alias if item.alias is not None else item.name
        if item.alias is not None:
            self.aliased[(path, item.name)] = item.alias
        if item.spread and not relationship.to_one:
            raise NotImplementedFeature(details="spreading a to-many embed is not implemented yet")
        alias = self.alias(target.name.name)
        join_alias = self.alias(f"{parent.name.name}_{key}")
        child_path = (*path, key)
        source, correlation = self._source(relationship, target, alias, parent_alias)
        columns, from_sql, tail = self.level(
            target,
            alias,
            item.children,
            child_path,
            correlation=correlation,
            source=source,
        )
        inner = item.join is JoinType.INNER
        sub = f"select {columns} from {from_sql}{tail}"
        rows = q(f"{join_alias}_rows")
        if item.spread:
            lateral = sub
        elif relationship.to_one:
            lateral = f"select row_to_json({rows}) as body from ({sub}) {rows}"
        else:
            lateral = f"select json_agg({rows}) as body from ({sub}) {rows} having count(*) > 0"
        join = "join lateral" if inner else "left join lateral"
        embed = _Embed(
            key=key,
            name=item.name,
            relationship=relationship,
            join_alias=join_alias,
            inner=inner,
            spread=item.spread,
            empty=not item.children,
        )
        return embed, f" {join} ({lateral}) {q(join_alias)} on true"

    def _source(
        self, rel: Relationship, target: Relation, alias: str, parent_alias: str
    ) -> tuple[str, str | None]:
        table = f"{q(target.name.schema)}.{q(target.name.name)} {q(alias)}"
        if rel.function is not None:
            self.whole_rows.add(parent_alias)
            fn = f"{q(rel.function.schema)}.{q(rel.function.name)}({q(parent_alias)})"
            return f"{fn} {q(alias)}", None
        if rel.junction is not None:
            j = rel.junction
            jalias = self.alias(j.relation.name)
            on = " and ".join(
                f"{q(jalias)}.{q(jcol)} = {q(alias)}.{q(tcol)}" for jcol, tcol in j.target_columns
            )
            cond = " and ".join(
                f"{q(jalias)}.{q(jcol)} = {self.read(parent_alias, scol)}"
                for scol, jcol in j.source_columns
            )
            jtable = f"{q(j.relation.schema)}.{q(j.relation.name)} {q(jalias)}"
            return f"{table} join {jtable} on {on}", cond
        cond = " and ".join(
            f"{q(alias)}.{q(tcol)} = {self.read(parent_alias, scol)}" for scol, tcol in rel.columns
        )
        return table, cond

    def check_paths(self) -> None:
        """Every prefixed parameter names an embed of the select (PGRST108)."""
        used = [pf.path for pf in self.query.filters]
        used += [pl.path for pl in self.query.logic]
        used += [po.path for po in self.query.order]
        used += [pr.path for pr in self.query.ranges]
        for path in used:
            if path not in self.paths:
                last = path[-1]
                parent = path[:-1]
                raise NotEmbedded.for_resource(last, self.aliased.get((parent, last)))


def _no_relationship(snapshot: SchemaSnapshot, parent: Relation, item: SelectEmbed) -> RestError:
    p, c = parent.name.name, item.name
    using = "" if item.hint is None else f"' using the hint '{item.hint}"
    similar = snapshot.similar_embeds(parent.name, c)
    hint = f"Perhaps you meant '{similar[0]}' instead of '{c}'." if similar else None
    return NoRelationship(
        f"Could not find a relationship between '{p}' and '{c}' in the schema cache",
        details=f"Searched for a foreign key relationship between '{p}' and '{c}{using}' "
        f"in the schema '{parent.name.schema}', but no matches were found.",
        hint=hint,
    )


def _ambiguous(parent: Relation, item: SelectEmbed, found: tuple[Relationship, ...]) -> RestError:
    options = ", ".join(f"'{item.name}!{r.hint}'" for r in found)
    return AmbiguousRelationship(
        "Could not embed because more than one relationship was found for "
        f"'{parent.name.name}' and '{item.name}'",
        details=[r.describe() for r in found],
        hint=f"Try changing '{item.name}' to one of the following: {options}. "
        "Find the desired relationship in the 'details' key.",
    )


def body_aggregate(page: str, media: MediaKind, *, stripped: bool) -> str:
    """The aggregate over `_t`, the rows of the query `page`, that renders the body as text."""
    match media:
        case MediaKind.CSV:
            return (
                "(select coalesce(string_agg(k, ','), '') from (select json_object_keys("
                "row_to_json(_h)) as k from (select * from (" + page + ") _p limit 1) _h) _k)"
                " || chr(10) || coalesce(string_agg(substr(_t::text, 2, length(_t::text) - 2), "
                "chr(10)), '')"
            )
        case MediaKind.OBJECT:
            row = "json_strip_nulls(row_to_json(_t))" if stripped else "row_to_json(_t)"
            return f"(json_agg({row}) -> 0)::text"
        case _:
            row = "json_strip_nulls(row_to_json(_t))" if stripped else "_t"
            return f"coalesce(json_agg({row}), '[]')::text"


def read_statement(
    snapshot: SchemaSnapshot,
    relation: Relation,
    query: QueryParams,
    *,
    offset: int,
    limit: int | None,
    count: bool,
    media: MediaKind,
    stripped: bool,
    max_depth: int,
    count_limit: int | None = None,
    planned: bool = False,
) -> tuple[Statement, Statement | None]:
    """The statement for a GET/HEAD on `relation`: one row (total, page count, body text).

    `count_limit` stops the count there (`count=estimated` under `db-max-rows`). With `planned`,
    also an `EXPLAIN (FORMAT JSON)` of the filtered rows, whose top "Plan Rows" is the planner's
    estimate of the total (`count=planned` and `count=estimated`); it takes the same parameters.

    Raises:
        RestError: unknown column, relationship or embed; an unsupported feature.
    """
    b = StatementBuilder(snapshot, query, max_depth)
    alias = relation.name.name
    b.aliases.add(alias)
    source = f"{q(relation.name.schema)}.{q(relation.name.name)} {q(alias)}"
    columns, from_sql, tail = b.level(
        relation, alias, query.select, (), correlation=None, source=source
    )
    b.check_paths()
    rows = f"select {columns} from {from_sql}{tail}"
    page = rows
    if limit is not None:
        page += f" limit {int(limit)}"
    if offset:
        page += f" offset {int(offset)}"
    total = "null::bigint"
    if count:
        counted = f"select 1 from {from_sql}"
        if count_limit is not None:
            counted += f" limit {int(count_limit)}"
        total = f"(select count(*) from ({counted}) _c)"
    body = body_aggregate(page, media, stripped=stripped)
    sql = f"select {total}, count(*), {body} from ({page}) _t"
    explain = None
    if planned:
        explain = Statement(f"explain (format json) select 1 from ({rows}) _t", tuple(b.params))
    return Statement(sql, tuple(b.params)), explain
