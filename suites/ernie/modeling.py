"""The ERNIE 3.0 encoder and sequence classifier in plain ``paddle.nn``.

Layer and parameter names follow PaddleNLP's ``ErnieForSequenceClassification`` exactly
(``ernie.embeddings.word_embeddings.weight``, ``ernie.encoder.layers.0.self_attn.q_proj.weight``,
``classifier.bias`` ...), so a PaddleNLP ``model_state.pdparams`` loads with ``set_state_dict`` and no
renaming. The forward pass reproduces PaddleNLP's numerics: positions from a cumulative sum of ones,
an additive ``-1e4`` attention mask on ``[PAD]`` positions, post-norm encoder layers, every LayerNorm
with ``layer_norm_eps`` (PaddleNLP's ``init_weights`` overrides the ``nn.LayerNorm`` default), and a
``tanh`` pooler on the first token.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import paddle
from paddle import nn

# PaddleNLP's additive mask value for padded keys; matching it keeps logits identical.
PAD_MASK_VALUE = -1e4


@dataclass(frozen=True)
class ErnieConfig:
    """ERNIE hyper-parameters under PaddleNLP's ``model_config.json`` field names."""

    vocab_size: int = 40000
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 2048
    type_vocab_size: int = 4
    task_type_vocab_size: int = 3
    task_id: int = 0
    use_task_id: bool = False
    initializer_range: float = 0.02
    pad_token_id: int = 0
    layer_norm_eps: float = 1e-12
    num_labels: int = 2
    classifier_dropout: float | None = None
    labels: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not a multiple of "
                f"num_attention_heads {self.num_attention_heads}"
            )
        if self.hidden_act not in ("gelu", "relu"):
            raise ValueError(f"hidden_act {self.hidden_act!r} is not supported (gelu, relu)")
        if self.labels and len(self.labels) != self.num_labels:
            raise ValueError(f"{len(self.labels)} labels given for num_labels={self.num_labels}")

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ErnieConfig:
        """Read PaddleNLP's config, old (``init_args``) or new (flat) layout; unknown keys ignored."""
        flat: dict[str, Any] = {}
        init_args = raw.get("init_args")
        if isinstance(init_args, list) and init_args and isinstance(init_args[0], Mapping):
            flat.update(init_args[0])
        flat.update({k: v for k, v in raw.items() if k != "init_args"})
        labels: tuple[str, ...] = ()
        id2label = flat.get("id2label")
        if isinstance(id2label, Mapping) and id2label:
            labels = tuple(str(id2label[key]) for key in sorted(id2label, key=lambda k: int(k)))
        elif isinstance(flat.get("label_list"), list):
            labels = tuple(str(label) for label in flat["label_list"])
        for alias in ("num_classes", "num_labels"):
            if alias in flat:
                flat["num_labels"] = int(flat[alias])
        if labels and "num_labels" not in flat:
            flat["num_labels"] = len(labels)
        # PaddleNLP writes a default two-entry id2label ("LABEL_0"...) even for other class counts.
        if labels and len(labels) != flat.get("num_labels", len(labels)):
            labels = ()
        known = {f.name for f in fields(cls)} - {"labels"}
        return cls(**{k: v for k, v in flat.items() if k in known}, labels=labels)

    @classmethod
    def from_json(cls, path: Path) -> ErnieConfig:
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))

    def to_dict(self) -> dict[str, Any]:
        """PaddleNLP-compatible flat config (``num_classes`` too, for older PaddleNLP readers)."""
        data = asdict(self)
        labels = data.pop("labels")
        data["num_classes"] = self.num_labels
        data["model_type"] = "ernie"
        data["architectures"] = ["ErnieForSequenceClassification"]
        if labels:
            data["id2label"] = {str(i): label for i, label in enumerate(labels)}
            data["label2id"] = {label: i for i, label in enumerate(labels)}
        return data

    def with_labels(self, labels: Sequence[str]) -> ErnieConfig:
        return replace(self, labels=tuple(labels), num_labels=len(labels))


