"""Replica choice and ejection, on a fake clock."""

from moonbase.engines.upstream.replicas import ReplicaPool


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def test_least_in_flight_wins_and_ties_take_turns():
    pool = ReplicaPool(["http://a/v1", "http://b/v1", "http://c/v1"], 2, 60, Clock())
    a, b, c = pool.replicas
    a.in_flight, b.in_flight, c.in_flight = 3, 1, 2
    assert pool.pick() is b
    b.in_flight = 3
    picks = {pool.pick().url for _ in range(3)}  # a and b tie at 3, c has 2
    assert picks == {"http://c/v1"}
    c.in_flight = 3
    assert {pool.pick().url for _ in range(3)} == {"http://a/v1", "http://b/v1", "http://c/v1"}


def test_ejection_doubles_while_failing_and_a_success_ends_it():
    clock = Clock()
    pool = ReplicaPool(["http://a/v1", "http://b/v1"], 2, 5, clock)
    a, b = pool.replicas
    pool.failed(a, "refused")
    assert pool.pick() is b
    pool.failed(b, "refused")
    assert pool.pick() is None
    assert pool.retry_after() == 2
    clock.now += 2
    assert pool.pick(exclude={"http://b/v1"}) is a
    pool.failed(a, "refused")  # 4 s now
    clock.now += 3
    assert not a.available(clock.now)
    pool.failed(a, "refused")  # 8 s, capped at 5
    assert a.ejected_until - clock.now == 5
    pool.succeeded(a)
    assert a.available(clock.now) and a.failures == 0 and a.last_error is None
