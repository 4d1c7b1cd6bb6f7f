"""The QR code of the TOTP enrolment (segno with GoTrue's parameters): function patterns, level H
format information, and an SVG that draws exactly the code's dark modules.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from madbase.protocol.auth.mfa.qr import qr_matrix, qr_svg

OTPAUTH = (
    b"otpauth://totp/localhost:3000:alice@example.com?algorithm=SHA1&digits=6"
    b"&issuer=localhost%3A3000&period=30&secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
)


def read_format(matrix: list[list[bool]]) -> int:
    """The 15 format bits around the top-left finder, unmasked (ISO 18004 §7.9)."""
    bits = 0
    coords = [(8, i) for i in range(6)] + [(8, 7), (8, 8), (7, 8)]
    coords += [(14 - i, 8) for i in range(9, 15)]
    for i, (x, y) in enumerate(coords):
        bits |= matrix[y][x] << i
    return bits ^ 0x5412


def finder_at(matrix: list[list[bool]], left: int, top: int) -> bool:
    return all(
        matrix[top + dy][left + dx] == (max(abs(dx - 3), abs(dy - 3)) != 2)
        for dy in range(7)
        for dx in range(7)
    )


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=300))
def test_every_code_has_finders_timing_and_level_h_format(data: bytes) -> None:
    matrix = qr_matrix(data)
    size = len(matrix)
    assert (size - 17) % 4 == 0
    assert all(len(row) == size for row in matrix)
    assert finder_at(matrix, 0, 0)
    assert finder_at(matrix, size - 7, 0)
    assert finder_at(matrix, 0, size - 7)
    assert [matrix[6][x] for x in range(8, size - 8)] == [x % 2 == 0 for x in range(8, size - 8)]
    fmt = read_format(matrix)
    assert fmt >> 13 == 0b10  # level H
    assert matrix[size - 8][8]  # the dark module


def test_capacity_and_growth() -> None:
    assert len(qr_matrix(b"x" * 7)) == 21  # version 1-H holds 7 bytes
    assert len(qr_matrix(b"x" * 8)) == 25
    assert len(qr_matrix(b"x" * 1273)) == 177  # version 40-H
    with pytest.raises(ValueError, match="too long"):
        qr_matrix(b"x" * 1274)


def drawn_modules(svg: str) -> tuple[int, set[tuple[int, int]]]:
    """The SVG's size in pixels and the (x, y) modules its stroked path covers, quiet zone
    included (the path is horizontal runs: `M x y`, `h n`, `m dx dy`, in module units)."""
    root = ET.fromstring(svg)
    size = int(root.attrib["width"])
    assert root.attrib["height"] == str(size)
    group = root.find("{http://www.w3.org/2000/svg}g")
    assert group is not None
    assert group.attrib["transform"] == "scale(3)"
    stroked = [p for p in group if p.attrib.get("stroke") == "#000"]
    assert len(stroked) == 1
    x = y = 0.0
    dark: set[tuple[int, int]] = set()
    for op, a, b in re.findall(r"([Mmh])(-?[\d.]+)(?: (-?[\d.]+))?", stroked[0].attrib["d"]):
        if op == "M":
            x, y = float(a), float(b)
        elif op == "m":
            x, y = x + float(a), y + float(b)
        else:
            run = int(a)
            dark.update((int(x) + i, int(y)) for i in range(run))
            x += run
    return size, dark


@settings(max_examples=20, deadline=None)
@given(st.text(max_size=200))
def test_svg_draws_exactly_the_dark_modules(text: str) -> None:
    svg = qr_svg(text)
    assert svg.startswith('<?xml version="1.0" encoding="utf-8"?>\n<svg ')
    matrix = qr_matrix(text.encode("utf-8"))
    size, dark = drawn_modules(svg)
    assert size == (len(matrix) + 2 * 4) * 3  # 3-pixel modules, a 4-module quiet zone
    assert dark == {
        (x + 4, y + 4) for y, row in enumerate(matrix) for x, on in enumerate(row) if on
    }


def test_otpauth_uri_is_version_12_at_level_h() -> None:
    # 145 bytes in byte mode: level H holds 137 in version 11 and 155 in version 12
    assert len(OTPAUTH) == 145
    assert len(qr_matrix(OTPAUTH)) == 17 + 4 * 12
