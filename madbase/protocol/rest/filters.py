"""Horizontal filters and logic trees: `col=not.op(mod).value`, `or=(…)`, `a.not.and=(…)`.

Grammar (PostgREST `pOpExpr`, `pLogicTree`; spec/rest.md §4)::

    filter     = ["not."] operation
    operation  = "in." list | "is." isval | "isdistinct." value
               | fts ["(" identifier ")"] "." value          fts: fts plfts phfts wfts
               | quant ["(" ("any"|"all") ")"] "." value     quant: eq gt gte lt lte like ilike match imatch
               | simple "." value                            simple: neq cs cd ov sl sr nxr nxl adj
    list       = "(" item {"," item} ")"          item: quoted followed by , or ), else text up to , or )
    tree       = ["not."] ("and"|"or") "(" node {"," node} ")"
    node       = tree | field "." filter

A top-level value is the rest of the parameter. Inside a tree a value is a quoted string followed
by `,` or `)`, a `{…}` array literal without nested braces, or text up to `,` or `)`.

Where PostgREST ignores trailing text (`is.nullx`, `in.(1)x`) we refuse it (PGRST100).
"""

from __future__ import annotations

import re
from typing import Final

from madbase.protocol.rest.scan import Scanner, quote, render_field, render_name
from madbase.protocol.rest.syntax import (
    FULL_TEXT,
    QUANTIFIABLE,
    Compare,
    EmbedPath,
    Field,
    Filter,
    InList,
    IsCheck,
    IsValue,
    LogicNode,
    LogicOperator,
    LogicTree,
    Operation,
    Operator,
    PathFilter,
    PathLogic,
    Quantifier,
    TextSearch,
)

__all__ = [
    "parse_filter",
    "parse_logic",
    "parse_operation",
    "render_filter",
    "render_logic",
    "render_operation",
]

_OPERATORS: Final = {op.value: op for op in Operator}
_IS_VALUES: Final = {value.value: value for value in IsValue}
_OPERATOR: Final = "operator (eq, gt, ...)"
_DELIMITER: Final = "delimiter (.)"
_TREE_START: Final = re.compile(r"(?:not\.)?(?:and|or)[ \t]*\(")
_PG_ARRAY: Final = re.compile(r"\{[^{}]*\}")
_LOWER: Final = frozenset("abcdefghijklmnopqrstuvwxyz")
_IS_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")

# Keys whose last dot-separated word makes them something other than a filter (QueryParams.hs).
RESERVED_KEYS: Final = frozenset({"select", "columns", "on_conflict", "apikey"})
RESERVED_LAST_WORDS: Final = frozenset({"order", "limit", "offset", "and", "or"})


# --- parsing ---------------------------------------------------------------------------------


def _top_value(sc: Scanner) -> str:
    value = sc.text[sc.pos :]
    sc.pos = len(sc.text)
    return value


def _logic_value(sc: Scanner) -> str:
    if sc.peek() == '"':
        quoted = sc.try_quoted(",)")
        if quoted is not None:
            return quoted
    elif sc.peek() == "{":
        array = _PG_ARRAY.match(sc.text, sc.pos)
        if array is not None:
            sc.pos = array.end()
            return array.group()
    return _raw_item(sc)


def _raw_item(sc: Scanner) -> str:
    text, start = sc.text, sc.pos
    end = start
    while end < len(text) and text[end] not in ",)":
        end += 1
    sc.pos = end
    return text[start:end]


def _list(sc: Scanner) -> InList:
    sc.skip_ws()
    sc.expect("(")
    sc.skip_ws()
    items: list[str] = []
    any_quoted = False
    while True:
        item = sc.try_quoted(",)") if sc.peek() == '"' else None
        if item is None:
            item = _raw_item(sc)
        else:
            any_quoted = True
        items.append(item)
        if not sc.take(","):
            break
    sc.skip_ws()
    sc.expect(")")
    sc.skip_ws()
    if items == [""] and not any_quoted:
        return InList(values=())  # `in.()`: the empty list (PostgREST's `= ANY('{}')`)
    return InList(values=tuple(items))


def _delimiter(sc: Scanner) -> None:
    if not sc.take("."):
        sc.fail(_DELIMITER)


