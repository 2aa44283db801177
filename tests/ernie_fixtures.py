"""Shared helpers for the ERNIE tests (a tiny reference recipe, a CPU backend for PIR models)."""

from __future__ import annotations

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
