"""Request headers PostgREST reads: `Prefer`, `Range`, `Accept`, `Content-Type` and the profiles.

`Prefer` (RFC 7240, PostgREST `Preferences.hs`, spec/rest.md §7): values from every `Prefer`
header, split on `,`, trimmed; the first value of each kind wins; anything unknown is collected
in `invalid` (an error only with `handling=strict`, PGRST122). `params=single-object` was removed
in PostgREST 13 and is unknown here too.

`Accept` (wai's `parseHttpAccept`, PostgREST `MediaType.hs`, spec/rest.md §8): blanks removed,
split on `,`, ordered by q then by specificity (parameters minus `*`s), stable. Unlike wai, q=0
ranges are dropped (RFC 9110 §12.4.2: not acceptable), and an empty header means `*/*`.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from typing import Final, final

import attrs

from madbase.protocol.rest.errors import MediaTypeError, UnacceptableSchema

__all__ = [
    "MediaKind",
    "MediaType",
    "PlanFormat",
    "PlanOption",
    "PreferCount",
    "PreferHandling",
    "PreferMissing",
    "PreferResolution",
    "PreferReturn",
    "PreferTransaction",
    "Preferences",
    "RangeHeader",
    "negotiate",
    "parse_accept",
    "parse_media_type",
    "parse_prefer",
    "parse_range",
    "preference_applied",
    "render_prefer",
    "render_range",
    "select_schema",
    "to_mime",
]


class PreferReturn(enum.StrEnum):
    """`return=`: the mutation's response body."""

    MINIMAL = "minimal"
    HEADERS_ONLY = "headers-only"
    REPRESENTATION = "representation"


class PreferCount(enum.StrEnum):
    """`count=`: how to fill the total of Content-Range."""

    EXACT = "exact"
    PLANNED = "planned"
    ESTIMATED = "estimated"


class PreferResolution(enum.StrEnum):
    """`resolution=`: upsert behaviour on conflict."""

    MERGE_DUPLICATES = "merge-duplicates"
    IGNORE_DUPLICATES = "ignore-duplicates"


class PreferMissing(enum.StrEnum):
    """`missing=`: absent keys become DEFAULT or NULL."""

    DEFAULT = "default"
    NULL = "null"


class PreferHandling(enum.StrEnum):
    """`handling=`: whether unknown preferences are an error."""

    STRICT = "strict"
    LENIENT = "lenient"


class PreferTransaction(enum.StrEnum):
    """`tx=`: end of the transaction."""

    COMMIT = "commit"
    ROLLBACK = "rollback"


_PREF_KINDS: Final = (
    ("return", PreferReturn),
    ("count", PreferCount),
    ("resolution", PreferResolution),
    ("missing", PreferMissing),
    ("handling", PreferHandling),
    ("tx", PreferTransaction),
)
_KNOWN_PREFS: Final = frozenset(
    f"{name}={member.value}" for name, kind in _PREF_KINDS for member in kind
)
_INT64_MAX: Final = 2**63 - 1


@final
@attrs.frozen(kw_only=True)
class Preferences:
    """The understood `Prefer` values; None when absent. `invalid` keeps unknown ones in order."""

    return_: PreferReturn | None = None
    count: PreferCount | None = None
    resolution: PreferResolution | None = None
    missing: PreferMissing | None = None
    handling: PreferHandling | None = None
    transaction: PreferTransaction | None = None
    timezone: str | None = None
    max_affected: int | None = None
    invalid: tuple[str, ...] = ()


