"""CLIP's text tokenizer as OpenCLIP runs it: the token ids that Stability's SD2 code and A1111 give the
text encoder of a single-file checkpoint (`open_clip.tokenize`, its default clean="lower").

Written from the algorithm, not copied: a prompt is cleaned (ftfy, HTML entities unescaped twice,
whitespace runs collapsed, lower-cased), split by CLIP's pre-tokenizing pattern, each piece's UTF-8
bytes mapped to printable characters and merged by byte-pair encoding in the order the merges list
gives; the ids are wrapped in start/end ids, cut to 77 (the last one becoming the end id) and padded
with 0. transformers' CLIPTokenizer gives other ids for some prompts (its pad token "!" is special, so
"!!" splits; it neither unescapes HTML nor runs ftfy), which is why single files do not use it.
"""

from __future__ import annotations

import gzip
import html
import itertools
import json
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import ftfy
import regex  # type: ignore[import-untyped]  # (no type stubs; transformers depends on it too)

# OpenCLIP's names for the two special tokens (they are matched in prompts too); transformers' vocab.json
# names them differently, with the same ids.
START_OF_TEXT = "<start_of_text>"
END_OF_TEXT = "<end_of_text>"
TRANSFORMERS_START = "<|startoftext|>"
TRANSFORMERS_END = "<|endoftext|>"
END_OF_WORD = "</w>"
MERGES_IN_BPE_FILE = 49152 - 256 - 2  # lines 1 .. this of bpe_simple_vocab_16e6.txt.gz; line 0 is a header
PAD_ID = 0


CONTEXT_LENGTH = 77


