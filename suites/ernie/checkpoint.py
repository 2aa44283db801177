"""PaddleNLP training checkpoints: ``model_config.json`` + ``model_state.pdparams`` (+ ``vocab.txt``).

Loading checks every parameter against the shapes the config implies before Paddle sees them, so a
checkpoint that does not match its config fails with one line naming the first bad key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import paddle

from portbench.suites.ernie.errors import CheckpointError
from portbench.suites.ernie.modeling import (
    ErnieConfig,
    ErnieForSequenceClassification,
    expected_parameter_shapes,
)

CONFIG_FILE = "model_config.json"
STATE_FILE = "model_state.pdparams"
# Newer PaddleNLP releases save the same config as config.json.
CONFIG_FILE_ALIASES = (CONFIG_FILE, "config.json")


def is_checkpoint_dir(directory: Path) -> bool:
    return (directory / STATE_FILE).is_file() and any((directory / n).is_file() for n in CONFIG_FILE_ALIASES)


def read_checkpoint_config(directory: Path) -> ErnieConfig:
    path = next((directory / n for n in CONFIG_FILE_ALIASES if (directory / n).is_file()), None)
    if path is None:
        raise CheckpointError(f"{directory} has no {CONFIG_FILE}: not a PaddleNLP checkpoint")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path} is not valid JSON ({error})") from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path} does not hold a JSON object")
    try:
        return ErnieConfig.from_dict(raw)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: {error}") from None


def read_state(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise CheckpointError(f"{path} is missing")
    try:
        raw: Any = paddle.load(str(path), return_numpy=True)
    except Exception as error:  # Paddle raises assorted types for truncated or foreign files
        raise CheckpointError(
            f"{path} is not a readable Paddle state dict ({type(error).__name__})"
        ) from None
    if not isinstance(raw, Mapping):
        raise CheckpointError(f"{path} does not hold a state dict")
    return {str(key): np.asarray(value) for key, value in raw.items()}


def check_state_matches(state: Mapping[str, np.ndarray], config: ErnieConfig, source: Path) -> None:
    """Raise :class:`CheckpointError` on a missing key or a shape the config does not imply."""
    expected = expected_parameter_shapes(config)
    for key, shape in expected.items():
        if key not in state:
            raise CheckpointError(f"{source}: parameter {key} is missing (config {CONFIG_FILE} expects it)")
        if tuple(state[key].shape) != shape:
            raise CheckpointError(
                f"{source}: {key} has shape {list(state[key].shape)} but the config implies {list(shape)}"
            )


def checked_checkpoint(directory: Path) -> tuple[ErnieConfig, dict[str, np.ndarray]]:
    """The config a checkpoint's weights really have, checked against every parameter shape, and
    the weights; raises :class:`CheckpointError`."""
    config = read_checkpoint_config(directory)
    state = read_state(directory / STATE_FILE)
    classifier_bias = state.get("classifier.bias")
    if classifier_bias is not None and classifier_bias.ndim == 1 and not config.labels:
        # Older configs omit the class count; the classifier itself states it.
        config = replace(config, num_labels=int(classifier_bias.shape[0]))
    check_state_matches(state, config, directory / STATE_FILE)
    return config, state


def load_checkpoint(directory: Path) -> ErnieForSequenceClassification:
    """An eval-mode classifier from a PaddleNLP checkpoint directory (no conversion of names)."""
    config, state = checked_checkpoint(directory)
    model = ErnieForSequenceClassification(config)
    expected = expected_parameter_shapes(config)
    # Paddle's stub says Tensor; set_state_dict takes numpy arrays too (and copies them in).
    model.set_state_dict({key: state[key] for key in expected})  # type: ignore[misc]
    model.eval()
    return model


def save_checkpoint(model: ErnieForSequenceClassification, directory: Path) -> None:
    """Write ``model_config.json`` + ``model_state.pdparams`` the way PaddleNLP's ``save_pretrained`` does."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CONFIG_FILE).write_text(
        json.dumps(model.config.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    paddle.save(model.state_dict(), str(directory / STATE_FILE))
