"""Counting prompt tokens where an upstream cannot: a Hugging Face tokenizer
folder (exact), or an estimate fitted to the usage the upstream reports; and
dynamically loaded tools in what each flavour is sent."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from moonbase.engines.base import ChatTurn, estimate_tokens
from moonbase.engines.llamacpp.engine import LlamaCppEngine
from moonbase.engines.llamacpp.model_file import default_model_path
from moonbase.engines.upstream.flavours import request_body
from moonbase.engines.upstream.prompt_count import (
    HfPromptCounter,
    TemplateCalibration,
    TokenizerFolderError,
)
from moonbase.settings import EngineSettings
from tests.engines.test_upstream_engine import call
from tests.hf_tokenizer_from_gguf import write_tokenizer_folder

CONVERSATIONS = [
    [{"role": "user", "content": "Say hi."}],
    [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Name 3 fruits!"},
    ],
    [
        {"role": "user", "content": "Count to 12, in English and in 中文."},
        {"role": "assistant", "content": "One, two … 十二."},
        {"role": "user", "content": "Now backwards: it's fine if you're slow."},
    ],
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tokenizer_folder(default_model_path(), tmp_path_factory.mktemp("tokenizer"))


async def test_a_tokenizer_folder_counts_as_the_model_itself_does(folder: Path):
    counter = HfPromptCounter(folder)
    engine = await asyncio.to_thread(LlamaCppEngine, EngineSettings(n_ctx=2048, slots=1))
    try:
        for messages in CONVERSATIONS:
            turns = [ChatTurn(m["role"], m["content"]) for m in messages]
            assert counter.count(messages, None) == len(await engine.render_prompt(turns))
    finally:
        await engine.close()


def test_a_folder_without_a_tokenizer_or_a_template_is_named(tmp_path: Path, folder: Path):
    with pytest.raises(TokenizerFolderError, match=r"tokenizer\.json"):
        HfPromptCounter(tmp_path)
    (tmp_path / "tokenizer.json").write_bytes((folder / "tokenizer.json").read_bytes())
    with pytest.raises(TokenizerFolderError, match="no chat template"):
        HfPromptCounter(tmp_path)
    (tmp_path / "chat_template.jinja").write_text("{{ messages[0]['content'] }}")
    assert HfPromptCounter(tmp_path).count([{"role": "user", "content": "hello"}], None) == 1


def test_the_calibration_learns_what_a_template_adds():
    """A template that adds 5 tokens a message, 3 for the generation prompt and
    a 20-token default system prompt when there is none."""

    def billed(messages: list[dict]) -> int:
        content = estimate_tokens(messages) - 4 * len(messages)
        no_system = all(message["role"] != "system" for message in messages)
        return content + 5 * len(messages) + 3 + 20 * no_system

    rng = random.Random(7)
    calibration = TemplateCalibration()
    samples = []
    for _ in range(30):
        messages = [{"role": "user", "content": "word " * rng.randint(1, 200)}] * rng.randint(1, 6)
        if rng.random() < 0.5:
            messages = [{"role": "system", "content": "Be brief."}, *messages]
        samples.append(messages)
    plain = [abs(estimate_tokens(m) - billed(m)) / billed(m) for m in samples]
    for messages in samples:
        calibration.observe(messages, None, billed(messages))
    fitted = [abs(calibration.estimate(m, None) - billed(m)) / billed(m) for m in samples]
    assert max(plain) > 0.3  # the plain estimate misses the template
    assert max(fitted) < 0.05, fitted
    assert calibration.observations == 30


# A template unlike SmolLM2's (Kimi's layout with the tokens this vocabulary
# has: a role header, no newlines, its own default system prompt).
KIMI_LIKE_TEMPLATE = (
    "{%- if messages[0]['role'] != 'system' -%}"
    "<|im_start|>system<|im_end|>You are Kimi, an AI assistant created by Moonshot AI.<|endoftext|>"
    "{%- endif -%}"
    "{%- for message in messages -%}"
    "<|im_start|>{{ message['role'] }}<|im_end|>{{ message['content'] }}<|endoftext|>"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|im_start|>assistant<|im_end|>{%- endif -%}"
)

# What a gateway serves, then different conversations to measure on: English
# and Chinese, short turns and long documents.
SERVED = [
    [{"role": "user", "content": "What time zone is Tokyo in?"}],
    [
        {"role": "system", "content": "You are a careful translator."},
        {"role": "user", "content": "把这句话翻译成英文：今天的会议推迟到下午三点。"},
    ],
    [
        {"role": "user", "content": "Suggest a name for a grey cat."},
        {"role": "assistant", "content": "How about Smokey, or Ash?"},
        {"role": "user", "content": "Something more unusual, please."},
    ],
    [
        {"role": "system", "content": "Summarise the report in two sentences."},
        {
            "role": "user",
            "content": "Quarterly revenue rose 12 % to 4.1 million euros, driven by the "
            "Nordic subscription business, while hardware sales in Germany and "
            "Austria fell for the third quarter in a row. Operating costs were flat; "
            "the company hired 14 engineers and closed its Lyon office. Management "
            "expects the new pricing, introduced in March, to lift margins by the "
            "end of the year, and will report on the Kubernetes migration in June.",
        },
    ],
    [{"role": "user", "content": "用三句话介绍一下长城的历史。"}],
    [
        {"role": "user", "content": "Is Python's sorted() stable?"},
        {"role": "assistant", "content": "Yes: equal keys keep their original order."},
        {"role": "user", "content": "And list.sort()?"},
    ],
    [
        {"role": "system", "content": "你是一个乐于助人的助手，回答要简洁。"},
        {"role": "user", "content": "北京和上海哪个城市的人口更多？请说明理由。"},
    ],
    [
        {
            "role": "user",
            "content": "Proofread this: Their going to the libary tomorow to return "
            "the books they borrowed last month, and than they will meet Professor "
            "Hernandez for lunch near the Cathedral.",
        }
    ],
    [
        {"role": "system", "content": "Answer as a pirate."},
        {"role": "user", "content": "How do I boil an egg?"},
    ],
    [
        {"role": "user", "content": "Explain recursion to a child."},
        {
            "role": "assistant",
            "content": "It is when something is defined using a smaller copy of itself, "
            "like Russian dolls.",
        },
        {"role": "user", "content": "Give me an example in real life."},
    ],
    [
        {"role": "system", "content": "你是一名旅行顾问。"},
        {
            "role": "user",
            "content": "我下个月想去杭州玩三天，预算大约三千元。请帮我安排一下行程，包括西湖、"
            "灵隐寺和龙井村，并推荐几家当地的特色餐馆和交通方式。",
        },
    ],
    [
        {"role": "user", "content": "什么是机器学习？"},
        {"role": "assistant", "content": "机器学习是让计算机从数据中学习规律的方法。"},
        {"role": "user", "content": "举一个生活中的例子。"},
    ],
]
MEASURED = [
    [{"role": "user", "content": "Who wrote Pride and Prejudice?"}],
    [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "你好！请问今天天气怎么样？"},
    ],
    [
        {"role": "user", "content": "Recommend a board game for four players."},
        {"role": "assistant", "content": "Try Ticket to Ride: simple rules, lots of fun."},
        {"role": "user", "content": "Something cooperative instead?"},
    ],
    [
        {"role": "system", "content": "Use the notes to answer."},
        {
            "role": "user",
            "content": "Notes: the Riverside library opens at 9 on weekdays and at 10 on "
            "Saturdays; it is closed on Sundays and public holidays. Members may borrow "
            "up to eight books for three weeks, renew them twice online, and reserve "
            "titles from the other branches in Eastfield and Northgate. Question: can I "
            "borrow ten books on a Sunday?",
        },
    ],
    [
        {"role": "system", "content": "请根据文档回答问题。"},
        {
            "role": "user",
            "content": "文档：本店营业时间为每天上午九点至晚上十点，节假日照常营业。"
            "会员购物可享受九折优惠，生日当月可额外获得一张二十元的优惠券。"
            "问题：会员在生日那个月买东西有什么优惠？",
        },
    ],
]


def test_the_calibration_learns_a_real_tokenizer_and_template(folder: Path, tmp_path: Path):
    """SmolLM2's vocabulary under a Kimi-like template: after the twelve requests a
    gateway has served, conversations it has not seen are within 10 %, English
    and Chinese alike (the plain estimate misses the template's share)."""
    (tmp_path / "tokenizer.json").write_bytes((folder / "tokenizer.json").read_bytes())
    (tmp_path / "chat_template.jinja").write_text(KIMI_LIKE_TEMPLATE)
    upstream = HfPromptCounter(tmp_path)
    calibration = TemplateCalibration()
    plain = [calibration.estimate(m, None) for m in MEASURED]
    for messages in SERVED:
        calibration.observe(messages, None, upstream.count(messages, None))
    fitted = [calibration.estimate(m, None) for m in MEASURED]
    billed = [upstream.count(m, None) for m in MEASURED]
    errors = [abs(est - real) / real for est, real in zip(fitted, billed, strict=True)]
    plain_errors = [abs(est - real) / real for est, real in zip(plain, billed, strict=True)]
    assert max(errors) <= 0.10, (fitted, billed)
    assert max(plain_errors) > 0.3, (plain, billed)


SEARCH = {"type": "function", "function": {"name": "search_docs", "parameters": {"type": "object"}}}
WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object"}},
}


