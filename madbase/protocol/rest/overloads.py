"""Which overload of a function a `/rpc/<name>` call means (PostgREST `Plan.hs` `findProc`).

Overloads are told apart by argument names only. The names the client sends (the keys of the
JSON body on POST, the query parameters that are not filters on GET/HEAD) must cover every
argument without a default and name no other; exactly one overload may match (none: 404
PGRST202, several: 300 PGRST203). A POST whose body matches none falls back to an overload with
one unnamed argument that takes the whole body: `json`/`jsonb` for JSON, `text` for
`text/plain`, `xml` for `text/xml`, `bytea` for `application/octet-stream`. Functions that
return `trigger`, and functions with unnamed arguments other than that single one, cannot be
called (PostgREST leaves them out of its schema cache). `Prefer: params=single-object`
(PostgREST 12; removed in 13, so only honoured when `handling` is not strict) passes the whole
body to a function with one `json`/`jsonb` argument, whatever its name.
"""

from __future__ import annotations

import difflib
from types import MappingProxyType
from typing import Final

from madbase.protocol.rest.errors import AmbiguousFunction, FunctionNotFound
from madbase.protocol.rest.headers import MediaKind
from madbase.protocol.rest.schema import Function, SchemaSnapshot

__all__ = ["RAW_BODY_KINDS", "find_function"]

# The single unnamed argument a POST body of each content type can fill (PostgREST `findProc`).
_RAW_BODY_TYPES: Final = MappingProxyType(
    {
        MediaKind.JSON: frozenset({"json", "jsonb"}),
        MediaKind.TEXT: frozenset({"text"}),
        MediaKind.XML: frozenset({"xml"}),
        MediaKind.OCTET_STREAM: frozenset({"bytea"}),
    }
)
# Content types whose whole body is the one argument (never named arguments).
RAW_BODY_KINDS: Final = frozenset({MediaKind.TEXT, MediaKind.XML, MediaKind.OCTET_STREAM})
_CALLABLE_UNNAMED: Final = frozenset({"bytea", "json", "jsonb", "text", "xml"})


def _callable(fn: Function) -> bool:
    """False for what PostgREST's schema cache leaves out: triggers, most unnamed arguments."""
    if fn.return_type in ("trigger", "event_trigger"):
        return False
    unnamed = [a for a in fn.input_args if not a.name]
    return not unnamed or (len(unnamed) == 1 and unnamed[0].type in _CALLABLE_UNNAMED)


def _matches(fn: Function, keys: frozenset[str], *, post: bool, content: MediaKind) -> bool:
    params = fn.input_args
    if not params:
        return not keys and not (post and content in RAW_BODY_KINDS)
    required = {a.name for a in params if not a.has_default}
    optional = {a.name for a in params if a.has_default}
    return required <= keys and keys - optional == required


def _single_unnamed(fn: Function, *, post: bool, content: MediaKind) -> bool:
    params = fn.input_args
    return (
        post
        and len(params) == 1
        and not params[0].name
        and params[0].type in _RAW_BODY_TYPES.get(content, frozenset())
    )


def _signature(fn: Function) -> str:
    args = ", ".join(f"{a.name} => {a.type}" for a in fn.input_args)
    return f"{fn.name}({args})"


def _not_found(
    snapshot: SchemaSnapshot,
    schema: str,
    name: str,
    keys: frozenset[str],
    overloads: tuple[Function, ...],
    *,
    post: bool,
    content: MediaKind,
) -> FunctionNotFound:
    """PGRST202 with PostgREST's message, details and hint (`Error.hs` `NoRpc`)."""
    func = f"{schema}.{name}"
    names = sorted(keys)
    listed = f"({', '.join(names)})" if names else " without parameters"
    raw_only = post and content in RAW_BODY_KINDS
    message = f"Could not find the function {func}{'' if raw_only else listed} in the schema cache"
    with_params = (
        f" with parameter{'s' if len(names) > 1 else ''} {', '.join(names)}"
        if names
        else " without parameters"
    )
    searched = {
        MediaKind.TEXT: " with a single unnamed text parameter",
        MediaKind.XML: " with a single unnamed xml parameter",
        MediaKind.OCTET_STREAM: " with a single unnamed bytea parameter",
        MediaKind.JSON: with_params + " or with a single unnamed json/jsonb parameter",
    }.get(content, with_params)
    details = (
        f"Searched for the function {func}{searched if post else with_params}, "
        "but no matches were found in the schema cache."
    )
    hint = None
    if not raw_only:
        if overloads:
            sets = sorted({_param_list(fn) for fn in overloads})
            close = difflib.get_close_matches(f"({', '.join(names)})", sets, n=1, cutoff=0.33)
            if close:
                hint = f"Perhaps you meant to call the function {func}{close[0]}"
        else:
            similar = snapshot.similar_functions(schema, name)
            if similar:
                hint = f"Perhaps you meant to call the function {schema}.{similar[0]}"
    return FunctionNotFound(message, details=details, hint=hint)


def _param_list(fn: Function) -> str:
    return "(" + ", ".join(sorted(a.name for a in fn.input_args)) + ")"


def find_function(
    snapshot: SchemaSnapshot,
    schema: str,
    name: str,
    keys: frozenset[str],
    *,
    post: bool,
    content: MediaKind = MediaKind.JSON,
    single_object: bool = False,
) -> Function:
    """The overload of `schema.name` that argument names `keys` call (PostgREST `findProc`).

    `post` is True for POST, whose body may fill a single unnamed argument of the type
    `content` (the request's Content-Type) allows.

    Raises:
        FunctionNotFound: no overload matches (PGRST202, with PostgREST's hint).
        AmbiguousFunction: several do (PGRST203).
    """
    overloads = tuple(fn for fn in snapshot.find_functions(schema, name) if _callable(fn))
    matched: list[Function] = []
    fallback: list[Function] = []
    for fn in overloads:
        params = fn.input_args
        if single_object:
            if len(params) == 1 and params[0].type in ("json", "jsonb"):
                matched.append(fn)
        elif _matches(fn, keys, post=post, content=content):
            matched.append(fn)
        elif _single_unnamed(fn, post=post, content=content):
            fallback.append(fn)
    found = matched or fallback
    if not found:
        raise _not_found(snapshot, schema, name, keys, overloads, post=post, content=content)
    if len(found) > 1:
        raise AmbiguousFunction(
            "Could not choose the best candidate function between: "
            + ", ".join(_signature(fn) for fn in found),
            hint="Try renaming the parameters or the function itself in the database so "
            "function overloading can be resolved",
        )
    return found[0]
