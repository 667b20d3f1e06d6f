"""What every section shares: the default inputs and settings, the machine's description, the
median."""

from __future__ import annotations

import os
import platform
import resource
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nst.config import StyleConfig

DEFAULT_IMAGES = Path(__file__).resolve().parents[3] / "shared" / "images"
DEFAULT_CONTENT = DEFAULT_IMAGES / "content" / "tubingen.jpg"
DEFAULT_STYLE = DEFAULT_IMAGES / "style" / "starry_night.jpg"

DEFAULTS = StyleConfig()


def load_inputs(content: str | Path, style: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The content and style images as float32 RGB in [0, 1] (read, never copied)."""
    from nst.images import load_image

    return load_image(content), load_image(style)


def machine_info() -> dict[str, Any]:
    """CPU model, core count, memory, bfloat16 support and library versions."""
    import psutil
    import tensorflow as tf

    from nst.config import weights_mode
    from nst.cpu import cpu_has_bf16, cpu_kernels, cpu_model
    from nst.engine.model import has_gpu, resolve_precision

    model = cpu_model() or platform.processor() or platform.machine()
    return {
        "cpu": model,
        "cores": os.cpu_count() or 1,
        "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
        "cpu_bf16": cpu_has_bf16(),
        "cpu_kernels": cpu_kernels(),
        "gpu": has_gpu(),
        "default_precision": resolve_precision("auto"),
        "weights": weights_mode(),
        "tensorflow": tf.__version__,
        "python": platform.python_version(),
        "load_average": [round(value, 2) for value in os.getloadavg()],
    }


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def parse_config(text: str, base: StyleConfig = DEFAULTS) -> StyleConfig:
    """``key=value,key=value`` (as on the command line) over ``base`` into a config."""
    values = dict(item.split("=", 1) for item in text.split(",") if item.strip())
    return StyleConfig(**{**base.to_dict(), **values})


def peak_rss_bytes() -> int:
    """This process's peak resident memory in bytes.

    Linux's ``VmHWM`` starts afresh with the process's own memory map; ``ru_maxrss`` would
    carry over the parent's peak through fork and exec.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux
