"""`plan_request`: an `ApiRequest` resolved against the schema snapshot into a transaction to run.

As PostgREST's `Plan.hs` + `Query.hs`: the target must exist (PGRST205 with a did-you-mean hint),
columns and embeds are checked (42703, PGRST200, PGRST201, PGRST108), and the result is one
`Transaction`: the request's settings in PostgREST's order (search_path, role, claims, method,
path, headers, cookies, timezone), then one statement that builds the response body in Postgres
(see `build`). GET/HEAD run READ ONLY; POST/PATCH/PUT/DELETE run READ WRITE with the statement
of `mutate`, whose row is (total, affected rows, body, primary key of the first row). Function
calls (`/rpc/f`) are planned by `rpc`: READ ONLY on GET/HEAD and for STABLE/IMMUTABLE functions.

`count=planned` and `count=estimated` add an EXPLAIN of the filtered rows (see `explain`); the
plan media type runs EXPLAIN of the statement instead of the statement.
"""

from __future__ import annotations

from typing import Final, final

import attrs

from madbase.protocol.identity import Principal, cookies_json, rls_settings
from madbase.protocol.rest.build import read_statement
from madbase.protocol.rest.errors import NotImplementedFeature, TableNotFound
from madbase.protocol.rest.explain import explain_statement
from madbase.protocol.rest.guard import GUARD, guard_settings
from madbase.protocol.rest.headers import (
    MediaKind,
    MediaType,
    PreferCount,
    Preferences,
    PreferHandling,
    PreferMissing,
    PreferResolution,
    PreferReturn,
    PreferTransaction,
    preference_applied,
)
from madbase.protocol.rest.limits import RestLimits
from madbase.protocol.rest.mutate import (
    Output,
    delete_statement,
    insert_statement,
    location_keys,
    put_keys,
    update_statement,
)
from madbase.protocol.rest.openapi import OpenApiContext, openapi_statement
from madbase.protocol.rest.overloads import find_function
from madbase.protocol.rest.payload import Payload
from madbase.protocol.rest.request import Action, ApiRequest, TargetKind
from madbase.protocol.rest.rpc import call_statement
from madbase.protocol.rest.schema import Relation, SchemaSnapshot, Volatility
from madbase.protocol.sql import Statement, Transaction

__all__ = ["Plan", "plan_request", "request_settings", "write_settings"]

# PostgREST's default `db-extra-search-path`.
_EXTRA_SEARCH_PATH: Final = ("public",)
_READ_MEDIA: Final = frozenset(
    {MediaKind.JSON, MediaKind.OBJECT, MediaKind.ARRAY_STRIPPED, MediaKind.CSV}
)
_WRITES: Final = frozenset(
    {Action.CREATE, Action.UPSERT, Action.SINGLE_UPSERT, Action.UPDATE, Action.DELETE}
)


@final
@attrs.frozen(kw_only=True)
class Plan:
    """What to run and what `respond` needs to answer.

    `transaction` holds one statement returning one row `(total, page_rows, body)`. `offset` is
    the top-level range's first row (for Content-Range); `counted` says whether `total` was
    asked for; `media_type` the negotiated response type; `head` drops the body; `anonymous` makes
    42501 a 401; `profile` is the schema to echo in `Content-Profile` (None: no profile header).
    `returns_void` is set for a call of a `void` function (204).

    For writes, `action` is the request's action (READ for reads), `return_` its `return=`
    preference, `location` the path (`/todos`) a `Location` header starts with and `primary_key`
    the key columns it names; `upsert_merge` says a POST upsert merges duplicates (answered 200
    when it inserted nothing). `result` is the index of the statement whose row is the answer
    (a write's checks, or the EXPLAIN of a planned count, may follow it). `explain` answers the
    EXPLAIN output (the plan media type); `count` is the `count=` preference and `max_rows`
    PostgREST's `db-max-rows`, which `count=estimated` compares with. `allow` is set for OPTIONS:
    the `Allow` header to answer with, no transaction to run.
    """

    transaction: Transaction
    media_type: MediaType
    head: bool = False
    offset: int = 0
    counted: bool = False
    anonymous: bool = False
    profile: str | None = None
    preference_applied: str | None = None
    returns_void: bool = False
    action: Action = Action.READ
    return_: PreferReturn = PreferReturn.MINIMAL
    location: str | None = None
    primary_key: tuple[str, ...] = ()
    upsert_merge: bool = False
    result: int = -1
    openapi: OpenApiContext | None = None
    explain: bool = False
    count: PreferCount | None = None
    max_rows: int | None = None
    allow: str | None = None


