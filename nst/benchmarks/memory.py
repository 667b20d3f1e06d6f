"""The ``memory`` section: peak RSS of default runs at each size, each in a fresh process
(``python -m nst.bench --memory-probe SIZE``), and the largest size that fits in this machine's
memory by a linear fit in the pixel count."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nst.benchmarks.common import DEFAULTS, peak_rss_bytes
from nst.config import StyleConfig


def peak_rss_probe(
    content_path: str,
    style_path: str,
    size: int,
    precision: str,
    optimizer: str,
    base: StyleConfig = DEFAULTS,
) -> dict[str, Any]:
    """Run a few full-size steps in this process and report its peak RSS (for ``--memory``)."""
    from nst.benchmarks.scipy_lbfgs import engine_optimizer
    from nst.front import stylize
    from nst.images import load_image

    content, style = load_image(content_path), load_image(style_path)
    setting, function = engine_optimizer(optimizer)
    config = base.replace(size=size, steps=3, scales=1, precision=precision, optimizer=setting)
    # Unchecked: measure, do not refuse.
    for _ in stylize(content, [style], config, optimizer=function, checked=True):
        pass
    return {
        "size": size,
        "precision": precision,
        "optimizer": optimizer,
        "peak_rss_bytes": peak_rss_bytes(),
    }


def memory_section(
    content_path: str | Path,
    style_path: str | Path,
    sizes: Sequence[int],
    precision: str = DEFAULTS.precision,
    optimizer: str = DEFAULTS.optimizer,
    backbone: str = DEFAULTS.backbone,
) -> dict[str, Any]:
    """Peak RSS per size (each in a fresh process) and the largest size that fits here."""
    import psutil

    from nst.engine.model import resolve_precision
    from nst.images import load_image, working_shape

    precision = resolve_precision(precision)
    rows = []
    for size in sizes:
        command = [
            sys.executable,
            "-m",
            "nst.bench",
            "--memory-probe",
            str(size),
            "--precision",
            precision,
            "--optimizer",
            optimizer,
            "--content",
            str(content_path),
            "--style",
            str(style_path),
            "--backbone",
            backbone,
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            rows.append({"size": size, "error": done.stderr.strip().splitlines()[-1:]})
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        row["shape"] = list(working_shape(*load_image(content_path).shape[:2], size))
        rows.append(row)
    measured = [row for row in rows if "peak_rss_bytes" in row]
    total = psutil.virtual_memory().total
    largest = None
    if len(measured) >= 2 and len({row["size"] for row in measured}) >= 2:
        pixels = np.array([row["shape"][0] * row["shape"][1] for row in measured], float)
        peaks = np.array([row["peak_rss_bytes"] for row in measured], float)
        per_pixel, base = (float(value) for value in np.polyfit(pixels, peaks, 1))
        per_pixel = max(per_pixel, 1.0)  # tiny sizes in tests: noise can tilt the line
        aspect = measured[0]["shape"][0] / measured[0]["shape"][1]
        fits = (total - base) / per_pixel  # pixels that fit in all of this machine's memory
        largest = {
            "bytes_per_pixel": per_pixel,
            "base_bytes": base,
            "memory_bytes": total,
            "longest_side": int(math.sqrt(fits / min(aspect, 1 / aspect))),
            "square_side": int(math.sqrt(fits)),
        }
    return {"precision": precision, "optimizer": optimizer, "runs": rows, "largest": largest}
