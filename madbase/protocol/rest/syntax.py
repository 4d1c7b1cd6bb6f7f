"""The typed query of a `/rest/v1` request: what the grammar parsers produce and the planner reads.

Every value is frozen and holds tuples, so two parses of the same text compare equal. The shapes
follow PostgREST's `ApiRequest/Types.hs`; names are ours. Strings are the decoded text the client
sent (identifiers unquoted and unescaped), never SQL.

Select: `Star | SelectField | SelectEmbed`. Filters: `Filter(field, operation, negated)` with
`operation` one of `Compare | InList | IsCheck | TextSearch`. Logic: `LogicTree(operator,
children, negated)` whose children are `Filter | LogicTree`. Parameters that apply inside an
embedded resource carry its path: `PathFilter`, `PathLogic`, `PathOrder`, `PathRange`.
"""

from __future__ import annotations

import enum
from typing import Final, TypeAlias, final

import attrs

__all__ = [
    "Aggregate",
    "Arrow",
    "Compare",
    "Direction",
    "EmbedPath",
    "Field",
    "Filter",
    "InList",
    "IsCheck",
    "IsValue",
    "JoinType",
    "JsonStep",
    "LogicNode",
    "LogicOperator",
    "LogicTree",
    "NullsOrder",
    "Operation",
    "Operator",
    "OrderTerm",
    "PathFilter",
    "PathLogic",
    "PathOrder",
    "PathRange",
    "Quantifier",
    "QueryParams",
    "SelectEmbed",
    "SelectField",
    "SelectItem",
    "Star",
    "TextSearch",
]

EmbedPath: TypeAlias = tuple[str, ...]
"""Names (or aliases) of embedded resources from the root, `()` for the root itself."""


class Arrow(enum.StrEnum):
    """A JSON path step: `->` keeps json, `->>` yields text (spec/rest.md §2)."""

    JSON = "->"
    TEXT = "->>"


@final
@attrs.frozen(kw_only=True)
class JsonStep:
    """One `->key`, `->>key` or `->0` / `->-1` step; an `int` operand is an array index."""

    arrow: Arrow
    operand: str | int


@final
@attrs.frozen(kw_only=True)
class Field:
    """A column, possibly followed by a JSON path: `data->a->>b`."""

    name: str
    json_path: tuple[JsonStep, ...] = ()


# --- select ----------------------------------------------------------------------------------


class Aggregate(enum.StrEnum):
    """Aggregate functions allowed in `select` (spec/rest.md §2)."""

    COUNT = "count"
    SUM = "sum"
    AVG = "avg"
    MAX = "max"
    MIN = "min"


class JoinType(enum.StrEnum):
    """`!inner` / `!left` on an embed."""

    INNER = "inner"
    LEFT = "left"


@final
@attrs.frozen
class Star:
    """`*`: every column."""


@final
@attrs.frozen(kw_only=True)
class SelectField:
    """`alias:field::cast.aggregate()::aggregate_cast`.

    `field` is None only for `count()` over all rows (then `aggregate` is COUNT and `cast` None).
    A bare `count` is a column named `count` here; the planner may treat it as legacy `count()`.
    Casts are type names made of letters, digits, `_`, `$` and spaces (`double precision`);
    PostgREST accepts nothing else (`numeric(10,2)` and `int[]` are parse errors).
    """

    field: Field | None
    alias: str | None = None
    cast: str | None = None
    aggregate: Aggregate | None = None
    aggregate_cast: str | None = None


@final
@attrs.frozen(kw_only=True)
class SelectEmbed:
    """An embedded resource `alias:name!hint!join(children)`, or a spread `...name!hint(children)`.

    `children == ()` is an empty embed (`actors()`): joined and filterable, absent from the output.
    A spread never has an alias.
    """

    name: str
    children: tuple[SelectItem, ...]
    alias: str | None = None
    hint: str | None = None
    join: JoinType | None = None
    spread: bool = False


SelectItem: TypeAlias = Star | SelectField | SelectEmbed


# --- filters ---------------------------------------------------------------------------------


class Operator(enum.StrEnum):
    """Filter operators (spec/rest.md §4)."""

    EQ = "eq"
    NEQ = "neq"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"
    LIKE = "like"
    ILIKE = "ilike"
    MATCH = "match"
    IMATCH = "imatch"
    IS = "is"
    ISDISTINCT = "isdistinct"
    IN = "in"
    CS = "cs"
    CD = "cd"
    OV = "ov"
    SL = "sl"
    SR = "sr"
    NXR = "nxr"
    NXL = "nxl"
    ADJ = "adj"
    FTS = "fts"
    PLFTS = "plfts"
    PHFTS = "phfts"
    WFTS = "wfts"


QUANTIFIABLE: Final = frozenset(
    {
        Operator.EQ,
        Operator.GT,
        Operator.GTE,
        Operator.LT,
        Operator.LTE,
        Operator.LIKE,
        Operator.ILIKE,
        Operator.MATCH,
        Operator.IMATCH,
    }
)
"""Operators that take `(any)` / `(all)`."""

