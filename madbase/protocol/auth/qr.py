"""A small QR code encoder (ISO/IEC 18004) for the TOTP enrolment's `qr_code`, drawn as SVG.

GoTrue encodes the `otpauth://` URI in byte mode at error-correction level H (boombuler/barcode)
and draws it as SVG with 3-pixel modules (goqrsvg); the clients only prefix the text with
`data:image/svg+xml;utf-8,`. This encoder does the same for any version 1-40: byte mode, level
H, Reed-Solomon over GF(256), the mask with the lowest penalty score.
"""

from __future__ import annotations

from typing import Final

__all__ = ["qr_matrix", "qr_svg"]

# Per version (index 0 unused), level H: error-correction codewords per block and block count.
_ECC_PER_BLOCK: Final = (
    -1,
    17,
    28,
    22,
    16,
    22,
    28,
    26,
    26,
    24,
    28,
    24,
    28,
    22,
    24,
    24,
    30,
    28,
    28,
    26,
    28,
    30,
    24,
    30,
    30,
    30,
    30,
    30,
    30,
    30,
    30,
    30,
    30,
    30,
    30,
    30,
    30,
    30,
    30,
    30,
    30,
)
_BLOCKS: Final = (
    -1,
    1,
    1,
    2,
    4,
    4,
    4,
    5,
    6,
    8,
    8,
    11,
    11,
    16,
    16,
    18,
    16,
    19,
    21,
    25,
    25,
    25,
    34,
    30,
    32,
    35,
    37,
    40,
    42,
    45,
    48,
    51,
    54,
    57,
    60,
    63,
    66,
    70,
    74,
    77,
    81,
)
_LEVEL_H_BITS: Final = 2  # format-information bits of level H
_MODULE_PX: Final = 3  # goqrsvg's block size in GoTrue (DefaultQRSize)
_QUIET_ZONE: Final = 4


def _raw_modules(version: int) -> int:
    """Data and error-correction modules of a version (all but function patterns)."""
    result = (16 * version + 128) * version + 64
    if version >= 2:
        count = version // 7 + 2
        result -= (25 * count - 10) * count - 55
        if version >= 7:
            result -= 36
    return result


def _data_codewords(version: int) -> int:
    return _raw_modules(version) // 8 - _ECC_PER_BLOCK[version] * _BLOCKS[version]


def _gf_mul(x: int, y: int) -> int:
    z = 0
    for i in reversed(range(8)):
        z = (z << 1) ^ ((z >> 7) * 0x11D)
        z ^= ((y >> i) & 1) * x
    return z


def _rs_divisor(degree: int) -> list[int]:
    result = [0] * (degree - 1) + [1]
    root = 1
    for _ in range(degree):
        for j in range(degree):
            result[j] = _gf_mul(result[j], root)
            if j + 1 < degree:
                result[j] ^= result[j + 1]
        root = _gf_mul(root, 0x02)
    return result


def _rs_remainder(data: list[int], divisor: list[int]) -> list[int]:
    result = [0] * len(divisor)
    for byte in data:
        factor = byte ^ result.pop(0)
        result.append(0)
        for i, coef in enumerate(divisor):
            result[i] ^= _gf_mul(coef, factor)
    return result