def _operation(sc: Scanner, *, in_tree: bool) -> tuple[bool, Operation]:
    value = _logic_value if in_tree else _top_value
    negated = sc.take("not.")
    start = sc.pos
    text = sc.text
    end = start
    while end < len(text) and text[end] in _LOWER:
        end += 1
    op = _OPERATORS.get(text[start:end])
    if op is None:
        sc.fail(_OPERATOR, pos=start)
    sc.pos = end
    if op is Operator.IN:
        _delimiter(sc)
        return negated, _list(sc)
    if op is Operator.IS:
        _delimiter(sc)
        word_start = sc.pos
        while sc.pos < len(text) and text[sc.pos] in _IS_CHARS:
            sc.pos += 1
        is_value = _IS_VALUES.get(text[word_start : sc.pos].lower())
        if is_value is None:
            sc.fail("isVal: (null, not_null, true, false, unknown)", pos=word_start)
        return negated, IsCheck(value=is_value)
    if op in FULL_TEXT:
        language = None
        if sc.take("("):
            language = sc.cast()
            sc.expect(")")
        _delimiter(sc)
        return negated, TextSearch(operator=op, query=value(sc), language=language)
    quantifier = None
    if op in QUANTIFIABLE and sc.take("("):
        if sc.take("any"):
            quantifier = Quantifier.ANY
        elif sc.take("all"):
            quantifier = Quantifier.ALL
        else:
            sc.fail('"any" or "all"')
        sc.expect(")")
    _delimiter(sc)
    return negated, Compare(operator=op, value=value(sc), quantifier=quantifier)


def parse_operation(value: str) -> tuple[bool, Operation]:
    """Parse a filter's value: whether it is negated, and the operation.

    Raises:
        QueryParamError: the value is not `[not.]op.value` (PGRST100).

    >>> parse_operation("not.in.(1,2,\\"a,b\\")")
    (True, InList(values=('1', '2', 'a,b')))
    >>> parse_operation("like(any).{O*,P*}")
    (False, Compare(operator=<Operator.LIKE: 'like'>, value='{O*,P*}', quantifier=<Quantifier.ANY: 'any'>))
    >>> parse_operation("fts(english).cat & dog")
    (False, TextSearch(operator=<Operator.FTS: 'fts'>, query='cat & dog', language='english'))
    >>> parse_operation("noop.0")
    Traceback (most recent call last):
    madbase.protocol.rest.errors.QueryParamError: "failed to parse filter (noop.0)" (line 1, column 1)
    """
    sc = Scanner(value, f"failed to parse filter ({value})")
    return sc.run(lambda s: _operation(s, in_tree=False))


def _tree_path(sc: Scanner) -> tuple[EmbedPath, Field]:
    names = [sc.field_name()]
    while sc.take("."):
        names.append(sc.field_name())
    return tuple(names[:-1]), Field(name=names[-1], json_path=sc.json_path())


def parse_tree_path(key: str) -> tuple[EmbedPath, Field]:
    """Parse a filter's key `a.b.col->x`: the embed path and the field.

    Raises:
        QueryParamError: the key is not a dotted list of names (PGRST100).
    """
    return Scanner(key, f"failed to parse tree path ({key})").run(_tree_path)


def parse_filter(key: str, value: str) -> PathFilter:
    """Parse one filter parameter.

    Raises:
        QueryParamError: the key or the value does not parse (PGRST100).

    >>> parse_filter("actors.age", "gte.18")
    PathFilter(path=('actors',), filter=Filter(field=Field(name='age', json_path=()), operation=Compare(operator=<Operator.GTE: 'gte'>, value='18', quantifier=None), negated=False))
    """
    path, field = parse_tree_path(key)
    negated, operation = parse_operation(value)
    return PathFilter(path=path, filter=Filter(field=field, operation=operation, negated=negated))


def _node(sc: Scanner, depth: int, max_depth: int) -> LogicNode:
    if _TREE_START.match(sc.text, sc.pos):
        return _tree(sc, depth + 1, max_depth)
    field = sc.field()
    _delimiter(sc)
    negated, operation = _operation(sc, in_tree=True)
    return Filter(field=field, operation=operation, negated=negated)


def _tree(sc: Scanner, depth: int, max_depth: int) -> LogicTree:
    if depth > max_depth:
        sc.too_deep("logic tree", max_depth)
    negated = sc.take("not.")
    if sc.take("and"):
        operator = LogicOperator.AND
    elif sc.take("or"):
        operator = LogicOperator.OR
    else:
        sc.fail("logic operator (and, or)")
    sc.skip_ws()
    sc.expect("(")
    sc.skip_ws()
    children = [_node(sc, depth, max_depth)]
    while True:
        sc.skip_ws()
        if not sc.take(","):
            break
        sc.skip_ws()
        children.append(_node(sc, depth, max_depth))
    sc.expect(")")
    sc.skip_ws()
    return LogicTree(operator=operator, children=tuple(children), negated=negated)


