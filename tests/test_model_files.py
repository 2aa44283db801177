"""Model files are what they claim before Paddle sees them: ProgramDesc, PIR JSON, parameter stream."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from portbench.backends.base import ModelFiles
from portbench.errors import ModelError
from portbench.harness.models import check_model_dir, check_model_files, find_model_files, resolve
from portbench.suites.ocr.models import PPOCR_MOBILE_V2_CLS, PPOCRV4_DET, PPOCRV4_REC

pytestmark = pytest.mark.fast  # contracts, planning, parity, reports with fakes: tox -e fast

FP32, INT64 = 5, 3  # VarType.Type codes in Paddle's framework.proto


def tensor_record(dtype: int, dims: list[int], payload: bytes) -> bytes:
    """One tensor as Paddle's save_combine writes it, built by hand from the documented layout."""
    desc = bytes([0x08, dtype])  # field 1 (data_type), varint
    for dim in dims:
        desc += bytes([0x10, dim])  # field 2 (dims), one small varint each
    return struct.pack("<IQ", 0, 0) + struct.pack("<Ii", 0, len(desc)) + desc + payload


def hand_params() -> bytes:
    weights = struct.pack("<6f", *range(6))  # fp32 [2, 3]: 24 bytes
    ids = struct.pack("<4q", 1, 2, 3, 4)  # int64 [4]: 32 bytes
    return tensor_record(FP32, [2, 3], weights) + tensor_record(INT64, [4], ids)


def hand_program() -> bytes:
    # ProgramDesc{blocks: [BlockDesc{idx: 0, parent_idx: -1 (10-byte varint)}]}
    block = bytes([0x08, 0x00, 0x10]) + b"\xff" * 9 + b"\x01"
    return bytes([0x0A, len(block)]) + block


def write_model(
    directory: Path, model: bytes, params: bytes, model_name: str = "inference.pdmodel"
) -> ModelFiles:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / model_name).write_bytes(model)
    (directory / "inference.pdiparams").write_bytes(params)
    return ModelFiles(directory / model_name, directory / "inference.pdiparams")


