"""The ``large`` section: the default painted run at print sizes, tiled and untiled.

Each size (``--large-sizes``, default 512, 2048 and 4096 px) runs as a whole process of its own
(``python -m nst.bench --large-probe SIZE``): the default run with print sizes computed tile by
tile (``nst.engine.tiles``), and, where the output size is tiled and the whole picture would
fit in this machine's memory, the same run computed whole. Each row gives the whole process's
seconds, its peak RSS against the engine's estimate, the seconds per step at each scale, and
the figures of the result scaled to 512 px (``nst.quality``: edges, palette, texture at the
painting's scale). With ``--revision REV`` the yardstick is that revision's default 512-px run,
a whole ``python -m nst`` process timed before and after the large runs, and every row says
its time as a multiple of it. The largest output size this machine admits for the photo is
the largest whose estimate fits in the memory available now.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nst.benchmarks.common import DEFAULTS, median, peak_rss_bytes
from nst.config import StyleConfig, field_spec

# A tile size no picture reaches: the run is computed whole at every scale.
WHOLE = 10**12
ANALYSIS_SIDE = 512  # the result is judged scaled to this longest side


def large_probe(
    content_path: str,
    style_path: str,
    size: int,
    steps: int,
    base: StyleConfig,
    tiled: bool,
    picture: str | None,
) -> dict[str, Any]:
    """One default painted run in this process: engine seconds, per-scale seconds per step,
    peak RSS and the result's figures."""
    from nst import quality
    from nst.front import result_of, stylize
    from nst.images import load_image, resize_longest, save_image
    from nst.plan import plan_scales

    content, style = load_image(content_path), load_image(style_path)
    config = base.replace(size=size, steps=steps)
    started = time.perf_counter()
    result = result_of(
        stylize(content, [style], config, checked=True, tile_pixels=None if tiled else WHOLE)
    )
    seconds = time.perf_counter() - started
    if picture:
        save_image(result.image, picture)
    elapsed = [row["elapsed"] for row in result.history]
    per_scale = []
    for scale in plan_scales(config):
        # A scale's first step also traces its functions: its pace is read from the others.
        first, last = scale.offset, scale.offset + scale.steps - 1
        pace = None
        if scale.steps >= 2 and last < len(elapsed):
            pace = (elapsed[last] - elapsed[first]) / (scale.steps - 1)
        per_scale.append({"size": scale.size, "steps": scale.steps, "seconds_per_step": pace})
    figures = quality.figures(
        resize_longest(content, ANALYSIS_SIDE), style, resize_longest(result.image, ANALYSIS_SIDE)
    )
    return {
        "engine_seconds": seconds,
        "steps": result.steps_done,
        "shape": list(result.image.shape[:2]),
        "per_scale": per_scale,
        "probe_peak_rss_bytes": peak_rss_bytes(),
        **figures,
    }


def largest_admitted(config: StyleConfig, shape: Sequence[int], available: int) -> int:
    """The largest output size whose memory estimate fits in ``available`` bytes (0: none)."""
    from nst.memory import estimate_memory

    low, high = 0, int(field_spec("size").maximum)
    while low < high:
        middle = (low + high + 1) // 2
        if estimate_memory(config.replace(size=middle), shape) <= available:
            low = middle
        else:
            high = middle - 1
    return low


def _yardstick(
    tree: Path, content_path: str, style_path: str, backbone: str, folder: Path
) -> float | None:
    """Seconds of the default 512-px run of the checkout at ``tree``, a whole process."""
    from nst.benchmarks.revision import timed_process

    picture = folder / "yardstick.png"
    command = [
        sys.executable,
        "-m",
        "nst",
        str(content_path),
        str(style_path),
        "-o",
        str(picture),
        "--size",
        "512",
        "--backbone",
        backbone,
        "--quiet",
    ]
    seconds, _, status = timed_process(command, tree)
    return seconds if status == 0 and picture.is_file() else None


def _probe_row(
    content_path: str,
    style_path: str,
    size: int,
    steps: int,
    base: StyleConfig,
    tiled: bool,
    folder: Path,
) -> dict[str, Any]:
    """One probe as a whole process: its wall seconds and peak RSS, and what it reported."""
    from nst.benchmarks.revision import THIS_CHECKOUT, timed_process

    label = "tiled" if tiled else "whole"
    report = folder / f"{size}-{label}.json"
    command = [
        sys.executable,
        "-m",
        "nst.bench",
        "--large-probe",
        str(size),
        "--large-steps",
        str(steps),
        "--large-tiled",
        "1" if tiled else "0",
        "--large-report",
        str(report),
        "--large-picture",
        str(folder / f"{size}-{label}.png"),
        "--content",
        str(content_path),
        "--style",
        str(style_path),
        "--backbone",
        base.backbone,
        "--precision",
        base.precision,
    ]
    seconds, peak, status = timed_process(command, THIS_CHECKOUT)
    row: dict[str, Any] = {"seconds": seconds, "peak_rss_bytes": peak}
    if status != 0 or not report.is_file():
        row["error"] = f"exit status {status}"
        return row
    row.update(json.loads(report.read_text()))
    return row


