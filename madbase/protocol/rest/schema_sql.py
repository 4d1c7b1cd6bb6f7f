"""The schema-cache introspection query, and the reader for the view definitions it returns.

`INTROSPECTION_SQL` takes one bind parameter, the exposed schema names as `text[]`, and returns one
row with one `json` value that `madbase.protocol.rest.schema_load.snapshot_from_json` turns into a
`SchemaSnapshot`. It reads `pg_catalog` only, so it runs as any role that can see the catalogs (the
owner or superuser MadBase connects as), and costs a few milliseconds on a small database.

Payload shape (relations and constraints refer to each other by oid, columns by attnum)::

    {"relations": [{"oid", "schema", "name", "kind", "exposed", "description", "updatable_mask",
                    "definition", "columns": [{"num", "name", "type", "base_type", "element_type",
                    "nullable", "default", "generated", "identity", "max_length", "enum",
                    "description"}]}],
     "constraints": [{"name", "type", "rel", "columns", "ref_rel", "ref_columns"}],
     "functions": [{"schema", "name", "args": [{"name", "type", "mode", "rel_schema", "rel_name"}],
                    "ndefaults", "return_type", "return_typtype", "return_rel_schema",
                    "return_rel_name", "returns_set", "rows", "volatility", "settings",
                    "description"}]}

`relations` holds every relation of the exposed schemas (`exposed: true`) plus, transitively, the
relations their views read from (`exposed: false`, e.g. tables in a private schema behind API
views), so that foreign keys between base tables can be carried over to the views. For views,
`definition` is the stored parse tree of the view's query (`pg_rewrite.ev_action`), which
`view_column_origins` reads: PostgREST does the same dependency analysis, since Postgres records
for each output column of a view the base table column it is a plain reference to
(`resorigtbl`/`resorigcol`, the same values the wire protocol reports in RowDescription).
"""

from __future__ import annotations

import re
from typing import Final, TypeAlias

__all__ = ["INTROSPECTION_SQL", "NodeTreeError", "view_column_origins"]

