"""The schema cache against the embedded Postgres: introspection, LISTEN pgrst reloads, reconnects."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest
import trio

from madbase.config import DbSettings
from madbase.protocol.rest.schema import (
    ArgMode,
    Cardinality,
    Identity,
    QualifiedName,
    RelationKind,
    SchemaSnapshot,
    Volatility,
)
from madbase.runtime.db import Pool
from madbase.runtime.migrate import migrate
from madbase.runtime.schema_cache import SchemaCache, SchemaLoadError

pytestmark = pytest.mark.pg

# PostgREST's classic test shapes: m2o/o2m, m2m through a PK and through a unique constraint,
# self reference, two FKs to one table, one-to-one, views over a private schema and over a public
# table, computed relationships, variadic and OUT-parameter functions, enums, domains, generated.
FIXTURE = """
create schema if not exists private;
create type public.film_genre as enum ('drama', 'comedy', 'horror');
create domain public.email as varchar(120) check (value like '%@%');

create table public.countries (id int primary key, name text not null);
create table public.cities (id serial primary key, name varchar(80) not null, country_id int not null references public.countries(id));
comment on table public.cities is 'Cities of the world';
comment on column public.cities.name is 'Official name';

create table public.films (
  id int generated always as identity primary key,
  title text not null,
  genre public.film_genre,
  tags text[] default '{}',
  minutes int,
  hours numeric generated always as (minutes / 60.0) stored
);
create table public.actors (id int primary key, name text, contact public.email);
create table public.roles (
  film_id int references public.films(id),
  actor_id int references public.actors(id),
  character text,
  primary key (film_id, actor_id)
);

create table public.users (id int primary key, name text);
create table public.teams (id int primary key, name text);
create table public.members (
  user_id int not null references public.users(id),
  team_id int not null references public.teams(id),
  unique (user_id, team_id)
);
create table public.employees (id int primary key, name text, manager_id int references public.employees(id));
create table public.messages (
  id int primary key, body text,
  sender_id int not null constraint message_sender_fkey references public.users(id),
  receiver_id int not null constraint message_receiver_fkey references public.users(id)
);
create table public.profiles (user_id int primary key references public.users(id), bio text);

create table private.directors (id int primary key, name text);
create table private.movies (id int primary key, title text, director_id int references private.directors(id));
create view public.directors as select id, name from private.directors;
create view public.movies as select m.id as movie_id, m.title, m.director_id as dir from private.movies m;
create view public.cities_view as select c.id, c.name as city_name, c.country_id, upper(c.name) as shout from public.cities c;

create function public.film_actors(public.films) returns setof public.actors
  language sql stable as $$ select a.* from public.actors a join public.roles r on r.actor_id = a.id where r.film_id = $1.id $$;
create function public.first_city(public.countries) returns setof public.cities rows 1
  language sql stable as $$ select * from public.cities where country_id = $1.id limit 1 $$;
create function public.search_films(query text, max int default 10) returns setof public.films
  language sql stable as $$ select * from public.films where title ilike '%' || query || '%' limit max $$;
comment on function public.search_films(text, int) is 'Find films by title';
create function public.add_them(variadic nums int[]) returns int
  language sql immutable as $$ select sum(n)::int from unnest(nums) n $$;
create function public.stats(out total int, out average numeric) returns record
  language sql stable as $$ select 1, 2.0 $$;