def large_section(
    content_path: str | Path,
    style_path: str | Path,
    sizes: Sequence[int],
    steps: int = DEFAULTS.steps,
    base: StyleConfig = DEFAULTS,
    output: str | Path | None = None,
    revision: str | None = None,
) -> dict[str, Any]:
    """Each size tiled (the default) and, where it differs and fits, whole; with
    ``revision``, the yardstick and each run's multiple of it."""
    from nst.benchmarks.revision import revision_checkout
    from nst.front import available_memory
    from nst.images import load_image
    from nst.memory import estimate_memory
    from nst.plan import is_tiled

    shape = load_image(content_path).shape
    content_path, style_path = str(content_path), str(style_path)
    with tempfile.TemporaryDirectory(prefix="nst-large-") as scratch:
        folder = Path(output) if output else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        yardsticks: list[float | None] = []

        def measure_yardstick() -> None:
            if revision is None:
                return
            with revision_checkout(revision) as tree:
                yardsticks.append(_yardstick(tree, content_path, style_path, base.backbone, folder))

        measure_yardstick()
        rows = []
        for size in sizes:
            config = base.replace(size=size, steps=steps)
            height, width = _working(shape, size)
            kinds = [True] + ([False] if is_tiled(config, height, width) else [])
            for tiled in kinds:
                row: dict[str, Any] = {
                    "size": size,
                    "run": "tiled" if tiled else "whole",
                    "estimate_bytes": estimate_memory(
                        config, shape, tile_pixels=None if tiled else WHOLE
                    ),
                    "available_bytes": available_memory(),
                }
                if row["estimate_bytes"] > row["available_bytes"]:
                    row["error"] = "does not fit: the engine refuses it before starting"
                else:
                    row.update(
                        _probe_row(content_path, style_path, size, steps, base, tiled, folder)
                    )
                rows.append(row)
        measure_yardstick()
    measured = [value for value in yardsticks if value is not None]
    yardstick = median(measured) if measured else None
    if yardstick:
        for row in rows:
            if "seconds" in row:
                row["yardstick_multiple"] = row["seconds"] / yardstick
    return {
        "revision": revision,
        "steps": steps,
        "yardstick_seconds": yardsticks,
        "runs": rows,
        "largest_admitted": largest_admitted(base.replace(steps=steps), shape, available_memory()),
        "photo_shape": list(shape[:2]),
    }


def _working(shape: Sequence[int], size: int) -> tuple[int, int]:
    from nst.images import working_shape

    return working_shape(shape[0], shape[1], size)


def format_rows(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(measure, value, target) rows for the benchmark table: per run, the whole process's time
    (and its multiple of the yardstick), the peak memory against the estimate and the figures;
    then the yardstick and the largest size admitted."""
    rows = []
    for run in report["runs"]:
        name = f"large {run['size']} px, {run['run']}"
        estimate = f"estimate {run['estimate_bytes'] / 1e9:.1f} GB"
        if "error" in run:
            rows.append((name, f"{run['error']} ({estimate})", ""))
            continue
        multiple = run.get("yardstick_multiple")
        time_text = f"{run['seconds']:.0f} s" + (f" ({multiple:.1f}x)" if multiple else "")
        figures = ""
        if "texture_at_scale" in run:
            figures = (
                f", texture {run['texture_at_scale']:.2f}, edges {run['edge_agreement']:.2f}, "
                f"palette {run['palette_shift']:.0%}"
            )
        rows.append(
            (
                f"{name}, {run['steps']} steps",
                f"{time_text}, peak {run['peak_rss_bytes'] / 1e9:.1f} GB ({estimate}){figures}",
                "",
            )
        )
    yardsticks = [value for value in report.get("yardstick_seconds", []) if value is not None]
    if yardsticks:
        rows.append(
            (
                f"yardstick: {report['revision']}'s default 512-px run",
                ", ".join(f"{value:.0f} s" for value in yardsticks),
                "",
            )
        )
    rows.append(("largest output size admitted here", f"{report['largest_admitted']} px", ""))
    return rows
