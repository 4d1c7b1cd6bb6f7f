"""Reads and inserts planned once: `PlanCache` remembers plans of repeated requests on relations.

Apps send the same reads over and over. Parsing and planning one costs more Python time than the
rest of the request path together, while the plan of a read depends only on the request's
method, path, query string, a few headers, the schema snapshot and the limits, never on who asks:
the caller's role, claims, headers and cookies only fill the transaction's settings, and RLS is
Postgres's business. So a hit reuses the planned statement and recomputes just the settings (and
whether 42501 becomes 401) for this request.

Inserts (POST of rows to a table or view, no upsert) are the other repeated request. Their
statement depends on the body only through its shape, whether it is an array and which columns
it writes, and takes the body's JSON text as its first parameter. A hit checks the new body
against the relation exactly as planning does (`Payload.parse`: the same errors) and, if its
shape matches, binds the new text in place of the old.

Entries are kept per snapshot (a schema reload empties the cache), at most `size` reads and
`size` inserts, least recently used first out. Only successful plans are kept: a request that
fails to parse or plan raises its `RestError` every time. Updates, deletes, upserts, calls, the
OpenAPI document, EXPLAIN and requests with a long query string are always planned afresh.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final, TypeAlias, TypeVar, final

import attrs

from madbase.protocol.http.messages import Request
from madbase.protocol.identity.bearer import Principal
from madbase.protocol.rest.errors import RestError
from madbase.protocol.rest.limits import RestLimits
from madbase.protocol.rest.payload import Payload
from madbase.protocol.rest.plan import Plan, plan_request, request_settings, write_settings
from madbase.protocol.rest.request import (
    Action,
    ApiRequest,
    TargetKind,
    parse_request,
    request_cookies,
)
from madbase.protocol.rest.schema import Relation, SchemaSnapshot
from madbase.protocol.sql import Statement, Transaction

__all__ = ["PlanCache"]

# Every header `parse_request` reads for a read; their raw values are part of the key.
_KEY_HEADERS: Final = frozenset(
    {"accept", "accept-profile", "content-profile", "content-type", "prefer", "range", "range-unit"}
)
_MAX_QUERY_CHARS: Final = 2048
_T = TypeVar("_T")
_Key: TypeAlias = tuple[str, str, str, tuple[tuple[str, str], ...]]
# An insert's plan, the relation its body was checked against and that body's checked form.
_Insert: TypeAlias = tuple[ApiRequest, Plan, Relation, Payload]


@final
class PlanCache:
    """Plans of repeated reads for one service (fixed limits and exposed schemas)."""

    def __init__(
        self, limits: RestLimits, exposed_schemas: tuple[str, ...], *, size: int = 512
    ) -> None:
        self.limits = limits
        self.exposed_schemas = exposed_schemas
        self.size = size
        self.hits = 0
        self.misses = 0
        self._snapshot: SchemaSnapshot | None = None
        self._entries: OrderedDict[_Key, tuple[ApiRequest, Plan]] = OrderedDict()
        self._inserts: OrderedDict[_Key, _Insert] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries) + len(self._inserts)

    def plan(
        self,
        request: Request,
        subpath: str,
        snapshot: SchemaSnapshot,
        auth: Principal,
        *,
        headers_json: str,
    ) -> Plan:
        """`parse_request` + `plan_request`, remembered for reads.

        Raises:
            RestError: as `parse_request` and `plan_request` do.
        """
        if snapshot is not self._snapshot:
            self._entries.clear()
            self._inserts.clear()
            self._snapshot = snapshot
        key = _key(request, subpath)
        insert_key = _insert_key(request, subpath) if key is None else None
        if key is not None:
            hit = self._entries.get(key)
            if hit is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return _rebind(*hit, request, auth, subpath, headers_json)
            self.misses += 1
        elif insert_key is not None:
            insert = self._inserts.get(insert_key)
            rebound = (
                None
                if insert is None
                else _rebind_insert(*insert, request, auth, subpath, headers_json)
            )
            if rebound is not None:
                self._inserts.move_to_end(insert_key)
                self.hits += 1
                return rebound
            self.misses += 1
        api = parse_request(request, subpath, self.limits, self.exposed_schemas)
        plan = plan_request(
            api, snapshot, auth, limits=self.limits, path=subpath, headers_json=headers_json
        )
        if api.target.kind is not TargetKind.RELATION:
            return plan
        if key is not None and api.action is Action.READ:
            _remember(self._entries, key, (api, plan), self.size)
        elif insert_key is not None and api.action is Action.CREATE and not plan.explain:
            entry = _insert_entry(api, plan, snapshot)
            if entry is not None:
                _remember(self._inserts, insert_key, entry, self.size)
        return plan


def _remember(entries: OrderedDict[_Key, _T], key: _Key, value: _T, size: int) -> None:
    entries[key] = value
    if len(entries) > size:
        entries.popitem(last=False)


def _key(request: Request, subpath: str) -> _Key | None:
    if request.method not in ("GET", "HEAD") or request.body:
        return None
    query = request.query
    if len(query) > _MAX_QUERY_CHARS:
        return None
    headers = tuple((name, value) for name, value in request.headers if name in _KEY_HEADERS)
    return (request.method, subpath, query, headers)


def _insert_key(request: Request, subpath: str) -> _Key | None:
    if request.method != "POST" or len(request.query) > _MAX_QUERY_CHARS:
        return None
    headers = tuple((name, value) for name, value in request.headers if name in _KEY_HEADERS)
    return ("POST", subpath, request.query, headers)


def _insert_entry(api: ApiRequest, plan: Plan, snapshot: SchemaSnapshot) -> _Insert | None:
    """What a later insert of the same shape needs, if `plan` binds the body as planned."""
    assert api.target.name is not None
    relation = snapshot.find_relation(api.target.schema, api.target.name)
    if relation is None:
        return None
    payload = _payload(api, relation, api.body)
    statements = plan.transaction.statements
    if payload is None or not statements or statements[0].params[:1] != (payload.text,):
        return None
    return (api, plan, relation, payload)


def _payload(api: ApiRequest, relation: Relation, body: bytes) -> Payload | None:
    """`body` checked for an insert into `relation` as the planner checks it; None if refused."""
    try:
        return Payload.parse(
            body, relation, api.query.columns, array_ok=True, content_type=api.content_type
        )
    except RestError:
        return None  # planned afresh, which raises the same error


def _rebind_insert(
    api: ApiRequest,
    plan: Plan,
    relation: Relation,
    payload: Payload,
    request: Request,
    auth: Principal,
    subpath: str,
    headers_json: str,
) -> Plan | None:
    """`plan` with this request's body and settings; None if the body's shape differs."""
    body = _payload(api, relation, request.body)
    if body is None or body.columns != payload.columns or body.is_array != payload.is_array:
        return None
    cookies = request_cookies(request)
    if cookies != api.cookies:
        api = attrs.evolve(api, cookies=cookies)
    tx = plan.transaction
    first = tx.statements[0]
    statement = Statement(first.sql, (body.text, *first.params[1:]))
    return attrs.evolve(
        plan,
        transaction=Transaction(
            settings=write_settings(api, auth, subpath, headers_json),
            statements=(statement, *tx.statements[1:]),
            read_only=tx.read_only,
            rollback=tx.rollback,
        ),
        anonymous=auth.role == "anon",
    )


def _rebind(
    api: ApiRequest,
    plan: Plan,
    request: Request,
    auth: Principal,
    subpath: str,
    headers_json: str,
) -> Plan:
    """`plan` (made for another caller of the same read) with this request's settings."""
    cookies = request_cookies(request)
    if cookies != api.cookies:
        api = attrs.evolve(api, cookies=cookies)
    settings = request_settings(api, auth, subpath, headers_json)
    tx = plan.transaction
    return attrs.evolve(
        plan,
        transaction=Transaction(
            settings=settings,
            statements=tx.statements,
            read_only=tx.read_only,
            rollback=tx.rollback,
        ),
        anonymous=auth.role == "anon",
    )
