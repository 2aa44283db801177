"""OCR evaluation data in PaddleOCR's label formats.

Detection labels, one image per line::

    relative/path.png<TAB>[{"transcription": "...", "points": [[x, y], ...]}, ...]

where the transcription ``###`` marks a don't-care region. Recognition labels::

    relative/path.png<TAB>text

Image paths are relative to the directory holding the label file (absolute paths are accepted too).
PaddleOCR's format has no notion of subsets; a dataset directory may carry a ``manifest.json`` whose
``samples`` map each sample id to its image and subset (the generated set in
:mod:`portbench.suites.ocr.datagen` writes one). Without it every sample belongs to subset ``user``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from portbench.errors import DatasetError

DET_LABEL_FILE = "det_gt.txt"
REC_LABEL_FILE = "rec_gt.txt"
MANIFEST_FILE = "manifest.json"
IGNORE_TRANSCRIPTION = "###"
USER_SUBSET = "user"

Point = tuple[float, float]


@dataclass(frozen=True)
class TextLine:
    """One annotated text region: a polygon (clockwise from top-left for generated data) and its text."""

    points: tuple[Point, ...]
    text: str
    ignore: bool = False


@dataclass(frozen=True)
class DetSample:
    """An image with every text line in it (detection / end-to-end ground truth)."""

    sample_id: str
    image_path: Path
    lines: tuple[TextLine, ...]
    subset: str


@dataclass(frozen=True)
class RecSample:
    """A single-line image and its transcription (recognition ground truth)."""

    sample_id: str
    image_path: Path
    text: str
    subset: str


@dataclass(frozen=True)
class OcrDataset:
    """Detection and recognition samples of one dataset, plus what is known about its origin."""

    name: str
    root: Path
    det: tuple[DetSample, ...]
    rec: tuple[RecSample, ...]
    manifest: Mapping[str, Any] = field(default_factory=dict)

    def subsets(self) -> tuple[str, ...]:
        """Subset names present in the dataset, sorted."""
        return tuple(sorted({s.subset for s in self.det} | {s.subset for s in self.rec}))

    def det_in(self, subset: str) -> tuple[DetSample, ...]:
        return tuple(sample for sample in self.det if sample.subset == subset)

    def rec_in(self, subset: str) -> tuple[RecSample, ...]:
        return tuple(sample for sample in self.rec if sample.subset == subset)


def load_image(path: Path) -> np.ndarray:
    """Read an image as BGR uint8 (H, W, 3); anything unreadable raises :class:`DatasetError`."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DatasetError(f"{path} is not a readable image ({error.strerror or error})") from None
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None:
        raise DatasetError(f"{path} is not a readable image")
    return image


def read_det_labels(label_file: Path, image_root: Path, subset: str = USER_SUBSET) -> list[DetSample]:
    """Parse a PaddleOCR detection label file; sample ids are the image paths as written."""
    samples: list[DetSample] = []
    seen: set[str] = set()
    for line_number, relative, payload in _label_lines(label_file):
        where = f"{label_file}:{line_number}"
        try:
            regions = json.loads(payload)
        except json.JSONDecodeError as error:
            raise DatasetError(f"{where}: second column is not valid JSON ({error.msg})") from None
        if not isinstance(regions, list):
            raise DatasetError(f"{where}: second column must be a JSON list of text regions")
        lines = tuple(
            _parse_region(region, f"{where}: region {index}") for index, region in enumerate(regions)
        )
        samples.append(
            DetSample(
                sample_id=_unique_id(relative, seen, where),
                image_path=_existing_image(image_root, relative, where),
                lines=lines,
                subset=subset,
            )
        )
    return samples


def read_rec_labels(label_file: Path, image_root: Path, subset: str = USER_SUBSET) -> list[RecSample]:
    """Parse a PaddleOCR recognition label file; sample ids are the image paths as written."""
    samples: list[RecSample] = []
    seen: set[str] = set()
    for line_number, relative, text in _label_lines(label_file):
        where = f"{label_file}:{line_number}"
        if not text:
            raise DatasetError(f"{where}: empty transcription")
        samples.append(
            RecSample(
                sample_id=_unique_id(relative, seen, where),
                image_path=_existing_image(image_root, relative, where),
                text=text,
                subset=subset,
            )
        )
    return samples


