"""Greedy CTC decoding on hand-built probability tensors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from portbench.errors import ModelError, PortbenchError
from portbench.suites.ocr.ctc import CTCDecoder

pytestmark = pytest.mark.fast  # contracts, planning, parity, reports with fakes: tox -e fast

# Class layout for a dictionary "a", "b", "c": blank, a, b, c, space.
BLANK, A, B, C, SPACE = range(5)


@pytest.fixture
def decoder(tmp_path: Path) -> CTCDecoder:
    path = tmp_path / "keys.txt"
    path.write_text("a\nb\nc\n", encoding="utf-8")
    return CTCDecoder.from_dictionary(path)


def steps(*chosen: tuple[int, float], classes: int = 5) -> np.ndarray:
    """[T, classes] rows where ``index`` gets ``prob`` and the rest share what is left."""
    rows = np.zeros((len(chosen), classes), dtype=np.float32)
    for t, (index, prob) in enumerate(chosen):
        rows[t, :] = (1.0 - prob) / (classes - 1)
        rows[t, index] = prob
    return rows


def test_layout_is_blank_dictionary_space(decoder: CTCDecoder) -> None:
    assert decoder.characters == ("blank", "a", "b", "c", " ")
    assert decoder.num_classes == 5


def test_dictionary_without_space(tmp_path: Path) -> None:
    path = tmp_path / "keys.txt"
    path.write_bytes("甲\r\n乙\r\n".encode())
    assert CTCDecoder.from_dictionary(path, use_space_char=False).characters == ("blank", "甲", "乙")


def test_repeats_collapse_and_blanks_separate(decoder: CTCDecoder) -> None:
    probs = steps((A, 0.9), (A, 0.8), (BLANK, 0.99), (A, 0.7), (B, 0.6), (B, 0.95), (SPACE, 0.5), (C, 0.4))
    [(text, confidence)] = decoder.decode(probs[np.newaxis])
    assert text == "aab c"
    # Kept steps: first a (0.9), a after the blank (0.7), first b (0.6), space (0.5), c (0.4).
    assert confidence == pytest.approx((0.9 + 0.7 + 0.6 + 0.5 + 0.4) / 5)


def test_rows_decode_independently(decoder: CTCDecoder) -> None:
    first = steps((C, 0.9), (BLANK, 0.9), (B, 0.8))
    second = steps((BLANK, 0.9), (BLANK, 0.9), (BLANK, 0.9))
    results = decoder.decode(np.stack([first, second]))
    assert results[0][0] == "cb"
    assert results[0][1] == pytest.approx(0.85)
    assert results[1] == ("", 0.0)


def test_class_count_mismatch_names_both_numbers(decoder: CTCDecoder) -> None:
    probs = np.zeros((1, 4, 7), dtype=np.float32)
    with pytest.raises(PortbenchError, match=r"outputs 7 classes .* gives 5"):
        decoder.decode(probs)


def test_missing_or_empty_dictionary(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="cannot read"):
        CTCDecoder.from_dictionary(tmp_path / "absent.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(ModelError, match="empty"):
        CTCDecoder.from_dictionary(empty)


def test_ppocr_dictionary_gives_the_models_6625_classes() -> None:
    from portbench.suites.ocr.models import ppocr_keys_path

    path = ppocr_keys_path()
    decoder = CTCDecoder.from_dictionary(path)
    # PP-OCRv4 rec outputs 6625 classes: blank + 6623 dictionary lines + space.
    assert decoder.num_classes == 6625
    lines = path.read_text(encoding="utf-8").splitlines()
    assert decoder.characters[1] == lines[0]
    assert decoder.characters[-2] == lines[-1]
    assert decoder.characters[-1] == " "