def request_settings(
    api: ApiRequest, auth: Principal, path: str, headers_json: str
) -> tuple[tuple[str, str], ...]:
    """The transaction settings PostgREST makes for a request, in its order.

    The identity's (`madbase.protocol.identity.rls_settings`) between REST's own: the schema's
    search path first, the preferred time zone last.
    """
    search_path = ", ".join(
        '"' + s.replace('"', '""') + '"' for s in (api.target.schema, *_EXTRA_SEARCH_PATH)
    )
    out = (
        ("search_path", search_path),
        *rls_settings(
            auth,
            method=api.method,
            path=path,
            headers=headers_json,
            cookies=cookies_json(api.cookies),
        ),
    )
    if api.preferences.timezone is not None:
        return (*out, ("timezone", api.preferences.timezone))
    return out


def _applied(prefs: Preferences) -> str | None:
    """What a read echoes in Preference-Applied: count, tx, handling, timezone."""
    return preference_applied(
        attrs.evolve(prefs, return_=None, resolution=None, missing=None, max_affected=None)
    )


def _call_plan(
    api: ApiRequest,
    snapshot: SchemaSnapshot,
    auth: Principal,
    limits: RestLimits,
    path: str,
    headers_json: str,
) -> Plan:
    call = call_statement(api, snapshot, max_depth=limits.max_embed_depth)
    return Plan(
        transaction=Transaction(
            settings=request_settings(api, auth, path, headers_json) + call.settings,
            statements=(call.statement,),
            read_only=call.read_only,
            rollback=api.preferences.transaction is PreferTransaction.ROLLBACK,
        ),
        media_type=api.media_type,
        head=api.head,
        offset=api.range.offset,
        counted=api.preferences.count is not None,
        anonymous=auth.role == "anon",
        profile=api.target.schema if api.negotiated_by_profile else None,
        # PostgREST echoes count, tx, handling, timezone and max-affected for calls.
        preference_applied=preference_applied(
            attrs.evolve(api.preferences, return_=None, resolution=None, missing=None)
        ),
        action=api.action,
        returns_void=call.returns_void,
    )


