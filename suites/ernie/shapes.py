"""Real ERNIE 3.0 architectures with deterministic synthetic weights, for speed measurements only.

The size table follows PaddleNLP's ``pretrained_init_configuration`` for ``ernie-3.0-{base,medium,
mini,micro,nano}-zh``. The ERNIE 3.0 Tiny v2 family (``ernie-3.0-tiny-{base,...,nano}-v2-zh``) has
the same five architectures, plus ``pico`` (3 layers, hidden 128, 2 heads, intermediate 512).
Weights are drawn from normal(0, initializer_range) under a fixed seed: latency is faithful, the
logits mean nothing, and every result built from these models must say ``synthetic_weights``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paddle

from portbench.backends.base import ModelFiles
from portbench.errors import ModelError, UnknownNameError
from portbench.harness.artifacts import ArtifactStore, canonical_sha256
from portbench.harness.models import find_model_files
from portbench.suites.ernie.export import export_inference
from portbench.suites.ernie.modeling import ErnieConfig, ErnieForSequenceClassification

SYNTHETIC_SEED = 2023


@dataclass(frozen=True)
class ErnieShape:
    name: str
    paddlenlp_name: str
    config: ErnieConfig


def _ernie3(layers: int, hidden: int, heads: int, inner: int, task_types: int) -> ErnieConfig:
    return ErnieConfig(
        vocab_size=40000,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=inner,
        hidden_act="gelu",
        max_position_embeddings=2048,
        type_vocab_size=4,
        task_type_vocab_size=task_types,
        use_task_id=True,
        layer_norm_eps=1e-12,
        num_labels=2,
    )


ERNIE3_SHAPES: dict[str, ErnieShape] = {
    shape.name: shape
    for shape in (
        ErnieShape("base", "ernie-3.0-base-zh", _ernie3(12, 768, 12, 3072, 3)),
        ErnieShape("medium", "ernie-3.0-medium-zh", _ernie3(6, 768, 12, 3072, 16)),
        ErnieShape("mini", "ernie-3.0-mini-zh", _ernie3(6, 384, 12, 1536, 16)),
        ErnieShape("micro", "ernie-3.0-micro-zh", _ernie3(4, 384, 12, 1536, 16)),
        ErnieShape("nano", "ernie-3.0-nano-zh", _ernie3(4, 312, 12, 1248, 16)),
        ErnieShape("pico", "ernie-3.0-tiny-pico-v2-zh", _ernie3(3, 128, 2, 512, 16)),
    )
}


def get_shape(name: str) -> ErnieShape:
    if name not in ERNIE3_SHAPES:
        raise UnknownNameError("ERNIE shape", name, list(ERNIE3_SHAPES))
    return ERNIE3_SHAPES[name]


def parameter_count(config: ErnieConfig) -> int:
    from portbench.suites.ernie.modeling import expected_parameter_shapes

    total = 0
    for shape in expected_parameter_shapes(config).values():
        count = 1
        for dim in shape:
            count *= dim
        total += count
    return total


def synthetic_model_dir(models_root: Path, shape: str, seed: int = SYNTHETIC_SEED) -> Path:
    return models_root / f"ernie-3.0-{shape}-synthetic-s{seed}"


def ensure_synthetic_model(models_root: Path, shape: str, seed: int = SYNTHETIC_SEED) -> ModelFiles:
    """Exported inference files for ``shape`` with seeded random weights, built once and cached
    under ``models_root`` (e.g. ``~/.cache/portbench/models``)."""
    spec = get_shape(shape)
    directory = synthetic_model_dir(models_root, shape, seed)
    identity = {"architecture": spec.paddlenlp_name, "config": spec.config.to_dict(), "seed": seed}
    key = canonical_sha256(identity)

    def build(staging: Path) -> dict[str, Any]:
        paddle.seed(seed)
        export_inference(ErnieForSequenceClassification(spec.config), staging)
        return {
            "name": directory.name,
            "architecture": spec.paddlenlp_name,
            "synthetic_weights": True,
            "seed": seed,
            "parameters": parameter_count(spec.config),
            "config": spec.config.to_dict(),
        }

    artifact = ArtifactStore(models_root, error=ModelError).build(directory.name, key, build)
    return find_model_files(artifact.directory)
