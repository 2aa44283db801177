"""Greedy CTC decoding for PP-OCR recognition models (PaddleOCR's ``CTCLabelDecode``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from portbench.errors import ModelError, PortbenchError

BLANK = "blank"
BLANK_INDEX = 0
SPACE = " "


class CTCDecoder:
    """Class index -> character table with the CTC blank at index 0.

    PaddleOCR's layout is ``[blank] + dictionary + [" "]`` (the space only with ``use_space_char``),
    so ppocr_keys_v1.txt (6,623 lines) gives the 6,625 classes PP-OCRv4 rec outputs.
    """

    def __init__(self, characters: Sequence[str]) -> None:
        if len(characters) < 2 or characters[BLANK_INDEX] != BLANK:
            raise ValueError("characters must start with the CTC blank and hold at least one symbol")
        self.characters: tuple[str, ...] = tuple(characters)

    @classmethod
    def from_dictionary(cls, path: Path, use_space_char: bool = True) -> CTCDecoder:
        """Read a PaddleOCR dictionary: one character per line, UTF-8."""
        try:
            raw = Path(path).read_bytes()
        except OSError as error:
            raise ModelError(f"cannot read recognition dictionary {path}: {error.strerror}") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ModelError(f"recognition dictionary {path} is not UTF-8 text") from None
        # Only line ends are stripped: some dictionaries hold characters such as a full-width space.
        symbols = [line.rstrip("\r") for line in text.split("\n")]
        if symbols and symbols[-1] == "":
            symbols.pop()
        if not symbols:
            raise ModelError(f"recognition dictionary {path} is empty")
        if use_space_char:
            symbols.append(SPACE)
        return cls([BLANK, *symbols])

    @property
    def num_classes(self) -> int:
        return len(self.characters)

    def check_num_classes(self, model_classes: int) -> None:
        if model_classes != self.num_classes:
            raise PortbenchError(
                f"recognition model outputs {model_classes} classes but the dictionary gives "
                f"{self.num_classes} (blank + {self.num_classes - 1} symbols); "
                "use the dictionary the model was trained with"
            )

    def decode(self, probs: np.ndarray) -> list[tuple[str, float]]:
        """Per row of ``probs`` [B, T, C]: (text, confidence).

        Greedy: argmax per step, merge repeats, drop blanks. Confidence is the mean of the kept
        steps' maximum probabilities, 0.0 for an empty result (PaddleOCR's convention).
        """
        if probs.ndim != 3:
            raise ValueError(f"expected recognition output [batch, time, classes], got shape {probs.shape}")
        self.check_num_classes(int(probs.shape[2]))
        best = probs.argmax(axis=2)
        best_prob = np.take_along_axis(probs, best[:, :, np.newaxis], axis=2)[:, :, 0]
        keep = best != BLANK_INDEX
        keep[:, 1:] &= best[:, 1:] != best[:, :-1]
        results: list[tuple[str, float]] = []
        for row_ids, row_prob, row_keep in zip(best, best_prob, keep, strict=True):
            text = "".join(self.characters[i] for i in row_ids[row_keep])
            kept = row_prob[row_keep]
            results.append((text, float(kept.astype(np.float64).mean()) if kept.size else 0.0))
        return results
