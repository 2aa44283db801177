"""Calibration sets for quantizing the PP-OCRv4 models, drawn from the generated *calibration* split.

The calibration split (:func:`portbench.suites.ocr.datagen.calibration`) is rendered from the same
spec as the evaluation split but under other sample ids, so calibration never sees evaluation data.
Inputs are pre-processed exactly as the pipeline does: detection pages one per batch (page sizes
differ), recognition lines in PaddleOCR's width-sorted batches.
"""

from __future__ import annotations

from pathlib import Path

from portbench.errors import DatasetError, UnknownNameError
from portbench.harness.quantize import CalibrationSet
from portbench.suites.ocr import datagen
from portbench.suites.ocr.datasets import load_image
from portbench.suites.ocr.models import PPOCRV4_DET, PPOCRV4_REC
from portbench.suites.ocr.preprocess import preprocess_det, rec_batches
from portbench.suites.ocr.workload import evenly_spaced

ROLES = ("det", "rec")
DATASETS_DIR = "datasets"  # under the cache root, as the OCR workload keeps its generated sets


def ocr_calibration_set(
    role: str, dataset_spec: datagen.SynthSpec, cache_root: Path, samples: int, batch_size: int
) -> CalibrationSet:
    """Up to ``samples`` calibration inputs for the ``det`` or ``rec`` model.

    Samples are spread evenly over the split (clean and degraded alike). ``batch_size`` applies to
    recognition only; detection feeds hold one page each.
    """
    if role not in ROLES:
        raise UnknownNameError("OCR model role", role, ROLES)
    if samples < 1:
        raise DatasetError(f"calibration needs at least one sample, got {samples}")
    spec = datagen.calibration(dataset_spec)
    dataset = datagen.ensure_dataset(spec, cache_root / DATASETS_DIR)
    if role == "det":
        pages = evenly_spaced(dataset.det, samples)
        if not pages:
            raise DatasetError(f"calibration set {dataset.name} has no page images")
        input_name = PPOCRV4_DET.inputs[0].name
        feeds = [{input_name: preprocess_det(load_image(page.image_path))[0]} for page in pages]
        return CalibrationSet(tuple(page.sample_id for page in pages), feeds, source=dataset.name)
    lines = evenly_spaced(dataset.rec, samples)
    if not lines:
        raise DatasetError(f"calibration set {dataset.name} has no line images")
    input_name = PPOCRV4_REC.inputs[0].name
    batches = rec_batches([load_image(line.image_path) for line in lines], batch_size)
    ids = tuple(lines[index].sample_id for batch in batches for index in batch.indices)
    return CalibrationSet(ids, [{input_name: batch.tensor} for batch in batches], source=dataset.name)