# One statement; $1 = exposed schemas. Relation kinds: r table, v view, m materialized view,
# f foreign table, p partitioned table. Functions: prokind 'f' only (no procedures, aggregates or
# window functions: PostgREST cannot call those either).
INTROSPECTION_SQL: Final = r"""
with recursive
exposed_ns as (
  select oid, nspname from pg_namespace where nspname = any($1::text[])
),
-- Relations of the exposed schemas, then what their views read from, transitively.
needed(oid) as (
  select c.oid from pg_class c join exposed_ns n on n.oid = c.relnamespace
   where c.relkind in ('r', 'v', 'm', 'f', 'p')
  union
  select d.refobjid
    from needed v
    join pg_rewrite rw on rw.ev_class = v.oid and rw.rulename = '_RETURN'
    join pg_depend d on d.classid = 'pg_rewrite'::regclass and d.objid = rw.oid
     and d.refclassid = 'pg_class'::regclass and d.refobjid <> v.oid
),
rels as (
  select c.oid, n.nspname, c.relname, c.relkind,
         exists (select 1 from exposed_ns e where e.oid = c.relnamespace) as exposed
    from needed x
    join pg_class c on c.oid = x.oid and c.relkind in ('r', 'v', 'm', 'f', 'p')
    join pg_namespace n on n.oid = c.relnamespace
),
-- Domains resolved to the type they are built on (domains over domains included).
domain_base(oid, base, typmod, depth) as (
  select t.oid, t.typbasetype, t.typtypmod, 1 from pg_type t where t.typtype = 'd'
  union all
  select d.oid, t.typbasetype, t.typtypmod, d.depth + 1
    from domain_base d join pg_type t on t.oid = d.base
   where t.typtype = 'd' and d.depth < 16
),
domain_final as (
  select distinct on (oid) oid, base, typmod from domain_base order by oid, depth desc
),
enums as (
  select enumtypid, json_agg(enumlabel order by enumsortorder) as labels
    from pg_enum group by enumtypid
),
cols as (
  select a.attrelid,
         json_agg(json_build_object(
           'num', a.attnum,
           'name', a.attname,
           'type', format_type(a.atttypid, a.atttypmod),
           'base_type', format_type(coalesce(df.base, a.atttypid),
                                    coalesce(nullif(df.typmod, -1), a.atttypmod)),
           'element_type', case when bt.typcategory = 'A' and bt.typelem <> 0
                                then format_type(bt.typelem, null) end,
           'nullable', not (a.attnotnull or coalesce(t.typnotnull, false)),
           'default', pg_get_expr(ad.adbin, ad.adrelid),
           'generated', a.attgenerated::text,
           'identity', a.attidentity::text,
           'max_length', case when coalesce(df.base, a.atttypid) in (1042, 1043)
                               and coalesce(nullif(df.typmod, -1), a.atttypmod) > 4
                              then coalesce(nullif(df.typmod, -1), a.atttypmod) - 4 end,
           'enum', coalesce(en.labels, ee.labels),
           'description', ds.description
         ) order by a.attnum) as columns
    from pg_attribute a
    join rels r on r.oid = a.attrelid
    join pg_type t on t.oid = a.atttypid
    left join domain_final df on df.oid = a.atttypid
    left join pg_type bt on bt.oid = coalesce(df.base, a.atttypid)
    left join pg_attrdef ad on ad.adrelid = a.attrelid and ad.adnum = a.attnum
    left join enums en on en.enumtypid = coalesce(df.base, a.atttypid)
    left join enums ee on bt.typcategory = 'A' and ee.enumtypid = bt.typelem
    left join pg_description ds on ds.classoid = 'pg_class'::regclass
     and ds.objoid = a.attrelid and ds.objsubid = a.attnum
   where a.attnum > 0 and not a.attisdropped
   group by a.attrelid
),
relations as (
  select coalesce(json_agg(json_build_object(
           'oid', r.oid::int8,
           'schema', r.nspname,
           'name', r.relname,
           'kind', r.relkind::text,
           'exposed', r.exposed,
           'description', ds.description,
           'updatable_mask', case when r.exposed then pg_relation_is_updatable(r.oid, true) else 0 end,
           'definition', rw.ev_action::text,
           'columns', coalesce(cl.columns, '[]'::json)
         ) order by r.nspname, r.relname), '[]'::json) as value
    from rels r
    left join cols cl on cl.attrelid = r.oid
    left join pg_rewrite rw on r.relkind in ('v', 'm') and rw.ev_class = r.oid
     and rw.rulename = '_RETURN'
    left join pg_description ds on ds.classoid = 'pg_class'::regclass
     and ds.objoid = r.oid and ds.objsubid = 0
),
constraints as (
  select coalesce(json_agg(json_build_object(
           'name', c.conname,
           'type', c.contype::text,
           'rel', c.conrelid::int8,
           'columns', c.conkey,
           'ref_rel', nullif(c.confrelid, 0)::int8,
           'ref_columns', c.confkey
         ) order by c.conrelid, c.conname), '[]'::json) as value
    from pg_constraint c
   where c.contype in ('p', 'u', 'f')
     and c.conrelid in (select oid from rels)
     -- partitions inherit their parent's constraints: keep the parent's only
     and c.conparentid = 0
),
func_args as (
  select p.oid,
         json_agg(json_build_object(
           'name', coalesce(p.proargnames[x.n], ''),
           'type', format_type(x.typ, null),
           'mode', coalesce(p.proargmodes[x.n]::text, 'i'),
           'rel_schema', rn.nspname,
           'rel_name', rc.relname
         ) order by x.n) as args
    from pg_proc p
    join exposed_ns n on n.oid = p.pronamespace
    cross join lateral unnest(coalesce(p.proallargtypes, p.proargtypes::oid[]))
         with ordinality as x(typ, n)
    left join pg_type at on at.oid = x.typ
    left join pg_class rc on rc.oid = at.typrelid and rc.relkind in ('r', 'v', 'm', 'f', 'p')
    left join pg_namespace rn on rn.oid = rc.relnamespace
   where p.prokind = 'f'
   group by p.oid
),
functions as (
  select coalesce(json_agg(json_build_object(
           'schema', n.nspname,
           'name', p.proname,
           'args', coalesce(fa.args, '[]'::json),
           'ndefaults', p.pronargdefaults,
           'return_type', format_type(p.prorettype, null),
           'return_typtype', rt.typtype::text,
           'return_rel_schema', rn.nspname,
           'return_rel_name', rc.relname,
           'returns_set', p.proretset,
           'rows', p.prorows,
           'volatility', p.provolatile::text,
           'settings', coalesce(to_json(p.proconfig), '[]'::json),
           'description', ds.description
         ) order by n.nspname, p.proname, p.oid), '[]'::json) as value
    from pg_proc p
    join exposed_ns n on n.oid = p.pronamespace
    join pg_type rt on rt.oid = p.prorettype
    left join func_args fa on fa.oid = p.oid
    left join pg_class rc on rc.oid = rt.typrelid and rc.relkind in ('r', 'v', 'm', 'f', 'p')
    left join pg_namespace rn on rn.oid = rc.relnamespace
    left join pg_description ds on ds.classoid = 'pg_proc'::regclass
     and ds.objoid = p.oid and ds.objsubid = 0
   where p.prokind = 'f'
)
select json_build_object(
  'relations', (select value from relations),
  'constraints', (select value from constraints),
  'functions', (select value from functions)
)
"""


