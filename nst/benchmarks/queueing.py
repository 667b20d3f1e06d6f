"""Queue figures for ``python -m nst.bench --only queue``: the in-process queue against Redis.

- Throughput: ``jobs`` identical small runs (``size`` px, ``steps`` steps) submitted at once;
  jobs per minute from the first submit to the last result, with 1 and 2 slots of the
  in-process queue and with 1 and 2 RQ workers (``python -m nst.worker``, network preloaded,
  one warm-up job each before the clock starts).
- Preview latency: seconds from the moment a worker stored a preview in Redis to the first
  ``status()`` call that returns it, for a page polling every ``studio.runs.POLL_SECONDS`` (what
  users see) and for a client polling every 20 ms (the transport alone); medians.

The Redis part starts its own ``redis-server`` on a free loopback port and stops it, with its
workers, at the end; without ``redis-server`` it is skipped with a note.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from nst.config import StyleConfig
from nst.jobs import JobQueue, JobRequest, JobState
from nst.jobs.backend import PAGE_POLL_SECONDS, JobBackend

QUEUE_SIZE = 96
QUEUE_STEPS = 10
QUEUE_JOBS = 8
# The latency run is long enough for a dozen or more previews (one a second at most).
LATENCY_STEPS = 150
FAST_POLL_SECONDS = 0.02
ROOT = Path(__file__).resolve().parents[2]


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} took more than {timeout:.0f} s")
        time.sleep(0.02)


def throughput(backend: JobBackend, requests: list[JobRequest]) -> float:
    """Jobs per minute for ``requests`` submitted at once; every job must finish DONE."""
    started = time.perf_counter()
    job_ids = [backend.submit(request, owner="bench") for request in requests]
    pending = set(job_ids)
    while pending:
        for job_id in list(pending):
            status = backend.status(job_id, owner="bench")
            if status.state.finished:
                if status.state is not JobState.DONE:
                    raise RuntimeError(f"a benchmark job ended {status.state}: {status.error}")
                pending.discard(job_id)
        time.sleep(0.02)
    minutes = (time.perf_counter() - started) / 60
    for job_id in job_ids:
        backend.forget(job_id, owner="bench")
    return len(requests) / minutes


def _requests(content: np.ndarray, style: np.ndarray, config: StyleConfig, count: int) -> list:
    return [JobRequest(content, [style], config.replace(seed=seed)) for seed in range(count)]


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisCluster:
    """A throw-away redis-server and worker processes."""

    def __init__(self, logs: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.logs = logs
        self.processes: list[subprocess.Popen[bytes]] = []
        self.server = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", ""],
            stdout=open(logs / "redis.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        from nst.jobs.redis import connect

        client = connect(self.url)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except Exception:  # not listening yet
                return False

        wait_for(answers, 30, "starting redis-server")
        client.close()

    def add_workers(self, count: int) -> None:
        from nst.jobs.redis import RedisQueue

        env = dict(os.environ, PYTHONPATH=str(ROOT), NST_QUEUE=self.url)
        for _ in range(count):
            index = len(self.processes)
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "nst.worker"],
                    cwd=ROOT,
                    env=env,
                    stdout=open(self.logs / f"worker-{index}.log", "wb"),  # noqa: SIM115
                    stderr=subprocess.STDOUT,
                )
            )
        queue = RedisQueue(self.url)
        wait_for(lambda: queue.worker_count() >= len(self.processes), 600, "starting the workers")
        queue.shutdown()

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(30)
        self.server.terminate()
        self.server.wait(10)


REDIS_MISSING = "skipped: install redis-server (apt-get install -y redis-server)"


@contextlib.contextmanager
def redis_cluster(prefix: str) -> Iterator[RedisCluster]:
    """A throw-away ``RedisCluster`` (no workers yet), its logs in a temporary folder."""
    with tempfile.TemporaryDirectory(prefix=prefix) as logs:
        cluster = RedisCluster(Path(logs))
        try:
            yield cluster
        finally:
            cluster.stop()


def preview_latency(queue: Any, request: JobRequest, poll_seconds: float) -> list[float]:
    """Seconds from each preview's store in Redis to the status call that first returns it."""
    from nst.jobs.redis import key

    job_id = queue.submit(request, owner="bench")
    seen: set[int] = set()
    delays: list[float] = []
    while True:
        status = queue.status(job_id, owner="bench")
        now = time.time()
        if status.state is JobState.RUNNING and status.preview_step not in seen:
            stored = queue.connection.hget(key(job_id), "preview_at")
            if stored is not None and status.preview is not None:
                seen.add(status.preview_step)
                delays.append(now - float(stored))
        if status.state.finished:
            break
        time.sleep(poll_seconds)
    queue.forget(job_id, owner="bench")
    return delays[1:]  # the first preview waits for the job to start


