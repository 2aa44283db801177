"""ERNIE's ``vocab.txt`` WordPiece tokenizer, built on Hugging Face ``tokenizers``.

ERNIE (like BERT-Chinese) lower-cases, splits every CJK character into its own word, splits on
whitespace and punctuation, then applies WordPiece with the ``##`` continuation prefix. Sequences are
``[CLS] text [SEP]``, truncated to ``max_seq_len`` and padded with ``[PAD]`` to the longest sequence of
the batch (or to ``max_seq_len`` when ``pad_to_max`` is set).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece

from portbench.suites.ernie.errors import VocabError

# ERNIE 3.0's vocab.txt begins with these, in this order; portbench's own vocabularies do too.
SPECIAL_TOKENS: tuple[str, ...] = ("[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]")
REQUIRED_TOKENS: tuple[str, ...] = ("[PAD]", "[CLS]", "[SEP]", "[UNK]")


def read_vocab(path: Path) -> dict[str, int]:
    """Token -> id from a one-token-per-line ``vocab.txt``; raises :class:`VocabError`."""
    if not path.is_file():
        raise VocabError(f"vocabulary file not found: {path}")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise VocabError(f"{path} is not a UTF-8 text file (expected one token per line)") from None
    vocab: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        token = line.rstrip("\r")
        if not token.strip() or "\t" in token or " " in token.strip():
            raise VocabError(f"{path}:{number}: expected one token per line, got {line!r}")
        if token in vocab:
            raise VocabError(f"{path}:{number}: duplicate token {token!r}")
        vocab[token] = len(vocab)
    if not vocab:
        raise VocabError(f"vocabulary file is empty: {path}")
    missing = [t for t in REQUIRED_TOKENS if t not in vocab]
    if missing:
        raise VocabError(f"{path} lacks the special tokens {', '.join(missing)}: not an ERNIE vocab.txt")
    return vocab


def write_vocab(tokens: Sequence[str], path: Path) -> None:
    path.write_text("".join(f"{token}\n" for token in tokens), encoding="utf-8")


class ErnieTokenizer:
    """Encodes texts to ``input_ids`` / ``token_type_ids`` (int64, ``[batch, length]``)."""

    def __init__(self, vocab: dict[str, int], max_seq_len: int, pad_to_max: bool = False) -> None:
        if max_seq_len < 3:
            raise ValueError(f"max_seq_len must leave room for [CLS] and [SEP], got {max_seq_len}")
        self.vocab = vocab
        self.max_seq_len = max_seq_len
        self.pad_to_max = pad_to_max
        self.pad_id = vocab["[PAD]"]
        self.cls_id = vocab["[CLS]"]
        self.sep_id = vocab["[SEP]"]
        self.unk_id = vocab["[UNK]"]
        tokenizer = Tokenizer(WordPiece(vocab, unk_token="[UNK]", continuing_subword_prefix="##"))
        tokenizer.normalizer = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
        )
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", self.cls_id), ("[SEP]", self.sep_id)],
        )
        tokenizer.decoder = decoders.WordPiece(prefix="##")
        tokenizer.enable_truncation(max_length=max_seq_len)
        tokenizer.enable_padding(
            pad_id=self.pad_id, pad_token="[PAD]", length=max_seq_len if pad_to_max else None
        )
        self._tokenizer = tokenizer

    @classmethod
    def from_vocab_file(cls, path: Path, max_seq_len: int, pad_to_max: bool = False) -> ErnieTokenizer:
        return cls(read_vocab(path), max_seq_len, pad_to_max)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def tokenize(self, text: str) -> list[str]:
        """Word pieces of one text, without [CLS]/[SEP] or padding (for inspection and tests)."""
        return list(self._tokenizer.encode(text, add_special_tokens=False).tokens)

    def encode_batch(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(input_ids, token_type_ids)``, both int64 ``[len(texts), length]``."""
        if not texts:
            raise ValueError("encode_batch needs at least one text")
        encodings = self._tokenizer.encode_batch(list(texts))
        input_ids = np.array([e.ids for e in encodings], dtype=np.int64)
        token_type_ids = np.array([e.type_ids for e in encodings], dtype=np.int64)
        return input_ids, token_type_ids
