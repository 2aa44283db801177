"""Shared helpers for the ERNIE tests (a tiny reference recipe, a CPU backend for PIR models)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from portbench.harness.workload import TaskSpec
from portbench.suites.ernie.reference import ReferenceRecipe
from portbench.suites.ernie.training import TrainConfig

# Seconds to build, not accurate: for determinism, layout and plumbing checks.
TINY_RECIPE = ReferenceRecipe(
    seed=11,
    max_seq_len=32,
    vocab_chars=400,
    hidden_size=32,
    num_hidden_layers=1,
    num_attention_heads=2,
    dropout=0.1,
    test_size=300,
    calib_size=100,
    train=TrainConfig(epochs=1, batch_size=16, learning_rate=2e-3, max_steps=12),
    max_train_examples=1000,
)


def make_spec(workload: str, task: str, model: str, dataset: str, params: Mapping[str, Any]) -> TaskSpec:
    """A TaskSpec from one flat dict, as these tests write them: the file locations ``cache_dir``,
    ``dataset_dir`` and ``model_dirs`` go to the spec's typed fields, the rest stays a parameter."""
    rest = {k: v for k, v in params.items() if k not in ("cache_dir", "dataset_dir", "model_dirs")}
    cache = params.get("cache_dir")
    user_data = params.get("dataset_dir")
    return TaskSpec(
        workload, task, model, dataset, rest,
        **({"cache_dir": Path(cache)} if cache else {}),
        dataset_dir=Path(user_data) if user_data else None,
        model_dirs={role: Path(d) for role, d in (params.get("model_dirs") or {}).items()},
    )
