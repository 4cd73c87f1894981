"""A minimal PNG encoder for 8-bit RGBA images (no dependency beyond zlib)."""

from __future__ import annotations

import struct
import zlib

_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def encode_png(rgba: bytes, width: int, height: int, text: dict[str, str] | None = None) -> bytes:
    """``width`` x ``height`` RGBA pixels (row-major, 4 bytes each) as a PNG file;
    ``text``: keyword -> UTF-8 text, each an uncompressed iTXt chunk."""
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
        + b"".join(
            _chunk(b"iTXt", key.encode("latin-1") + b"\0\0\0\0\0" + value.encode())
            for key, value in (text or {}).items()
        )
        + _chunk(b"IEND", b"")
    )


def png_text(png: bytes) -> dict[str, str]:
    """The iTXt (uncompressed) and tEXt chunks of a PNG file, keyword -> text; a
    :class:`ValueError` for a file that is not a PNG or a chunk whose CRC fails."""
    if not png.startswith(_SIGNATURE):
        raise ValueError("not a PNG file")
    out: dict[str, str] = {}
    pos = len(_SIGNATURE)
    while pos + 8 <= len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, data = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", png[pos + 8 + length : pos + 12 + length])
        if zlib.crc32(kind + data) & 0xFFFFFFFF != crc:
            raise ValueError(f"the {kind.decode('latin-1')} chunk at byte {pos} fails its CRC")
        if kind == b"tEXt":
            key, _, value = data.partition(b"\0")
            out[key.decode("latin-1")] = value.decode("latin-1")
        elif kind == b"iTXt":
            key, _, rest = data.partition(b"\0")
            if rest[:1] == b"\0":  # uncompressed
                _lang, _, rest = rest[2:].partition(b"\0")
                _translated, _, value = rest.partition(b"\0")
                out[key.decode("latin-1")] = value.decode()
        pos += 12 + length
    return out
