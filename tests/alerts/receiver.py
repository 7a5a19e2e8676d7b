"""A webhook receiver on loopback (aiohttp), and the Standard Webhooks check
written here from the spec, independently of moonbase/alerts/signing.py."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web


def verify(secret: str, headers: Mapping[str, str], body: bytes, tolerance_s: int = 300) -> bool:
    """standardwebhooks.com 1.0: HMAC-SHA256, keyed with the base64 after
    ``whsec_``, over ``{webhook-id}.{webhook-timestamp}.{body}``; the header
    holds space-separated ``v1,<base64>`` entries; the timestamp is recent."""
    msg_id = headers["webhook-id"]
    timestamp = headers["webhook-timestamp"]
    if abs(time.time() - int(timestamp)) > tolerance_s:
        return False
    key = base64.b64decode(secret.split("_", 1)[1])
    content = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest())
    for entry in headers["webhook-signature"].split(" "):
        version, _, value = entry.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected):
            return True
    return False


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers each POST with the next scripted answer (status, headers), then ``default``."""

    url: str = ""
    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    default: int = 200
    delay_s: float = 0.0  # a slow receiver: answer after this long
    received: list[Received] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(
            Received({k.lower(): v for k, v in request.headers.items()}, await request.read())
        )
        self.arrived.set()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        status, headers = self.answers.pop(0) if self.answers else (self.default, {})
        return web.Response(status=status, headers=headers, text="ok")

    async def wait_for(self, count: int, timeout_s: float = 120.0) -> None:
        """Until ``count`` POSTs have arrived (a generous bound: a busy machine is slow)."""
        async with asyncio.timeout(timeout_s):
            while True:
                self.arrived.clear()
                if len(self.received) >= count:
                    return
                await self.arrived.wait()


@asynccontextmanager
async def receiver(
    *answers: int | tuple[int, dict[str, str]], **options: object
) -> AsyncIterator[Receiver]:
    scripted = [a if isinstance(a, tuple) else (a, {}) for a in answers]
    target = Receiver(answers=scripted, **options)  # type: ignore[arg-type]
    app = web.Application()
    app.router.add_post("/hook", target.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    target.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield target
    finally:
        await runner.cleanup()
