"""GGUF files from a Hugging Face repository: ``hf://<owner>/<repo>/<file>.gguf[@<revision>]``.

Fetched once with ``huggingface_hub`` into the data directory's model cache
(``<data_dir>/models``, the hub's own cache layout), with a progress bar;
an interrupted transfer resumes where it broke (``huggingface_hub`` asks for
the rest with a ``Range``). ``HF_ENDPOINT`` (a mirror), ``HF_TOKEN`` (gated
or private repositories) and ``HF_HUB_OFFLINE`` are read when a model is
resolved, not when this module is imported.

Every part is checked against the SHA-256 the hub reports for it (the LFS
object id: the resolve endpoint's ``X-Linked-Etag``, which names the cached
blob, or the paths-info API's ``lfs.oid``): a file that does not match is
deleted and refused. A checked blob is remembered (``verified/<sha256>``), so
a later start does not read gigabytes again.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moonbase.engines.llamacpp.model_file import HF_SCHEME, ModelFileNotFound, split_parts

SHA256 = re.compile(r"^[0-9a-f]{64}$")
REPO_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class HubFile:
    repo_id: str  # owner/name
    filename: str  # path inside the repository
    revision: str | None = None  # a branch, tag or commit; None: main

    @property
    def ref(self) -> str:
        at = f"@{self.revision}" if self.revision else ""
        return f"{HF_SCHEME}{self.repo_id}/{self.filename}{at}"

    @property
    def parts(self) -> list[str]:
        """The repository paths of every part (one, unless it is a split GGUF)."""
        folder, _, name = self.filename.rpartition("/")
        prefix = f"{folder}/" if folder else ""
        return [prefix + part for part in split_parts(name)]


def parse_ref(ref: str) -> HubFile:
    body = ref.removeprefix(HF_SCHEME)
    revision = None
    if "@" in body:
        body, _, revision = body.rpartition("@")
    pieces = body.split("/")
    if (
        len(pieces) < 3
        or not all(REPO_PART.match(piece) for piece in pieces[:2])
        or not pieces[-1].endswith(".gguf")
        or any(piece in ("", ".", "..") for piece in pieces)
        or revision == ""
    ):
        raise ModelFileNotFound(
            f"{ref!r} is not a Hugging Face model reference: write "
            "hf://<owner>/<repo>/<file>.gguf, optionally followed by @<revision>"
        )
    return HubFile("/".join(pieces[:2]), "/".join(pieces[2:]), revision)


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "on", "yes", "true")


def offline() -> bool:
    return _env_true("HF_HUB_OFFLINE")


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def _token() -> str | None:
    return os.environ.get("HF_TOKEN") or None


def _progress_class() -> Any:
    """huggingface_hub's bar, shown even where stderr is not a terminal (a
    service's log), every few seconds there; HF_HUB_DISABLE_PROGRESS_BARS hides it."""
    from huggingface_hub.utils import tqdm

    class Progress(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            if kwargs.get("disable") is None:
                kwargs["disable"] = False
            if not sys.stderr.isatty():
                kwargs.setdefault("mininterval", 5.0)
            super().__init__(*args, **kwargs)

    return Progress


def fetch(file: HubFile, cache_dir: Path) -> Path:
    """The local path of ``file`` (the first part of a split GGUF), downloading
    and checking what is not in ``cache_dir`` yet."""
    paths = [_fetch_part(file, part, cache_dir) for part in file.parts]
    return paths[0]


def cached(file: HubFile, cache_dir: Path) -> Path | None:
    """The local path of ``file`` if every part is cached (nothing is fetched)."""
    from huggingface_hub import try_to_load_from_cache

    found = []
    for part in file.parts:
        path = try_to_load_from_cache(
            file.repo_id, part, cache_dir=str(cache_dir), revision=file.revision
        )
        if not isinstance(path, str):
            return None
        found.append(Path(path))
    return found[0]


def _fetch_part(file: HubFile, part: str, cache_dir: Path) -> Path:
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{HF_SCHEME}{file.repo_id}/{part}"
    is_offline = offline()
    # huggingface_hub reads HF_HUB_OFFLINE once, when it is first imported, and
    # refuses every request while it is set: follow the environment as it is now.
    constants.HF_HUB_OFFLINE = is_offline
    try:
        path = hf_hub_download(
            file.repo_id,
            part,
            revision=file.revision,
            cache_dir=str(cache_dir),
            endpoint=endpoint(),
            token=_token(),
            local_files_only=is_offline,
            tqdm_class=_progress_class(),
        )
    except LocalEntryNotFoundError as exc:
        if is_offline:
            raise ModelFileNotFound(
                f"{where} is not in the model cache ({cache_dir}) and HF_HUB_OFFLINE is set: "
                "run `moonbase models pull` once where the hub can be reached (with the same "
                "data directory), or unset HF_HUB_OFFLINE"
            ) from exc
        raise ModelFileNotFound(
            f"{where} is not in the model cache ({cache_dir}) and {endpoint()} could not be "
            f"reached ({exc.__cause__ or exc}): check the network or HF_ENDPOINT, or copy "
            "the file here and set the model to its path"
        ) from exc
    except (RepositoryNotFoundError, GatedRepoError) as exc:
        raise ModelFileNotFound(
            f"{where}: the repository {file.repo_id} was not found at {endpoint()}, or it is "
            "private or gated: check the name, or set HF_TOKEN to a token that may read it"
        ) from exc
    except RevisionNotFoundError as exc:
        raise ModelFileNotFound(
            f"{where}: {file.repo_id} has no revision {file.revision!r}"
        ) from exc
    except EntryNotFoundError as exc:
        raise ModelFileNotFound(f"{where}: {file.repo_id} has no file {part!r}") from exc
    except HfHubHTTPError as exc:
        raise ModelFileNotFound(f"{where}: the hub answered {exc}") from exc
    except OSError as exc:  # a full disk, a cache that cannot be written
        raise ModelFileNotFound(f"{where}: could not store it in {cache_dir}: {exc}") from exc
    except Exception as exc:  # the transfer broke for good (after its own retries)
        raise ModelFileNotFound(f"{where}: the download failed: {exc!r}; start again") from exc
    pointer = Path(str(path))
    _verify(file, part, pointer, cache_dir, is_offline)
    return pointer


def _verify(file: HubFile, part: str, pointer: Path, cache_dir: Path, is_offline: bool) -> None:
    """Refuse (and delete) a file whose SHA-256 is not the one the hub reports."""
    blob = pointer.resolve()
    size = blob.stat().st_size
    expected = blob.name if SHA256.match(blob.name) else None
    marker = cache_dir / "verified" / (expected or blob.name)
    if marker.is_file() and marker.read_text().strip() == str(size):
        return
    if expected is None and not is_offline:
        expected = _lfs_sha256(file, part)
    where = f"{HF_SCHEME}{file.repo_id}/{part}"
    if expected is None:
        raise ModelFileNotFound(
            f"{where}: the hub reports no SHA-256 for this file (it is not stored in LFS), "
            "so its download cannot be checked; download it yourself and set the model to its path"
        )
    actual = _sha256(blob)
    if actual != expected:
        pointer.unlink(missing_ok=True)
        blob.unlink(missing_ok=True)
        raise ModelFileNotFound(
            f"{where}: the download is corrupted: its SHA-256 is {actual}, the hub reports "
            f"{expected}; it was deleted, start again to download it again"
        )
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(f"{size}\n")


def _lfs_sha256(file: HubFile, part: str) -> str | None:
    """The LFS object id the paths-info API reports for ``part``."""
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

    api = HfApi(endpoint=endpoint(), token=_token())
    for entry in api.get_paths_info(file.repo_id, [part], revision=file.revision):
        if isinstance(entry, RepoFile) and entry.lfs is not None:
            sha = str(entry.lfs.sha256)
            return sha if SHA256.match(sha) else None
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(8 * 2**20):
            digest.update(chunk)
    return digest.hexdigest()
