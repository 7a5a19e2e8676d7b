"""The prefill chunk: the whole batch alone, a measured share beside streams."""

from __future__ import annotations

import pytest

from moonbase.engines.llamacpp.prefill_budget import SHORT_PROMPT, UNMEASURED_CHUNK, PrefillBudget


def measured(stream_s: float, prompt_s: float, share: float = 0.8) -> PrefillBudget:
    budget = PrefillBudget(n_batch=512, share=share)
    budget.observe(seconds=512 * prompt_s, generating=0, prompt_tokens=512)
    budget.observe(seconds=4 * stream_s, generating=4, prompt_tokens=0)
    return budget


def test_a_prompt_alone_takes_the_whole_batch():
    assert PrefillBudget(n_batch=512, share=0.8).tokens(generating=0, shortest=4000) == 512
    assert measured(0.008, 0.005).tokens(generating=0, shortest=4000) == 512


def test_before_any_measurement_the_chunk_is_the_old_fixed_one():
    assert (
        PrefillBudget(n_batch=512, share=0.8).tokens(generating=4, shortest=4000)
        == UNMEASURED_CHUNK
    )


def test_beside_streams_prompt_tokens_take_the_share_of_the_step():
    # A CPU: a prompt token costs 5 ms, a stream's token 8 ms. With share 0.8
    # the prompt may take 4x what the 4 streams' tokens cost: 4 * 32 ms / 5 ms.
    budget = measured(0.008, 0.005)
    chunk = budget.tokens(generating=4, shortest=4000)
    assert chunk == 25
    step = 4 * 0.008 + chunk * 0.005
    assert chunk * 0.005 / step == pytest.approx(0.8, abs=0.02)


def test_cheap_prompt_tokens_grow_the_chunk_to_the_room_left():
    # A GPU-like ratio: prompt tokens 100x cheaper than a stream's token.
    assert measured(0.010, 0.0001).tokens(generating=4, shortest=4000) == 512 - 4


def test_the_chunk_never_falls_below_the_floor():
    budget = measured(0.001, 0.050)
    assert budget.tokens(generating=1, shortest=4000) == budget.floor


def test_a_smaller_share_leaves_the_streams_more():
    assert measured(0.008, 0.005, share=0.5).tokens(4, 4000) < measured(0.008, 0.005).tokens(
        4, 4000
    )


def test_costs_follow_the_machine():
    budget = measured(0.008, 0.005)
    before = budget.tokens(generating=4, shortest=4000)
    for _ in range(30):  # the machine got busy: prompt tokens cost twice as much
        budget.observe(seconds=4 * 0.008 + 25 * 0.010, generating=4, prompt_tokens=25)
    assert budget.tokens(generating=4, shortest=4000) < before


def test_one_stalled_step_does_not_swing_the_chunk():
    budget = measured(0.008, 0.005)
    for _ in range(8):
        budget.observe(seconds=4 * 0.008, generating=4, prompt_tokens=0)
    before = budget.tokens(generating=4, shortest=4000)
    budget.observe(seconds=1.0, generating=4, prompt_tokens=0)  # another process took the CPU
    assert budget.tokens(generating=4, shortest=4000) == before


def test_a_short_prompt_waiting_gets_a_whole_short_chunk():
    budget = measured(0.008, 0.005)
    assert budget.tokens(generating=1, shortest=4000) == budget.floor
    assert budget.tokens(generating=1, shortest=40) == SHORT_PROMPT
    assert budget.tokens(generating=4, shortest=40) == SHORT_PROMPT
    cheap = measured(0.010, 0.0001)  # where the share allows more, it still does
    assert cheap.tokens(generating=4, shortest=40) == 512 - 4
