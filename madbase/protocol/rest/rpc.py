"""Function calls through `/rpc/<name>`: reading the arguments, the SQL, the response settings.

As PostgREST's `Plan.hs` (`callReadPlan`, `findProc`), `Plan/CallPlan.hs` and
`Query/QueryBuilder.hs` (`callPlanToQuery`); the shapes are PostgREST's, the code ours.

The overload is picked by `overloads.find_function`. `Prefer: params=single-object` (PostgREST
12; removed in 13, so only honoured when `handling` is not strict) passes the whole body to a
function with one `json`/`jsonb` argument, whatever its name.

The call is one statement, like a read; the function runs in the CTE, so it runs once whatever
the rest of the statement reads::

    with pgrst_source as (
      select pgrst_call.* from json_to_record($1::json) as pgrst_body("a" integer, ...),
        lateral "s"."f"("a" := pgrst_body."a", ...) pgrst_call
    )
    select <total>, <page rows>, <body>, <response.headers>, <response.status>, <guard>
      from (select ... from pgrst_source "f" ...) _t

GET arguments are bound one parameter each and cast to the argument's type (`"a" := $1::integer`);
a VARIADIC argument gets every repeated value as one array (`VARIADIC "v" := $2::integer[]`).
A function returning rows of a relation reads like that relation (columns, embeds); one with OUT
or TABLE arguments like a relation of those columns; any other composite type is read without
checking column names (Postgres checks them); a scalar result is the one column `pgrst_scalar`.
"""

# S608: this module builds SQL; every request value is a bind parameter and every identifier goes
# through quote_ident (tests/protocol/rest/test_rpc.py checks the text never holds them).
# ruff: noqa: S608

from __future__ import annotations

import json
import re
from types import MappingProxyType
from typing import Final, final

import attrs

