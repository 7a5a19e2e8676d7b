"""A closed-loop HTTP/1.1 load generator: N keep-alive connections, each sending
its next request as soon as the previous response has fully arrived.

Written on raw asyncio streams (no client library) so that the generator
costs far less CPU per request than the servers it measures: on two cores it
shares the machine with them. Latency is to the last byte of the response.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Result:
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> dict[str, float]:
        return {
            "rps": round(self.rps, 1),
            "p50_ms": round(self.percentile(0.50), 3),
            "p99_ms": round(self.percentile(0.99), 3),
            "mean_ms": round(statistics.fmean(self.latencies_ms), 3) if self.latencies_ms else 0,
            "requests": self.requests,
            "errors": self.errors,
        }


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Read one response; returns its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if b":" in line:
            key, value = line.split(b":", 1)
            headers[key.strip().lower()] = value.strip()
    if b"content-length" in headers:
        await reader.readexactly(int(headers[b"content-length"]))
    elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status


async def _connection(
    host: str, port: int, request: bytes, deadline: float, latencies: list[float], errors: list[int]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while True:  # at least one request, then until the deadline
            started = time.perf_counter()
            writer.write(request)
            status = await _read_response(reader)
            if status == 200:
                latencies.append((time.perf_counter() - started) * 1000)
            else:
                errors.append(status)
            if time.perf_counter() >= deadline:
                break
    finally:
        writer.close()


async def run(
    url: str, body: dict, concurrency: int, seconds: float, api_key: str | None = None
) -> Result:
    parts = urlsplit(url)
    payload = json.dumps(body).encode()
    head = [
        f"POST {parts.path} HTTP/1.1",
        f"Host: {parts.hostname}:{parts.port}",
        "Content-Type: application/json",
        f"Content-Length: {len(payload)}",
    ]
    if api_key:
        head.append(f"Authorization: Bearer {api_key}")
    request = ("\r\n".join(head) + "\r\n\r\n").encode() + payload
    latencies: list[float] = []
    errors: list[int] = []
    # Warm up: connections open, caches filled, one request each.
    await asyncio.gather(
        *(
            _connection(parts.hostname or "", parts.port or 80, request, 0, [], [])
            for _ in range(concurrency)
        )
    )
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(
        *(
            _connection(
                parts.hostname or "", parts.port or 80, request, deadline, latencies, errors
            )
            for _ in range(concurrency)
        )
    )
    return Result(len(latencies), len(errors), time.perf_counter() - started, latencies)


def main() -> None:
    """``loadgen.py URL BODY_JSON CONCURRENCY SECONDS [API_KEY]``: prints a JSON summary."""
    url, body, concurrency, seconds = (
        sys.argv[1],
        json.loads(sys.argv[2]),
        int(sys.argv[3]),
        float(sys.argv[4]),
    )
    key = sys.argv[5] if len(sys.argv) > 5 else None
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(run(url, body, concurrency, seconds, key))
    print(json.dumps(result.summary()))


if __name__ == "__main__":
    main()