def _codewords(data: bytes) -> tuple[int, list[int]]:
    """The smallest version that holds `data` and its interleaved codewords."""
    for version in range(1, 41):
        count_bits = 8 if version < 10 else 16
        capacity = _data_codewords(version)
        if 4 + count_bits + 8 * len(data) <= capacity * 8:
            break
    else:
        raise ValueError("data too long for a QR code at level H")
    bits: list[int] = []

    def put(value: int, length: int) -> None:
        bits.extend((value >> i) & 1 for i in reversed(range(length)))

    put(0b0100, 4)  # byte mode
    put(len(data), count_bits)
    for byte in data:
        put(byte, 8)
    put(0, min(4, capacity * 8 - len(bits)))
    put(0, -len(bits) % 8)
    pad = 0xEC
    while len(bits) < capacity * 8:
        put(pad, 8)
        pad ^= 0xEC ^ 0x11
    words = [int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8)]
    blocks_n, ecc_len = _BLOCKS[version], _ECC_PER_BLOCK[version]
    short_blocks = blocks_n - _raw_modules(version) // 8 % blocks_n
    short_len = _raw_modules(version) // 8 // blocks_n
    divisor = _rs_divisor(ecc_len)
    blocks: list[list[int]] = []
    k = 0
    for i in range(blocks_n):
        size = short_len - ecc_len + (0 if i < short_blocks else 1)
        block = words[k : k + size]
        k += size
        ecc = _rs_remainder(block, divisor)
        if i < short_blocks:
            block.append(0)  # placeholder so every block has the same length
        blocks.append(block + ecc)
    result: list[int] = []
    for i in range(len(blocks[0])):
        for j, block in enumerate(blocks):
            if i != short_len - ecc_len or j >= short_blocks:
                result.append(block[i])
    return version, result


class _Grid:
    def __init__(self, version: int) -> None:
        self.size = version * 4 + 17
        self.dark = [[False] * self.size for _ in range(self.size)]
        self.fixed = [[False] * self.size for _ in range(self.size)]
        self.version = version

    def set(self, x: int, y: int, dark: bool) -> None:
        self.dark[y][x] = dark
        self.fixed[y][x] = True

    def draw_function_patterns(self) -> None:
        size = self.size
        for i in range(size):
            self.set(6, i, i % 2 == 0)
            self.set(i, 6, i % 2 == 0)
        for cx, cy in ((3, 3), (size - 4, 3), (3, size - 4)):
            for dy in range(-4, 5):
                for dx in range(-4, 5):
                    x, y = cx + dx, cy + dy
                    if 0 <= x < size and 0 <= y < size:
                        self.set(x, y, max(abs(dx), abs(dy)) not in (2, 4))
        positions = self._alignment_positions()
        last = len(positions) - 1
        for i, ax in enumerate(positions):
            for j, ay in enumerate(positions):
                if (i, j) in ((0, 0), (0, last), (last, 0)):
                    continue
                for dy in range(-2, 3):
                    for dx in range(-2, 3):
                        self.set(ax + dx, ay + dy, max(abs(dx), abs(dy)) != 1)
        self.draw_format(0)
        self.draw_version()

    def _alignment_positions(self) -> list[int]:
        version = self.version
        if version == 1:
            return []
        count = version // 7 + 2
        step = (version * 8 + count * 3 + 5) // (count * 4 - 4) * 2
        result = [self.size - 7 - i * step for i in range(count - 1)] + [6]
        return sorted(result)

    def draw_format(self, mask: int) -> None:
        data = _LEVEL_H_BITS << 3 | mask
        rem = data
        for _ in range(10):
            rem = (rem << 1) ^ ((rem >> 9) * 0x537)
        bits = (data << 10 | rem) ^ 0x5412
        size = self.size
        for i in range(6):
            self.set(8, i, (bits >> i) & 1 == 1)
        self.set(8, 7, (bits >> 6) & 1 == 1)
        self.set(8, 8, (bits >> 7) & 1 == 1)
        self.set(7, 8, (bits >> 8) & 1 == 1)
        for i in range(9, 15):
            self.set(14 - i, 8, (bits >> i) & 1 == 1)
        for i in range(8):
            self.set(size - 1 - i, 8, (bits >> i) & 1 == 1)
        for i in range(8, 15):
            self.set(8, size - 15 + i, (bits >> i) & 1 == 1)
        self.set(8, size - 8, True)

    def draw_version(self) -> None:
        if self.version < 7:
            return
        rem = self.version
        for _ in range(12):
            rem = (rem << 1) ^ ((rem >> 11) * 0x1F25)
        bits = self.version << 12 | rem
        for i in range(18):
            bit = (bits >> i) & 1 == 1
            a, b = self.size - 11 + i % 3, i // 3
            self.set(a, b, bit)
            self.set(b, a, bit)

    def draw_codewords(self, words: list[int]) -> None:
        i = 0
        total = len(words) * 8
        right = self.size - 1
        while right >= 1:
            if right == 6:
                right = 5
            for vert in range(self.size):
                for j in range(2):
                    x = right - j
                    upward = (right + 1) & 2 == 0
                    y = self.size - 1 - vert if upward else vert
                    if not self.fixed[y][x] and i < total:
                        self.dark[y][x] = (words[i >> 3] >> (7 - (i & 7))) & 1 == 1
                        i += 1
            right -= 2

    def apply_mask(self, mask: int) -> None:
        for y in range(self.size):
            for x in range(self.size):
                if not self.fixed[y][x] and _mask_bit(mask, x, y):
                    self.dark[y][x] = not self.dark[y][x]

    def penalty(self) -> int:
        size, dark = self.size, self.dark
        score = 0
        lines = [list(row) for row in dark] + [
            [dark[y][x] for y in range(size)] for x in range(size)
        ]
        for line in lines:
            run_color, run = line[0], 1
            for cell in line[1:]:
                if cell == run_color:
                    run += 1
                    continue
                score += run - 2 if run >= 5 else 0
                run_color, run = cell, 1
            score += run - 2 if run >= 5 else 0
            text = "".join("1" if c else "0" for c in line)
            padded = "0000" + text + "0000"
            for pattern in ("00001011101", "10111010000"):
                start = padded.find(pattern)
                while start != -1:
                    score += 40
                    start = padded.find(pattern, start + 1)
        for y in range(size - 1):
            for x in range(size - 1):
                c = dark[y][x]
                if c == dark[y][x + 1] == dark[y + 1][x] == dark[y + 1][x + 1]:
                    score += 3
        total = sum(sum(row) for row in dark)
        k = (abs(total * 20 - size * size * 10) + size * size - 1) // (size * size) - 1
        return score + k * 10


