"""A small but real CLIP BPE tokenizer for the tiny presets, and tokenizer metadata.

The tiny tokenizer behaves like Stable Diffusion's CLIP tokenizer (byte-level
BPE, lower-casing, ``</w>`` word ends, ``<|startoftext|>``/``<|endoftext|>``,
padding with ``<|endoftext|>`` to 77 tokens) with a vocabulary of about a thousand
entries: the 256 byte symbols, their ``</w>`` forms, and merges learned from a
short embedded list of prompt words. It is built without any download and is
identical on every run.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise

from transformers import CLIPTokenizer

BOS_TOKEN = "<|startoftext|>"  # nosec B105 # CLIP's special token text
EOS_TOKEN = "<|endoftext|>"  # nosec B105 # CLIP's special token text
MODEL_MAX_LENGTH = 77
END_OF_WORD = "</w>"

# Words that test prompts are made of (whitespace-separated); the merges are learned from them.
_PROMPT_WORDS = """
a an the of in on at with and or by from to for under over near beside behind
photo photograph picture painting drawing sketch portrait landscape illustration
render oil watercolor digital art artwork style detailed highly realistic
cinematic lighting light dark bright night day sunset sunrise morning evening
cat cats dog dogs horse horses bird birds fish tiger lion fox wolf bear rabbit
astronaut robot knight wizard princess king queen woman man girl boy child
people person face eyes hair smiling standing sitting running riding flying
house castle city street road bridge tower forest tree trees flower flowers
garden mountain mountains river lake sea ocean beach island desert snow rain sky
clouds cloud moon stars sun space planet galaxy fire water stone wood red green
blue yellow orange purple pink black white gray golden silver small large big
tiny huge beautiful old new ancient modern futuristic colorful vibrant soft
sharp focus trending masterpiece quality best high resolution wallpaper concept
fantasy science fiction epic scene view close up wide angle shot camera lens
depth field studio background foreground happy sad calm wild magic magical
glowing shining floating broken ruined
"""


@dataclass(frozen=True)
class TokenizerInfo:
    """What the browser needs to tokenize like the pipeline's CLIP tokenizer."""

    model_max_length: int
    bos_token_id: int
    eos_token_id: int
    pad_token_id: int
    tokenizer_json: str


def _byte_symbols() -> list[str]:
    """The 256 symbols byte-level BPE writes bytes as, in CLIP's vocabulary order.

    Printable Latin-1 bytes stand for themselves; the others, in byte order, are
    shifted to the code points from 256 on.
    """
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    shifted = 256 - len(printable)
    return [chr(b) for b in printable] + [chr(256 + i) for i in range(shifted)]


def _learn_merges(words: list[str]) -> list[tuple[str, str]]:
    """Greedy BPE merges over ``words`` until each word is one token.

    The most frequent adjacent pair is merged first; ties go to the smaller pair.
    """
    splits: dict[tuple[str, ...], int] = Counter(
        (*word[:-1], word[-1] + END_OF_WORD) for word in words
    )
    merges: list[tuple[str, str]] = []
    while True:
        pairs: Counter[tuple[str, str]] = Counter()
        for symbols, count in splits.items():
            for pair in pairwise(symbols):
                pairs[pair] += count
        if not pairs:
            return merges
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        merges.append(best)
        merged: Counter[tuple[str, ...]] = Counter()
        for symbols, count in splits.items():
            out: list[str] = []
            i = 0
            while i < len(symbols):
                if symbols[i : i + 2] == best:
                    out.append(best[0] + best[1])
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            merged[tuple(out)] += count
        splits = merged


def build_tiny_clip_tokenizer(pad_token: str = EOS_TOKEN) -> CLIPTokenizer:
    """A deterministic CLIP BPE tokenizer with a vocabulary of about a thousand tokens.

    Token ids follow CLIP's layout: byte symbols, then their ``</w>`` forms, then
    one token per merge, then ``<|startoftext|>`` and ``<|endoftext|>`` last.
    ``pad_token`` is ``<|endoftext|>`` as in SD 1.x; SDXL's second tokenizer
    (OpenCLIP's) pads with ``"!"`` (id 0).
    """
    symbols = _byte_symbols()
    tokens = symbols + [s + END_OF_WORD for s in symbols]
    merges = _learn_merges(_PROMPT_WORDS.split())
    tokens += [a + b for a, b in merges]
    tokens += [BOS_TOKEN, EOS_TOKEN]
    vocab = {token: i for i, token in enumerate(dict.fromkeys(tokens))}
    return CLIPTokenizer(
        vocab=vocab,
        merges=merges,  # type: ignore[arg-type]  # pairs; the annotation says strings, BPE wants pairs
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=pad_token,
        unk_token=EOS_TOKEN,
        model_max_length=MODEL_MAX_LENGTH,
    )


def portable_tokenizer_json(tokenizer: CLIPTokenizer) -> str:
    """``tokenizer.json`` text that HF tokenizers of any version reads, also compiled to wasm.

    Merges are written as ``"a b"`` strings (the form older readers know; byte-level
    tokens hold no spaces), and padding/truncation are left out: the caller adds
    BOS/EOS, truncates and pads to ``model_max_length`` as ``CLIPTokenizer`` does.
    """
    data = json.loads(tokenizer.backend_tokenizer.to_str())
    data["truncation"] = None
    data["padding"] = None
    merges = data["model"]["merges"]
    if all(isinstance(m, list) and not any(" " in part for part in m) for m in merges):
        data["model"]["merges"] = [" ".join(m) for m in merges]
    return json.dumps(data, ensure_ascii=False, indent=2)


def tokenizer_info(tokenizer: CLIPTokenizer) -> TokenizerInfo:
    """The ids, length and portable ``tokenizer.json`` text of a pipeline's CLIP tokenizer."""
    tokenizer_json = portable_tokenizer_json(tokenizer)
    return TokenizerInfo(
        model_max_length=int(tokenizer.model_max_length),
        bos_token_id=int(tokenizer.bos_token_id),
        eos_token_id=int(tokenizer.eos_token_id),
        pad_token_id=int(tokenizer.pad_token_id),
        tokenizer_json=tokenizer_json,
    )
