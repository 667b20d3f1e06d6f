"""Soak test: many sessions, several runs each, through the real pages; reports memory.

``python -m tests.soak`` opens 20 sessions of the app with Streamlit's AppTest (each keeps its
own session state and gallery, all in this one process, as on a server), uploads a photo and a
painting in each, and runs 3 rounds in which every session stylizes once at a small size. It
prints the process's resident memory (RSS) after the first round and after the last, and exits
with status 1 if it grew by more than ``--max-growth`` percent in between: the first round pays
for TensorFlow, the model and the traced steps; later rounds must only add results, which the
galleries' caps bound.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import psutil
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
STYLE = ROOT / "assets" / "styles" / "mosaic.png"


def _photo(seed: int, width: int = 320, height: int = 240) -> bytes:
    """A JPEG with smooth gradients, edges and grain, different per session."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width] / max(width, height)
    rgb = np.stack([xs, ys, 1.0 - xs * ys], axis=-1)
    for _ in range(6):
        x0, y0 = rng.integers(0, width - 40), rng.integers(0, height - 40)
        rgb[y0 : y0 + rng.integers(20, 80), x0 : x0 + rng.integers(20, 80)] = rng.random(3)
    rgb = np.clip(rgb + rng.normal(0.0, 0.03, rgb.shape), 0.0, 1.0)
    buffer = io.BytesIO()
    Image.fromarray((rgb * 255).astype(np.uint8)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _rss() -> int:
    gc.collect()
    return psutil.Process().memory_info().rss


def _open_session(index: int, timeout: float) -> object:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=timeout)
    at.run()
    at.file_uploader(key="content_upload").set_value(
        (f"photo{index}.jpg", _photo(index), "image/jpeg")
    )
    at.file_uploader(key="style_upload").set_value(
        [("mosaic.png", STYLE.read_bytes(), "image/png")]
    )
    at.run()
    _check(at, index)
    return at


def _stylize(at: object, index: int, size: int, steps: int) -> None:
    at.slider(key="size").set_value(size)
    at.slider(key="steps").set_value(steps)
    at.button(key="stylize").click()
    at.run()
    _check(at, index)


def _check(at: object, index: int) -> None:
    if at.exception:
        raise RuntimeError(f"session {index}: {at.exception[0].message}")
    errors = [element.value for element in at.error]
    if errors:
        raise RuntimeError(f"session {index}: {errors[0]}")


def soak(sessions: int, runs: int, size: int, steps: int, timeout: float) -> dict[str, float]:
    """Run the soak; returns the figures it prints."""
    from studio import gallery

    started = time.perf_counter()
    apps = [_open_session(index, timeout) for index in range(sessions)]
    rss: list[int] = []
    for round_number in range(1, runs + 1):
        for index, at in enumerate(apps):
            _stylize(at, index, size, steps)
        rss.append(_rss())
        print(
            f"round {round_number}/{runs}: {sessions} runs, RSS {rss[-1] / 2**20:.0f} MiB, "
            f"galleries {gallery.gallery_bytes() / 2**20:.1f} MiB, "
            f"{time.perf_counter() - started:.0f} s",
            flush=True,
        )
    from studio.store import get_store

    kept = sum(len(get_store().results(at.session_state["owner_key"])) for at in apps)
    if kept != sessions * runs:
        raise RuntimeError(f"expected {sessions * runs} results in the galleries, found {kept}")
    return {
        "sessions": sessions,
        "runs_per_session": runs,
        "size": size,
        "steps": steps,
        "rss_first_round_mib": round(rss[0] / 2**20, 1),
        "rss_last_round_mib": round(rss[-1] / 2**20, 1),
        "growth_percent": round(100.0 * (rss[-1] - rss[0]) / rss[0], 2),
        "seconds": round(time.perf_counter() - started, 1),
        "cpus": os.cpu_count() or 0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20, help="sessions (default 20)")
    parser.add_argument("--runs", type=int, default=3, help="runs per session (default 3)")
    parser.add_argument("--size", type=int, default=64, help="output size in px (default 64)")
    parser.add_argument("--steps", type=int, default=5, help="steps per run (default 5)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per page run")
    parser.add_argument(
        "--max-growth", type=float, default=10.0, help="allowed RSS growth in percent"
    )
    args = parser.parse_args(argv)
    if args.sessions < 1 or args.runs < 2:
        parser.error("give at least 1 session and 2 runs (growth is measured after round 1)")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    report = soak(args.sessions, args.runs, args.size, args.steps, args.timeout)
    print(json.dumps(report))
    if report["growth_percent"] > args.max_growth:
        print(
            f"RSS grew by {report['growth_percent']}% after the first round, more than "
            f"{args.max_growth}%.",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
