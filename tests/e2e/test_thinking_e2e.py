"""Thinking: a real reasoning phase on the embedded model, per family rules."""

from __future__ import annotations

import openai
import pytest

ASK = [{"role": "user", "content": "Is 17 a prime number?"}]


def reply(client: openai.OpenAI, model: str, **options):
    return client.chat.completions.create(
        model=model, messages=options.pop("messages", ASK), max_tokens=120, **options
    ).choices[0]


@pytest.mark.parametrize(
    ("model", "options", "thinks"),
    [
        ("kimi-k2-thinking", {}, True),
        ("kimi-k2-thinking-turbo", {"extra_body": {"thinking": {"type": "disabled"}}}, True),
        ("kimi-k2.5", {}, True),
        ("kimi-k2.6", {"extra_body": {"thinking": {"type": "enabled"}}}, True),
        ("kimi-k2.5", {"extra_body": {"thinking": {"type": "disabled"}}}, False),
        ("kimi-k2.6", {"extra_body": {"thinking": {"type": "disabled"}}}, False),
        ("kimi-k2-turbo-preview", {"extra_body": {"thinking": {"type": "enabled"}}}, False),
        ("moonshot-v1-8k", {}, False),
    ],
)
def test_who_thinks(client: openai.OpenAI, model: str, options: dict, thinks: bool):
    choice = reply(client, model, **options)
    reasoning = (choice.message.model_extra or {}).get("reasoning_content")
    assert choice.message.content
    if thinks:
        assert reasoning and reasoning.strip()
        assert reasoning != choice.message.content
    else:
        assert reasoning is None


def test_streamed_reasoning_comes_before_content(client: openai.OpenAI):
    order = []
    reasoning, content = "", ""
    for chunk in client.chat.completions.create(
        model="kimi-k2-thinking",
        messages=ASK,
        max_tokens=120,
        stream=True,
        stream_options={"include_usage": True},
    ):
        if not chunk.choices:
            usage = chunk.usage
            continue
        delta = chunk.choices[0].delta
        piece = (delta.model_extra or {}).get("reasoning_content")
        if piece:
            order.append("reasoning")
            reasoning += piece
        if delta.content:
            order.append("content")
            content += delta.content
    assert reasoning and content
    assert order.index("content") > max(i for i, kind in enumerate(order) if kind == "reasoning")
    assert 0 < usage.completion_tokens <= 120


def test_completion_tokens_count_both_phases_and_estimate_still_matches(client, server):
    import httpx

    completion = client.chat.completions.create(model="kimi-k2.5", messages=ASK, max_tokens=60)
    assert completion.usage.completion_tokens <= 60
    assert completion.usage.completion_tokens > 0
    estimate = httpx.post(
        f"{server.base_url}/v1/tokenizers/estimate-token-count",
        headers={"Authorization": f"Bearer {server.api_key}"},
        json={"model": "kimi-k2.5", "messages": ASK},
    ).json()["data"]["total_tokens"]
    assert estimate == completion.usage.prompt_tokens


def test_keep_all_puts_history_reasoning_back(client: openai.OpenAI):
    history = [
        *ASK,
        {
            "role": "assistant",
            "content": "Yes.",
            "reasoning_content": "17 has no divisors but 1 and itself. " * 5,
        },
        {"role": "user", "content": "And 21?"},
    ]
    kept = client.chat.completions.create(
        model="kimi-k2.6",
        messages=history,
        max_tokens=4,
        extra_body={"thinking": {"type": "enabled", "keep": "all"}},
    )
    dropped = client.chat.completions.create(
        model="kimi-k2.6",
        messages=history,
        max_tokens=4,
        extra_body={"thinking": {"type": "enabled"}},
    )
    # the kept reasoning (~60 tokens) is part of the prompt; without keep it is not
    assert kept.usage.prompt_tokens > dropped.usage.prompt_tokens + 40