def load_user_dataset(path: Path) -> OcrDataset:
    """Load a directory holding ``det_gt.txt`` and/or ``rec_gt.txt``, or a single label file.

    A single file is read as detection labels when its first label's second column is a JSON list
    of objects, else as recognition labels.
    """
    if path.is_dir():
        root = path
        det_file: Path | None = path / DET_LABEL_FILE if (path / DET_LABEL_FILE).is_file() else None
        rec_file: Path | None = path / REC_LABEL_FILE if (path / REC_LABEL_FILE).is_file() else None
        if det_file is None and rec_file is None:
            raise DatasetError(f"{path} holds neither {DET_LABEL_FILE} nor {REC_LABEL_FILE}")
        name = path.resolve().name
    elif path.is_file():
        root = path.parent
        det_file, rec_file = (path, None) if _looks_like_det_labels(path) else (None, path)
        name = path.stem
    else:
        raise DatasetError(f"dataset {path} does not exist")

    det = read_det_labels(det_file, root) if det_file else []
    rec = read_rec_labels(rec_file, root) if rec_file else []
    label_files = [label for label in (det_file, rec_file) if label is not None]

    manifest_path = root / MANIFEST_FILE
    manifest = _read_manifest(manifest_path) if path.is_dir() and manifest_path.is_file() else None
    if manifest is not None and isinstance(manifest.get("samples"), Mapping):
        det, rec = _apply_manifest(manifest, manifest_path, det, rec)
        name = str(manifest.get("name", name))
    else:
        manifest = {
            "source": USER_SUBSET,
            "labels": {label.name: _sha256(label) for label in label_files},
        }
    return OcrDataset(name=name, root=root, det=tuple(det), rec=tuple(rec), manifest=manifest)


def _label_lines(label_file: Path) -> list[tuple[int, str, str]]:
    """(line number, image path, second column) of every non-blank line."""
    try:
        content = label_file.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise DatasetError(f"cannot read label file {label_file} ({error.strerror or error})") from None
    except UnicodeDecodeError:
        raise DatasetError(f"label file {label_file} is not UTF-8 text") from None
    rows = []
    for line_number, raw in enumerate(content.splitlines(), start=1):
        if not raw.strip():
            continue
        relative, tab, rest = raw.partition("\t")
        if not tab:
            raise DatasetError(f"{label_file}:{line_number}: expected 'image<TAB>label', found no tab")
        if not relative.strip():
            raise DatasetError(f"{label_file}:{line_number}: empty image path")
        rows.append((line_number, relative.strip(), rest))
    return rows


def _parse_region(region: object, where: str) -> TextLine:
    if not isinstance(region, dict):
        raise DatasetError(f"{where} is not a JSON object")
    if "transcription" not in region:
        raise DatasetError(f"{where} has no 'transcription'")
    if "points" not in region:
        raise DatasetError(f"{where} has no 'points'")
    text = region["transcription"]
    if not isinstance(text, str):
        raise DatasetError(f"{where}: 'transcription' must be a string")
    points = _parse_points(region["points"], where)
    return TextLine(points=points, text=text, ignore=text == IGNORE_TRANSCRIPTION)


def _parse_points(points: object, where: str) -> tuple[Point, ...]:
    problem = f"{where}: 'points' must be a list of at least 3 [x, y] number pairs"
    if not isinstance(points, list) or len(points) < 3:
        raise DatasetError(problem)
    parsed = []
    for point in points:
        if not (isinstance(point, list) and len(point) == 2 and all(_is_number(value) for value in point)):
            raise DatasetError(problem)
        parsed.append((float(point[0]), float(point[1])))
    return tuple(parsed)


def _is_number(value: object) -> bool:
    # bool is an int subclass; JSON true/false are not coordinates.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _unique_id(relative: str, seen: set[str], where: str) -> str:
    sample_id = Path(relative).as_posix()
    if sample_id in seen:
        raise DatasetError(f"{where}: image {relative} is listed twice")
    seen.add(sample_id)
    return sample_id


def _existing_image(image_root: Path, relative: str, where: str) -> Path:
    image_path = image_root / relative
    if not image_path.is_file():
        raise DatasetError(f"{where}: image {image_path} does not exist")
    return image_path


def _looks_like_det_labels(label_file: Path) -> bool:
    rows = _label_lines(label_file)
    if not rows:
        raise DatasetError(f"label file {label_file} holds no labels")
    try:
        second_column = json.loads(rows[0][2])
    except json.JSONDecodeError:
        return False
    return isinstance(second_column, list) and all(isinstance(item, dict) for item in second_column)


def _read_manifest(manifest_path: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f"{manifest_path} is not readable JSON ({error})") from None
    return manifest if isinstance(manifest, dict) else None


def _apply_manifest(
    manifest: Mapping[str, Any], manifest_path: Path, det: list[DetSample], rec: list[RecSample]
) -> tuple[list[DetSample], list[RecSample]]:
    """Rename samples to the manifest's ids and give them its subsets."""
    by_image: dict[str, tuple[str, str]] = {}
    for sample_id, entry in manifest["samples"].items():
        if not (isinstance(entry, Mapping) and isinstance(entry.get("image"), str)):
            raise DatasetError(f"{manifest_path}: sample {sample_id!r} has no 'image'")
        by_image[Path(entry["image"]).as_posix()] = (str(sample_id), str(entry.get("subset", USER_SUBSET)))

    def lookup(image_id: str) -> tuple[str, str]:
        if image_id not in by_image:
            raise DatasetError(f"{manifest_path} does not list image {image_id}")
        return by_image[image_id]

    det = [replace(s, sample_id=lookup(s.sample_id)[0], subset=lookup(s.sample_id)[1]) for s in det]
    rec = [replace(s, sample_id=lookup(s.sample_id)[0], subset=lookup(s.sample_id)[1]) for s in rec]
    return det, rec


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
