"""A Hugging Face tokenizer folder made from a GGUF's own vocabulary.

The embedded SmolLM2 ships as a GGUF only; an upstream's tokenizer is a
Hugging Face folder (tokenizer.json, tokenizer_config.json). To test exact
counting against a real upstream serving SmolLM2 without downloading
anything, the folder is built from the GGUF the model package ships: its
byte-level BPE vocabulary and merges (read with llama.cpp's ``gguf``
package), SmolLM2's pre-tokenizer (digits one by one, then GPT-2's split, as
llama.cpp's "smollm" pre-tokenizer does), its control tokens as special
tokens, and its chat template.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gguf import GGUFReader
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

CONTROL, USER_DEFINED = 3, 4  # llama.cpp's token types that are whole special tokens


def _value(reader: GGUFReader, key: str) -> Any:
    field = reader.fields[key]
    return field.contents()


def write_tokenizer_folder(gguf_path: Path, folder: Path) -> Path:
    reader = GGUFReader(str(gguf_path))
    assert _value(reader, "tokenizer.ggml.model") == "gpt2", "a byte-level BPE vocabulary"
    tokens: list[str] = _value(reader, "tokenizer.ggml.tokens")
    merges = [tuple(merge.split(" ", 1)) for merge in _value(reader, "tokenizer.ggml.merges")]
    types: list[int] = _value(reader, "tokenizer.ggml.token_type")
    tokenizer = Tokenizer(models.BPE({token: i for i, token in enumerate(tokens)}, merges))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(
        [
            AddedToken(token, special=True, normalized=False)
            for token, kind in zip(tokens, types, strict=True)
            if kind in (CONTROL, USER_DEFINED)
        ]
    )
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    config = {
        "chat_template": _value(reader, "tokenizer.chat_template"),
        "bos_token": tokens[_value(reader, "tokenizer.ggml.bos_token_id")],
        "eos_token": tokens[_value(reader, "tokenizer.ggml.eos_token_id")],
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder
