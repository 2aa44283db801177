"""ONNX Runtime static (QDQ) INT8 on a tiny ONNX model built in the test: quantized nodes are fed by
DequantizeLinear, excluded nodes keep their float weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from portbench.harness.quantize import CalibrationError, CalibrationSet, QuantizationError

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime.quantization")

from portbench.harness.onnx_quantize import (  # noqa: E402
    OnnxQuantizeSettings,
    onnx_calibration,
    qdq_fed_nodes,
    quantizable_nodes,
    quantize_onnx,
)

RNG = np.random.default_rng(7)
W1 = RNG.normal(size=(4, 16)).astype(np.float32)
W2 = RNG.normal(size=(16, 3)).astype(np.float32)


def reference(x: np.ndarray) -> np.ndarray:
    return np.maximum(x @ W1, 0.0) @ W2


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """x[N,4] -> MatMul "first" (W1) -> Relu -> MatMul "second" (W2) -> y[N,3]."""
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w1"], ["h"], name="first"),
            helper.make_node("Relu", ["h"], ["r"], name="relu"),
            helper.make_node("MatMul", ["r", "w2"], ["y"], name="second"),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        [numpy_helper.from_array(W1, "w1"), numpy_helper.from_array(W2, "w2")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path_factory.mktemp("tiny-onnx") / "tiny.onnx"
    onnx.save(model, str(path))
    return path


def calibration(rows: int = 32, batch: int = 8) -> CalibrationSet:
    data = np.random.default_rng(1).normal(size=(rows, 4)).astype(np.float32)
    feeds = [{"x": data[i : i + batch]} for i in range(0, rows, batch)]
    return CalibrationSet(tuple(f"c{i}" for i in range(rows)), feeds, source="tiny calib")


def run(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"x": x})[0])


def test_qdq_quantizes_every_matmul_and_stays_close(tiny_onnx: Path, tmp_path: Path) -> None:
    settings = OnnxQuantizeSettings(calibration_samples=32, batch_size=8)
    model = quantize_onnx(tiny_onnx, calibration(), settings, tmp_path, model_name="tiny")
    assert quantizable_nodes(tiny_onnx) == [("first", "MatMul"), ("second", "MatMul")]
    assert qdq_fed_nodes(model.model_file) == ["first", "second"]
    assert model.provenance["calibration"]["sample_count"] == 32
    x = np.random.default_rng(2).normal(size=(5, 4)).astype(np.float32)
    expected, got = reference(x), run(model.model_file, x)
    assert not np.allclose(got, expected, atol=1e-6)  # INT8 really ran
    # 8-bit weights and activations: a few per cent of the output's scale, far from a wrong graph.
    assert np.abs(got - expected).max() < 0.1 * np.abs(expected).max()


@pytest.mark.parametrize("method", ["MinMax", "Entropy", "Percentile"])
def test_excluded_node_stays_float(tiny_onnx: Path, tmp_path: Path, method: str) -> None:
    settings = OnnxQuantizeSettings(
        method=method, nodes_to_exclude=("second",), calibration_samples=32, batch_size=8
    )
    model = quantize_onnx(tiny_onnx, calibration(), settings, tmp_path, model_name="tiny")
    graph = onnx.load(str(model.model_file)).graph
    (second,) = [node for node in graph.node if node.name == "second"]
    assert "w2" in second.input  # the float weight, not a dequantized copy
    assert qdq_fed_nodes(model.model_file) == ["first"]
    assert model.provenance["kept_fp32_nodes"] == ["second"]
    assert model.provenance["settings"]["method"] == method


def test_quantized_model_is_reused_from_the_cache(tiny_onnx: Path, tmp_path: Path) -> None:
    settings = OnnxQuantizeSettings(calibration_samples=16, batch_size=8)
    first = quantize_onnx(tiny_onnx, calibration(), settings, tmp_path, model_name="tiny")
    again = quantize_onnx(tiny_onnx, calibration(), settings, tmp_path, model_name="tiny")
    assert not first.from_cache and again.from_cache and again.cache_key == first.cache_key
    other = quantize_onnx(tiny_onnx, calibration(), OnnxQuantizeSettings(calibration_samples=32), tmp_path)
    assert other.cache_key != first.cache_key  # more calibration rows, another artifact


def test_unknown_node_to_exclude_is_a_one_line_error(tiny_onnx: Path, tmp_path: Path) -> None:
    settings = OnnxQuantizeSettings(nodes_to_exclude=("third",), calibration_samples=8, batch_size=8)
    with pytest.raises(QuantizationError, match="third"):
        quantize_onnx(tiny_onnx, calibration(), settings, tmp_path)


def test_unknown_method_is_refused() -> None:
    with pytest.raises(Exception, match="Histogram"):
        OnnxQuantizeSettings(method="Histogram")


def test_calibration_feeds_take_the_onnx_input_names_and_dtypes(tiny_onnx: Path) -> None:
    # A Paddle model may name its input differently and hand float64 arrays: position and dtype win.
    rows = np.arange(8, dtype=np.float64).reshape(2, 4)
    renamed = onnx_calibration(tiny_onnx, CalibrationSet(("a", "b"), [{"image": rows}], "paddle names"))
    [feed] = renamed.feeds
    assert list(feed) == ["x"] and feed["x"].dtype == np.float32
    assert feed["x"].tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert renamed.sample_ids == ("a", "b") and renamed.source == "paddle names"
    two_inputs = CalibrationSet(("a",), [{"x": rows[:1], "y": rows[:1]}])
    with pytest.raises(CalibrationError, match=r"has 2 input\(s\).*takes 1: \['x'\]"):
        onnx_calibration(tiny_onnx, two_inputs)


def test_histogram_calibration_over_batches_of_different_shapes_is_a_one_line_error(
    tiny_onnx: Path, tmp_path: Path
) -> None:
    # Batches of 4 and 2 rows: ONNX Runtime's Entropy calibrator cannot stack their activations.
    data = np.random.default_rng(2).normal(size=(6, 4)).astype(np.float32)
    ragged = CalibrationSet(tuple(f"c{i}" for i in range(6)), [{"x": data[:4]}, {"x": data[4:]}])
    settings = OnnxQuantizeSettings(method="Entropy", calibration_samples=6, batch_size=2)
    with pytest.raises(CalibrationError, match="Entropy calibration needs calibration batches of one shape"):
        quantize_onnx(tiny_onnx, ragged, settings, tmp_path)
