"""The query string: form-urlencoded decoding, then each parameter to its grammar (spec/rest.md §1).

Keys are sorted by their last dot-separated word, as PostgREST does: `select`, `columns`,
`on_conflict` (first occurrence wins); `order`, `limit`, `offset` (per embed path, last wins);
`and`, `or` (all kept); everything else is a filter, or an argument of a GET/HEAD rpc call when
its value is not an operator expression. A parameter without `=` is ignored, as is `apikey` (the
gateway's credential; Supabase's gateway strips it before PostgREST).

Decoding is stricter than PostgREST's: `+` is a space, `%XX` must be two hex digits, the bytes
must be UTF-8 without NUL; otherwise PGRST100. Only `&` separates parameters (URLSearchParams
encodes `;`).
"""

from __future__ import annotations

import functools
from typing import Final
from urllib.parse import quote

from madbase.protocol.rest.errors import InvalidRange, QueryParamError
from madbase.protocol.rest.filters import (
    parse_filter,
    parse_logic,
    parse_operation,
    render_filter,
    render_logic,
)
from madbase.protocol.rest.limits import RestLimits
from madbase.protocol.rest.ordering import parse_columns, parse_order, render_columns, render_order
from madbase.protocol.rest.scan import Scanner, haskell_show, render_name
from madbase.protocol.rest.selection import parse_select, render_select
from madbase.protocol.rest.syntax import (
    EmbedPath,
    PathFilter,
    PathLogic,
    PathOrder,
    PathRange,
    QueryParams,
    Star,
)

__all__ = ["decode_query", "parse_query", "to_query_string"]

_HEX: Final = frozenset("0123456789abcdefABCDEF")
_INT64_MAX: Final = 2**63 - 1
# Characters left unencoded when rendering: what URLSearchParams would not need to escape to stay
# readable in logs (the parser decodes them either way).
_SAFE: Final = "*()!,:'>{}\"$"


def _decode_component(raw: str, part: str) -> str:
    """Form-decode one key or value; `part` is the whole `key=value` for error messages."""
    if "%" not in raw and "+" not in raw and raw.isascii():
        decoded = raw
    else:
        try:
            data = raw.encode("latin-1")  # the server decoded the request line as latin-1
        except UnicodeEncodeError:
            data = raw.encode("utf-8", "surrogatepass")
        out = bytearray()
        i = 0
        while i < len(data):
            byte = data[i]
            if byte == 0x2B:  # "+"
                out.append(0x20)
            elif byte == 0x25:  # "%"
                pair = data[i + 1 : i + 3].decode("latin-1")
                if len(pair) != 2 or not set(pair) <= _HEX:
                    raise QueryParamError(
                        f"failed to decode query parameter ({part})",
                        details=f"invalid percent-encoding at byte {i} of {haskell_show(raw)}",
                    )
                out.append(int(pair, 16))
                i += 2
            else:
                out.append(byte)
            i += 1
        try:
            decoded = out.decode("utf-8")
        except UnicodeDecodeError as err:
            raise QueryParamError(
                f"failed to decode query parameter ({part})",
                details=f"invalid UTF-8 in {haskell_show(raw)}",
            ) from err
    if "\x00" in decoded:
        raise QueryParamError(
            f"failed to decode query parameter ({part})",
            details="NUL characters are not allowed",
        )
    return decoded


def decode_query(query: str) -> tuple[tuple[str, str], ...]:
    """Split and form-decode a raw query string; parameters without `=` are dropped.

    Raises:
        QueryParamError: bad percent-encoding, invalid UTF-8 or NUL (PGRST100).

    >>> decode_query("select=id%2Cname&a.b=eq.x+y&flag")
    (('select', 'id,name'), ('a.b', 'eq.x y'))
    """
    pairs: list[tuple[str, str]] = []
    for part in query.split("&"):
        if "=" not in part:
            continue
        key, value = part.split("=", 1)
        pairs.append((_decode_component(key, part), _decode_component(value, part)))
    return tuple(pairs)


def _int_param(key: str, value: str) -> int:
    text = value.strip()
    digits = text[1:] if text[:1] in "+-" else text
    if not digits or not digits.isascii() or not digits.isdigit():
        raise QueryParamError(
            f"failed to parse {key} parameter ({value})",
            details=f"unexpected {haskell_show(value)} expecting an integer",
        )
    number = int(text)
    if abs(number) > _INT64_MAX:
        raise QueryParamError(
            f"failed to parse {key} parameter ({value})",
            details=f"{value} is out of range for a 64-bit integer",
        )
    return number


def _embed_path(key: str, last: str) -> EmbedPath:
    """The embed path of `a.b.<last>` keys (`limit`, `offset`, `order`)."""
    if key == last:
        return ()

    def names(sc: Scanner) -> tuple[str, ...]:
        out = [sc.field_name()]
        while sc.take("."):
            out.append(sc.field_name())
        return tuple(out)

    parsed = Scanner(key, f"failed to parse tree path ({key})").run(names)
    return parsed[:-1]


