"""The schema snapshot the REST planner resolves requests against, and how it is built.

A `SchemaSnapshot` is immutable: the runtime loads a new one on `NOTIFY pgrst, 'reload schema'`
and swaps it in, while requests in flight keep the one they started with. It is built by
`snapshot_from_json` from the one JSON value `INTROSPECTION_SQL` returns (see `schema_sql`).

Relationships follow PostgREST's detection rules:

- every foreign key gives a many-to-one relationship from the referencing relation and a
  one-to-many back; when the referencing columns are exactly the primary key or a unique
  constraint, both directions are one-to-one instead;
- views inherit them: a view column that is a plain reference to a base table column stands for
  it, so a view exposing all the columns of a foreign key (or of its referenced key) takes the
  table's place on that side (views over views are followed);
- a relation with two to-one relationships whose columns together lie within its primary key or
  a unique constraint is a junction: its two targets are related many-to-many through it;
- a function taking one argument of a relation's row type and returning rows of another relation
  is a computed relationship, to-one when it returns a single row (or `setof ... rows 1`).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final, TypeVar, final

import attrs

from madbase.protocol.http import JsonValue
from madbase.protocol.rest.schema_sql import INTROSPECTION_SQL, NodeTreeError, view_column_origins
from madbase.protocol.sql import Statement, Transaction

__all__ = [
    "ArgMode",
    "Cardinality",
    "Column",
    "Function",
    "FunctionArg",
    "Identity",
    "Junction",
    "QualifiedName",
    "Relation",
    "RelationKind",
    "Relationship",
    "SchemaPayloadError",
    "SchemaSnapshot",
    "Volatility",
    "fuzzy_candidates",
    "introspection_transaction",
    "snapshot_from_json",
]


class SchemaPayloadError(ValueError):
    """The introspection payload does not have the expected shape (the message says where)."""


@final
@attrs.frozen(order=True)
class QualifiedName:
    """A schema-qualified name of a relation or function."""

    schema: str
    name: str

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}"


class RelationKind(StrEnum):
    """What a relation is (`pg_class.relkind`)."""

    TABLE = "r"
    VIEW = "v"
    MATERIALIZED_VIEW = "m"
    FOREIGN_TABLE = "f"
    PARTITIONED_TABLE = "p"


class Identity(StrEnum):
    """An identity column's kind (`pg_attribute.attidentity`)."""

    ALWAYS = "a"
    BY_DEFAULT = "d"


@final
@attrs.frozen(kw_only=True)
class Column:
    """A column of a relation.

    `type` is the declared type as `format_type` prints it (typmod included, e.g.
    `character varying(20)`, `public.email`); `base_type` is the same with domains resolved;
    `element_type` is set for arrays. `default` is the default expression's text; generated
    columns have none (their expression is not a default) but `generated` is true.
    """

    name: str
    position: int
    type: str
    base_type: str
    element_type: str | None = None
    nullable: bool = True
    default: str | None = None
    generated: bool = False
    identity: Identity | None = None
    max_length: int | None = None
    enum_values: tuple[str, ...] = ()
    description: str | None = None

    @property
    def has_default(self) -> bool:
        """True if an INSERT may leave the column out and still get a value."""
        return self.default is not None or self.identity is not None or self.generated


@final
@attrs.frozen(kw_only=True)
class Relation:
    """A table, view, materialized view or foreign table of an exposed schema.

    For views, `primary_key` and `unique_keys` are those of a base table whose key columns the
    view exposes, renamed to the view's column names. `insertable`/`updatable`/`deletable`
    follow `pg_relation_is_updatable` (auto-updatable views, INSTEAD OF triggers, rules).
    """

    name: QualifiedName
    kind: RelationKind
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    unique_keys: tuple[tuple[str, ...], ...] = ()
    insertable: bool = False
    updatable: bool = False
    deletable: bool = False
    description: str | None = None

    def column(self, name: str) -> Column | None:
        """The column called `name`, if any."""
        for col in self.columns:
            if col.name == name:
                return col
        return None