def message(error: pytest.ExceptionInfo[ModelError]) -> str:
    text = str(error.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize("entry", [PPOCRV4_DET, PPOCRV4_REC, PPOCR_MOBILE_V2_CLS], ids=lambda e: e.name)
def test_shipped_ppocr_models_pass(entry) -> None:  # type: ignore[no-untyped-def]
    files = find_model_files(entry.directory())
    check_model_files(files)
    assert check_model_dir(entry.directory()) == files
    assert resolve(entry, entry.directory())[0] == files  # the --model-dir route checks them too


def test_hand_built_model_passes(tmp_path: Path) -> None:
    check_model_files(write_model(tmp_path, hand_program(), hand_params()))


def test_text_pdmodel_is_refused(tmp_path: Path) -> None:
    files = write_model(tmp_path, b"this is not a program, just text\n", hand_params())
    with pytest.raises(ModelError) as raised:
        check_model_files(files)
    assert f"{files.model_file} is not a Paddle program" in message(raised)


def test_program_without_blocks_is_refused(tmp_path: Path) -> None:
    version_only = bytes([0x22, 0x02, 0x08, 0x00])  # field 4 (version) only
    with pytest.raises(ModelError) as raised:
        check_model_files(write_model(tmp_path, version_only, hand_params()))
    assert "has no program blocks" in message(raised)


def test_truncated_real_pdmodel_is_refused(tmp_path: Path) -> None:
    source = find_model_files(PPOCRV4_DET.directory())
    data = source.model_file.read_bytes()
    with pytest.raises(ModelError) as raised:
        check_model_files(write_model(tmp_path, data[: len(data) // 2], hand_params()))
    assert "truncated" in message(raised)


@pytest.mark.parametrize(
    ("cut", "fragment"),
    [(0, "is empty"), (1, "truncated"), (-1, "truncated"), (30, "truncated")],
)
def test_incomplete_params_are_refused(tmp_path: Path, cut: int, fragment: str) -> None:
    params = hand_params()
    files = write_model(tmp_path, hand_program(), params[:cut])
    with pytest.raises(ModelError) as raised:
        check_model_files(files)
    text = message(raised)
    assert str(files.params_file) in text and fragment in text


def test_padded_params_are_refused(tmp_path: Path) -> None:
    files = write_model(tmp_path, hand_program(), hand_params() + b"\x00" * 20)
    with pytest.raises(ModelError) as raised:
        check_model_files(files)
    # Tensor 1: 12 + 8 header bytes, a 6-byte desc, 24 data bytes; tensor 2: 12 + 8, 4, 32. 50 + 56.
    assert "no tensor header at byte 106" in message(raised)


def test_half_of_the_real_rec_params_is_refused(tmp_path: Path) -> None:
    source = find_model_files(PPOCRV4_REC.directory())
    data = source.params_file.read_bytes()
    files = write_model(tmp_path, source.model_file.read_bytes(), data[: len(data) // 2])
    with pytest.raises(ModelError) as raised:
        check_model_files(files)
    assert "truncated" in message(raised)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("not json at all", "not valid JSON"),
        ("[1, 2]", '"base_code" with magic "pir"'),
        ('{"base_code": {"magic": "onnx"}, "program": {"regions": []}}', '"base_code" with magic "pir"'),
        ('{"base_code": {"magic": "pir", "version": 3}}', '"program" with "regions"'),
    ],
)
def test_bad_pir_json_is_refused(tmp_path: Path, text: str, fragment: str) -> None:
    files = write_model(tmp_path, text.encode(), hand_params(), model_name="inference.json")
    with pytest.raises(ModelError) as raised:
        check_model_files(files)
    text = message(raised)
    assert f"{files.model_file} is not a Paddle PIR program" in text and fragment in text


def test_a_real_paddle3_export_passes(tmp_path: Path) -> None:
    # Exported in a child: dy2static must not leave state in the test process.
    script = f"""
import paddle
from paddle.static import InputSpec
class M(paddle.nn.Layer):
    def __init__(self):
        super().__init__()
        self.e = paddle.nn.Embedding(10, 4)
        self.l = paddle.nn.Linear(4, 3)
    def forward(self, x):
        return self.l(self.e(x))
spec = [InputSpec([None, None], "int64", "x")]
m = M()
m.eval()
static = paddle.jit.to_static(m, input_spec=spec, full_graph=True)
paddle.jit.save(static, {str(tmp_path / "model" / "inference")!r}, input_spec=spec)
"""
    # dy2static reads the layer's source, so the script must be a file.
    (tmp_path / "export.py").write_text(script, encoding="utf-8")
    export = [sys.executable, str(tmp_path / "export.py")]
    subprocess.run(export, check=True, capture_output=True, timeout=300)
    (tmp_path / "export.py").unlink()
    files = check_model_dir(tmp_path / "model")
    assert files is not None and files.is_pir
    document = json.loads(files.model_file.read_text(encoding="utf-8"))
    assert document["base_code"]["magic"] == "pir"
    # Three fp32 tensors, each 12 + 8 header bytes + a desc of 2 + 2 per dim + 4 bytes per value:
    # embedding [10, 4] 20+6+160, bias [3] 20+4+12, weight [4, 3] 20+6+48.
    assert files.params_file.stat().st_size == 186 + 36 + 74


def test_a_checkpoint_directory_is_left_to_its_workload(tmp_path: Path) -> None:
    (tmp_path / "model_config.json").write_text("{}")
    (tmp_path / "model_state.pdparams").write_bytes(b"state")
    assert check_model_dir(tmp_path) is None


def test_missing_params_file_is_named(tmp_path: Path) -> None:
    shutil.rmtree(tmp_path)
    tmp_path.mkdir()
    (tmp_path / "inference.pdmodel").write_bytes(hand_program())
    with pytest.raises(ModelError, match=r"has inference\.pdmodel but no inference\.pdiparams"):
        check_model_dir(tmp_path)
