"""Rate-limit counts in memory and in Redis follow the same rules."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest

from moonbase.auth.project_policy import ProjectLimits
from moonbase.billing.limiter import LocalLimiter, RateLimiter, RedisLimiter
from moonbase.billing.project_limits import as_limiter_limits, counting_key
from moonbase.billing.tiers import Limits
from moonbase.errors import RateLimitError

REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    if request.param == "memory":
        chosen: RateLimiter = LocalLimiter()
    else:
        chosen = RedisLimiter(REDIS, prefix=f"moonbase-test:{secrets.token_hex(4)}")
    yield chosen
    await chosen.close()


def limits(**values: int | None) -> Limits:
    base: dict = {"concurrency": 100, "rpm": 100, "tpm": 1_000_000, "tpd": None}
    return Limits(**(base | values))


async def test_concurrency_counts_requests_in_flight(limiter: RateLimiter):
    first = await limiter.admit("acct", limits(concurrency=2), "r1", 10)
    await limiter.admit("acct", limits(concurrency=2), "r2", 10)
    with pytest.raises(RateLimitError, match="max concurrency: 2") as refused:
        await limiter.admit("acct", limits(concurrency=2), "r3", 10)
    assert refused.value.headers["retry-after"] == "1"
    await limiter.finish("acct", first, 10)
    await limiter.admit("acct", limits(concurrency=2), "r3", 10)
    await limiter.admit("other", limits(concurrency=2), "r4", 10)  # per account


async def test_rpm_and_tpm_with_actual_tokens_replacing_estimates(limiter: RateLimiter):
    admitted = await limiter.admit("acct", limits(tpm=1000), "r1", 900)
    with pytest.raises(RateLimitError, match="max TPM: 1000") as refused:
        await limiter.admit("acct", limits(tpm=1000), "r2", 200)
    assert 1 <= int(refused.value.headers["retry-after"]) <= 60
    await limiter.finish("acct", admitted, 100)  # it used far less than estimated
    await limiter.admit("acct", limits(tpm=1000), "r2", 200)
    await limiter.admit("acct", limits(rpm=3), "r3", 1)
    with pytest.raises(RateLimitError, match="max RPM: 3"):
        await limiter.admit("acct", limits(rpm=3), "r4", 1)


async def test_tpd(limiter: RateLimiter):
    await limiter.admit("acct", limits(tpd=500), "r1", 400)
    with pytest.raises(RateLimitError, match="max TPD: 500") as refused:
        await limiter.admit("acct", limits(tpd=500), "r2", 200)
    assert refused.value.headers["retry-after"] == "3600"


async def test_concurrent_admissions_never_pass_the_limit_together(limiter: RateLimiter):
    async def one(index: int) -> bool:
        try:
            await limiter.admit("acct", limits(concurrency=5), f"r{index}", 1)
        except RateLimitError:
            return False
        return True

    admitted = await asyncio.gather(*(one(i) for i in range(40)))
    assert sum(admitted) == 5


async def test_two_gateways_share_redis_counts():
    prefix = f"moonbase-test:{secrets.token_hex(4)}"
    first, second = RedisLimiter(REDIS, prefix), RedisLimiter(REDIS, prefix)
    try:
        await first.admit("acct", limits(concurrency=1), "r1", 1)
        with pytest.raises(RateLimitError):
            await second.admit("acct", limits(concurrency=1), "r2", 1)
    finally:
        await first.close()
        await second.close()


async def test_a_projects_counts_are_its_own_and_its_refusals_name_it(limiter: RateLimiter):
    project = as_limiter_limits(ProjectLimits(rpm=2))
    key = counting_key("proj-lab")
    for index in range(2):
        await limiter.admit(key, project, f"p{index}", 10, project="lab")
    with pytest.raises(RateLimitError) as refused:
        await limiter.admit(key, project, "p3", 10, project="lab")
    assert refused.value.code == "project_rpm_limit"
    assert refused.value.message.startswith("Your project lab request reached max RPM: 2")
    # the limits it leaves unset are never reached; the account's counts are apart
    await limiter.admit(counting_key("proj-other"), project, "p4", 10**12, project="other")
    await limiter.admit("proj-lab", limits(rpm=1), "a1", 10)