def parse_query(
    query: str, *, limits: RestLimits | None = None, rpc_read: bool = False
) -> QueryParams:
    """Parse a raw query string (still percent-encoded) into `QueryParams`.

    `rpc_read`: a GET/HEAD rpc call, where a parameter whose value is not an operator expression is
    a function argument.

    Raises:
        QueryParamError: a parameter does not decode or parse (PGRST100).
        InvalidRange: a negative limit (PGRST103).

    >>> q = parse_query("select=id,actors(name)&id=gt.1&actors.order=name.desc&limit=10")
    >>> [f.filter.field.name for f in q.filters], q.ranges
    (['id'], (PathRange(path=(), offset=None, limit=10),))
    """
    limits = limits or RestLimits()
    if len(query) <= _CACHED_QUERY_CHARS:
        return _parse_query_cached(query, limits, rpc_read)
    return _parse_query(query, limits, rpc_read)


def _parse_query(query: str, limits: RestLimits, rpc_read: bool) -> QueryParams:
    select = None
    columns = None
    on_conflict = None
    filters: list[PathFilter] = []
    logic: list[PathLogic] = []
    orders: dict[EmbedPath, PathOrder] = {}
    ranges: dict[EmbedPath, PathRange] = {}
    rpc_args: list[tuple[str, str]] = []
    for key, value in decode_query(query):
        if key == "apikey":
            continue
        if key == "select":
            if select is None:
                select = parse_select(value, max_depth=limits.max_embed_depth)
            continue
        if key == "columns":
            if columns is None:
                columns = parse_columns(value, "columns")
            continue
        if key == "on_conflict":
            if on_conflict is None:
                on_conflict = parse_columns(value, "on_conflict")
            continue
        last = key.rsplit(".", 1)[-1]
        if last == "order":
            path = _embed_path(key, "order")
            orders.pop(path, None)
            orders[path] = PathOrder(path=path, terms=parse_order(value))
        elif last in ("limit", "offset"):
            path = _embed_path(key, last)
            number = _int_param(last, value)
            previous = ranges.pop(path, PathRange(path=path))
            if last == "limit":
                if number < 0:
                    raise InvalidRange.negative_limit()
                ranges[path] = PathRange(path=path, offset=previous.offset, limit=number)
            else:
                if number < 0:
                    raise QueryParamError(
                        f"failed to parse offset parameter ({value})",
                        details="Offset should be greater than or equal to zero.",
                    )
                ranges[path] = PathRange(path=path, offset=number, limit=previous.limit)
        elif last in ("and", "or"):
            logic.append(parse_logic(key, value, max_depth=limits.max_logic_depth))
        elif rpc_read:
            try:
                parse_operation(value)
            except QueryParamError:
                rpc_args.append((key, value))
            else:
                filters.append(parse_filter(key, value))
        else:
            filters.append(parse_filter(key, value))
    return QueryParams(
        select=(Star(),) if select is None else select,
        filters=tuple(filters),
        logic=tuple(logic),
        order=tuple(orders.values()),
        ranges=tuple(ranges.values()),
        columns=columns,
        on_conflict=on_conflict,
        rpc_args=tuple(rpc_args),
    )


# Apps send the same few query strings again and again: parsing one costs tens of microseconds,
# a lookup well under one. Only successful parses are kept (errors raise), at most
# _CACHED_QUERIES of them, of at most _CACHED_QUERY_CHARS each (~2 MiB in all).
_CACHED_QUERIES: Final = 1024
_CACHED_QUERY_CHARS: Final = 2048
_parse_query_cached = functools.lru_cache(maxsize=_CACHED_QUERIES)(_parse_query)


def _path_key(path: EmbedPath, last: str) -> str:
    return ".".join([*(render_name(name) for name in path), last])


def to_query_string(params: QueryParams) -> str:
    """The query string `parse_query` reads back as `params` (percent-encoded, `&`-joined).

    >>> to_query_string(parse_query("select=id,name&or=(a.eq.1,b.gt.2)&order=id.desc"))
    'select=id,name&or=(a.eq.1,b.gt.2)&order=id.desc'
    """
    pairs: list[tuple[str, str]] = []
    if params.select != (Star(),):
        pairs.append(("select", render_select(params.select)))
    pairs.extend(render_filter(item) for item in params.filters)
    pairs.extend(render_logic(item) for item in params.logic)
    pairs.extend((_path_key(o.path, "order"), render_order(o.terms)) for o in params.order)
    for item in params.ranges:
        if item.limit is not None:
            pairs.append((_path_key(item.path, "limit"), str(item.limit)))
        if item.offset is not None:
            pairs.append((_path_key(item.path, "offset"), str(item.offset)))
    if params.columns is not None:
        pairs.append(("columns", render_columns(params.columns)))
    if params.on_conflict is not None:
        pairs.append(("on_conflict", render_columns(params.on_conflict)))
    pairs.extend(params.rpc_args)
    return "&".join(f"{quote(key, safe=_SAFE)}={quote(value, safe=_SAFE)}" for key, value in pairs)
