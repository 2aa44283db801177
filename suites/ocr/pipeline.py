"""portbench's PP-OCRv4 system pipeline: detect, sort, crop, recognise, filter.

It reproduces PaddleOCR's ``TextSystem`` without the direction classifier (``use_angle_cls=False``).
Every stage is a separate method so that a timed loop can run ``session.run`` alone on tensors that
``det_input`` / ``rec_inputs`` prepared beforehand; the full calls can add their stage times to a
caller's ``dict`` (seconds, summed over calls).
"""

from __future__ import annotations

import time
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from portbench.backends.base import Backend, PredictorOptions, Session
from portbench.suites.ocr.ctc import CTCDecoder
from portbench.suites.ocr.postprocess import (
    DBPostprocessConfig,
    DetectedBox,
    db_postprocess,
    get_rotate_crop_image,
    sorted_boxes,
)
from portbench.suites.ocr.preprocess import (
    REC_BATCH_SIZE,
    DetInputMeta,
    DetPreprocessConfig,
    RecBatch,
    as_bgr,
    preprocess_det,
    rec_batches,
)

DET_PREPROCESS = "det_preprocess"
DET_INFERENCE = "det_inference"
DET_POSTPROCESS = "det_postprocess"
REC_PREPROCESS = "rec_preprocess"  # cropping and sorting included
REC_INFERENCE = "rec_inference"
REC_POSTPROCESS = "rec_postprocess"
STAGES = (DET_PREPROCESS, DET_INFERENCE, DET_POSTPROCESS, REC_PREPROCESS, REC_INFERENCE, REC_POSTPROCESS)

StageTimes = MutableMapping[str, float]
DEFAULT_DROP_SCORE = 0.5


@dataclass(frozen=True, eq=False)
class OcrLine:
    """One recognised line: ``points`` float32 [4, 2] in source pixels, ``score`` the rec confidence."""

    points: np.ndarray
    text: str
    score: float
    det_score: float


class _Clock:
    """Adds elapsed seconds to ``times[stage]``; a no-op when no accumulator was given."""

    __slots__ = ("_last", "_times")

    def __init__(self, times: StageTimes | None) -> None:
        self._times = times
        self._last = time.perf_counter() if times is not None else 0.0

    def lap(self, stage: str) -> None:
        if self._times is None:
            return
        now = time.perf_counter()
        self._times[stage] = self._times.get(stage, 0.0) + (now - self._last)
        self._last = now


class OcrPipeline:
    """PP-OCRv4 det + rec on two inference sessions of any backend."""

    def __init__(
        self,
        det: Session,
        rec: Session,
        decoder: CTCDecoder,
        det_config: DBPostprocessConfig | None = None,
        rec_batch_size: int = REC_BATCH_SIZE,
        drop_score: float = DEFAULT_DROP_SCORE,
        det_preprocess: DetPreprocessConfig | None = None,
    ) -> None:
        if rec_batch_size < 1:
            raise ValueError(f"rec_batch_size must be at least 1, got {rec_batch_size}")
        self.det = det
        self.rec = rec
        self.decoder = decoder
        self.det_config = det_config or DBPostprocessConfig()
        self.det_preprocess = det_preprocess or DetPreprocessConfig()
        self.rec_batch_size = rec_batch_size
        self.drop_score = drop_score

    def with_sessions(self, det: Session, rec: Session) -> OcrPipeline:
        """The same pipeline (decoder and settings shared: they hold no per-call state) on other
        det and rec predictors, e.g. a concurrent stream's clones."""
        return OcrPipeline(det, rec, self.decoder, self.det_config, self.rec_batch_size, self.drop_score,
                           self.det_preprocess)

    @classmethod
    def from_backend(
        cls,
        backend: Backend,
        options: PredictorOptions | None = None,
        det_dir: Path | None = None,
        rec_dir: Path | None = None,
        det_config: DBPostprocessConfig | None = None,
        rec_batch_size: int = REC_BATCH_SIZE,
        drop_score: float = DEFAULT_DROP_SCORE,
        det_preprocess: DetPreprocessConfig | None = None,
    ) -> OcrPipeline:
        """Sessions for the registered PP-OCRv4 models (or exports in ``det_dir`` / ``rec_dir``)."""
        from portbench.harness.models import resolve
        from portbench.suites.ocr.models import PPOCRV4_DET, PPOCRV4_REC, ppocr_keys_path

        options = options or PredictorOptions()
        det_files, _ = resolve(PPOCRV4_DET, det_dir)
        rec_files, _ = resolve(PPOCRV4_REC, rec_dir)
        decoder = CTCDecoder.from_dictionary(ppocr_keys_path())
        return cls(
            backend.create_session(det_files, options),
            backend.create_session(rec_files, options),
            decoder,
            det_config=det_config,
            rec_batch_size=rec_batch_size,
            drop_score=drop_score,
            det_preprocess=det_preprocess,
        )

    # Pure pieces, for timed loops that run only the sessions.

    def det_input(self, image: np.ndarray) -> tuple[np.ndarray, DetInputMeta]:
        return preprocess_det(image, self.det_preprocess)

    def det_output(self, outputs: Sequence[np.ndarray], meta: DetInputMeta) -> list[DetectedBox]:
        return db_postprocess(outputs[0], meta.source_hw, self.det_config)

    def rec_inputs(self, crops: Sequence[np.ndarray]) -> list[RecBatch]:
        return rec_batches(crops, self.rec_batch_size)

    # Full stages.

    def detect(self, image: np.ndarray, times: StageTimes | None = None) -> list[DetectedBox]:
        """Text boxes in reading order."""
        clock = _Clock(times)
        tensor, meta = self.det_input(image)
        clock.lap(DET_PREPROCESS)
        outputs = self.det.run([tensor])
        clock.lap(DET_INFERENCE)
        boxes = sorted_boxes(self.det_output(outputs, meta))
        clock.lap(DET_POSTPROCESS)
        return boxes

    def recognize(
        self, crops: Sequence[np.ndarray], times: StageTimes | None = None
    ) -> list[tuple[str, float]]:
        """(text, confidence) per crop, in the order given."""
        clock = _Clock(times)
        results: list[tuple[str, float]] = [("", 0.0)] * len(crops)
        for batch in self.rec_inputs(crops):
            clock.lap(REC_PREPROCESS)
            outputs = self.rec.run([batch.tensor])
            clock.lap(REC_INFERENCE)
            for index, decoded in zip(batch.indices, self.decoder.decode(outputs[0]), strict=True):
                results[index] = decoded
            clock.lap(REC_POSTPROCESS)
        return results

    def crops(self, image: np.ndarray, boxes: Sequence[DetectedBox]) -> list[np.ndarray]:
        bgr = as_bgr(image)
        return [get_rotate_crop_image(bgr, box.points) for box in boxes]

    def __call__(self, image: np.ndarray, times: StageTimes | None = None) -> list[OcrLine]:
        """Lines whose recognition confidence reaches ``drop_score``, in reading order."""
        boxes = self.detect(image, times)
        clock = _Clock(times)
        crops = self.crops(image, boxes)
        clock.lap(REC_PREPROCESS)
        recognized = self.recognize(crops, times)
        return [
            OcrLine(points=box.points, text=text, score=score, det_score=box.score)
            for box, (text, score) in zip(boxes, recognized, strict=True)
            if score >= self.drop_score
        ]
