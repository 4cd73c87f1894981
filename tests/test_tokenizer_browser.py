"""The browser tokenizes prompts exactly as diffusers' CLIPTokenizer does.

The app's ``clip_tokenizer.js`` with the vendored web-tokenizers wasm, run in
headless Chromium and served by wsd-web's server, against Python's
``CLIPTokenizer(text, padding="max_length", max_length=model_max_length,
truncation=True).input_ids`` (the call StableDiffusionPipeline makes) for the
project's tiny CLIP tokenizer, on prompts chosen to exercise its normalizer,
pre-tokenizer and byte-level BPE.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from transformers import CLIPTokenizer

from wsd_capture.tokenizer import build_tiny_clip_tokenizer
from wsd_web.headless import headless_page

LONG_PROMPT = (
    "a highly detailed cinematic photograph of an astronaut riding a horse across an ancient "
    "desert at sunset, golden light, dramatic clouds, 35mm lens, shallow depth of field, "
    "trending on artstation, masterpiece, best quality, ultra sharp focus, 8k wallpaper, "
    "by an unknown painter from the 19th century, oil on canvas 🎨🐎🚀, vivid colors"
)

PROMPTS = [
    "",
    " ",
    "a photo of a cat",
    "astronaut riding a horse",
    "A Photo Of A CAT",
    "ASTRONAUT RIDING A HORSE ON MARS",
    "a cat, a dog; and a fox!",
    "hello...world?? (yes) [no] {maybe}",
    "  leading and trailing spaces  ",
    "tabs\tand\nnewlines\r\nhere",
    "multiple     spaces\u00a0and a no-break space",
    "it's the cat's hat; we'll see, they're ok, I'd, you've, I'm, don't",
    "café crème brûlée",
    "naïve Zoë in a façade",
    "Ångström ÉCOLE Straße İstanbul",
    "e\u0301te\u0301 (combining accents)",
    "the ﬁrst ligature",
    "🐱 cat emoji 🚀✨",
    "👩‍🚀 an astronaut with a ZWJ sequence 🏳️‍🌈",
    "日本語のテキスト",
    "Здравствуй, мир",
    "numbers 1234567890 and 3.14 and 1e-5",
    "2024-11-20 12:30:59",
    "x1y2z3 a1b2",
    "#hashtag @mention $100 50% a&b ~tilde~ `code` <tag>",
    "<|startoftext|>a cat<|endoftext|>",
    "supercalifragilisticexpialidocious zxqvj",
    "qwertyuiop asdfghjkl",
    "cat " * 75,
    "cat " * 76,
    LONG_PROMPT,
    LONG_PROMPT * 3,
]

TOKENIZE_PAGE = """<!doctype html>
<meta charset="utf-8">
<title>wsd tokenizer test</title>
<link rel="icon" href="data:,">
<script src="/vendor/tokenizers/index.js"></script>
"""

TOKENIZE_JS = """async ({ prompts, info }) => {
  const { ClipTokenizer } = await import("/js/clip_tokenizer.js");
  const json = await (await fetch("/model/tokenizer.json")).arrayBuffer();
  const raw = await window.tokenizers.Tokenizer.fromJSON(json);
  const bare = prompts.map((p) => Array.from(raw.encode(p)));
  raw.dispose();
  const tok = await ClipTokenizer.create(window.tokenizers, json, info);
  const ids = prompts.map((p) => Array.from(tok.encode(p)));
  const added = tok.added;
  tok.dispose();
  return { bare, ids, added };
}"""


@pytest.fixture(scope="module")
def tokenizer() -> CLIPTokenizer:
    return build_tiny_clip_tokenizer()


@pytest.fixture(scope="module")
def browser_result(
    tokenizer: CLIPTokenizer, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """Tokenize every prompt in headless Chromium, recording the page's requests."""
    model_dir = tmp_path_factory.mktemp("tokenizer-model")
    tokenizer.save_pretrained(model_dir)
    assert (model_dir / "tokenizer.json").is_file()
    (model_dir / "tokenize.html").write_text(TOKENIZE_PAGE)
    info = {
        "maxLength": tokenizer.model_max_length,
        "bosTokenId": tokenizer.bos_token_id,
        "eosTokenId": tokenizer.eos_token_id,
        "padTokenId": tokenizer.pad_token_id,
    }
    with headless_page(model_dir, "model/tokenize.html") as (page, errors):
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.wait_for_function("() => window.tokenizers !== undefined")
        result: dict[str, Any] = page.evaluate(TOKENIZE_JS, {"prompts": PROMPTS, "info": info})
    assert not errors, errors
    return {**result, "requests": requests}


def python_input_ids(tokenizer: CLIPTokenizer, prompt: str) -> list[int]:
    """What StableDiffusionPipeline feeds its text encoder."""
    ids = tokenizer(
        prompt, padding="max_length", max_length=tokenizer.model_max_length, truncation=True
    ).input_ids
    return [int(i) for i in ids]


def test_the_prompts_cover_truncation(tokenizer: CLIPTokenizer) -> None:
    body = [len(tokenizer(p, add_special_tokens=False).input_ids) for p in PROMPTS]
    assert tokenizer.model_max_length == 77
    assert body[PROMPTS.index("cat " * 75)] == 75  # fills the 77 exactly
    assert body[PROMPTS.index("cat " * 76)] == 76  # one token cut
    assert body[PROMPTS.index(LONG_PROMPT)] > 75
    assert body[PROMPTS.index("")] == 0
    assert len(tokenizer.tokenize("zxqvj")) == 5  # out of the vocabulary: byte pieces


@pytest.mark.browser
def test_browser_input_ids_match_python(
    tokenizer: CLIPTokenizer, browser_result: dict[str, Any]
) -> None:
    mismatches = {
        prompt: (got, python_input_ids(tokenizer, prompt))
        for prompt, got in zip(PROMPTS, browser_result["ids"], strict=True)
        if got != python_input_ids(tokenizer, prompt)
    }
    assert not mismatches, mismatches
    assert {len(ids) for ids in browser_result["ids"]} == {77}


@pytest.mark.browser
def test_web_tokenizers_encode_adds_no_special_tokens(
    tokenizer: CLIPTokenizer, browser_result: dict[str, Any]
) -> None:
    """web-tokenizers skips the tokenizer.json post-processor (CLIP's adds BOS/EOS)."""
    assert browser_result["added"] == {"bos": False, "eos": False}
    for prompt, bare in zip(PROMPTS, browser_result["bare"], strict=True):
        assert bare == tokenizer(prompt, add_special_tokens=False).input_ids, prompt


@pytest.mark.browser
def test_the_tokenizer_wasm_is_embedded_in_the_bundle(browser_result: dict[str, Any]) -> None:
    """Nothing but the module and tokenizer.json is fetched: no .wasm beside the bundle."""
    paths = sorted({Path(url.split("?")[0]).name for url in browser_result["requests"]})
    assert paths == ["clip_tokenizer.js", "tokenizer.json"], paths
