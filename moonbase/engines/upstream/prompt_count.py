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
  request it serves, so the engine learns what its template adds: a ridge
  regression of the reported prompt tokens on the conversation's shape (its
  text's character estimate, its messages, whether a system message is
  there), starting from the plain estimate and moving with the evidence.
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

# Features of a conversation: its text twice over, as pieces a BPE
# pre-tokenizer would make (runs of letters, digits and CJK characters one by
# one, punctuation runs) and as characters (tokenizers differ in both ratios:
# characters / 4 alone overcounts long prose and undercounts short turns),
# its messages, a constant (the generation prompt), and no system message
# (templates that add a default one).
_PRIOR = (0.0, 0.25, float(TOKENS_PER_MESSAGE), 0.0, 0.0)  # the plain estimate
# How much the plain estimate weighs against the evidence, per feature: a
# fraction of one observation, so a handful of requests outweigh it.
_PRIOR_WEIGHT = (1.0, 1.0, 0.1, 0.1, 0.1)
_DECAY = 0.98  # the newest ~50 requests count most: a changed upstream is relearned


def shape_of(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
) -> tuple[float, ...]:
    has_system = any(message.get("role") == "system" for message in messages)
    texts = _texts(messages, tools)
    pieces = sum(len(_PIECES.findall(text)) for text in texts)
    chars = sum(len(text) for text in texts)
    return (float(pieces), float(chars), float(len(messages)), 1.0, 0.0 if has_system else 1.0)


_PIECES = re.compile(r"[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff]|[^\W\d_]+|\d|[^\w\s]+|_+")


def _texts(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> list[str]:
    texts = [json.dumps(tool, ensure_ascii=False) for tool in tools or ()]
    for message in messages:
        content = _text_only(message)["content"]
        texts.append(content if isinstance(content, str) else "")
        texts += [json.dumps(call, ensure_ascii=False) for call in message.get("tool_calls") or ()]
        texts += [json.dumps(tool, ensure_ascii=False) for tool in message.get("tools") or ()]
    return texts


class TemplateCalibration:
    """What one upstream model's tokenizer and template make of a conversation."""

    def __init__(self) -> None:
        size = len(_PRIOR)
        self._gram = [
            [_PRIOR_WEIGHT[i] if i == j else 0.0 for j in range(size)] for i in range(size)
        ]
        self._moment = [weight * w for weight, w in zip(_PRIOR_WEIGHT, _PRIOR, strict=True)]
        self._weights: tuple[float, ...] = _PRIOR
        self.observations = 0

    def estimate(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> int:
        x = shape_of(messages, tools)
        return max(1, round(sum(w * v for w, v in zip(self._weights, x, strict=True))))

    def observe(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        reported_prompt_tokens: int,
    ) -> None:
        x = shape_of(messages, tools)
        size = len(x)
        for i in range(size):
            # The decayed prior is topped up, so it keeps the system solvable
            # whatever shapes were seen, and never outweighs the evidence.
            prior = (1 - _DECAY) * _PRIOR_WEIGHT[i]
            self._moment[i] = _DECAY * self._moment[i] + x[i] * reported_prompt_tokens
            self._moment[i] += prior * _PRIOR[i]
            for j in range(size):
                self._gram[i][j] = _DECAY * self._gram[i][j] + x[i] * x[j]
            self._gram[i][i] += prior
        self._weights = tuple(_solve(self._gram, self._moment))
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