SCALAR: Final = QUANTIFIABLE | {
    Operator.NEQ,
    Operator.ISDISTINCT,
    Operator.CS,
    Operator.CD,
    Operator.OV,
    Operator.SL,
    Operator.SR,
    Operator.NXR,
    Operator.NXL,
    Operator.ADJ,
}
"""Operators whose operand is one value (`Compare`)."""

FULL_TEXT: Final = frozenset({Operator.FTS, Operator.PLFTS, Operator.PHFTS, Operator.WFTS})
"""Operators of `TextSearch`."""


class Quantifier(enum.StrEnum):
    """`eq(any).{a,b}` / `like(all).{...}`."""

    ANY = "any"
    ALL = "all"


class IsValue(enum.StrEnum):
    """Operands of `is` (case-insensitive on the wire)."""

    NULL = "null"
    NOT_NULL = "not_null"
    TRUE = "true"
    FALSE = "false"
    UNKNOWN = "unknown"


@final
@attrs.frozen(kw_only=True)
class Compare:
    """`op.value` for an operator in `SCALAR`; `quantifier` only for one in `QUANTIFIABLE`.

    With a quantifier, `value` is the array literal as sent (`{a,b}`).
    """

    operator: Operator
    value: str
    quantifier: Quantifier | None = None


@final
@attrs.frozen(kw_only=True)
class InList:
    """`in.(a,b,"c,d")`: the items unquoted. `in.()` is the empty list `()`."""

    values: tuple[str, ...]


@final
@attrs.frozen(kw_only=True)
class IsCheck:
    """`is.null`, `is.not_null`, `is.true`, `is.false`, `is.unknown`."""

    value: IsValue


@final
@attrs.frozen(kw_only=True)
class TextSearch:
    """`fts(config).query` and the plain/phrase/websearch variants (operator in `FULL_TEXT`)."""

    operator: Operator
    query: str
    language: str | None = None


Operation: TypeAlias = Compare | InList | IsCheck | TextSearch


@final
@attrs.frozen(kw_only=True)
class Filter:
    """`field=[not.]operation`, or `field.[not.]operation` inside a logic tree."""

    field: Field
    operation: Operation
    negated: bool = False


class LogicOperator(enum.StrEnum):
    """The operator of a logic tree."""

    AND = "and"
    OR = "or"


@final
@attrs.frozen(kw_only=True)
class LogicTree:
    """`[not.]and(…)` / `[not.]or(…)` with at least one child."""

    operator: LogicOperator
    children: tuple[LogicNode, ...]
    negated: bool = False


LogicNode: TypeAlias = Filter | LogicTree


# --- order -----------------------------------------------------------------------------------


class Direction(enum.StrEnum):
    """`.asc` / `.desc`."""

    ASC = "asc"
    DESC = "desc"


class NullsOrder(enum.StrEnum):
    """`.nullsfirst` / `.nullslast`."""

    FIRST = "nullsfirst"
    LAST = "nullslast"


@final
@attrs.frozen(kw_only=True)
class OrderTerm:
    """`field.dir.nulls`, or `relation(field).dir.nulls` ordering by a to-one embed's column.

    None keeps what the client left out (Postgres's defaults: ASC, NULLS LAST for ASC).
    """

    field: Field
    relation: str | None = None
    direction: Direction | None = None
    nulls: NullsOrder | None = None


# --- parameters of one request ---------------------------------------------------------------


@final
@attrs.frozen(kw_only=True)
class PathFilter:
    """A horizontal filter; `path` names the embedded resource it applies to (`()`: the root)."""

    path: EmbedPath
    filter: Filter


@final
@attrs.frozen(kw_only=True)
class PathLogic:
    """An `or=`/`and=`/`not.or=`/`not.and=` tree, `path` as in `PathFilter`."""

    path: EmbedPath
    tree: LogicTree


@final
@attrs.frozen(kw_only=True)
class PathOrder:
    """The `order=` terms of one resource (one per path; a repeated key: the last wins)."""

    path: EmbedPath
    terms: tuple[OrderTerm, ...]


@final
@attrs.frozen(kw_only=True)
class PathRange:
    """`limit=` / `offset=` of one resource (one per path; a repeated key: the last wins)."""

    path: EmbedPath
    offset: int | None = None
    limit: int | None = None


@final
@attrs.frozen(kw_only=True)
class QueryParams:
    """Everything the query string says, in the order the client sent it.

    `select` defaults to `(Star(),)`; `select=` (empty) is `()`. `columns`/`on_conflict` are None
    when absent. `rpc_args` are the non-filter parameters of a GET/HEAD rpc call, in order (a
    repeated name is a variadic argument).
    """

    select: tuple[SelectItem, ...] = (Star(),)
    filters: tuple[PathFilter, ...] = ()
    logic: tuple[PathLogic, ...] = ()
    order: tuple[PathOrder, ...] = ()
    ranges: tuple[PathRange, ...] = ()
    columns: tuple[str, ...] | None = None
    on_conflict: tuple[str, ...] | None = None
    rpc_args: tuple[tuple[str, str], ...] = ()