def parse_logic(key: str, value: str, *, max_depth: int = 32) -> PathLogic:
    """Parse an `and`/`or` parameter; `key` may carry an embed path and `not.`.

    Raises:
        QueryParamError: the key or the tree does not parse, or the tree nests deeper than
            `max_depth` levels (PGRST100).

    >>> parse_logic("not.or", "(a.eq.1,b.is.null)").tree.negated
    True
    >>> parse_logic("or", "(a.eq.1,and(b.gt.2,c.lt.3))").tree.children[1].operator
    <LogicOperator.AND: 'and'>
    """

    def path(sc: Scanner) -> list[str]:
        names = [sc.field_name()]
        while sc.take("."):
            names.append(sc.field_name())
        return names

    names = Scanner(key, f"failed to parse logic path ({key})").run(path)
    operator = names[-1]
    negated = "not" in names
    embed = tuple(name for name in names[:-1] if name != "not")
    source = ("not." if negated else "") + operator + value
    sc = Scanner(source, f"failed to parse logic tree ({value})")
    tree = sc.run(lambda s: _tree(s, 1, max_depth))
    return PathLogic(path=embed, tree=tree)


# --- rendering -------------------------------------------------------------------------------


def _render_logic_value(value: str) -> str:
    if value[:1] not in ('"', "{") and "," not in value and ")" not in value:
        return value
    if _PG_ARRAY.fullmatch(value):
        return value
    return quote(value)


def _render_list(values: tuple[str, ...]) -> str:
    if values == ("",):
        return '("")'
    items = []
    for value in values:
        needs_quote = value[:1] in ('"', " ", "\t") or "," in value or ")" in value
        items.append(quote(value) if needs_quote else value)
    return "(" + ",".join(items) + ")"


def render_operation(negated: bool, operation: Operation, *, in_tree: bool = False) -> str:
    """`[not.]op.value` as `parse_operation` (or a logic tree, with `in_tree`) reads it back.

    >>> render_operation(True, InList(values=("a,b", "c")))
    'not.in.("a,b",c)'
    """

    def value(text: str) -> str:
        return _render_logic_value(text) if in_tree else text

    prefix = "not." if negated else ""
    match operation:
        case InList(values=values):
            return f"{prefix}in.{_render_list(values)}"
        case IsCheck(value=is_value):
            return f"{prefix}is.{is_value.value}"
        case TextSearch(operator=op, query=query, language=language):
            lang = "" if language is None else f"({language})"
            return f"{prefix}{op.value}{lang}.{value(query)}"
        case Compare(operator=op, value=text, quantifier=quantifier):
            quant = "" if quantifier is None else f"({quantifier.value})"
            return f"{prefix}{op.value}{quant}.{value(text)}"


def render_filter(item: PathFilter) -> tuple[str, str]:
    """The `(key, value)` query parameter for `item`.

    A column whose bare name would make the key reserved (`order`, `or`, `select` ...) is quoted.

    >>> render_filter(parse_filter("t.order", "eq.1"))
    ('t."order"', 'eq.1')
    """
    field = item.filter.field
    rendered = render_field(field)
    reserved = field.name in RESERVED_LAST_WORDS or (not item.path and field.name in RESERVED_KEYS)
    if reserved and not field.json_path and rendered == field.name:
        rendered = quote(field.name)
    key = ".".join([*(render_name(name) for name in item.path), rendered])
    return key, render_operation(item.filter.negated, item.filter.operation)


def _render_node(node: LogicNode) -> str:
    match node:
        case Filter(field=field, operation=operation, negated=negated):
            return render_field(field) + "." + render_operation(negated, operation, in_tree=True)
        case LogicTree():
            return _render_tree(node)


def _render_tree(tree: LogicTree) -> str:
    prefix = "not." if tree.negated else ""
    inner = ",".join(_render_node(child) for child in tree.children)
    return f"{prefix}{tree.operator.value}({inner})"


def render_logic(item: PathLogic) -> tuple[str, str]:
    """The `(key, value)` query parameter for `item`.

    >>> render_logic(parse_logic("actors.not.or", "(a.eq.1,b.in.(1,2))"))
    ('actors.not.or', '(a.eq.1,b.in.(1,2))')
    """
    tree = item.tree
    key = ".".join(
        [
            *(render_name(name) for name in item.path),
            ("not." if tree.negated else "") + tree.operator.value,
        ]
    )
    inner = ",".join(_render_node(child) for child in tree.children)
    return key, f"({inner})"
