"""HTTP values, the gateway (routing, CORS, API keys) and per-service error envelopes."""

from __future__ import annotations

from madbase.protocol.http.errors import (
    GatewayError,
    InvalidApiKey,
    MissingApiKey,
    ProtocolError,
    RouteNotFound,
    Service,
    render_error,
)
from madbase.protocol.http.gateway import (
    RETRY_AFTER,
    Dispatch,
    Health,
    admit,
    finish,
    health_response,
    not_found,
    pick_request_id,
)
from madbase.protocol.http.messages import Headers, JsonValue, Request, Response, json_response

__all__ = [
    "RETRY_AFTER",
    "Dispatch",
    "GatewayError",
    "Headers",
    "Health",
    "InvalidApiKey",
    "JsonValue",
    "MissingApiKey",
    "ProtocolError",
    "Request",
    "Response",
    "RouteNotFound",
    "Service",
    "admit",
    "finish",
    "health_response",
    "json_response",
    "not_found",
    "pick_request_id",
    "render_error",
]
