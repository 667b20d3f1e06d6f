"""How long a painted run will take on this machine, said before it starts.

A step costs about its scale's pixels times the cost of one loss-and-gradient per pixel
(L-BFGS's line search now and then takes a second one). That cost is the *pace*: seconds per
megapixel-evaluation, one for the plain computation and one for the tiled one of print sizes
(``nst.engine.tiles``). Until a run has finished on this machine the pace is the one measured
on a CPU of the same kind (``python -m nst.bench --only large``, docs/benchmarks.md); each
finished run then records its own (``record``) in the user's cache folder, so the next
estimate is this machine's. Nothing here needs TensorFlow: the web tier estimates a run before
a worker takes it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nst.config import StyleConfig
from nst.cpu import cpu_kernels, cpu_precision
from nst.images import working_shape
from nst.plan import is_tiled, plan_scales

logger = logging.getLogger(__name__)

EVALUATIONS_PER_STEP = {"lbfgs": 1.1, "adam": 1.0}
# Seconds per megapixel of one loss-and-gradient of the default VGG19 objective: (plain,
# tiled), by oneDNN's kernels and the precision ``auto`` takes there, on 2 cores. AVX-512 in
# float32 was measured with the content at block5_conv2 (``python -m nst.bench --only large``,
# docs/benchmarks.md "Print sizes", with its CPU) and scaled to the default content layer,
# block3_conv1: plain by the two objectives' paces at 512 px measured in one session, tiled by
# the multiply-adds of its content pass (docs/benchmarks.md, "Cheaper evaluations"); the other
# CPUs are scaled from it by the default 512-px run's time on them (README, Speed). A finished
# run here replaces them.
SECONDS_PER_MEGAPIXEL = {
    ("avx512", "float32"): (2.8, 4.8),
    ("avx512", "bfloat16"): (1.3, 2.3),
    ("avx2", "float32"): (8.4, 14.4),
    ("avx2", "bfloat16"): (8.4, 14.4),
}
# A backbone's cost per pixel against VGG19's (multiply-adds to the default layers: VGG16 has
# the same layers up to block3_conv1; ResNet50 goes to its fourth stage).
BACKBONE_COST = {"vgg19": 1.0, "vgg16": 1.0, "resnet50": 0.9}
PACE_FILE_NAME = "pace.json"
# Scales smaller than this (megapixel-evaluations per step) are all overhead: their pace would
# promise a large picture far too much time (the start-up warm-up's 181-px run is one).
SMALLEST_MEASURED_MEGAPIXELS = 0.15

_lock = threading.Lock()


def pace_file() -> Path:
    """Where the paces measured here are kept: ``NST_PACE_FILE``, or the cache folder."""
    override = os.environ.get("NST_PACE_FILE", "").strip()
    if override:
        return Path(override)
    from nst.instant.networks import cache_dir

    return cache_dir() / PACE_FILE_NAME


def _key(config: StyleConfig) -> str:
    return f"{config.backbone}/{config.optimizer}/{cpu_precision(config.precision)}"


def _measured() -> dict[str, Any]:
    try:
        return json.loads(pace_file().read_text())
    except (OSError, ValueError):
        return {}


def paces(config: StyleConfig) -> tuple[float, float]:
    """(plain, tiled) seconds per megapixel-evaluation of ``config``'s objective here."""
    kept = _measured().get(_key(config), {})
    plain, tiled = SECONDS_PER_MEGAPIXEL[cpu_kernels(), cpu_precision(config.precision)]
    cost = BACKBONE_COST.get(config.backbone, 1.0)
    return float(kept.get("plain", plain * cost)), float(kept.get("tiled", tiled * cost))


def scale_work(
    config: StyleConfig, content_shape: Sequence[int], *, warm_start: bool = False
) -> list[tuple[int, float, bool]]:
    """Per scale of the run: its steps, megapixel-evaluations per step, and whether it is
    tiled."""
    evaluations = EVALUATIONS_PER_STEP.get(config.optimizer, 1.0)
    rows = []
    for scale in plan_scales(config, warm_start=warm_start):
        height, width = working_shape(*content_shape[:2], scale.size)
        pixels = height * width
        rows.append((scale.steps, evaluations * pixels / 1e6, is_tiled(config, height, width)))
    return rows


def estimate_seconds(
    config: StyleConfig, content_shape: Sequence[int], *, warm_start: bool = False
) -> float:
    """Seconds the optimizer's steps of a run of ``config`` will take here."""
    plain, tiled = paces(config)
    return sum(
        steps * work * (tiled if is_tiled else plain)
        for steps, work, is_tiled in scale_work(config, content_shape, warm_start=warm_start)
    )


def record(config: StyleConfig, content_shape: Sequence[int], elapsed: Sequence[float]) -> None:
    """Keep this machine's pace from a finished run: ``elapsed`` are the seconds at each step
    (the run's history). Each kind's pace is read off its largest scale with at least two
    steps, from the second step on (the first also traces the scale's functions), and of
    at least ``SMALLEST_MEASURED_MEGAPIXELS``."""
    found: dict[str, float] = {}
    offset = 0
    for steps, work, tiled in scale_work(config, content_shape):
        first, last = offset, offset + steps - 1
        offset += steps
        if steps < 2 or last >= len(elapsed) or work < SMALLEST_MEASURED_MEGAPIXELS:
            continue
        pace = (elapsed[last] - elapsed[first]) / ((steps - 1) * work)
        if math.isfinite(pace) and pace > 0:
            found["tiled" if tiled else "plain"] = pace  # later scales are larger
    if not found:
        return
    with _lock:
        kept = _measured()
        kept[_key(config)] = {**kept.get(_key(config), {}), **found}
        path = pace_file()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(".tmp")
            temporary.write_text(json.dumps(kept, indent=1, sort_keys=True))
            temporary.replace(path)
        except OSError:
            logger.warning("Could not keep this machine's pace in %s.", path, exc_info=True)
