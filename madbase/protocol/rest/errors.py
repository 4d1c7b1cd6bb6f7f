"""PostgREST's error codes and bodies, and the SQLSTATE → HTTP status table (spec/rest.md §13).

Exception tree (codes grouped by stage as PostgREST's `Error.hs` does: 0xx connection, 1xx
request, 2xx schema cache, 3xx JWT, X00 internal)::

    ProtocolError                      madbase.protocol.http: the peer sent something we refuse
      RestError                        rendered as {"code", "message", "details", "hint"}
        DatabaseConnectionError        PGRST000 503
        DatabaseClientError            PGRST001 503
        SchemaCacheNotLoaded           PGRST002 503
        PoolTimeout                    PGRST003 504
        QueryParamError                PGRST100 400  query string parse error
        InvalidRpcMethod               PGRST101 405
        InvalidBody                    PGRST102 400
        InvalidRange                   PGRST103 416
        InvalidFilters                 PGRST105 405  PUT filters are not exactly the PK
        UnacceptableSchema             PGRST106 406
        MediaTypeError                 PGRST107 406
        NotEmbedded                    PGRST108 400
        GucHeadersError                PGRST111 500
        GucStatusError                 PGRST112 500
        PutLimitNotAllowed             PGRST114 400
        PutMatchingPkError             PGRST115 400
        SingularityError               PGRST116 406
        UnsupportedMethod              PGRST117 405
        RelatedOrderNotToOne           PGRST118 400
        UnacceptableFilter             PGRST120 400
        RaiseParseError                PGRST121 500
        InvalidPreferences             PGRST122 400
        AggregatesNotAllowed           PGRST123 400
        MaxAffectedViolation           PGRST124 400
        InvalidResourcePath            PGRST125 404
        OpenApiDisabled                PGRST126 404
        NotImplementedFeature          PGRST127 400
        MaxAffectedRpcViolation        PGRST128 400
        NoRelationship                 PGRST200 400
        AmbiguousRelationship          PGRST201 300
        FunctionNotFound               PGRST202 404
        AmbiguousFunction              PGRST203 300
        ColumnNotFound                 PGRST204 400
        TableNotFound                  PGRST205 404
        JwtSecretMissing               PGRST300 500
        JwtDecodeError                 PGRST301 401
        JwtTokenRequired               PGRST302 401
        JwtClaimsError                 PGRST303 401
        InternalDatabaseError          PGRSTX00 500

Retired codes, never reused: PGRST104 (ParseRequestError), PGRST109 (LimitNoOrderError, later
SpreadNotToOne), PGRST110 (OffLimitsChangesError), PGRST113 (BinaryFieldError), PGRST119
(never assigned by PostgREST; kept free).

The gateway's refusals under `/rest/v1` (`render_rest_refusal`) and a refused bearer token
(`token_error`) get PostgREST's codes here; the gateway and the identity module know none.

Errors raised by the database are not exceptions here: `db_error_response` turns the
`(sqlstate, message, detail, hint)` the runtime reports into the response PostgREST would send.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar, Final

from madbase.protocol.http.errors import (
    AmbiguousCredentials,
    GatewayError,
    InvalidApiKey,
    MethodNotAllowed,
    MissingApiKey,
    NotAProxy,
    ProtocolError,
    RouteNotFound,
)
from madbase.protocol.http.messages import Headers, JsonValue, Request, Response, json_response
from madbase.protocol.identity import BearerError, InvalidClaims

__all__ = [
    "AggregatesNotAllowed",
    "AmbiguousFunction",
    "AmbiguousRelationship",
    "ColumnNotFound",
    "DatabaseClientError",
    "DatabaseConnectionError",
    "FunctionNotFound",
    "GucHeadersError",
    "GucStatusError",
    "InternalDatabaseError",
    "InvalidBody",
    "InvalidFilters",
    "InvalidPreferences",
    "InvalidRange",
    "InvalidResourcePath",
    "InvalidRpcMethod",
    "JwtClaimsError",
    "JwtDecodeError",
    "JwtSecretMissing",
    "JwtTokenRequired",
    "MaxAffectedRpcViolation",
    "MaxAffectedViolation",
    "MediaTypeError",
    "NoRelationship",
    "NotEmbedded",
    "NotImplementedFeature",
    "OpenApiDisabled",
    "PoolTimeout",
    "PutLimitNotAllowed",
    "PutMatchingPkError",
    "QueryParamError",
    "RaiseParseError",
    "RelatedOrderNotToOne",
    "RestError",
    "SchemaCacheNotLoaded",
    "SingularityError",
    "TableNotFound",
    "UnacceptableFilter",
    "UnacceptableSchema",
    "UnsupportedMethod",
    "db_error_response",
    "render_rest_error",
    "status_for_sqlstate",
]


class RestError(ProtocolError):
    """A PostgREST error: HTTP status and code on the class, message, details and hint per instance.

    `details` may be a string, a JSON array (PGRST201) or None, as PostgREST sends it.
    """

    code: ClassVar[str] = "PGRST000"
    default_message: ClassVar[str] = "Database connection error."

    def __init__(
        self,
        message: str | None = None,
        *,
        details: JsonValue = None,
        hint: str | None = None,
    ) -> None:
        self.message = self.default_message if message is None else message
        self.details = details
        self.hint = hint
        super().__init__(self.message)

    def extra_headers(self) -> Headers:
        """Headers this error adds to the response besides content-type and Proxy-Status."""
        return ()

    def to_response(self, *, verbose: bool = True) -> Response:
        """Render as PostgREST does (see `render_rest_error`)."""
        return render_rest_error(self, verbose=verbose)


def render_rest_error(err: RestError, *, verbose: bool = True) -> Response:
    """The response for `err`: `{"code","message","details","hint"}` plus a `Proxy-Status` header.

    `verbose=False` is PostgREST's `client-error-verbosity=minimal`: code and message only.

    >>> r = render_rest_error(InvalidRpcMethod.for_method("PUT"))
    >>> r.status, r.body
    (405, b'{"code":"PGRST101","message":"Cannot use the PUT method on RPC","details":null,"hint":null}')
    >>> r.header("proxy-status")
    'PostgREST; error=PGRST101'
    """
    body: JsonValue = {"code": err.code, "message": err.message}
    if verbose:
        body = {"code": err.code, "message": err.message, "details": err.details, "hint": err.hint}
    headers: Headers = (("proxy-status", f"PostgREST; error={err.code}"), *err.extra_headers())
    return json_response(err.status, body, headers, error_code=err.code)


# PostgREST's codes for the gateway's refusals. PostgREST has no code for two credentials of a
# kind; its JWT family's "could not decode" is the closest.
_REFUSAL_CODES: Final[Mapping[type[GatewayError], str]] = MappingProxyType(
    {
        MissingApiKey: "PGRST302",  # anonymous access refused without credentials
        InvalidApiKey: "PGRST301",  # JWT could not be decoded or verified
        AmbiguousCredentials: "PGRST301",
        RouteNotFound: "PGRST125",  # invalid path specified in request URL
        MethodNotAllowed: "PGRST117",  # unsupported HTTP method
        NotAProxy: "PGRST125",
    }
)


def render_rest_refusal(err: GatewayError, request: Request) -> Response:
    """A gateway refusal under `/rest/v1`: PostgREST's body with the gateway's message and hint.

    >>> render_rest_refusal(MissingApiKey(), Request(method="GET", target="/rest/v1/t")).body
    b'{"code":"PGRST302","message":"No API key found in request","details":null,"hint":"No `apikey` request header or url param was found."}'
    """
    code = _REFUSAL_CODES.get(type(err), "PGRST000")
    body: JsonValue = {"code": code, "message": str(err), "details": None, "hint": err.hint}
    return json_response(err.status, body, err.extra_headers(), error_code=code)


def token_error(err: BearerError) -> RestError:
    """A refused bearer token as PostgREST reports it: PGRST303 for its claims, else PGRST301."""
    if isinstance(err, InvalidClaims):
        return JwtClaimsError(err.message)
    return JwtDecodeError(err.message)


# --- PGRST0xx: connection ---------------------------------------------------------------------


class DatabaseConnectionError(RestError):
    """PGRST000: the database cannot be reached."""

    status = 503
    code = "PGRST000"
    default_message = "Database connection error."


class DatabaseClientError(RestError):
    """PGRST001: internal connection or client error; the connection is retried."""

    status = 503
    code = "PGRST001"
    default_message = "Database client error. Retrying the connection."


class SchemaCacheNotLoaded(RestError):
    """PGRST002: the schema cache could not be loaded (clients retry GET on 503)."""

    status = 503
    code = "PGRST002"
    default_message = "Could not query the database for the schema cache. Retrying."


class PoolTimeout(RestError):
    """PGRST003: timed out waiting for a pool connection."""

    status = 504
    code = "PGRST003"
    default_message = "Timed out acquiring connection from connection pool."


# --- PGRST1xx: the request --------------------------------------------------------------------


class QueryParamError(RestError):
    """PGRST100: the query string does not parse.

    The message is PostgREST's (Parsec's) `"failed to parse <what> (<text>)" (line L, column C)`,
    `details` says what was unexpected and what was expected there.
    """

    status = 400
    code = "PGRST100"
    default_message = "Invalid query string"


class InvalidRpcMethod(RestError):
    """PGRST101: a function called with a verb other than GET, HEAD or POST."""

    status = 405
    code = "PGRST101"

    @classmethod
    def for_method(cls, method: str) -> InvalidRpcMethod:
        """The error for `method`."""
        return cls(f"Cannot use the {method} method on RPC")


# PGRST104 retired (ParseRequestError): never reuse.


class InvalidBody(RestError):
    """PGRST102: the request body is empty or not valid JSON/CSV."""

    status = 400
    code = "PGRST102"
    default_message = "Empty or invalid json"


class InvalidRange(RestError):
    """PGRST103: a negative limit, a Range header with lower > upper, or an offset past the end."""

    status = 416
    code = "PGRST103"
    default_message = "Requested range not satisfiable"

    @classmethod
    def negative_limit(cls) -> InvalidRange:
        """`limit=-1`, or limit/offset that do not meet the Range header."""
        return cls(details="Limit should be greater than or equal to zero.")

    @classmethod
    def lower_gt_upper(cls) -> InvalidRange:
        """`Range: 5-2`."""
        return cls(
            details="The lower boundary must be lower than or equal to the upper boundary in "
            "the Range header."
        )

    @classmethod
    def out_of_bounds(cls, lower: int, total: int) -> InvalidRange:
        """An offset past the counted total."""
        return cls(details=f"An offset of {lower} was requested, but there are only {total} rows.")


class InvalidFilters(RestError):
    """PGRST105: PUT filters are not exactly the primary key with `eq`."""

    status = 405
    code = "PGRST105"
    default_message = "Filters must include all and only primary key columns with 'eq' operators"


class UnacceptableSchema(RestError):
    """PGRST106: `Accept-Profile`/`Content-Profile` names a schema that is not exposed."""

    status = 406
    code = "PGRST106"

    @classmethod
    def for_schema(cls, schema: str, exposed: tuple[str, ...]) -> UnacceptableSchema:
        """The error for `schema`, hinting the exposed ones."""
        return cls(
            f"Invalid schema: {schema}",
            hint="Only the following schemas are exposed: " + ", ".join(exposed),
        )


class MediaTypeError(RestError):
    """PGRST107: none of the `Accept` media types can be produced."""

    status = 406
    code = "PGRST107"

    @classmethod
    def for_types(cls, mimes: tuple[str, ...]) -> MediaTypeError:
        """The error listing the media types the client accepts."""
        return cls("None of these media types are available: " + ", ".join(mimes))


class NotEmbedded(RestError):
    """PGRST108: a filter, order or limit names a resource that is not embedded in `select`."""

    status = 400
    code = "PGRST108"

    @classmethod
    def for_resource(cls, resource: str, alias_of: str | None = None) -> NotEmbedded:
        """`resource` is not embedded; `alias_of` set when the target name was used, not its alias."""
        if alias_of is None:
            return cls(
                f"'{resource}' is not an embedded resource in this request",
                hint=f"Verify that '{resource}' is included in the 'select' query parameter.",
            )
        return cls(
            f"'{resource}' is not an embedded resource in this request",
            details="Target names are not allowed in filters if they have an alias",
            hint=f"Change '{resource}' to '{alias_of}' in filters, orders or limits.",
        )


# PGRST109 retired (LimitNoOrderError, then SpreadNotToOne), PGRST110 retired
# (OffLimitsChangesError): never reuse.


class GucHeadersError(RestError):
    """PGRST111: the `response.headers` GUC is not a JSON array of single-key objects."""

    status = 500
    code = "PGRST111"
    default_message = (
        "response.headers guc must be a JSON array composed of objects with a single key and a "
        "string value"
    )


class GucStatusError(RestError):
    """PGRST112: the `response.status` GUC is not a valid status code."""

    status = 500
    code = "PGRST112"
    default_message = "response.status guc must be a valid status code"


# PGRST113 retired (BinaryFieldError): never reuse.


class PutLimitNotAllowed(RestError):
    """PGRST114: limit/offset on PUT."""

    status = 400
    code = "PGRST114"
    default_message = "limit/offset querystring parameters are not allowed for PUT"


class PutMatchingPkError(RestError):
    """PGRST115: the PUT payload's primary key differs from the URL's."""

    status = 400
    code = "PGRST115"
    default_message = "Payload values do not match URL in primary key column(s)"


class SingularityError(RestError):
    """PGRST116: a single object was asked for but the result has 0 or more than 1 rows."""

    status = 406
    code = "PGRST116"
    default_message = "Cannot coerce the result to a single JSON object"

    @classmethod
    def for_rows(cls, rows: int) -> SingularityError:
        """The error for a result of `rows` rows."""
        return cls(details=f"The result contains {rows} rows")


class UnsupportedMethod(RestError):
    """PGRST117: an HTTP method the resource does not support."""

    status = 405
    code = "PGRST117"

    @classmethod
    def for_method(cls, method: str) -> UnsupportedMethod:
        """The error for `method`."""
        return cls(f"Unsupported HTTP method: {method}")


class RelatedOrderNotToOne(RestError):
    """PGRST118: `order=rel(col)` on a relationship that is not to-one."""

    status = 400
    code = "PGRST118"

    @classmethod
    def between(cls, origin: str, target: str) -> RelatedOrderNotToOne:
        """The error for ordering `origin` by a column of `target`."""
        return cls(
            f"A related order on '{target}' is not possible",
            details=f"'{origin}' and '{target}' do not form a many-to-one or one-to-one "
            "relationship",
        )


# PGRST119: never assigned by PostgREST; left free, never use.


class UnacceptableFilter(RestError):
    """PGRST120: an embedded resource filtered with something other than (not.)is.null."""

    status = 400
    code = "PGRST120"

    @classmethod
    def for_target(cls, target: str) -> UnacceptableFilter:
        """The error for the embedded resource `target`."""
        return cls(
            f"Bad operator on the '{target}' embedded resource",
            details="Only is null or not is null filters are allowed on embedded resources",
        )


class RaiseParseError(RestError):
    """PGRST121: `RAISE SQLSTATE 'PGRST'` with a MESSAGE or DETAIL that is not the expected JSON."""

    status = 500
    code = "PGRST121"
    default_message = "Could not parse JSON in the \"RAISE SQLSTATE 'PGRST'\" error"

    _MESSAGE_HINT: ClassVar[str] = (
        "MESSAGE must be a JSON object with obligatory keys: 'code', 'message' and optional "
        "keys: 'details', 'hint'."
    )
    _DETAIL_HINT: ClassVar[str] = (
        "DETAIL must be a JSON object with obligatory keys: 'status', 'headers' and optional "
        "key: 'status_text'."
    )

    @classmethod
    def bad_message(cls, message: str) -> RaiseParseError:
        """MESSAGE is not a JSON object with code and message."""
        return cls(details=f"Invalid JSON value for MESSAGE: '{message}'", hint=cls._MESSAGE_HINT)

    @classmethod
    def bad_detail(cls, detail: str) -> RaiseParseError:
        """DETAIL is not a JSON object with status and headers."""
        return cls(details=f"Invalid JSON value for DETAIL: '{detail}'", hint=cls._DETAIL_HINT)

    @classmethod
    def no_detail(cls) -> RaiseParseError:
        """DETAIL is missing."""
        return cls(details="DETAIL is missing in the RAISE statement", hint=cls._DETAIL_HINT)


class InvalidPreferences(RestError):
    """PGRST122: unknown preferences under `Prefer: handling=strict`."""

    status = 400
    code = "PGRST122"
    default_message = "Invalid preferences given with handling=strict"

    @classmethod
    def for_prefs(cls, prefs: tuple[str, ...]) -> InvalidPreferences:
        """The error listing the preferences that were not understood."""
        return cls(details="Invalid preferences: " + ", ".join(prefs))


class AggregatesNotAllowed(RestError):
    """PGRST123: aggregate functions in `select` while the project disables them."""

    status = 400
    code = "PGRST123"
    default_message = "Use of aggregate functions is not allowed"


class MaxAffectedViolation(RestError):
    """PGRST124: more rows affected than `Prefer: max-affected` allows (rolled back)."""

    status = 400
    code = "PGRST124"
    default_message = "Query result exceeds max-affected preference constraint"

    @classmethod
    def for_rows(cls, rows: int) -> MaxAffectedViolation:
        """The error for `rows` affected rows."""
        return cls(details=f"The query affects {rows} rows")


class InvalidResourcePath(RestError):
    """PGRST125: the path is not `/`, `/<relation>` or `/rpc/<function>`."""

    status = 404
    code = "PGRST125"
    default_message = "Invalid path specified in request URL"


class OpenApiDisabled(RestError):
    """PGRST126: the root OpenAPI document is disabled."""

    status = 404
    code = "PGRST126"
    default_message = "Root endpoint metadata is disabled"


class NotImplementedFeature(RestError):
    """PGRST127: a feature we do not implement; `details` says which."""

    status = 400
    code = "PGRST127"
    default_message = "Feature not implemented"


class MaxAffectedRpcViolation(RestError):
    """PGRST128: max-affected on a function that does not return SETOF or TABLE."""

    status = 400
    code = "PGRST128"
    default_message = (
        "Function must return SETOF or TABLE when max-affected preference is used with "
        "handling=strict"
    )


# --- PGRST2xx: schema cache -------------------------------------------------------------------


class NoRelationship(RestError):
    """PGRST200: no relationship between the parent and the embedded resource."""

    status = 400
    code = "PGRST200"


class AmbiguousRelationship(RestError):
    """PGRST201: several relationships match an embed; `details` is a JSON array."""

    status = 300
    code = "PGRST201"


class FunctionNotFound(RestError):
    """PGRST202: no function with that name and those argument names."""

    status = 404
    code = "PGRST202"


class AmbiguousFunction(RestError):
    """PGRST203: several overloads match."""

    status = 300
    code = "PGRST203"


class ColumnNotFound(RestError):
    """PGRST204: a column in `columns` or the payload does not exist."""

    status = 400
    code = "PGRST204"

    @classmethod
    def in_relation(cls, relation: str, column: str) -> ColumnNotFound:
        """The error for `column` of `relation`."""
        return cls(f"Could not find the '{column}' column of '{relation}' in the schema cache")


class TableNotFound(RestError):
    """PGRST205: no such table or view in the exposed schema."""

    status = 404
    code = "PGRST205"

    @classmethod
    def in_schema(cls, schema: str, name: str, hint: str | None = None) -> TableNotFound:
        """The error for `schema.name`, with an optional did-you-mean hint."""
        return cls(f"Could not find the table '{schema}.{name}' in the schema cache", hint=hint)


# --- PGRST3xx: JWT ----------------------------------------------------------------------------


class JwtSecretMissing(RestError):
    """PGRST300: the server has no JWT secret."""

    status = 500
    code = "PGRST300"
    default_message = "Server lacks JWT secret"


def _quote_header_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class JwtDecodeError(RestError):
    """PGRST301: the JWT cannot be decoded or its signature does not verify."""

    status = 401
    code = "PGRST301"
    default_message = "No suitable key or wrong key type"

    def extra_headers(self) -> Headers:
        """`WWW-Authenticate` naming the token error (RFC 6750 §3)."""
        return (
            (
                "www-authenticate",
                'Bearer error="invalid_token", error_description='
                + _quote_header_string(self.message),
            ),
        )


class JwtTokenRequired(RestError):
    """PGRST302: no JWT and anonymous access is disabled."""

    status = 401
    code = "PGRST302"
    default_message = "Anonymous access is disabled"

    def extra_headers(self) -> Headers:
        """`WWW-Authenticate: Bearer`."""
        return (("www-authenticate", "Bearer"),)


class JwtClaimsError(JwtDecodeError):
    """PGRST303: the claims are invalid (expired, not yet valid, wrong audience ...)."""

    status = 401
    code = "PGRST303"
    default_message = "Parsing claims failed"


# --- internal ---------------------------------------------------------------------------------


class InternalDatabaseError(RestError):
    """PGRSTX00: an internal error of the database library."""

    status = 500
    code = "PGRSTX00"
    default_message = "Internal database error"


# --- SQLSTATE → HTTP (PostgREST's mapSQLtoHTTP, spec/rest.md §13) -------------------------------

_EXACT_STATUS: Final = {
    "23503": 409,  # foreign_key_violation
    "23505": 409,  # unique_violation
    "25006": 405,  # read_only_sql_transaction: a write in GET
    "53400": 500,  # configuration_limit_exceeded
    "57P01": 503,  # admin_shutdown
    "P0001": 400,  # default RAISE EXCEPTION
    "42P01": 404,  # undefined_table
    "42P17": 500,  # infinite recursion, e.g. a recursive RLS policy
}
_CLASS_STATUS: Final = {
    "08": 503,  # connection exception
    "09": 500,  # triggered action exception
    "0L": 403,  # invalid grantor
    "0P": 403,  # invalid role specification
    "25": 500,  # invalid transaction state
    "28": 403,  # invalid authorization specification
    "2D": 500,  # invalid transaction termination
    "38": 500,  # external routine exception
    "39": 500,  # external routine invocation
    "3B": 500,  # savepoint exception
    "40": 500,  # transaction rollback (deadlock, serialization)
    "53": 503,  # insufficient resources
    "54": 500,  # program limit exceeded
    "55": 500,  # object not in prerequisite state
    "57": 500,  # operator intervention (57014 statement timeout)
    "58": 500,  # system error
    "F0": 500,  # configuration file error
    "HV": 500,  # foreign data wrapper error
    "P0": 500,  # other PL/pgSQL errors
    "XX": 500,  # internal error
}


def status_for_sqlstate(sqlstate: str, message: str = "", *, authenticated: bool = True) -> int:
    """The HTTP status PostgREST answers a database error with.

    `message` matters for 21000, 22023 and 42883; `authenticated` is False when the request ran as
    the anonymous role (42501 is then 401, else 403). `PTxyz` gives status xyz (500 if xyz is not a
    status). `PGRST` errors carry their status in DETAIL: use `db_error_response`.

    >>> status_for_sqlstate("23505"), status_for_sqlstate("08006"), status_for_sqlstate("22P02")
    (409, 503, 400)
    >>> status_for_sqlstate("42501", authenticated=False), status_for_sqlstate("PT402")
    (401, 402)
    """
    if sqlstate in _EXACT_STATUS:
        return _EXACT_STATUS[sqlstate]
    if sqlstate == "21000":  # cardinality_violation; pg-safeupdate's refusal is a client error
        return 400 if message.endswith("requires a WHERE clause") else 500
    if sqlstate == "22023":  # invalid_parameter_value; a JWT role that does not exist
        return 401 if message.startswith("role") and message.endswith("does not exist") else 400
    if sqlstate == "42883":  # undefined_function
        return 406 if message.startswith("function xmlagg(") else 404
    if sqlstate == "42501":  # insufficient_privilege
        return 403 if authenticated else 401
    if sqlstate.startswith("PT") and sqlstate != "PGRST":
        digits = sqlstate[2:]
        if len(digits) == 3 and digits.isascii() and digits.isdigit() and 100 <= int(digits) < 600:
            return int(digits)
        return 500
    return _CLASS_STATUS.get(sqlstate[:2], 400)


def db_error_response(
    sqlstate: str,
    message: str,
    detail: str | None = None,
    hint: str | None = None,
    *,
    authenticated: bool = True,
    verbose: bool = True,
) -> Response:
    """The response for an error the database raised, with the SQLSTATE as `code`.

    `RAISE SQLSTATE 'PGRST'` takes code, message, details and hint from the JSON in MESSAGE and the
    status and headers from the JSON in DETAIL; if either does not parse, PGRST121 (500).

    >>> r = db_error_response("23505", "duplicate key value", "Key (id)=(1) already exists.")
    >>> r.status, r.body
    (409, b'{"code":"23505","message":"duplicate key value","details":"Key (id)=(1) already exists.","hint":null}')
    >>> db_error_response("PGRST", '{"code":"123","message":"m"}', '{"status":402,"headers":{}}').status
    402
    """
    if sqlstate == "PGRST":
        try:
            return _raised_pgrst_response(message, detail, verbose=verbose)
        except RaiseParseError as err:
            return render_rest_error(err, verbose=verbose)
    status = status_for_sqlstate(sqlstate, message, authenticated=authenticated)
    body: JsonValue = {"code": sqlstate, "message": message}
    if verbose:
        body = {"code": sqlstate, "message": message, "details": detail, "hint": hint}
    headers: Headers = (("proxy-status", f"PostgREST; error={sqlstate}"),)
    if status == 401:
        headers += (("www-authenticate", "Bearer"),)
    return json_response(status, body, headers, error_code=sqlstate)


def _raised_pgrst_response(message: str, detail: str | None, *, verbose: bool) -> Response:
    """`RAISE SQLSTATE 'PGRST'`: full control of the response (PostgREST `parseRaisePGRST`)."""
    try:
        msg = json.loads(message)
    except ValueError:
        msg = None
    if not (
        isinstance(msg, dict)
        and isinstance(msg.get("code"), str)
        and isinstance(msg.get("message"), str)
        and isinstance(msg.get("details"), str | None)
        and isinstance(msg.get("hint"), str | None)
    ):
        raise RaiseParseError.bad_message(message)
    if detail is None:
        raise RaiseParseError.no_detail()
    try:
        det = json.loads(detail)
    except ValueError:
        det = None
    if not (
        isinstance(det, dict)
        and type(det.get("status")) is int
        and 100 <= det["status"] < 600
        and isinstance(det.get("headers"), dict)
        and all(isinstance(v, str) for v in det["headers"].values())
        and isinstance(det.get("status_text"), str | None)
    ):
        raise RaiseParseError.bad_detail(detail)
    code: str = msg["code"]
    body: JsonValue = {"code": code, "message": msg["message"]}
    if verbose:
        body = {
            "code": code,
            "message": msg["message"],
            "details": msg.get("details"),
            "hint": msg.get("hint"),
        }
    headers: Headers = (("proxy-status", f"PostgREST; error={code}"),)
    headers += tuple((str(k).lower(), str(v)) for k, v in det["headers"].items())
    return json_response(det["status"], body, headers, error_code=code)
