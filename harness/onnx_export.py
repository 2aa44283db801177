"""Paddle -> ONNX conversion as a cached, hashed artifact (for the onnxruntime and openvino runtimes).

``paddle2onnx`` converts the model; portbench then repairs one known defect of paddle2onnx 2.1 and
stores ``model.onnx`` in the :class:`~portbench.harness.artifacts.ArtifactStore` under a key made of
the source files' digests, the paddle2onnx and onnx versions, the opset and this module's fix
revision. The manifest records that provenance, including how many Concats were repaired.

The defect (README "Runtimes"): paddle2onnx 2.x translates a legacy ``.pdmodel`` to PIR first, where
a ``slice`` that takes one value of ``x.shape`` (``decrease_axis=[0]``) still declares shape ``[1]``;
the emitted Squeeze makes the value 0-D, and the Concat that assembles a Reshape's shape then mixes
rank 0 with rank 1, which ONNX Runtime refuses to load ("All inputs to Concat must have same rank").
:func:`unsqueeze_rank0_concat_inputs` inserts ``Unsqueeze(axes=[0])`` before every rank-0 input of
such a Concat, ranks taken from ``onnx.shape_inference.infer_shapes``.

INT8: a runtime whose ``int8_route`` is ``"onnx-qdq"`` gets the conversion of the FP32 model from
here and then its static QDQ quantization (``harness.onnx_quantize``; the worker's ``_qdq_model``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from portbench.backends.base import ModelFiles
from portbench.backends.runtimes.base import OnnxModel
from portbench.errors import ModelError
from portbench.harness.artifacts import ArtifactStore, canonical_sha256, sha256_file
from portbench.installed import distribution_version

OPSET = 17  # LayerNormalization is a single op from 17 (ERNIE); the PP-OCR models convert at 11-17
FIX_REVISION = 1  # bump when the repair below changes: cached conversions are rebuilt
ONNX_FILENAME = "model.onnx"
MANIFEST = "conversion.json"


def _version(distribution: str) -> str:
    return distribution_version(distribution) or "missing"


def conversion_key(files: ModelFiles, opset: int = OPSET) -> tuple[str, dict[str, Any]]:
    """The artifact key and the provenance it is made of."""
    provenance: dict[str, Any] = {
        "converter": "paddle2onnx",
        "paddle2onnx": _version("paddle2onnx"),
        "onnx": _version("onnx"),
        "opset": opset,
        "fix_revision": FIX_REVISION,
        "source": str(files.directory),
        "source_sha256": {
            files.model_file.name: sha256_file(files.model_file),
            files.params_file.name: sha256_file(files.params_file),
        },
    }
    keyed = {k: v for k, v in provenance.items() if k != "source"}
    key = canonical_sha256(keyed)
    return key, provenance


def _ranks(model: Any) -> dict[str, int]:
    """Rank of every value shape inference can tell, plus initializers and Constant outputs."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    ranks: dict[str, int] = {}
    for info in (*graph.value_info, *graph.input, *graph.output):
        tensor = info.type.tensor_type
        if tensor.HasField("shape"):
            ranks[info.name] = len(tensor.shape.dim)
    for initializer in graph.initializer:
        ranks[initializer.name] = len(initializer.dims)
    for node in graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value":
                    ranks[node.output[0]] = len(attribute.t.dims)
    return ranks


def _opset(model: Any) -> int:
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=OPSET)