def queue_section(
    content: np.ndarray,
    style: np.ndarray,
    config: StyleConfig | None = None,
    *,
    size: int = QUEUE_SIZE,
    steps: int = QUEUE_STEPS,
    jobs: int = QUEUE_JOBS,
) -> dict[str, Any]:
    """The queue figures (see the module docstring)."""
    base = (config or StyleConfig()).replace(size=size, steps=steps, scales=1, preview_every=1)
    requests = _requests(content, style, base, jobs)
    report: dict[str, Any] = {"size": size, "steps": steps, "jobs": jobs}
    for slots in (1, 2):
        queue = JobQueue(max_running=slots, heartbeat_timeout=None)
        try:
            throughput(queue, requests[:1])  # warm-up: the network is built, graphs traced
            report[f"local_{slots}_jobs_per_minute"] = throughput(queue, requests)
        finally:
            queue.shutdown()
    if shutil.which("redis-server") is None:
        report["redis"] = REDIS_MISSING
        return report
    from nst.jobs.redis import RedisQueue

    with redis_cluster("nst-bench-queue-") as cluster:
        queue = RedisQueue(cluster.url)
        for workers in (1, 2):
            cluster.add_workers(workers - len(cluster.processes))
            throughput(queue, requests[:workers])  # warm-up: one job per worker
            report[f"redis_{workers}_jobs_per_minute"] = throughput(queue, requests)
        long_run = requests[0].config.replace(steps=max(steps, LATENCY_STEPS))
        request = JobRequest(content, [style], long_run)
        for name, poll in (("page", PAGE_POLL_SECONDS), ("fast", FAST_POLL_SECONDS)):
            delays = preview_latency(queue, request, poll)
            report[f"preview_latency_{name}_seconds"] = (
                statistics.median(delays) if delays else float("nan")
            )
            report[f"preview_latency_{name}_samples"] = len(delays)
        queue.shutdown()
    return report


def format_rows(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(measure, value, target) rows for ``nst.bench.format_table``."""
    where = f"{report['size']} px, {report['steps']} steps, {report['jobs']} jobs"
    rows = [
        (f"queue throughput, in-process, {n} slot{'s' * (n > 1)} ({where})", key, "")
        for n, key in ((1, "local_1_jobs_per_minute"), (2, "local_2_jobs_per_minute"))
    ]
    rows += [
        (f"queue throughput, Redis, {n} worker{'s' * (n > 1)} ({where})", key, "")
        for n, key in ((1, "redis_1_jobs_per_minute"), (2, "redis_2_jobs_per_minute"))
    ]
    out = [
        (name, f"{report[key]:.1f} jobs/min", target) for name, key, target in rows if key in report
    ]
    for name, key in (
        ("preview latency, worker to page (polling every 0.5 s)", "preview_latency_page"),
        ("preview latency, worker to client (polling every 20 ms)", "preview_latency_fast"),
    ):
        if f"{key}_seconds" in report:
            samples = report.get(f"{key}_samples", 0)
            out.append((f"{name}, median of {samples}", f"{report[f'{key}_seconds']:.3f} s", ""))
    if isinstance(report.get("redis"), str):
        out.append(("queue on Redis", report["redis"], ""))
    return out