def bytes_to_unicode() -> dict[int, str]:
    """CLIP's reversible byte -> printable character table (from OpenAI's CLIP tokenizer)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(code) for code in codes), strict=True))


def clean(text: str) -> str:
    """OpenCLIP's "lower" cleaning: mojibake fixed, HTML entities unescaped (twice, so `&amp;amp;`
    becomes `&`), whitespace runs collapsed to one space, lower-cased."""
    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return " ".join(text.split()).lower()


class OpenClipTokenizer:
    """Byte-level BPE over CLIP's vocabulary, with OpenCLIP's cleaning, splitting and truncation."""

    model_max_length = CONTEXT_LENGTH  # the attribute transformers' tokenizers have, for callers that read it

    def __init__(
        self,
        vocab: Mapping[str, int],
        merges: Sequence[tuple[str, str]],
        start_id: int,
        end_id: int,
        pad_id: int = PAD_ID,
    ) -> None:
        """`vocab` maps BPE pieces (byte characters, with `</w>` at a word's end) to ids, without the two
        special tokens; `merges` are the pairs in rank order. OpenCLIP pads with 0 (SD 2.x, SDXL's
        second encoder); SD 1.x's CLIP, and SDXL's first, pad with the end id (`padded_with_end`)."""
        self.vocab = dict(vocab)
        self.pad_id = pad_id
        self.merges = list(merges)
        self.start_id = start_id
        self.end_id = end_id
        self._ranks = {pair: rank for rank, pair in enumerate(self.merges)}
        self._specials = {START_OF_TEXT: start_id, END_OF_TEXT: end_id}
        self._pieces = {index: piece for piece, index in self.vocab.items()}
        self._pieces.update({index: name for name, index in self._specials.items()})
        self._byte_to_character = bytes_to_unicode()
        self._character_to_byte = {character: byte for byte, character in self._byte_to_character.items()}
        special = "|".join(regex.escape(name) for name in self._specials)
        # OpenCLIP's pattern: a special token, an English contraction, a run of letters, one digit, or a
        # run of anything else that is not a space.
        self._pattern = regex.compile(
            special + r"""|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+""", regex.IGNORECASE
        )
        self._cache: dict[str, list[str]] = {}

    @classmethod
    def from_bpe_file(cls, path: Path) -> OpenClipTokenizer:
        """From OpenAI/OpenCLIP's `bpe_simple_vocab_16e6.txt.gz`: 256 byte characters, the same with
        `</w>`, one piece per merge, then the start and end tokens (ids 49406 and 49407)."""
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            lines = handle.read().split("\n")[1 : MERGES_IN_BPE_FILE + 1]
        merges = [_pair(line) for line in lines]
        characters = list(bytes_to_unicode().values())
        pieces = characters + [character + END_OF_WORD for character in characters]
        pieces += [first + second for first, second in merges]
        vocab = {piece: index for index, piece in enumerate(pieces)}
        return cls(vocab, merges, start_id=len(pieces), end_id=len(pieces) + 1)

    @classmethod
    def from_folder(cls, folder: Path) -> OpenClipTokenizer:
        """From a diffusers/transformers `tokenizer/` folder: its vocab.json and merges.txt, or (as
        transformers 5 saves it) its tokenizer.json."""
        if (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
            vocab: dict[str, int] = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
            lines = (folder / "merges.txt").read_text(encoding="utf-8").split("\n")
            merges = [_pair(line) for line in lines if line.strip() and not line.startswith("#version")]
        elif (folder / "tokenizer.json").is_file():
            model = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))["model"]
            vocab = model["vocab"]
            merges = [
                _pair(merge) if isinstance(merge, str) else (merge[0], merge[1]) for merge in model["merges"]
            ]
        else:
            raise ValueError(f"{folder} has neither vocab.json with merges.txt nor tokenizer.json")
        missing = [name for name in (TRANSFORMERS_START, TRANSFORMERS_END) if name not in vocab]
        if missing:
            raise ValueError(f"{folder}'s vocabulary lacks CLIP's {' and '.join(missing)} token")
        start_id, end_id = vocab[TRANSFORMERS_START], vocab[TRANSFORMERS_END]
        pieces = {piece: index for piece, index in vocab.items() if index not in (start_id, end_id)}
        return cls(pieces, merges, start_id=start_id, end_id=end_id)

    def padded_with_end(self) -> OpenClipTokenizer:
        """The same tokenizer padding with its end id, as OpenAI's CLIP (SD 1.x) is used."""
        return OpenClipTokenizer(self.vocab, self.merges, self.start_id, self.end_id, self.end_id)

    def encode(self, text: str) -> list[int]:
        """The ids of a cleaned `text`, without start, end or padding."""
        ids: list[int] = []
        for piece in self._pattern.findall(clean(text)):
            if piece in self._specials:
                ids.append(self._specials[piece])
                continue
            characters = "".join(self._byte_to_character[byte] for byte in piece.encode("utf-8"))
            ids.extend(self.vocab[merged] for merged in self._byte_pair_encode(characters))
        return ids

    def ids(self, text: str, length: int = CONTEXT_LENGTH) -> tuple[list[int], str | None]:
        """`length` ids: start, the prompt's, end, then the pad id (0). A longer prompt is cut, its last
        kept id replaced by the end id, as OpenCLIP does; the second value is the text that was cut."""
        content = self.encode(text)
        kept = content[: length - 2]
        dropped = self.decode(content[length - 2 :]) if len(content) > length - 2 else None
        ids = [self.start_id, *kept, self.end_id]
        return ids + [self.pad_id] * (length - len(ids)), dropped

    def decode(self, ids: Sequence[int]) -> str:
        """Text for `ids` (cleaned, as the tokenizer saw it), words separated by spaces."""
        characters = "".join(self._pieces[index] for index in ids)
        data = bytes(self._character_to_byte[character] for character in characters)
        return data.decode("utf-8", errors="replace").replace(END_OF_WORD, " ").strip()

    def save_vocabulary(self, folder: Path) -> None:
        """Write vocab.json and merges.txt as CLIP's transformers tokenizer folders have them."""
        vocab = {**self.vocab, TRANSFORMERS_START: self.start_id, TRANSFORMERS_END: self.end_id}
        ordered = dict(sorted(vocab.items(), key=lambda item: item[1]))
        (folder / "vocab.json").write_text(json.dumps(ordered, ensure_ascii=False), encoding="utf-8")
        merges = "".join(f"{first} {second}\n" for first, second in self.merges)
        (folder / "merges.txt").write_text("#version: 0.2\n" + merges, encoding="utf-8")

    def to_transformers(self) -> Any:
        """The same vocabulary as a transformers CLIPTokenizer, padded with "!" as
        stabilityai/stable-diffusion-2-depth's tokenizer is (what diffusers' save_pretrained needs)."""
        from transformers import CLIPTokenizer

        with tempfile.TemporaryDirectory() as folder:
            self.save_vocabulary(Path(folder))
            return CLIPTokenizer.from_pretrained(
                folder, pad_token="!", model_max_length=self.model_max_length
            )

    def _byte_pair_encode(self, characters: str) -> list[str]:
        """The BPE pieces of one pre-token (already byte characters): merge the best-ranked adjacent
        pair everywhere, left to right, until no ranked pair is left."""
        if characters in self._cache:
            return self._cache[characters]
        word = [*characters[:-1], characters[-1] + END_OF_WORD]
        while len(word) > 1:
            pairs = set(itertools.pairwise(word))
            best = min(pairs, key=lambda pair: self._ranks.get(pair, len(self._ranks)))
            if best not in self._ranks:
                break
            merged: list[str] = []
            index = 0
            while index < len(word):
                if index + 1 < len(word) and (word[index], word[index + 1]) == best:
                    merged.append(word[index] + word[index + 1])
                    index += 2
                else:
                    merged.append(word[index])
                    index += 1
            word = merged
        self._cache[characters] = word
        return word


def _pair(line: str) -> tuple[str, str]:
    first, second = line.split()
    return first, second
