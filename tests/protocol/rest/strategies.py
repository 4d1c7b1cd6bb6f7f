"""Hypothesis strategies for the `/rest/v1` grammar: ASTs the parsers can produce, and raw text.

Generated values stay inside what the grammar can express (casts and languages are identifier
text, a spread has no alias, an embed path never contains `not` ...), so `parse(render(x)) == x`
must hold for every one of them.
"""

from __future__ import annotations

from hypothesis import strategies as st

from madbase.protocol.rest import (
    Aggregate,
    Arrow,
    Compare,
    Field,
    Filter,
    InList,
    IsCheck,
    IsValue,
    JoinType,
    JsonStep,
    LogicOperator,
    LogicTree,
    MediaKind,
    MediaType,
    Operation,
    OrderTerm,
    PathFilter,
    PathLogic,
    PathOrder,
    PathRange,
    PlanFormat,
    PlanOption,
    PreferCount,
    Preferences,
    PreferHandling,
    PreferMissing,
    PreferResolution,
    PreferReturn,
    PreferTransaction,
    Quantifier,
    QueryParams,
    SelectEmbed,
    SelectField,
    Star,
    TextSearch,
    parse_operation,
)
from madbase.protocol.rest.syntax import FULL_TEXT, QUANTIFIABLE, SCALAR

# Characters the grammar treats specially, plus blanks, quotes, escapes and non-ASCII.
SPECIAL = list("()[]{},.:;!*\"\\'->_ $\t%+&=#é€🎉")
# No NUL: the query string refuses it before any grammar sees it (tested on its own).
_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")  # type: ignore[arg-type]
grammar_text = st.text(alphabet=st.one_of(st.sampled_from(SPECIAL), _chars), max_size=40)
ascii_word = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)

names = st.one_of(ascii_word, st.text(_chars, max_size=10), grammar_text)
# Identifier-only text: casts and full-text languages cannot be quoted.
type_names = st.from_regex(r"[a-z_$][a-z0-9_$]{0,6}( [a-z0-9_$]{1,6})?", fullmatch=True)
values = st.one_of(
    st.text(_chars, max_size=12), grammar_text, st.sampled_from(["", "{a,b}", '"q"', "x)"])
)

json_steps = st.builds(
    JsonStep,
    arrow=st.sampled_from(Arrow),
    operand=st.one_of(st.integers(min_value=-99, max_value=99), names),
)
fields = st.builds(Field, name=names, json_path=st.lists(json_steps, max_size=3).map(tuple))


@st.composite
def select_fields(draw: st.DrawFn) -> SelectField:
    if draw(st.integers(0, 9)) == 0:
        return SelectField(
            field=None,
            alias=draw(st.none() | names),
            aggregate=Aggregate.COUNT,
            aggregate_cast=draw(st.none() | type_names),
        )
    cast = draw(st.none() | type_names)
    aggregate = draw(st.none() | st.sampled_from(Aggregate))
    # `x::t` is always the column cast: an aggregate cast needs a cast or an aggregate before it.
    aggregate_cast = None if cast is None and aggregate is None else draw(st.none() | type_names)
    return SelectField(
        field=draw(fields),
        alias=draw(st.none() | names),
        cast=cast,
        aggregate=aggregate,
        aggregate_cast=aggregate_cast,
    )


@st.composite
def embeds(draw: st.DrawFn, children: st.SearchStrategy[tuple[object, ...]]) -> SelectEmbed:
    spread = draw(st.booleans())
    return SelectEmbed(
        name=draw(names),
        children=draw(children),  # type: ignore[arg-type]
        alias=None if spread else draw(st.none() | names),
        hint=draw(st.none() | names),
        join=draw(st.none() | st.sampled_from(JoinType)),
        spread=spread,
    )


select_items = st.recursive(
    st.one_of(st.just(Star()), select_fields()),
    lambda inner: embeds(st.lists(inner, max_size=3).map(tuple)),
    max_leaves=10,
)
selects = st.lists(select_items, max_size=4).map(tuple)


@st.composite
def operations(draw: st.DrawFn) -> tuple[bool, Operation]:
    kind = draw(st.integers(0, 3))
    negated = draw(st.booleans())
    if kind == 0:
        op = draw(st.sampled_from(sorted(SCALAR)))
        quantifier = draw(st.none() | st.sampled_from(Quantifier)) if op in QUANTIFIABLE else None
        return negated, Compare(operator=op, value=draw(values), quantifier=quantifier)
    if kind == 1:
        return negated, InList(values=tuple(draw(st.lists(values, max_size=4))))
    if kind == 2:
        return negated, IsCheck(value=draw(st.sampled_from(IsValue)))
    return negated, TextSearch(
        operator=draw(st.sampled_from(sorted(FULL_TEXT))),
        query=draw(values),
        language=draw(st.none() | type_names),
    )


@st.composite
def filters(draw: st.DrawFn) -> Filter:
    negated, operation = draw(operations())
    return Filter(field=draw(fields), operation=operation, negated=negated)


@st.composite
def _trees(draw: st.DrawFn, children: st.SearchStrategy[list[object]]) -> LogicTree:
    return LogicTree(
        operator=draw(st.sampled_from(LogicOperator)),
        children=tuple(draw(children)),  # type: ignore[arg-type]
        negated=draw(st.booleans()),
    )


logic_trees = st.recursive(
    _trees(st.lists(filters(), min_size=1, max_size=3)),
    lambda inner: _trees(st.lists(st.one_of(filters(), inner), min_size=1, max_size=3)),
    max_leaves=8,
)

