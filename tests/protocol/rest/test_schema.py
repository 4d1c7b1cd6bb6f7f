"""The schema snapshot: built from hand-written introspection payloads; lookups and embed rules."""

from __future__ import annotations

import pytest

from madbase.protocol.http import JsonValue
from madbase.protocol.rest.schema import (
    ArgMode,
    Cardinality,
    QualifiedName,
    SchemaPayloadError,
    SchemaSnapshot,
    fuzzy_candidates,
)
from madbase.protocol.rest.schema_load import introspection_transaction, snapshot_from_json
from madbase.protocol.rest.schema_sql import NodeTreeError, view_column_origins


def q(name: str) -> QualifiedName:
    return QualifiedName("public", name)


def col(num: int, name: str, type_: str = "integer", **extra: JsonValue) -> dict[str, JsonValue]:
    out: dict[str, JsonValue] = {
        "num": num,
        "name": name,
        "type": type_,
        "base_type": type_,
        "element_type": None,
        "nullable": True,
        "default": None,
        "generated": "",
        "identity": "",
        "max_length": None,
        "enum": None,
        "description": None,
    }
    out.update(extra)
    return out


def rel(
    oid: int,
    name: str,
    cols: list[str],
    *,
    schema: str = "public",
    kind: str = "r",
    exposed: bool = True,
    definition: str | None = None,
) -> dict[str, JsonValue]:
    columns: list[JsonValue] = [col(i + 1, c) for i, c in enumerate(cols)]
    return {
        "oid": oid,
        "schema": schema,
        "name": name,
        "kind": kind,
        "exposed": exposed,
        "description": None,
        "updatable_mask": 28 if exposed else 0,
        "definition": definition,
        "columns": columns,
    }


def con(
    name: str,
    type_: str,
    rel_: int,
    cols: list[int],
    ref: int | None = None,
    ref_cols: list[int] | None = None,
) -> dict[str, JsonValue]:
    return {
        "name": name,
        "type": type_,
        "rel": rel_,
        "columns": list[JsonValue](cols),
        "ref_rel": ref,
        "ref_columns": None if ref_cols is None else list[JsonValue](ref_cols),
    }


def view_def(*entries: tuple[str, int, int]) -> str:
    """A minimal view definition node tree: (column, origin table oid, origin attnum)."""
    tl = " ".join(
        f"{{TARGETENTRY :expr <> :resno {i + 1} :resname {name.replace(' ', chr(92) + ' ')} "
        f":resorigtbl {tbl} :resorigcol {num} :resjunk false}}"
        for i, (name, tbl, num) in enumerate(entries)
    )
    return f"({{QUERY :commandType 1 :rtable <> :targetList ({tl}) :stmt_len -1}})"


def fn(
    name: str, args: list[JsonValue], ret: str = "integer", **extra: JsonValue
) -> dict[str, JsonValue]:
    out: dict[str, JsonValue] = {
        "schema": "public",
        "name": name,
        "args": args,
        "ndefaults": 0,
        "return_type": ret,
        "return_typtype": "b",
        "return_rel_schema": None,
        "return_rel_name": None,
        "returns_set": False,
        "rows": 0,
        "volatility": "v",
        "settings": [],
        "description": None,
    }
    out.update(extra)
    return out


def arg(name: str, type_: str = "integer", mode: str = "i", rel_: str | None = None) -> JsonValue:
    return {
        "name": name,
        "type": type_,
        "mode": mode,
        "rel_schema": "public" if rel_ else None,
        "rel_name": rel_,
    }


