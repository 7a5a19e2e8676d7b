"""Rate limits (concurrency, RPM, TPM, TPD) counted off the database's hot path.

A request is admitted against four counts: requests in flight, requests and
tokens in the last 60 seconds (per-second buckets), tokens in the last 24
hours (per-hour buckets). Its estimated tokens count at admission and are
replaced by what it really used when it finishes.

Two stores keep the counts with the same rules: this process's memory (one
gateway, the default) or Redis (``redis_url``: every gateway shares the
counts, checked and updated in one atomic script). A request a crashed
process never finished stops counting as in flight after STALE_AFTER.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from moonbase.billing.tiers import Limits
from moonbase.errors import RateLimitError

MINUTE, HOUR, DAY = 60, 3600, 86_400
STALE_AFTER = 15 * MINUTE


@dataclass(frozen=True)
class Admitted:
    """Where a request's tokens were counted, to correct them when it ends."""

    request_id: str
    second: int
    hour: int
    tokens: int


@dataclass(frozen=True)
class InUse:
    """What counts against the limits now (the console's rate-limit page)."""

    in_flight: int
    requests_minute: int  # requests in the last 60 seconds
    tokens_minute: int
    tokens_day: int  # tokens in the last 24 hours


class RateLimiter(Protocol):
    """Counts kept under ``account_id``: an account's, or a project's under its
    own key (billing/project_limits.py) with ``project`` naming it in refusals."""

    async def admit(
        self,
        account_id: str,
        limits: Limits,
        request_id: str,
        tokens: int,
        project: str | None = None,
    ) -> Admitted: ...

    async def finish(self, account_id: str, admitted: Admitted, tokens: int) -> None: ...

    async def in_use(self, account_id: str) -> InUse: ...

    async def close(self) -> None: ...


def refusal(
    account_id: str, what: str, limit: int, retry_after: int, project: str | None = None
) -> RateLimitError:
    """Moonshot's rate-limit refusal; a project's names the project (its own code)."""
    holder = f"project {project}" if project is not None else f"account {account_id}"
    return RateLimitError(
        f"Your {holder} request reached max {what}: {limit}, "
        f"please try again after {retry_after} seconds",
        code=("project_" if project is not None else "") + f"{what.lower()}_limit",
        retry_after=retry_after,
    )


@dataclass
class _Counts:
    in_flight: dict[str, float] = field(default_factory=dict)  # request id -> admitted at
    requests: dict[int, int] = field(default_factory=dict)  # second -> requests
    tokens: dict[int, int] = field(default_factory=dict)  # second -> tokens
    hourly: dict[int, int] = field(default_factory=dict)  # hour -> tokens


class LocalLimiter:
    """Counts in this process: exact for one gateway."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._accounts: dict[str, _Counts] = {}

    async def admit(
        self,
        account_id: str,
        limits: Limits,
        request_id: str,
        tokens: int,
        project: str | None = None,
    ) -> Admitted:
        now = self._clock()
        second, hour = int(now), int(now) // HOUR
        counts = self._accounts.setdefault(account_id, _Counts())
        _forget_old(counts, now)
        if len(counts.in_flight) >= limits.concurrency:
            raise refusal(account_id, "concurrency", limits.concurrency, 1, project)
        if counts.requests:
            retry = max(1, min(counts.requests) + MINUTE - second)
            if sum(counts.requests.values()) >= limits.rpm:
                raise refusal(account_id, "RPM", limits.rpm, retry, project)
            if sum(counts.tokens.values()) + tokens > limits.tpm:
                raise refusal(account_id, "TPM", limits.tpm, retry, project)
        if limits.tpd is not None and sum(counts.hourly.values()) + tokens > limits.tpd:
            raise refusal(account_id, "TPD", limits.tpd, HOUR, project)
        counts.in_flight[request_id] = now
        counts.requests[second] = counts.requests.get(second, 0) + 1
        counts.tokens[second] = counts.tokens.get(second, 0) + tokens
        counts.hourly[hour] = counts.hourly.get(hour, 0) + tokens
        return Admitted(request_id, second, hour, tokens)

    async def finish(self, account_id: str, admitted: Admitted, tokens: int) -> None:
        counts = self._accounts.get(account_id)
        if counts is None:
            return
        counts.in_flight.pop(admitted.request_id, None)
        change = tokens - admitted.tokens
        if admitted.second in counts.tokens:
            counts.tokens[admitted.second] += change
        if admitted.hour in counts.hourly:
            counts.hourly[admitted.hour] += change

    async def in_use(self, account_id: str) -> InUse:
        counts = self._accounts.get(account_id)
        if counts is None:
            return InUse(0, 0, 0, 0)
        _forget_old(counts, self._clock())
        return InUse(
            len(counts.in_flight),
            sum(counts.requests.values()),
            sum(counts.tokens.values()),
            sum(counts.hourly.values()),
        )

    async def close(self) -> None:
        return None


def _forget_old(counts: _Counts, now: float) -> None:
    second, hour = int(now), int(now) // HOUR
    for bucket in [s for s in counts.requests if s <= second - MINUTE]:
        counts.requests.pop(bucket)
        counts.tokens.pop(bucket, None)
    for bucket in [h for h in counts.hourly if h <= hour - DAY // HOUR]:
        counts.hourly.pop(bucket)
    for request_id in [r for r, at in counts.in_flight.items() if at < now - STALE_AFTER]:
        counts.in_flight.pop(request_id)


# KEYS: in-flight zset, per-second requests hash, per-second tokens hash, hourly hash.
# ARGV: now, request id, tokens, concurrency, rpm, tpm, tpd (-1: none).
# Returns {0, second, hour} when admitted, or {1, what, limit, retry_after}.
_ADMIT = """
local now = tonumber(ARGV[1])
local second = math.floor(now)
local hour = math.floor(second / 3600)
local tokens = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 900)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  return {1, 'concurrency', ARGV[4], 1}
end
local requests, used, oldest = 0, 0, nil
local seen = redis.call('HGETALL', KEYS[2])
for i = 1, #seen, 2 do
  local s = tonumber(seen[i])
  if s <= second - 60 then
    redis.call('HDEL', KEYS[2], seen[i])
    redis.call('HDEL', KEYS[3], seen[i])
  else
    requests = requests + tonumber(seen[i + 1])
    used = used + tonumber(redis.call('HGET', KEYS[3], seen[i]) or '0')
    if oldest == nil or s < oldest then oldest = s end
  end
