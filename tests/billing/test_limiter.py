"""Rate-limit counts in memory and in Redis follow the same rules."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

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


async def test_in_use_counts_what_the_limits_count(limiter: RateLimiter):
    """The rate-limit page's figures: in flight, requests and tokens in the
    last minute, tokens in the last day, with real tokens replacing estimates."""
    first = await limiter.admit("acct", limits(), "r1", 300)
    await limiter.admit("acct", limits(), "r2", 200)
    await limiter.admit("other", limits(), "r3", 5000)  # another account's
    await limiter.finish("acct", first, 100)
    used = await limiter.in_use("acct")
    assert (used.in_flight, used.requests_minute, used.tokens_minute, used.tokens_day) == (
        1, 2, 300, 300,
    )  # fmt: skip
    assert (await limiter.in_use("nobody")).requests_minute == 0


async def test_redis_in_use_skips_what_has_aged_out_and_is_shared():
    """Buckets older than their window, and a request a dead gateway never
    finished, no longer count; a second gateway reads the same figures."""
    prefix = f"moonbase-test:{secrets.token_hex(4)}"
    first, second = RedisLimiter(REDIS, prefix), RedisLimiter(REDIS, prefix)
    try:
        await first.admit("acct", limits(), "r1", 40)
        base = f"{prefix}:{{acct}}"
        now = int(time.time())
        raw = Redis.from_url(REDIS)  # what a dead gateway and earlier minutes left
        await raw.zadd(f"{base}:in_flight", {"lost": now - 16 * 60})
        await raw.hset(f"{base}:requests", str(now - 61), 7)
        await raw.hset(f"{base}:tokens", str(now - 61), 700)
        await raw.hset(f"{base}:hourly", str(now // 3600 - 24), 9000)
        await raw.aclose()
        for gateway in (first, second):
            used = await gateway.in_use("acct")
            assert (used.in_flight, used.requests_minute, used.tokens_minute, used.tokens_day) == (
                1, 1, 40, 40,
            )  # fmt: skip
    finally:
        await first.close()
        await second.close()
