"""Named models: files with sha256 digests, verified before use.

A model entry says where its files come from (an installed package, the portbench cache, or a user
directory), what they must hash to, and what goes in and comes out. ``resolve`` returns verified
``ModelFiles`` or raises ``ModelError`` with one line the user can act on.
"""

from __future__ import annotations

import importlib.util
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from portbench.backends.base import ModelFiles
from portbench.errors import ModelError

# Re-exported: the one digest function stays importable from here.
from portbench.harness.artifacts import sha256_file as sha256_file

MODEL_FORMATS = (("inference.pdmodel", "inference.pdiparams"), ("inference.json", "inference.pdiparams"))


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str
    shape: tuple[int | str, ...]  # -1 or a symbolic name for dynamic axes
    description: str = ""


@dataclass(frozen=True)
class ModelEntry:
    """A registered model. ``package`` + ``subdir`` locate files shipped inside an installed package."""

    name: str
    workload: str
    task: str
    description: str
    source: str  # human-readable provenance for reports
    package: str | None = None
    subdir: str = ""
    sha256: Mapping[str, str] = field(default_factory=dict)  # file name -> digest
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()
    synthetic_weights: bool = False

    def directory(self) -> Path:
        if self.package is None:
            raise ModelError(f"model {self.name!r} has no installed location; pass --model-dir")
        spec = importlib.util.find_spec(self.package)
        if spec is None or spec.origin is None:
            raise ModelError(
                f"model {self.name!r} needs the Python package {self.package!r}, which is not installed"
            )
        return Path(spec.origin).parent / self.subdir


def find_model_files(directory: Path) -> ModelFiles:
    """The inference files in ``directory``: legacy ``inference.pdmodel`` or PIR ``inference.json``."""
    if not directory.is_dir():
        raise ModelError(f"model directory {directory} does not exist")
    for model_name, params_name in MODEL_FORMATS:
        model_file, params_file = directory / model_name, directory / params_name
        if model_file.is_file():
            if not params_file.is_file():
                raise ModelError(f"model directory {directory} has {model_name} but no {params_name}")
            return ModelFiles(model_file, params_file)
    raise ModelError(
        f"model directory {directory} holds no Paddle inference model "
        "(expected inference.pdmodel or inference.json with inference.pdiparams)"
    )


def verify_digests(directory: Path, expected: Mapping[str, str], model_name: str) -> dict[str, str]:
    """Hash every expected file; raise on a missing file or a mismatch. Returns the digests."""
    actual: dict[str, str] = {}
    for file_name, digest in expected.items():
        path = directory / file_name
        if not path.is_file():
            raise ModelError(f"model {model_name!r}: {path} is missing")
        actual[file_name] = sha256_file(path)
        if actual[file_name] != digest:
            raise ModelError(
                f"model {model_name!r}: {path} fails its sha256 check "
                f"(expected {digest[:12]}…, got {actual[file_name][:12]}…); the file is corrupt or replaced"
            )
    return actual


def hash_model_files(files: ModelFiles) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in (files.model_file, files.params_file)}


def resolve(entry: ModelEntry, override_dir: Path | None = None) -> tuple[ModelFiles, dict[str, str]]:
    """Verified files for ``entry`` and their digests.

    With ``override_dir`` the user's own export is used; it is hashed and recorded, not checked
    against the registry (it is a different model by definition).
    """
    if override_dir is not None:
        files = find_model_files(override_dir)
        check_model_files(files)
        return files, hash_model_files(files)
    directory = entry.directory()
    digests = verify_digests(directory, entry.sha256, entry.name)
    return find_model_files(directory), digests


def check_model_files(files: ModelFiles) -> None:
    """Raise ModelError (one line naming the file) unless the files are what their names claim:
    a ProgramDesc protobuf (``.pdmodel``) or a PIR JSON program (``.json``), and a complete
    ``.pdiparams`` tensor stream. Reads no weights and imports no paddle."""
    for path in (files.model_file, files.params_file):
        if not path.is_file():
            raise ModelError(f"{path} is missing")
    if files.is_pir:
        _check_pir_json(files.model_file)
    else:
        _check_program_desc(files.model_file)
    _check_params(files.params_file)


def check_model_dir(directory: Path) -> ModelFiles | None:
    """The checked inference files of ``directory``, or None when it holds no inference export
    (e.g. a training checkpoint, which its workload handles). Raises ModelError on bad files."""
    if not any((directory / model).is_file() for model, _ in MODEL_FORMATS):
        return None
    files = find_model_files(directory)
    check_model_files(files)
    return files


# The older name: callers that only meant "readable" get the full check.
check_params_readable = check_model_files
# --- cheap structural checks of model files, without paddle --------------------------------------
#
# A file that is not what its name claims reaches Paddle's C++ loader, which may abort the worker
# (SIGSEGV) instead of raising. These checks read only headers and protobuf tags, so they are cheap
# enough to run in the parent process before any worker starts.

# ProgramDesc (paddle/fluid/framework/framework.proto): blocks = 1, version = 4, op_version_map = 5
# (2 and 3 are reserved), all length-delimited. BlockDesc: idx = 1 and parent_idx = 2 (required
# varints), vars = 3 and ops = 4 (messages), forward_block_idx = 5 (varint).
_PROGRAM_FIELDS = {1: 2, 4: 2, 5: 2}
_BLOCK_FIELDS = {1: 0, 2: 0, 3: 2, 4: 2, 5: 0}
# Bytes per element of VarType.Type codes a dense tensor may hold (framework.proto).
_DTYPE_SIZES = {
    0: 1, 1: 2, 2: 4, 3: 8, 4: 2, 5: 4, 6: 8, 19: 8, 20: 1, 21: 1, 22: 2, 23: 8, 24: 16, 32: 1, 33: 1
}
# The PIR program Paddle 3 writes: {"base_code": {"magic": "pir", "version": N, ...}, "program": {...}}.
PIR_MAGIC = "pir"


