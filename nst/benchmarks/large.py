"""The ``large`` section: painted runs at large output sizes, one scale against the default
coarse-to-fine pyramid, each in a fresh process (``python -m nst.bench --large-probe SIZE``):
seconds, seconds per step at each scale, peak RSS and the engine's memory estimate.

A run whose estimate does not fit in this machine's memory is not started: its row says so, as
the engine would. On a CPU a full default run at 2048 px takes far longer than a benchmark
should, so the steps of each kind of run are given (``--large-steps``: one scale, pyramid); the
seconds per step at each scale give the time of any plan (``projected_seconds``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nst.benchmarks.common import DEFAULTS, peak_rss_bytes
from nst.config import StyleConfig


def large_probe(
    content_path: str, style_path: str, size: int, scales: int, steps: int, base: StyleConfig
) -> dict[str, Any]:
    """One painted run in this process: seconds, per-scale seconds per step, peak RSS."""
    from nst.engine.scales import plan_scales
    from nst.front import result_of, stylize
    from nst.images import load_image

    content, style = load_image(content_path), load_image(style_path)
    config = base.replace(size=size, scales=scales, steps=steps)
    plan = plan_scales(config)
    started = time.perf_counter()
    result = result_of(stylize(content, [style], config, instant_first=False, checked=True))
    seconds = time.perf_counter() - started
    elapsed = [row["elapsed"] for row in result.history]
    per_scale = []
    for scale in plan:
        # A scale's first step also traces its functions: its pace is read from the others.
        first, last = scale.offset, scale.offset + scale.steps - 1
        pace = None
        if scale.steps >= 2 and last < len(elapsed):
            pace = (elapsed[last] - elapsed[first]) / (scale.steps - 1)
        per_scale.append({"size": scale.size, "steps": scale.steps, "seconds_per_step": pace})
    return {
        "size": size,
        "scales": len(plan),
        "steps": result.steps_done,
        "seconds": seconds,
        "timings": result.timings,
        "per_scale": per_scale,
        "peak_rss_bytes": peak_rss_bytes(),
    }


def projected_seconds(per_step: dict[int, float], plan: Sequence[tuple[int, int]]) -> float | None:
    """Seconds of the steps of ``plan`` ((size, steps) per scale) at the measured paces, or
    None where a size was not measured."""
    if any(size not in per_step for size, _ in plan):
        return None
    return sum(per_step[size] * steps for size, steps in plan)


def large_section(
    content_path: str | Path,
    style_path: str | Path,
    sizes: Sequence[int],
    steps: tuple[int, int],
    base: StyleConfig = DEFAULTS,
) -> dict[str, Any]:
    """Each size with one scale (``steps[0]`` steps) and with the default pyramid
    (``steps[1]``), each in a fresh process; then both at the default step count, projected
    from the measured paces."""
    from nst.engine.scales import plan_scales
    from nst.front import available_memory
    from nst.images import load_image
    from nst.memory import estimate_memory

    shape = load_image(content_path).shape
    rows = []
    for size in sizes:
        kinds = (("one scale", 1, steps[0]), ("pyramid", base.scales, steps[1]))
        for label, scales, count in kinds:
            config = base.replace(size=size, scales=scales, steps=count)
            row: dict[str, Any] = {
                "run": label,
                "size": size,
                "estimate_bytes": estimate_memory(config, shape),
                "available_bytes": available_memory(),
            }
            if row["estimate_bytes"] > row["available_bytes"]:
                row["error"] = "does not fit: the engine refuses it before starting"
                rows.append(row)
                continue
            command = [
                sys.executable,
                "-m",
                "nst.bench",
                "--large-probe",
                str(size),
                "--large-scales",
                str(scales),
                "--large-steps",
                f"{count},{count}",
                "--content",
                str(content_path),
                "--style",
                str(style_path),
                "--backbone",
                base.backbone,
                "--precision",
                base.precision,
            ]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                row["error"] = (done.stderr.strip().splitlines() or ["no output"])[-1]
            else:
                row.update(json.loads(done.stdout.strip().splitlines()[-1]))
            rows.append(row)
    paces = {
        scale["size"]: scale["seconds_per_step"]
        for row in rows
        for scale in row.get("per_scale", [])
        if scale["seconds_per_step"] is not None
    }
    projected = {}
    for size in sizes:
        default = base.replace(size=size)
        projected[str(size)] = {
            "one scale": projected_seconds(paces, [(size, default.steps)]),
            "pyramid": projected_seconds(
                paces, [(scale.size, scale.steps) for scale in plan_scales(default)]
            ),
        }
    return {"runs": rows, "seconds_per_step": paces, "projected_seconds": projected}


def format_rows(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(measure, value, target) rows for the benchmark table: each run's time and peak memory
    against the engine's estimate, then the projections at the default step count."""
    rows = []
    for run in report["runs"]:
        name = f"large {run['size']} px, {run['run']}"
        estimate = f"estimate {run['estimate_bytes'] / 2**30:.2f} GiB"
        if "error" in run:
            rows.append((name, f"{run['error']} ({estimate})", ""))
            continue
        rows.append(
            (
                f"{name}, {run['steps']} steps",
                f"{run['seconds']:.1f} s, peak RSS {run['peak_rss_bytes'] / 2**30:.2f} GiB "
                f"({estimate})",
                "",
            )
        )
    for size, projected in report["projected_seconds"].items():
        cells = [
            f"{label} {seconds:.0f} s" if seconds is not None else f"{label} not measured"
            for label, seconds in projected.items()
        ]
        rows.append((f"large {size} px at the default steps, projected", ", ".join(cells), ""))
    return rows
