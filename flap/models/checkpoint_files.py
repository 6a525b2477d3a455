"""Check a diffusers-layout pipeline folder's files before any weight is loaded.

Reads only JSON files and the small header of each ``.safetensors`` file, so a truncated download,
a 0-byte weights file, a ``config.json`` that is not JSON or a ``model_index.json`` that is not a
JSON object is reported in one line naming the file, in milliseconds, before the (slow) loading.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from flap.errors import InputError, InputNotFoundError

__all__ = ["check_pipeline_folder", "read_json_object", "check_safetensors_file"]

#: config file of a component folder, first existing name wins (schedulers use scheduler_config.json)
CONFIG_NAMES = ("config.json", "scheduler_config.json")


def read_json_object(path: str | os.PathLike, what: str = "file") -> dict:
    """The JSON object (``dict``) in ``path``.

    Raises:
        InputNotFoundError: missing file.
        InputError: not UTF-8 JSON, or JSON that is not an object (a list, a number ...).
    """
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"{path}: no such {what}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a valid JSON {what} ({exc})") from exc
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object {{...}} in this {what}, found a {type(data).__name__}")
    return data


def check_safetensors_file(path: str | os.PathLike) -> None:
    """Check that a ``.safetensors`` file is complete: valid header and every tensor's bytes present.

    The format is an 8-byte little-endian header length, a JSON header with each tensor's
    ``data_offsets`` into the byte buffer that follows, then the buffer.

    Raises:
        InputError: empty, garbage or truncated (names the file, expected vs found bytes).
    """
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise InputError(f"{path}: weights file is empty (0 bytes); re-copy or re-save the checkpoint")
    with open(path, "rb") as fh:
        raw = fh.read(8)
        n = int.from_bytes(raw, "little") if len(raw) == 8 else -1
        if n <= 0 or 8 + n > size:
            raise InputError(f"{path}: not a complete .safetensors file (header length {n}, file is {size} bytes)")
        try:
            header = json.loads(fh.read(n).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{path}: not a valid .safetensors file (header is not JSON: {exc})") from exc
    if not isinstance(header, dict):
        raise InputError(f"{path}: not a valid .safetensors file (header is not a JSON object)")
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            raise InputError(f"{path}: not a valid .safetensors file (tensor {name!r} has no data_offsets)")
        end = max(end, offsets[1])
    if 8 + n + end > size:
        raise InputError(
            f"{path}: truncated weights file: {size} bytes, its header needs {8 + n + end}; re-copy or re-save the checkpoint"
        )


def check_pipeline_folder(root: str | os.PathLike, required: tuple[str, ...] = (), optional: tuple[str, ...] = ()) -> dict:
    """Check a pipeline folder (``model_index.json`` + one sub-folder per component) and return the index.

    Args:
        root: the folder.
        required: components that must be present.
        optional: components that may be missing or ``null`` in the index.

    Returns:
        The parsed ``model_index.json``.

    Raises:
        InputNotFoundError: folder, ``model_index.json``, a required component or its files missing.
        InputError: a JSON file that is not a JSON object, an empty / truncated / garbage weights file.
    """
    root = Path(root)
    if not (root / "model_index.json").is_file():
        state = "the folder does not exist" if not root.exists() else "it has no model_index.json"
        raise InputNotFoundError(
            f"FLAP checkpoint {str(root)!r}: expected a folder with model_index.json (a FLAPPipeline saved "
            f"with save_pretrained); {state}"
        )
    index = read_json_object(root / "model_index.json", "pipeline index")
    for name in (*required, *optional):
        entry = index.get(name)
        if entry is None or (isinstance(entry, list) and entry and entry[0] is None):
            if name in required:
                raise InputNotFoundError(f"{root / 'model_index.json'}: has no component {name!r}")
            continue
        if not (isinstance(entry, list) and len(entry) == 2 and all(isinstance(e, str) for e in entry)):
            raise InputError(
                f"{root / 'model_index.json'}: component {name!r} must be [\"module\", \"ClassName\"], found {entry!r}"
            )
        sub = root / name
        if not sub.is_dir():
            raise InputNotFoundError(f"FLAP checkpoint {str(root)!r}: component folder {name}/ is missing")
        configs = [sub / c for c in CONFIG_NAMES if (sub / c).exists()]
        if not configs:
            raise InputNotFoundError(f"{sub}: no {' or '.join(CONFIG_NAMES)}")
        read_json_object(configs[0], "component config")
        for weights in sorted(sub.glob("*.safetensors")):
            check_safetensors_file(weights)
    return index