class _WireError(ValueError):
    pass


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while shift < 70:
        if pos >= len(data):
            raise _WireError("ends inside a varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
    raise _WireError("has a varint longer than 10 bytes")


def _fields(data: bytes, allowed: Mapping[int, int], what: str) -> dict[int, list[bytes | int]]:
    """The fields of one protobuf message; every tag must be one ``allowed`` names, with its wire type."""
    found: dict[int, list[bytes | int]] = {}
    pos = 0
    while pos < len(data):
        tag, pos = _varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if allowed.get(number) != wire:
            raise _WireError(f"has field {number} (wire type {wire}), which a {what} does not have")
        if wire == 0:
            value, pos = _varint(data, pos)
            found.setdefault(number, []).append(value)
        else:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise _WireError(f"is truncated inside a {what}")
            found.setdefault(number, []).append(data[pos : pos + length])
            pos += length
    return found


def _check_program_desc(path: Path) -> None:
    data = path.read_bytes()
    problem = "is empty" if not data else None
    if problem is None:
        try:
            program = _fields(data, _PROGRAM_FIELDS, "ProgramDesc")
            blocks = program.get(1, [])
            if not blocks:
                raise _WireError("has no program blocks")
            for block in blocks:
                fields = _fields(bytes(block), _BLOCK_FIELDS, "BlockDesc")
                if 1 not in fields or 2 not in fields:
                    raise _WireError("has a block without its index")
        except _WireError as error:
            problem = str(error)
    if problem is not None:
        raise ModelError(f"{path} is not a Paddle program (ProgramDesc protobuf): it {problem}")


def _check_pir_json(path: Path) -> None:
    try:
        document = json.loads(path.read_bytes())
    except (UnicodeDecodeError, ValueError) as error:
        raise ModelError(f"{path} is not a Paddle PIR program: not valid JSON ({error})") from None
    base = document.get("base_code") if isinstance(document, dict) else None
    if not isinstance(base, dict) or base.get("magic") != PIR_MAGIC:
        raise ModelError(f'{path} is not a Paddle PIR program: no "base_code" with magic "{PIR_MAGIC}"')
    program = document.get("program")
    if not isinstance(program, dict) or not isinstance(program.get("regions"), list):
        raise ModelError(f'{path} is not a Paddle PIR program: no "program" with "regions"')


def _tensor_dims(desc: bytes) -> tuple[int, list[int]]:
    """(data type, dims) of a VarType.TensorDesc: data_type = 1 (enum), dims = 2 (int64, any packing)."""
    dtype: int | None = None
    dims: list[int] = []
    pos = 0
    while pos < len(desc):
        tag, pos = _varint(desc, pos)
        if tag == 1 << 3:
            dtype, pos = _varint(desc, pos)
        elif tag == 2 << 3:
            value, pos = _varint(desc, pos)
            dims.append(value - (1 << 64) if value >= 1 << 63 else value)
        elif tag == (2 << 3) | 2:
            length, pos = _varint(desc, pos)
            end = pos + length
            while pos < end:
                value, pos = _varint(desc, pos)
                dims.append(value - (1 << 64) if value >= 1 << 63 else value)
        else:
            raise _WireError("a tensor description with an unknown field")
    if dtype is None:
        raise _WireError("a tensor description without a data type")
    return dtype, dims


def _check_params(path: Path) -> int:
    """Walk the tensors of a combined ``.pdiparams`` (Paddle's save_combine stream); returns their count.

    Each tensor is: uint32 version (0), uint64 LoD level count, per level uint64 byte size + data,
    uint32 tensor version (0), int32 TensorDesc size, the TensorDesc protobuf, then the raw data.
    The walk must end exactly at the end of the file: a truncated or padded file does not.
    """
    size = path.stat().st_size
    if size == 0:
        raise ModelError(f"{path} is empty")
    count = pos = 0
    with path.open("rb") as handle:

        def read(length: int) -> bytes:
            nonlocal pos
            handle.seek(pos)
            data = handle.read(length)
            if len(data) < length:
                raise _WireError(f"is truncated: tensor {count + 1} is cut off by the end of the file")
            pos += length
            return data

        try:
            while pos < size:
                start = pos
                version, lod_levels = struct.unpack("<IQ", read(12))
                if version != 0 or lod_levels > 16:
                    raise _WireError(f"has no tensor header at byte {start}")
                for _ in range(lod_levels):
                    (level_bytes,) = struct.unpack("<Q", read(8))
                    pos += level_bytes
                tensor_version, desc_size = struct.unpack("<Ii", read(8))
                if tensor_version != 0 or not 0 < desc_size <= 4096:
                    raise _WireError(f"has no tensor header at byte {start}")
                dtype, dims = _tensor_dims(read(desc_size))
                if dtype not in _DTYPE_SIZES or any(d < 0 for d in dims):
                    raise _WireError(f"has a tensor of unknown type or shape at byte {start}")
                numel = 1
                for dim in dims:
                    numel *= dim
                pos += numel * _DTYPE_SIZES[dtype]
                count += 1
        except _WireError as error:
            raise ModelError(f"{path} is not a complete Paddle parameter file: it {error}") from None
    if pos != size:
        raise ModelError(
            f"{path} is not a complete Paddle parameter file: it is truncated "
            f"(its {count} tensors need {pos} bytes, the file has {size})"
        )
    return count
