"""HTTP values, the gateway (routing, CORS, admission) and the gateway's refusals."""

from __future__ import annotations

from madbase.protocol.http.errors import (
    AmbiguousCredentials,
    GatewayError,
    InvalidApiKey,
    MissingApiKey,
    ProtocolError,
    RouteNotFound,
    Service,
    render_refusal,
)
from madbase.protocol.http.gateway import (
    RETRY_AFTER,
    Dispatch,
    Health,
    Mount,
    Refused,
    admit,
    finish,
    health_response,
    pick_request_id,
    route_not_found,
)
from madbase.protocol.http.messages import Headers, JsonValue, Request, Response, json_response

__all__ = [
    "RETRY_AFTER",
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
]
