"""What a GGUF file is, read from its metadata without loading its weights
(llama.cpp with ``vocab_only``): name, architecture, quantisation, trained
context, chat template and the tool-call format that template teaches."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import llama_cpp
from llama_cpp import _internals, _logger

from moonbase.engines.chat_template import ChatTemplate
from moonbase.engines.llamacpp.model_file import split_parts


def _file_types() -> dict[int, str]:
    """llama.cpp's LLAMA_FTYPE_* constants by value: 15 -> Q4_K_M."""
    names: dict[int, str] = {}
    for attribute in dir(llama_cpp):
        if attribute.startswith("LLAMA_FTYPE_") and attribute != "LLAMA_FTYPE_GUESSED":
            value = getattr(llama_cpp, attribute)
            if isinstance(value, int):
                label = attribute.removeprefix("LLAMA_FTYPE_").removeprefix("MOSTLY_")
                names.setdefault(value, label)
    return names


@dataclass(frozen=True)
class GgufInfo:
    path: Path
    parts: int
    size_bytes: int  # every part together
    name: str
    architecture: str
    quantisation: str
    trained_context: int
    tool_format: str
    reasons_natively: bool

    @property
    def size_text(self) -> str:
        size = float(self.size_bytes)
        for unit in ("B", "KiB", "MiB", "GiB"):
            if size < 1024 or unit == "GiB":
                return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
            size /= 1024
        return f"{size:.1f} GiB"


def read_gguf_info(path: Path) -> GgufInfo:
    _logger.set_verbose(False)
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    model = _internals.LlamaModel(path_model=str(path), params=params, verbose=False)
    try:
        metadata = model.metadata()
        # vocab_only loads no hyperparameters: the trained context is read from
        # the metadata (<architecture>.context_length), as llama.cpp reads it.
        architecture = metadata.get("general.architecture", "unknown")
        trained = int(metadata.get(f"{architecture}.context_length", "0") or 0)
        bos, eos = model.token_bos(), model.token_eos()
        template = ChatTemplate(
            metadata.get("tokenizer.chat_template"),
            bos_token=model.token_get_text(bos) if bos >= 0 else "",
            eos_token=model.token_get_text(eos) if eos >= 0 else "",
        )
    finally:
        model.close()
    names = split_parts(path.name)
    size = sum((path.parent / name).stat().st_size for name in names)
    file_type = metadata.get("general.file_type")
    quantisation = (
        _file_types().get(int(file_type), f"type {file_type}")
        if file_type is not None and file_type.isdigit()
        else "unknown"
    )
    return GgufInfo(
        path=path,
        parts=len(names),
        size_bytes=size,
        name=metadata.get("general.name", path.stem),
        architecture=architecture,
        quantisation=quantisation,
        trained_context=trained,
        tool_format=template.tool_format,
        reasons_natively=template.reasons_natively,
    )
