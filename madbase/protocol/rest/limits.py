"""`RestLimits`: the `/rest/v1` settings the request stages read (one frozen slice of the config)."""

from __future__ import annotations

from typing import final

import attrs

__all__ = ["RestLimits"]

# Parsers recurse once per nesting level; Python's default recursion limit is 1000 frames, so a
# limit above this could turn a deep tree into RecursionError instead of a clean 400.
_MAX_NESTING = 200


def _nesting(instance: RestLimits, attribute: attrs.Attribute[int], value: int) -> None:
    if not 1 <= value <= _MAX_NESTING:
        raise ValueError(f"RestLimits.{attribute.name} must be in 1..{_MAX_NESTING}, got {value}")


@final
@attrs.frozen(kw_only=True)
class RestLimits:
    """Grammar limits and the PostgREST settings that change how a request is read."""

    # PostgREST has no limit and recurses; 32 levels of and/or is far beyond any hand-written or
    # client-built filter (postgrest-js passes `.or()` strings through verbatim) yet bounded.
    max_logic_depth: int = attrs.field(default=32, validator=_nesting)
    # Nested embeds: each level is a lateral join; 32 is far past any real schema's depth.
    max_embed_depth: int = attrs.field(default=32, validator=_nesting)
    # PostgREST `db-aggregates-enabled`, default false (aggregates can be costly): off → PGRST123.
    aggregates_enabled: bool = False
    # PostgREST `db-tx-end`: `Prefer: tx=...` is honoured only with a `*-allow-override` setting,
    # default `commit` (no override).
    tx_allow_override: bool = False
    # PostgREST `db-plan-enabled`, default false: the `application/vnd.pgrst.plan` media type.
    plan_enabled: bool = False
    # PostgREST `db-max-rows`, default none: a read returns at most this many rows, and
    # `Prefer: count=estimated` counts exactly only up to it.
    max_rows: int | None = None
    # PostgREST `openapi-mode`, default `follow-privileges` (enabled); `disabled` → PGRST126.
    openapi_enabled: bool = True
    # `openapi-mode = ignore-privileges`: the document lists every relation and function of the
    # schema, not only those the caller's role may use.
    openapi_ignore_privileges: bool = False