class Cardinality(StrEnum):
    """How many target rows one source row relates to; the values are PostgREST's wording."""

    MANY_TO_ONE = "many-to-one"
    ONE_TO_MANY = "one-to-many"
    ONE_TO_ONE = "one-to-one"
    MANY_TO_MANY = "many-to-many"


@final
@attrs.frozen(kw_only=True)
class Junction:
    """The relation between the two sides of a many-to-many relationship.

    `source_columns` pairs (source column, junction column) of the foreign key
    `source_constraint`; `target_columns` pairs (junction column, target column) of
    `target_constraint`.
    """

    relation: QualifiedName
    source_constraint: str
    source_columns: tuple[tuple[str, str], ...]
    target_constraint: str
    target_columns: tuple[tuple[str, str], ...]


@final
@attrs.frozen(kw_only=True)
class Relationship:
    """A way to embed `target` rows in `source` rows.

    `columns` pairs (source column, target column) to join on; it is empty for many-to-many
    (see `junction`) and computed relationships (call `function` with the source row).
    `constraint` is the foreign key's name (the function's name when computed, the junction's
    name when many-to-many). `source_is_referenced` is true when the foreign key lives on the
    target (one-to-many, and the parent side of a one-to-one).
    """

    source: QualifiedName
    target: QualifiedName
    cardinality: Cardinality
    constraint: str
    columns: tuple[tuple[str, str], ...] = ()
    source_is_referenced: bool = False
    junction: Junction | None = None
    function: QualifiedName | None = None

    @property
    def to_one(self) -> bool:
        """True if the embed is an object (or null) rather than an array."""
        return self.cardinality in (Cardinality.MANY_TO_ONE, Cardinality.ONE_TO_ONE)

    @property
    def is_self(self) -> bool:
        """True for a relation related to itself (e.g. employees and their manager)."""
        return self.source == self.target

    @property
    def hint(self) -> str:
        """What a client writes after `!` to pick this relationship (PGRST201's hint)."""
        if self.junction is not None:
            return self.junction.relation.name
        return self.constraint

    def describe(self) -> dict[str, JsonValue]:
        """This relationship as one entry of PGRST201's `details` list."""
        if self.junction is not None:
            j = self.junction
            using = (
                f"{j.relation.name} using {j.source_constraint}({_names(j.source_columns, 1)})"
                f" and {j.target_constraint}({_names(j.target_columns, 0)})"
            )
        else:
            using = (
                f"{self.constraint} using {self.source.name}({_names(self.columns, 0)})"
                f" and {self.target.name}({_names(self.columns, 1)})"
            )
        return {
            "cardinality": self.cardinality.value,
            "embedding": f"{self.source.name} with {self.target.name}",
            "relationship": using,
        }


def _names(pairs: tuple[tuple[str, str], ...], side: int) -> str:
    return ", ".join(pair[side] for pair in pairs)


class ArgMode(StrEnum):
    """A function argument's mode (`pg_proc.proargmodes`)."""

    IN = "i"
    OUT = "o"
    INOUT = "b"
    VARIADIC = "v"
    TABLE = "t"


class Volatility(StrEnum):
    """`pg_proc.provolatile`: GET may call only STABLE and IMMUTABLE functions."""

    IMMUTABLE = "i"
    STABLE = "s"
    VOLATILE = "v"


@final
@attrs.frozen(kw_only=True)
class FunctionArg:
    """One argument; `name` is "" when unnamed, `relation` is set for a relation's row type."""

    name: str
    type: str
    mode: ArgMode = ArgMode.IN
    has_default: bool = False
    relation: QualifiedName | None = None

    @property
    def is_input(self) -> bool:
        """True for arguments a caller passes (IN, INOUT, VARIADIC)."""
        return self.mode in (ArgMode.IN, ArgMode.INOUT, ArgMode.VARIADIC)