# films(1) <- roles(2) -> actors(3); directors(4) <- films.director_id; employees(5) self;
# messages(6) -> users(7) twice; profiles(8) one-to-one users; private.t(9) behind views 10, 11.
PAYLOAD: dict[str, JsonValue] = {
    "relations": [
        rel(1, "films", ["id", "title", "director_id"]),
        rel(2, "roles", ["film_id", "actor_id", "character"]),
        rel(3, "actors", ["id", "name"]),
        rel(4, "directors", ["id", "name"]),
        rel(5, "employees", ["id", "manager_id"]),
        rel(6, "messages", ["id", "sender_id", "receiver_id"]),
        rel(7, "users", ["id", "name"]),
        rel(8, "profiles", ["user_id", "bio"]),
        rel(9, "items", ["id", "owner_id"], schema="private", exposed=False),
        rel(
            10,
            "items_v",
            ["item", "owner"],
            kind="v",
            definition=view_def(("item", 9, 1), ("owner", 9, 2)),
        ),
        rel(
            11,
            "items_vv",
            ["the item", "owner", "computed"],
            kind="v",
            definition=view_def(("the item", 10, 1), ("owner", 10, 2)),
        ),
    ],
    "constraints": [
        con("films_pkey", "p", 1, [1]),
        con("films_director_id_fkey", "f", 1, [3], 4, [1]),
        con("roles_pkey", "p", 2, [1, 2]),
        con("roles_film_id_fkey", "f", 2, [1], 1, [1]),
        con("roles_actor_id_fkey", "f", 2, [2], 3, [1]),
        con("actors_pkey", "p", 3, [1]),
        con("directors_pkey", "p", 4, [1]),
        con("employees_pkey", "p", 5, [1]),
        con("employees_manager_id_fkey", "f", 5, [2], 5, [1]),
        con("messages_pkey", "p", 6, [1]),
        con("message_sender_fkey", "f", 6, [2], 7, [1]),
        con("message_receiver_fkey", "f", 6, [3], 7, [1]),
        con("users_pkey", "p", 7, [1]),
        con("profiles_pkey", "p", 8, [1]),
        con("profiles_user_id_fkey", "f", 8, [1], 7, [1]),
        con("items_pkey", "p", 9, [1]),
        con("items_owner_fkey", "f", 9, [2], 7, [1]),
        con("to_hidden_fkey", "f", 8, [2], 999, [1]),
    ],
    "functions": [
        fn(
            "film_actors",
            [arg("", "films", rel_="films")],
            "actors",
            return_typtype="c",
            return_rel_schema="public",
            return_rel_name="actors",
            returns_set=True,
            rows=1000,
        ),
        fn(
            "film_director",
            [arg("f", "films", rel_="films")],
            "directors",
            return_typtype="c",
            return_rel_schema="public",
            return_rel_name="directors",
            returns_set=True,
            rows=1,
        ),
        fn(
            "add",
            [arg("a"), arg("b")],
            ndefaults=1,
            volatility="i",
            settings=["statement_timeout=5s"],
            description="adds",
        ),
        fn("add", [arg("a"), arg("c", "text")], volatility="s"),
        fn("sum_all", [arg("nums", "integer[]", "v")]),
        fn(
            "stats",
            [arg("total", mode="o"), arg("avg", "numeric", mode="o")],
            "record",
            return_typtype="p",
        ),
        fn("bump", [], "void", return_typtype="p"),
    ],
}


@pytest.fixture(scope="module")
def snap() -> SchemaSnapshot:
    return snapshot_from_json(PAYLOAD, ("public",))


def test_snapshot_lookup_relations(snap: SchemaSnapshot) -> None:
    films = snap.find_relation("public", "films")
    assert films is not None
    assert films.primary_key == ("id",)
    assert films.column("title") is not None
    assert films.column("nope") is None
    assert (films.insertable, films.updatable, films.deletable) == (True, True, True)
    assert snap.find_relation("private", "items") is None  # not exposed
    assert snap.find_relation("public", "nope") is None
    assert [str(r.name) for r in snap.relations][:3] == [
        "public.actors",
        "public.directors",
        "public.employees",
    ]


def test_snapshot_view_keys_follow_base_columns(snap: SchemaSnapshot) -> None:
    view = snap.find_relation("public", "items_v")
    assert view is not None
    assert view.primary_key == ("item",)
    nested = snap.find_relation("public", "items_vv")
    assert nested is not None
    assert nested.primary_key == ("the item",)


def test_relationships_many_to_one_and_back(snap: SchemaSnapshot) -> None:
    m2o, computed = snap.relationships(q("films"), q("directors"))
    assert computed.function == q("film_director")
    assert (m2o.cardinality, m2o.columns, m2o.to_one) == (
        Cardinality.MANY_TO_ONE,
        (("director_id", "id"),),
        True,
    )
    assert m2o.describe() == {
        "cardinality": "many-to-one",
        "embedding": "films with directors",
        "relationship": "films_director_id_fkey using films(director_id) and directors(id)",
    }
    assert m2o.hint == "films_director_id_fkey"
    (o2m,) = snap.relationships(q("directors"), q("films"))
    assert (o2m.cardinality, o2m.columns, o2m.to_one) == (
        Cardinality.ONE_TO_MANY,
        (("id", "director_id"),),
        False,
    )


def test_relationships_one_to_one_when_fk_is_a_key(snap: SchemaSnapshot) -> None:
    (child,) = snap.relationships(q("profiles"), q("users"))
    (parent,) = snap.relationships(q("users"), q("profiles"))
    assert child.cardinality is parent.cardinality is Cardinality.ONE_TO_ONE
    assert parent.source_is_referenced
    assert not child.source_is_referenced


def test_relationships_skip_unknown_targets(snap: SchemaSnapshot) -> None:
    assert all(r.constraint != "to_hidden_fkey" for r in snap.relationships_from(q("profiles")))


