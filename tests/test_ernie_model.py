"""ERNIE model: PaddleNLP checkpoint parity against an independent numpy forward pass, and export."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import paddle
import pytest

from portbench.backends.base import PredictorOptions
from portbench.backends.cpu import CpuBackend
from portbench.errors import PortbenchError
from portbench.suites.ernie.checkpoint import load_checkpoint, save_checkpoint
from portbench.suites.ernie.errors import CheckpointError
from portbench.suites.ernie.export import export_inference
from portbench.suites.ernie.modeling import ErnieConfig, ErnieForSequenceClassification
from portbench.suites.ernie.shapes import ERNIE3_SHAPES, parameter_count

# PaddleNLP's own field names, as its save_pretrained writes them (new flat layout).
PADDLENLP_CONFIG: dict[str, Any] = {
    "architectures": ["ErnieForSequenceClassification"],
    "attention_probs_dropout_prob": 0.1,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 24,
    "initializer_range": 0.02,
    "intermediate_size": 40,
    "layer_norm_eps": 1e-12,
    "max_position_embeddings": 16,
    "model_type": "ernie",
    "num_attention_heads": 3,
    "num_hidden_layers": 2,
    "pad_token_id": 0,
    "task_id": 0,
    "task_type_vocab_size": 3,
    "type_vocab_size": 4,
    "use_task_id": True,
    "vocab_size": 50,
    "id2label": {"0": "neg", "1": "neutral", "2": "pos"},
    "label2id": {"neg": 0, "neutral": 1, "pos": 2},
}


def random_state(config: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """PaddleNLP key names, written out independently of the code under test."""
    hidden, inner, labels = config["hidden_size"], config["intermediate_size"], len(config["id2label"])

    def normal(*shape: int, scale: float = 0.3) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    state = {
        "ernie.embeddings.word_embeddings.weight": normal(config["vocab_size"], hidden),
        "ernie.embeddings.position_embeddings.weight": normal(config["max_position_embeddings"], hidden),
        "ernie.embeddings.token_type_embeddings.weight": normal(config["type_vocab_size"], hidden),
        "ernie.embeddings.task_type_embeddings.weight": normal(config["task_type_vocab_size"], hidden),
        "ernie.embeddings.layer_norm.weight": 1 + normal(hidden, scale=0.1),
        "ernie.embeddings.layer_norm.bias": normal(hidden, scale=0.1),
        "ernie.pooler.dense.weight": normal(hidden, hidden),
        "ernie.pooler.dense.bias": normal(hidden),
        "classifier.weight": normal(hidden, labels),
        "classifier.bias": normal(labels),
    }
    for i in range(config["num_hidden_layers"]):
        p = f"ernie.encoder.layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            state[p + f"self_attn.{proj}.weight"] = normal(hidden, hidden)
            state[p + f"self_attn.{proj}.bias"] = normal(hidden)
        state[p + "linear1.weight"] = normal(hidden, inner)
        state[p + "linear1.bias"] = normal(inner)
        state[p + "linear2.weight"] = normal(inner, hidden)
        state[p + "linear2.bias"] = normal(hidden)
        for norm in ("norm1", "norm2"):
            state[p + f"{norm}.weight"] = 1 + normal(hidden, scale=0.1)
            state[p + f"{norm}.bias"] = normal(hidden, scale=0.1)
    return state


def numpy_forward(
    state: dict[str, np.ndarray], config: dict, ids: np.ndarray, types: np.ndarray
) -> np.ndarray:
    """ERNIE's classifier forward in float64 numpy, following PaddleNLP's definition step by step."""
    s = {k: v.astype(np.float64) for k, v in state.items()}
    eps, heads = config["layer_norm_eps"], config["num_attention_heads"]

    def layer_norm(x: np.ndarray, prefix: str) -> np.ndarray:
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + eps) * s[prefix + ".weight"] + s[prefix + ".bias"]

    def linear(x: np.ndarray, prefix: str) -> np.ndarray:
        return x @ s[prefix + ".weight"] + s[prefix + ".bias"]

    batch, length = ids.shape
    positions = np.broadcast_to(np.arange(length), (batch, length))
    x = (
        s["ernie.embeddings.word_embeddings.weight"][ids]
        + s["ernie.embeddings.position_embeddings.weight"][positions]
        + s["ernie.embeddings.token_type_embeddings.weight"][types]
        + s["ernie.embeddings.task_type_embeddings.weight"][np.full_like(ids, config["task_id"])]
    )
    x = layer_norm(x, "ernie.embeddings.layer_norm")
    mask = np.where(ids == config["pad_token_id"], -1e4, 0.0)[:, None, None, :]
    head_dim = config["hidden_size"] // heads
    for i in range(config["num_hidden_layers"]):
        p = f"ernie.encoder.layers.{i}."

        def split(t: np.ndarray) -> np.ndarray:
            return t.reshape(batch, length, heads, head_dim).transpose(0, 2, 1, 3)

        q = split(linear(x, p + "self_attn.q_proj"))
        k = split(linear(x, p + "self_attn.k_proj"))
        v = split(linear(x, p + "self_attn.v_proj"))
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(head_dim) + mask
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        weights = scores / scores.sum(-1, keepdims=True)
        attended = (weights @ v).transpose(0, 2, 1, 3).reshape(batch, length, -1)
        x = layer_norm(x + linear(attended, p + "self_attn.out_proj"), p + "norm1")
        inner = linear(x, p + "linear1")
        inner = 0.5 * inner * (1 + np.vectorize(math.erf)(inner / math.sqrt(2)))
        x = layer_norm(x + linear(inner, p + "linear2"), p + "norm2")
    pooled = np.tanh(linear(x[:, 0], "ernie.pooler.dense"))
    return linear(pooled, "classifier")


def write_paddlenlp_checkpoint(directory: Path, config: dict, state: dict[str, np.ndarray]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model_config.json").write_text(json.dumps(config), encoding="utf-8")
    paddle.save({k: paddle.to_tensor(v) for k, v in state.items()}, str(directory / "model_state.pdparams"))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    state = random_state(PADDLENLP_CONFIG, np.random.default_rng(0))
    directory = tmp_path_factory.mktemp("paddlenlp_ckpt")
    write_paddlenlp_checkpoint(directory, PADDLENLP_CONFIG, state)
    return directory, state


def sample_inputs(batch: int, length: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, int(PADDLENLP_CONFIG["vocab_size"]), (batch, length)).astype(np.int64)
    ids[:, 0] = 1
    # Ragged lengths: the tail of each row is [PAD] (id 0), so the mask matters.
    for row in range(batch):
        ids[row, max(2, length - 3 * row) :] = 0
    types = (rng.random((batch, length)) < 0.3).astype(np.int64)
    return ids, types


def test_paddlenlp_checkpoint_gives_numpy_reference_logits(checkpoint: tuple[Path, dict]) -> None:
    directory, state = checkpoint
    model = load_checkpoint(directory)
    assert model.config.labels == ("neg", "neutral", "pos")
    ids, types = sample_inputs(4, 11, seed=1)
    with paddle.no_grad():
        logits = model(paddle.to_tensor(ids), paddle.to_tensor(types)).numpy()
    expected = numpy_forward(state, PADDLENLP_CONFIG, ids, types)
    np.testing.assert_allclose(logits, expected, atol=1e-5, rtol=0)
    # The mask is exercised: a padded row equals the same row without its padding, and differs from
    # what attending to the [PAD] positions would give.
    unpadded = numpy_forward(state, PADDLENLP_CONFIG, ids[3:4, :2], types[3:4, :2])[0]
    attending_pads = numpy_forward(state, {**PADDLENLP_CONFIG, "pad_token_id": -1}, ids, types)[3]
    np.testing.assert_allclose(logits[3], unpadded, atol=1e-5)
    assert np.abs(attending_pads - unpadded).max() > 1e-2


def test_state_dict_keys_match_paddlenlp_names(checkpoint: tuple[Path, dict]) -> None:
    _, state = checkpoint
    model = ErnieForSequenceClassification(ErnieConfig.from_dict(PADDLENLP_CONFIG))
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == {k: v.shape for k, v in state.items()}


def test_old_init_args_config_layout_is_read(tmp_path: Path, checkpoint: tuple[Path, dict]) -> None:
    _, state = checkpoint
    inner = {k: v for k, v in PADDLENLP_CONFIG.items() if k not in ("id2label", "label2id", "architectures")}
    old = {
        "init_args": [{**inner, "init_class": "ErnieModel"}],
        "init_class": "ErnieForSequenceClassification",
    }
    write_paddlenlp_checkpoint(tmp_path, old, state)
    model = load_checkpoint(tmp_path)
    assert model.config.num_labels == 3  # taken from the classifier: the old config omits it
    assert model.config.hidden_size == 24 and model.config.use_task_id


def test_checkpoint_with_shapes_not_matching_config_is_one_line_error(
    tmp_path: Path, checkpoint: tuple[Path, dict]
) -> None:
    _, state = checkpoint
    write_paddlenlp_checkpoint(tmp_path, {**PADDLENLP_CONFIG, "intermediate_size": 48}, state)
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(tmp_path)
    message = str(raised.value)
    assert "\n" not in message and "linear1.weight" in message and "[24, 40]" in message
    assert isinstance(raised.value, PortbenchError) and raised.value.exit_code == 2


def test_checkpoint_missing_key_and_bad_json_are_errors(
    tmp_path: Path, checkpoint: tuple[Path, dict]
) -> None:
    _, state = checkpoint
    partial = {k: v for k, v in state.items() if "pooler" not in k}
    write_paddlenlp_checkpoint(tmp_path / "a", PADDLENLP_CONFIG, partial)
    with pytest.raises(CheckpointError, match=r"ernie\.pooler\.dense\.weight is missing"):
        load_checkpoint(tmp_path / "a")
    write_paddlenlp_checkpoint(tmp_path / "b", PADDLENLP_CONFIG, state)
    (tmp_path / "b" / "model_config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(tmp_path / "b")
    (tmp_path / "b" / "model_config.json").write_text(json.dumps(PADDLENLP_CONFIG), encoding="utf-8")
    (tmp_path / "b" / "model_state.pdparams").write_bytes(b"truncated")
    with pytest.raises(CheckpointError, match="not a readable Paddle state dict"):
        load_checkpoint(tmp_path / "b")


def test_save_then_load_round_trip(tmp_path: Path, checkpoint: tuple[Path, dict]) -> None:
    model = load_checkpoint(checkpoint[0])
    save_checkpoint(model, tmp_path)
    again = load_checkpoint(tmp_path)
    ids, types = sample_inputs(2, 7, seed=3)
    with paddle.no_grad():
        a = model(paddle.to_tensor(ids), paddle.to_tensor(types)).numpy()
        b = again(paddle.to_tensor(ids), paddle.to_tensor(types)).numpy()
    np.testing.assert_array_equal(a, b)
    assert again.config.labels == ("neg", "neutral", "pos")


def test_export_runs_in_paddle_inference_with_dynamic_shapes(
    tmp_path: Path, checkpoint: tuple[Path, dict]
) -> None:
    directory, state = checkpoint
    model = load_checkpoint(directory)
    files = export_inference(model, tmp_path / "export")
    assert files.is_pir and files.params_file.is_file()
    session = CpuBackend().create_session(files, PredictorOptions(cpu_threads=1))
    assert sorted(session.input_names) == ["input_ids", "token_type_ids"]
    for batch, length in ((1, 5), (3, 16), (8, 9)):
        ids, types = sample_inputs(batch, length, seed=batch * 100 + length)
        feed = {"input_ids": ids, "token_type_ids": types}
        logits = session.run([feed[name] for name in session.input_names])[0]
        assert logits.shape == (batch, 3)
        np.testing.assert_allclose(logits, numpy_forward(state, PADDLENLP_CONFIG, ids, types), atol=1e-4)


def test_ernie3_size_table_matches_published_parameter_counts() -> None:
    # PaddleNLP's model list: base 118M, medium 75M, mini 27M, micro 23M, nano 18M, pico 5.9M parameters
    # (ERNIE 3.0 Tiny v2 comments; the encoder without our 2-class head is what they count).
    published = {"base": 118e6, "medium": 75e6, "mini": 27e6, "micro": 23e6, "nano": 18e6, "pico": 5.9e6}
    for name, count in published.items():
        assert parameter_count(ERNIE3_SHAPES[name].config) == pytest.approx(count, rel=0.03), name
    assert ERNIE3_SHAPES["medium"].config.num_hidden_layers == 6
    assert ERNIE3_SHAPES["nano"].config.hidden_size == 312
