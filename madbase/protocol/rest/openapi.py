"""The root document: `GET /rest/v1/` as PostgREST answers it, a Swagger 2.0 description of one
exposed schema (PostgREST `Response/OpenAPI.hs`, `openapi-mode = follow-privileges`).

What the document lists depends on the caller, as in PostgREST: `openapi_statement` asks Postgres,
as the request's role, which relations of the schema it holds any privilege on, which functions
it may execute, and the schema's comment; `render_openapi` then builds the document from the
schema snapshot and that answer:

- `definitions`: one object schema per relation (tables, views, materialized views, foreign and
  partitioned tables) with a property per column: Swagger `type` and `format` from the Postgres
  type, `maxLength`, `enum`, `default` (when it reads as a JSON value), and the column comment
  followed by `Note:` lines for primary and foreign keys (`<pk/>`, `<fk table='t' column='c'/>`);
  `required` lists the NOT NULL columns;
- `paths`: `/` (this document), `/<relation>` with GET, plus POST, PATCH and DELETE when the
  relation is writable at all, and `/rpc/<function>` with POST, plus GET unless VOLATILE;
  summaries and descriptions come from the first and the other lines of the comments;
- `parameters`: the shared ones (`select`, `order`, `range`, `offset`, `limit`, the `Prefer`
  variants) and, per relation, `body.<t>` and `rowFilter.<t>.<column>`.

`host`, `schemes` and `basePath` say where the API is reached: the request's `Host` (and
`X-Forwarded-Proto`), under `/rest/v1/` (PostgREST's `openapi-server-proxy-uri`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Final, final

import attrs

import madbase
from madbase.protocol.http.messages import JsonValue
from madbase.protocol.rest.schema import (
    ArgMode,
    Cardinality,
    Column,
    Function,
    FunctionArg,
    QualifiedName,
    Relation,
    RelationKind,
    SchemaSnapshot,
    Volatility,
)
from madbase.protocol.sql import Statement

__all__ = ["OpenApiContext", "openapi_statement", "render_openapi"]

BASE_PATH: Final = "/rest/v1/"
_DOCS: Final = "https://postgrest.org/en/v12/references/api.html"
_JSON: Final = "application/json"
_OBJECT: Final = "application/vnd.pgrst.object+json"
_OBJECT_STRIPPED: Final = "application/vnd.pgrst.object+json;nulls=stripped"
_CSV: Final = "text/csv"

# Run as the caller's role: what it may see (PostgREST `accessibleTables`, `accessibleFuncs`,
# `schemaDescription`). Functions are told apart by their input argument types.
_ACCESS_SQL: Final = """
select json_build_object(
  'relations', (
    select coalesce(json_agg(c.relname), '[]'::json) from pg_class c
     where c.relnamespace = (select oid from pg_namespace where nspname = $1)
       and c.relkind in ('r', 'v', 'm', 'f', 'p') and not c.relispartition
       and (pg_has_role(c.relowner, 'USAGE')
            or has_table_privilege(c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
            or has_any_column_privilege(c.oid, 'SELECT, INSERT, UPDATE, REFERENCES'))),
  'functions', (
    select coalesce(json_agg(json_build_array(p.proname, (
             select coalesce(json_agg(format_type(a.t, null) order by a.n), '[]'::json)
               from unnest(p.proargtypes::oid[]) with ordinality a(t, n)))), '[]'::json)
      from pg_proc p
     where p.pronamespace = (select oid from pg_namespace where nspname = $1)
       and p.prokind = 'f' and has_function_privilege(p.oid, 'execute')),
  'description', (
    select obj_description(oid, 'pg_namespace') from pg_namespace where nspname = $1)
)::text
"""


def openapi_statement(schema: str) -> Statement:
    """The statement whose one value tells `render_openapi` what the caller may see."""
    return Statement(_ACCESS_SQL, (schema,))


@final
@attrs.frozen(kw_only=True)
class OpenApiContext:
    """What the document is built from besides the database's answer.

    `host` is `name:port` as the client reached us, `scheme` `http` or `https`;
    `ignore_privileges` lists everything in the schema (`openapi-mode = ignore-privileges`).
    """

    snapshot: SchemaSnapshot
    schema: str
    host: str
    scheme: str
    ignore_privileges: bool = False

    @classmethod
    def for_request(
        cls,
        snapshot: SchemaSnapshot,
        schema: str,
        host: str | None,
        forwarded_proto: str | None,
        *,
        ignore_privileges: bool = False,
    ) -> OpenApiContext:
        """The context for a request with these `Host` and `X-Forwarded-Proto` headers."""
        scheme = "https" if (forwarded_proto or "").strip().lower() == "https" else "http"
        name = (host or "localhost").strip() or "localhost"
        if not re.fullmatch(r"(?:\[[0-9A-Fa-f:.]+\]|[^\[\]/:{} \\]+)(?::[0-9]+)?", name):
            name = "localhost"
        if not re.search(r":[0-9]+$", name):
            name += ":443" if scheme == "https" else ":80"
        return cls(
            snapshot=snapshot,
            schema=schema,
            host=name,
            scheme=scheme,
            ignore_privileges=ignore_privileges,
        )


# --- types ---------------------------------------------------------------------------------------

_TYPES: Final = {
    "character varying": "string",
    "character": "string",
    "text": "string",
    "boolean": "boolean",
    "smallint": "integer",
    "integer": "integer",
    "bigint": "integer",
    "numeric": "number",
    "real": "number",
    "double precision": "number",
    "json": None,
    "jsonb": None,
}
_FORMATS: Final = {"smallint": "int32", "integer": "int32", "bigint": "int64"}
_TYPMOD: Final = re.compile(r"\([0-9, ]*\)")


def data_type(col: Column) -> str:
    """The type PostgREST names a column by: the domain's base type, without its modifier.

    >>> data_type(Column(name="a", position=1, type="character varying(20)[]",
    ...                  base_type="character varying(20)[]"))
    'character varying[]'
    """
    return _TYPMOD.sub("", col.base_type)


def swagger_type(pg_type: str) -> str | None:
    """Swagger's `type` for a Postgres type (None for json/jsonb: any value)."""
    if pg_type in _TYPES:
        return _TYPES[pg_type]
    return "array" if pg_type.endswith("[]") else "string"


def _format(pg_type: str) -> str:
    return _FORMATS.get(pg_type, pg_type)


def _items(pg_type: str) -> dict[str, JsonValue] | None:
    if swagger_type(pg_type) != "array":
        return None
    element = swagger_type(pg_type[:-2])
    return {} if element is None else {"type": element}


def _with_type(out: dict[str, JsonValue], pg_type: str) -> dict[str, JsonValue]:
    kind = swagger_type(pg_type)
    if kind is not None:
        out["type"] = kind
    items = _items(pg_type)
    if items is not None:
        out["items"] = items
    return out


def parse_default(pg_type: str, default: str) -> JsonValue:
    """A column default as a JSON value, or None when it does not read as one (`now()`, ...).

    >>> parse_default("text", "'abc'::text"), parse_default("integer", "42")
    ('abc', 42)
    >>> parse_default("integer", "nextval('t_id_seq'::regclass)") is None
    True
    """
    text = default
    if swagger_type(pg_type) == "string":
        suffix = "::" + pg_type
        if text.endswith(suffix):
            text = text[: -len(suffix)].strip("'")
        text = '"' + text + '"'
    try:
        value: JsonValue = json.loads(text)
    except ValueError:
        return None
    return value


# --- definitions ---------------------------------------------------------------------------------


def _split(comment: str | None) -> tuple[str | None, str | None]:
    """A comment's first line (summary) and the rest without its leading newlines."""
    if comment is None:
        return None, None
    first, sep, rest = comment.partition("\n")
    rest = rest.lstrip("\n") if sep else ""
    return first, rest or None


def _fk_note(snapshot: SchemaSnapshot, rel: Relation, column: str) -> str | None:
    candidates = [
        r
        for r in snapshot.relationships_from(rel.name)
        if r.junction is None
        and r.function is None
        and not r.source_is_referenced
        and r.cardinality in (Cardinality.MANY_TO_ONE, Cardinality.ONE_TO_ONE)
        and len(r.columns) == 1
        and r.columns[0][0] == column
    ]

    def is_view(name: QualifiedName) -> bool:
        target = snapshot.find_relation(name.schema, name.name)
        return target is not None and target.kind in (
            RelationKind.VIEW,
            RelationKind.MATERIALIZED_VIEW,
        )

    candidates.sort(key=lambda r: is_view(r.target))
    if not candidates:
        return None
    table, col = candidates[0].target.name, candidates[0].columns[0][1]
    return f"This is a Foreign Key to `{table}.{col}`.<fk table='{table}' column='{col}'/>"


def _property(snapshot: SchemaSnapshot, rel: Relation, col: Column) -> dict[str, JsonValue]:
    pg_type = data_type(col)
    notes = ["Note:"]
    if col.name in rel.primary_key:
        notes.append("This is a Primary Key.<pk/>")
    fk = _fk_note(snapshot, rel, col.name)
    if fk is not None:
        notes.append(fk)
    description = col.description
    if len(notes) > 1:
        description = ("" if description is None else description + "\n\n") + "\n".join(notes)
    out: dict[str, JsonValue] = {}
    if col.default is not None and col.identity is None:
        default = parse_default(pg_type, col.default)
        if default is not None:
            out["default"] = default
    if description is not None:
        out["description"] = description
    if col.enum_values:
        out["enum"] = list(col.enum_values)
    out["format"] = _format(pg_type)
    if col.max_length is not None:
        out["maxLength"] = col.max_length
    return _with_type(out, pg_type)


def _definition(snapshot: SchemaSnapshot, rel: Relation) -> dict[str, JsonValue]:
    out: dict[str, JsonValue] = {}
    if rel.description is not None:
        out["description"] = rel.description
    out["properties"] = {col.name: _property(snapshot, rel, col) for col in rel.columns}
    required: list[JsonValue] = [col.name for col in rel.columns if not col.nullable]
    if required:
        out["required"] = required
    out["type"] = "object"
    return out


# --- parameters ----------------------------------------------------------------------------------


def _ref(kind: str, name: str) -> dict[str, JsonValue]:
    return {"$ref": f"#/{kind}/{name}"}


def _query_param(name: str, description: str | None, where: str = "query") -> JsonValue:
    out: dict[str, JsonValue] = {"name": name}
    if description is not None:
        out["description"] = description
    out.update({"required": False, "in": where, "type": "string"})
    return out


def _prefer(values: list[str]) -> JsonValue:
    out: dict[str, JsonValue] = {
        "name": "Prefer",
        "description": "Preference",
        "required": False,
        "in": "header",
        "type": "string",
    }
    if values:
        out["enum"] = list(values)
    return out


_RETURN: Final = ["return=representation", "return=minimal", "return=none"]
_RESOLUTION: Final = ["resolution=ignore-duplicates", "resolution=merge-duplicates"]


def _parameters(relations: Iterable[Relation]) -> dict[str, JsonValue]:
    range_unit = _query_param("Range-Unit", "Limiting and Pagination", "header")
    assert isinstance(range_unit, dict)
    range_unit["default"] = "items"
    out: dict[str, JsonValue] = {
        "preferParams": _prefer([]),
        "preferReturn": _prefer(_RETURN),
        "preferCount": _prefer(["count=none"]),
        "preferPost": _prefer(_RETURN + _RESOLUTION),
        "select": _query_param("select", "Filtering Columns"),
        "on_conflict": _query_param("on_conflict", "On Conflict"),
        "order": _query_param("order", "Ordering"),
        "range": _query_param("Range", "Limiting and Pagination", "header"),
        "rangeUnit": range_unit,
        "offset": _query_param("offset", "Limiting and Pagination"),
        "limit": _query_param("limit", "Limiting and Pagination"),
    }
    for rel in relations:
        t = rel.name.name
        out[f"body.{t}"] = {
            "name": t,
            "description": t,
            "required": False,
            "in": "body",
            "schema": _ref("definitions", t),
        }
        for col in rel.columns:
            out[f"rowFilter.{t}.{col.name}"] = _query_param(col.name, col.description)
    return out


# --- paths ---------------------------------------------------------------------------------------


def _operation(tags: list[str], comment: str | None) -> dict[str, JsonValue]:
    summary, description = _split(comment)
    out: dict[str, JsonValue] = {"tags": list(tags)}
    if summary is not None:
        out["summary"] = summary
    if description is not None:
        out["description"] = description
    return out


def _relation_path(rel: Relation) -> dict[str, JsonValue]:
    t = rel.name.name
    filters: list[JsonValue] = [
        _ref("parameters", f"rowFilter.{t}.{col.name}") for col in rel.columns
    ]

    def op(params: list[JsonValue], responses: dict[str, JsonValue]) -> dict[str, JsonValue]:
        out = _operation([t], rel.description)
        out["parameters"] = params
        out["responses"] = responses
        return out

    shared = ["select", "order", "range", "rangeUnit", "offset", "limit", "preferCount"]
    path: dict[str, JsonValue] = {
        "get": op(
            filters + [_ref("parameters", p) for p in shared],
            {
                "200": {
                    "description": "OK",
                    "schema": {"items": _ref("definitions", t), "type": "array"},
                },
                "206": {"description": "Partial Content"},
            },
        )
    }
    if rel.insertable or rel.updatable or rel.deletable:
        body = _ref("parameters", f"body.{t}")
        path["post"] = op(
            [body, _ref("parameters", "select"), _ref("parameters", "preferPost")],
            {"201": {"description": "Created"}},
        )
        path["delete"] = op(
            [*filters, _ref("parameters", "preferReturn")], {"204": {"description": "No Content"}}
        )
        path["patch"] = op(
            [*filters, body, _ref("parameters", "preferReturn")],
            {"204": {"description": "No Content"}},
        )
    return path


def _arg_schema(arg: FunctionArg) -> dict[str, JsonValue]:
    return _with_type({"format": _format(arg.type)}, arg.type)


def _required(arg: FunctionArg) -> bool:
    return not arg.has_default and arg.mode is not ArgMode.VARIADIC


def _get_param(arg: FunctionArg) -> JsonValue:
    out: dict[str, JsonValue] = {"name": arg.name, "required": _required(arg), "in": "query"}
    if arg.mode is ArgMode.VARIADIC:
        element = arg.type.removesuffix("[]")
        items: dict[str, JsonValue] = {"format": _format(element)}
        kind = swagger_type(element)
        if kind is not None:
            items["type"] = kind
        out.update({"type": swagger_type(arg.type) or "string", "collectionFormat": "multi"})
        out["items"] = items
    else:
        kind = swagger_type(arg.type)
        out["format"] = _format(arg.type)
        out["type"] = "string" if kind in (None, "array") else kind
    return out


def _function_path(fn: Function) -> dict[str, JsonValue]:
    base = _operation([f"(rpc) {fn.name.name}"], fn.description)
    base["produces"] = [_JSON, _OBJECT_STRIPPED, _OBJECT]
    base["responses"] = {"200": {"description": "OK"}}
    inputs = fn.input_args
    schema: dict[str, JsonValue] = {}
    if fn.description is not None:
        schema["description"] = fn.description
    schema["properties"] = {a.name: _arg_schema(a) for a in inputs}
    required: list[JsonValue] = [a.name for a in inputs if _required(a)]
    if required:
        schema["required"] = required
    schema["type"] = "object"
    post = dict(base)
    post["parameters"] = [
        {"name": "args", "required": True, "in": "body", "schema": schema},
        _ref("parameters", "preferParams"),
    ]
    path: dict[str, JsonValue] = {}
    if fn.volatility is not Volatility.VOLATILE:
        get = dict(base)
        get["parameters"] = [_get_param(a) for a in inputs]
        path["get"] = get
    path["post"] = post
    return path


# --- the document --------------------------------------------------------------------------------


def render_openapi(context: OpenApiContext, access: bytes | None) -> bytes:
    """The Swagger 2.0 document, given the value `openapi_statement` returned.

    Raises:
        ValueError: `access` is not the JSON that statement returns.
    """
    seen = json.loads(access or b"null")
    if not isinstance(seen, dict):
        raise ValueError("unexpected OpenAPI access payload")
    visible = set(seen.get("relations") or ())
    callable_ = {(name, tuple(types)) for name, types in seen.get("functions") or ()}
    snapshot = context.snapshot
    everything = context.ignore_privileges
    relations = [
        r
        for r in snapshot.relations
        if r.name.schema == context.schema and (everything or r.name.name in visible)
    ]
    functions = [
        fn
        for fn in snapshot.functions
        if fn.name.schema == context.schema
        and (everything or (fn.name.name, tuple(a.type for a in fn.input_args)) in callable_)
    ]
    title, description = _split(seen.get("description"))
    paths: dict[str, JsonValue] = {
        "/": {
            "get": {
                "tags": ["Introspection"],
                "summary": "OpenAPI description (this document)",
                "produces": ["application/openapi+json", _JSON],
                "responses": {"200": {"description": "OK"}},
            }
        }
    }
    for rel in relations:
        paths["/" + rel.name.name] = _relation_path(rel)
    for fn in functions:
        paths["/rpc/" + fn.name.name] = _function_path(fn)
    media: list[JsonValue] = [_JSON, _OBJECT_STRIPPED, _OBJECT, _CSV]
    document: dict[str, JsonValue] = {
        "swagger": "2.0",
        "info": {
            "description": description or "This is a dynamic API generated by MadBase",
            "title": title or "MadBase REST API",
            "version": madbase.__version__,
        },
        "externalDocs": {"description": "PostgREST Documentation", "url": _DOCS},
        "host": context.host,
        "basePath": BASE_PATH,
        "schemes": [context.scheme],
        "consumes": media,
        "produces": media,
        "paths": paths,
        "definitions": {rel.name.name: _definition(snapshot, rel) for rel in relations},
        "parameters": _parameters(relations),
    }
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