class ErnieEmbeddings(nn.Layer):
    def __init__(self, config: ErnieConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(
            config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id
        )
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.use_task_id = config.use_task_id
        self.task_id = config.task_id
        if config.use_task_id:
            self.task_type_embeddings = nn.Embedding(config.task_type_vocab_size, config.hidden_size)
        self.layer_norm = nn.LayerNorm(config.hidden_size, epsilon=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: paddle.Tensor, token_type_ids: paddle.Tensor) -> paddle.Tensor:
        ones = paddle.ones_like(input_ids)
        position_ids = paddle.cumsum(ones, axis=1) - ones
        position_ids.stop_gradient = True
        embeddings = (
            self.word_embeddings(input_ids)
            + self.position_embeddings(position_ids)
            + self.token_type_embeddings(token_type_ids)
        )
        if self.use_task_id:
            task_type_ids = ones * self.task_id
            embeddings = embeddings + self.task_type_embeddings(task_type_ids)
        return self.dropout(self.layer_norm(embeddings))


class ErniePooler(nn.Layer):
    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.activation = nn.Tanh()

    def forward(self, hidden_states: paddle.Tensor) -> paddle.Tensor:
        return self.activation(self.dense(hidden_states[:, 0]))


class ErnieModel(nn.Layer):
    def __init__(self, config: ErnieConfig) -> None:
        super().__init__()
        self.pad_token_id = config.pad_token_id
        self.embeddings = ErnieEmbeddings(config)
        encoder_layer = nn.TransformerEncoderLayer(
            config.hidden_size,
            config.num_attention_heads,
            config.intermediate_size,
            dropout=config.hidden_dropout_prob,
            activation=config.hidden_act,
            attn_dropout=config.attention_probs_dropout_prob,
            act_dropout=0,
            normalize_before=False,
            layer_norm_eps=config.layer_norm_eps,
        )
        self.encoder = nn.TransformerEncoder(encoder_layer, config.num_hidden_layers)
        self.pooler = ErniePooler(config.hidden_size)

    def forward(
        self, input_ids: paddle.Tensor, token_type_ids: paddle.Tensor
    ) -> tuple[paddle.Tensor, paddle.Tensor]:
        attention_mask = paddle.unsqueeze(
            (input_ids == self.pad_token_id).astype(self.pooler.dense.weight.dtype) * PAD_MASK_VALUE,
            axis=[1, 2],
        )
        attention_mask.stop_gradient = True
        sequence_output = self.encoder(self.embeddings(input_ids, token_type_ids), src_mask=attention_mask)
        return sequence_output, self.pooler(sequence_output)


class ErnieForSequenceClassification(nn.Layer):
    """ERNIE encoder + pooler + linear classifier; ``forward`` returns logits ``[batch, num_labels]``."""

    def __init__(self, config: ErnieConfig) -> None:
        super().__init__()
        self.config = config
        self.ernie = ErnieModel(config)
        dropout = config.classifier_dropout
        self.dropout = nn.Dropout(dropout if dropout is not None else config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.init_weights()

    def init_weights(self) -> None:
        """PaddleNLP's initialisation: normal(0, initializer_range) for every Linear and Embedding."""
        for layer in self.sublayers():
            if isinstance(layer, nn.Linear | nn.Embedding):
                layer.weight.set_value(
                    paddle.normal(mean=0.0, std=self.config.initializer_range, shape=layer.weight.shape)
                )

    def forward(self, input_ids: paddle.Tensor, token_type_ids: paddle.Tensor) -> paddle.Tensor:
        _, pooled_output = self.ernie(input_ids, token_type_ids)
        return self.classifier(self.dropout(pooled_output))


def expected_parameter_shapes(config: ErnieConfig) -> dict[str, tuple[int, ...]]:
    """Every state-dict key of ``ErnieForSequenceClassification`` with its shape, from the config alone."""
    hidden, inner = config.hidden_size, config.intermediate_size
    shapes: dict[str, tuple[int, ...]] = {
        "ernie.embeddings.word_embeddings.weight": (config.vocab_size, hidden),
        "ernie.embeddings.position_embeddings.weight": (config.max_position_embeddings, hidden),
        "ernie.embeddings.token_type_embeddings.weight": (config.type_vocab_size, hidden),
        "ernie.embeddings.layer_norm.weight": (hidden,),
        "ernie.embeddings.layer_norm.bias": (hidden,),
    }
    if config.use_task_id:
        shapes["ernie.embeddings.task_type_embeddings.weight"] = (config.task_type_vocab_size, hidden)
    for i in range(config.num_hidden_layers):
        prefix = f"ernie.encoder.layers.{i}"
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            shapes[f"{prefix}.self_attn.{proj}.weight"] = (hidden, hidden)
            shapes[f"{prefix}.self_attn.{proj}.bias"] = (hidden,)
        shapes[f"{prefix}.linear1.weight"] = (hidden, inner)
        shapes[f"{prefix}.linear1.bias"] = (inner,)
        shapes[f"{prefix}.linear2.weight"] = (inner, hidden)
        shapes[f"{prefix}.linear2.bias"] = (hidden,)
        for norm in ("norm1", "norm2"):
            shapes[f"{prefix}.{norm}.weight"] = (hidden,)
            shapes[f"{prefix}.{norm}.bias"] = (hidden,)
    shapes["ernie.pooler.dense.weight"] = (hidden, hidden)
    shapes["ernie.pooler.dense.bias"] = (hidden,)
    shapes["classifier.weight"] = (hidden, config.num_labels)
    shapes["classifier.bias"] = (config.num_labels,)
    return shapes