# Embed paths: names that never read as `not` (dropped from logic keys by PostgREST).
path_names = names.filter(lambda n: n != "not")
embed_paths = st.lists(path_names, max_size=2).map(tuple)


def _not_an_operation(value: str) -> bool:
    try:
        parse_operation(value)
    except Exception:  # noqa: BLE001 - only "does it parse" matters here
        return True
    return False


@st.composite
def query_params(draw: st.DrawFn, *, rpc_read: bool = False) -> QueryParams:
    from madbase.protocol.rest.syntax import Direction, NullsOrder

    terms = st.builds(
        OrderTerm,
        field=fields,
        relation=st.none() | names,
        direction=st.none() | st.sampled_from(Direction),
        nulls=st.none() | st.sampled_from(NullsOrder),
    )
    order_paths = draw(st.lists(embed_paths, max_size=2, unique=True))
    range_paths = draw(st.lists(embed_paths, max_size=2, unique=True))
    ranges = []
    for path in range_paths:
        offset = draw(st.none() | st.integers(0, 10**6))
        limit = draw(st.none() | st.integers(0, 10**6))
        if offset is not None or limit is not None:
            ranges.append(PathRange(path=path, offset=offset, limit=limit))
    args: tuple[tuple[str, str], ...] = ()
    if rpc_read:
        arg_names = ascii_word.filter(
            lambda n: (
                n
                not in {
                    "select",
                    "columns",
                    "on_conflict",
                    "apikey",
                    "order",
                    "limit",
                    "offset",
                    "and",
                    "or",
                }
            )
        )
        args = tuple(
            draw(
                st.lists(
                    st.tuples(arg_names, st.text(_chars, max_size=8).filter(_not_an_operation)),
                    max_size=3,
                )
            )
        )
    return QueryParams(
        select=draw(selects),
        filters=tuple(
            draw(st.lists(st.builds(PathFilter, path=embed_paths, filter=filters()), max_size=3))
        ),
        logic=tuple(
            draw(st.lists(st.builds(PathLogic, path=embed_paths, tree=logic_trees), max_size=2))
        ),
        order=tuple(
            PathOrder(path=path, terms=tuple(draw(st.lists(terms, min_size=1, max_size=3))))
            for path in order_paths
        ),
        ranges=tuple(ranges),
        columns=draw(st.none() | st.lists(names, min_size=1, max_size=3).map(tuple)),
        on_conflict=draw(st.none() | st.lists(names, min_size=1, max_size=3).map(tuple)),
        rpc_args=args,
    )


# --- headers -------------------------------------------------------------------------------------

_KNOWN_PREF_PREFIXES = ("return=", "count=", "resolution=", "missing=", "handling=", "tx=")
_PREF_VALUES = {
    v.value
    for kind in (
        PreferReturn,
        PreferCount,
        PreferResolution,
        PreferMissing,
        PreferHandling,
        PreferTransaction,
    )
    for v in kind
}

invalid_prefs = st.text(
    alphabet=st.characters(blacklist_characters=",", blacklist_categories=("Cs",)),  # type: ignore[arg-type]
    max_size=15,
).filter(
    lambda p: (
        p != ""
        and p == p.strip()
        and not p.startswith(("timezone=", "max-affected="))
        and not any(p == f"{prefix}{v}" for prefix in _KNOWN_PREF_PREFIXES for v in _PREF_VALUES)
    )
)
preferences = st.builds(
    Preferences,
    return_=st.none() | st.sampled_from(PreferReturn),
    count=st.none() | st.sampled_from(PreferCount),
    resolution=st.none() | st.sampled_from(PreferResolution),
    missing=st.none() | st.sampled_from(PreferMissing),
    handling=st.none() | st.sampled_from(PreferHandling),
    transaction=st.none() | st.sampled_from(PreferTransaction),
    timezone=st.none()
    | st.text(alphabet="abcdefghijklmnopqrstuvwxyzABC/_+-:0123456789", max_size=20).filter(
        lambda t: t == t.strip()
    ),
    max_affected=st.none() | st.integers(-(2**63), 2**63 - 1),
    invalid=st.lists(invalid_prefs, max_size=3).map(tuple),
)

simple_media = st.sampled_from(
    [
        MediaType(kind=k)
        for k in MediaKind
        if k not in (MediaKind.OTHER, MediaKind.PLAN, MediaKind.OBJECT)
    ]
    + [MediaType(kind=MediaKind.OBJECT, nulls_stripped=b) for b in (False, True)]
    + [MediaType(kind=MediaKind.OTHER, other=o) for o in ("image/png", "application/vnd.twkb")]
)
media_types = st.one_of(
    simple_media,
    st.builds(
        lambda target, fmt, opts: MediaType(
            kind=MediaKind.PLAN,
            plan_for=target,
            plan_format=fmt,
            plan_options=tuple(o for o in PlanOption if o in opts),
        ),
        simple_media,
        st.sampled_from(PlanFormat),
        st.frozensets(st.sampled_from(PlanOption)),
    ),
)

# Header text: latin-1, as the HTTP server hands header values over.
header_text = st.text(alphabet=st.characters(max_codepoint=0xFF), max_size=60)
prefer_text = st.one_of(
    header_text,
    st.lists(
        st.sampled_from(
            [
                "return=minimal",
                "count=exact",
                "handling=strict",
                "max-affected=5",
                "tx=rollback",
                "timezone=UTC",
                "resolution=merge-duplicates",
                "missing=default",
                "bogus",
                "",
            ]
        ),
        max_size=5,
    ).map(", ".join),
)
