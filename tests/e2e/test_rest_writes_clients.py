"""`/rest/v1` writes through supabase-py and raw HTTP against `madbase serve`: write options, CSV
and form bodies, and bad input (each refused with a 4xx in PostgREST's format, nothing written,
the server still serving).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import postgrest
import psycopg
import pytest
import supabase
from postgrest import ReturnMethod

from tests.e2e.test_rest_clients import ANN, close, user_token
from tests.e2e.test_serve import Served, start
from tests.runtime.test_rest_write_returning import write_only_tables

pytestmark = [pytest.mark.pg, pytest.mark.clients]

BODY_LIMIT = 1024 * 1024

# py_ledger and py_feedback: writes that may not read back (issue 8)
SCHEMA = (
    write_only_tables("py_")
    + """
create table public.py_items (
  id int primary key, name text not null, qty int not null default 5, note text
);
insert into public.py_items values (1, 'bolt', 10, null), (2, 'nut', 20, null);
"""
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rest-writes") / "data"


@pytest.fixture(scope="module")
def served(data_dir: Path) -> Iterator[Served]:
    server = start(
        data_dir,
        env={
            "MADBASE_HTTP_MAX_BODY_BYTES": str(BODY_LIMIT),
            "MADBASE_DB_PLAN_ENABLED": "true",
            "MADBASE_DB_MAX_ROWS": "1000",
        },
    )
    try:
        with psycopg.connect(server.db_url, autocommit=True) as conn:
            conn.execute(SCHEMA)
        deadline = time.monotonic() + 15
        while True:
            probe = httpx.get(f"{server.url}/rest/v1/py_items", headers=headers(server))
            if probe.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert probe.status_code == 200, probe.text
        yield server
    finally:
        server.stop()


@pytest.fixture
def service(served: Served) -> Iterator[supabase.Client]:
    client = supabase.create_client(served.url, served.service_role_key)
    try:
        yield client
    finally:
        close(client)


def headers(served: Served, **extra: str) -> dict[str, str]:
    key = served.service_role_key
    return {"apikey": key, "authorization": f"Bearer {key}", **extra}


def table(served: Served) -> list[tuple[Any, ...]]:
    with psycopg.connect(served.db_url, autocommit=True) as conn:
        return conn.execute("select id, name, qty, note from py_items order by id").fetchall()


def reset(served: Served) -> None:
    with psycopg.connect(served.db_url, autocommit=True) as conn:
        conn.execute(
            "delete from py_items; insert into py_items values (1, 'bolt', 10, null), "
            "(2, 'nut', 20, null)"
        )


def test_supabase_py_write_options(served: Served, service: supabase.Client) -> None:
    reset(served)
    items = service.table("py_items")
    added = items.insert(
        [{"id": 3, "name": "a", "qty": 1}, {"id": 4, "name": "b"}], default_to_null=False
    ).execute()
    assert [(r["id"], r["qty"]) for r in added.data] == [(3, 1), (4, 5)]
    with pytest.raises(postgrest.APIError) as nulls:
        items.insert([{"id": 5, "name": "c", "qty": 1}, {"id": 6, "name": "d"}]).execute()
    assert nulls.value.code == "23502"  # default_to_null: qty NULL
    upserted = items.upsert({"id": 3, "name": "a2"}).execute()
    assert upserted.data == [{"id": 3, "name": "a2", "qty": 1, "note": None}]
    before = table(served)
    with pytest.raises(postgrest.APIError) as limit:
        items.update({"note": "x"}).gte("id", 2).max_affected(2).execute()
    assert (limit.value.code, limit.value.details) == ("PGRST124", "The query affects 3 rows")
    with pytest.raises(postgrest.APIError) as single:
        items.update({"note": "y"}).in_("id", [1, 2]).single().execute()
    assert single.value.code == "PGRST116"
    assert table(served) == before
    one = items.update({"note": "z"}).eq("id", 1).max_affected(1).execute()
    assert one.data == [{"id": 1, "name": "bolt", "qty": 10, "note": "z"}]
    text = items.select("id,name").lte("id", 2).order("id").csv().execute()
    assert text.data == "id,name\n1,bolt\n2,nut"


def test_csv_and_form_bodies(served: Served) -> None:
    reset(served)
    url = f"{served.url}/rest/v1/py_items"
    csv_body = 'id,name,qty,note\n3,"a, b",1,NULL\n4,c,2,""\n'
    r = httpx.post(
        url + "?select=id,name,note",
        content=csv_body,
        headers=headers(served, **{"content-type": "text/csv", "prefer": "return=representation"}),
    )
    assert (r.status_code, r.json()) == (
        201,
        [{"id": 3, "name": "a, b", "note": None}, {"id": 4, "name": "c", "note": ""}],
    )
    # CSV upsert, CSV representation back
    r = httpx.post(
        url + "?select=id,qty",
        content="id,name,qty\n4,c,7\n5,e,8\n",
        headers=headers(
            served,
            **{
                "content-type": "text/csv",
                "accept": "text/csv",
                "prefer": "return=representation,resolution=merge-duplicates",
            },
        ),
    )
    assert (r.status_code, r.headers["content-type"], r.text) == (
        201,
        "text/csv; charset=utf-8",
        "id,qty\n4,7\n5,8",
    )
    r = httpx.post(
        url,
        content="id,name\n6\n",
        headers=headers(served, **{"content-type": "text/csv"}),
    )
    assert (r.status_code, r.json()["message"]) == (
        400,
        "All lines must have same number of fields",
    )
    r = httpx.post(
        url + "?select=id,name,qty",
        content="id=6&name=S%C3%A3o+Paulo&qty=3",
        headers=headers(
            served,
            **{
                "content-type": "application/x-www-form-urlencoded",
                "prefer": "return=representation",
            },
        ),
    )
    assert (r.status_code, r.json()) == (201, [{"id": 6, "name": "São Paulo", "qty": 3}])
    assert [row[0] for row in table(served)] == [1, 2, 3, 4, 5, 6]


def _nested_logic(depth: int) -> str:
    return "(" + "or(" * depth + "id.eq.1" + ")" * depth + ")"


BAD_INPUTS = [
    pytest.param(
        "POST",
        "",
        {},
        b'{"id":9,"name":' + b"[" * 10_000 + b"]" * 10_000 + b"}",
        400,
        "PGRST102",
        id="json-10k-levels",
    ),
    pytest.param(
        "POST", "", {}, b'{"id":9,"name":"\\ud800"}', 400, "PGRST102", id="lone-surrogate-escape"
    ),
    pytest.param("POST", "", {}, b'{"id":9,"\\udc00":1}', 400, "PGRST102", id="lone-surrogate-key"),
    pytest.param(
        "POST",
        "",
        {},
        b'{"id":9,"name":"\xed\xa0\x80"}',
        400,
        "PGRST102",
        id="surrogate-as-utf8-bytes",
    ),
    pytest.param("POST", "", {}, b'{"id":9,"name":"\xff\xfe"}', 400, "PGRST102", id="invalid-utf8"),
    pytest.param(
        "POST", "", {}, b'{"id":9,"name":"a\x00b"}', 400, "PGRST102", id="raw-nul-in-json"
    ),
    pytest.param(
        "POST", "", {}, b'{"id":9,"name":"a\\u0000b"}', 400, "22P05", id="escaped-nul-in-json"
    ),
    pytest.param(
        "POST",
        "?columns=id,name",
        {},
        b'[{"id":9,"name":"a"},{"id":10}]',
        400,
        "23502",
        id="columns-missing-not-null",
    ),
    pytest.param("PATCH", "?name=eq.a%00", {}, b'{"note":"x"}', 400, "PGRST100", id="nul-in-query"),
    pytest.param(
        "PATCH",
        "?id=eq.1&or=" + _nested_logic(5000),
        {},
        b'{"note":"x"}',
        400,
        "PGRST100",
        id="logic-5000-deep",
    ),
    pytest.param(
        "POST",
        "",
        {"content-type": "text/csv"},
        b'id,name\n9,"open',
        400,
        "PGRST102",
        id="csv-unterminated",
    ),
    pytest.param(
        "POST",
        "",
        {"content-type": "application/xml"},
        b"<a/>",
        400,
        "PGRST102",
        id="unknown-content-type",
    ),
]


@pytest.mark.parametrize(("method", "query", "extra", "body", "status", "code"), BAD_INPUTS)
def test_bad_input_is_refused_and_nothing_written(
    served: Served,
    method: str,
    query: str,
    extra: dict[str, str],
    body: bytes,
    status: int,
    code: str,
) -> None:
    reset(served)
    before = table(served)
    r = httpx.request(
        method,
        f"{served.url}/rest/v1/py_items{query}",
        content=body,
        headers=headers(served, **{"content-type": "application/json", **extra}),
    )
    assert r.status_code == status, r.text
    error = r.json()
    assert set(error) == {"code", "message", "details", "hint"}
    assert error["code"] == code
    assert r.headers["proxy-status"] == f"PostgREST; error={code}"
    assert table(served) == before
    assert httpx.get(f"{served.url}/rest/v1/py_items", headers=headers(served)).status_code == 200


def test_duplicate_keys_last_wins(served: Served) -> None:
    reset(served)
    r = httpx.post(
        f"{served.url}/rest/v1/py_items?select=name",
        content=b'{"id":9,"name":"first","name":"last"}',
        headers=headers(
            served, **{"content-type": "application/json", "prefer": "return=representation"}
        ),
    )
    assert (r.status_code, r.json()) == (201, [{"name": "last"}])


def test_oversized_body_and_url_are_refused(served: Served) -> None:
    reset(served)
    before = table(served)
    big = b'[{"id":9,"name":"' + b"x" * BODY_LIMIT + b'"}]'
    r = httpx.post(
        f"{served.url}/rest/v1/py_items",
        content=big,
        headers=headers(served, **{"content-type": "application/json"}),
    )
    assert (r.status_code, r.json()) == (413, {"message": "Payload Too Large"})
    # 100 KB of URL (httpx refuses to send it: a raw request)
    target = "/rest/v1/py_items?name=in.(" + "a," * 50_000 + "b)"
    host, port = served.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        reply = b""
        try:
            while chunk := sock.recv(65536):
                reply += chunk
        except ConnectionResetError:
            pass  # the server closed with our unread request bytes: its reply came first
    head, _, payload = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 414 ")
    assert json.loads(payload) == {"message": "URI Too Long"}
    assert table(served) == before
    assert httpx.get(f"{served.url}/rest/v1/py_items", headers=headers(served)).status_code == 200


def test_openapi_root_through_the_server(served: Served) -> None:
    anon = {"apikey": served.anon_key, "accept": "application/openapi+json"}
    r = httpx.get(f"{served.url}/rest/v1/", headers=anon)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/openapi+json; charset=utf-8"
    doc = r.json()
    assert doc["host"] == served.url.removeprefix("http://")
    assert doc["definitions"]["py_items"]["properties"]["id"]["description"] == (
        "Note:\nThis is a Primary Key.<pk/>"
    )
    assert sorted(doc["paths"]["/py_items"]) == ["delete", "get", "patch", "post"]


def test_supabase_py_counts_and_explain(served: Served, service: supabase.Client) -> None:
    reset(served)
    items = service.table("py_items")
    for method in ("planned", "estimated"):
        counted = items.select("id", count=method).execute()  # type: ignore[arg-type]
        assert isinstance(counted.count, int)
        assert len(counted.data) == 2
    assert items.select("id", count="estimated").execute().count == 2  # under db-max-rows
    plan = items.select("name").eq("id", 1).explain(analyze=True).execute()
    assert "actual time=" in str(plan)
    as_json = items.select("name").explain(format="json").execute()
    assert as_json.data[0]["Plan"]["Node Type"] == "Aggregate"


def test_openapi_mode_disabled_and_max_rows(tmp_path: Path) -> None:
    server = start(
        tmp_path / "data", env={"MADBASE_OPENAPI_MODE": "disabled", "MADBASE_DB_MAX_ROWS": "2"}
    )
    try:
        r = httpx.get(f"{server.url}/rest/v1/", headers={"apikey": server.anon_key})
        assert (r.status_code, r.json()["code"]) == (404, "PGRST126")
        with psycopg.connect(server.db_url, autocommit=True) as conn:
            conn.execute("create table public.t (x int); insert into public.t values (1), (2), (3)")
        deadline = time.monotonic() + 15
        while True:
            r = httpx.get(
                f"{server.url}/rest/v1/t?order=x",
                headers={"apikey": server.anon_key, "prefer": "count=exact"},
            )
            if r.status_code != 404 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert (r.status_code, r.json(), r.headers["content-range"]) == (
            206,
            [{"x": 1}, {"x": 2}],
            "0-1/3",
        )
    finally:
        server.stop()


def ledger(served: Served) -> list[tuple[Any, ...]]:
    with psycopg.connect(served.db_url, autocommit=True) as conn:
        return conn.execute(
            "select id, owner_id::text, amount, secret from py_ledger order by id"
        ).fetchall()


def test_writes_read_back_only_what_is_asked_through_http(served: Served, data_dir: Path) -> None:
    user = {"apikey": served.anon_key, "authorization": f"Bearer {user_token(data_dir, ANN)}"}
    anon = {"apikey": served.anon_key}
    url = f"{served.url}/rest/v1"
    with psycopg.connect(served.db_url, autocommit=True) as conn:
        conn.execute("truncate py_ledger, py_feedback restart identity")
    # the case: column grants (select: not secret), no table grant; twice, so the
    # second goes through the plan cache
    for amount in (5, 6):
        r = httpx.post(
            f"{url}/py_ledger",
            json={"amount": amount},
            headers={**user, "prefer": "return=minimal"},
        )
        assert (r.status_code, r.content) == (201, b""), r.text
    r = httpx.post(
        f"{url}/py_ledger?select=id,amount",
        json={"amount": 7},
        headers={**user, "prefer": "return=representation"},
    )
    assert (r.status_code, r.json()) == (201, [{"id": 3, "amount": 7}])
    r = httpx.post(
        f"{url}/py_ledger", json={"amount": 8}, headers={**user, "prefer": "return=headers-only"}
    )
    assert (r.status_code, r.headers["location"]) == (201, "/py_ledger?id=eq.4"), r.text
    r = httpx.post(
        f"{url}/py_ledger", json={"amount": 9}, headers={**user, "prefer": "return=representation"}
    )
    assert (r.status_code, r.json()["code"]) == (403, "42501")  # secret is not granted
    r = httpx.patch(
        f"{url}/py_ledger?id=eq.1",
        json={"amount": 50},
        headers={**user, "prefer": "return=minimal"},
    )
    assert r.status_code == 204, r.text
    r = httpx.delete(f"{url}/py_ledger?id=eq.2", headers={**user, "prefer": "return=minimal"})
    assert r.status_code == 204, r.text
    assert ledger(served) == [(1, ANN, 50, "hidden"), (3, ANN, 7, "hidden"), (4, ANN, 8, "hidden")]
    # Supabase's insert-only table: anon inserts, cannot read back
    for _ in range(2):
        r = httpx.post(
            f"{url}/py_feedback",
            json={"message": "hi"},
            headers={**anon, "prefer": "return=minimal"},
        )
        assert (r.status_code, r.content) == (201, b""), r.text
    r = httpx.post(
        f"{url}/py_feedback",
        json={"message": "hi"},
        headers={**anon, "prefer": "return=representation"},
    )
    assert (r.status_code, r.json()["code"]) == (401, "42501")
    with psycopg.connect(served.db_url, autocommit=True) as conn:
        assert conn.execute("select count(*) from py_feedback").fetchall() == [(2,)]


def test_supabase_py_writes_without_reading_back(served: Served, data_dir: Path) -> None:
    with psycopg.connect(served.db_url, autocommit=True) as conn:
        conn.execute("truncate py_ledger, py_feedback restart identity")
    anon = supabase.create_client(served.url, served.anon_key)
    user = supabase.create_client(served.url, served.anon_key)
    user.postgrest.auth(user_token(data_dir, ANN))
    try:
        # insert-only: supabase-py asks for the row back unless told returning=ReturnMethod.minimal
        sent = (
            anon.table("py_feedback")
            .insert({"message": "hi"}, returning=ReturnMethod.minimal)
            .execute()
        )
        assert sent.data == []
        with pytest.raises(postgrest.APIError) as refused:
            anon.table("py_feedback").insert({"message": "hi"}).execute()
        assert refused.value.code == "42501"
        # column grants: minimal, or back only the granted columns
        ledger_table = user.table("py_ledger")
        ledger_table.insert({"amount": 5}, returning=ReturnMethod.minimal).execute()
        added = ledger_table.insert({"amount": 6}).select("id, amount").execute()
        assert added.data == [{"id": 2, "amount": 6}]
        ledger_table.update({"amount": 7}, returning=ReturnMethod.minimal).eq("id", 1).execute()
        changed = ledger_table.update({"amount": 8}).eq("id", 2).select("amount").execute()
        assert changed.data == [{"amount": 8}]
        ledger_table.delete(returning=ReturnMethod.minimal).eq("id", 1).execute()
        with pytest.raises(postgrest.APIError) as hidden:
            ledger_table.delete().eq("id", 2).execute()  # representation of every column
        assert hidden.value.code == "42501"
        assert ledger(served) == [(2, ANN, 8, "hidden")]
    finally:
        close(anon)
        close(user)
