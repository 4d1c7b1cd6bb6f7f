"""The query-parameter grammars: select, filters, logic trees, order, columns.

Wire cases sit in tables used both ways (parse the text, render the value); every error case pins
status, code and message. Properties: round trip over generated ASTs, totality over any text.
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from madbase.protocol.rest import (
    Aggregate,
    Arrow,
    Compare,
    Direction,
    Field,
    Filter,
    InList,
    IsCheck,
    IsValue,
    JoinType,
    JsonStep,
    LogicOperator,
    LogicTree,
    NullsOrder,
    Operation,
    Operator,
    OrderTerm,
    PathFilter,
    PathLogic,
    Quantifier,
    QueryParamError,
    RestError,
    SelectEmbed,
    SelectField,
    Star,
    TextSearch,
    parse_columns,
    parse_filter,
    parse_logic,
    parse_operation,
    parse_order,
    parse_select,
    render_columns,
    render_filter,
    render_logic,
    render_operation,
    render_order,
    render_select,
)
from madbase.protocol.rest.scan import haskell_show, render_key, render_name
from tests.protocol.rest.strategies import (
    embed_paths,
    filters,
    grammar_text,
    logic_trees,
    operations,
    selects,
)


def col(name: str, *path: tuple[Arrow, str | int]) -> Field:
    return Field(name=name, json_path=tuple(JsonStep(arrow=a, operand=o) for a, o in path))


def sf(name: str, **kw: object) -> SelectField:
    return SelectField(field=col(name), **kw)  # type: ignore[arg-type]


# --- select ----------------------------------------------------------------------------------

SELECT_CASES = [
    ("*", (Star(),)),
    ("", ()),
    ("id,name", (sf("id"), sf("name"))),
    ("fullName:full_name", (sf("full_name", alias="fullName"),)),
    ("salary::text", (sf("salary", cast="text"),)),
    ("x::double precision", (sf("x", cast="double precision"),)),
    (
        "data->a->>b",
        (SelectField(field=col("data", (Arrow.JSON, "a"), (Arrow.TEXT, "b"))),),
    ),
    ("tags->0", (SelectField(field=col("tags", (Arrow.JSON, 0))),)),
    ("loc->>-1", (SelectField(field=col("loc", (Arrow.TEXT, -1))),)),
    ('data->"0"', (SelectField(field=col("data", (Arrow.JSON, "0"))),)),
    ("data->a-b", (SelectField(field=col("data", (Arrow.JSON, "a-b"))),)),
    ('"my col"', (sf("my col"),)),
    ('"a.b"', (sf("a.b"),)),
    ('"with \\"quote\\""', (sf('with "quote"'),)),
    ("my-col", (sf("my-col"),)),
    ("count()", (SelectField(field=None, aggregate=Aggregate.COUNT),)),
    (
        "n:count()::int",
        (SelectField(field=None, alias="n", aggregate=Aggregate.COUNT, aggregate_cast="int"),),
    ),
    ("count", (sf("count"),)),
    ("amount.sum()", (sf("amount", aggregate=Aggregate.SUM),)),
    ("amount.avg()", (sf("amount", aggregate=Aggregate.AVG),)),
    ("x.min(),x.max()", (sf("x", aggregate=Aggregate.MIN), sf("x", aggregate=Aggregate.MAX))),
    ("x.count()", (sf("x", aggregate=Aggregate.COUNT),)),
    (
        "t:col::int.sum()::text",
        (sf("col", alias="t", cast="int", aggregate=Aggregate.SUM, aggregate_cast="text"),),
    ),
    ("directors(id)", (SelectEmbed(name="directors", children=(sf("id"),)),)),
    (
        "director:directors(*)",
        (SelectEmbed(name="directors", alias="director", children=(Star(),)),),
    ),
    ("t!inner(*)", (SelectEmbed(name="t", join=JoinType.INNER, children=(Star(),)),)),
    ("t!left(*)", (SelectEmbed(name="t", join=JoinType.LEFT, children=(Star(),)),)),
    ("t!fk(*)", (SelectEmbed(name="t", hint="fk", children=(Star(),)),)),
    (
        "t!fk!inner(*)",
        (SelectEmbed(name="t", hint="fk", join=JoinType.INNER, children=(Star(),)),),
    ),
    ('t!"inner"(*)', (SelectEmbed(name="t", hint="inner", children=(Star(),)),)),
    ("t!inner_fk(*)", (SelectEmbed(name="t", hint="inner_fk", children=(Star(),)),)),
    (
        "...directors(first_name)",
        (SelectEmbed(name="directors", spread=True, children=(sf("first_name"),)),),
    ),
    ("actors()", (SelectEmbed(name="actors", children=()),)),
    ('"count"(*)', (SelectEmbed(name="count", children=(Star(),)),)),
    ("a(b(c))", (SelectEmbed(name="a", children=(SelectEmbed(name="b", children=(sf("c"),)),)),)),
    (
        "rel(data->0)",
        (SelectEmbed(name="rel", children=(SelectField(field=col("data", (Arrow.JSON, 0))),)),),
    ),
]


@pytest.mark.parametrize(("text", "items"), SELECT_CASES)
def test_parse_select_reads_each_form(text: str, items: tuple[object, ...]) -> None:
    assert parse_select(text) == items


@pytest.mark.parametrize(("text", "items"), SELECT_CASES)
def test_render_select_is_read_back(text: str, items: tuple[object, ...]) -> None:
    assert parse_select(render_select(items)) == items  # type: ignore[arg-type]


def test_parse_select_allows_blanks_around_items() -> None:
    assert parse_select(" id , name : full_name , rel ( * ) ") == (
        sf("id"),
        sf("full_name", alias="name"),
        SelectEmbed(name="rel", children=(Star(),)),
    )


SELECT_ERRORS = [
    ("id,,name", 4, 'unexpected "," expecting field name (* or [a..z0..9_$])'),
    ("a:*", 3, 'unexpected "*" expecting field name (* or [a..z0..9_$])'),
    ("count(a)", 6, 'unexpected "(" expecting ",", ")" or end of input'),
    ("x::", 4, "unexpected end of input expecting letter or digit"),
    ("x:: ", 4, 'unexpected " " expecting type name'),
    ("rel->a(*)", 7, 'unexpected "(" expecting ",", ")" or end of input'),
    (
        "a.foo()",
        2,
        'unexpected "." expecting aggregate function ("sum()", "avg()", "count()", "max()", "min()")',
    ),
    ("...a", 5, 'unexpected end of input expecting "("'),
    ("alias:...rel(*)", 7, 'unexpected "." expecting field name (* or [a..z0..9_$])'),
    ("a!b!c(*)", 5, 'unexpected "c" expecting "(" (one hint per embed)'),
    ("a!inner!left(*)", 9, 'unexpected "l" expecting "(" (one join type per embed)'),
    ("id)", 3, 'unexpected ")" expecting end of input'),
    ("x::numeric(10,2)", 11, 'unexpected "(" expecting ",", ")" or end of input'),
    ("data->>-78xy", 11, 'unexpected "x" expecting digit, "->", "::", ".", "," or end of input'),
    ("data->>--34", 9, 'unexpected "-" expecting digit'),
    ("*x", 2, 'unexpected "x" expecting ",", ")" or end of input'),
    ('"open', 6, 'unexpected end of input expecting "\\"" (end of quoted text)'),
    ('"esc\\', 6, "unexpected end of input expecting escaped character"),
    ("a,", 3, "unexpected end of input expecting field name (* or [a..z0..9_$])"),
    ("a-", 3, "unexpected end of input expecting field name (* or [a..z0..9_$])"),
    (
        "data->",
        7,
        "unexpected end of input expecting any non reserved character different from: .,>()",
    ),
    ("rel(a", 6, 'unexpected end of input expecting ")"'),
    ("a\tb,,", 9, 'unexpected "b" expecting ",", ")" or end of input'),
]


@pytest.mark.parametrize(("text", "column", "details"), SELECT_ERRORS)
def test_parse_select_error_names_text_and_position(text: str, column: int, details: str) -> None:
    with pytest.raises(QueryParamError) as info:
        parse_select(text)
    err = info.value
    assert (err.status, err.code) == (400, "PGRST100")
    assert err.message == (
        f"{haskell_show(f'failed to parse select parameter ({text})')} (line 1, column {column})"
    )
    assert err.details == details


def test_parse_select_counts_lines_like_parsec() -> None:
    with pytest.raises(QueryParamError) as info:
        parse_select('"a\nb",,')
    assert info.value.message.endswith("(line 2, column 4)")


def test_parse_select_refuses_embeds_deeper_than_the_limit() -> None:
    text = "a(" * 5 + "b" + ")" * 5
    assert parse_select(text, max_depth=5)
    with pytest.raises(QueryParamError) as info:
        parse_select(text, max_depth=4)
    assert info.value.details == "embedded resources nested deeper than 4 levels"


def test_parse_select_thousands_deep_is_a_clean_error() -> None:
    with pytest.raises(QueryParamError):
        parse_select("a(" * 5000 + ")" * 5000)


@given(selects)
def test_select_round_trips(items: tuple[object, ...]) -> None:
    assert parse_select(render_select(items)) == items  # type: ignore[arg-type]


@given(st.one_of(grammar_text, st.text(max_size=200)))
@example("a(" * 100)
@example('"\\')
def test_parse_select_accepts_or_raises_rest_error(text: str) -> None:
    with contextlib.suppress(RestError):
        parse_select(text)


# --- names and keys --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "rendered"),
    [
        ("id", "id"),
        ("my col", "my col"),
        (" lead", '" lead"'),
        ("a-b", "a-b"),
        ("a--b", '"a--b"'),
        ("", '""'),
        ('a"b', '"a\\"b"'),
        ("a.b", '"a.b"'),
        ("ünï", "ünï"),
    ],
)
def test_render_name_quotes_only_when_needed(name: str, rendered: str) -> None:
    assert render_name(name) == rendered


@pytest.mark.parametrize(
    ("key", "rendered"),
    [
        (0, "0"),
        (-3, "-3"),
        ("a", "a"),
        ("0", '"0"'),
        ("-1", '"-1"'),
        ("a b", "a b"),
        ("a.b", '"a.b"'),
        ("", '""'),
        ("!@#$%^&*_a", "!@#$%^&*_a"),
    ],
)
def test_render_key_quotes_keys_that_would_read_differently(key: str | int, rendered: str) -> None:
    assert render_key(key) == rendered


def test_haskell_show_escapes_like_haskell() -> None:
    assert haskell_show('a"\\\n\x01é1') == '"a\\"\\\\\\n\\1\\233\\&1"'


# --- filters ---------------------------------------------------------------------------------

FILTER_CASES = [
    ("eq.1", False, Compare(operator=Operator.EQ, value="1")),
    ("neq.a b", False, Compare(operator=Operator.NEQ, value="a b")),
    ("gt.1", False, Compare(operator=Operator.GT, value="1")),
    ("gte.1", False, Compare(operator=Operator.GTE, value="1")),
    ("lt.1", False, Compare(operator=Operator.LT, value="1")),
    ("lte.1", False, Compare(operator=Operator.LTE, value="1")),
    ("like.*a*", False, Compare(operator=Operator.LIKE, value="*a*")),
    ("ilike.A%", False, Compare(operator=Operator.ILIKE, value="A%")),
    ("match.^a.*$", False, Compare(operator=Operator.MATCH, value="^a.*$")),
    ("imatch.x", False, Compare(operator=Operator.IMATCH, value="x")),
    ("isdistinct.x", False, Compare(operator=Operator.ISDISTINCT, value="x")),
    ("cs.{a,b}", False, Compare(operator=Operator.CS, value="{a,b}")),
    ('cs.{"k":"v"}', False, Compare(operator=Operator.CS, value='{"k":"v"}')),
    ("cd.[1,5)", False, Compare(operator=Operator.CD, value="[1,5)")),
    ("ov.{a,b}", False, Compare(operator=Operator.OV, value="{a,b}")),
    ("sl.[1,2)", False, Compare(operator=Operator.SL, value="[1,2)")),
    ("sr.[1,2)", False, Compare(operator=Operator.SR, value="[1,2)")),
    ("nxr.[1,2)", False, Compare(operator=Operator.NXR, value="[1,2)")),
    ("nxl.[1,2)", False, Compare(operator=Operator.NXL, value="[1,2)")),
    ("adj.[1,2)", False, Compare(operator=Operator.ADJ, value="[1,2)")),
    ("eq.", False, Compare(operator=Operator.EQ, value="")),
    ("eq.a.b,c)", False, Compare(operator=Operator.EQ, value="a.b,c)")),
    (
        "eq(any).{a,b}",
        False,
        Compare(operator=Operator.EQ, value="{a,b}", quantifier=Quantifier.ANY),
    ),
    (
        "like(all).{O*,P*}",
        False,
        Compare(operator=Operator.LIKE, value="{O*,P*}", quantifier=Quantifier.ALL),
    ),
    ("not.eq(all).v", True, Compare(operator=Operator.EQ, value="v", quantifier=Quantifier.ALL)),
    ("in.(1,2,3)", False, InList(values=("1", "2", "3"))),
    ('in.(1,2,"a,b")', False, InList(values=("1", "2", "a,b"))),
    ('in.("a\\"b","c\\\\d")', False, InList(values=('a"b', "c\\d"))),
    ("in.()", False, InList(values=())),
    ('in.("")', False, InList(values=("",))),
    ("in.(,a)", False, InList(values=("", "a"))),
    ("in.( a , b )", False, InList(values=("a ", " b "))),
    ('in.("a" ,b)', False, InList(values=('"a" ', "b"))),
    ("not.in.(1,2)", True, InList(values=("1", "2"))),
    ("is.null", False, IsCheck(value=IsValue.NULL)),
    ("is.NULL", False, IsCheck(value=IsValue.NULL)),
    ("is.not_null", False, IsCheck(value=IsValue.NOT_NULL)),
    ("is.true", False, IsCheck(value=IsValue.TRUE)),
    ("is.False", False, IsCheck(value=IsValue.FALSE)),
    ("is.unknown", False, IsCheck(value=IsValue.UNKNOWN)),
    ("not.is.null", True, IsCheck(value=IsValue.NULL)),
    ("fts.cat", False, TextSearch(operator=Operator.FTS, query="cat")),
    (
        "fts(english).cat & dog",
        False,
        TextSearch(operator=Operator.FTS, query="cat & dog", language="english"),
    ),
    ("plfts.a b", False, TextSearch(operator=Operator.PLFTS, query="a b")),
    (
        "phfts(simple).a b",
        False,
        TextSearch(operator=Operator.PHFTS, query="a b", language="simple"),
    ),
    ("not.wfts.a or b", True, TextSearch(operator=Operator.WFTS, query="a or b")),
]


@pytest.mark.parametrize(("text", "negated", "operation"), FILTER_CASES)
def test_parse_operation_reads_every_operator(text: str, negated: bool, operation: object) -> None:
    assert parse_operation(text) == (negated, operation)


@pytest.mark.parametrize(("text", "negated", "operation"), FILTER_CASES)
def test_render_operation_is_read_back(text: str, negated: bool, operation: object) -> None:
    rendered = render_operation(negated, operation)  # type: ignore[arg-type]
    assert parse_operation(rendered) == (negated, operation)


FILTER_ERRORS = [
    ("noop.0", 1, 'unexpected "n" expecting operator (eq, gt, ...)'),
    ("val", 1, 'unexpected "v" expecting operator (eq, gt, ...)'),
    ("", 1, "unexpected end of input expecting operator (eq, gt, ...)"),
    ("eq", 3, "unexpected end of input expecting delimiter (.)"),
    ("EQ.1", 1, 'unexpected "E" expecting operator (eq, gt, ...)'),
    ("not.not.eq.1", 5, 'unexpected "n" expecting operator (eq, gt, ...)'),
    ("eq().value", 4, 'unexpected ")" expecting "any" or "all"'),
    ("neq(any).1", 4, 'unexpected "(" expecting delimiter (.)'),
    ("is().value", 3, 'unexpected "(" expecting delimiter (.)'),
    ("in().value", 3, 'unexpected "(" expecting delimiter (.)'),
    ("fts().value", 5, 'unexpected ")" expecting letter or digit'),
    ("in.1,2", 4, 'unexpected "1" expecting "("'),
    ("in.(1,2", 8, 'unexpected end of input expecting ")"'),
    ("in.(1)x", 7, 'unexpected "x" expecting end of input'),
    ("is.nil", 4, 'unexpected "n" expecting isVal: (null, not_null, true, false, unknown)'),
    ("is.nullx", 4, 'unexpected "n" expecting isVal: (null, not_null, true, false, unknown)'),
    ("eq(any.x", 7, 'unexpected "." expecting ")"'),
]


@pytest.mark.parametrize(("text", "column", "details"), FILTER_ERRORS)
def test_parse_operation_error_names_text_and_position(
    text: str, column: int, details: str
) -> None:
    with pytest.raises(QueryParamError) as info:
        parse_operation(text)
    assert info.value.message == f'"failed to parse filter ({text})" (line 1, column {column})'
    assert info.value.details == details


@pytest.mark.parametrize(
    ("key", "path", "field"),
    [
        ("id", (), col("id")),
        ("actors.first_name", ("actors",), col("first_name")),
        ("a.b.c", ("a", "b"), col("c")),
        ("data->a->>0", (), col("data", (Arrow.JSON, "a"), (Arrow.TEXT, 0))),
        ('"my.col"', (), col("my.col")),
        ("rel.data->x", ("rel",), col("data", (Arrow.JSON, "x"))),
    ],
)
def test_parse_filter_reads_embed_path_and_field(
    key: str, path: tuple[str, ...], field: Field
) -> None:
    item = parse_filter(key, "eq.1")
    assert item == PathFilter(
        path=path, filter=Filter(field=field, operation=Compare(operator=Operator.EQ, value="1"))
    )
    assert parse_filter(*render_filter(item)) == item


@pytest.mark.parametrize("key", ["x:y", "a..b", "", "a.", "data->"])
def test_parse_filter_refuses_bad_keys(key: str) -> None:
    with pytest.raises(QueryParamError) as info:
        parse_filter(key, "eq.1")
    assert info.value.message.startswith(haskell_show(f"failed to parse tree path ({key})"))


@pytest.mark.parametrize(
    "name", ["order", "limit", "offset", "and", "or", "select", "columns", "on_conflict", "apikey"]
)
def test_render_filter_quotes_reserved_column_names(name: str) -> None:
    item = PathFilter(
        path=(), filter=Filter(field=col(name), operation=IsCheck(value=IsValue.NULL))
    )
    key, value = render_filter(item)
    assert key == f'"{name}"'
    assert value == "is.null"


@given(embed_paths, filters())
def test_filter_round_trips(path: tuple[str, ...], item: Filter) -> None:
    parsed = parse_filter(*render_filter(PathFilter(path=path, filter=item)))
    assert parsed == PathFilter(path=path, filter=item)


@given(operations())
def test_operation_round_trips_at_top_level_and_in_trees(pair: tuple[bool, Operation]) -> None:
    negated, operation = pair
    assert parse_operation(render_operation(negated, operation)) == pair
    tree = LogicTree(
        operator=LogicOperator.OR,
        children=(Filter(field=col("c"), operation=operation, negated=negated),),
    )
    assert parse_logic(*render_logic(PathLogic(path=(), tree=tree))).tree == tree


@given(st.one_of(grammar_text, st.text(max_size=200)))
@example("in.(")
@example('in.("')
@example("fts(")
def test_parse_operation_accepts_or_raises_rest_error(text: str) -> None:
    with contextlib.suppress(RestError):
        parse_operation(text)


@given(st.one_of(grammar_text, st.text(max_size=60)), st.one_of(grammar_text, st.text(max_size=60)))
def test_parse_filter_accepts_or_raises_rest_error(key: str, value: str) -> None:
    with contextlib.suppress(RestError):
        parse_filter(key, value)


# --- logic trees -----------------------------------------------------------------------------


def eq(name: str, value: str) -> Filter:
    return Filter(field=col(name), operation=Compare(operator=Operator.EQ, value=value))


LOGIC_CASES = [
    (
        "or",
        "(a.eq.1,b.eq.2)",
        PathLogic(
            path=(),
            tree=LogicTree(operator=LogicOperator.OR, children=(eq("a", "1"), eq("b", "2"))),
        ),
    ),
    (
        "and",
        "(a.eq.1)",
        PathLogic(path=(), tree=LogicTree(operator=LogicOperator.AND, children=(eq("a", "1"),))),
    ),
    (
        "not.or",
        "(a.eq.1)",
        PathLogic(
            path=(),
            tree=LogicTree(operator=LogicOperator.OR, children=(eq("a", "1"),), negated=True),
        ),
    ),
    (
        "actors.or",
        "(a.eq.1)",
        PathLogic(
            path=("actors",), tree=LogicTree(operator=LogicOperator.OR, children=(eq("a", "1"),))
        ),
    ),
    (
        "a.b.not.and",
        "(a.eq.1)",
        PathLogic(
            path=("a", "b"),
            tree=LogicTree(operator=LogicOperator.AND, children=(eq("a", "1"),), negated=True),
        ),
    ),
    (
        "or",
        "(age.eq.14,not.and(age.gte.11,age.lte.17))",
        PathLogic(
            path=(),
            tree=LogicTree(
                operator=LogicOperator.OR,
                children=(
                    eq("age", "14"),
                    LogicTree(
                        operator=LogicOperator.AND,
                        negated=True,
                        children=(
                            Filter(
                                field=col("age"),
                                operation=Compare(operator=Operator.GTE, value="11"),
                            ),
                            Filter(
                                field=col("age"),
                                operation=Compare(operator=Operator.LTE, value="17"),
                            ),
                        ),
                    ),
                ),
            ),
        ),
    ),
    (
        "or",
        '(a.eq."x,y",b.eq.{1,2},c.in.(1,"2,3"),d.is.null)',
        PathLogic(
            path=(),
            tree=LogicTree(
                operator=LogicOperator.OR,
                children=(
                    eq("a", "x,y"),
                    eq("b", "{1,2}"),
                    Filter(field=col("c"), operation=InList(values=("1", "2,3"))),
                    Filter(field=col("d"), operation=IsCheck(value=IsValue.NULL)),
                ),
            ),
        ),
    ),
    (
        "or",
        "(a.not.is.null,b.fts(english).x)",
        PathLogic(
            path=(),
            tree=LogicTree(
                operator=LogicOperator.OR,
                children=(
                    Filter(field=col("a"), operation=IsCheck(value=IsValue.NULL), negated=True),
                    Filter(
                        field=col("b"),
                        operation=TextSearch(operator=Operator.FTS, query="x", language="english"),
                    ),
                ),
            ),
        ),
    ),
    (
        "or",
        "( a.eq.1 , or ( b.eq.2 ) )",
        PathLogic(
            path=(),
            tree=LogicTree(
                operator=LogicOperator.OR,
                children=(
                    eq("a", "1 "),
                    LogicTree(operator=LogicOperator.OR, children=(eq("b", "2 "),)),
                ),
            ),
        ),
    ),
    (
        "or",
        "(not.eq.1,or.eq.2)",
        PathLogic(
            path=(),
            tree=LogicTree(operator=LogicOperator.OR, children=(eq("not", "1"), eq("or", "2"))),
        ),
    ),
    (
        "or",
        '(a.eq."x"y)',
        PathLogic(path=(), tree=LogicTree(operator=LogicOperator.OR, children=(eq("a", '"x"y'),))),
    ),
    (
        "or",
        "(data->a.eq.1)",
        PathLogic(
            path=(),
            tree=LogicTree(
                operator=LogicOperator.OR,
                children=(
                    Filter(
                        field=col("data", (Arrow.JSON, "a")),
                        operation=Compare(operator=Operator.EQ, value="1"),
                    ),
                ),
            ),
        ),
    ),
]


@pytest.mark.parametrize(("key", "value", "item"), LOGIC_CASES)
def test_parse_logic_reads_each_form(key: str, value: str, item: PathLogic) -> None:
    assert parse_logic(key, value) == item
    assert parse_logic(*render_logic(item)) == item


LOGIC_ERRORS = [
    ("or", "()", 4, 'unexpected ")" expecting field name (* or [a..z0..9_$])'),
    ("or", "(id.in.1,2,id.eq.3)", 10, 'unexpected "1" expecting "("'),
    ("or", ")(", 3, 'unexpected ")" expecting "("'),
    ("and", "(ord(id.eq.1,id.eq.1),id.eq.2)", 8, 'unexpected "(" expecting delimiter (.)'),
    ("or", "(id.eq.1,not.xor(id.eq.2))", 16, 'unexpected "x" expecting operator (eq, gt, ...)'),
    ("or", "(a.eq.1", 10, 'unexpected end of input expecting ")"'),
    ("or", "(a.eq.1)x", 11, 'unexpected "x" expecting end of input'),
    ("or", "(a.eq.{1}x)", 12, 'unexpected "x" expecting ")"'),
]


@pytest.mark.parametrize(("key", "value", "column", "details"), LOGIC_ERRORS)
def test_parse_logic_error_names_text_and_position(
    key: str, value: str, column: int, details: str
) -> None:
    with pytest.raises(QueryParamError) as info:
        parse_logic(key, value)
    assert (
        info.value.message
        == f"{haskell_show(f'failed to parse logic tree ({value})')} (line 1, column {column})"
    )
    assert info.value.details == details


def test_parse_logic_refuses_bad_keys() -> None:
    with pytest.raises(QueryParamError) as info:
        parse_logic("a..or", "(a.eq.1)")
    assert info.value.message.startswith('"failed to parse logic path (a..or)"')


def test_parse_logic_depth_limit_is_exact() -> None:
    def nested(depth: int) -> str:
        return "(" + "or(" * (depth - 1) + "a.eq.1" + ")" * depth

    assert parse_logic("or", nested(4), max_depth=4).tree.children
    with pytest.raises(QueryParamError) as info:
        parse_logic("or", nested(5), max_depth=4)
    assert info.value.details == "logic tree nested deeper than 4 levels"


@pytest.mark.parametrize("depth", [1000, 5000])
def test_parse_logic_thousands_deep_is_a_clean_400(depth: int) -> None:
    value = "(" + "not.and(" * depth + "a.eq.1" + ")" * (depth + 1)
    with pytest.raises(QueryParamError) as info:
        parse_logic("or", value)
    assert info.value.status == 400
    assert info.value.details == "logic tree nested deeper than 32 levels"


@given(embed_paths, logic_trees)
def test_logic_round_trips(path: tuple[str, ...], tree: LogicTree) -> None:
    item = PathLogic(path=path, tree=tree)
    assert parse_logic(*render_logic(item)) == item


@given(st.one_of(grammar_text, st.text(max_size=200)))
@example("(" * 100)
@example("(a.eq.{")
@example('(a.eq."')
def test_parse_logic_accepts_or_raises_rest_error(value: str) -> None:
    with contextlib.suppress(RestError):
        parse_logic("or", value)


# --- order and columns -----------------------------------------------------------------------

ORDER_CASES = [
    ("id", (OrderTerm(field=col("id")),)),
    (
        "name.desc.nullsfirst",
        (OrderTerm(field=col("name"), direction=Direction.DESC, nulls=NullsOrder.FIRST),),
    ),
    (
        "a.asc,b.nullslast",
        (
            OrderTerm(field=col("a"), direction=Direction.ASC),
            OrderTerm(field=col("b"), nulls=NullsOrder.LAST),
        ),
    ),
    (
        "json_col->key.asc",
        (OrderTerm(field=col("json_col", (Arrow.JSON, "key")), direction=Direction.ASC),),
    ),
    ("j->0.desc", (OrderTerm(field=col("j", (Arrow.JSON, 0)), direction=Direction.DESC),)),
    (
        "clients(name).desc",
        (OrderTerm(field=col("name"), relation="clients", direction=Direction.DESC),),
    ),
    (
        "name,clients(name),id",
        (
            OrderTerm(field=col("name")),
            OrderTerm(field=col("name"), relation="clients"),
            OrderTerm(field=col("id")),
        ),
    ),
    (" a , b ", (OrderTerm(field=col("a")), OrderTerm(field=col("b")))),
    ("asc", (OrderTerm(field=col("asc")),)),
]


@pytest.mark.parametrize(("text", "terms"), ORDER_CASES)
def test_parse_order_reads_each_form(text: str, terms: tuple[OrderTerm, ...]) -> None:
    assert parse_order(text) == terms
    assert parse_order(render_order(terms)) == terms


ORDER_ERRORS = [
    ("clients(name,id)", 13, 'unexpected "," expecting ")"'),
    ("id.ac", 4, 'unexpected "a" expecting "asc", "desc", "nullsfirst" or "nullslast"'),
    ("id.descc", 8, 'unexpected "c" expecting "," or end of input'),
    ("id.nullslasttt", 13, 'unexpected "t" expecting "," or end of input'),
    ("id.asc.nlsfst", 8, 'unexpected "n" expecting "nullsfirst" or "nullslast"'),
    ("id.nullsfirst.asc", 15, 'unexpected "a" expecting "," or end of input'),
    ("", 1, "unexpected end of input expecting field name (* or [a..z0..9_$])"),
    ("a,", 3, "unexpected end of input expecting field name (* or [a..z0..9_$])"),
]


@pytest.mark.parametrize(("text", "column", "details"), ORDER_ERRORS)
def test_parse_order_error_names_text_and_position(text: str, column: int, details: str) -> None:
    with pytest.raises(QueryParamError) as info:
        parse_order(text)
    assert info.value.message == f'"failed to parse order ({text})" (line 1, column {column})'
    assert info.value.details == details


@given(
    st.lists(
        st.builds(
            OrderTerm,
            field=st.deferred(
                lambda: __import__("tests.protocol.rest.strategies", fromlist=["fields"]).fields
            ),
            relation=st.none() | st.text(max_size=5),
            direction=st.none() | st.sampled_from(Direction),
            nulls=st.none() | st.sampled_from(NullsOrder),
        ),
        min_size=1,
        max_size=4,
    ).map(tuple)
)
def test_order_round_trips(terms: tuple[OrderTerm, ...]) -> None:
    assert parse_order(render_order(terms)) == terms


@given(st.one_of(grammar_text, st.text(max_size=100)))
def test_parse_order_accepts_or_raises_rest_error(text: str) -> None:
    with contextlib.suppress(RestError):
        parse_order(text)


@pytest.mark.parametrize(
    ("text", "names"),
    [('"a","b"', ("a", "b")), ("a, b ,c", ("a", "b", "c")), ('"full name",x', ("full name", "x"))],
)
def test_parse_columns_reads_quoted_and_bare_names(text: str, names: tuple[str, ...]) -> None:
    assert parse_columns(text) == names
    assert parse_columns(render_columns(names)) == names


@pytest.mark.parametrize("text", ["", "a,", "a b,,c", '"a'])
def test_parse_columns_refuses_malformed_lists(text: str) -> None:
    with pytest.raises(QueryParamError) as info:
        parse_columns(text, "on_conflict")
    assert info.value.message.startswith(
        haskell_show(f"failed to parse on_conflict parameter ({text})")
    )


@given(st.lists(st.text(max_size=10), min_size=1, max_size=4).map(tuple))
def test_columns_round_trip(names: tuple[str, ...]) -> None:
    assert parse_columns(render_columns(names)) == names
