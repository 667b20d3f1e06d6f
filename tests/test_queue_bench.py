"""``nst.benchmarks.queueing``: the throughput measure and its table rows (fast fake runners)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from nst.benchmarks.queueing import format_rows, throughput
from nst.config import StyleConfig
from nst.jobs import JobQueue, JobRequest
from nst.records import CancelToken, Progress, Result


def _requests(count: int) -> list[JobRequest]:
    image = np.zeros((8, 8, 3), np.float32)
    return [JobRequest(image, [image], StyleConfig(size=64, steps=1)) for _ in range(count)]


def _runner(fail: bool = False):
    def run(request: JobRequest, cancel: CancelToken) -> Iterator[Any]:
        yield Progress(1, 1, 1.0, {"style": 1.0}, 0.0, preview=request.content)
        if fail:
            raise RuntimeError("broken")
        yield Result(request.content, [], {}, request.config, steps_done=1)

    return run


def test_throughput_counts_finished_jobs_and_forgets_them() -> None:
    queue = JobQueue(max_running=2, runner=_runner())
    try:
        rate = throughput(queue, _requests(4))
        assert rate > 0
        assert not queue._jobs  # every benchmark job was forgotten
    finally:
        queue.shutdown()


def test_throughput_refuses_to_count_a_failed_job() -> None:
    queue = JobQueue(max_running=1, runner=_runner(fail=True))
    try:
        with pytest.raises(RuntimeError, match="a benchmark job ended failed"):
            throughput(queue, _requests(1))
    finally:
        queue.shutdown()


def test_rows_name_the_setting_and_the_units() -> None:
    report = {
        "size": 128,
        "steps": 20,
        "jobs": 6,
        "local_1_jobs_per_minute": 10.0,
        "local_2_jobs_per_minute": 12.5,
        "redis_1_jobs_per_minute": 9.75,
        "redis_2_jobs_per_minute": 12.0,
        "preview_latency_page_seconds": 0.25,
        "preview_latency_fast_seconds": 0.0123,
        "preview_latency_fast_samples": 14,
    }
    rows = {name: value for name, value, _ in format_rows(report)}
    assert rows["queue throughput, in-process, 2 slots (128 px, 20 steps, 6 jobs)"] == (
        "12.5 jobs/min"
    )
    assert rows["queue throughput, Redis, 1 worker (128 px, 20 steps, 6 jobs)"] == "9.8 jobs/min"
    assert (
        rows["preview latency, worker to client (polling every 20 ms), median of 14"] == "0.012 s"
    )
    skipped = {**report, "redis": "skipped: install redis-server"}
    for key in list(skipped):
        if key.startswith(("redis_", "preview")):
            del skipped[key]
    assert ("queue on Redis", "skipped: install redis-server", "") in format_rows(skipped)
    assert len(format_rows(skipped)) == 3
