"""Every model portbench knows by name, across workloads (for ``portbench models``)."""

from __future__ import annotations

from portbench.harness.models import ModelEntry
from portbench.suites.ernie.models import ERNIE_MODELS
from portbench.suites.ocr.models import OCR_MODELS


def registered_models() -> tuple[ModelEntry, ...]:
    return (*OCR_MODELS, *ERNIE_MODELS)
