"""The QR code of the TOTP enrolment's `qr_code`, drawn as SVG by segno.

GoTrue encodes the `otpauth://` URI in byte mode at error-correction level H (boombuler/barcode)
and draws it as SVG with 3-pixel modules (goqrsvg); the clients only prefix the text with
`data:image/svg+xml;utf-8,`. segno (pure Python, no I/O: it writes into the buffer we give it)
encodes and draws; we fix the parameters GoTrue uses. It replaced a 388-line encoder of our own.
"""

from __future__ import annotations

import io
from typing import Final

import segno

__all__ = ["qr_matrix", "qr_svg"]

# Pixels per module, and the quiet zone in modules (ISO/IEC 18004 asks for 4).
_MODULE_PX: Final = 3
_QUIET_ZONE: Final = 4


def _code(data: str | bytes) -> segno.QRCode:
    try:
        # boost_error=False: level H always, as GoTrue, not a higher level when space allows
        return segno.make_qr(data, error="h", mode="byte", boost_error=False)
    except segno.DataOverflowError as err:
        raise ValueError(f"too long for a QR code at level H: {len(data)} bytes") from err


def qr_matrix(data: bytes) -> list[list[bool]]:
    """The modules of the QR code of `data` (rows of booleans, True is dark), quiet zone excluded.

    Raises:
        ValueError: more data than a version-40 code holds at level H.
    """
    return [[bool(module) for module in row] for row in _code(data).matrix]


def qr_svg(text: str) -> str:
    """The QR code of `text` as an SVG document: 3-pixel modules, a 4-module quiet zone."""
    out = io.BytesIO()
    _code(text.encode("utf-8")).save(
        out,
        kind="svg",
        scale=_MODULE_PX,
        border=_QUIET_ZONE,
        dark="#000",
        light="#fff",
        xmldecl=True,
        svgns=True,
        svgclass=None,
        lineclass=None,
        nl=False,
    )
    return out.getvalue().decode("utf-8")
