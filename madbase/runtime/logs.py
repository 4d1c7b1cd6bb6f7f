"""Log output of `madbase serve` and its worker processes: one JSON object per line on stderr.

Access log lines (`madbase.access`) are JSON already and go out as they are. A worker process's
other lines say which worker wrote them (`"process": "worker-1"`).
"""

from __future__ import annotations

import json
import logging
import sys

__all__ = ["JsonFormatter", "setup_logging"]


class JsonFormatter(logging.Formatter):
    """`{"level", "logger", "message"[, "request_id"][, "process"][, "traceback"]}`, one line per
    record.
    """

    def __init__(self, process: str | None = None) -> None:
        super().__init__()
        self._process = process

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        message = record.getMessage()
        if record.name == "madbase.access":
            return message
        line: dict[str, object] = {
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": message,
        }
        request_id = getattr(record, "request_id", None)  # given as `extra` by request handlers
        if request_id is not None:
            line["request_id"] = request_id
        if self._process is not None:
            line["process"] = self._process
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, separators=(",", ":"))


def setup_logging(level: str, *, process: str | None = None) -> None:
    """Send the `madbase` loggers to stderr as JSON lines, from `level` up.

    `process` names a worker process in its lines.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(process))
    root = logging.getLogger("madbase")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