def unsqueeze_rank0_concat_inputs(model: Any) -> int:
    """Make every Concat that mixes rank-0 and higher-rank inputs well-formed; returns how many
    inputs were unsqueezed. ``Unsqueeze`` takes ``axes`` as an attribute below opset 13 and as an
    int64 input from 13 on. Subgraphs (If/Loop bodies) are left as they are."""
    import onnx
    from onnx import helper

    ranks = _ranks(model)
    graph = model.graph
    opset = _opset(model)
    axes_name = "portbench_unsqueeze_axes_0"
    nodes = []
    fixed = 0
    for node in graph.node:
        if node.op_type == "Concat":
            input_ranks = [ranks.get(name) for name in node.input]
            if 0 in input_ranks and any(r is not None and r >= 1 for r in input_ranks):
                for index, name in enumerate(node.input):
                    if ranks.get(name) != 0:
                        continue
                    unsqueezed = f"{name}_portbench_unsqueezed_{fixed}"
                    if opset >= 13:
                        if fixed == 0:
                            graph.initializer.append(
                                onnx.numpy_helper.from_array(_int64_axes(), name=axes_name)
                            )
                        nodes.append(
                            helper.make_node(
                                "Unsqueeze",
                                [name, axes_name],
                                [unsqueezed],
                                name=f"portbench_unsqueeze_{fixed}",
                            )
                        )
                    else:
                        nodes.append(
                            helper.make_node(
                                "Unsqueeze",
                                [name],
                                [unsqueezed],
                                axes=[0],
                                name=f"portbench_unsqueeze_{fixed}",
                            )
                        )
                    node.input[index] = unsqueezed
                    fixed += 1
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    return fixed


def _int64_axes() -> Any:
    import numpy as np

    return np.array([0], dtype=np.int64)


def _convert(files: ModelFiles, opset: int) -> Any:
    import onnx
    import paddle2onnx

    try:
        serialized = paddle2onnx.export(
            str(files.model_file),
            str(files.params_file),
            save_file=None,
            opset_version=opset,
            auto_upgrade_opset=True,
            enable_onnx_checker=True,
            enable_optimize=True,
        )
    except Exception as exc:  # paddle2onnx raises whatever its C++ side throws
        raise ModelError(f"paddle2onnx cannot convert {files.directory}: {exc}") from exc
    if not serialized:
        # paddle2onnx logs a failed conversion and returns nothing instead of raising.
        raise ModelError(f"paddle2onnx could not convert {files.directory} (see the cell log)")
    return onnx.load_model_from_string(serialized)


def export_onnx(
    files: ModelFiles,
    cache_dir: Path,
    name: str | None = None,
    opset: int = OPSET,
    log: Callable[[str], None] | None = None,
) -> OnnxModel:
    """The ONNX conversion of ``files`` from the cache under ``cache_dir/onnx``, built when missing
    or damaged. Raises ModelError when paddle2onnx fails or the repaired model does not check."""
    key, provenance = conversion_key(files, opset)
    entry = f"{name or files.directory.name}-{key[:12]}"
    store = ArtifactStore(cache_dir / "onnx", manifest=MANIFEST, required=(ONNX_FILENAME,), error=ModelError)

    def build(staging: Path) -> dict[str, Any]:
        import onnx

        if log is not None:
            log(
                f"converting {files.directory} to ONNX "
                f"(paddle2onnx {provenance['paddle2onnx']}, opset {opset})"
            )
        model = _convert(files, opset)
        fixes = unsqueeze_rank0_concat_inputs(model)
        try:
            onnx.checker.check_model(model)
        except onnx.checker.ValidationError as exc:
            raise ModelError(f"the ONNX conversion of {files.directory} does not check: {exc}") from None
        onnx.save_model(model, str(staging / ONNX_FILENAME))
        return {**provenance, "opset_written": _opset(model), "concat_rank_fixes": fixes}

    artifact = store.build(entry, key, build)
    record = {k: v for k, v in artifact.manifest.items() if k not in ("sha256", "artifact_key")}
    record.update(
        artifact_key=artifact.key,
        from_cache=not artifact.built,
        rebuilt_because=artifact.rebuilt_because,
        onnx_sha256=artifact.manifest.get("sha256", {}).get(ONNX_FILENAME),
    )
    return OnnxModel(artifact.directory / ONNX_FILENAME, files, record)
