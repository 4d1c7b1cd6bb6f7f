"""The `order` parameter, and the comma lists of names in `columns` and `on_conflict`.

Grammar (PostgREST `pOrder`, `pColumns`; spec/rest.md §1, §5)::

    order    = term {"," term}
    term     = (field | name "(" field ")") [".asc" | ".desc"] [".nullsfirst" | ".nullslast"]
    columns  = name {"," name}

`name(field)` orders the parent by a column of a to-one embed (checked by the planner: PGRST118).
"""

from __future__ import annotations

from madbase.protocol.rest.scan import Scanner, quote, render_field, render_name
from madbase.protocol.rest.syntax import Direction, NullsOrder, OrderTerm

__all__ = ["parse_columns", "parse_order", "render_columns", "render_order"]

_DIRECTION_OR_NULLS = '"asc", "desc", "nullsfirst" or "nullslast"'


def _term(sc: Scanner) -> OrderTerm:
    field = sc.field()
    relation = None
    if not field.json_path and sc.take("("):
        relation = field.name
        field = sc.field()
        sc.expect(")")
    direction = None
    nulls = None
    if sc.take(".asc"):
        direction = Direction.ASC
    elif sc.take(".desc"):
        direction = Direction.DESC
    if sc.take(".nullsfirst"):
        nulls = NullsOrder.FIRST
    elif sc.take(".nullslast"):
        nulls = NullsOrder.LAST
    if sc.peek() == ".":
        expected = '"nullsfirst" or "nullslast"' if direction else _DIRECTION_OR_NULLS
        sc.fail(expected if nulls is None else '"," or end of input', pos=sc.pos + 1)
    sc.skip_ws()
    if not (sc.at_end() or sc.peek() == ","):
        sc.fail('"," or end of input')
    return OrderTerm(field=field, relation=relation, direction=direction, nulls=nulls)


def _terms(sc: Scanner) -> tuple[OrderTerm, ...]:
    terms = [_term(sc)]
    while sc.take(","):
        terms.append(_term(sc))
    return tuple(terms)


def parse_order(text: str) -> tuple[OrderTerm, ...]:
    """Parse an `order` value.

    Raises:
        QueryParamError: the text does not parse (PGRST100).

    >>> parse_order("name.desc.nullsfirst,clients(id)")[1]
    OrderTerm(field=Field(name='id', json_path=()), relation='clients', direction=None, nulls=None)
    >>> parse_order("id.ac")
    Traceback (most recent call last):
    madbase.protocol.rest.errors.QueryParamError: "failed to parse order (id.ac)" (line 1, column 4)
    """
    return Scanner(text, f"failed to parse order ({text})").run(_terms)


def _render_term(term: OrderTerm) -> str:
    out = render_field(term.field)
    if term.relation is not None:
        out = f"{render_name(term.relation)}({out})"
    if term.direction is not None:
        out += "." + term.direction.value
    if term.nulls is not None:
        out += "." + term.nulls.value
    return out


def render_order(terms: tuple[OrderTerm, ...]) -> str:
    """The `order` value for `terms`.

    >>> render_order(parse_order(" a->b.desc , c "))
    'a->b.desc,c'
    """
    return ",".join(_render_term(term) for term in terms)


def _columns(sc: Scanner) -> tuple[str, ...]:
    sc.skip_ws()
    names = [sc.field_name()]
    sc.skip_ws()
    while sc.take(","):
        sc.skip_ws()
        names.append(sc.field_name())
        sc.skip_ws()
    return tuple(names)


def parse_columns(text: str, what: str = "columns") -> tuple[str, ...]:
    """Parse `columns` / `on_conflict`: comma-separated, possibly quoted names.

    Raises:
        QueryParamError: the text does not parse (PGRST100).

    >>> parse_columns('"id","full name",age')
    ('id', 'full name', 'age')
    """
    return Scanner(text, f"failed to parse {what} parameter ({text})").run(_columns)


def render_columns(names: tuple[str, ...]) -> str:
    """Names quoted as both clients send them: `"a","b"`."""
    return ",".join(quote(name) for name in names)
