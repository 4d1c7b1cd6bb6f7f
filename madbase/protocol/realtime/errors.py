"""Supabase Realtime's HTTP error shape, `{error}` (its websocket errors are channel replies).

The shape has no code: the access log gets the gateway's name for the refusal.

Only the gateway's refusals exist so far: the realtime service itself is not built yet.
"""

from __future__ import annotations

from madbase.protocol.http.errors import GatewayError
from madbase.protocol.http.messages import Request, Response, json_response

__all__ = ["render_realtime_refusal"]


def render_realtime_refusal(err: GatewayError, request: Request) -> Response:
    """A gateway refusal under `/realtime/v1`, in Realtime's shape.

    >>> from madbase.protocol.http.errors import InvalidApiKey
    >>> render_realtime_refusal(InvalidApiKey(), Request(method="GET", target="/")).body
    b'{"error":"Invalid API key"}'
    """
    return json_response(err.status, {"error": str(err)}, err.extra_headers(), error_code=err.code)
