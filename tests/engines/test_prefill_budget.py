"""The prefill chunk: the whole batch alone, a measured share beside streams,
never below the floor."""

from __future__ import annotations

import pytest

from moonbase.engines.llamacpp.prefill_budget import PrefillBudget


def measured(stream_s: float, prompt_s: float, share: float = 0.8) -> PrefillBudget:
    budget = PrefillBudget(n_batch=512, share=share)
    budget.observe(seconds=512 * prompt_s, generating=0, prompt_tokens=512)
    budget.observe(seconds=8 * stream_s, generating=8, prompt_tokens=0)
    return budget


def test_a_prompt_alone_takes_the_whole_batch():
    assert PrefillBudget(n_batch=512, share=0.8).tokens(generating=0) == 512
    assert measured(0.008, 0.005).tokens(generating=0) == 512


def test_before_any_measurement_the_chunk_is_the_floor():
    budget = PrefillBudget(n_batch=512, share=0.8)
    assert budget.tokens(generating=4) == budget.floor == 64


def test_beside_streams_prompt_tokens_take_the_share_of_the_step():
    # A prompt token costs 5 ms, a stream's token 8 ms, 16 streams: with share
    # 0.8 the prompt may take 4x what the streams' tokens cost: 4 * 128 / 5.
    budget = measured(0.008, 0.005)
    chunk = budget.tokens(generating=16)
    assert chunk == 102
    step = 16 * 0.008 + chunk * 0.005
    assert chunk * 0.005 / step == pytest.approx(0.8, abs=0.02)


def test_on_a_cpu_beside_few_streams_the_floor_holds():
    # The share alone would allow 4 * 32 / 5 = 25 tokens beside 4 streams.
    assert measured(0.008, 0.005).tokens(generating=4) == 64


def test_cheap_prompt_tokens_grow_the_chunk_to_the_room_left():
    # A GPU-like ratio: prompt tokens 100x cheaper than a stream's token.
    assert measured(0.010, 0.0001).tokens(generating=4) == 512 - 4


def test_a_smaller_share_leaves_the_streams_more():
    assert measured(0.008, 0.005, share=0.5).tokens(32) < measured(0.008, 0.005).tokens(32)


def test_costs_follow_the_machine():
    budget = measured(0.008, 0.005)
    before = budget.tokens(generating=32)
    for _ in range(30):  # the machine got busy: prompt tokens cost twice as much
        budget.observe(seconds=32 * 0.008 + 100 * 0.010, generating=32, prompt_tokens=100)
    assert budget.tokens(generating=32) < before


def test_one_stalled_step_does_not_swing_the_chunk():
    budget = measured(0.008, 0.005)
    for _ in range(8):
        budget.observe(seconds=32 * 0.008, generating=32, prompt_tokens=0)
    before = budget.tokens(generating=32)
    budget.observe(seconds=5.0, generating=32, prompt_tokens=0)  # another process took the CPU
    assert budget.tokens(generating=32) == before