@final
@attrs.frozen(kw_only=True)
class Function:
    """A function of an exposed schema callable through `/rpc`.

    `return_relation` is set when it returns rows of a relation (`returns films`, `setof films`);
    `returns_composite` also covers composite types, OUT parameters and `returns table (...)`.
    `rows` is the planner's row estimate (`rows 1` makes a computed relationship to-one).
    `settings` are the function's `SET name = value` clauses.
    """

    name: QualifiedName
    args: tuple[FunctionArg, ...]
    return_type: str
    returns_set: bool = False
    returns_composite: bool = False
    return_relation: QualifiedName | None = None
    volatility: Volatility = Volatility.VOLATILE
    rows: float = 0.0
    settings: tuple[tuple[str, str], ...] = ()
    description: str | None = None

    @property
    def input_args(self) -> tuple[FunctionArg, ...]:
        """The arguments a caller passes, in order."""
        return tuple(a for a in self.args if a.is_input)

    @property
    def returns_void(self) -> bool:
        """True for `returns void` (HTTP 204)."""
        return self.return_type == "void" and not self.returns_set

    @property
    def is_variadic(self) -> bool:
        """True if the last input argument is VARIADIC."""
        inputs = self.input_args
        return bool(inputs) and inputs[-1].mode is ArgMode.VARIADIC


@final
@attrs.frozen(kw_only=True, eq=False)
class SchemaSnapshot:
    """Everything the planner needs to know about the exposed schemas, at one moment.

    Build it with `snapshot_from_json` (or `SchemaSnapshot.build` from parts in tests).
    """

    schemas: tuple[str, ...]
    _relations: Mapping[QualifiedName, Relation]
    _relationships: Mapping[QualifiedName, tuple[Relationship, ...]]
    _functions: Mapping[QualifiedName, tuple[Function, ...]]

    @classmethod
    def build(
        cls,
        *,
        schemas: tuple[str, ...],
        relations: tuple[Relation, ...] = (),
        relationships: tuple[Relationship, ...] = (),
        functions: tuple[Function, ...] = (),
    ) -> SchemaSnapshot:
        """Index the given parts."""
        by_source: dict[QualifiedName, list[Relationship]] = {}
        for rel in relationships:
            by_source.setdefault(rel.source, []).append(rel)
        by_name: dict[QualifiedName, list[Function]] = {}
        for fn in functions:
            by_name.setdefault(fn.name, []).append(fn)
        return cls(
            schemas=schemas,
            relations=MappingProxyType({r.name: r for r in relations}),
            relationships=MappingProxyType({k: tuple(v) for k, v in by_source.items()}),
            functions=MappingProxyType({k: tuple(v) for k, v in by_name.items()}),
        )

    @property
    def relations(self) -> tuple[Relation, ...]:
        """All relations, by schema then name."""
        return tuple(sorted(self._relations.values(), key=lambda r: r.name))

    @property
    def functions(self) -> tuple[Function, ...]:
        """All functions, by schema then name (overloads in catalog order)."""
        return tuple(fn for key in sorted(self._functions) for fn in self._functions[key])

    def find_relation(self, schema: str, name: str) -> Relation | None:
        """The relation `schema.name`, if it exists in an exposed schema."""
        return self._relations.get(QualifiedName(schema, name))

    def find_functions(self, schema: str, name: str) -> tuple[Function, ...]:
        """The overloads of `schema.name` (empty if none): the planner picks by argument names."""
        return self._functions.get(QualifiedName(schema, name), ())

    def relationships_from(self, source: QualifiedName) -> tuple[Relationship, ...]:
        """Every relationship whose source is `source`."""
        return self._relationships.get(source, ())

    def relationships(
        self, source: QualifiedName, target: QualifiedName
    ) -> tuple[Relationship, ...]:
        """Every relationship from `source` to exactly `target`."""
        return tuple(r for r in self.relationships_from(source) if r.target == target)

    def find_relationships(
        self, source: QualifiedName, target: str, hint: str | None = None
    ) -> tuple[Relationship, ...]:
        """The relationships an embed `target!hint(...)` in a request on `source` may mean.

        `target` names the related relation, a foreign key constraint, a single foreign key
        column, or a computed relationship's function. `hint` narrows by foreign key constraint
        name, single column on either side, or junction name. None found is PGRST200, more than
        one is PGRST201 (`describe` each for its details): the caller decides. A computed
        relationship named `target` overrides detected ones, as in PostgREST.
        """
        computed = tuple(
            r
            for r in self.relationships_from(source)
            if r.function is not None
            and r.function.name == target
            and (hint is None or hint == r.target.name)
        )
        if computed:
            return computed
        return tuple(
            r
            for r in self.relationships_from(source)
            if r.function is None
            and _matches_target(r, target)
            and (hint is None or _matches_hint(r, hint))
        )

    def similar_relations(self, schema: str, name: str) -> tuple[str, ...]:
        """Relation names of `schema` close to `name`, best first (PGRST205's hint)."""
        names = [q.name for q in self._relations if q.schema == schema]
        return fuzzy_candidates(name, names)

    def similar_functions(self, schema: str, name: str) -> tuple[str, ...]:
        """Function names of `schema` close to `name`, best first (PGRST202's hint)."""
        names = [q.name for q in self._functions if q.schema == schema]
        return fuzzy_candidates(name, names)

    def similar_embeds(self, source: QualifiedName, target: str) -> tuple[str, ...]:
        """Names related to `source` close to `target`, best first (PGRST200's hint)."""
        names = {
            (r.function.name if r.function is not None else r.target.name)
            for r in self.relationships_from(source)
        }
        return fuzzy_candidates(target, sorted(names))


