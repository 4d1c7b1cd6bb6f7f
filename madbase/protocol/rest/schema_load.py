"""Building a `SchemaSnapshot` from what Postgres says: the introspection transaction and the
decoding of its one JSON value, with PostgREST's relationship detection (see `schema`).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final, TypeVar

import attrs

from madbase.protocol.http import JsonValue
from madbase.protocol.rest.schema import (
    ArgMode,
    Cardinality,
    Column,
    Function,
    FunctionArg,
    Identity,
    Junction,
    QualifiedName,
    Relation,
    RelationKind,
    Relationship,
    SchemaPayloadError,
    SchemaSnapshot,
    Volatility,
)
from madbase.protocol.rest.schema_sql import INTROSPECTION_SQL, NodeTreeError, view_column_origins
from madbase.protocol.sql import Statement, Transaction

__all__ = ["introspection_transaction", "snapshot_from_json"]


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
