"""Reads planned once: `PlanCache` remembers the plans of GET/HEAD requests on tables and views.

Apps send the same reads over and over. Parsing and planning one costs more Python time than the
rest of the request path together, while the plan of a read depends only on the request's
method, path, query string, a few headers, the schema snapshot and the limits, never on who asks:
the caller's role, claims, headers and cookies only fill the transaction's settings, and RLS is
Postgres's business. So a hit reuses the planned statement and recomputes just the settings (and
whether 42501 becomes 401) for this request.

Entries are kept per snapshot (a schema reload empties the cache), at most `size` of them, least
recently used first out. Only successful plans are kept: a request that fails to parse or plan
raises its `RestError` every time. Writes, calls, the OpenAPI document and requests with a body
or a long query string are always planned afresh.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final, TypeAlias, final

import attrs

from madbase.protocol.auth.bearer import RequestAuth
from madbase.protocol.http.messages import Request
from madbase.protocol.rest.limits import RestLimits
from madbase.protocol.rest.plan import Plan, plan_request, request_settings
from madbase.protocol.rest.request import (
    Action,
    ApiRequest,
    TargetKind,
    parse_request,
    request_cookies,
)
from madbase.protocol.rest.schema import SchemaSnapshot
from madbase.protocol.sql import Transaction

__all__ = ["PlanCache"]

# Every header `parse_request` reads for a read; their raw values are part of the key.
_KEY_HEADERS: Final = frozenset(
    {"accept", "accept-profile", "content-profile", "content-type", "prefer", "range", "range-unit"}
)
_MAX_QUERY_CHARS: Final = 2048
_Key: TypeAlias = tuple[str, str, str, tuple[tuple[str, str], ...]]


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

    def __len__(self) -> int:
        return len(self._entries)

    def plan(
        self,
        request: Request,
        subpath: str,
        snapshot: SchemaSnapshot,
        auth: RequestAuth,
        *,
        headers_json: str,
    ) -> Plan:
        """`parse_request` + `plan_request`, remembered for reads.

        Raises:
            RestError: as `parse_request` and `plan_request` do.
        """
        if snapshot is not self._snapshot:
            self._entries.clear()
            self._snapshot = snapshot
        key = _key(request, subpath)
        if key is not None:
            hit = self._entries.get(key)
            if hit is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return _rebind(*hit, request, auth, subpath, headers_json)
            self.misses += 1
        api = parse_request(request, subpath, self.limits, self.exposed_schemas)
        plan = plan_request(
            api, snapshot, auth, limits=self.limits, path=subpath, headers_json=headers_json
        )
        if key is not None and api.action is Action.READ and api.target.kind is TargetKind.RELATION:
            self._entries[key] = (api, plan)
            if len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return plan


def _key(request: Request, subpath: str) -> _Key | None:
    if request.method not in ("GET", "HEAD") or request.body:
        return None
    query = request.query
    if len(query) > _MAX_QUERY_CHARS:
        return None
    headers = tuple((name, value) for name, value in request.headers if name in _KEY_HEADERS)
    return (request.method, subpath, query, headers)


def _rebind(
    api: ApiRequest,
    plan: Plan,
    request: Request,
    auth: RequestAuth,
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
