"""matplotlib charts of a comparison as inline SVG strings (no JavaScript, no network).

Every chart has a title, labelled axes with units, and is drawn from the frames of
:mod:`portbench.reports.frame` (raw samples, not summaries, where the results keep them). Text is drawn
as paths (``svg.fonttype = "path"``): the SVG needs no font on the reader's machine, and no user
string reaches the SVG as markup (matplotlib only writes it into escaped comments).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pandas as pd

from portbench.errors import PortbenchError

FAIL_COLOUR = "#c62828"
PASS_COLOUR = "#2e7d32"
OTHER_COLOUR = "#757575"


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise PortbenchError("--html needs matplotlib and jinja2: pip install 'portbench[report]'") from None
    matplotlib.use("Agg")
    matplotlib.rcParams.update(
        {
            "svg.fonttype": "path",
            "svg.hashsalt": "portbench",  # stable element ids: the same results give the same file
            "font.size": 9,
            "axes.titlesize": 10,
        }
    )
    _add_cjk_font(matplotlib)
    import matplotlib.pyplot as plt

    return plt


def _add_cjk_font(matplotlib: Any) -> None:
    """Chinese model or host names would draw as empty boxes in DejaVu: fall back to Noto Sans CJK,
    which the OCR workload already installs (noto-cjk-sans-otc)."""
    spec = find_spec("noto_cjk_sans_otc")
    if spec is None or not spec.submodule_search_locations:
        return
    font = Path(next(iter(spec.submodule_search_locations))) / "NotoSansCJK-Regular.ttc"
    if not font.is_file():
        return
    from matplotlib import font_manager

    try:
        font_manager.fontManager.addfont(str(font))
    except (OSError, RuntimeError, ValueError):
        return
    name = font_manager.FontProperties(fname=str(font)).get_name()
    matplotlib.rcParams["font.sans-serif"] = ["DejaVu Sans", name]


def _svg(fig: Any) -> str:
    plt = _pyplot()
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # drop the XML prolog and DOCTYPE: inline SVG in HTML


def key_label(row: Any) -> str:
    """``ocr/det ppocrv4-mobile-det openvino fp32 single-stream``: one cell key on one line. The
    runtime is part of the key: Paddle Inference and OpenVINO on one CPU are two cells."""
    return (
        f"{row['workload']}/{row['task']} {row['model']} {row['runtime']} {row['precision']} "
        f"{row['scenario']}"
    )


def _wrap(text: str, width: int = 28) -> str:
    words, lines, line = text.split(" "), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    return "\n".join(lines)


def latency_distribution(samples: pd.DataFrame, title: str) -> str:
    """Box plot of one cell's raw headline latencies, one box per platform."""
    plt = _pyplot()
    groups = [(p, g["latency_ms"].to_numpy()) for p, g in samples.groupby("platform", sort=False)]
    fig, ax = plt.subplots(figsize=(6.4, 0.6 + 0.55 * max(1, len(groups))))
    ax.boxplot([values for _, values in groups], orientation="horizontal", widths=0.6, showfliers=True)
    ax.set_yticks(range(1, len(groups) + 1), [_wrap(str(p)) for p, _ in groups])
    ax.invert_yaxis()
    ax.set_xlabel("latency per query (ms)")
    ax.set_title(f"Latency distribution: {title}")
    ax.grid(axis="x", alpha=0.3)
    return _svg(fig)


def throughput_chart(cells: pd.DataFrame) -> str:
    """Throughput per cell key and platform, with the 95% interval over trials as error bars."""
    plt = _pyplot()
    data = cells[cells["throughput_samples_per_s"].notna()]
    keys = list(dict.fromkeys(key_label(r) for _, r in data.iterrows()))
    platforms = list(dict.fromkeys(data["column"]))
    height = 0.8 / max(1, len(platforms))
    fig, axes = plt.subplots(
        len(keys), 1, figsize=(6.8, 0.9 + len(keys) * (0.75 + 0.3 * len(platforms))), squeeze=False
    )
    for ax, key in zip(axes[:, 0], keys, strict=True):
        rows = data[[key_label(r) == key for _, r in data.iterrows()]]
        for index, platform in enumerate(platforms):
            row = rows[rows["column"] == platform]
            if row.empty:
                continue
            value = float(row["throughput_samples_per_s"].iloc[0])
            low, high = row["throughput_ci95_low"].iloc[0], row["throughput_ci95_high"].iloc[0]
            err = None if pd.isna(low) else [[value - float(low)], [float(high) - value]]
            ax.barh(
                index * height,
                value,
                height=height * 0.9,
                xerr=err,
                capsize=3,
                label=_wrap(platform, 40),
                color=f"C{index}",
            )
        ax.set_yticks([])
        ax.set_title(key, loc="left", fontsize=8)
        ax.set_xlabel("throughput (samples/s), bars: 95% interval over trials")
        ax.grid(axis="x", alpha=0.3)
    axes[0, 0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7)
    fig.suptitle("Throughput with its 95% interval")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()))  # half an inch for the title
    return _svg(fig)


