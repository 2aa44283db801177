"""INT8 for ERNIE: the legacy program static PTQ starts from, and calibration feeds.

Paddle's static ``PostTrainingQuantization`` reads only the legacy ``inference.pdmodel`` program, and
our ERNIE exports are PIR (``inference.json``). The same weights are therefore re-exported to the
legacy format through :func:`portbench.harness.quantize.export_legacy_program` (a child process with
``FLAGS_enable_pir_api=0``) from a static-mode build of our own classifier, once per distinct set of
weights: ``<models root>/<model>-legacy-<sha256[:16]>/`` with a ``manifest.json`` holding the sha256 of
what it was built from and of every file it holds (a copy failing that check is rebuilt).

Calibration texts come from the reference build's ``calib`` split (ids in its manifest), never from
its ``test`` split; synthetic-weight shapes calibrate on seeded random token ids (speed only).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from portbench.backends.base import ModelFiles
from portbench.harness.artifacts import ArtifactStore
from portbench.harness.models import find_model_files
from portbench.harness.quantize import (
    MODEL_FILENAME,
    PARAMS_FILENAME,
    CalibrationSet,
    QuantizationError,
    QuantizeSettings,
    export_legacy_program,
)
from portbench.suites.ernie.checkpoint import STATE_FILE, checked_checkpoint
from portbench.suites.ernie.export import INPUT_NAMES
from portbench.suites.ernie.modeling import ErnieConfig, ErnieForSequenceClassification
from portbench.suites.ernie.tokenizer import ErnieTokenizer
from portbench.suites.ernie.user import checkpoint_digest

MANIFEST = "manifest.json"
STATIC_FACTORY = "portbench.suites.ernie.quantization:static_classifier"
LEGACY_INPUTS: tuple[tuple[str, str, list[int]], ...] = tuple(
    (name, "int64", [-1, -1]) for name in INPUT_NAMES
)
# Measured on ernie-sentiment (2,000 held-out reviews, FP32 accuracy 0.8805): avg 0.660 (64 samples)
# and 0.6525 (1,000), hist 0.6365, mse 0.651; KL 0.8375 (64), 0.854 (256), 0.851 (1,000). Only KL keeps
# the classifier usable; past 256 samples it gains nothing and its build stays about 50 s.
DEFAULT_ALGO = "KL"
CALIBRATION_SAMPLES = 256
CALIBRATION_BATCH_SIZE = 8


class _StaticErnie(ErnieForSequenceClassification):
    """The classifier built under ``program_guard``: ``init_weights`` uses ``set_value``, which only
    dygraph has, and the weights come from the checkpoint anyway."""

    def init_weights(self) -> None:
        return None


def static_classifier(config: dict[str, Any]) -> ErnieForSequenceClassification:
    """Factory for ``export_legacy_program`` (imported by name in the export child)."""
    return _StaticErnie(ErnieConfig.from_dict(config))


@dataclass(frozen=True)
class LegacyExport:
    """A legacy program of some weights: the files and whether this call built them."""

    files: ModelFiles
    built: bool


def ernie_quantize_settings(algo: str | None = None, skip_ops: Sequence[str] = ()) -> QuantizeSettings:
    """PTQ settings for ERNIE classifiers: ``algo`` overrides the measured default; ``skip_ops`` keeps
    ops in FP32 (e.g. what ``portbench quantize ernie-sentiment --search 0.99`` chose)."""
    return QuantizeSettings(
        algo=algo or DEFAULT_ALGO,
        calibration_samples=CALIBRATION_SAMPLES,
        batch_size=CALIBRATION_BATCH_SIZE,
        skip_ops=tuple(skip_ops),
    )


def checkpoint_config(directory: Path) -> ErnieConfig:
    """The config a checkpoint's weights really have (older configs omit the class count), checked
    against every parameter shape; raises :class:`CheckpointError`."""
    return checked_checkpoint(directory)[0]


def cached_legacy_export(
    target: Path, weights_sha256: str, write_state: Callable[[Path], tuple[Path, ErnieConfig]]
) -> LegacyExport:
    """The legacy program in ``target``, exported first when missing or corrupt.

    ``write_state(staging)`` returns the state file to export and the config it belongs to; it runs
    only when an export is needed. The build goes through the artifact store (staged, renamed).
    """

    def build(staging: Path) -> dict[str, Any]:
        state_file, config = write_state(staging)
        arguments = {"config": config.to_dict()}
        export_legacy_program(STATIC_FACTORY, arguments, state_file, LEGACY_INPUTS, staging)
        for leftover in staging.iterdir():  # a regenerated state dict is not kept
            if leftover.name not in (MODEL_FILENAME, PARAMS_FILENAME):
                leftover.unlink()
        return {
            "what": "legacy-format (inference.pdmodel) export of these weights, for static PTQ",
            "weights_sha256": weights_sha256,
            "config": config.to_dict(),
        }

    store = ArtifactStore(target.parent, required=(MODEL_FILENAME, PARAMS_FILENAME), error=QuantizationError)
    artifact = store.build(target.name, weights_sha256, build)
    return LegacyExport(find_model_files(artifact.directory), built=artifact.built)


def checkpoint_legacy_export(checkpoint_dir: Path, models_root: Path, label: str) -> LegacyExport:
    """Legacy program of a PaddleNLP-style checkpoint (``model_config.json`` + ``model_state.pdparams``)."""
    digest = checkpoint_digest(checkpoint_dir)

    def existing_state(_: Path) -> tuple[Path, ErnieConfig]:
        return checkpoint_dir / STATE_FILE, checkpoint_config(checkpoint_dir)

    return cached_legacy_export(models_root / f"{label}-legacy-{digest[:16]}", digest, existing_state)


def synthetic_legacy_export(
    models_root: Path, label: str, config: ErnieConfig, seed: int, weights_sha256: str
) -> LegacyExport:
    """Legacy program of a synthetic-weight shape: the same seeded draw as its PIR export
    (``ensure_synthetic_model``), regenerated in dygraph and saved as a state dict."""

    def regenerated_state(staging: Path) -> tuple[Path, ErnieConfig]:
        import paddle

        paddle.seed(seed)
        model = ErnieForSequenceClassification(config)
        state_file = staging / STATE_FILE
        paddle.save(model.state_dict(), str(state_file))
        return state_file, config

    target = models_root / f"{label}-legacy-{weights_sha256[:16]}"
    return cached_legacy_export(target, weights_sha256, regenerated_state)


def text_calibration(
    sample_ids: Sequence[str],
    texts: Sequence[str],
    tokenizer: ErnieTokenizer,
    samples: int,
    batch_size: int,
    source: str,
) -> CalibrationSet:
    """Whole batches of tokenized texts (padded to the tokenizer's length) covering ``samples``."""
    count = min(len(texts), math.ceil(samples / batch_size) * batch_size)
    feeds = []
    for start in range(0, count, batch_size):
        input_ids, token_type_ids = tokenizer.encode_batch(list(texts[start : start + batch_size]))
        feeds.append({INPUT_NAMES[0]: input_ids, INPUT_NAMES[1]: token_type_ids})
    return CalibrationSet(tuple(sample_ids[:count]), feeds, source)


def random_token_calibration(
    token_range: tuple[int, int], seq_len: int, samples: int, batch_size: int, seed: int
) -> CalibrationSet:
    """Seeded random ordinary token ids: for synthetic weights, where there is no accuracy to keep."""
    rng = np.random.default_rng(seed)
    batches = math.ceil(samples / batch_size)
    feeds = [
        {
            INPUT_NAMES[0]: rng.integers(*token_range, (batch_size, seq_len), dtype=np.int64),
            INPUT_NAMES[1]: np.zeros((batch_size, seq_len), dtype=np.int64),
        }
        for _ in range(batches)
    ]
    ids = tuple(f"random:{seed}:{i}" for i in range(batches * batch_size))
    source = (
        f"random token ids (seed {seed}, {seq_len} tokens): synthetic weights, speed only, "
        "no accuracy to preserve"
    )
    return CalibrationSet(ids, feeds, source)