@pytest.mark.parametrize("flavour", ["vllm", "sglang", "llamacpp", "generic", "moonshot"])
def test_tools_a_system_message_loads_reach_each_flavour(flavour: str):
    messages = [
        {"role": "system", "content": "Docs.", "tools": [SEARCH]},
        {"role": "user", "content": "hi"},
    ]
    chat = call(stream=False, messages=messages, tools=[WEATHER])
    sent = request_body(chat, flavour, "served")
    if flavour == "moonshot":
        assert sent["messages"] == messages and sent["tools"] == [WEATHER]
    else:
        assert "tools" not in sent["messages"][0]
        assert sent["tools"] == [WEATHER, SEARCH]
    assert messages[0]["tools"] == [SEARCH]  # the client's body is not changed


def test_the_calibration_samples_once_it_has_learnt_enough():
    """Every reported count is observed at first; past 100 observations one
    in 8 (a shape is a pass over the text on the request's path), and the
    weights it reads are the same whether solved per observation or when read."""
    calibration = TemplateCalibration()
    messages = [{"role": "user", "content": "How many moons has Jupiter?"}]
    observed = 0
    for _ in range(100 + 80):
        if calibration.due():
            calibration.observe(messages, None, 20)
            observed += 1
    assert observed == 100 + 10
    assert calibration.observations == observed
    assert calibration.estimate(messages, None) == 20


