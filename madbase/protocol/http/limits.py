"""The HTTP layer's limits: how large a request's line, head and body may be."""

from __future__ import annotations

from typing import final

import attrs

__all__ = ["HttpLimits"]


@final
@attrs.frozen(kw_only=True)
class HttpLimits:
    """Sizes past which a request is refused (414, 431, 413); defaults as `HttpSettings`'s."""

    # 16 KiB of URL is the least rest.md asks for; h11's own default head cap is 16 KiB.
    max_request_line_bytes: int = 32 * 1024
    # Headers from browsers stay far below 64 KiB.
    max_head_bytes: int = 64 * 1024
    # Bodies a service reads whole; a streamed body is held to it while it is read.
    max_body_bytes: int = 50 * 1024 * 1024
