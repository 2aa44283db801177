"""ERNIE tokenizer, vocabulary, data splits, TSV reading and metrics, on hand-checked cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from portbench.errors import DatasetError, ModelError
from portbench.suites.ernie.data import (
    Example,
    build_char_vocab,
    load_sentiment_corpus,
    read_labels,
    read_tsv,
    split_corpus,
)
from portbench.suites.ernie.errors import EvalDataError, VocabError
from portbench.suites.ernie.metrics import accuracy, macro_f1
from portbench.suites.ernie.tokenizer import ErnieTokenizer, read_vocab, write_vocab

TOKENS = [
    "[PAD]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    "[UNK]",
    "我",
    "喜",
    "欢",
    "书",
    "ok",
    "##ay",
    "h",
    "##i",
    "，",
]


@pytest.fixture()
def vocab_file(tmp_path: Path) -> Path:
    path = tmp_path / "vocab.txt"
    write_vocab(TOKENS, path)
    return path


def ids_of(*tokens: str) -> list[int]:
    return [TOKENS.index(t) for t in tokens]


def test_chinese_characters_split_lowercase_and_unknown(vocab_file: Path) -> None:
    tokenizer = ErnieTokenizer.from_vocab_file(vocab_file, max_seq_len=32)
    assert tokenizer.tokenize("我喜欢书") == ["我", "喜", "欢", "书"]
    assert tokenizer.tokenize("OKAY Hi") == ["ok", "##ay", "h", "##i"]
    assert tokenizer.tokenize("我爱书") == ["我", "[UNK]", "书"]
    input_ids, token_type_ids = tokenizer.encode_batch(["我喜欢书，OKAY"])
    assert input_ids.tolist() == [ids_of("[CLS]", "我", "喜", "欢", "书", "，", "ok", "##ay", "[SEP]")]
    assert input_ids.dtype == np.int64 and token_type_ids.dtype == np.int64
    assert token_type_ids.tolist() == [[0] * 9]


def test_padding_to_longest_and_to_max(vocab_file: Path) -> None:
    tokenizer = ErnieTokenizer.from_vocab_file(vocab_file, max_seq_len=8)
    input_ids, token_type_ids = tokenizer.encode_batch(["我", "我喜欢"])
    assert input_ids.tolist() == [
        ids_of("[CLS]", "我", "[SEP]", "[PAD]", "[PAD]"),
        ids_of("[CLS]", "我", "喜", "欢", "[SEP]"),
    ]
    assert token_type_ids.shape == (2, 5) and not token_type_ids.any()
    fixed = ErnieTokenizer.from_vocab_file(vocab_file, max_seq_len=8, pad_to_max=True)
    assert fixed.encode_batch(["我"])[0].tolist() == [ids_of("[CLS]", "我", "[SEP]") + [0] * 5]


def test_truncation_keeps_cls_and_sep(vocab_file: Path) -> None:
    tokenizer = ErnieTokenizer.from_vocab_file(vocab_file, max_seq_len=5)
    input_ids, _ = tokenizer.encode_batch(["我喜欢书我喜欢书"])
    assert input_ids.tolist() == [ids_of("[CLS]", "我", "喜", "欢", "[SEP]")]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty"),
        ("[PAD]\n[CLS]\n[SEP]\n", "lacks the special tokens [UNK]"),
        ("[PAD]\n[CLS]\nhello world\n[SEP]\n[UNK]\n", "expected one token per line"),
        ("[PAD]\n[CLS]\n[SEP]\n[UNK]\n[CLS]\n", "duplicate token '[CLS]'"),
    ],
)
def test_bad_vocab_files_are_one_line_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "vocab.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(VocabError, match=message.replace("[", r"\[").replace("]", r"\]")) as raised:
        read_vocab(path)
    assert isinstance(raised.value, ModelError) and "\n" not in str(raised.value)


def test_missing_or_binary_vocab(tmp_path: Path) -> None:
    with pytest.raises(VocabError, match="not found"):
        ErnieTokenizer.from_vocab_file(tmp_path / "nope.txt", 16)
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(VocabError, match="not a UTF-8"):
        read_vocab(tmp_path / "bin.txt")


def test_char_vocab_is_ernie_ordered_and_frequency_ranked() -> None:
    tokens = build_char_vocab(["好好好书书差", "好 A"], max_chars=2)
    assert tokens[:5] == ["[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]"]
    assert "a" in tokens and "##a" in tokens and "0" in tokens
    # 'a' is already an ASCII entry, so the two extra characters are the most frequent others.
    assert tokens[-2:] == ["好", "书"]


def test_splits_are_disjoint_seeded_and_cover_the_corpus() -> None:
    corpus = load_sentiment_corpus()
    assert len(corpus) > 30000 and {e.label for e in corpus} == {0, 1}
    splits = split_corpus(corpus, seed=5, calib_size=1000, test_size=2000)
    ids = splits.ids()
    train, calib, test = set(ids["train"]), set(ids["calib"]), set(ids["test"])
    assert len(calib) == 1000 and len(test) == 2000
    assert not (train & calib) and not (train & test) and not (calib & test)
    assert len(train | calib | test) == len(corpus)
    assert split_corpus(corpus, seed=5, calib_size=1000, test_size=2000).ids() == ids
    assert split_corpus(corpus, seed=6, calib_size=1000, test_size=2000).ids()["test"] != ids["test"]


def test_read_tsv_accepts_header_and_maps_labels(tmp_path: Path) -> None:
    path = tmp_path / "dev.tsv"
    path.write_text("text\tlabel\n很好\tpos\n\n太差了\tneg\n", encoding="utf-8")
    assert read_tsv(path, ["neg", "pos"]) == [
        Example("dev.tsv:2", "很好", 1),
        Example("dev.tsv:4", "太差了", 0),
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("很好\tpos\n太差了\n", r"dev\.tsv:2: .*label column is missing"),
        ("很好\t\n", r"dev\.tsv:1: .*label column is missing"),
        ("很好\tpos\n一般\tneutral\n", r"dev\.tsv:2: label 'neutral' is not in the label list \(neg, pos\)"),
        ("", "empty"),
    ],
)
def test_bad_tsv_is_one_line_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "dev.tsv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(EvalDataError, match=message) as raised:
        read_tsv(path, ["neg", "pos"])
    assert isinstance(raised.value, DatasetError) and raised.value.exit_code == 2
    assert "\n" not in str(raised.value)


def test_read_labels(tmp_path: Path) -> None:
    (tmp_path / "labels.txt").write_text("neg\npos\n\n", encoding="utf-8")
    assert read_labels(tmp_path / "labels.txt") == ("neg", "pos")
    (tmp_path / "dup.txt").write_text("a\nb\na\n", encoding="utf-8")
    with pytest.raises(EvalDataError, match="duplicate labels a"):
        read_labels(tmp_path / "dup.txt")


def test_accuracy_and_macro_f1_hand_computed() -> None:
    truth = [0, 0, 0, 1, 1, 2]
    predicted = [0, 0, 1, 1, 2, 2]
    assert accuracy(truth, predicted) == pytest.approx(4 / 6)
    # class 0: P=2/2 R=2/3 F1=0.8; class 1: P=1/2 R=1/2 F1=0.5; class 2: P=1/2 R=1/1 F1=2/3
    assert macro_f1(truth, predicted) == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    # A class only ever predicted (never true) scores 0 and still counts.
    assert macro_f1([0, 0], [0, 1]) == pytest.approx((2 / 3 + 0.0) / 2)
    assert macro_f1([1, 0, 1], [1, 0, 1]) == 1.0
    with pytest.raises(ValueError):
        accuracy([0, 1], [0])