create function public.bump() returns void language sql as $$ select $$;
create function public.table_fn(a int) returns table (x int, y text) language sql as $$ select a, 'y' $$;
create view public.directors_v2 as select id as director, name from public.directors;
"""


def q(name: str) -> QualifiedName:
    return QualifiedName("public", name)


def run_sql(conninfo: str, sql: str) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql)


async def wait_for(check: Callable[[], bool], *, timeout: float = 10.0) -> None:
    with trio.fail_after(timeout):
        while not check():
            await trio.sleep(0.02)


async def loaded(database: str) -> tuple[Pool, SchemaSnapshot]:
    pool = Pool(database, DbSettings())
    await migrate(pool)
    run_sql(database, FIXTURE)
    cache = SchemaCache()
    snapshot = await cache.load(pool, ("public",))
    assert cache.current is snapshot
    return pool, snapshot


async def test_load_reads_tables_columns_and_keys(database: str) -> None:
    pool, snap = await loaded(database)
    pool.close()
    assert snap.schemas == ("public",)
    # private tables back the views but are not exposed themselves
    assert snap.find_relation("private", "movies") is None
    films = snap.find_relation("public", "films")
    assert films is not None
    assert films.kind is RelationKind.TABLE
    assert films.primary_key == ("id",)
    assert (films.insertable, films.updatable, films.deletable) == (True, True, True)
    assert [c.name for c in films.columns] == ["id", "title", "genre", "tags", "minutes", "hours"]
    col = films.column
    ident = col("id")
    assert ident is not None
    assert ident.identity is Identity.ALWAYS
    genre = col("genre")
    assert genre is not None
    assert genre.type == "public.film_genre"
    assert genre.enum_values == ("drama", "comedy", "horror")
    tags = col("tags")
    assert tags is not None
    assert (tags.type, tags.element_type, tags.default) == ("text[]", "text", "'{}'::text[]")
    hours = col("hours")
    assert hours is not None
    assert hours.generated
    assert hours.default is None
    assert hours.has_default
    title = col("title")
    assert title is not None
    assert not title.nullable
    assert not title.has_default
    actors = snap.find_relation("public", "actors")
    assert actors is not None
    contact = actors.column("contact")
    assert contact is not None
    assert (contact.type, contact.base_type, contact.max_length) == (
        "public.email",
        "character varying(120)",
        120,
    )
    cities = snap.find_relation("public", "cities")
    assert cities is not None
    assert cities.description == "Cities of the world"
    name = cities.column("name")
    assert name is not None
    assert name.description == "Official name"
    assert name.max_length == 80
    city_id = cities.column("id")
    assert city_id is not None
    assert city_id.default == "nextval('public.cities_id_seq'::regclass)"
    members = snap.find_relation("public", "members")
    assert members is not None
    assert members.primary_key == ()
    assert members.unique_keys == (("user_id", "team_id"),)
    roles = snap.find_relation("public", "roles")
    assert roles is not None
    assert roles.primary_key == ("film_id", "actor_id")


async def test_load_reads_views_and_their_keys(database: str) -> None:
    pool, snap = await loaded(database)
    pool.close()
    movies = snap.find_relation("public", "movies")
    assert movies is not None
    assert movies.kind is RelationKind.VIEW
    assert movies.primary_key == ("movie_id",)
    assert movies.insertable
    assert movies.updatable
    assert movies.deletable
    cities_view = snap.find_relation("public", "cities_view")
    assert cities_view is not None
    assert cities_view.primary_key == ("id",)
    shout = cities_view.column("shout")
    assert shout is not None
    assert shout.type == "text"


async def test_load_finds_fk_relationships(database: str) -> None:
    pool, snap = await loaded(database)
    pool.close()
    (m2o,) = snap.relationships(q("cities"), q("countries"))
    assert m2o.cardinality is Cardinality.MANY_TO_ONE
    assert (m2o.constraint, m2o.columns) == ("cities_country_id_fkey", (("country_id", "id"),))
    assert m2o.to_one
    o2m, computed = snap.relationships(q("countries"), q("cities"))
    assert computed.function == q("first_city")
    assert o2m.cardinality is Cardinality.ONE_TO_MANY
    assert o2m.columns == (("id", "country_id"),)
    assert o2m.source_is_referenced
    (o2o,) = snap.relationships(q("users"), q("profiles"))
    assert o2o.cardinality is Cardinality.ONE_TO_ONE
    assert o2o.source_is_referenced
    (o2o_back,) = snap.relationships(q("profiles"), q("users"))
    assert o2o_back.cardinality is Cardinality.ONE_TO_ONE
    assert not o2o_back.source_is_referenced
    # self reference: both directions, ambiguous without a hint
    self_rels = snap.find_relationships(q("employees"), "employees")
    assert {r.cardinality for r in self_rels} == {Cardinality.MANY_TO_ONE, Cardinality.ONE_TO_MANY}
    assert all(r.is_self for r in self_rels)
    # two FKs to one table: ambiguous, hints pick one
    two = snap.find_relationships(q("messages"), "users")
    assert sorted(r.constraint for r in two) == ["message_receiver_fkey", "message_sender_fkey"]
    (sender,) = snap.find_relationships(q("messages"), "users", "message_sender_fkey")
    assert sender.columns == (("sender_id", "id"),)
    (by_column,) = snap.find_relationships(q("messages"), "receiver_id")
    assert by_column.constraint == "message_receiver_fkey"


async def test_load_finds_many_to_many_through_junctions(database: str) -> None:
    pool, snap = await loaded(database)
    pool.close()
    (films_actors,) = snap.find_relationships(q("films"), "actors")
    assert films_actors.cardinality is Cardinality.MANY_TO_MANY
    junction = films_actors.junction
    assert junction is not None
    assert junction.relation == q("roles")
    assert junction.source_constraint == "roles_film_id_fkey"
    assert junction.source_columns == (("id", "film_id"),)
    assert junction.target_constraint == "roles_actor_id_fkey"
    assert junction.target_columns == (("actor_id", "id"),)
    (users_teams,) = snap.find_relationships(q("users"), "teams")
    assert users_teams.junction is not None
    assert users_teams.junction.relation == q("members")
    assert users_teams.describe() == {
        "cardinality": "many-to-many",
        "embedding": "users with teams",
        "relationship": "members using members_user_id_fkey(user_id) and members_team_id_fkey(team_id)",
    }
    # messages has two FKs to users but they are not in a key: not a junction
    assert not [
        r
        for r in snap.relationships_from(q("users"))
        if r.cardinality is Cardinality.MANY_TO_MANY
        and r.junction is not None
        and r.junction.relation == q("messages")
    ]


async def test_load_carries_foreign_keys_over_to_views(database: str) -> None:
    pool, snap = await loaded(database)
    pool.close()
    # both views over private tables: the private FK relates them, with the views' column names
    (m2o,) = snap.relationships(q("movies"), q("directors"))
    assert m2o.cardinality is Cardinality.MANY_TO_ONE
    assert (m2o.constraint, m2o.columns) == ("movies_director_id_fkey", (("dir", "id"),))
    (o2m,) = snap.relationships(q("directors"), q("movies"))
    assert o2m.columns == (("id", "dir"),)
    # a view over a view keeps the mapping
    (via_v2,) = snap.relationships(q("movies"), q("directors_v2"))
    assert via_v2.columns == (("dir", "director"),)
    # a view over a public table relates to the table's targets
    (cv,) = snap.relationships(q("cities_view"), q("countries"))
    assert cv.columns == (("country_id", "id"),)
    assert snap.relationships(q("countries"), q("cities_view"))


async def test_load_finds_computed_relationships_and_functions(database: str) -> None:
    pool, snap = await loaded(database)
    pool.close()
    (film_actors,) = snap.find_relationships(q("films"), "film_actors")
    assert film_actors.function == q("film_actors")
    assert film_actors.target == q("actors")
    assert film_actors.cardinality is Cardinality.ONE_TO_MANY
    (first_city,) = snap.find_relationships(q("countries"), "first_city")
    assert first_city.cardinality is Cardinality.MANY_TO_ONE  # setof ... rows 1
    (search,) = snap.find_functions("public", "search_films")
    assert [(a.name, a.type, a.has_default) for a in search.args] == [
        ("query", "text", False),
        ("max", "integer", True),
    ]
    assert search.returns_set
    assert search.return_relation == q("films")
    assert search.volatility is Volatility.STABLE
    assert search.description == "Find films by title"
    (add,) = snap.find_functions("public", "add_them")
    assert add.is_variadic
    assert add.args[0].type == "integer[]"
    assert add.volatility is Volatility.IMMUTABLE
    assert not add.returns_set
    (stats,) = snap.find_functions("public", "stats")
    assert stats.returns_composite
    assert stats.input_args == ()
    assert [a.mode for a in stats.args] == [ArgMode.OUT, ArgMode.OUT]
    (bump,) = snap.find_functions("public", "bump")
    assert bump.returns_void
    assert bump.volatility is Volatility.VOLATILE
    (table_fn,) = snap.find_functions("public", "table_fn")
    assert table_fn.returns_set
    assert table_fn.returns_composite
    assert [a.name for a in table_fn.input_args] == ["a"]
    # bootstrap functions live in auth, which is not exposed
    assert snap.find_functions("auth", "uid") == ()


async def test_introspection_query_fails_cleanly_for_unknown_schema(database: str) -> None:
    pool = Pool(database, DbSettings())
    cache = SchemaCache()
    snap = await cache.load(pool, ("no_such_schema",))
    assert snap.relations == ()
    assert snap.functions == ()
    pool.close()
    with pytest.raises(SchemaLoadError):
        await cache.load(
            Pool("host=/nonexistent dbname=x", DbSettings(connect_timeout=1)), ("public",)
        )
    assert cache.current is snap
    assert cache.statistics().failures == 1


async def test_watch_reloads_after_ddl_and_notify(database: str) -> None:
    pool = Pool(database, DbSettings())
    await migrate(pool)
    cache = SchemaCache(debounce=0.05)
    async with trio.open_nursery() as nursery:
        await nursery.start(cache.watch, pool, database, ("public",))
        first = cache.current
        assert first is not None
        assert cache.statistics().listening
        run_sql(database, "create table public.fresh (id int primary key)")
        await wait_for(
            lambda: (
                cache.current is not None
                and cache.current.find_relation("public", "fresh") is not None
            )
        )
        assert first.find_relation("public", "fresh") is None  # the old snapshot is untouched
        # dropping reloads too (sql_drop)
        run_sql(database, "drop table public.fresh")
        await wait_for(
            lambda: (
                cache.current is not None and cache.current.find_relation("public", "fresh") is None
            )
        )
        # an explicit NOTIFY reloads; a burst costs few reloads
        loads = cache.statistics().loads
        run_sql(database, "select pg_notify('pgrst', 'reload schema') from generate_series(1, 50)")
        await wait_for(lambda: cache.statistics().loads > loads)
        await trio.sleep(0.3)
        assert cache.statistics().loads <= loads + 2
        # 'reload config' is ignored
        loads = cache.statistics().loads
        run_sql(database, "notify pgrst, 'reload config'")
        await trio.sleep(0.3)
        assert cache.statistics().loads == loads
        nursery.cancel_scope.cancel()
    assert not cache.statistics().listening
    pool.close()


async def test_watch_reconnects_when_its_backend_is_killed(database: str) -> None:
    pool = Pool(database, DbSettings())
    await migrate(pool)
    cache = SchemaCache(debounce=0.05, min_backoff=0.05)
    async with trio.open_nursery() as nursery:
        await nursery.start(cache.watch, pool, database, ("public",))
        run_sql(
            database,
            "select pg_terminate_backend(pid) from pg_stat_activity "
            "where datname = current_database() and query = 'LISTEN pgrst'",
        )
        await wait_for(lambda: cache.statistics().reconnects >= 1 and cache.statistics().listening)
        run_sql(database, "create table public.after_reconnect (id int)")
        await wait_for(
            lambda: (
                cache.current is not None
                and cache.current.find_relation("public", "after_reconnect") is not None
            )
        )
        nursery.cancel_scope.cancel()
    pool.close()
