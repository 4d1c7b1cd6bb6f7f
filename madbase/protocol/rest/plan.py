"""`plan_request`: an `ApiRequest` resolved against the schema snapshot into a transaction to run.

As PostgREST's `Plan.hs` + `Query.hs`: the target must exist (PGRST205 with a did-you-mean hint),
columns and embeds are checked (42703, PGRST200, PGRST201, PGRST108), and the result is one
`Transaction`: the request's settings in PostgREST's order (search_path, role, claims, method,
path, headers, cookies, timezone), then one statement that builds the response body in Postgres
(see `build`). GET/HEAD run READ ONLY. Writes and RPC are not planned yet (PGRST127).

`count=planned` and `count=estimated` are answered with an exact count for now.
"""

from __future__ import annotations

import json
from typing import Final, final

import attrs

from madbase.protocol.auth.bearer import RequestAuth
from madbase.protocol.rest.build import read_statement
from madbase.protocol.rest.errors import NotImplementedFeature, TableNotFound
from madbase.protocol.rest.headers import (
    MediaKind,
    MediaType,
    Preferences,
    PreferTransaction,
    preference_applied,
)
from madbase.protocol.rest.limits import RestLimits
from madbase.protocol.rest.request import Action, ApiRequest, TargetKind
from madbase.protocol.rest.schema import SchemaSnapshot
from madbase.protocol.sql import Transaction

__all__ = ["Plan", "plan_request"]

# PostgREST's default `db-extra-search-path`.
_EXTRA_SEARCH_PATH: Final = ("public",)
_READ_MEDIA: Final = frozenset(
    {MediaKind.JSON, MediaKind.OBJECT, MediaKind.ARRAY_STRIPPED, MediaKind.CSV}
)


@final
@attrs.frozen(kw_only=True)
class Plan:
    """What to run and what `respond` needs to answer.

    `transaction` holds one statement returning one row `(total, page_rows, body)`. `offset` is
    the top-level range's first row (for Content-Range); `counted` says whether `total` was
    asked for; `media_type` the negotiated response type; `head` drops the body; `anonymous` makes
    42501 a 401; `profile` is the schema to echo in `Content-Profile` (None: no profile header).
    """

    transaction: Transaction
    media_type: MediaType
    head: bool = False
    offset: int = 0
    counted: bool = False
    anonymous: bool = False
    profile: str | None = None
    preference_applied: str | None = None


def _settings(
    api: ApiRequest, auth: RequestAuth, path: str, headers_json: str
) -> tuple[tuple[str, str], ...]:
    search_path = ", ".join(
        '"' + s.replace('"', '""') + '"' for s in (api.target.schema, *_EXTRA_SEARCH_PATH)
    )
    cookies = json.dumps(dict(api.cookies), separators=(",", ":"), ensure_ascii=False)
    out = [
        ("search_path", search_path),
        ("role", auth.role),
        ("request.jwt.claims", auth.claims_json),
        ("request.method", api.method),
        ("request.path", path),
        ("request.headers", headers_json),
        ("request.cookies", cookies),
    ]
    if api.preferences.timezone is not None:
        out.append(("timezone", api.preferences.timezone))
    return tuple(out)


def _applied(prefs: Preferences) -> str | None:
    """What a read echoes in Preference-Applied: count, tx, handling, timezone."""
    return preference_applied(
        attrs.evolve(prefs, return_=None, resolution=None, missing=None, max_affected=None)
    )


def plan_request(
    api: ApiRequest,
    snapshot: SchemaSnapshot,
    auth: RequestAuth,
    *,
    limits: RestLimits,
    path: str,
    headers_json: str,
) -> Plan:
    """Resolve `api` against `snapshot` for the caller `auth`.

    `path` is the request path inside `/rest/v1` (`/todos`), `headers_json` the request headers
    as a JSON object text (the `request.headers` setting).

    Raises:
        RestError: unknown table (PGRST205), column (42703), relationship (PGRST200/201), embed
            (PGRST108), or a request this version does not plan yet (PGRST127).
    """
    if api.action is not Action.READ or api.target.kind is not TargetKind.RELATION:
        raise NotImplementedFeature(
            details=f"{api.method} requests on this resource are not implemented yet "
            "(only reads of tables and views)"
        )
    if api.media_type.kind not in _READ_MEDIA:
        raise NotImplementedFeature(
            details=f"the media type {api.media_type.kind.value} is not implemented yet"
        )
    schema, name = api.target.schema, api.target.name
    assert name is not None
    relation = snapshot.find_relation(schema, name)
    if relation is None:
        similar = snapshot.similar_relations(schema, name)
        hint = f"Perhaps you meant the table '{schema}.{similar[0]}'" if similar else None
        raise TableNotFound.in_schema(schema, name, hint)
    counted = api.preferences.count is not None
    statement = read_statement(
        snapshot,
        relation,
        api.query,
        offset=api.range.offset,
        limit=api.range.limit,
        count=counted,
        media=api.media_type.kind,
        stripped=api.media_type.kind is MediaKind.ARRAY_STRIPPED or api.media_type.nulls_stripped,
        max_depth=limits.max_embed_depth,
    )
    return Plan(
        transaction=Transaction(
            settings=_settings(api, auth, path, headers_json),
            statements=(statement,),
            read_only=True,
            rollback=api.preferences.transaction is PreferTransaction.ROLLBACK,
        ),
        media_type=api.media_type,
        head=api.head,
        offset=api.range.offset,
        counted=counted,
        anonymous=auth.role == "anon",
        profile=api.target.schema if api.negotiated_by_profile else None,
        preference_applied=_applied(api.preferences),
    )
