"""Export a classifier to Paddle's inference format (PIR ``inference.json`` + ``inference.pdiparams``)."""

from __future__ import annotations

from pathlib import Path

import paddle
from paddle.static import InputSpec

from portbench.backends.base import ModelFiles
from portbench.suites.ernie.modeling import ErnieForSequenceClassification

INPUT_NAMES: tuple[str, str] = ("input_ids", "token_type_ids")
MODEL_PREFIX = "inference"


def input_spec() -> list[InputSpec]:
    """Dynamic batch and sequence length, int64, named as PaddleNLP's exported ERNIE models."""
    return [InputSpec(shape=[None, None], dtype="int64", name=name) for name in INPUT_NAMES]


def export_inference(model: ErnieForSequenceClassification, directory: Path) -> ModelFiles:
    """Trace ``model`` (switched to eval mode) with ``paddle.jit`` and save it into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    model.eval()
    static_model = paddle.jit.to_static(model, input_spec=input_spec(), full_graph=True)
    paddle.jit.save(static_model, str(directory / MODEL_PREFIX), input_spec=input_spec())
    model_file = directory / f"{MODEL_PREFIX}.json"
    if not model_file.is_file():
        model_file = directory / f"{MODEL_PREFIX}.pdmodel"
    return ModelFiles(model_file, directory / f"{MODEL_PREFIX}.pdiparams")
