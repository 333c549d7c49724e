"""Reading the text chunks of a PNG (tEXt, zTXt, iTXt) with the standard library, so a graph saved
inside an image by SaveImage can be loaded back without an imaging library in the engine."""

from __future__ import annotations

import struct
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class PngTextError(ValueError):
    """Not a PNG, or a damaged one."""


def read_png_text(data: bytes) -> dict[str, str]:
    """Every text chunk of the PNG in `data`, by keyword (the first of a repeated keyword wins)."""
    if not data.startswith(PNG_SIGNATURE):
        raise PngTextError("not a PNG file")
    texts: dict[str, str] = {}
    position = len(PNG_SIGNATURE)
    while position + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        body = data[position + 8 : position + 8 + length]
        if len(body) < length:
            raise PngTextError("the PNG is truncated")
        position += 12 + length  # length, type, body, CRC
        if kind == b"IEND":
            break
        try:
            if kind == b"tEXt":
                keyword, _, text = body.partition(b"\x00")
                texts.setdefault(keyword.decode("latin-1"), text.decode("latin-1"))
            elif kind == b"zTXt":
                keyword, _, rest = body.partition(b"\x00")
                texts.setdefault(keyword.decode("latin-1"), zlib.decompress(rest[1:]).decode("latin-1"))
            elif kind == b"iTXt":
                keyword, _, rest = body.partition(b"\x00")
                compressed, _method = rest[0], rest[1]
                _language, _, rest = rest[2:].partition(b"\x00")
                _translated, _, text = rest.partition(b"\x00")
                raw = zlib.decompress(text) if compressed else text
                texts.setdefault(keyword.decode("latin-1"), raw.decode("utf-8"))
        except (zlib.error, UnicodeDecodeError, IndexError) as error:
            raise PngTextError(f"a text chunk is damaged ({error})") from None
    return texts
