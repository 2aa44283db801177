"""PaddleOCR label readers: round trips, subsets from a manifest, and one-line errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from portbench.errors import DatasetError
from portbench.suites.ocr.datasets import (
    DetSample,
    OcrDataset,
    RecSample,
    TextLine,
    load_image,
    load_user_dataset,
    read_det_labels,
    read_rec_labels,
)

GOOD_DET_REGIONS = [
    {"transcription": "发票号码：04412345", "points": [[10, 12], [200, 12], [200, 40], [10, 40]]},
    {"transcription": "###", "points": [[5.5, 50], [60, 52.25], [58, 70]]},
]


def _write_image(path: Path, value: int = 255) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.full((20, 30, 3), value, dtype=np.uint8)
    assert cv2.imwrite(str(path), image)


@pytest.fixture
def user_dir(tmp_path: Path) -> Path:
    """A small PaddleOCR-style dataset: two detection images, two recognition crops."""
    for name in ("imgs/a.png", "imgs/b.png", "crops/1.png", "crops/2.png"):
        _write_image(tmp_path / name)
    det_lines = [
        f"imgs/a.png\t{json.dumps(GOOD_DET_REGIONS, ensure_ascii=False)}",
        "imgs/b.png\t[]",
    ]
    (tmp_path / "det_gt.txt").write_text("\n".join(det_lines) + "\n", encoding="utf-8")
    rec_labels = "crops/1.png\t2024年3月15日\ncrops/2.png\tSF1234567890\n"
    (tmp_path / "rec_gt.txt").write_text(rec_labels, encoding="utf-8")
    return tmp_path


def test_det_labels_round_trip(user_dir: Path) -> None:
    samples = read_det_labels(user_dir / "det_gt.txt", user_dir)
    assert samples == [
        DetSample(
            sample_id="imgs/a.png",
            image_path=user_dir / "imgs/a.png",
            lines=(
                TextLine(((10.0, 12.0), (200.0, 12.0), (200.0, 40.0), (10.0, 40.0)), "发票号码：04412345"),
                TextLine(((5.5, 50.0), (60.0, 52.25), (58.0, 70.0)), "###", ignore=True),
            ),
            subset="user",
        ),
        DetSample("imgs/b.png", user_dir / "imgs/b.png", (), "user"),
    ]


def test_rec_labels_round_trip(user_dir: Path) -> None:
    samples = read_rec_labels(user_dir / "rec_gt.txt", user_dir, subset="mine")
    assert samples == [
        RecSample("crops/1.png", user_dir / "crops/1.png", "2024年3月15日", "mine"),
        RecSample("crops/2.png", user_dir / "crops/2.png", "SF1234567890", "mine"),
    ]


def test_rec_text_keeps_inner_spaces_and_tabs(tmp_path: Path) -> None:
    _write_image(tmp_path / "x.png")
    (tmp_path / "rec.txt").write_text("x.png\tNo. 12\tA\n", encoding="utf-8")
    assert read_rec_labels(tmp_path / "rec.txt", tmp_path)[0].text == "No. 12\tA"


def test_load_user_dataset_directory(user_dir: Path) -> None:
    dataset = load_user_dataset(user_dir)
    assert isinstance(dataset, OcrDataset)
    assert dataset.name == user_dir.name
    assert [s.sample_id for s in dataset.det] == ["imgs/a.png", "imgs/b.png"]
    assert [s.text for s in dataset.rec] == ["2024年3月15日", "SF1234567890"]
    assert dataset.subsets() == ("user",)
    assert set(dataset.manifest["labels"]) == {"det_gt.txt", "rec_gt.txt"}


def test_load_user_dataset_single_file_detects_kind(user_dir: Path) -> None:
    det_only = load_user_dataset(user_dir / "det_gt.txt")
    assert (len(det_only.det), len(det_only.rec)) == (2, 0)
    rec_only = load_user_dataset(user_dir / "rec_gt.txt")
    assert (len(rec_only.det), len(rec_only.rec)) == (0, 2)


def test_single_file_with_list_looking_text_is_recognition(tmp_path: Path) -> None:
    _write_image(tmp_path / "x.png")
    (tmp_path / "labels.txt").write_text("x.png\t[1, 2]\n", encoding="utf-8")
    dataset = load_user_dataset(tmp_path / "labels.txt")
    assert [s.text for s in dataset.rec] == ["[1, 2]"]


def test_manifest_gives_ids_and_subsets(user_dir: Path) -> None:
    samples = {
        "page-a": {"image": "imgs/a.png", "subset": "clean"},
        "page-b": {"image": "imgs/b.png", "subset": "degraded"},
        "line-1": {"image": "crops/1.png", "subset": "clean"},
        "line-2": {"image": "crops/2.png", "subset": "degraded"},
    }
    manifest = {"name": "mine", "samples": samples}
    (user_dir / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    dataset = load_user_dataset(user_dir)
    assert dataset.name == "mine"
    assert [(s.sample_id, s.subset) for s in dataset.det] == [("page-a", "clean"), ("page-b", "degraded")]
    assert [(s.sample_id, s.subset) for s in dataset.rec] == [("line-1", "clean"), ("line-2", "degraded")]
    assert [s.sample_id for s in dataset.det_in("degraded")] == ["page-b"]
    assert [s.sample_id for s in dataset.rec_in("clean")] == ["line-1"]


def test_manifest_missing_an_image_is_an_error(user_dir: Path) -> None:
    samples = {"page-a": {"image": "imgs/a.png", "subset": "clean"}}
    (user_dir / "manifest.json").write_text(json.dumps({"samples": samples}), encoding="utf-8")
    with pytest.raises(DatasetError, match=r"does not list image imgs/b\.png"):
        load_user_dataset(user_dir)


def _det_line(points: str, transcription: str = '"x"') -> str:
    return f'imgs/a.png\t[{{"transcription": {transcription}, "points": {points}}}]'


TRIANGLE = "[[0, 0], [1, 0], [1, 1]]"
BAD_DET_LINES = {
    "no tab": ("imgs/a.png [] ", "no tab"),
    "bad json": ("imgs/a.png\t[{'transcription': 'x'}]", "not valid JSON"),
    "not a list": ('imgs/a.png\t{"transcription": "x"}', "JSON list"),
    "region not object": ("imgs/a.png\t[[1, 2]]", "not a JSON object"),
    "no points": ('imgs/a.png\t[{"transcription": "x"}]', "no 'points'"),
    "no transcription": (f'imgs/a.png\t[{{"points": {TRIANGLE}}}]', "no 'transcription'"),
    "transcription not text": (_det_line(TRIANGLE, transcription="5"), "string"),
    "two points": (_det_line("[[0, 0], [1, 0]]"), "at least 3"),
    "points not pairs": (_det_line("[0, 0, 1, 0, 1, 1]"), "at least 3"),
    "point of three": (_det_line("[[0, 0, 0], [1, 0], [1, 1]]"), "pairs"),
    "text coordinate": (_det_line('[["0", 0], [1, 0], [1, 1]]'), "number"),
    "bool coordinate": (_det_line("[[true, 0], [1, 0], [1, 1]]"), "number"),
    "nan coordinate": (_det_line("[[NaN, 0], [1, 0], [1, 1]]"), "number"),
    "missing image": ("imgs/nope.png\t[]", "does not exist"),
    "empty path": ("\t[]", "empty image path"),
    "duplicate image": ("imgs/b.png\t[]", "listed twice"),
}


@pytest.mark.parametrize("case", sorted(BAD_DET_LINES))
def test_malformed_det_line_names_file_and_line(user_dir: Path, case: str) -> None:
    bad_line, reason = BAD_DET_LINES[case]
    label_file = user_dir / "det_bad.txt"
    # line 2 is blank: numbering must still count it, so the bad line is line 4
    label_file.write_text(f"imgs/a.png\t[]\n\nimgs/b.png\t[]\n{bad_line}\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=reason) as raised:
        read_det_labels(label_file, user_dir)
    assert f"{label_file}:4:" in str(raised.value)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        ("crops/1.png", "no tab"),
        ("crops/1.png\t", "empty transcription"),
        ("crops/9.png\tx", "does not exist"),
    ],
)
def test_malformed_rec_line_names_file_and_line(user_dir: Path, bad_line: str, reason: str) -> None:
    label_file = user_dir / "rec_bad.txt"
    label_file.write_text(f"crops/2.png\tok\n{bad_line}\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=reason) as raised:
        read_rec_labels(label_file, user_dir)
    assert f"{label_file}:2:" in str(raised.value)


def test_label_file_that_is_not_utf8(user_dir: Path) -> None:
    label_file = user_dir / "latin1.txt"
    label_file.write_bytes("crops/1.png\tcafé\n".encode("latin-1"))
    with pytest.raises(DatasetError, match="not UTF-8"):
        read_rec_labels(label_file, user_dir)


def test_dataset_paths_that_hold_no_labels(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_user_dataset(tmp_path / "missing")
    with pytest.raises(DatasetError, match=r"neither det_gt\.txt nor rec_gt\.txt"):
        load_user_dataset(tmp_path)
    (tmp_path / "empty.txt").write_text("\n\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="holds no labels"):
        load_user_dataset(tmp_path / "empty.txt")


def test_load_image_reads_bgr(tmp_path: Path) -> None:
    image = np.zeros((4, 5, 3), dtype=np.uint8)
    image[..., 0] = 200  # blue channel in OpenCV's BGR order
    cv2.imwrite(str(tmp_path / "blue.png"), image)
    loaded = load_image(tmp_path / "blue.png")
    assert loaded.shape == (4, 5, 3)
    assert loaded.dtype == np.uint8
    assert loaded[0, 0].tolist() == [200, 0, 0]


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n truncated"])
def test_load_image_rejects_non_images(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "fake.png"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=r"fake\.png is not a readable image$"):
        load_image(path)


def test_load_image_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="is not a readable image"):
        load_image(tmp_path / "absent.png")
    with pytest.raises(DatasetError, match="is not a readable image"):
        load_image(tmp_path)


def test_every_file_of_a_user_dataset_is_data_the_cell_hashes(user_dir: Path) -> None:
    from portbench.harness.workload import TaskSpec, create_workload

    spec = TaskSpec("ocr", "det", "m", "user", {}, dataset_dir=user_dir)
    expected = sorted(
        user_dir / name
        for name in ("crops/1.png", "crops/2.png", "det_gt.txt", "imgs/a.png", "imgs/b.png", "rec_gt.txt")
    )
    assert list(create_workload("ocr").data_files(spec)) == expected
