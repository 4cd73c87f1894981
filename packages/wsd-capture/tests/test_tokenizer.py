"""The tiny CLIP tokenizer behaves like Stable Diffusion's, and exports portably."""

from __future__ import annotations

import json

import pytest
from tokenizers import Tokenizer

from wsd_capture import build_tiny_clip_tokenizer, portable_tokenizer_json

PROMPTS = [
    "a photo of an astronaut riding a horse on the moon",
    "A Castle, at NIGHT!!  (oil painting)",
    "café crème, naïve — 東京 🐱🚀",
    "it's 42 dogs' toys\tand\nnew lines",
]


def test_special_tokens_are_last_and_padding_is_end_of_text() -> None:
    tok = build_tiny_clip_tokenizer()
    assert tok.convert_ids_to_tokens([len(tok) - 2, len(tok) - 1]) == [
        "<|startoftext|>",
        "<|endoftext|>",
    ]
    assert (tok.bos_token_id, tok.eos_token_id) == (len(tok) - 2, len(tok) - 1)
    assert tok.pad_token_id == tok.eos_token_id
    assert tok.model_max_length == 77


def test_prompt_words_are_whole_tokens_with_word_ends() -> None:
    tok = build_tiny_clip_tokenizer()
    ids = tok("A Photo of an ASTRONAUT").input_ids
    assert tok.convert_ids_to_tokens(ids) == [
        "<|startoftext|>",
        "a</w>",
        "photo</w>",
        "of</w>",
        "an</w>",
        "astronaut</w>",
        "<|endoftext|>",
    ]


def test_unknown_words_fall_back_to_byte_pieces() -> None:
    tok = build_tiny_clip_tokenizer()
    ids = tok("zebra 🐱").input_ids[1:-1]
    assert len(ids) > 2
    assert tok.decode(ids) == "zebra 🐱"


def test_prompts_are_padded_and_truncated_to_77_as_the_pipeline_asks() -> None:
    tok = build_tiny_clip_tokenizer()
    short, long = tok(
        ["a cat", "cat " * 100], padding="max_length", max_length=77, truncation=True
    ).input_ids
    assert len(short) == len(long) == 77
    assert short[:4] == [tok.bos_token_id, *tok("a cat").input_ids[1:-1], tok.eos_token_id]
    assert short[4:] == [tok.pad_token_id] * 73
    assert long[0] == tok.bos_token_id and long[-1] == tok.eos_token_id


def test_the_tokenizer_is_the_same_on_every_build() -> None:
    first = build_tiny_clip_tokenizer().backend_tokenizer.to_str()
    assert build_tiny_clip_tokenizer().backend_tokenizer.to_str() == first


@pytest.mark.parametrize("prompt", PROMPTS)
def test_portable_json_encodes_like_the_clip_tokenizer(prompt: str) -> None:
    tok = build_tiny_clip_tokenizer()
    portable = Tokenizer.from_str(portable_tokenizer_json(tok))
    body = portable.encode(prompt, add_special_tokens=False).ids
    assert [tok.bos_token_id, *body, tok.eos_token_id] == tok(prompt).input_ids


def test_portable_json_has_string_merges_and_no_padding_or_truncation() -> None:
    tok = build_tiny_clip_tokenizer()
    tok("a cat", padding="max_length", max_length=77, truncation=True)
    data = json.loads(portable_tokenizer_json(tok))
    assert data["padding"] is None and data["truncation"] is None
    assert data["model"]["merges"][:2] == ["i n", "in g</w>"]