def parse_prefer(values: Iterable[str], *, tx_allow_override: bool = False) -> Preferences:
    """Read every `Prefer` header value (in order) into `Preferences`.

    `tx=` is kept only when `tx_allow_override` (PostgREST's `db-tx-end=*-allow-override`); it is
    never invalid. `max-affected=` that is not an integer is ignored, not invalid (as PostgREST).

    >>> p = parse_prefer(["resolution=merge-duplicates, count=exact", "return=representation"])
    >>> p.resolution, p.count, p.return_
    (<PreferResolution.MERGE_DUPLICATES: 'merge-duplicates'>, <PreferCount.EXACT: 'exact'>, <PreferReturn.REPRESENTATION: 'representation'>)
    >>> parse_prefer(["handling=strict,max-affected=5,params=single-object"]).invalid
    ('params=single-object',)
    """
    found: dict[str, str] = {}
    timezone: str | None = None
    max_affected: int | None = None
    seen_max_affected = False
    invalid: list[str] = []
    for header in values:
        for raw in header.split(","):
            pref = raw.strip()
            if not pref:
                continue  # `a, ,b` or a trailing comma: nothing asked (PostgREST: invalid "")
            name, _, value = pref.partition("=")
            if pref in _KNOWN_PREFS:
                found.setdefault(name, value)
            elif pref.startswith("timezone="):
                if timezone is None:
                    timezone = pref[len("timezone=") :]
            elif pref.startswith("max-affected="):
                if not seen_max_affected:
                    seen_max_affected = True
                    max_affected = _int64(pref[len("max-affected=") :])
            else:
                invalid.append(pref)
    transaction = found.get("tx") if tx_allow_override else None
    return Preferences(
        return_=PreferReturn(found["return"]) if "return" in found else None,
        count=PreferCount(found["count"]) if "count" in found else None,
        resolution=PreferResolution(found["resolution"]) if "resolution" in found else None,
        missing=PreferMissing(found["missing"]) if "missing" in found else None,
        handling=PreferHandling(found["handling"]) if "handling" in found else None,
        transaction=None if transaction is None else PreferTransaction(transaction),
        timezone=timezone,
        max_affected=max_affected,
        invalid=tuple(invalid),
    )


def _int64(text: str) -> int | None:
    digits = text[1:] if text[:1] == "-" else text
    if not digits or not digits.isascii() or not digits.isdigit():
        return None
    number = int(text)
    return number if -_INT64_MAX - 1 <= number <= _INT64_MAX else None


def _pref_values(prefs: Preferences, *, applied: bool) -> list[str]:
    out: list[str] = []
    ordered = (
        ("resolution", prefs.resolution),
        ("missing", prefs.missing),
        ("return", prefs.return_),
        ("count", prefs.count),
        ("tx", prefs.transaction),
        ("handling", prefs.handling),
    )
    out.extend(f"{name}={value.value}" for name, value in ordered if value is not None)
    if prefs.timezone is not None:
        out.append(f"timezone={prefs.timezone}")
    if prefs.max_affected is not None and (not applied or prefs.handling is PreferHandling.STRICT):
        out.append(f"max-affected={prefs.max_affected}")
    if not applied:
        out.extend(prefs.invalid)
    return out


def render_prefer(prefs: Preferences) -> str:
    """A `Prefer` value `parse_prefer` reads back (joined by `", "` as postgrest-js does)."""
    return ", ".join(_pref_values(prefs, applied=False))


def preference_applied(prefs: Preferences) -> str | None:
    """The `Preference-Applied` value PostgREST echoes, or None when nothing applies.

    Whether resolution applies depends on the table (PK or on_conflict): the planner drops it from
    `prefs` first when it does not.
    """
    values = _pref_values(prefs, applied=True)
    return ", ".join(values) if values else None


# --- Range ---------------------------------------------------------------------------------------

_RANGE: Final = re.compile(r"([0-9]+)-([0-9]*)")


@final
@attrs.frozen(kw_only=True)
class RangeHeader:
    """`Range: first-last` (inclusive) or `first-` (`last` None); `first > last` is possible."""

    first: int
    last: int | None = None


def parse_range(value: str | None) -> RangeHeader | None:
    """Read a `Range` header; None when absent or not of the `N-[M]` form (PostgREST ignores those).

    The unit (`Range-Unit`) is not checked, as PostgREST does not.

    >>> parse_range("0-9"), parse_range("10-"), parse_range("bytes=0-1")
    (RangeHeader(first=0, last=9), RangeHeader(first=10, last=None), None)
    """
    if value is None:
        return None
    match = _RANGE.fullmatch(value.strip())
    if match is None:
        return None
    last = match.group(2)
    return RangeHeader(first=int(match.group(1)), last=int(last) if last else None)


def render_range(value: RangeHeader) -> str:
    """The `Range` header value for `value`."""
    return f"{value.first}-" + ("" if value.last is None else str(value.last))


# --- media types ---------------------------------------------------------------------------------