end
if oldest ~= nil then
  local retry = math.max(1, oldest + 60 - second)
  if requests >= tonumber(ARGV[5]) then return {1, 'RPM', ARGV[5], retry} end
  if used + tokens > tonumber(ARGV[6]) then return {1, 'TPM', ARGV[6], retry} end
end
local tpd = tonumber(ARGV[7])
if tpd >= 0 then
  local day = 0
  local hours = redis.call('HGETALL', KEYS[4])
  for i = 1, #hours, 2 do
    if tonumber(hours[i]) <= hour - 24 then
      redis.call('HDEL', KEYS[4], hours[i])
    else
      day = day + tonumber(hours[i + 1])
    end
  end
  if day + tokens > tpd then return {1, 'TPD', ARGV[7], 3600} end
end
redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('HINCRBY', KEYS[2], second, 1)
redis.call('HINCRBY', KEYS[3], second, tokens)
redis.call('HINCRBY', KEYS[4], hour, tokens)
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], 960) end
redis.call('EXPIRE', KEYS[4], 90000)
return {0, second, hour}
"""

# KEYS as above; ARGV: request id, second, hour, token change.
_FINISH = """
redis.call('ZREM', KEYS[1], ARGV[1])
local change = tonumber(ARGV[4])
if change ~= 0 then
  if redis.call('HEXISTS', KEYS[3], ARGV[2]) == 1 then
    redis.call('HINCRBY', KEYS[3], ARGV[2], change)
  end
  if redis.call('HEXISTS', KEYS[4], ARGV[3]) == 1 then
    redis.call('HINCRBY', KEYS[4], ARGV[3], change)
  end
end
return 0
"""


class RedisLimiter:
    """Counts in Redis, shared by every gateway: limits hold across replicas."""

    def __init__(self, url: str, prefix: str = "moonbase:limits") -> None:
        from redis.asyncio import Redis

        self._redis: Any = Redis.from_url(url)
        self._prefix = prefix
        self._admit = self._redis.register_script(_ADMIT)
        self._finish = self._redis.register_script(_FINISH)

    def _keys(self, account_id: str) -> list[str]:
        # One hash tag per account, so a Redis Cluster keeps its keys together.
        base = f"{self._prefix}:{{{account_id}}}"
        return [f"{base}:in_flight", f"{base}:requests", f"{base}:tokens", f"{base}:hourly"]

    async def admit(
        self,
        account_id: str,
        limits: Limits,
        request_id: str,
        tokens: int,
        project: str | None = None,
    ) -> Admitted:
        tpd = -1 if limits.tpd is None else limits.tpd
        args: list[str | int | float] = [
            time.time(),
            request_id,
            tokens,
            limits.concurrency,
            limits.rpm,
            limits.tpm,
            tpd,
        ]
        result = await self._admit(keys=self._keys(account_id), args=args)
        if int(result[0]) == 1:
            what = result[1].decode() if isinstance(result[1], bytes) else str(result[1])
            retry_after = math.ceil(float(result[3]))
            raise refusal(account_id, what, int(result[2]), retry_after, project)
        return Admitted(request_id, int(result[1]), int(result[2]), tokens)

    async def finish(self, account_id: str, admitted: Admitted, tokens: int) -> None:
        args: list[str | int] = [
            admitted.request_id,
            admitted.second,
            admitted.hour,
            tokens - admitted.tokens,
        ]
        await self._finish(keys=self._keys(account_id), args=args)

    async def in_use(self, account_id: str) -> InUse:
        """Read only: old buckets are skipped here and dropped by the next admission."""
        in_flight, requests, tokens, hourly = self._keys(account_id)
        now = time.time()
        second, hour = int(now), int(now) // HOUR
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zcount(in_flight, now - STALE_AFTER, "+inf")
            pipe.hgetall(requests)
            pipe.hgetall(tokens)
            pipe.hgetall(hourly)
            flying, per_second, tokens_per_second, per_hour = await pipe.execute()

        def recent(buckets: dict[Any, Any], after: int) -> int:
            return sum(int(v) for k, v in buckets.items() if int(k) > after)

        return InUse(
            int(flying),
            recent(per_second, second - MINUTE),
            recent(tokens_per_second, second - MINUTE),
            recent(per_hour, hour - DAY // HOUR),
        )

    async def close(self) -> None:
        await self._redis.aclose()