def _fk_column(rel: Relationship) -> str | None:
    """The single referencing column of a one-column foreign key, on whichever side it is."""
    if len(rel.columns) != 1:
        return None
    source_col, target_col = rel.columns[0]
    return target_col if rel.source_is_referenced else source_col


def _ref_column(rel: Relationship) -> str | None:
    if len(rel.columns) != 1:
        return None
    source_col, target_col = rel.columns[0]
    return source_col if rel.source_is_referenced else target_col


def _matches_target(rel: Relationship, target: str) -> bool:
    if rel.target.name == target:
        return True
    if rel.junction is not None:
        return False
    return target in (rel.constraint, _fk_column(rel))


def _matches_hint(rel: Relationship, hint: str) -> bool:
    if rel.junction is not None:
        j = rel.junction
        return hint in (j.relation.name, j.source_constraint, j.target_constraint)
    return hint in (rel.constraint, _fk_column(rel), _ref_column(rel))


def fuzzy_candidates(name: str, choices: list[str], *, limit: int = 3) -> tuple[str, ...]:
    """The choices that look like `name`, best first ("Perhaps you meant ..." hints).

    >>> fuzzy_candidates("citys", ["countries", "cities", "films"])
    ('cities',)
    """
    return tuple(difflib.get_close_matches(name, choices, n=limit, cutoff=0.6))


def introspection_transaction(schemas: tuple[str, ...]) -> Transaction:
    """The read-only transaction that fetches the payload for `snapshot_from_json`.

    The empty `search_path` makes every type and default name schema-qualified, so the
    snapshot does not depend on the connection's settings.
    """
    return Transaction(
        settings=(("search_path", ""),),
        statements=(Statement(INTROSPECTION_SQL, (_text_array(schemas),)),),
        read_only=True,
    )


