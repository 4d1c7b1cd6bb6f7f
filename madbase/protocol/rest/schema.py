"""The schema snapshot the REST planner resolves requests against, and how it is built.

A `SchemaSnapshot` is immutable: the runtime loads a new one on `NOTIFY pgrst, 'reload schema'`
and swaps it in, while requests in flight keep the one they started with. It is built by
`schema_load.snapshot_from_json` from the one JSON value `INTROSPECTION_SQL` returns (see
`schema_sql`).

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
from typing import final

import attrs

from madbase.protocol.http import JsonValue

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
