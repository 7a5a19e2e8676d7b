"""One llama.cpp sampler chain per sequence, and token-to-text pieces."""

from __future__ import annotations

import ctypes
import random

import llama_cpp

from moonbase.engines.base import SamplingParams
from moonbase.engines.llamacpp.grammar import Grammar
from moonbase.engines.llamacpp.json_grammar import GrammarError

# OpenAI's penalties apply to everything generated so far, not a window.
_PENALTY_WINDOW = -1


class SamplerChain:
    """Grammar -> penalties -> top_p -> temperature -> draw, or greedy at temperature 0.

    Owns a native object: call ``close`` (the scheduler does when a sequence
    ends) or it leaks.
    """

    def __init__(
        self,
        sampling: SamplingParams,
        n_vocab: int,
        seed: int | None,
        vocab: object = None,
        grammar: Grammar | None = None,
    ) -> None:
        self.handle = llama_cpp.llama_sampler_chain_init(
            llama_cpp.llama_sampler_chain_default_params()
        )
        if grammar is not None:
            # First, so that every later stage only sees tokens the grammar allows.
            self._add(compile_grammar(vocab, grammar))
        if sampling.presence_penalty or sampling.frequency_penalty:
            self._add(
                llama_cpp.llama_sampler_init_penalties(
                    n_vocab,
                    _PENALTY_WINDOW,
                    1.0,
                    sampling.frequency_penalty,
                    sampling.presence_penalty,
                )
            )
        if sampling.temperature <= 0.0:
            self._add(llama_cpp.llama_sampler_init_greedy())
            return
        if sampling.top_p < 1.0:
            self._add(llama_cpp.llama_sampler_init_top_p(sampling.top_p, 1))
        self._add(llama_cpp.llama_sampler_init_temp(sampling.temperature))
        draw_seed = seed if seed is not None else random.getrandbits(32)
        self._add(llama_cpp.llama_sampler_init_dist(draw_seed & 0xFFFFFFFF))

    def _add(self, sampler: object) -> None:
        llama_cpp.llama_sampler_chain_add(self.handle, sampler)

    def sample(self, ctx: object, output_index: int) -> int:
        """Draw from the logits of batch row ``output_index`` (and accept the token)."""
        return int(llama_cpp.llama_sampler_sample(self.handle, ctx, output_index))

    def close(self) -> None:
        if self.handle is not None:
            llama_cpp.llama_sampler_free(self.handle)
            self.handle = None


class PieceTable:
    """Token id -> the bytes it stands for, cached (the vocabulary never changes)."""

    def __init__(self, vocab: object) -> None:
        self._vocab = vocab
        self._pieces: dict[int, bytes] = {}
        self._buffer = ctypes.create_string_buffer(256)

    def __call__(self, token: int) -> bytes:
        piece = self._pieces.get(token)
        if piece is None:
            length = llama_cpp.llama_token_to_piece(self._vocab, token, self._buffer, 256, 0, False)
            piece = self._buffer.raw[: max(length, 0)]
            self._pieces[token] = piece
        return piece


def compile_grammar(vocab: object, grammar: Grammar) -> object:
    """A llama.cpp grammar sampler; GrammarError if llama.cpp cannot parse the grammar."""
    if grammar.triggers:
        patterns = (ctypes.c_char_p * len(grammar.triggers))(
            *(pattern.encode() for pattern in grammar.triggers)
        )
        sampler = llama_cpp.llama_sampler_init_grammar_lazy_patterns(
            vocab,
            grammar.gbnf.encode(),
            grammar.root.encode(),
            patterns,
            len(grammar.triggers),
            None,
            0,
        )
    else:
        sampler = llama_cpp.llama_sampler_init_grammar(
            vocab, grammar.gbnf.encode(), grammar.root.encode()
        )
    if not sampler:
        raise GrammarError("llama.cpp could not compile the output grammar")
    return sampler
