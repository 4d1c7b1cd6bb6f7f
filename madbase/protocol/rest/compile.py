"""`compile_request`: a PostgREST request to its SQL, without a server, for other tools to reuse.

    transaction = compile_request(
        "GET", "/todos", "select=id,task&done=is.false&order=id", {}, b"", snapshot
    )
    for statement in transaction.statements:
        print(statement.sql, statement.params)

It runs the same stages `/rest/v1` runs (parse, plan against the schema snapshot, build SQL); a
request PostgREST would refuse raises the same `RestError` (its `.to_response()` is PostgREST's
error response). Values are always bind parameters, identifiers always quoted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from madbase.protocol.http.messages import Request
from madbase.protocol.identity.bearer import Principal
from madbase.protocol.rest.limits import RestLimits
from madbase.protocol.rest.plan import plan_request
from madbase.protocol.rest.request import parse_request
from madbase.protocol.rest.schema import SchemaSnapshot
from madbase.protocol.sql import Transaction

__all__ = ["compile_request"]

_ANON = Principal(role="anon", claims_json='{"role":"anon"}')


def compile_request(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    snapshot: SchemaSnapshot,
    *,
    auth: Principal = _ANON,
    limits: RestLimits | None = None,
    schemas: tuple[str, ...] = ("public",),
) -> Transaction:
    """The transaction `/rest/v1` would run for this request.

    `path` is the part after `/rest/v1` (`/todos`, `/rpc/fn`), `query` the raw query string
    without `?`. The transaction's settings carry the role and claims of `auth` (anonymous by
    default) as PostgREST sets them.

    Raises:
        RestError: the request is malformed or names what the snapshot does not have.
    """
    header_pairs = tuple((name.lower(), value) for name, value in headers.items())
    target = path + ("?" + query if query else "")
    request = Request(method=method.upper(), target=target, headers=header_pairs, body=body)
    limits = limits or RestLimits()
    api = parse_request(request, path, limits, schemas)
    headers_json = (
        "{"
        + ",".join(
            f"{_json_string(name)}:{_json_string(value)}"
            for name, value in dict(header_pairs).items()
        )
        + "}"
    )
    plan = plan_request(api, snapshot, auth, limits=limits, path=path, headers_json=headers_json)
    return plan.transaction


def _json_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)
