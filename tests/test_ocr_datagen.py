"""The synthetic OCR set: determinism, ids and subsets, geometry of the ground truth, caching."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from portbench.errors import DatasetError, UnknownNameError
from portbench.suites.ocr import datagen
from portbench.suites.ocr.datagen import (
    DEGRADATIONS,
    SYNTH_SMOKE,
    SYNTH_STANDARD,
    SynthSpec,
    calibration,
    dataset_name,
    ensure_dataset,
    generate,
    preset,
)
from portbench.suites.ocr.datasets import DetSample, OcrDataset, load_image, load_user_dataset
from portbench.suites.ocr.models import ppocr_keys_path

# Two clean pages and one page per degradation, likewise for lines: every code path, in about a second.
TINY = SynthSpec(pages_clean=2, pages_degraded=5, lines_clean=3, lines_degraded=5, seed=7)

# Ink is at most 40 grey levels from black on paper of at least 210; the ruled separator under a
# title is 50..90 levels darker than the paper, so "darker by more than 120" means text ink.
INK_CONTRAST = 120


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> OcrDataset:
    return generate(TINY, tmp_path_factory.mktemp("tiny"))


def _digests(root: Path) -> dict[str, str]:
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _darkness(image: np.ndarray) -> np.ndarray:
    """How much darker than the paper (the top-left pixel, never inked) each pixel is."""
    paper = image[0, 0].astype(np.int32)
    return np.asarray((paper - image.astype(np.int32)).max(axis=2))


def _polygon_mask(shape: tuple[int, ...], polygons: list[np.ndarray], grow: int) -> np.ndarray:
    mask = np.zeros(shape[:2], dtype=np.uint8)
    for polygon in polygons:
        # fillPoly takes pixel-centre coordinates; the labels are pixel edges.
        cv2.fillPoly(mask, [np.round(polygon - 0.5).astype(np.int32)], 1)
    if grow:
        return np.asarray(cv2.dilate(mask, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)), dtype=bool)
    return mask.astype(bool)


def _kind(sample_id: str) -> str:
    return sample_id.rsplit("-", 1)[1]


def test_same_spec_gives_identical_bytes(tiny: OcrDataset, tmp_path: Path) -> None:
    again = generate(TINY, tmp_path / "again")
    first, second = _digests(tiny.root), _digests(again.root)
    assert len(first) == 7 + 8 + 3  # images, two label files, manifest
    assert first == second


def test_generate_refuses_a_non_empty_directory(tiny: OcrDataset) -> None:
    with pytest.raises(DatasetError, match="not empty"):
        generate(TINY, tiny.root)


def test_other_seed_changes_every_image(tiny: OcrDataset, tmp_path: Path) -> None:
    other = generate(replace(TINY, seed=8), tmp_path / "other")
    first, second = _digests(tiny.root), _digests(other.root)
    assert first.keys() == second.keys()
    images = [name for name in first if name.endswith(".png")]
    assert all(first[name] != second[name] for name in images)
    assert dataset_name(TINY) != dataset_name(replace(TINY, seed=8))


def test_calibration_split_is_disjoint_from_evaluation(tiny: OcrDataset, tmp_path: Path) -> None:
    calib_spec = calibration(TINY)
    assert calib_spec.split == "calib"
    assert replace(calib_spec, split="eval") == TINY
    calib = generate(calib_spec, tmp_path / "calib")
    eval_ids = {s.sample_id for s in (*tiny.det, *tiny.rec)}
    calib_ids = {s.sample_id for s in (*calib.det, *calib.rec)}
    assert eval_ids.isdisjoint(calib_ids)
    assert all(sample_id.startswith("calib-") for sample_id in calib_ids)
    eval_images = {hashlib.sha256(s.image_path.read_bytes()).digest() for s in (*tiny.det, *tiny.rec)}
    calib_images = {hashlib.sha256(s.image_path.read_bytes()).digest() for s in (*calib.det, *calib.rec)}
    assert eval_images.isdisjoint(calib_images)
    assert {s.text for s in tiny.rec}.isdisjoint({s.text for s in calib.rec})
    assert dataset_name(calib_spec).startswith("synth-ocr-v1-calib-")


def test_ids_subsets_and_degradations(tiny: OcrDataset) -> None:
    expected_pages = ["eval-page-0000-clean", "eval-page-0001-clean"] + [
        f"eval-page-{index + 2:04d}-{kind}" for index, kind in enumerate(DEGRADATIONS)
    ]
    assert [s.sample_id for s in tiny.det] == expected_pages
    assert [s.sample_id for s in tiny.rec][:4] == [
        "eval-line-0000-clean",
        "eval-line-0001-clean",
        "eval-line-0002-clean",
        "eval-line-0003-blur",
    ]
    assert tiny.subsets() == ("clean", "degraded")
    assert re.fullmatch(r"synth-ocr-v1-eval-[0-9a-f]{10}", tiny.name)
    samples = tiny.manifest["samples"]
    for sample in (*tiny.det, *tiny.rec):
        kind = _kind(sample.sample_id)
        assert sample.subset == ("clean" if kind == "clean" else "degraded")
        degradation = samples[sample.sample_id]["degradation"]
        assert (degradation is None) if kind == "clean" else (degradation["kind"] == kind)
    rotated = [s for s in (*tiny.det, *tiny.rec) if _kind(s.sample_id) == "rotate"]
    rotations = [samples[s.sample_id]["degradation"]["degrees"] for s in rotated]
    assert len(rotations) == 2
    assert all(2 <= abs(angle) <= 6 for angle in rotations)


def test_manifest_records_inputs_and_file_digests(tiny: OcrDataset) -> None:
    manifest = json.loads((tiny.root / "manifest.json").read_text(encoding="utf-8"))
    on_disk = _digests(tiny.root)
    del on_disk["manifest.json"]
    assert manifest["files"] == on_disk
    assert manifest["generator_version"] == datagen.GENERATOR_VERSION
    assert manifest["spec"]["seed"] == 7
    assert manifest["font"]["file"] == "NotoSansCJK-Regular.ttc"
    font_path = datagen._package_dir(datagen.FONT_PACKAGE, datagen.FONT_PIP_NAME) / "NotoSansCJK-Regular.ttc"
    assert manifest["font"]["sha256"] == hashlib.sha256(font_path.read_bytes()).hexdigest()
    assert {source["file"] for source in manifest["text_sources"]} == {
        "sentiment/pos.txt",
        "sentiment/neg.txt",
        "seg/data.txt",
    }


def test_label_files_are_paddleocr_format(tiny: OcrDataset) -> None:
    det_rows = (tiny.root / "det_gt.txt").read_text(encoding="utf-8").splitlines()
    assert len(det_rows) == len(tiny.det)
    for row, sample in zip(det_rows, tiny.det, strict=True):
        image, regions_json = row.split("\t")
        assert (tiny.root / image) == sample.image_path
        regions = json.loads(regions_json)
        assert all(set(region) == {"transcription", "points"} for region in regions)
        assert [region["transcription"] for region in regions] == [line.text for line in sample.lines]
        assert [[tuple(p) for p in region["points"]] for region in regions] == [
            list(line.points) for line in sample.lines
        ]
    rec_rows = (tiny.root / "rec_gt.txt").read_text(encoding="utf-8").splitlines()
    assert [row.split("\t") for row in rec_rows] == [
        [s.image_path.relative_to(tiny.root).as_posix(), s.text] for s in tiny.rec
    ]
    # and the directory reads back as a user dataset with the same content
    assert load_user_dataset(tiny.root) == tiny


def test_text_is_in_the_dictionary(tiny: OcrDataset) -> None:
    dictionary = set(ppocr_keys_path().read_text(encoding="utf-8").splitlines())
    texts = [line.text for sample in tiny.det for line in sample.lines] + [s.text for s in tiny.rec]
    assert len(texts) > 40
    for text in texts:
        assert text and set(text) <= dictionary, text
        assert " " not in text and "\u3000" not in text
    assert any(re.search(r"[\u4e00-\u9fff]{4}", text) for text in texts)


def _page_polygons(sample: DetSample) -> list[np.ndarray]:
    return [np.array(line.points, dtype=np.float64) for line in sample.lines]


def test_page_polygons_are_clockwise_inside_the_image_and_apart(tiny: OcrDataset) -> None:
    for sample in tiny.det:
        image = load_image(sample.image_path)
        height, width = image.shape[:2]
        polygons = _page_polygons(sample)
        assert 6 <= len(polygons) <= 14
        for polygon in polygons:
            assert polygon.shape == (4, 2)
            assert (polygon >= 0).all() and (polygon[:, 0] <= width).all() and (polygon[:, 1] <= height).all()
            x, y = polygon[:, 0], polygon[:, 1]
            assert np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y) > 0  # clockwise with y pointing down
            assert np.argmin(x + y) == 0  # starts at the top-left corner
        if _kind(sample.sample_id) == "clean":
            for upper, lower in itertools.pairwise(polygons):
                upper_height = upper[:, 1].max() - upper[:, 1].min()
                lower_height = lower[:, 1].max() - lower[:, 1].min()
                gap = lower[:, 1].min() - upper[:, 1].max()
                assert gap >= 0.8 * max(upper_height, lower_height)


def test_clean_page_boxes_hold_all_the_ink_tightly(tiny: OcrDataset) -> None:
    for sample in (s for s in tiny.det if _kind(s.sample_id) == "clean"):
        darkness = _darkness(load_image(sample.image_path))
        polygons = _page_polygons(sample)
        inside = _polygon_mask(darkness.shape, polygons, grow=0)
        assert not (darkness[~inside] > INK_CONTRAST).any()
        for polygon in polygons:
            x0, y0 = polygon.min(axis=0).astype(int)
            x1, y1 = polygon.max(axis=0).astype(int)
            box = darkness[y0:y1, x0:x1]
            assert (box > INK_CONTRAST).mean() > 0.05
            # tight: ink touches all four sides of the box
            assert box[0].any() and box[-1].any() and box[:, 0].any() and box[:, -1].any()


def test_rotated_page_polygons_follow_the_ink(tiny: OcrDataset) -> None:
    (sample,) = (s for s in tiny.det if _kind(s.sample_id) == "rotate")
    darkness = _darkness(load_image(sample.image_path))
    polygons = _page_polygons(sample)
    assert any(abs(polygon[1, 1] - polygon[0, 1]) > 2 for polygon in polygons)  # really tilted
    ink = darkness > INK_CONTRAST
    inside = _polygon_mask(darkness.shape, polygons, grow=1)
    assert ink[inside].sum() / ink.sum() > 0.995
    for polygon in polygons:
        own = _polygon_mask(darkness.shape, [polygon], grow=0)
        assert ink[own].mean() > 0.05


def test_line_images_have_margins_and_text(tiny: OcrDataset) -> None:
    for sample in tiny.rec:
        image = load_image(sample.image_path)
        assert 28 <= image.shape[0] <= 120
        assert image.shape[1] > image.shape[0]
        darkness = _darkness(image)
        if _kind(sample.sample_id) == "clean":
            border = np.concatenate([darkness[:2].ravel(), darkness[-2:].ravel(), darkness[:, :3].ravel()])
            assert not border.any()
            assert (darkness > INK_CONTRAST).mean() > 0.05


@pytest.mark.parametrize("kind", DEGRADATIONS)
def test_each_degradation_changes_the_image(kind: str) -> None:
    rng = np.random.default_rng(0)
    clean, _, paper = datagen._render_line(rng)
    degraded, params, matrix = datagen._degrade(clean, kind, "line", rng, paper)
    assert params["kind"] == kind
    assert degraded.dtype == np.uint8 and degraded.ndim == 3
    assert (matrix is not None) == (kind == "rotate")
    if kind == "rotate":
        assert degraded.shape[0] > clean.shape[0] and degraded.shape[1] >= clean.shape[1]
    else:
        assert degraded.shape == clean.shape
        assert np.abs(degraded.astype(int) - clean.astype(int)).mean() > 0.5


def test_phrases_cut_at_punctuation_and_spaces() -> None:
    resources = datagen._resources()
    text = "今天天气很好，我们去公园散步吧！ hello world"
    assert datagen._phrases(text, 16, resources) == ["今天天气很好，我们去公园散步吧！"]
    assert datagen._phrases(text, 10, resources) == ["今天天气很好，", "我们去公园散步吧！"]
    # a character the font lacks rules its phrase out
    assert datagen._phrases("我爱你❤真的很爱", 16, resources) == []


def test_segmented_corpus_lines_are_joined_and_half_width() -> None:
    source = datagen._TextSource("seg/data.txt", (), segmented=True, sha256="")
    assert datagen._source_text(source, "１/b ９/m ９/m ８/e 年/s ，/s ＡＢ/s") == "1998年，AB"


def test_allowed_characters_need_dictionary_and_glyph() -> None:
    resources = datagen._resources()
    assert resources.allowed("中") and resources.allowed("A") and resources.allowed("¥")
    assert "❤" in resources.dictionary and not resources.allowed("❤")  # in the dictionary, not in the font
    assert not resources.allowed(" ") and not resources.allowed("\U0001f600")


def test_ensure_dataset_generates_once_and_repairs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = SynthSpec(pages_clean=1, pages_degraded=0, lines_clean=2, lines_degraded=1)
    first = ensure_dataset(spec, tmp_path)
    assert first.root == tmp_path / dataset_name(spec)
    assert [p.name for p in tmp_path.iterdir()] == [dataset_name(spec)]  # no temporary leftovers
    digests = _digests(first.root)

    def fail(*_: object) -> None:
        raise AssertionError("regenerated a complete dataset")

    with monkeypatch.context() as patch:
        patch.setattr(datagen, "_write_dataset", fail)
        assert ensure_dataset(spec, tmp_path) == first

    (first.root / "rec" / "eval-line-0001-clean.png").unlink()
    repaired = ensure_dataset(spec, tmp_path)
    assert _digests(repaired.root) == digests
    assert [p.name for p in tmp_path.iterdir()] == [dataset_name(spec)]


def test_interrupted_generation_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = SynthSpec(pages_clean=1, pages_degraded=0, lines_clean=1, lines_degraded=0)
    real_write = datagen._write_dataset

    def write_then_crash(spec: SynthSpec, root: Path) -> None:
        real_write(spec, root)
        raise KeyboardInterrupt

    monkeypatch.setattr(datagen, "_write_dataset", write_then_crash)
    with pytest.raises(KeyboardInterrupt):
        ensure_dataset(spec, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_spec_validation_and_presets() -> None:
    with pytest.raises(DatasetError, match="non-negative"):
        SynthSpec(pages_clean=-1, pages_degraded=0, lines_clean=1, lines_degraded=0)
    with pytest.raises(DatasetError, match="split"):
        SynthSpec(pages_clean=1, pages_degraded=0, lines_clean=0, lines_degraded=0, split="Eval set")
    with pytest.raises(DatasetError, match="degradations"):
        SynthSpec(pages_clean=1, pages_degraded=1, lines_clean=0, lines_degraded=0, degradations=("smudge",))
    assert preset("smoke") == SYNTH_SMOKE and preset("standard") == SYNTH_STANDARD
    with pytest.raises(UnknownNameError, match="smoke, standard"):
        preset("huge")
    assert dataset_name(SYNTH_SMOKE) != dataset_name(SYNTH_STANDARD)


def test_missing_font_package_is_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = datagen.importlib.util.find_spec
    monkeypatch.setattr(
        datagen.importlib.util,
        "find_spec",
        lambda name, *args: None if name == datagen.FONT_PACKAGE else real_find_spec(name, *args),
    )
    with pytest.raises(DatasetError, match=r"pip install noto-cjk-sans-otc"):
        datagen._Resources()


@pytest.mark.slow
def test_standard_preset_pages_are_well_formed(tmp_path: Path) -> None:
    dataset = generate(SYNTH_STANDARD, tmp_path)
    assert (len(dataset.det), len(dataset.rec)) == (80, 300)
    for sample in dataset.det:
        polygons = _page_polygons(sample)
        assert 6 <= len(polygons) <= 14
        if _kind(sample.sample_id) == "clean":
            for upper, lower in itertools.pairwise(polygons):
                tallest = max(np.ptp(upper[:, 1]), np.ptp(lower[:, 1]))
                assert lower[:, 1].min() - upper[:, 1].max() >= 0.8 * tallest
