"""Prompt tokens as an upstream will bill them, where the upstream cannot say.

vLLM, SGLang, llama-server and Moonshot count for us (``/tokenize`` and
friends); a generic OpenAI-compatible server does not, and its chat template
adds tokens that a count of the messages' characters never sees (SmolLM2's
template alone puts a 20-token default system prompt before a conversation
that has none). Two ways to do better, best first:

- ``HfPromptCounter``: the engine names a Hugging Face tokenizer folder
  (``tokenizer.json`` and the chat template, from ``chat_template.jinja`` or
  ``tokenizer_config.json``): the template is rendered as transformers renders
  it and the text tokenized with the ``tokenizers`` library. Exact, locally,
  with no request to the upstream.
- ``TemplateCalibration``: the upstream reports the prompt tokens of every
  request it serves, so the engine learns what its tokenizer and template make
  of a conversation: a ridge regression of the reported prompt tokens on the
  conversation's shape (its text cut into pieces as a BPE pre-tokenizer cuts
  it, what long and capitalised words and CJK characters add, its messages,
  whether a system message is there), starting from the plain estimate (a
  token per piece, 4 a message) and moving with the evidence. No vocabulary is
  assumed: the embedded model's is at hand but is not the upstream's, so the
  rates that differ between vocabularies are learnt per upstream model.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from moonbase.engines.base import TOKENS_PER_MESSAGE
from moonbase.engines.chat_template import ChatTemplate


class TokenizerFolderError(ValueError):
    """The configured tokenizer folder cannot be used (named in the message)."""


class HfPromptCounter:
    def __init__(self, folder: Path) -> None:
        from tokenizers import Tokenizer  # only deployments that name a tokenizer load it

        tokenizer_file = folder / "tokenizer.json"
        if not tokenizer_file.is_file():
            raise TokenizerFolderError(f"{tokenizer_file} does not exist")
        self._tokenizer = Tokenizer.from_file(str(tokenizer_file))
        config = _read_json(folder / "tokenizer_config.json")
        source = _chat_template(folder, config)
        if source is None:
            raise TokenizerFolderError(
                f"{folder} has no chat template (chat_template.jinja, or chat_template "
                "in tokenizer_config.json)"
            )
        self._template = ChatTemplate(
            source,
            bos_token=_token_text(config.get("bos_token")),
            eos_token=_token_text(config.get("eos_token")),
        )

    def count(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> int:
        """Tokens of the rendered prompt (text only: media are counted apart)."""
        text = self._template.render_messages([_text_only(m) for m in messages], tools)
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TokenizerFolderError(f"{path} is not readable JSON: {exc}") from exc
    return data if isinstance(data, dict) else {}


def _chat_template(folder: Path, config: dict[str, Any]) -> str | None:
    jinja = folder / "chat_template.jinja"  # where newer transformers releases save it
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    template = config.get("chat_template")
    if isinstance(template, list):  # named templates: the "default" one
        named = {item.get("name"): item.get("template") for item in template}
        template = named.get("default")
    return template if isinstance(template, str) else None


def _token_text(token: Any) -> str:
    if isinstance(token, dict):  # an AddedToken as transformers saves it
        token = token.get("content")
    return token if isinstance(token, str) else ""


def _text_only(message: dict[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    if isinstance(content, list):
        texts = [
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        ]
        return {**message, "content": "\n".join(texts)}
    if content is None:
        return {**message, "content": ""}
    return message


# -- calibration ---------------------------------------------------------------

# A conversation's features. Its text as a byte-level BPE pre-tokenizer cuts it:
# every piece (a word, a digit, a run of punctuation, a line break with its
# indentation, a run of spaces) is at least one token; what a vocabulary adds
# for long or rare pieces, in two parts because vocabularies differ most in
# how they split capitalised words (measured on docs/*.md: SmolLM2's 49k
# vocabulary splits them twice as often as cl100k's 100k, lowercase words
# alike); CJK characters, counted apart because vocabularies put anything from
# one to three characters in a token. Then what the chat template adds: a cost
# per message (role markers), a constant (the generation prompt) and a cost
# for a conversation without a system message (templates that add a default
# one).
FEATURES = (
    "pieces",
    "long_pieces",
    "capitalised_words",
    "cjk_characters",
    "messages",
    "constant",
    "no_system_message",
)
# The plain estimate, where no request has been observed yet: a token per
# piece and per CJK character, what long pieces add, 4 tokens a message.
_PRIOR = (1.0, 1.0, 1.0, 1.0, float(TOKENS_PER_MESSAGE), 0.0, 0.0)
# How much the prior weighs, per feature: 0.3 of what one typical observation
# tells about it, a ~100-token conversation whose features are these (80
# pieces, 4 tokens' worth of long ones, ...), so a few requests outweigh it.
_TYPICAL = (80.0, 4.0, 2.0, 50.0, 3.0, 1.0, 1.0)
_TYPICAL_TOKENS = 100.0
_PRIOR_WEIGHT = tuple(0.3 * x * x / _TYPICAL_TOKENS for x in _TYPICAL)
_DECAY = 0.98  # the newest ~50 observations count most: a changed upstream is relearned
# Reading a conversation's shape is a pass over its text in Python, on the
# request's path: every request is observed until the fit has _DENSE, then
# one in _SPARSE (the newest ~50 observations then span ~400 requests).
_DENSE = 100
_SPARSE = 8

_CJK = "\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef"  # with kana, hangul, full-width forms
_PIECES = re.compile(
    rf"(?P<cjk>[{_CJK}])|(?P<word>[^\W\d_{_CJK}]+)|\d|[^\w\s]+|_+|\s*\n\s*|[ \t]{{2,}}"
)


def shape_of(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
) -> tuple[float, ...]:
    """The conversation's features, in the order of ``FEATURES``."""
    pieces = long_pieces = capitalised = cjk = 0.0
    for text in _texts(messages, tools):
        for match in _PIECES.finditer(text):
            if match["cjk"]:
                cjk += 1
                continue
            pieces += 1
            piece = match.group()
            if (
                match["word"]
                and _capitalised(piece)
                and text[match.start() - 1 : match.start()] == " "
            ):
                capitalised += 0.12 * max(0, len(piece) - 3)
            else:
                long_pieces += _long_piece(piece)
    has_system = any(message.get("role") == "system" for message in messages)
    return (
        pieces,
        long_pieces,
        capitalised,
        cjk,
        float(len(messages)),
        1.0,
        0.0 if has_system else 1.0,
    )


