"""Tokenizing a long templated prompt in linear time.

llama.cpp's tokenizer, asked to parse special tokens, first partitions the
text at every special token, and that partition is quadratic in how many
there are: a prompt of 8,000 one-word turns (16,000 special tokens) took
8.7 s to tokenize and 16,000 turns four times that, which let one request of
many small messages hold a CPU for a minute. Each raw-text fragment between
special tokens is tokenized on its own anyway, so cutting the text just before
a special token and tokenizing the pieces separately gives the same tokens,
each call bounded. That holds for byte-level BPE vocabularies; one whose
special tokens strip neighbouring spaces, or that prefixes each call with a
space, could differ, so the cut is used only if a probe prompt (rendered by
the model's own template) comes out the same both ways.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable

import llama_cpp
from llama_cpp import _internals

# Special tokens per tokenize call: small enough that the quadratic partition
# costs nothing, large enough that calls are few.
SPECIALS_PER_PIECE = 64

_SPECIAL = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED


class PromptTokenizer:
    def __init__(self, model: _internals.LlamaModel, probe: str) -> None:
        self._model = model
        texts = set()
        for token in range(model.n_vocab()):
            if model.token_get_attr(token) & _SPECIAL:
                text = model.token_get_text(token)
                if text:
                    texts.add(text)
        ordered = sorted(texts, key=len, reverse=True)  # the longest match wins, as in llama.cpp
        self._special = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        self.cuts = self._special is not None and self._pieces(probe, 2) == self._whole(probe)

    def tokenize(self, text: str) -> list[int]:
        if not self.cuts:
            return self._whole(text)
        return self._pieces(text, SPECIALS_PER_PIECE)

    def _whole(self, text: str) -> list[int]:
        return list(self._model.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def _pieces(self, text: str, per_piece: int) -> list[int]:
        assert self._special is not None
        starts = [match.start() for match in self._special.finditer(text)]
        cuts = [0, *starts[per_piece::per_piece], len(text)]
        tokens: list[int] = []
        for begin, end in itertools.pairwise(cuts):
            if end > begin:
                tokens += self._whole(text[begin:end])
        return tokens


def probe_prompt(render: Callable[[list[tuple[str, str]]], str]) -> str:
    """A few turns of varied text, rendered by the model's template."""
    turns = [
        ("system", "You are helpful.\n\n  Indented  text, tabs\tand 中文."),
        ("user", " leading space and trailing \n"),
        ("assistant", "Answer: 42!\n"),
        ("user", "\n\nnewlines first"),
    ]
    return render(turns)