def speedup_heatmap(cells: pd.DataFrame, baseline: str) -> str:
    """Throughput over the baseline's, platform × cell key; log-scaled colour centred on 1×."""
    plt = _pyplot()
    from matplotlib.colors import LogNorm

    data = cells[cells["speedup_vs_baseline"].notna()]
    keys = list(dict.fromkeys(key_label(r) for _, r in data.iterrows()))
    platforms = list(dict.fromkeys(data["column"]))
    # Cells down, platforms across: a suite has many more cells than a comparison has hosts, and a
    # cell's label reads on one line there (30 cells across made the labels unreadably small).
    grid = [[math.nan] * len(platforms) for _ in keys]
    for _, row in data.iterrows():
        grid[keys.index(key_label(row))][platforms.index(row["column"])] = float(row["speedup_vs_baseline"])
    finite = [v for line in grid for v in line if not math.isnan(v) and v > 0]
    spread = max([abs(math.log(v)) for v in finite] + [math.log(1.25)])
    fig, ax = plt.subplots(figsize=(5.2 + 1.3 * len(platforms), 1.6 + 0.32 * len(keys)))
    image = ax.imshow(grid, cmap="RdYlGn", norm=LogNorm(math.exp(-spread), math.exp(spread)), aspect="auto")
    for i, line in enumerate(grid):
        for j, value in enumerate(line):
            ax.text(
                j, i, "n/a" if math.isnan(value) else f"{value:.2f}×", ha="center", va="center", fontsize=8
            )
    ax.set_yticks(range(len(keys)), keys, fontsize=7)
    ax.set_xticks(range(len(platforms)), [_wrap(p, 24) for p in platforms], fontsize=7)
    ax.xaxis.tick_top()
    ax.set_ylabel("cell (workload/task model runtime precision scenario)")
    ax.set_xlabel("platform")
    ax.set_title(f"Throughput speed-up against the baseline ({_wrap(baseline, 60)})")
    from matplotlib.ticker import FuncFormatter, NullFormatter

    bar = fig.colorbar(image, ax=ax, label="speed-up (× baseline throughput)")
    times = FuncFormatter(lambda value, _: f"{value:.2g}×")
    bar.set_ticks([math.exp(spread * f) for f in (-1.0, -0.5, 0.0, 0.5, 1.0)])
    bar.ax.yaxis.set_major_formatter(times)
    bar.ax.yaxis.set_minor_formatter(NullFormatter())  # log minor ticks: labelled, they overlap
    return _svg(fig)


def precision_chart(rows: pd.DataFrame) -> str:
    """Lower-precision speed-up against FP32 beside the parity verdict: failing cells red, hatched
    and labelled, so a fast but failing cell is never read as a win."""
    plt = _pyplot()
    labels = [f"{r['column']}: {key_label(r)}" for _, r in rows.iterrows()]
    fig, ax = plt.subplots(figsize=(7.0, 0.9 + 0.42 * len(labels)))
    for index, (_, row) in enumerate(rows.iterrows()):
        verdict = row["parity_verdict"]
        failing = verdict == "fail"
        colour = FAIL_COLOUR if failing else PASS_COLOUR if verdict == "pass" else OTHER_COLOUR
        speed = float(row["speedup_vs_fp32"])
        ax.barh(index, speed, color=colour, hatch="//" if failing else None, edgecolor="black", linewidth=0.4)
        mark = "FAILS PARITY" if failing else str(verdict or "no verdict")
        ax.text(speed, index, f" {speed:.2f}× · {mark}", va="center", fontsize=7)
    ax.axvline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_yticks(range(len(labels)), [_wrap(label, 48) for label in labels], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("speed-up against FP32 on the same platform (×); dashed: 1×")
    ax.set_title("INT8 / BF16 / FP16 speed-up and parity verdict (red, hatched: fails parity)")
    ax.margins(x=0.35)
    return _svg(fig)


def stage_chart(stages: pd.DataFrame, title: str) -> str:
    """Stacked bars: mean time per pipeline stage, one bar per platform."""
    plt = _pyplot()
    platforms = list(dict.fromkeys(stages["platform"]))
    names = list(dict.fromkeys(stages["stage"]))
    fig, ax = plt.subplots(figsize=(6.8, 0.9 + 0.5 * len(platforms)))
    left = [0.0] * len(platforms)
    for index, stage in enumerate(names):
        values = []
        for platform in platforms:
            match = stages[(stages["platform"] == platform) & (stages["stage"] == stage)]
            values.append(float(match["mean_ms"].iloc[0]) if len(match) else 0.0)
        ax.barh(range(len(platforms)), values, left=left, label=stage, color=f"C{index % 10}")
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.set_yticks(range(len(platforms)), [_wrap(p, 36) for p in platforms], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("mean time per sample (ms), stacked by stage")
    ax.set_title(f"Stage breakdown: {title}")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=min(4, len(names)))
    return _svg(fig)


def offline_curves(sweeps: pd.DataFrame, title: str) -> str:
    """Throughput against batch size, one line per platform."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 3.4))
    for index, (platform, group) in enumerate(sweeps.groupby("platform", sort=False)):
        group = group.sort_values("batch_size")
        ax.plot(
            group["batch_size"],
            group["samples_per_s"],
            marker="o",
            label=_wrap(str(platform), 40),
            color=f"C{index}",
        )
    ax.set_xscale("log", base=2)
    batch_sizes: Sequence[int] = sorted({int(b) for b in sweeps["batch_size"]})
    ax.set_xticks(list(batch_sizes), [str(b) for b in batch_sizes])
    ax.set_xlabel("batch size (samples per query)")
    ax.set_ylabel("throughput (samples/s)")
    ax.set_title(f"Offline throughput by batch size: {title}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _svg(fig)
