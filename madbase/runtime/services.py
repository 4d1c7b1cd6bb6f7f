"""The services every project runs, in the order their mounts are matched.

A new service is a module defining a `madbase.runtime.service.Service` (mount, error envelope,
`build`) and one line here. Storage and Realtime are mounted ahead of being built, so that their
paths already answer in the envelopes storage-js and realtime-js read.
"""

from __future__ import annotations

from typing import Final

from madbase.protocol.http import Mount, Service
from madbase.protocol.realtime import render_realtime_refusal
from madbase.protocol.storage import render_storage_refusal
from madbase.runtime import auth, rest
from madbase.runtime import service as _service

__all__ = ["DEFAULT_SERVICES", "REALTIME", "STORAGE"]

STORAGE: Final = _service.Service(
    mount=Mount("/storage/v1", Service.STORAGE), render_refusal=render_storage_refusal
)
REALTIME: Final = _service.Service(
    mount=Mount("/realtime/v1", Service.REALTIME), render_refusal=render_realtime_refusal
)

DEFAULT_SERVICES: Final = (rest.SERVICE, auth.SERVICE, STORAGE, REALTIME)
