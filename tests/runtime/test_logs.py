"""Log lines: one JSON object per record, with the request id a handler passes as `extra`."""

from __future__ import annotations

import json
import logging

from madbase.runtime.logs import JsonFormatter


def record(message: str, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("madbase.runtime.auth", logging.ERROR, __file__, 1, message, (), None)
    for name, value in extra.items():
        setattr(made, name, value)
    return made


def test_json_formatter_carries_the_request_id() -> None:
    line = json.loads(JsonFormatter("worker-1").format(record("failed", request_id="req-1")))
    assert line == {
        "level": "error",
        "logger": "madbase.runtime.auth",
        "message": "failed",
        "request_id": "req-1",
        "process": "worker-1",
    }
    assert "request_id" not in json.loads(JsonFormatter().format(record("plain")))