def test_many_to_many_through_junction(snap: SchemaSnapshot) -> None:
    (m2m,) = snap.find_relationships(q("films"), "actors")
    assert m2m.cardinality is Cardinality.MANY_TO_MANY
    assert not m2m.to_one
    assert m2m.junction is not None
    assert m2m.hint == "roles"
    assert m2m.describe()["relationship"] == (
        "roles using roles_film_id_fkey(film_id) and roles_actor_id_fkey(actor_id)"
    )
    (back,) = snap.find_relationships(q("actors"), "films")
    assert back.junction is not None
    assert back.junction.source_columns == (("id", "actor_id"),)
    # messages' FKs are not part of a key: no many-to-many between users and users
    assert not [r for r in snap.relationships_from(q("users")) if r.junction is not None]


def test_find_relationships_ambiguity_and_hints(snap: SchemaSnapshot) -> None:
    both = snap.find_relationships(q("messages"), "users")
    assert sorted(r.hint for r in both) == ["message_receiver_fkey", "message_sender_fkey"]
    assert [r.constraint for r in snap.find_relationships(q("messages"), "users", "sender_id")] == [
        "message_sender_fkey"
    ]
    assert [
        r.constraint
        for r in snap.find_relationships(q("messages"), "users", "message_receiver_fkey")
    ] == ["message_receiver_fkey"]
    # referenced column as hint matches both
    assert len(snap.find_relationships(q("messages"), "users", "id")) == 2
    # target as FK constraint name or FK column
    assert [r.target for r in snap.find_relationships(q("messages"), "message_sender_fkey")] == [
        q("users")
    ]
    assert [r.constraint for r in snap.find_relationships(q("messages"), "receiver_id")] == [
        "message_receiver_fkey"
    ]
    # reverse side: the FK column lives on the target
    assert len(snap.find_relationships(q("users"), "messages")) == 2
    assert [r.constraint for r in snap.find_relationships(q("users"), "messages", "sender_id")] == [
        "message_sender_fkey"
    ]
    # self reference: both directions
    selfs = snap.find_relationships(q("employees"), "employees")
    assert {r.cardinality for r in selfs} == {Cardinality.MANY_TO_ONE, Cardinality.ONE_TO_MANY}
    assert all(r.is_self for r in selfs)
    # junction name as hint
    assert len(snap.find_relationships(q("films"), "actors", "roles")) == 1
    assert snap.find_relationships(q("films"), "actors", "nope") == ()
    assert snap.find_relationships(q("films"), "nope") == ()


def test_view_relationships_follow_base_foreign_keys(snap: SchemaSnapshot) -> None:
    (m2o,) = snap.relationships(q("items_v"), q("users"))
    assert m2o.columns == (("owner", "id"),)
    assert m2o.constraint == "items_owner_fkey"
    (nested,) = snap.relationships(q("items_vv"), q("users"))
    assert nested.columns == (("owner", "id"),)
    assert len(snap.find_relationships(q("users"), "items_vv")) == 1


def test_computed_relationships(snap: SchemaSnapshot) -> None:
    (to_many,) = snap.find_relationships(q("films"), "film_actors")
    assert (to_many.function, to_many.target, to_many.cardinality) == (
        q("film_actors"),
        q("actors"),
        Cardinality.ONE_TO_MANY,
    )
    (to_one,) = snap.find_relationships(q("films"), "film_director")
    assert to_one.cardinality is Cardinality.MANY_TO_ONE  # setof ... rows 1
    assert to_one.columns == ()
    assert to_one.hint == "film_director"
    assert snap.find_relationships(q("films"), "film_director", "directors") == (to_one,)


def test_functions_overloads_args_and_defaults(snap: SchemaSnapshot) -> None:
    first, second = snap.find_functions("public", "add")
    assert [(a.name, a.has_default) for a in first.args] == [("a", False), ("b", True)]
    assert first.settings == (("statement_timeout", "5s"),)
    assert first.description == "adds"
    assert [a.type for a in second.args] == ["integer", "text"]
    (variadic,) = snap.find_functions("public", "sum_all")
    assert variadic.is_variadic
    assert variadic.args[0].mode is ArgMode.VARIADIC
    (stats,) = snap.find_functions("public", "stats")
    assert stats.returns_composite
    assert stats.input_args == ()
    assert not stats.is_variadic
    (bump,) = snap.find_functions("public", "bump")
    assert bump.returns_void
    assert not bump.returns_composite
    (film_actors,) = snap.find_functions("public", "film_actors")
    assert film_actors.return_relation == q("actors")
    assert film_actors.returns_composite
    assert snap.find_functions("public", "nope") == ()
    assert [f.name.name for f in snap.functions][:2] == ["add", "add"]


