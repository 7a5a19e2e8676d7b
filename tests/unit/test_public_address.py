"""The media fetcher's address allowlist, and that it connects to what it checked."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import httpx
import pytest

from moonbase.chat.media import MediaReference, MediaResolver
from moonbase.chat.public_address import is_public
from moonbase.errors import BadRequestError
from moonbase.settings import MediaSettings


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
        "0.0.0.0", "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255",
        "::1", "::", "fe80::1", "fc00::1", "fec0::1", "ff02::1", "ff0e::1",
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2001:0:4136:e378::",  # Teredo
        "::127.0.0.1",  # IPv4-compatible
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:10.0.0.1",
        "2001:db8::1",  # documentation
    ],
)  # fmt: skip
def test_non_public_addresses_are_refused(address: str):
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "1.1.1.1", "2606:4700::1111", "::ffff:1.1.1.1"]
)
def test_public_unicast_addresses_are_allowed(address: str):
    assert is_public(ipaddress.ip_address(address))


async def test_the_fetch_goes_to_the_address_that_was_checked(monkeypatch, tmp_path):
    """A rebinding name answers a public address to the check; the request must
    go to that address, with the name kept in Host and for TLS."""
    answers = iter(["93.184.216.34", "127.0.0.1"])  # a second lookup would rebind

    async def getaddrinfo(host, port, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), 0))]

    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=b"x")

    loop = asyncio.get_running_loop()
    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    resolver = MediaResolver(MediaSettings(), None)  # type: ignore[arg-type]
    resolver.transport = httpx.MockTransport(handler)
    reference = MediaReference(key=(0, 0), kind="image", url="https://rebind.example/cat.png")
    assert await resolver._fetch(reference) == b"x"
    assert seen[0].url.host == "93.184.216.34"
    assert seen[0].headers["host"] == "rebind.example"
    assert seen[0].extensions["sni_hostname"] == "rebind.example"


async def test_a_name_with_any_private_address_is_refused(monkeypatch):
    async def getaddrinfo(host, port, **kwargs):
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 0)),
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("64:ff9b::a00:1", 0, 0, 0)),
        ]

    loop = asyncio.get_running_loop()
    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    resolver = MediaResolver(MediaSettings(), None)  # type: ignore[arg-type]
    reference = MediaReference(key=(0, 0), kind="image", url="http://mixed.example/a.png")
    with pytest.raises(BadRequestError):
        await resolver._fetch(reference)
