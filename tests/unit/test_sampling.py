import pytest

from moonbase.catalog import KIMI_K2, KIMI_K2_5, KIMI_K2_6, KIMI_K2_THINKING, MOONSHOT_V1
from moonbase.chat.sampling import plan_sampling
from moonbase.errors import BadRequestError
from moonbase.schemas.chat import ChatCompletionRequest


def req(**fields):
    return ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}
    )


@pytest.mark.parametrize(
    ("family", "default"), [(MOONSHOT_V1, 0.0), (KIMI_K2, 0.6), (KIMI_K2_THINKING, 1.0)]
)
def test_family_default_temperatures(family, default):
    assert plan_sampling(family, req()).temperature == default


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", 1.5),
        ("temperature", -0.1),
        ("top_p", 1.2),
        ("n", 6),
        ("n", 0),
        ("presence_penalty", 2.5),
        ("frequency_penalty", -3),
    ],
)
def test_out_of_range_values_are_refused_naming_the_parameter(field, value):
    with pytest.raises(BadRequestError) as caught:
        plan_sampling(KIMI_K2, req(**{field: value, "temperature": 0.5} | {field: value}))
    assert caught.value.param == field


def test_n_above_one_needs_a_temperature_away_from_zero():
    with pytest.raises(BadRequestError) as caught:
        plan_sampling(MOONSHOT_V1, req(n=2))
    assert caught.value.param == "n"
    assert plan_sampling(MOONSHOT_V1, req(n=2, temperature=0.7)).n == 2


@pytest.mark.parametrize("family", [KIMI_K2_5, KIMI_K2_6])
def test_fixed_families_use_their_fixed_sampling(family):
    thinking = plan_sampling(family, req(temperature=0.2))
    assert (thinking.temperature, thinking.top_p, thinking.n) == (1.0, 0.95, 1)
    plain = plan_sampling(family, req(thinking={"type": "disabled"}))
    assert plain.temperature == 0.6 and not plain.thinking
    repeated = req(top_p=0.95, n=1, presence_penalty=0, frequency_penalty=0.0)
    assert plan_sampling(family, repeated).top_p == 0.95


@pytest.mark.parametrize("family", [KIMI_K2_5, KIMI_K2_6])
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("top_p", 0.9),
        ("n", 2),
        ("presence_penalty", 0.5),
        ("frequency_penalty", 1),
        ("temperature", 1.1),
    ],
)
def test_fixed_families_refuse_other_values(family, field, value):
    with pytest.raises(BadRequestError) as caught:
        plan_sampling(family, req(**{field: value}))
    assert caught.value.param == field


def test_thinking_keep_only_on_k2_6():
    assert plan_sampling(KIMI_K2_6, req(thinking={"type": "enabled", "keep": "all"})).keep_reasoning
    with pytest.raises(BadRequestError) as caught:
        plan_sampling(KIMI_K2_5, req(thinking={"type": "enabled", "keep": "all"}))
    assert caught.value.param == "thinking.keep"


def test_thinking_is_ignored_by_families_without_it():
    plan = plan_sampling(KIMI_K2, req(thinking={"type": "enabled"}))
    assert not plan.thinking
    assert plan_sampling(KIMI_K2_THINKING, req(thinking={"type": "disabled"})).thinking