def _text_array(values: tuple[str, ...]) -> str:
    """A `text[]` literal.

    >>> _text_array(("public", 'we"ird\\\\'))
    '{"public","we\\\\"ird\\\\\\\\"}'
    """
    quoted = ('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    return "{" + ",".join(quoted) + "}"


# ---------------------------------------------------------------------------------------------
# Building a snapshot from the payload


@attrs.frozen
class _RawRelation:
    oid: int
    name: QualifiedName
    kind: RelationKind
    exposed: bool
    columns: tuple[Column, ...]
    by_num: Mapping[int, str]
    updatable_mask: int
    definition: str | None
    description: str | None


@attrs.frozen
class _RawConstraint:
    name: str
    type: str
    rel: int
    columns: tuple[int, ...]
    ref_rel: int | None
    ref_columns: tuple[int, ...]


_E = TypeVar("_E", bound=StrEnum)

# pg_relation_is_updatable's bits: 1 << CMD_UPDATE, 1 << CMD_INSERT, 1 << CMD_DELETE.
_UPDATE_BIT: Final = 4
_INSERT_BIT: Final = 8
_DELETE_BIT: Final = 16
# Views over views deeper than this are not followed (Postgres itself has no limit).
_MAX_VIEW_DEPTH: Final = 32


def snapshot_from_json(payload: JsonValue, exposed_schemas: tuple[str, ...]) -> SchemaSnapshot:
    """Build the snapshot from the value `INTROSPECTION_SQL` returned for `exposed_schemas`.

    Raises:
        SchemaPayloadError: the payload is not shaped as that query returns it.
    """
    top = _obj(payload, "payload")
    raw_rels = [_relation(v, f"relations[{i}]") for i, v in enumerate(_list(top, "relations"))]
    cons = [_constraint(v, f"constraints[{i}]") for i, v in enumerate(_list(top, "constraints"))]
    functions = tuple(
        _function(v, f"functions[{i}]") for i, v in enumerate(_list(top, "functions"))
    )
    builder = _Builder(raw_rels, cons)
    relations = builder.relations()
    exposed = {r.name for r in relations}
    relationships = builder.fk_relationships()
    relationships += _m2m_relationships(relationships, {r.name: r for r in relations})
    relationships += _computed_relationships(functions, exposed)
    return SchemaSnapshot.build(
        schemas=tuple(exposed_schemas),
        relations=relations,
        relationships=tuple(relationships),
        functions=functions,
    )


class _Builder:
    """Joins relations and constraints by oid, and maps view columns to base columns."""

    def __init__(self, rels: list[_RawRelation], cons: list[_RawConstraint]) -> None:
        self.rels = {r.oid: r for r in rels}
        self.cons = [c for c in cons if c.rel in self.rels]
        # view oid -> view column -> (relation oid, attnum) as Postgres recorded it
        self.origins: dict[int, dict[str, tuple[int, int]]] = {}
        for rel in rels:
            if rel.definition is None:
                continue
            try:
                found = view_column_origins(rel.definition)
            except NodeTreeError as err:
                raise SchemaPayloadError(f"definition of view {rel.name}: {err}") from err
            mapping: dict[str, tuple[int, int]] = {}
            for col, table, num in found:
                mapping.setdefault(col, (table, num))
            self.origins[rel.oid] = mapping
        # relation oid -> {(base oid, base column): own column}, first occurrence kept
        self.exposes: dict[int, dict[tuple[int, str], str]] = {
            oid: self._exposed_columns(rel) for oid, rel in self.rels.items() if rel.exposed
        }

    def _base_of(self, oid: int, num: int) -> tuple[int, str] | None:
        for _ in range(_MAX_VIEW_DEPTH):
            rel = self.rels.get(oid)
            if rel is None or num not in rel.by_num:
                return None
            name = rel.by_num[num]
            if oid not in self.origins:
                return (oid, name)
            nxt = self.origins[oid].get(name)
            if nxt is None:
                return None
            oid, num = nxt
        return None

    def _exposed_columns(self, rel: _RawRelation) -> dict[tuple[int, str], str]:
        out: dict[tuple[int, str], str] = {}
        if rel.oid not in self.origins:
            for col in rel.columns:
                out[(rel.oid, col.name)] = col.name
            return out
        for col in rel.columns:
            base = self._base_of(rel.oid, col.position)
            if base is not None and base[0] != rel.oid:
                out.setdefault(base, col.name)
        return out

    def _names(self, oid: int, nums: tuple[int, ...]) -> tuple[str, ...] | None:
        by_num = self.rels[oid].by_num
        if not all(n in by_num for n in nums):
            return None
        return tuple(by_num[n] for n in nums)

    def _keys(self, oid: int) -> tuple[tuple[str, ...] | None, list[tuple[str, ...]]]:
        """A base relation's primary key and unique keys, as column names."""
        pk: tuple[str, ...] | None = None
        uniques: list[tuple[str, ...]] = []
        for con in self.cons:
            if con.rel != oid or con.type not in ("p", "u"):
                continue
            names = self._names(oid, con.columns)
            if names is None:
                continue
            if con.type == "p":
                pk = names
            else:
                uniques.append(names)
        return pk, uniques

    def _mapped(
        self, exposed_oid: int, base_oid: int, cols: tuple[str, ...]
    ) -> tuple[str, ...] | None:
        exposes = self.exposes[exposed_oid]
        if not all((base_oid, c) in exposes for c in cols):
            return None
        return tuple(exposes[(base_oid, c)] for c in cols)

    def relations(self) -> tuple[Relation, ...]:
        out: list[Relation] = []
        base_oids = sorted({oid for m in self.exposes.values() for oid, _ in m})
        for oid, rel in self.rels.items():
            if not rel.exposed:
                continue
            pk: tuple[str, ...] = ()
            uniques: list[tuple[str, ...]] = []
            for base in [oid] if oid not in self.origins else base_oids:
                base_pk, base_uniques = self._keys(base)
                for i, key in enumerate([base_pk, *base_uniques]):
                    mapped = self._mapped(oid, base, key) if key is not None else None
                    if mapped is None:
                        continue
                    if i == 0 and not pk:
                        pk = mapped
                    elif mapped not in uniques:
                        uniques.append(mapped)
            mask = rel.updatable_mask
            out.append(
                Relation(
                    name=rel.name,
                    kind=rel.kind,
                    columns=rel.columns,
                    primary_key=pk,
                    unique_keys=tuple(uniques),
                    insertable=bool(mask & _INSERT_BIT),
                    updatable=bool(mask & _UPDATE_BIT),
                    deletable=bool(mask & _DELETE_BIT),
                    description=rel.description,
                )
            )
        return tuple(out)

    def _sides(
        self, base_oid: int, cols: tuple[str, ...]
    ) -> list[tuple[QualifiedName, tuple[str, ...]]]:
        """Each exposed relation standing for `base_oid` on these columns, with its names."""
        sides = []
        for oid in self.exposes:
            mapped = self._mapped(oid, base_oid, cols)
            if mapped is not None:
                sides.append((self.rels[oid].name, mapped))
        return sides

    def fk_relationships(self) -> list[Relationship]:
        out: list[Relationship] = []
        for fk in self.cons:
            if fk.type != "f" or fk.ref_rel is None or fk.ref_rel not in self.rels:
                continue
            cols = self._names(fk.rel, fk.columns)
            ref_cols = self._names(fk.ref_rel, fk.ref_columns)
            if cols is None or ref_cols is None or len(cols) != len(ref_cols):
                continue
            pk, uniques = self._keys(fk.rel)
            one_to_one = any(k is not None and set(k) == set(cols) for k in [pk, *uniques])
            for source, scols in self._sides(fk.rel, cols):
                for target, tcols in self._sides(fk.ref_rel, ref_cols):
                    pairs = tuple(zip(scols, tcols, strict=True))
                    out.append(
                        Relationship(
                            source=source,
                            target=target,
                            cardinality=Cardinality.ONE_TO_ONE
                            if one_to_one
                            else Cardinality.MANY_TO_ONE,
                            constraint=fk.name,
                            columns=pairs,
                        )
                    )
                    out.append(
                        Relationship(
                            source=target,
                            target=source,
                            cardinality=Cardinality.ONE_TO_ONE
                            if one_to_one
                            else Cardinality.ONE_TO_MANY,
                            constraint=fk.name,
                            columns=tuple((t, s) for s, t in pairs),
                            source_is_referenced=True,
                        )
                    )
        return out


def _m2m_relationships(
    fk_rels: list[Relationship], relations: dict[QualifiedName, Relation]
) -> list[Relationship]:
    out: list[Relationship] = []
    forward: dict[QualifiedName, list[Relationship]] = {}
    for rel in fk_rels:
        if not rel.source_is_referenced:
            forward.setdefault(rel.source, []).append(rel)
    for junction_name, rels in forward.items():
        junction = relations[junction_name]
        keys = [set(k) for k in (junction.primary_key, *junction.unique_keys) if k]
        for first in rels:
            for second in rels:
                if first is second or junction_name in (first.target, second.target):
                    continue
                used = {c for c, _ in first.columns} | {c for c, _ in second.columns}
                if not any(used <= key for key in keys):
                    continue
                out.append(
                    Relationship(
                        source=first.target,
                        target=second.target,
                        cardinality=Cardinality.MANY_TO_MANY,
                        constraint=junction_name.name,
                        junction=Junction(
                            relation=junction_name,
                            source_constraint=first.constraint,
                            source_columns=tuple((t, j) for j, t in first.columns),
                            target_constraint=second.constraint,
                            target_columns=second.columns,
                        ),
                    )
                )
    return out


def _computed_relationships(
    functions: tuple[Function, ...], exposed: set[QualifiedName]
) -> list[Relationship]:
    out: list[Relationship] = []
    for fn in functions:
        inputs = fn.input_args
        if len(inputs) != 1 or inputs[0].mode is not ArgMode.IN:
            continue
        source, target = inputs[0].relation, fn.return_relation
        if source is None or target is None or source not in exposed or target not in exposed:
            continue
        to_one = not fn.returns_set or fn.rows == 1
        out.append(
            Relationship(
                source=source,
                target=target,
                cardinality=Cardinality.MANY_TO_ONE if to_one else Cardinality.ONE_TO_MANY,
                constraint=fn.name.name,
                function=fn.name,
            )
        )
    return out


# ---------------------------------------------------------------------------------------------
# Payload validation: JSON in, our values out, or SchemaPayloadError naming the place.


def _obj(value: JsonValue, where: str) -> dict[str, JsonValue]:
    if not isinstance(value, dict):
        raise SchemaPayloadError(f"{where}: expected an object, got {type(value).__name__}")
    return value


def _list(obj: dict[str, JsonValue], key: str, where: str = "payload") -> list[JsonValue]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise SchemaPayloadError(f"{where}.{key}: expected a list")
    return value


def _str(obj: dict[str, JsonValue], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise SchemaPayloadError(f"{where}.{key}: expected a string, got {value!r}")
    return value


def _opt_str(obj: dict[str, JsonValue], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise SchemaPayloadError(f"{where}.{key}: expected a string or null, got {value!r}")
    return value


def _int(obj: dict[str, JsonValue], key: str, where: str) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise SchemaPayloadError(f"{where}.{key}: expected an integer, got {value!r}")
    return value


def _opt_int(obj: dict[str, JsonValue], key: str, where: str) -> int | None:
    return None if obj.get(key) is None else _int(obj, key, where)


def _number(obj: dict[str, JsonValue], key: str, where: str) -> float:
    value = obj.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise SchemaPayloadError(f"{where}.{key}: expected a number, got {value!r}")
    return float(value)


def _bool(obj: dict[str, JsonValue], key: str, where: str) -> bool:
    value = obj.get(key)
    if not isinstance(value, bool):
        raise SchemaPayloadError(f"{where}.{key}: expected a boolean, got {value!r}")
    return value


def _strs(obj: dict[str, JsonValue], key: str, where: str) -> tuple[str, ...]:
    items = _list(obj, key, where)
    if not all(isinstance(v, str) for v in items):
        raise SchemaPayloadError(f"{where}.{key}: expected a list of strings")
    return tuple(v for v in items if isinstance(v, str))


def _ints(obj: dict[str, JsonValue], key: str, where: str) -> tuple[int, ...]:
    items = _list(obj, key, where)
    out = tuple(v for v in items if isinstance(v, int) and not isinstance(v, bool))
    if len(out) != len(items):
        raise SchemaPayloadError(f"{where}.{key}: expected a list of integers")
    return out


def _enum(kind: type[_E], obj: dict[str, JsonValue], key: str, where: str) -> _E:
    value = _str(obj, key, where)
    try:
        return kind(value)
    except ValueError:
        raise SchemaPayloadError(f"{where}.{key}: unknown value {value!r}") from None


def _qualified(obj: dict[str, JsonValue], prefix: str, where: str) -> QualifiedName | None:
    schema = _opt_str(obj, f"{prefix}schema", where)
    name = _opt_str(obj, f"{prefix}name", where)
    if schema is None or name is None:
        return None
    return QualifiedName(schema, name)


def _column(value: JsonValue, where: str) -> Column:
    obj = _obj(value, where)
    generated = _opt_str(obj, "generated", where) or ""
    identity = _opt_str(obj, "identity", where) or ""
    try:
        ident = Identity(identity) if identity else None
    except ValueError:
        raise SchemaPayloadError(f"{where}.identity: unknown value {identity!r}") from None
    return Column(
        name=_str(obj, "name", where),
        position=_int(obj, "num", where),
        type=_str(obj, "type", where),
        base_type=_str(obj, "base_type", where),
        element_type=_opt_str(obj, "element_type", where),
        nullable=_bool(obj, "nullable", where),
        default=None if generated else _opt_str(obj, "default", where),
        generated=bool(generated),
        identity=ident,
        max_length=_opt_int(obj, "max_length", where),
        enum_values=_strs(obj, "enum", where),
        description=_opt_str(obj, "description", where),
    )


def _relation(value: JsonValue, where: str) -> _RawRelation:
    obj = _obj(value, where)
    columns = tuple(
        _column(v, f"{where}.columns[{i}]") for i, v in enumerate(_list(obj, "columns", where))
    )
    return _RawRelation(
        oid=_int(obj, "oid", where),
        name=QualifiedName(_str(obj, "schema", where), _str(obj, "name", where)),
        kind=_enum(RelationKind, obj, "kind", where),
        exposed=_bool(obj, "exposed", where),
        columns=columns,
        by_num=MappingProxyType({c.position: c.name for c in columns}),
        updatable_mask=_int(obj, "updatable_mask", where),
        definition=_opt_str(obj, "definition", where),
        description=_opt_str(obj, "description", where),
    )


def _constraint(value: JsonValue, where: str) -> _RawConstraint:
    obj = _obj(value, where)
    kind = _str(obj, "type", where)
    if kind not in ("p", "u", "f"):
        raise SchemaPayloadError(f"{where}.type: unknown constraint type {kind!r}")
    return _RawConstraint(
        name=_str(obj, "name", where),
        type=kind,
        rel=_int(obj, "rel", where),
        columns=_ints(obj, "columns", where),
        ref_rel=_opt_int(obj, "ref_rel", where),
        ref_columns=_ints(obj, "ref_columns", where),
    )


def _function(value: JsonValue, where: str) -> Function:
    obj = _obj(value, where)
    args: list[FunctionArg] = []
    for i, raw in enumerate(_list(obj, "args", where)):
        arg_where = f"{where}.args[{i}]"
        arg = _obj(raw, arg_where)
        args.append(
            FunctionArg(
                name=_str(arg, "name", arg_where),
                type=_str(arg, "type", arg_where),
                mode=_enum(ArgMode, arg, "mode", arg_where),
                relation=_qualified(arg, "rel_", arg_where),
            )
        )
    # pronargdefaults counts the last input arguments.
    remaining = _int(obj, "ndefaults", where)
    for i in range(len(args) - 1, -1, -1):
        if remaining <= 0:
            break
        if args[i].is_input:
            args[i] = attrs.evolve(args[i], has_default=True)
            remaining -= 1
    settings: list[tuple[str, str]] = []
    for setting in _strs(obj, "settings", where):
        key, sep, val = setting.partition("=")
        if not sep:
            raise SchemaPayloadError(f"{where}.settings: expected name=value, got {setting!r}")
        settings.append((key, val))
    return_relation = _qualified(obj, "return_rel_", where)
    typtype = _opt_str(obj, "return_typtype", where)
    return_type = _str(obj, "return_type", where)
    has_out = any(a.mode in (ArgMode.OUT, ArgMode.INOUT, ArgMode.TABLE) for a in args)
    return Function(
        name=QualifiedName(_str(obj, "schema", where), _str(obj, "name", where)),
        args=tuple(args),
        return_type=return_type,
        returns_set=_bool(obj, "returns_set", where),
        returns_composite=typtype == "c" or (return_type == "record" and has_out),
        return_relation=return_relation,
        volatility=_enum(Volatility, obj, "volatility", where),
        rows=_number(obj, "rows", where),
        settings=tuple(settings),
        description=_opt_str(obj, "description", where),
    )
