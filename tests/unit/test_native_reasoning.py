import itertools

from hypothesis import given
from hypothesis import strategies as st

from moonbase.chat.native_reasoning import ReasoningSplitter
from moonbase.engines.base import ChoiceFinished, ReasoningDelta, TextDelta


def split(pieces: list[str], starts_open: bool = False, keep: bool = True):
    splitter = ReasoningSplitter(starts_open, keep)
    events = []
    for piece in pieces:
        events += splitter.feed(TextDelta(0, piece, 1))
    events += splitter.finish(ChoiceFinished(0, "stop", len(pieces)))
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    answer = "".join(e.text for e in events if isinstance(e, TextDelta))
    order = [type(e).__name__ for e in events if not isinstance(e, ChoiceFinished)]
    return reasoning, answer, order, events


def test_think_block_becomes_reasoning_before_the_answer():
    reasoning, answer, order, _ = split(["<thi", "nk>2 and 2", " make 4</th", "ink>\n\nIt is 4."])
    assert reasoning == "2 and 2 make 4"
    assert answer == "It is 4."
    assert order == sorted(order, key=lambda name: name != "ReasoningDelta")


def test_output_without_a_think_block_is_all_answer():
    reasoning, answer, _, _ = split(["Hello", " there"])
    assert (reasoning, answer) == ("", "Hello there")


def test_template_that_opens_the_block_in_the_prompt():
    reasoning, answer, _, _ = split(["let me see", "</think>", "Yes."], starts_open=True)
    assert (reasoning, answer) == ("let me see", "Yes.")


def test_unclosed_block_is_all_reasoning():
    reasoning, answer, _, _ = split(["<think>still thinking when the budget ran out"])
    assert (reasoning, answer) == ("still thinking when the budget ran out", "")


def test_thinking_off_drops_the_reasoning_but_keeps_the_token_count():
    reasoning, answer, _, events = split(["<think>hidden</think>", "shown"], keep=False)
    assert (reasoning, answer) == ("", "shown")
    assert events[-1] == ChoiceFinished(0, "stop", 2)


@given(
    reasoning=st.text(alphabet="ab <>/thinkx", max_size=30).filter(lambda t: "</think>" not in t),
    answer=st.text(alphabet="ab <>/x", max_size=30),
    cuts=st.lists(st.integers(min_value=0, max_value=80), max_size=10),
)
def test_any_split_of_the_stream_gives_the_same_result(reasoning, answer, cuts):
    text = f"<think>{reasoning}</think>{answer}"
    bounds = sorted({c for c in cuts if c <= len(text)} | {0, len(text)})
    pieces = [text[a:b] for a, b in itertools.pairwise(bounds)]
    got_reasoning, got_answer, _, _ = split(pieces)
    assert got_reasoning == reasoning
    assert got_answer == answer.lstrip()


def test_templates_tell_whether_the_model_reasons_natively():
    from moonbase.engines.chat_template import ChatTemplate

    plain = ChatTemplate(
        "{% for m in messages %}{{ m.content }}{% endfor %}{% if add_generation_prompt %}"
        "<|assistant|>{% endif %}",
        bos_token="",
        eos_token="",
    )
    tagged = ChatTemplate(
        "{% for m in messages %}{{ m.content }}{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
        "{# the model writes <think>...</think> #}",
        bos_token="",
        eos_token="",
    )
    opened = ChatTemplate(
        "{% for m in messages %}{{ m.content }}{% endfor %}"
        "{% if add_generation_prompt %}<|Assistant|><think>\n{% endif %}",
        bos_token="",
        eos_token="",
    )
    assert not plain.reasons_natively and not plain.opens_reasoning()
    assert tagged.reasons_natively and not tagged.opens_reasoning()
    assert opened.reasons_natively and opened.opens_reasoning()