class NodeTreeError(ValueError):
    """A stored parse tree (`pg_node_tree` text) could not be read."""


# Tokens of Postgres's node-tree text (outfuncs.c / read.c): the four brackets stand alone; any other
# run of characters up to whitespace or a bracket is a token, where a backslash escapes the next
# character (this is how names holding spaces or brackets are written).
_TOKEN: Final = re.compile(r"\s*([(){}]|(?:\\.|[^\s(){}\\])+)", re.DOTALL)
_UNESCAPE: Final = re.compile(r"\\(.)", re.DOTALL)

# A node is a dict of field name -> value ("" holds the node's type name); a list is a list.
_Tree: TypeAlias = "dict[str, _Tree] | list[_Tree] | str | None"


def _tokens(text: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    end = len(text.rstrip())
    while pos < end:
        match = _TOKEN.match(text, pos)
        if match is None:  # a lone trailing backslash
            raise NodeTreeError(f"unreadable node tree at offset {pos}")
        tokens.append(match.group(1))
        pos = match.end()
    return tokens


class _Reader:
    def __init__(self, tokens: list[str]) -> None:
        self._tokens = tokens
        self._pos = 0

    def _next(self) -> str:
        if self._pos >= len(self._tokens):
            raise NodeTreeError("node tree ends early")
        token = self._tokens[self._pos]
        self._pos += 1
        return token

    def _peek(self) -> str | None:
        return self._tokens[self._pos] if self._pos < len(self._tokens) else None

    def value(self) -> _Tree:
        tok = self._next()
        if tok == "{":
            return self._node()
        if tok == "(":
            items: list[_Tree] = []
            while self._peek() != ")":
                items.append(self.value())
            self._next()
            return items
        if tok in (")", "}"):
            raise NodeTreeError(f"unexpected {tok!r} in node tree")
        if tok == "<>":
            return None
        return _UNESCAPE.sub(r"\1", tok)

    def _node(self) -> dict[str, _Tree]:
        node: dict[str, _Tree] = {"": self._next()}
        while (tok := self._peek()) != "}":
            if tok is None or not tok.startswith(":"):
                raise NodeTreeError(f"expected a field name in node tree, got {tok!r}")
            self._next()
            # Most fields hold one value; a few (Const's datum: length then bytes) hold several.
            parts: list[_Tree] = []
            while (nxt := self._peek()) is not None and nxt != "}" and not nxt.startswith(":"):
                parts.append(self.value())
            node[tok[1:]] = parts[0] if len(parts) == 1 else parts
        self._next()
        return node

    def at_end(self) -> bool:
        return self._peek() is None


def _int(value: _Tree) -> int:
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise NodeTreeError(f"expected an integer in node tree, got {value!r}")


def view_column_origins(definition: str) -> tuple[tuple[str, int, int], ...]:
    """Which base column each output column of a view is a plain reference to.

    `definition` is `pg_rewrite.ev_action` as text. The result lists `(view column, relation oid,
    attnum)` for the view's columns that Postgres traced to a relation column; computed columns
    are left out. The relation may itself be a view: the caller follows the chain.

    >>> view_column_origins(
    ...     "({QUERY :commandType 1 :targetList ({TARGETENTRY :expr {VAR :varno 1} :resno 1"
    ...     " :resname my\\\\ id :resorigtbl 16406 :resorigcol 1 :resjunk false}"
    ...     " {TARGETENTRY :expr <> :resno 2 :resname up :resorigtbl 0 :resorigcol 0"
    ...     " :resjunk false}) :stmt_len -1})"
    ... )
    (('my id', 16406, 1),)

    Raises:
        NodeTreeError: the text is not a node tree holding a query with a target list.
    """
    reader = _Reader(_tokens(definition))
    tree = reader.value()
    if not reader.at_end():
        raise NodeTreeError("trailing data after node tree")
    if not isinstance(tree, list) or not tree or not isinstance(tree[0], dict):
        raise NodeTreeError("a view definition is a list of queries")
    query = tree[0]
    if query.get("") != "QUERY":
        raise NodeTreeError("a view definition is a list of queries")
    entries = query.get("targetList")
    if not isinstance(entries, list):
        raise NodeTreeError("the view's query has no target list")
    origins: list[tuple[str, int, int]] = []
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("") != "TARGETENTRY":
            raise NodeTreeError("a target list holds target entries")
        name = entry.get("resname")
        if entry.get("resjunk") == "true" or not isinstance(name, str):
            continue
        table, column = _int(entry.get("resorigtbl")), _int(entry.get("resorigcol"))
        if table != 0 and column > 0:
            origins.append((name, table, column))
    return tuple(origins)
