"""Images and videos in chat messages: find them, check them, load them, count them.

Three steps, cheapest first, so that a request that will be refused costs
nothing: (1) every reference is checked without fetching anything -- its
scheme, a data URL's size from its length alone (a 20 MB data URL is never
decoded), an ``ms://`` file's owner and purpose; (2) the model must read the
kind of media; (3) the bytes are loaded (decoded, fetched over http(s) within
a size and time budget, or read from the blob store) and proved by decoding
in the bounded inspection child (``FileService.inspect``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import math
import socket
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx

from moonbase.catalog import ServedModel
from moonbase.chat.public_address import is_public
from moonbase.engines.base import MediaInput
from moonbase.errors import BadRequestError
from moonbase.files.service import FileService
from moonbase.schemas.chat import ImagePart, Message, VideoPart
from moonbase.settings import MediaSettings
from moonbase.store.tables import StoredFile

MediaKind = Literal["image", "video"]
MediaKey = tuple[int, int]  # (message index, content part index)

# Token estimates, in the manner of Kimi's vision encoder: 28x28-pixel patches
# after fitting the image into a bound; a video is sampled at 2 frames/s (at
# most 64 frames), each frame fitted into 448x448.
PATCH = 28
IMAGE_BOUND = 1792
FRAME_BOUND = 448
FRAMES_PER_SECOND = 2
MAX_FRAMES = 64


def image_tokens(width: int, height: int, bound: int = IMAGE_BOUND) -> int:
    scale = min(1.0, bound / max(width, height, 1))
    return math.ceil(width * scale / PATCH) * math.ceil(height * scale / PATCH)


def video_tokens(width: int, height: int, duration_ms: int | None) -> int:
    seconds = (duration_ms or 1000) / 1000
    frames = min(MAX_FRAMES, max(1, math.ceil(seconds * FRAMES_PER_SECOND)))
    return frames * image_tokens(width, height, FRAME_BOUND)


@dataclass(frozen=True)
class MediaReference:
    key: MediaKey
    kind: MediaKind
    url: str

    @property
    def where(self) -> str:
        return f"messages[{self.key[0]}].content[{self.key[1]}]"


def find_media(messages: Sequence[Message]) -> list[MediaReference]:
    found: list[MediaReference] = []
    for message_index, message in enumerate(messages):
        if not isinstance(message.content, list):
            continue
        for part_index, part in enumerate(message.content):
            if isinstance(part, ImagePart):
                url, kind = part.image_url, "image"
            elif isinstance(part, VideoPart):
                url, kind = part.video_url, "video"
            else:
                continue
            address = url if isinstance(url, str) else url.url
            found.append(MediaReference((message_index, part_index), kind, address))  # type: ignore[arg-type]
    return found


@dataclass
class _Checked:
    reference: MediaReference
    data: bytes | None = None  # a data URL's payload, decoded in step 3
    stored: StoredFile | None = None  # an ms:// file


class MediaResolver:
    def __init__(self, settings: MediaSettings, files: FileService) -> None:
        self.settings = settings
        self.files = files
        self.transport: httpx.AsyncBaseTransport | None = None  # tests put a mock here
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        """One client for every fetch (building one, with its TLS context, costs
        milliseconds). No kept-alive connections: the pool is keyed by address,
        and a connection whose certificate was checked for one name must not
        carry a request for another name served from the same address."""
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.settings.fetch_timeout_s,
                transport=self.transport,
                limits=httpx.Limits(max_keepalive_connections=0),
            )
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    def _limit(self, kind: MediaKind) -> int:
        if kind == "image":
            return self.settings.max_image_bytes
        return self.settings.max_video_bytes

    async def resolve(
        self,
        references: list[MediaReference],
        account_id: str,
        project_id: str | None,
        model: ServedModel,
        capable_models: dict[str, list[str]],
    ) -> dict[MediaKey, MediaInput]:
        if len(references) > self.settings.max_parts_per_request:
            raise BadRequestError(
                f"a request may carry at most {self.settings.max_parts_per_request} images "
                f"and videos, got {len(references)}",
                param="messages",
            )
        checked = [await self._check(reference, account_id, project_id) for reference in references]
        for reference in references:
            _check_model_reads(model, reference, capable_models.get(reference.kind, []))
        loaded = await asyncio.gather(*(self._load(item) for item in checked))
        return {item.reference.key: media for item, media in zip(checked, loaded, strict=True)}

    async def _check(
        self, reference: MediaReference, account_id: str, project_id: str | None
    ) -> _Checked:
        url, where, kind = reference.url, reference.where, reference.kind
        scheme = url.split(":", 1)[0].lower()
        if scheme == "data":
            return _Checked(reference, data=self._data_url(reference))
        if scheme == "ms":
            file_id = url.removeprefix("ms://")
            # Only the caller's project's files: another project's is not found.
            stored = await self.files.get(account_id, file_id, project_id=project_id)
            if stored.purpose != kind or stored.status != "ready":
                raise BadRequestError(
                    f"{where}: file {file_id} was uploaded with purpose {stored.purpose!r}; "
                    f"a {kind}_url needs a file uploaded with purpose {kind!r}",
                    param=where,
                )
            return _Checked(reference, stored=stored)
        if scheme in {"http", "https"}:
            return _Checked(reference)
        raise BadRequestError(
            f"{where}: {kind}_url must be a data URL (data:{kind}/...;base64,...), an http(s) "
            f"URL or ms://<file_id> of a file uploaded with purpose {kind}",
            param=where,
        )

    def _data_url(self, reference: MediaReference) -> bytes:
        header, comma, payload = reference.url.partition(",")
        where, kind = reference.where, reference.kind
        if not comma or not header.endswith(";base64"):
            raise BadRequestError(
                f"{where}: a {kind} data URL must be base64: data:{kind}/<format>;base64,<data>",
                param=where,
            )
        # Judge the size from the length alone: a huge payload is never decoded.
        size = len(payload) * 3 // 4
        limit = self._limit(kind)
        if size > limit:
            raise BadRequestError(
                f"{where}: the {kind} is {size / 2**20:.1f} MB; "
                f"a {kind} may be at most {limit / 2**20:.0f} MB",
                param=where,
            )
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequestError(
                f"{where}: the data URL is not valid base64", param=where
            ) from None

    async def _load(self, item: _Checked) -> MediaInput:
        reference = item.reference
        if item.stored is not None:
            stored = item.stored
            data = await self.files.read_bytes(stored)
            return self._input(reference.kind, stored.content_type, data, stored.width or 0,
                               stored.height or 0, stored.duration_ms)  # fmt: skip
        data = item.data if item.data is not None else await self._fetch(reference)
        # Decoding is native code on untrusted bytes (a 10k x 10k PNG is 400 MB
        # of pixels): it runs in the inspection child, bounded in memory, time
        # and number like an upload's, never in the server process.
        with tempfile.TemporaryDirectory(
            prefix="moonbase-media-", dir=self.files.blobs.spool_dir
        ) as folder:
            path = Path(folder) / reference.kind
            await asyncio.to_thread(path.write_bytes, data)
            found = await self.files.inspect(reference.kind, path, reference.kind)
        if found.status != "ready":
            raise BadRequestError(
                f"{reference.where}: the file is not a valid {reference.kind}: {found.details}",
                param=reference.where,
            )
        return self._input(reference.kind, found.content_type, data, found.width or 0,
                           found.height or 0, found.duration_ms)  # fmt: skip

    @staticmethod
    def _input(
        kind: MediaKind, mime: str, data: bytes, width: int, height: int, duration_ms: int | None
    ) -> MediaInput:
        tokens = image_tokens(width, height) if kind == "image" else (
            video_tokens(width, height, duration_ms)
        )  # fmt: skip
        return MediaInput(kind, mime, data, width, height, duration_ms, tokens)

    async def _fetch(self, reference: MediaReference) -> bytes:
        where, limit = reference.where, self._limit(reference.kind)
        url = httpx.URL(reference.url)
        headers, extensions = {}, {}
        if not self.settings.allow_private_urls:
            # Connect to the very address that was checked: resolving the name
            # again in the client would let a rebinding DNS answer differently.
            host = url.host
            address = await _public_address(host, where)
            url = url.copy_with(host=address)
            headers["host"] = f"{host}:{url.port}" if url.port else host
            extensions["sni_hostname"] = host  # TLS still checks the name's certificate
        try:
            async with self._http().stream(
                "GET", url, headers=headers, extensions=extensions, follow_redirects=False
            ) as response:
                if response.status_code != 200:
                    raise BadRequestError(
                        f"{where}: fetching {reference.url} gave HTTP {response.status_code}",
                        param=where,
                    )
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise BadRequestError(
                            f"{where}: the {reference.kind} at {reference.url} is larger than "
                            f"{limit / 2**20:.0f} MB",
                            param=where,
                        )
                    chunks.append(chunk)
        except httpx.HTTPError as error:
            raise BadRequestError(
                f"{where}: could not fetch {reference.url}: {error.__class__.__name__}",
                param=where,
            ) from None
        return b"".join(chunks)


async def _public_address(host: str, where: str) -> str:
    """The address to fetch ``host`` from; refused unless every address the
    name resolves to is public (``chat/public_address.py``)."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        raise BadRequestError(f"{where}: cannot resolve the host {host!r}", param=where) from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not addresses or not all(is_public(address) for address in addresses):
        raise BadRequestError(
            f"{where}: media URLs on private, local or non-unicast addresses are not fetched "
            f"({host})",
            param=where,
        )
    return str(addresses[0])


def _check_model_reads(model: ServedModel, reference: MediaReference, capable: list[str]) -> None:
    reads = model.supports_image_in if reference.kind == "image" else model.supports_video_in
    if reads:
        return
    kind = reference.kind
    if capable:
        hint = f"models that can on this deployment: {', '.join(capable)}"
    else:
        hint = (
            f"no model on this deployment reads {kind}s; an operator can serve a vision model "
            "on an engine with image and video input"
        )
    raise BadRequestError(
        f"model {model.id} cannot read {kind} input ({hint}; see supports_{kind}_in in "
        "GET /v1/models)",
        param=reference.where,
        code="unsupported_media",
    )