class MediaKind(enum.StrEnum):
    """The media types PostgREST knows (`MediaType.hs`)."""

    JSON = "application/json"
    GEOJSON = "application/geo+json"
    CSV = "text/csv"
    TEXT = "text/plain"
    XML = "text/xml"
    OPENAPI = "application/openapi+json"
    URLENCODED = "application/x-www-form-urlencoded"
    OCTET_STREAM = "application/octet-stream"
    ANY = "*/*"
    ARRAY_STRIPPED = "application/vnd.pgrst.array+json;nulls=stripped"
    OBJECT = "application/vnd.pgrst.object+json"
    PLAN = "application/vnd.pgrst.plan"
    OTHER = "other"


class PlanFormat(enum.StrEnum):
    """`application/vnd.pgrst.plan+text` or `+json`."""

    TEXT = "text"
    JSON = "json"


class PlanOption(enum.StrEnum):
    """EXPLAIN options in the plan media type's `options=` (in PostgREST's order)."""

    ANALYZE = "analyze"
    VERBOSE = "verbose"
    SETTINGS = "settings"
    BUFFERS = "buffers"
    WAL = "wal"


@final
@attrs.frozen(kw_only=True)
class MediaType:
    """A media type: `kind`, plus `nulls_stripped` (OBJECT), `other` (OTHER: the text as sent),
    and for PLAN the `plan_for` type, `plan_format` and `plan_options`."""

    kind: MediaKind
    nulls_stripped: bool = False
    other: str = ""
    plan_for: MediaType | None = None
    plan_format: PlanFormat = PlanFormat.TEXT
    plan_options: tuple[PlanOption, ...] = ()


_SIMPLE: Final = {
    ("application", "json"): MediaKind.JSON,
    ("application", "geo+json"): MediaKind.GEOJSON,
    ("text", "csv"): MediaKind.CSV,
    ("text", "plain"): MediaKind.TEXT,
    ("text", "xml"): MediaKind.XML,
    ("application", "openapi+json"): MediaKind.OPENAPI,
    ("application", "x-www-form-urlencoded"): MediaKind.URLENCODED,
    ("application", "octet-stream"): MediaKind.OCTET_STREAM,
    ("*", "*"): MediaKind.ANY,
}
_PLAN_FORMATS: Final = {
    "vnd.pgrst.plan": PlanFormat.TEXT,
    "vnd.pgrst.plan+text": PlanFormat.TEXT,
    "vnd.pgrst.plan+json": PlanFormat.JSON,
}
_TYPE: Final = re.compile(r"([\w.*]+)/([\w.*+-]+)")
_PARAM: Final = re.compile(r'\s*;\s*([\w-]+)\s*=\s*(?:"([^"]*)"|([\w|-]+))')


def _tokenize(text: str) -> tuple[str, str, dict[str, str]]:
    match = _TYPE.match(text)
    if match is None:
        return text, "", {}
    params: dict[str, str] = {}
    pos = match.end()
    while (param := _PARAM.match(text, pos)) is not None:
        params.setdefault(param.group(1).lower(), param.group(2) or param.group(3) or "")
        pos = param.end()
    return match.group(1), match.group(2), params


def parse_media_type(text: str, *, _nested: bool = False) -> MediaType:
    """Decode one media type (case-insensitive type; unknown ones are OTHER).

    >>> parse_media_type("application/vnd.pgrst.object+json;nulls=stripped")
    MediaType(kind=<MediaKind.OBJECT: 'application/vnd.pgrst.object+json'>, nulls_stripped=True, other='', plan_for=None, plan_format=<PlanFormat.TEXT: 'text'>, plan_options=())
    >>> parse_media_type('application/vnd.pgrst.plan+json; for="text/csv"; options=analyze|wal').plan_options
    (<PlanOption.ANALYZE: 'analyze'>, <PlanOption.WAL: 'wal'>)
    """
    main, sub, params = _tokenize(text)
    main, sub = main.lower(), sub.lower()
    kind = _SIMPLE.get((main, sub))
    if kind is not None:
        return MediaType(kind=kind)
    stripped = params.get("nulls") == "stripped"
    if main == "application":
        if sub in ("vnd.pgrst.object+json", "vnd.pgrst.object"):
            return MediaType(kind=MediaKind.OBJECT, nulls_stripped=stripped)
        if sub in ("vnd.pgrst.array+json", "vnd.pgrst.array"):
            return MediaType(kind=MediaKind.ARRAY_STRIPPED if stripped else MediaKind.JSON)
        if sub in _PLAN_FORMATS and not _nested:
            options = params.get("options", "").split("|")
            return MediaType(
                kind=MediaKind.PLAN,
                plan_for=parse_media_type(params.get("for", "application/json"), _nested=True),
                plan_format=_PLAN_FORMATS[sub],
                plan_options=tuple(opt for opt in PlanOption if opt.value in options),
            )
    return MediaType(kind=MediaKind.OTHER, other=text)


