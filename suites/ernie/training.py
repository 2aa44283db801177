"""Deterministic fine-tuning of an ``ErnieForSequenceClassification`` on CPU (dygraph).

Same seed, same data, same thread count -> the same weights: ``paddle.seed`` fixes initialisation and
dropout, and a numpy generator seeded from the same value fixes the batch order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import paddle

from portbench.suites.ernie.data import Example
from portbench.suites.ernie.modeling import ErnieConfig, ErnieForSequenceClassification
from portbench.suites.ernie.tokenizer import ErnieTokenizer

# progress(step, total_steps, info): info carries "loss", "lr", "epoch".
TrainProgress = Callable[[int, int, dict[str, float]], None]


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 2
    batch_size: int = 32
    learning_rate: float = 1e-3
    warmup_fraction: float = 0.06
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    max_steps: int | None = None  # cap for quick (test) builds

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise ValueError(f"invalid training configuration: {self}")


def warmup_linear_decay(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """LR multiplier: linear warm-up to 1, then linear decay to 0 at ``total_steps``."""

    def multiplier(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return multiplier


def encode_examples(tokenizer: ErnieTokenizer, examples: Sequence[Example]) -> tuple[np.ndarray, np.ndarray]:
    """All examples padded to ``max_seq_len``: ``(input_ids [N, L], labels [N])``."""
    fixed = ErnieTokenizer(tokenizer.vocab, tokenizer.max_seq_len, pad_to_max=True)
    input_ids, _ = fixed.encode_batch([e.text for e in examples])
    return input_ids, np.array([e.label for e in examples], dtype=np.int64)


def train_classifier(
    config: ErnieConfig,
    tokenizer: ErnieTokenizer,
    train: Sequence[Example],
    train_config: TrainConfig,
    seed: int,
    progress: TrainProgress | None = None,
) -> ErnieForSequenceClassification:
    """Train from scratch and return the model in eval mode."""
    paddle.seed(seed)
    model = ErnieForSequenceClassification(config)
    input_ids, labels = encode_examples(tokenizer, train)
    steps_per_epoch = -(-len(train) // train_config.batch_size)
    total_steps = steps_per_epoch * train_config.epochs
    if train_config.max_steps is not None:
        total_steps = min(total_steps, train_config.max_steps)
    warmup_steps = max(1, int(total_steps * train_config.warmup_fraction))
    schedule = paddle.optimizer.lr.LambdaDecay(
        train_config.learning_rate, warmup_linear_decay(total_steps, warmup_steps)
    )
    no_decay = {p.name for n, p in model.named_parameters() if "norm" in n or n.endswith("bias")}
    optimizer = paddle.optimizer.AdamW(
        learning_rate=schedule,
        parameters=model.parameters(),
        weight_decay=train_config.weight_decay,
        apply_decay_param_fun=lambda name: name not in no_decay,
        grad_clip=paddle.nn.ClipGradByGlobalNorm(train_config.max_grad_norm),
    )
    loss_fn = paddle.nn.CrossEntropyLoss()
    rng = np.random.default_rng(seed)
    token_type_ids = paddle.zeros([train_config.batch_size, tokenizer.max_seq_len], dtype="int64")
    model.train()
    step = 0
    for epoch in range(train_config.epochs):
        order = rng.permutation(len(train))
        for start in range(0, len(order), train_config.batch_size):
            if step >= total_steps:
                break
            batch = order[start : start + train_config.batch_size]
            ids = paddle.to_tensor(input_ids[batch])
            logits = model(ids, token_type_ids[: len(batch)])
            loss = loss_fn(logits, paddle.to_tensor(labels[batch]))
            loss.backward()
            optimizer.step()
            optimizer.clear_grad()
            lr = schedule.get_lr()
            schedule.step()
            step += 1
            if progress is not None:
                progress(step, total_steps, {"loss": float(loss), "lr": float(lr), "epoch": float(epoch)})
    model.eval()
    return model


@paddle.no_grad()
def predict_logits(
    model: ErnieForSequenceClassification,
    tokenizer: ErnieTokenizer,
    texts: Sequence[str],
    batch_size: int = 128,
) -> np.ndarray:
    """Dygraph logits ``[N, num_labels]`` (model must be in eval mode)."""
    chunks: list[np.ndarray] = []
    for start in range(0, len(texts), batch_size):
        input_ids, token_type_ids = tokenizer.encode_batch(texts[start : start + batch_size])
        logits = model(paddle.to_tensor(input_ids), paddle.to_tensor(token_type_ids))
        chunks.append(logits.numpy())
    return np.concatenate(chunks, axis=0)