# One sentence in each script, as the embedded model's vocabulary counts it.
SCRIPTS = {
    "English": "The archive keeps records of ships and harbours; each holds a date and a cargo.",
    "Russian": "Архив хранит записи о судах и портах; каждая содержит дату и груз.",
    "Greek": "Το αρχείο διατηρεί εγγραφές για πλοία και λιμάνια, με ημερομηνία και φορτίο.",
    "Arabic": "يحتفظ الأرشيف بسجلات السفن والموانئ، ولكل سجل تاريخ وحمولة.",
    "Hebrew": "הארכיון שומר רשומות על ספינות ונמלים, ולכל רשומה תאריך ומטען.",
    "Chinese": "档案馆保存船只与港口的记录，每条记录包含日期和货物。",
    "Japanese": "記録保管所は船と港の記録を保存し、それぞれに日付と積荷がある。",
}


def test_the_admission_estimate_of_no_script_is_a_small_fraction_of_the_real_count(
    folder: Path,
):
    """Admission sizes a prompt before any tokenizer runs; whatever the
    script, it must not take a prompt for a small fraction of its size. The
    embedded model's English-only vocabulary is the worst case (every other
    script a token or two a character): each is estimated at 40 % of its
    count or more (0.41 to 0.58 today; a quarter token for a Cyrillic,
    Greek, Arabic or Hebrew character made them 0.22 to 0.32)."""
    counter = HfPromptCounter(folder)
    empty = counter.count([{"role": "user", "content": ""}], None)
    for script, sentence in SCRIPTS.items():
        messages = [{"role": "user", "content": sentence * 4}]
        real = counter.count(messages, None) - empty
        estimate = estimate_tokens(messages) - 4  # less the message's own allowance
        assert 0.4 * real <= estimate <= 2 * real, (script, estimate, real)
