"""Fuzz the gateway: any request must be answered, dispatched or sent to the health check.

Refusals inside a service's mount are rendered by that service's renderer, as `App` does, with
the services every project runs (`madbase.runtime.services.DEFAULT_SERVICES`).

Input layout (latin-1, as the HTTP server decodes heads): the first line is the method, the second
the request target, every further line a header `name: value` (name lower-cased, as the server
delivers it). Nothing may escape `admit`: any exception, or a broken invariant, is a bug.

    pip install atheris
    python fuzz/fuzz_gateway.py fuzz/corpus/gateway
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

from madbase.protocol.http import Dispatch, Health, Refused, Request, Response, admit
from madbase.protocol.identity import Verifier
from madbase.runtime.services import DEFAULT_SERVICES

# The same fixed secret and clock as the seed keys in fuzz/corpus/ (and tests/strategies.py).
SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
MOUNTS = tuple(service.mount for service in DEFAULT_SERVICES)
RENDERERS = {service.name: service.render_refusal for service in DEFAULT_SERVICES}


def gate(
    request: Request,
    *,
    verifier: Verifier | None = None,
    now: datetime = NOW,
    request_id: str | None = None,
) -> Response | Dispatch | Health:
    """`admit` with the default mounts, a refusal rendered by its service (as `App` does)."""
    result = admit(
        request,
        verifier=verifier or Verifier(SECRET),
        mounts=MOUNTS,
        now=now,
        request_id=request_id,
    )
    if isinstance(result, Refused):
        return RENDERERS[result.mount.service](result.error, request)
    return result


# The methods some route takes: only another is refused before routing.
_TAKEN = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def request_from_bytes(data: bytes) -> Request:
    """The request `data` describes (see the module docstring)."""
    lines = data.decode("latin-1").split("\n")
    method = lines[0].rstrip("\r") if lines else ""
    target = lines[1].rstrip("\r") if len(lines) > 1 else ""
    headers: list[tuple[str, str]] = []
    for line in lines[2:]:
        name, _, value = line.rstrip("\r").partition(":")
        headers.append((name.strip().lower(), value.strip()))
    return Request(method=method, target=target, headers=tuple(headers))


def test_one_input(data: bytes) -> None:
    """Admit the request built from `data`; fail on any exception or broken invariant."""
    request = request_from_bytes(data)
    result = gate(request)
    if isinstance(result, Response):
        assert result.status in (200, 400, 401, 404, 405), result
        if result.status == 405:  # a method no route takes
            assert request.method not in _TAKEN, result
        if result.status != 200:
            assert isinstance(json.loads(result.body), dict), result
    else:
        assert isinstance(result, Dispatch | Health), result


if __name__ == "__main__":
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
