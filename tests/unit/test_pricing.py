from decimal import Decimal

from moonbase.billing.money import to_micro, to_yuan
from moonbase.billing.pricing import Price, TokenUsage, cost_micro
from moonbase.billing.tiers import tier_for
from moonbase.store.repositories.ledger import Balances

PRICE = Price(input=Decimal("4"), input_cached=Decimal("1"), output=Decimal("16"))


def test_cached_prompt_tokens_are_priced_as_cache_hits():
    # 1,000 prompt tokens of which 600 cached, 250 completion tokens, CNY per 1M tokens
    usage = TokenUsage(prompt_tokens=1000, cached_tokens=600, completion_tokens=250)
    assert cost_micro(PRICE, usage) == 400 * 4 + 600 * 1 + 250 * 16
    assert cost_micro(PRICE, usage, Decimal("0.5")) == (400 * 4 + 600 + 250 * 16) // 2


def test_fractional_prices_round_once_per_request():
    price = Price(input=Decimal("0.7"), input_cached=Decimal("0.7"), output=Decimal("0"))
    assert cost_micro(price, TokenUsage(3, 0, 0)) == 2  # 2.1 micro-yuan
    assert cost_micro(price, TokenUsage(5, 0, 0)) == 4  # 3.5 rounds half up


def test_money_conversions_are_exact():
    assert to_micro("0.01") == 10_000
    assert to_micro(Decimal("20000")) == 20_000_000_000
    assert to_yuan(to_micro("123.456789")) == 123.456789


def test_available_balance_follows_the_platform_rule():
    assert Balances(cash_micro=5, voucher_micro=3).available_micro == 8
    assert Balances(cash_micro=-5, voucher_micro=3).available_micro == 3
    assert Balances(cash_micro=-5, voucher_micro=0).available_micro == 0


def test_tiers_by_cumulative_top_up_and_override():
    assert tier_for(to_micro("0")).level == 0
    assert tier_for(to_micro("49.99")).level == 0
    assert tier_for(to_micro("50")).level == 1
    assert tier_for(to_micro("19999")).level == 4
    assert tier_for(to_micro("20000")).level == 5
    assert tier_for(to_micro("0"), override=3).limits.rpm == 5_000
    assert tier_for(0).limits.tpd == 1_500_000 and tier_for(to_micro("50")).limits.tpd is None