def _mask_bit(mask: int, x: int, y: int) -> bool:
    match mask:
        case 0:
            return (x + y) % 2 == 0
        case 1:
            return y % 2 == 0
        case 2:
            return x % 3 == 0
        case 3:
            return (x + y) % 3 == 0
        case 4:
            return (x // 3 + y // 2) % 2 == 0
        case 5:
            return x * y % 2 + x * y % 3 == 0
        case 6:
            return (x * y % 2 + x * y % 3) % 2 == 0
        case _:
            return ((x + y) % 2 + x * y % 3) % 2 == 0


def qr_matrix(data: bytes, *, mask: int | None = None) -> list[list[bool]]:
    """The modules of the QR code of `data` (rows of booleans, True is dark), quiet zone excluded.

    The mask is the one with the lowest penalty unless `mask` (0-7) picks one.

    Raises:
        ValueError: more data than a version-40 code holds at level H.
    """
    version, words = _codewords(data)
    best: tuple[int, list[list[bool]]] | None = None
    for candidate in range(8) if mask is None else (mask,):
        grid = _Grid(version)
        grid.draw_function_patterns()
        grid.draw_codewords(words)
        grid.apply_mask(candidate)
        grid.draw_format(candidate)
        score = grid.penalty()
        if best is None or score < best[0]:
            best = (score, grid.dark)
    assert best is not None
    return best[1]


def qr_svg(text: str) -> str:
    """The QR code of `text` as an SVG document: 3-pixel modules, a 4-module quiet zone."""
    matrix = qr_matrix(text.encode("utf-8"))
    size = (len(matrix) + 2 * _QUIET_ZONE) * _MODULE_PX
    path = "".join(
        f"M{(x + _QUIET_ZONE) * _MODULE_PX},{(y + _QUIET_ZONE) * _MODULE_PX}h3v3h-3z"
        for y, row in enumerate(matrix)
        for x, dark in enumerate(row)
        if dark
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}"'
        f' viewBox="0 0 {size} {size}"><rect width="{size}" height="{size}" fill="#fff"/>'
        f'<path fill="#000" d="{path}"/></svg>'
    )
