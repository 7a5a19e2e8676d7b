"""Write a GGUF as a split GGUF (``-00001-of-0000N``), as llama.cpp's
gguf-split does: the same metadata and tensors over N files (gguf-py's
writer, the way its gguf_new_metadata script copies a model)."""

from __future__ import annotations

import math
from pathlib import Path

import gguf


def split_gguf(source: Path, folder: Path, stem: str, parts: int) -> list[Path]:
    reader = gguf.GGUFReader(source)
    per_part = math.ceil(len(reader.tensors) / parts)
    arch = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
    writer = gguf.GGUFWriter(folder / f"{stem}.gguf", arch, split_max_tensors=per_part)
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        kind = field.types[0]
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), kind, sub_type=sub)
    for tensor in reader.tensors:
        data = tensor.data
        writer.add_tensor_info(tensor.name, data.shape, data.dtype, data.nbytes, tensor.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for tensor in reader.tensors:
        writer.write_tensor_data(tensor.data, tensor_endianess=reader.endianess)
    writer.close()
    return [folder / f"{stem}-{i:05d}-of-{parts:05d}.gguf" for i in range(1, parts + 1)]
