"""The QR encoder of the TOTP enrolment: golden matrices, function patterns, format information.

The golden hashes were checked against segno 1.6.6 (an independent encoder, byte mode, level H,
the same mask forced), with segno's extra pad byte after a byte-aligned terminator taken out.
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from madbase.protocol.auth.qr import qr_matrix, qr_svg

OTPAUTH = (
    b"otpauth://totp/localhost:3000:alice@example.com?algorithm=SHA1&digits=6"
    b"&issuer=localhost%3A3000&period=30&secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
)


def fingerprint(matrix: list[list[bool]]) -> str:
    text = "\n".join("".join("1" if c else "0" for c in row) for row in matrix)
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize(
    ("data", "mask", "size", "digest"),
    [
        (b"hello", 0, 21, "d78181186abf3556cf551056f1495e1b35d78d49a3e09f31d30130af0f115f0a"),
        (OTPAUTH, 6, 65, "df9eb356b22a7f8d1acf9aed6abf4ffb09bf46954a6bbfcf7825c5ba29ef6ee1"),
        (
            bytes(range(256)) * 2,
            3,
            117,
            "1058c983c86016d1895a501741d1f0b00d7de06be899ec552030173f85e147db",
        ),
    ],
)
def test_matrix_matches_golden(data: bytes, mask: int, size: int, digest: str) -> None:
    matrix = qr_matrix(data, mask=mask)
    assert len(matrix) == size
    assert fingerprint(matrix) == digest


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


def test_svg_draws_every_dark_module() -> None:
    svg = qr_svg("hello")
    assert svg.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<svg ')
    matrix = qr_matrix(b"hello")
    assert svg.count("h3v3h-3z") == sum(map(sum, matrix))
    assert 'width="87"' in svg  # (21 + 2 * 4) modules of 3 pixels
