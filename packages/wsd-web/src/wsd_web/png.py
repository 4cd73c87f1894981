"""A minimal PNG encoder for 8-bit RGBA images (no dependency beyond zlib)."""

from __future__ import annotations

import struct
import zlib

_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def encode_png(rgba: bytes, width: int, height: int) -> bytes:
    """``width`` x ``height`` RGBA pixels (row-major, 4 bytes each) as a PNG file."""
    if width <= 0 or height <= 0 or len(rgba) != width * height * 4:
        raise ValueError(f"{len(rgba)} bytes is not a {width}x{height} RGBA image")
    stride = width * 4
    # Filter type 0 (none) before every row.
    raw = b"".join(b"\x00" + rgba[y * stride : (y + 1) * stride] for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        _SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, 9))
        + _chunk(b"IEND", b"")
    )