def test_fuzzy_hints(snap: SchemaSnapshot) -> None:
    assert snap.similar_relations("public", "flims") == ("films",)
    assert snap.similar_relations("other", "films") == ()
    assert snap.similar_functions("public", "ad") == ("add",)
    assert "directors" in snap.similar_embeds(q("films"), "director")
    assert fuzzy_candidates("zzz", ["films"]) == ()


def test_introspection_transaction_binds_schemas() -> None:
    tx = introspection_transaction(("public", 'a"b'))
    assert tx.read_only
    assert tx.settings == (("search_path", ""),)
    (statement,) = tx.statements
    assert statement.params == ('{"public","a\\"b"}',)


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        ([], "payload: expected an object"),
        ({"relations": {}}, "payload.relations: expected a list"),
        ({"relations": [1]}, "relations[0]: expected an object"),
        ({"relations": [{**rel(1, "t", ["a"]), "oid": "1"}]}, "relations[0].oid"),
        ({"relations": [{**rel(1, "t", ["a"]), "kind": "x"}]}, "relations[0].kind: unknown"),
        ({"relations": [{**rel(1, "t", ["a"]), "exposed": 1}]}, "relations[0].exposed"),
        (
            {"relations": [{**rel(1, "t", []), "columns": [col(1, "a", identity="q")]}]},
            "columns[0].identity",
        ),
        (
            {"relations": [{**rel(1, "t", []), "columns": [col(1, "a", enum=[1])]}]},
            "columns[0].enum",
        ),
        (
            {"relations": [{**rel(1, "t", []), "columns": [col(1, "a", description=3)]}]},
            "columns[0].description",
        ),
        ({"relations": [{**rel(1, "t", ["a"]), "definition": "({QUERY :x"}]}, "definition of view"),
        ({"constraints": [con("c", "x", 1, [1])]}, "unknown constraint type"),
        ({"constraints": [{**con("c", "p", 1, [1]), "columns": ["1"]}]}, "list of integers"),
        ({"functions": [fn("f", [], rows="1")]}, "functions[0].rows"),
        ({"functions": [fn("f", [], settings=["nope"])]}, "name=value"),
        ({"functions": [fn("f", [arg("a", mode="z")])]}, "args[0].mode"),
        ({"functions": [fn("f", [], returns_set=None)]}, "returns_set"),
    ],
)
def test_snapshot_from_json_rejects_malformed_payloads(payload: JsonValue, where: str) -> None:
    with pytest.raises(
        SchemaPayloadError, match=where.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")
    ):
        snapshot_from_json(payload, ("public",))


def test_view_whose_origin_chain_breaks_exposes_nothing() -> None:
    payload: JsonValue = {
        "relations": [
            rel(1, "v", ["a"], kind="v", definition=view_def(("a", 42, 1))),
            rel(2, "w", ["a"], kind="v", definition=view_def(("a", 1, 7))),
            rel(3, "x", ["a", "b"], kind="v", definition=view_def(("b", 1, 1))),
        ],
    }
    snap = snapshot_from_json(payload, ("public",))
    assert all(r.primary_key == () for r in snap.relations)


def test_view_column_origins_reads_node_trees() -> None:
    text = view_def(("id", 5, 1), ("my (odd) name", 5, 2), ("expr", 0, 0))
    text = text.replace("my\\ (odd)\\ name", "my\\ \\(odd\\)\\ name")
    assert view_column_origins(text) == (("id", 5, 1), ("my (odd) name", 5, 2))
    junk = (
        "({QUERY :targetList ({TARGETENTRY :resno 1 :resname x :resorigtbl 5 :resorigcol 1 "
        ":resjunk true} {TARGETENTRY :resname <> :resorigtbl 5 :resorigcol 2 :resjunk false}"
        " {TARGETENTRY :expr {CONST :constvalue 4 [ 1 0 0 0 ]} :resname c :resorigtbl 0"
        " :resorigcol 0 :resjunk false})})"
    )
    assert view_column_origins(junk) == ()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "({QUERY :targetList ()}) extra",
        "{QUERY :targetList ()}",
        "()",
        "({OTHER :targetList ()})",
        "({QUERY :rtable <>})",
        "({QUERY :targetList ({VAR :x 1})})",
        "({QUERY :targetList ({TARGETENTRY :resname a :resorigtbl x :resorigcol 1})})",
        "({QUERY :targetList (})",
        "({QUERY targetList})",
        "({QUERY :a \\",
        "(",
    ],
)
def test_view_column_origins_rejects_malformed_trees(text: str) -> None:
    with pytest.raises(NodeTreeError):
        view_column_origins(text)
