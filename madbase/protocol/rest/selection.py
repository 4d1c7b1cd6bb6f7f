"""The `select` parameter: columns, aliases, casts, JSON paths, aggregates and embedded resources.

Grammar (PostgREST `pFieldForest`; spec/rest.md §2), blanks allowed around items and commas::

    forest   = [item {"," item}]
    item     = "*"
             | "..." name params "(" forest ")"                       spread
             | [alias ":"] name params "(" forest ")"                 embed
             | [alias ":"] "count()" ["::" type]
             | [alias ":"] field ["::" type] ["." agg "()"] ["::" type]
    params   = up to two of "!inner", "!left", "!" hint               (at most one of each kind)
    agg      = "count" | "sum" | "avg" | "max" | "min"

Decisions where PostgREST is looser: trailing text after the forest is an error (PostgREST
ignores it); a bare relation named `count` cannot be embedded (PostgREST's guard, so that
`count()` stays the aggregate); `!inner_fk` is the hint `inner_fk` (PostgREST reads `!inner` and
fails on the rest); a repeated hint or join type is an error (PostgREST keeps the first); a blank
cast is an error; an array index followed by `)` is an index (PostgREST reads the key `"0"`).
"""

from __future__ import annotations

from typing import Final

from madbase.protocol.rest.scan import Scanner, quote, render_field, render_name
from madbase.protocol.rest.syntax import (
    Aggregate,
    JoinType,
    SelectEmbed,
    SelectField,
    SelectItem,
    Star,
)

__all__ = ["parse_select", "render_select"]

_AGGREGATES: Final = tuple((f".{agg.value}()", agg) for agg in Aggregate)
_ITEM_END: Final = '",", ")" or end of input'


def _embed_params(sc: Scanner) -> tuple[str | None, JoinType | None]:
    hint: str | None = None
    join: JoinType | None = None
    while sc.peek() == "!":
        sc.pos += 1
        start = sc.pos
        quoted = sc.peek() == '"'
        name = sc.field_name()
        if not quoted and name in ("inner", "left"):
            if join is not None:
                sc.fail('"(" (one join type per embed)', pos=start)
            join = JoinType(name)
        else:
            if hint is not None:
                sc.fail('"(" (one hint per embed)', pos=start)
            hint = name
    return hint, join


def _children(sc: Scanner, depth: int, max_depth: int) -> tuple[SelectItem, ...]:
    sc.expect("(")
    if depth >= max_depth:
        sc.too_deep("embedded resources", max_depth)
    children = _forest(sc, depth + 1, max_depth)
    sc.expect(")")
    sc.skip_ws()
    return children


def _item_end(sc: Scanner) -> None:
    sc.skip_ws()
    if not (sc.at_end() or sc.peek() in ",)"):
        sc.fail(_ITEM_END)


def _cast(sc: Scanner) -> str | None:
    return sc.cast() if sc.take("::") else None


def _alias(sc: Scanner) -> str | None:
    start = sc.pos
    name = sc.try_field_name()
    if name is None:
        return None
    sc.skip_ws()
    if sc.peek() == ":" and not sc.looking_at("::"):
        sc.pos += 1
        sc.skip_ws()
        return name
    sc.pos = start
    return None


def _item(sc: Scanner, depth: int, max_depth: int) -> SelectItem:
    sc.skip_ws()
    if sc.take("..."):
        name = sc.field_name()
        hint, join = _embed_params(sc)
        children = _children(sc, depth, max_depth)
        return SelectEmbed(name=name, children=children, hint=hint, join=join, spread=True)
    if sc.take("*"):
        _item_end(sc)
        return Star()
    alias = _alias(sc)
    if sc.take("count()"):
        aggregate_cast = _cast(sc)
        _item_end(sc)
        return SelectField(
            field=None, alias=alias, aggregate=Aggregate.COUNT, aggregate_cast=aggregate_cast
        )
    bare_count = sc.looking_at("count") and not sc.looking_at('"')
    name_start = sc.pos
    field = sc.field()
    if not field.json_path and sc.peek() in ("!", "("):
        if bare_count and field.name == "count":
            sc.fail(_ITEM_END, pos=name_start + 5)
        hint, join = _embed_params(sc)
        children = _children(sc, depth, max_depth)
        return SelectEmbed(name=field.name, children=children, alias=alias, hint=hint, join=join)
    cast = _cast(sc)
    aggregate = None
    if sc.peek() == ".":
        for token, candidate in _AGGREGATES:
            if sc.take(token):
                aggregate = candidate
                break
        else:
            sc.fail('aggregate function ("sum()", "avg()", "count()", "max()", "min()")')
    aggregate_cast = _cast(sc)
    _item_end(sc)
    return SelectField(
        field=field, alias=alias, cast=cast, aggregate=aggregate, aggregate_cast=aggregate_cast
    )


def _forest(sc: Scanner, depth: int, max_depth: int) -> tuple[SelectItem, ...]:
    if sc.at_end() or sc.peek() == ")":
        return ()
    items = [_item(sc, depth, max_depth)]
    while sc.take(","):
        items.append(_item(sc, depth, max_depth))
    return tuple(items)


def parse_select(text: str, *, max_depth: int = 32) -> tuple[SelectItem, ...]:
    """Parse a `select` value; embeds may nest `max_depth` levels.

    Raises:
        QueryParamError: the text does not parse or nests too deep (PGRST100).

    >>> parse_select("id,name:full_name,total:amount::numeric.sum()")[1]
    SelectField(field=Field(name='full_name', json_path=()), alias='name', cast=None, aggregate=None, aggregate_cast=None)
    >>> parse_select("*,director:directors!inner(id)")[1]
    SelectEmbed(name='directors', children=(SelectField(field=Field(name='id', json_path=()), alias=None, cast=None, aggregate=None, aggregate_cast=None),), alias='director', hint=None, join=<JoinType.INNER: 'inner'>, spread=False)
    >>> parse_select("id,,name")
    Traceback (most recent call last):
    madbase.protocol.rest.errors.QueryParamError: "failed to parse select parameter (id,,name)" (line 1, column 4)
    """
    sc = Scanner(text, f"failed to parse select parameter ({text})")
    return sc.run(lambda s: _forest(s, 0, max_depth))


def _render_item(item: SelectItem) -> str:
    match item:
        case Star():
            return "*"
        case SelectField(
            field=field, alias=alias, cast=cast, aggregate=aggregate, aggregate_cast=agg_cast
        ):
            out = "" if alias is None else render_name(alias) + ":"
            out += "count()" if field is None else render_field(field)
            if cast is not None:
                out += "::" + cast
            if aggregate is not None and field is not None:
                out += f".{aggregate.value}()"
            if agg_cast is not None:
                out += "::" + agg_cast
            return out
        case SelectEmbed():
            prefix = "..." if item.spread else ""
            if item.alias is not None:
                prefix += render_name(item.alias) + ":"
            name = render_name(item.name)
            if name == "count":
                name = quote("count")
            hint = ""
            if item.hint is not None:
                hint_text = render_name(item.hint)
                hint = "!" + (quote(item.hint) if hint_text in ("inner", "left") else hint_text)
            join = "" if item.join is None else "!" + item.join.value
            return f"{prefix}{name}{hint}{join}({render_select(item.children)})"


def render_select(items: tuple[SelectItem, ...]) -> str:
    """The `select` value for `items` (`parse_select` reads it back).

    >>> render_select(parse_select(" id , directors!fk ( * ), count() "))
    'id,directors!fk(*),count()'
    """
    return ",".join(_render_item(item) for item in items)