def plan_request(
    api: ApiRequest,
    snapshot: SchemaSnapshot,
    auth: Principal,
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
    if api.action is Action.INFO:
        return Plan(
            transaction=Transaction(), media_type=api.media_type, allow=_allow(api, snapshot)
        )
    if api.action is Action.SCHEMA:
        return _openapi_plan(api, snapshot, auth, limits, path, headers_json)
    writing = api.action in _WRITES
    if api.action in (Action.CALL, Action.CALL_READ):
        if api.media_type.kind not in _READ_MEDIA:
            raise NotImplementedFeature(
                details=f"the media type {api.media_type.kind.value} is not implemented yet"
            )
        return _call_plan(api, snapshot, auth, limits, path, headers_json)
    if (
        not writing and api.action is not Action.READ
    ) or api.target.kind is not TargetKind.RELATION:
        raise NotImplementedFeature(
            details=f"{api.method} requests on this resource are not implemented yet "
            "(only reads and writes of tables and views)"
        )
    media = _inner_media(api)
    if media.kind not in _READ_MEDIA:
        raise NotImplementedFeature(
            details=f"the media type {media.kind.value} is not implemented yet"
        )
    schema, name = api.target.schema, api.target.name
    assert name is not None
    relation = snapshot.find_relation(schema, name)
    if relation is None:
        similar = snapshot.similar_relations(schema, name)
        hint = f"Perhaps you meant the table '{schema}.{similar[0]}'" if similar else None
        raise TableNotFound.in_schema(schema, name, hint)
    if writing:
        return _write_plan(api, snapshot, relation, auth, limits, path, headers_json)
    count = api.preferences.count
    explaining = api.media_type.kind is MediaKind.PLAN
    limit = api.range.limit
    if limits.max_rows is not None:  # PostgREST's restrictRange
        limit = limits.max_rows if limit is None else min(limit, limits.max_rows)
    estimated = count is PreferCount.ESTIMATED
    statement, planned = read_statement(
        snapshot,
        relation,
        api.query,
        offset=api.range.offset,
        limit=limit,
        count=count in (PreferCount.EXACT, PreferCount.ESTIMATED),
        media=media.kind,
        stripped=media.kind is MediaKind.ARRAY_STRIPPED or media.nulls_stripped,
        max_depth=limits.max_embed_depth,
        count_limit=limits.max_rows + 1 if estimated and limits.max_rows is not None else None,
        planned=count in (PreferCount.PLANNED, PreferCount.ESTIMATED) and not explaining,
    )
    if explaining:
        statements: tuple[Statement, ...] = (explain_statement(statement, api.media_type),)
    else:
        statements = (statement,) if planned is None else (statement, planned)
    counted = count is not None
    return Plan(
        transaction=Transaction(
            settings=request_settings(api, auth, path, headers_json),
            statements=statements,
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
        result=-2 if planned is not None else -1,
        explain=explaining,
        count=None if explaining else count,
        max_rows=limits.max_rows,
    )


def _allow(api: ApiRequest, snapshot: SchemaSnapshot) -> str:
    """The methods OPTIONS lists (PostgREST `Response.hs`): what the object can do, not grants."""
    schema, name = api.target.schema, api.target.name
    match api.target.kind:
        case TargetKind.SCHEMA:
            return "OPTIONS,GET,HEAD"
        case TargetKind.ROUTINE:
            assert name is not None
            fn = find_function(snapshot, schema, name, frozenset(), post=False)
            return (
                "OPTIONS,POST" if fn.volatility is Volatility.VOLATILE else "OPTIONS,GET,HEAD,POST"
            )
    assert name is not None
    relation = snapshot.find_relation(schema, name)
    if relation is None:
        similar = snapshot.similar_relations(schema, name)
        hint = f"Perhaps you meant the table '{schema}.{similar[0]}'" if similar else None
        raise TableNotFound.in_schema(schema, name, hint)
    methods = ["OPTIONS", "GET", "HEAD"]
    if relation.insertable:
        methods.append("POST")
    if relation.insertable and relation.updatable and relation.primary_key:
        methods.append("PUT")
    if relation.updatable:
        methods.append("PATCH")
    if relation.deletable:
        methods.append("DELETE")
    return ",".join(methods)


def _inner_media(api: ApiRequest) -> MediaType:
    """The media type the statement renders: the plan media type's `for`, else the negotiated."""
    media = api.media_type
    if media.kind is MediaKind.PLAN:
        assert media.plan_for is not None
        return media.plan_for
    return media


def _max_affected(api: ApiRequest) -> int | None:
    """The `max-affected` limit PostgREST enforces: with handling=strict, on PATCH and DELETE."""
    prefs = api.preferences
    if prefs.handling is not PreferHandling.STRICT or api.action not in (
        Action.UPDATE,
        Action.DELETE,
    ):
        return None
    return prefs.max_affected


def _openapi_plan(
    api: ApiRequest,
    snapshot: SchemaSnapshot,
    auth: Principal,
    limits: RestLimits,
    path: str,
    headers_json: str,
) -> Plan:
    """`GET /`: ask Postgres, as the caller, what it may see; `respond` renders the document."""
    header = dict(api.headers)
    return Plan(
        transaction=Transaction(
            settings=request_settings(api, auth, path, headers_json),
            statements=(openapi_statement(api.target.schema),),
            read_only=True,
        ),
        media_type=api.media_type,
        head=api.head,
        anonymous=auth.role == "anon",
        profile=api.target.schema if api.negotiated_by_profile else None,
        openapi=OpenApiContext.for_request(
            snapshot,
            api.target.schema,
            header.get("host"),
            header.get("x-forwarded-proto"),
            ignore_privileges=limits.openapi_ignore_privileges,
        ),
    )


def _write_statement(
    api: ApiRequest, snapshot: SchemaSnapshot, relation: Relation, limits: RestLimits
) -> tuple[Statement, bool]:
    """The statement for a write, and whether an upsert resolution applied."""
    prefs = api.preferences
    return_ = prefs.return_ or PreferReturn.MINIMAL
    merge = prefs.resolution is PreferResolution.MERGE_DUPLICATES
    media = _inner_media(api)
    out = Output(
        representation=return_ is PreferReturn.REPRESENTATION,
        count=prefs.count is not None,
        # `respond` gives only a POST a Location
        location=return_ is PreferReturn.HEADERS_ONLY
        and api.action in (Action.CREATE, Action.UPSERT),
        media=media.kind,
        stripped=media.kind is MediaKind.ARRAY_STRIPPED or media.nulls_stripped,
        max_depth=limits.max_embed_depth,
        guarded=bool(_checks(api)),
        upsert=api.action is Action.SINGLE_UPSERT or (api.action is Action.UPSERT and merge),
    )
    query = api.query
    content = api.content_type
    missing_default = prefs.missing is PreferMissing.DEFAULT
    match api.action:
        case Action.DELETE:
            return delete_statement(snapshot, relation, query, out), False
        case Action.UPDATE:
            payload = Payload.parse(
                api.body, relation, query.columns, array_ok=False, content_type=content
            )
            statement = update_statement(
                snapshot, relation, query, payload, out, missing_default=missing_default
            )
            return statement, False
        case Action.SINGLE_UPSERT:
            keys = put_keys(relation, query)
            payload = Payload.parse(api.body, relation, None, array_ok=False, content_type=content)
            statement = insert_statement(
                snapshot,
                relation,
                query,
                payload,
                out,
                conflict=relation.primary_key,
                merge=True,
                put=keys,
            )
            return statement, False
        case _:
            payload = Payload.parse(
                api.body, relation, query.columns, array_ok=True, content_type=content
            )
            conflict = query.on_conflict or relation.primary_key or None
            upsert = prefs.resolution is not None and conflict is not None
            statement = insert_statement(
                snapshot,
                relation,
                query,
                payload,
                out,
                conflict=conflict if upsert else None,
                merge=merge,
                missing_default=missing_default,
            )
            return statement, upsert


def _write_plan(
    api: ApiRequest,
    snapshot: SchemaSnapshot,
    relation: Relation,
    auth: Principal,
    limits: RestLimits,
    path: str,
    headers_json: str,
) -> Plan:
    prefs = api.preferences
    statement, upsert = _write_statement(api, snapshot, relation, limits)
    max_affected = _max_affected(api)
    applied = attrs.evolve(
        prefs,
        resolution=prefs.resolution if upsert else None,
        missing=(
            prefs.missing if api.action in (Action.CREATE, Action.UPSERT, Action.UPDATE) else None
        ),
        max_affected=max_affected,
    )
    checks = _checks(api)
    explaining = api.media_type.kind is MediaKind.PLAN
    if explaining:
        statements: tuple[Statement, ...] = (explain_statement(statement, api.media_type),)
    else:
        statements = (statement, GUARD) if checks else (statement,)
    return Plan(
        transaction=Transaction(
            settings=write_settings(api, auth, path, headers_json),
            statements=statements,
            read_only=False,
            rollback=prefs.transaction is PreferTransaction.ROLLBACK,
        ),
        media_type=api.media_type,
        counted=prefs.count is not None,
        anonymous=auth.role == "anon",
        profile=api.target.schema if api.negotiated_by_profile else None,
        preference_applied=preference_applied(applied),
        action=api.action,
        return_=prefs.return_ or PreferReturn.MINIMAL,
        location="/" + relation.name.name,
        primary_key=location_keys(relation),
        upsert_merge=upsert and prefs.resolution is PreferResolution.MERGE_DUPLICATES,
        result=-2 if checks and not explaining else -1,
        explain=explaining,
    )


def write_settings(
    api: ApiRequest, auth: Principal, path: str, headers_json: str
) -> tuple[tuple[str, str], ...]:
    """A write's transaction settings: the request's, then what the guard checks."""
    return request_settings(api, auth, path, headers_json) + _checks(api)


def _checks(api: ApiRequest) -> tuple[tuple[str, str], ...]:
    """What `guard.GUARD` checks after a write: PostgREST's singular (not for PUT, which has
    PGRST115) and max-affected checks; nothing when only EXPLAIN runs."""
    if api.media_type.kind is MediaKind.PLAN:
        return ()
    return guard_settings(
        singular=api.media_type.kind is MediaKind.OBJECT and api.action is not Action.SINGLE_UPSERT,
        max_affected=_max_affected(api),
    )
