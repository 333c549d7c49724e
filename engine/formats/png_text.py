"""Reading the text chunks of a PNG (tEXt, zTXt, iTXt) with the standard library, so a graph saved
inside an image by SaveImage can be loaded back without an imaging library in the engine.

Compressed text is inflated a piece at a time against a budget for the whole file
(`max_text_chunk_bytes` in the settings): a few megabytes of zTXt can inflate to gigabytes, and such
a file is refused once the budget is spent, never inflated in full.
"""

from __future__ import annotations

import struct
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DEFAULT_MAX_TEXT_BYTES = 16 * 2**20  # the default of the max_text_chunk_bytes setting


class PngTextError(ValueError):
    """Not a PNG, a damaged one, or one whose text is over the budget."""


def read_png_text(data: bytes, max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES) -> dict[str, str]:
    """Every text chunk of the PNG in `data`, by keyword (the first of a repeated keyword wins).
    Raises `PngTextError` when the text of the file, decompressed, is over `max_text_bytes`."""
    if not data.startswith(PNG_SIGNATURE):
        raise PngTextError("not a PNG file")
    texts: dict[str, str] = {}
    budget = _Budget(max_text_bytes)
    position = len(PNG_SIGNATURE)
    while position + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        body = data[position + 8 : position + 8 + length]
        if len(body) < length:
            raise PngTextError("the PNG is truncated")
        position += 12 + length  # length, type, body, CRC
        if kind == b"IEND":
            break
        if kind not in (b"tEXt", b"zTXt", b"iTXt"):
            continue
        keyword_bytes, _, rest = body.partition(b"\x00")
        keyword = keyword_bytes.decode("latin-1")
        if keyword in texts:
            continue  # a repeated keyword is not read (nor inflated) again
        try:
            if kind == b"tEXt":
                texts[keyword] = budget.spend(rest).decode("latin-1")
            elif kind == b"zTXt":
                texts[keyword] = budget.inflate(rest[1:]).decode("latin-1")
            else:
                compressed, _method = rest[0], rest[1]
                _language, _, rest = rest[2:].partition(b"\x00")
                _translated, _, text = rest.partition(b"\x00")
                raw = budget.inflate(text) if compressed else budget.spend(text)
                texts[keyword] = raw.decode("utf-8")
        except (zlib.error, UnicodeDecodeError, IndexError) as error:
            raise PngTextError(f"a text chunk is damaged ({error})") from None
    return texts


class _Budget:
    """The bytes of text a file may still yield; inflating stops as soon as they are spent."""

    def __init__(self, max_text_bytes: int) -> None:
        self.limit = max_text_bytes
        self.left = max_text_bytes

    def spend(self, text: bytes) -> bytes:
        if len(text) > self.left:
            raise self._over()
        self.left -= len(text)
        return text

    def inflate(self, compressed: bytes) -> bytes:
        inflater = zlib.decompressobj()
        text = inflater.decompress(compressed, self.left + 1)  # one byte more tells "over"
        if len(text) > self.left:
            raise self._over()
        if not inflater.eof:
            raise PngTextError("a text chunk is damaged (its compressed text is cut short)")
        self.left -= len(text)
        return text

    def _over(self) -> PngTextError:
        return PngTextError(
            f"its text chunks hold more than {self.limit} bytes of text once decompressed, over the "
            "max_text_chunk_bytes limit (settings); a graph is far smaller: this is not a saved graph, "
            "or raise the limit"
        )
