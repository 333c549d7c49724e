"""Single-file checkpoints tokenize exactly as OpenCLIP does: our tokenizer against open_clip's own.

open_clip's tokenizer.py is loaded by its file path, never by `import open_clip` (that imports
torchvision, which this project does not install). Without open_clip_torch these tests are skipped,
except in CI, where they fail.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
import torch
from depthgraph.engine.models.clip_tokenizer import OpenClipTokenizer
from depthgraph.engine.models.sd2_depth import BPE_FILE, find_tokenizer

MISSING = "open_clip_torch is not installed; install it with `pip install --no-deps open_clip_torch`"


def corpus() -> list[str]:
    """Prompts that exercise every step of the tokenizer: cleaning, splitting, bytes, merges, cutting."""
    punctuation = [
        "cat!!", "cat!!!", "wow!", "!", "!!", "!!!!!!!!", "?!...", "--", "a -- b", "...", "—", "a—b",
        "(masterpiece:1.2)", "((best quality))", "[[blue hair]]", "{red|green}", "a,b,c", "end.",
        "'single'", '"double"', "a/b\\c", "@user #tag $5 50%", "~`^*+=", "_under_score_", "<lora:x:0.8>",
        "hello!!world", "!cat", "cat, dog; bird: fish", "a!b?c.d", "(((", "!!!???", "“curly” quotes",
    ]  # fmt: skip
    emoji = [
        "🐱", "a cat 🐱🐶", "👩‍👩‍👧‍👦 family", "👍🏽 thumbs", "🏳️‍🌈 flag", "❤️", "🇯🇵", "🧑‍🚀 astronaut",
        "🐱🐱🐱", "sunset🌅beach", "✨magic✨", "☕ coffee", "🤖🦾",
    ]  # fmt: skip
    scripts = [
        "café au lait", "naïve façade", "Ångström", "São Paulo", "Zürich Straße", "Crème brûlée",
        "日本の城", "一只猫在花园里", "고양이", "قطة في الحديقة", "кошка на крыше", "Москва зимой",
        "बिल्ली बगीचे में", "Ελληνικά", "עברית", "ภาษาไทย", "Ω≈ç√∫", "İstanbul", "ﬁne ligature",
        "Ｆｕｌｌｗｉｄｔｈ", "Tiếng Việt", "e\u0301 combining", "ǅungla", "ᚠᚢᚦ runes", "𝕓𝕠𝕝𝕕",
    ]  # fmt: skip
    entities = [
        "&amp;", "&amp;amp;", "&lt;b&gt;bold&lt;/b&gt;", "rock &#39;n&#39; roll", "&quot;hi&quot;",
        "&nbsp;space", "&copy; 2024", "&#x27;", "&unknown;", "AT&T", "&amp", "fish &amp chips",
        "&amp;lt;tag&amp;gt;", "&#128049; cat", "Tom &amp; Jerry",
    ]  # fmt: skip
    mojibake = [
        "cafÃ©", "naÃ¯ve", "Ã¼ber", "donâ€™t", "â€œquotedâ€\x9d", "SchÃ¶n", "piÃ±a colada",
        "The Mona Lisa doesnÃ¢â‚¬â„¢t have eyebrows.", "Ã\xa0 la carte",
    ]  # fmt: skip
    numbers = [
        "4k", "8k uhd", "3.14159", "1,000,000", "1920x1080", "f/1.8", "50mm", "-273.15", "2024-01-01",
        "v1.5", "0.5 weight", "١٢٣", "½", "x²", "Ⅻ", "007", "1st 2nd 3rd", "12:30pm",
    ]  # fmt: skip
    contractions = [
        "don't", "don’t", "it's", "it’s", "we're", "we’re", "they've", "I'm", "I’m", "you'll", "she'd",
        "DON'T", "can't", "o'clock", "rock 'n' roll", "'s 't 're", "cat's toy", "James' car", "'''",
    ]  # fmt: skip
    whitespace = [
        "a\tcat", "a\ncat", "a   cat", "  leading", "trailing   ", "\t\n mixed \r\n ", "a\u00a0cat",
        "a\u3000cat", "a\u200bcat", "line1\n\nline2", "tab\t\tand\t\tspaces  ", "a\x0bb\x0cc",
    ]  # fmt: skip
    case = [
        "A PHOTO OF A CAT", "CamelCaseWords", "iPhone", "McDonald's", "HeLLo WoRLD", "ΣΊΣΥΦΟΣ", "İ", "ß",
        "ÀÉÎÕÜ", "ПРИВЕТ",
    ]  # fmt: skip
    specials = [
        "<start_of_text>", "<end_of_text>", "<START_OF_TEXT>", "a <end_of_text> b", "<|startoftext|>",
        "<|endoftext|>", "<start_of_text><end_of_text>", "x<start_of_text>y", "<<end_of_text>>",
    ]  # fmt: skip
    empty = ["", " ", "   ", "\t", "\n\n", "\u00a0", "\r\n"]
    long = [
        "word " * 100, "a photo of " * 30, ", ".join(["masterpiece", "best quality"] * 40), "一" * 200,
        "🐱" * 100, "!" * 300, "cat!! " * 60, "&amp; " * 90, " ".join(str(n) for n in range(100)),
        "portrait of a knight in shining armour, highly detailed, digital painting, artstation, concept "
        "art, smooth, sharp focus, illustration, art by greg rutkowski and alphonse mucha, 8k, unreal "
        "engine, octane render, volumetric lighting, trending on artstation, intricate, elegant",
    ]  # fmt: skip
    subjects = ["a cat", "an old lighthouse", "the Eiffel Tower", "a bowl of ramen", "two robots"]
    styles = ["oil painting", "photo, 35mm", "watercolour!!", "by Hokusai", "8K HDR", "low-poly 3D"]
    combined = [f"{subject}, {style}" for subject in subjects for style in styles]
    return (
        punctuation + emoji + scripts + entities + mojibake + numbers + contractions + whitespace + case
    ) + (specials + empty + long + combined)


def open_clip_folder() -> Path:
    """Where open_clip is installed; skips the test without it (fails it in CI)."""
    spec = importlib.util.find_spec("open_clip")
    for location in (spec.submodule_search_locations or []) if spec else []:
        if (Path(location) / "tokenizer.py").is_file() and (Path(location) / BPE_FILE).is_file():
            return Path(location)
    if os.environ.get("CI") == "true":
        pytest.fail(MISSING + " (it is part of the test set-up in CI)")
    pytest.skip(MISSING)


@pytest.fixture(scope="module")
def bpe_file() -> Path:
    return open_clip_folder() / BPE_FILE


@pytest.fixture(scope="module")
def open_clip_module() -> ModuleType:
    """open_clip's tokenizer.py, loaded by path (it needs ftfy, regex, numpy and torch only)."""
    spec = importlib.util.spec_from_file_location("open_clip_tokenizer", open_clip_folder() / "tokenizer.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def reference(open_clip_module: ModuleType, bpe_file: Path) -> Any:
    return open_clip_module.SimpleTokenizer(str(bpe_file))  # clean="lower", as open_clip.tokenize


@pytest.fixture(scope="module")
def ours(bpe_file: Path) -> OpenClipTokenizer:
    return OpenClipTokenizer.from_bpe_file(bpe_file)


def disagreements(reference: Any, ids_of: Any, prompts: list[str]) -> list[str]:
    """The prompts whose 77 ids differ from open_clip's."""
    expected = reference(prompts).tolist()
    return [prompt for prompt, row in zip(prompts, expected, strict=True) if ids_of(prompt) != row]


def test_the_corpus_covers_at_least_200_prompts() -> None:
    prompts = corpus()
    assert len(prompts) >= 200
    assert len(set(prompts)) == len(prompts)


def test_our_tokenizer_gives_open_clips_ids_for_every_prompt(reference: Any, ours: OpenClipTokenizer) -> None:
    prompts = corpus()
    wrong = disagreements(reference, lambda prompt: ours.ids(prompt)[0], prompts)
    print(f"ours vs open_clip: {len(prompts) - len(wrong)} of {len(prompts)} prompts give the same 77 ids")
    assert wrong == []


def test_open_clips_known_ids_for_runs_of_exclamation_marks(ours: OpenClipTokenizer) -> None:
    ids, dropped = ours.ids("cat!!")
    assert ids[:4] == [49406, 2368, 748, 49407] and ids[4:] == [0] * 73 and dropped is None


def test_a_long_prompt_is_cut_to_77_ids_ending_with_the_end_id(
    reference: Any, ours: OpenClipTokenizer
) -> None:
    prompt = "a photo of " * 25 + "a cat, and then the sea"  # 75 tokens fit between start and end
    ids, dropped = ours.ids(prompt)
    assert len(ids) == 77 and ids[-1] == ours.end_id
    assert ids == reference(prompt)[0].tolist()
    assert dropped == "a cat , and then the sea"


def write_tokenizer_folder(reference: Any, folder: Path) -> None:
    """vocab.json and merges.txt as stabilityai/stable-diffusion-2-depth's tokenizer/ has them, written
    from open_clip's own reading of the BPE file (so not from our code)."""
    renamed = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}
    vocab = {renamed.get(piece, piece): index for piece, index in reference.encoder.items()}
    merges = sorted(reference.bpe_ranks, key=reference.bpe_ranks.__getitem__)
    folder.mkdir(parents=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    lines = ["#version: 0.2", *(f"{first} {second}" for first, second in merges)]
    (folder / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_a_tokenizer_folder_gives_open_clips_ids(reference: Any, tmp_path: Path) -> None:
    write_tokenizer_folder(reference, tmp_path / "tokenizer")
    from_folder = OpenClipTokenizer.from_folder(tmp_path / "tokenizer")
    assert (from_folder.start_id, from_folder.end_id) == (49406, 49407)
    assert disagreements(reference, lambda prompt: from_folder.ids(prompt)[0], corpus()) == []


def test_a_tokenizer_folder_saved_by_transformers_5_gives_open_clips_ids(
    reference: Any, ours: OpenClipTokenizer, tmp_path: Path
) -> None:
    ours.to_transformers().save_pretrained(tmp_path / "tokenizer")  # tokenizer.json only
    from_folder = OpenClipTokenizer.from_folder(tmp_path / "tokenizer")
    assert disagreements(reference, lambda prompt: from_folder.ids(prompt)[0], corpus()) == []


def test_find_tokenizer_reads_a_tokenizer_folder_beside_the_file_as_open_clip_does(
    reference: Any, tmp_path: Path
) -> None:
    write_tokenizer_folder(reference, tmp_path / "tokenizer")
    tokenizer = find_tokenizer(tmp_path)
    assert isinstance(tokenizer, OpenClipTokenizer)
    assert tokenizer.ids("cat!! &amp; dog")[0] == reference("cat!! &amp; dog")[0].tolist()


def test_find_tokenizer_without_a_folder_finds_open_clips_vocabulary(
    bpe_file: Path, ours: OpenClipTokenizer, tmp_path: Path
) -> None:
    tokenizer = find_tokenizer(tmp_path)
    assert isinstance(tokenizer, OpenClipTokenizer)
    assert tokenizer.vocab == ours.vocab and tokenizer.merges == ours.merges


def test_without_a_folder_or_open_clip_the_error_says_where_to_get_a_tokenizer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from depthgraph.engine.models.common import ModelError

    # hides open_clip's

    monkeypatch.setattr("depthgraph.engine.models.sd2_depth.BPE_FILE", "not-installed.txt.gz")
    with pytest.raises(ModelError, match=r"carry no tokenizer.*pip install --no-deps open_clip_torch"):
        find_tokenizer(tmp_path)


def test_the_converted_models_transformers_tokenizer_has_the_same_vocabulary(
    reference: Any, ours: OpenClipTokenizer, tmp_path: Path
) -> None:
    """`models convert` gives diffusers a transformers CLIPTokenizer; building it must not crash (as
    merges given as "a b" strings did with tokenizers 0.20+) and it must read the same vocabulary."""
    from transformers import CLIPTokenizer

    converted = ours.to_transformers()
    assert isinstance(converted, CLIPTokenizer)
    assert converted.pad_token == "!" and converted.model_max_length == 77
    assert len(converted) == 49408
    prompt = "a photo of an astronaut riding a horse on mars, highly detailed"
    padded = converted(prompt, padding="max_length", max_length=77, truncation=True).input_ids
    assert padded == reference(prompt)[0].tolist()
    converted.save_pretrained(tmp_path / "tokenizer")
    assert (
        CLIPTokenizer.from_pretrained(tmp_path / "tokenizer")(prompt).input_ids == padded[: padded.index(0)]
    )


def test_transformers_clip_tokenizer_differs_from_open_clip_where_the_readme_says(
    reference: Any, ours: OpenClipTokenizer
) -> None:
    """Why single files do not use transformers' tokenizer: the same vocabulary, other ids for some
    prompts (README, "Real weights", gives the count on this corpus)."""
    converted = ours.to_transformers()
    prompts = corpus()

    def transformers_ids(prompt: str) -> list[int]:
        ids: list[int] = converted(prompt, padding="max_length", max_length=77, truncation=True).input_ids
        return ids

    wrong = disagreements(reference, transformers_ids, prompts)
    print(f"transformers vs open_clip: {len(wrong)} of {len(prompts)} prompts give other ids")
    for prompt in wrong:
        print(f"  {prompt!r}: {transformers_ids(prompt)[:8]} vs {reference(prompt)[0].tolist()[:8]}")
    assert {"cat!!", "&amp;"} <= set(wrong)
    assert "a photo of a cat, oil painting" not in wrong and "a cat, oil painting" not in wrong


def test_encode_text_cuts_a_long_prompt_and_says_what_was_cut(
    reference: Any, ours: OpenClipTokenizer, caplog: pytest.LogCaptureFixture
) -> None:
    from depthgraph.nodes.text import encode_text
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408, hidden_size=8, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2
        )
    ).eval()
    clip = SimpleNamespace(get={"tokenizer": ours, "text_encoder": encoder}.__getitem__)
    prompt = "word " * 75 + "and then the sea"
    with caplog.at_level(logging.WARNING, logger="depthgraph.nodes.text"):
        embeddings = encode_text(clip, prompt)  # type: ignore[arg-type]
    assert "the prompt is longer than 77 tokens; this part was cut: 'and then the sea'" in caplog.text
    with torch.inference_mode():
        expected = encoder(reference(prompt))[0]
    assert torch.equal(embeddings, expected)