from madbase.protocol.http.messages import JsonValue, Response
from madbase.protocol.rest.build import StatementBuilder, body_aggregate, pg_array, q
from madbase.protocol.rest.errors import (
    GucHeadersError,
    GucStatusError,
    InvalidBody,
    MaxAffectedRpcViolation,
    MaxAffectedViolation,
    RestError,
    SingularityError,
)
from madbase.protocol.rest.headers import MediaKind, MediaType, PreferHandling
from madbase.protocol.rest.overloads import RAW_BODY_KINDS, find_function
from madbase.protocol.rest.payload import csv_rows
from madbase.protocol.rest.query import decode_query
from madbase.protocol.rest.request import Action, ApiRequest
from madbase.protocol.rest.schema import (
    ArgMode,
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

__all__ = ["Call", "call_statement", "guard_error", "with_response_settings"]

# Fixed-length types would cut a longer value to their length when cast (`'abc'::character` is
# 'a'); PostgREST casts to the varying type instead.
_LENGTHLESS: Final = MappingProxyType(
    {
        "character": "character varying",
        "character[]": "character varying[]",
        "bit": "bit varying",
        "bit[]": "bit varying[]",
    }
)
_SINGLE_OBJECT: Final = "params=single-object"
# PostgREST's default `db-hoisted-tx-settings`, less `default_transaction_isolation`: the
# transaction has begun before settings apply, so its isolation level can no longer change.
_HOISTED: Final = frozenset({"statement_timeout", "plan_filter.statement_cost_limit"})
# RFC 9110 §5.1 field names (tokens); anything else could not be sent.
_HEADER_NAME: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Visible ASCII, spaces and tabs: what every HTTP/1.1 stack sends as it is (RFC 9110 §5.5).
_HEADER_VALUE: Final = re.compile(r"[\t\x20-\x7e]*")
# Framing is the server's: a function cannot set these (the server would contradict itself).
_SERVER_HEADERS: Final = frozenset(
    {"content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer"}
)
_OUT_MODES: Final = frozenset({ArgMode.OUT, ArgMode.INOUT, ArgMode.TABLE})
# PostgREST rolls back a call whose result breaks `Accept: ...object+json` or `max-affected`.
# Our transaction's COMMIT is already on the wire, so the statement itself fails instead: a cast
# of this marked text to integer (SQLSTATE 22P02), which `guard_error` reads back.
_GUARD: Final = "madbase-guard"
_GUARD_MESSAGE: Final = re.compile(
    r'invalid input syntax for type integer: "madbase-guard (PGRST116|PGRST124) ([0-9]+)"'
)


@final
@attrs.frozen(kw_only=True)
class Call:
    """A planned call and what `respond` needs.

    The statement returns one row: total, page rows, body, the `response.headers` and
    `response.status` settings the function left (NULL when unset), and NULL (or it fails on
    purpose, see `guard_error`).

    `read_only`: GET/HEAD, or a POST of a STABLE/IMMUTABLE function. `returns_void`: the
    answer is 204 without a body. `settings` are the function's own `SET` clauses that apply to
    the whole transaction (PostgREST's default `db-hoisted-tx-settings`).
    """

    statement: Statement
    function: Function
    read_only: bool
    returns_void: bool
    settings: tuple[tuple[str, str], ...] = ()


# --- arguments -----------------------------------------------------------------------------------


@final
@attrs.frozen(kw_only=True)
class _JsonArgs:
    """A JSON body: its text, whether it is an array (one call per element), its keys."""

    text: str
    keys: frozenset[str]
    is_array: bool


@final
@attrs.frozen(kw_only=True)
class _DirectArgs:
    """Arguments as text values (GET, form bodies); a list for a VARIADIC argument."""

    values: tuple[tuple[str, str | tuple[str, ...]], ...]


@final
@attrs.frozen(kw_only=True)
class _RawArg:
    """A raw body for a single unnamed argument (text is `\\x…` hex for bytea)."""

    text: str


def _json_args(body: bytes, columns: tuple[str, ...] | None) -> _JsonArgs:
    """The JSON body's keys as PostgREST reads them (`Payload.hs` `payloadAttributes`).

    Raises:
        InvalidBody: not UTF-8 JSON, or an array whose items are not objects with the same keys.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InvalidBody from err
    if not text:
        text = "{}"  # an empty body calls the function without arguments
    if columns is not None:
        if "\x00" in text:  # not JSON, and libpq would cut the value there
            raise InvalidBody
        stripped = text.lstrip(" \t\r\n")
        return _JsonArgs(text=text, keys=frozenset(columns), is_array=stripped.startswith("["))
    try:
        value: JsonValue = json.loads(text)
    except ValueError as err:
        raise InvalidBody from err
    if isinstance(value, dict):
        return _JsonArgs(text=text, keys=frozenset(value), is_array=False)
    if isinstance(value, list) and value:
        first = value[0]
        if isinstance(first, dict) and all(
            isinstance(item, dict) and item.keys() == first.keys() for item in value
        ):
            return _JsonArgs(text=text, keys=frozenset(first), is_array=True)
        raise InvalidBody("All object keys must match")
    # Anything else is read as an empty array, as PostgREST does.
    return _JsonArgs(text="[]", keys=frozenset(), is_array=True)


def _direct_args(pairs: tuple[tuple[str, str], ...], fn: Function) -> _DirectArgs:
    """Query-string style arguments; repeats of a VARIADIC argument collect, others: last wins."""
    variadic = {a.name for a in fn.input_args if a.mode is ArgMode.VARIADIC}
    out: dict[str, str | tuple[str, ...]] = {}
    for name, value in pairs:
        if name in variadic:
            previous = out.get(name, ())
            assert isinstance(previous, tuple)
            out[name] = (*previous, value)
        else:
            out[name] = value
    return _DirectArgs(values=tuple(out.items()))


def _type(arg: FunctionArg) -> str:
    """The argument's type as SQL, as Postgres itself printed it (`format_type`)."""
    return _LENGTHLESS.get(arg.type, arg.type)


# --- SQL ---------------------------------------------------------------------------------------


class _CallBuilder(StatementBuilder):
    """A `StatementBuilder` that leaves column names of `open_relation` for Postgres to check."""

    def __init__(
        self,
        snapshot: SchemaSnapshot,
        api: ApiRequest,
        max_depth: int,
        open_relation: Relation | None,
    ) -> None:
        super().__init__(snapshot, api.query, max_depth)
        self.open_relation = open_relation

    def column(self, rel: Relation, alias: str, name: str) -> str:
        if rel is self.open_relation:
            return f"{q(alias)}.{q(name)}"
        return super().column(rel, alias, name)


def _returns_composite(fn: Function) -> bool:
    """As PostgREST: a composite type, or any OUT/INOUT/TABLE argument (even just one)."""
    return fn.returns_composite or any(a.mode in _OUT_MODES for a in fn.args)


def _result(snapshot: SchemaSnapshot, fn: Function) -> tuple[Relation, bool]:
    """The relation the result reads as, and whether its column names go unchecked."""
    name = QualifiedName(fn.name.schema, fn.name.name)
    if not _returns_composite(fn):
        scalar = Column(name="pgrst_scalar", position=1, type=fn.return_type, base_type="")
        return Relation(name=name, kind=RelationKind.TABLE, columns=(scalar,)), True
    if fn.return_relation is not None:
        rel = snapshot.find_relation(fn.return_relation.schema, fn.return_relation.name)
        if rel is not None:
            return rel, False
    outs = [a for a in fn.args if a.mode in _OUT_MODES]
    if outs:
        columns = tuple(
            Column(name=a.name, position=i + 1, type=a.type, base_type=a.type)
            for i, a in enumerate(outs)
        )
        return Relation(name=name, kind=RelationKind.TABLE, columns=columns), False
    return Relation(name=name, kind=RelationKind.TABLE, columns=()), True


def _call_sql(
    b: StatementBuilder,
    fn: Function,
    args: _JsonArgs | _DirectArgs | _RawArg,
    *,
    scalar: bool,
) -> str:
    """`select ... from <the call>`: the rows the function returns (`pgrst_scalar` if scalar)."""
    params = fn.input_args
    body_from = ""
    arguments = ""
    match args:
        case _RawArg(text=text):
            arguments = f"{b.param(text)}::{_type(params[0])}"
        case _DirectArgs(values=values):
            given = dict(values)
            parts = []
            for arg in params:
                if arg.name not in given:
                    continue
                value = given[arg.name]
                if isinstance(value, tuple):
                    parts.append(
                        f"variadic {q(arg.name)} := {b.param(pg_array(value))}::{_type(arg)}"
                    )
                else:
                    parts.append(f"{q(arg.name)} := {b.param(value)}::{_type(arg)}")
            arguments = ", ".join(parts)
        case _JsonArgs(text=text, keys=keys, is_array=is_array):
            if len(params) == 1 and not params[0].name:
                arguments = f"{b.param(text)}::{_type(params[0])}"
            else:
                used = [arg for arg in params if arg.name in keys]
                if used:
                    reader = "json_to_recordset" if is_array else "json_to_record"
                    columns = ", ".join(f"{q(a.name)} {_type(a)}" for a in used)
                    body_from = (
                        f"{reader}({b.param(text)}::json) as pgrst_body({columns}), lateral "
                    )
                arguments = ", ".join(
                    ("variadic " if a.mode is ArgMode.VARIADIC else "")
                    + f"{q(a.name)} := pgrst_body.{q(a.name)}"
                    for a in used
                )
    call = f"{q(fn.name.schema)}.{q(fn.name.name)}({arguments})"
    if scalar:
        return f"select pgrst_call.pgrst_scalar from {body_from}(select {call} as pgrst_scalar) pgrst_call"
    return f"select pgrst_call.* from {body_from}{call} pgrst_call"


def _body(page: str, media: MediaType, *, scalar: bool, single: bool) -> str:
    """The aggregate over `_t` that renders the body (PostgREST `asJsonF`/`asJsonSingleF`)."""
    if media.kind is MediaKind.CSV:
        return body_aggregate(page, media.kind, stripped=False)
    value = "_t.pgrst_scalar" if scalar else "_t"
    stripped = media.kind is MediaKind.ARRAY_STRIPPED or media.nulls_stripped
    if single or media.kind is MediaKind.OBJECT:
        agg = f"json_agg({value}) -> 0"
        empty = "'null'"
    else:
        agg = f"json_agg({value})"
        empty = "'[]'"
    if stripped:
        agg = f"json_strip_nulls({agg})"
    return f"coalesce(({agg})::text, {empty})"


def _arguments(
    api: ApiRequest, fn: Function, json_args: _JsonArgs | None
) -> _JsonArgs | _DirectArgs | _RawArg:
    if json_args is not None:
        return json_args
    if api.action is Action.CALL_READ:
        return _direct_args(api.query.rpc_args, fn)
    kind = api.content_type.kind
    if kind is MediaKind.URLENCODED:
        return _direct_args(decode_query(api.body.decode("latin-1")), fn)
    if kind in RAW_BODY_KINDS:
        if kind is MediaKind.OCTET_STREAM:
            return _RawArg(text="\\x" + api.body.hex())
        try:
            text = api.body.decode("utf-8")
        except UnicodeDecodeError as err:
            raise InvalidBody("The request body is not valid UTF-8") from err
        if "\x00" in text:  # Postgres text cannot hold NUL (and libpq would cut the value there)
            raise InvalidBody("The request body contains a NUL character")
        return _RawArg(text=text)
    raise AssertionError(kind)  # pragma: no cover - `_request_keys` refused the others


def _request_keys(api: ApiRequest) -> tuple[frozenset[str], MediaKind, _JsonArgs | None]:
    """The argument names the request gives, the body's content type, a JSON body read.

    Raises:
        InvalidBody: an unreadable body or a content type a function cannot take (PGRST102).
    """
    if api.action is Action.CALL_READ:
        return frozenset(name for name, _ in api.query.rpc_args), MediaKind.JSON, None
    kind = api.content_type.kind
    match kind:
        case MediaKind.JSON:
            json_args = _json_args(api.body, api.query.columns)
            return json_args.keys, kind, json_args
        case MediaKind.URLENCODED:
            pairs = decode_query(api.body.decode("latin-1"))
            return frozenset(name for name, _ in pairs), kind, None
        case MediaKind.TEXT | MediaKind.XML | MediaKind.OCTET_STREAM:
            return frozenset(), kind, None
        case MediaKind.CSV:
            # As PostgREST: the rows become a JSON array of objects, one call per row.
            rows = json.dumps(csv_rows(api.body), separators=(",", ":"), ensure_ascii=False)
            json_args = _json_args(rows.encode(), api.query.columns)
            return json_args.keys, MediaKind.JSON, json_args
        case _:
            mime = api.content_type.other or kind.value
            raise InvalidBody(f"Content-Type not acceptable: {mime}")


def call_statement(api: ApiRequest, snapshot: SchemaSnapshot, *, max_depth: int) -> Call:
    """The statement calling the function `api` targets, reading its result as `api` asks.

    Raises:
        RestError: no such function or overload (PGRST202/203), a bad body (PGRST102), an
            unknown column or embed, max-affected on a function returning one row (PGRST128).
    """
    assert api.target.name is not None
    post = api.action is Action.CALL
    keys, content, json_args = _request_keys(api)
    single_object = post and _SINGLE_OBJECT in api.preferences.invalid
    fn = find_function(
        snapshot,
        api.target.schema,
        api.target.name,
        keys,
        post=post,
        content=content,
        single_object=single_object,
    )
    prefs = api.preferences
    max_affected = prefs.max_affected if prefs.handling is PreferHandling.STRICT else None
    if max_affected is not None and not fn.returns_set:
        raise MaxAffectedRpcViolation
    args = _arguments(api, fn, json_args)
    if single_object and isinstance(args, _JsonArgs):
        args = _RawArg(text=args.text)
    elif single_object and isinstance(args, _DirectArgs):
        args = _RawArg(text=json.dumps(dict(args.values), separators=(",", ":")))
    relation, open_columns = _result(snapshot, fn)
    scalar = not _returns_composite(fn)
    b = _CallBuilder(snapshot, api, max_depth, relation if open_columns else None)
    call = _call_sql(b, fn, args, scalar=scalar)
    alias = relation.name.name
    b.aliases.add(alias)
    source = f"pgrst_source {q(alias)}"
    columns, from_sql, tail = b.level(
        relation, alias, api.query.select, (), correlation=None, source=source
    )
    b.check_paths()
    page = f"select {columns} from {from_sql}{tail}"
    if api.range.limit is not None:
        page += f" limit {int(api.range.limit)}"
    if api.range.offset:
        page += f" offset {int(api.range.offset)}"
    single = not fn.returns_set
    total = f"(select count(*) from {from_sql})" if prefs.count is not None else "null::bigint"
    rows = "1::bigint" if single else "count(*)"
    if fn.returns_void or api.head:
        body = "null::text"
    else:
        body = _body(page, api.media_type, scalar=scalar, single=single)
    # Read after the call ran (the select list is evaluated once the aggregates are done).
    settings = ", ".join(
        f"nullif(current_setting('{name}', true), '')"
        for name in ("response.headers", "response.status")
    )
    read_only = not post or fn.volatility is not Volatility.VOLATILE
    # Refusals that must undo what the function did fail the statement (see `guard_error`).
    guards = []
    if not read_only and not single and api.media_type.kind is MediaKind.OBJECT:
        guards.append(f"when count(*) <> 1 then ('{_GUARD} PGRST116 ' || count(*))::integer")
    if max_affected is not None:
        guards.append(
            f"when count(*) > {int(max_affected)} then ('{_GUARD} PGRST124 ' || count(*))::integer"
        )
    guard = f"case {' '.join(guards)} end" if guards else "null::integer"
    sql = (
        f"with pgrst_source as ({call}) "
        f"select {total}, {rows}, {body}, {settings}, {guard} from ({page}) _t"
    )
    return Call(
        statement=Statement(sql, tuple(b.params)),
        function=fn,
        read_only=read_only,
        returns_void=fn.returns_void,
        settings=tuple((name, value) for name, value in fn.settings if name in _HOISTED),
    )


def guard_error(sqlstate: str, message: str) -> RestError | None:
    """The refusal a call's statement failed with on purpose, if it did (None: a real error).

    >>> guard_error("22P02", 'invalid input syntax for type integer: "madbase-guard PGRST116 2"')
    SingularityError('Cannot coerce the result to a single JSON object')
    >>> guard_error("22P02", 'invalid input syntax for type integer: "x"') is None
    True
    """
    match = _GUARD_MESSAGE.fullmatch(message) if sqlstate == "22P02" else None
    if match is None:
        return None
    rows = int(match.group(2))
    if match.group(1) == "PGRST116":
        return SingularityError.for_rows(rows)
    return MaxAffectedViolation.for_rows(rows)


# --- response settings ---------------------------------------------------------------------------


def with_response_settings(
    response: Response, headers_json: bytes | None, status_text: bytes | None
) -> Response:
    """`response` with the status and headers a function set (PostgREST `overrideStatusHeaders`).

    `headers_json` is `response.headers`: a JSON array of objects with one key and a string
    value each, e.g. `[{"Set-Cookie": "a=1"}, {"Cache-Control": "no-cache"}]`; a header named
    there replaces PostgREST's of the same name (framing headers such as Content-Length stay the
    server's). `status_text` is `response.status`, 200 to 599 (informational codes are no final
    answer).

    Raises:
        GucHeadersError: `response.headers` is not of that shape (PGRST111).
        GucStatusError: `response.status` is not a status code (PGRST112).

    >>> r = Response(status=200, headers=(("content-range", "0-0/*"),), body=b"1")
    >>> r = with_response_settings(r, b'[{"X-Answer": "42"}]', b"201")
    >>> r.status, r.headers
    (201, (('x-answer', '42'), ('content-range', '0-0/*')))
    """
    status = response.status
    if status_text is not None:
        digits = status_text.decode("latin-1").strip()
        if not digits.isascii() or not digits.isdigit() or not 200 <= int(digits) <= 599:
            raise GucStatusError
        status = int(digits)
    extra: list[tuple[str, str]] = []
    if headers_json is not None:
        try:
            value: JsonValue = json.loads(headers_json)
        except ValueError as err:
            raise GucHeadersError from err
        if not isinstance(value, list):
            raise GucHeadersError
        for item in value:
            if not isinstance(item, dict) or len(item) != 1:
                raise GucHeadersError
            ((name, text),) = item.items()
            if (
                not isinstance(text, str)
                or not _HEADER_NAME.fullmatch(name)
                or not _HEADER_VALUE.fullmatch(text)
            ):
                raise GucHeadersError
            if name.lower() not in _SERVER_HEADERS:
                extra.append((name.lower(), text))
    if not extra and status == response.status:
        return response
    named = {name for name, _ in extra}
    kept = tuple((name, text) for name, text in response.headers if name not in named)
    return Response(
        status=status, headers=(*extra, *kept), body=response.body, error_code=response.error_code
    )
