"""Pin the public API of each protocol package: the runtime imports only what `__all__` lists."""

from __future__ import annotations

import importlib
import types

import pytest

EXPECTED = {
    "madbase.protocol.rest": {
        "Action",
        "Aggregate",
        "AggregatesNotAllowed",
        "AmbiguousFunction",
        "AmbiguousRelationship",
        "ApiRequest",
        "ArgMode",
        "Arrow",
        "Cardinality",
        "Column",
        "ColumnNotFound",
        "Compare",
        "DatabaseClientError",
        "DatabaseConnectionError",
        "Direction",
        "EmbedPath",
        "Field",
        "Filter",
        "Function",
        "FunctionArg",
        "FunctionNotFound",
        "GucHeadersError",
        "GucStatusError",
        "Identity",
        "InList",
        "InternalDatabaseError",
        "InvalidBody",
        "InvalidFilters",
        "InvalidPreferences",
        "InvalidRange",
        "InvalidResourcePath",
        "InvalidRpcMethod",
        "IsCheck",
        "IsValue",
        "JoinType",
        "JsonStep",
        "Junction",
        "JwtClaimsError",
        "JwtDecodeError",
        "JwtSecretMissing",
        "JwtTokenRequired",
        "LogicNode",
        "LogicOperator",
        "LogicTree",
        "MaxAffectedRpcViolation",
        "MaxAffectedViolation",
        "MediaKind",
        "MediaType",
        "MediaTypeError",
        "NoRelationship",
        "NotEmbedded",
        "NotImplementedFeature",
        "NullsOrder",
        "OpenApiDisabled",
        "Operation",
        "Operator",
        "OrderTerm",
        "PathFilter",
        "PathLogic",
        "PathOrder",
        "PathRange",
        "Plan",
        "PlanCache",
        "PlanFormat",
        "PlanOption",
        "PoolTimeout",
        "PreferCount",
        "PreferHandling",
        "PreferMissing",
        "PreferResolution",
        "PreferReturn",
        "PreferTransaction",
        "Preferences",
        "PutLimitNotAllowed",
        "PutMatchingPkError",
        "QualifiedName",
        "Quantifier",
        "QueryParamError",
        "QueryParams",
        "RaiseParseError",
        "RangeHeader",
        "RelatedOrderNotToOne",
        "Relation",
        "RelationKind",
        "Relationship",
        "RestError",
        "RestLimits",
        "RowRange",
        "SchemaCacheNotLoaded",
        "SchemaPayloadError",
        "SchemaSnapshot",
        "SelectEmbed",
        "SelectField",
        "SelectItem",
        "SingularityError",
        "Star",
        "TableNotFound",
        "Target",
        "TargetKind",
        "TextSearch",
        "UnacceptableFilter",
        "UnacceptableSchema",
        "UnsupportedMethod",
        "Volatility",
        "db_error_response",
        "decode_query",
        "fuzzy_candidates",
        "introspection_transaction",
        "negotiate",
        "parse_accept",
        "parse_columns",
        "parse_filter",
        "parse_logic",
        "parse_media_type",
        "parse_operation",
        "parse_order",
        "parse_prefer",
        "parse_query",
        "parse_range",
        "parse_request",
        "parse_select",
        "plan_request",
        "preference_applied",
        "render_columns",
        "render_filter",
        "render_logic",
        "render_operation",
        "render_order",
        "render_prefer",
        "render_range",
        "render_rest_error",
        "render_rest_refusal",
        "render_select",
        "respond",
        "select_schema",
        "snapshot_from_json",
        "status_for_sqlstate",
        "to_mime",
        "to_query_string",
        "token_error",
    },
    "madbase.protocol.http": {
        "LAST_CHUNK",
        "RETRY_AFTER",
        "BodyStream",
        "Framing",
        "HttpLimits",
        "Refusal",
        "check_body_length",
        "check_head_bytes",
        "check_head_size",
        "check_request_line",
        "chunk",
        "frame_headers",
        "frame_response",
        "is_websocket_handshake",
        "keep_alive_requested",
        "reason_phrase",
        "refusal_response",
        "serialize_head",
        "serialize_response",
        "AmbiguousCredentials",
        "Dispatch",
        "GatewayError",
        "Headers",
        "Health",
        "InvalidApiKey",
        "JsonValue",
        "MissingApiKey",
        "Mount",
        "ProtocolError",
        "Refused",
        "Request",
        "Response",
        "RouteNotFound",
        "Service",
        "admit",
        "finish",
        "health_response",
        "json_response",
        "pick_request_id",
        "render_refusal",
        "route_not_found",
    },
    "madbase.protocol.storage": {
        "render_storage_refusal",
    },
    "madbase.protocol.realtime": {
        "render_realtime_refusal",
    },
    "madbase.protocol.identity": {
        "API_KEY_ROLES",
        "DEFAULT_TOKEN_ROLES",
        "ApiKeyClaims",
        "ApiKeyError",
        "ApiKeyVerifier",
        "BearerError",
        "BearerVerifier",
        "InvalidClaims",
        "KeyKind",
        "Principal",
        "SigningKey",
        "SigningKeys",
        "UnverifiableToken",
        "Verifier",
        "cookies_json",
        "headers_json",
        "mint_api_key",
        "rls_settings",
        "token_roles",
        "token_roles_statement",
        "verify_api_key",
        "verify_bearer",
    },
    "madbase.protocol.auth": {
        # what the runtime and config use: the entry flow, its commands and their answers
        "AuthAnswer",
        "AuthCommand",
        "AuthError",
        "AuthLimits",
        "AuthSettings",
        "CheckPassword",
        "DrawRandom",
        "ExternalSettings",
        "Flow",
        "HashPassword",
        "HashScheme",
        "HttpFailure",
        "HttpRequest",
        "HttpResponse",
        "MAIL_QUOTA_EXCEEDED",
        "MailSettings",
        "PROVIDERS",
        "ProviderConfig",
        "RateLimiter",
        "RateLimits",
        "RunTransaction",
        "SendMail",
        "SendSms",
        "SmsNotSent",
        "auth_answer",
        "hash_scheme",
        "parse_networks",
        "parse_required_characters",
        "render_auth_refusal",
    },
}


def _module(name: str) -> types.ModuleType:
    return importlib.import_module(name)


@pytest.mark.parametrize(("name", "expected"), sorted(EXPECTED.items()))
def test_exports_all_is_pinned(name: str, expected: set[str]) -> None:
    exported = _module(name).__all__
    assert set(exported) == expected
    assert len(exported) == len(set(exported))  # no name listed twice


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_exports_every_name_exists(name: str) -> None:
    module = _module(name)
    missing = [attr for attr in module.__all__ if not hasattr(module, attr)]
    assert missing == []


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_exports_star_import_gives_exactly_all(name: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from {name} import *", namespace)
    assert set(namespace) - {"__builtins__"} == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_exports_public_classes_and_functions_are_listed(name: str) -> None:
    # A public class or function defined in the package but not exported is an API gap.
    module = _module(name)
    prefix = name + "."
    unlisted = [
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_")
        and isinstance(value, type | types.FunctionType)
        and getattr(value, "__module__", "").startswith(prefix)
        and attr not in module.__all__
    ]
    assert unlisted == []