def _capitalised(word: str) -> bool:
    return word.isascii() and word[0].isupper() and word[1:].islower()


def _long_piece(piece: str) -> float:
    """Tokens beyond the first that vocabularies spend on a piece (per letter
    past a length that is one token: measured on SmolLM2's, GPT-2's and
    cl100k's vocabularies over docs/*.md, rounded; non-ASCII words are a guess
    of about three letters a token, their rate learnt like the others)."""
    if piece[0].isalpha():
        if not piece.isascii():  # accented, Cyrillic, Greek, Arabic...: fewer merges
            return 0.3 * len(piece)
        if piece.islower() or _capitalised(piece):  # a capitalised word starting a line, too
            return 0.05 * max(0, len(piece) - 4)
        return 0.2 * (len(piece) - 1)  # ALLCAPS, camelCase: split often
    return float(sum(not char.isascii() for char in piece))  # symbols: their bytes


def _texts(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> list[str]:
    texts = [json.dumps(tool, ensure_ascii=False) for tool in tools or ()]
    for message in messages:
        content = _text_only(message)["content"]
        texts.append(content if isinstance(content, str) else "")
        texts += [json.dumps(call, ensure_ascii=False) for call in message.get("tool_calls") or ()]
        texts += [json.dumps(tool, ensure_ascii=False) for tool in message.get("tools") or ()]
    return texts


class TemplateCalibration:
    """What one upstream model's tokenizer and template make of a conversation.

    A weighted ridge regression of the prompt tokens the upstream reports on
    ``shape_of``, starting from the plain estimate (``_PRIOR``). Each request
    is weighted by 1 / its tokens: a count's error grows with its length (a
    sum of per-word misses), so a short conversation teaches the template's
    constants as much as a long one teaches the text's rates.
    """

    def __init__(self) -> None:
        size = len(_PRIOR)
        self._gram = [
            [_PRIOR_WEIGHT[i] if i == j else 0.0 for j in range(size)] for i in range(size)
        ]
        self._moment = [weight * w for weight, w in zip(_PRIOR_WEIGHT, _PRIOR, strict=True)]
        self._weights: tuple[float, ...] = _PRIOR
        self._solved = True  # _weights solve the system as it stands
        self.observations = 0
        self._offered = 0  # reported counts due() was asked about

    def due(self) -> bool:
        """Whether to observe the next reported count (all at first, then a sample)."""
        self._offered += 1
        return self.observations < _DENSE or self._offered % _SPARSE == 0

    @property
    def weights(self) -> dict[str, float]:
        return dict(zip(FEATURES, self._current(), strict=True))

    def estimate(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> int:
        x = shape_of(messages, tools)
        return max(1, round(sum(w * v for w, v in zip(self._current(), x, strict=True))))

    def _current(self) -> tuple[float, ...]:
        # Solved when read, not per observation: every request through a
        # generic upstream is observed, few are estimated, and the solve is
        # most of what an observation would cost.
        if not self._solved:
            self._weights = tuple(_solve(self._gram, self._moment))
            self._solved = True
        return self._weights

    def observe(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        reported_prompt_tokens: int,
    ) -> None:
        if reported_prompt_tokens <= 0:
            return
        x = shape_of(messages, tools)
        weight = 1.0 / reported_prompt_tokens
        for i, xi in enumerate(x):
            # The decayed prior is topped up, so it keeps the system solvable
            # whatever shapes were seen, and never outweighs the evidence.
            prior = (1 - _DECAY) * _PRIOR_WEIGHT[i]
            self._moment[i] = (
                _DECAY * self._moment[i] + weight * xi * reported_prompt_tokens + prior * _PRIOR[i]
            )
            wxi = weight * xi
            row = [_DECAY * g + wxi * xj for g, xj in zip(self._gram[i], x, strict=True)]
            row[i] += prior
            self._gram[i] = row
        self._solved = False
        self.observations += 1


def _solve(matrix: list[list[float]], vector: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting on a small symmetric positive system."""
    size = len(vector)
    rows = [[*matrix[i], vector[i]] for i in range(size)]
    for col in range(size):
        pivot = max(range(col, size), key=lambda r: abs(rows[r][col]))
        rows[col], rows[pivot] = rows[pivot], rows[col]
        for r in range(size):
            if r != col and rows[col][col]:
                factor = rows[r][col] / rows[col][col]
                rows[r] = [a - factor * b for a, b in zip(rows[r], rows[col], strict=True)]
    return [rows[i][size] / rows[i][i] if rows[i][i] else 0.0 for i in range(size)]