def to_mime(media: MediaType) -> str:
    """The media type as PostgREST writes it (Content-Type without charset, error messages).

    >>> to_mime(parse_media_type("application/vnd.pgrst.plan; options=analyze"))
    'application/vnd.pgrst.plan+text; for="application/json"; options=analyze'
    """
    match media.kind:
        case MediaKind.OTHER:
            return media.other
        case MediaKind.OBJECT:
            return media.kind.value + (";nulls=stripped" if media.nulls_stripped else "")
        case MediaKind.PLAN:
            assert media.plan_for is not None
            out = f'{media.kind.value}+{media.plan_format.value}; for="{to_mime(media.plan_for)}"'
            if media.plan_options:
                out += "; options=" + "|".join(opt.value for opt in media.plan_options)
            return out
        case _:
            return media.kind.value


_Q: Final = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def parse_accept(value: str | None) -> tuple[MediaType, ...]:
    """The media types an `Accept` header asks for, most preferred first; absent means `*/*`.

    >>> [to_mime(m) for m in parse_accept("text/csv;q=0.5, application/json")]
    ['application/json', 'text/csv']
    """
    if value is None or not value.strip():
        return (MediaType(kind=MediaKind.ANY),)
    ranked: list[tuple[float, int, str]] = []
    for item in value.replace(" ", "").split(","):
        text, sep, rest = item.partition(";q=")
        q = 1.0
        if sep:
            number = _Q.match(rest.split(";", 1)[0])
            q = float(number.group()) if number else 1.0
        if q <= 0:
            continue
        ranked.append((q, text.count(";") - text.count("*"), text))
    ranked.sort(key=lambda entry: (entry[0], entry[1]), reverse=True)
    return tuple(parse_media_type(text) for _, _, text in ranked)


def negotiate(accepts: tuple[MediaType, ...], offered: frozenset[MediaKind]) -> MediaType:
    """The first accepted media type among `offered` (`*/*` → the first offered of JSON/OpenAPI).

    Raises:
        MediaTypeError: none is offered (406 PGRST107, listing what the client accepts).

    >>> negotiate(parse_accept("text/html, */*"), frozenset({MediaKind.JSON})).kind
    <MediaKind.JSON: 'application/json'>
    """
    for media in accepts:
        if media.kind is MediaKind.ANY:
            default = MediaKind.OPENAPI if MediaKind.OPENAPI in offered else MediaKind.JSON
            return MediaType(kind=default)
        if media.kind in offered:
            return media
    raise MediaTypeError.for_types(tuple(to_mime(media) for media in accepts))


# --- profiles ------------------------------------------------------------------------------------

_CONTENT_PROFILE_METHODS: Final = frozenset({"POST", "PATCH", "PUT", "DELETE"})


def select_schema(
    method: str,
    accept_profile: str | None,
    content_profile: str | None,
    exposed: tuple[str, ...],
) -> tuple[str, bool]:
    """The schema a request targets, and whether a profile header chose it (§9).

    POST, PATCH, PUT and DELETE read `Content-Profile`, other methods `Accept-Profile`; without
    one, the first exposed schema (negotiated when several are exposed, as PostgREST reports it).

    Raises:
        UnacceptableSchema: the profile names a schema not exposed (406 PGRST106).

    >>> select_schema("GET", "api", None, ("public", "api"))
    ('api', True)
    """
    assert exposed, "at least one schema is exposed"
    profile = content_profile if method in _CONTENT_PROFILE_METHODS else accept_profile
    if profile is None:
        return exposed[0], len(exposed) != 1
    if profile not in exposed:
        raise UnacceptableSchema.for_schema(profile, exposed)
    return profile, True
