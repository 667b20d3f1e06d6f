"""The in-process backend: at most K style-transfer runs compute at once in threads of the web
process, the rest wait in line. The default (``NST_QUEUE`` unset); see ``nst.jobs.backend`` for
the interface.

- Worker threads take jobs first in, first out; at most ``max_running`` compute at the same time.
  A waiting job reports its 1-based ``position`` in the line.
- Every job has its own ``CancelToken``. Cancelling a queued job means it never starts;
  cancelling a running job ends it within a step and its result keeps the best image so far.
- ``status()`` is also a heartbeat: a job nobody has polled for ``heartbeat_timeout`` seconds
  (its browser tab was closed) is cancelled like any other.
- A finished job keeps its result until ``forget()``; only the newest ``max_finished`` finished
  jobs are kept, and a job's request (its input images) is dropped as soon as it finishes.
- Any exception in a run ends the job as FAILED with a one-sentence error; the last progress
  record and preview are kept, and the last preview becomes the result's image.
- On a machine with several GPUs each of the K slots is pinned to its own GPU (slot i to GPU
  i mod the number of GPUs), with its own copy of the model there; with one GPU or none,
  TensorFlow places the work.
"""

from __future__ import annotations

import collections
import contextlib
import hmac
import itertools
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nst.config import StyleConfig
from nst.jobs.backend import (
    UNKNOWN_JOB,
    JobProgress,
    JobState,
    JobStatus,
    Runner,
    UnknownJobError,
    encode_png,
    follow_run,
    kind_of,
)
from nst.records import CancelToken, Result

__all__ = ["JobQueue", "default_concurrency", "slot_devices"]

NVIDIA_GPUS = "/proc/driver/nvidia/gpus"  # one folder per GPU the driver sees (Linux)

logger = logging.getLogger(__name__)

DEFAULT_HEARTBEAT_TIMEOUT = 15.0
DEFAULT_MAX_FINISHED = 32
# An idle worker thread ends after this long; submit() starts a new one when needed.
IDLE_WORKER_SECONDS = 30.0
MAX_JOBS_ENV = "NST_MAX_JOBS"


@dataclass(eq=False)
class _Job:
    """The queue's private, mutable record of one job; guarded by the queue's lock."""

    job_id: str
    owner: str
    kind: str
    request: Any  # dropped (None) once the job has finished
    config: StyleConfig | None
    token: CancelToken
    submitted_at: float
    last_seen: float  # clock() of the last heartbeat
    state: JobState = JobState.QUEUED
    started_at: float | None = None
    finished_at: float | None = None
    progress: JobProgress | None = None
    preview: np.ndarray | None = None
    preview_step: int = 0
    preview_png: bytes | None = None  # ``preview`` encoded, made on the first status() after it
    history: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    result: Result | None = None
    forget_when_finished: bool = False
    slot: int | None = None  # which of the max_running slots runs it, while it runs


class JobQueue:
    """Runs jobs on at most ``max_running`` worker threads, first in first out.

    Args:
        max_running: how many jobs compute at the same time (default: ``default_concurrency()``).
        heartbeat_timeout: seconds without a ``status()`` call after which a job is cancelled;
            None never cancels for that reason.
        runner: ``runner(request, cancel_token)`` yielding progress records then one Result,
            for every job; by default each request's kind names its runner (the engine for
            images). Tests pass a fast fake.
        max_finished: how many finished jobs keep their data; the oldest are dropped first.
        clock: the monotonic clock heartbeats are measured with (tests pass a fake one).
        devices: the TensorFlow devices the slots are pinned to, in turn (slot i runs on
            ``devices[i % len(devices)]``); by default every GPU when there are two or more,
            else none (TensorFlow places the work). An empty sequence pins nothing.
    """

    remote = False

    def __init__(
        self,
        max_running: int | None = None,
        heartbeat_timeout: float | None = DEFAULT_HEARTBEAT_TIMEOUT,
        runner: Runner | None = None,
        *,
        max_finished: int = DEFAULT_MAX_FINISHED,
        clock: Callable[[], float] = time.monotonic,
        devices: Sequence[str] | None = None,
    ) -> None:
        if max_running is None:
            max_running = default_concurrency()
        if isinstance(max_running, bool) or not isinstance(max_running, int) or max_running < 1:
            raise ValueError(
                f"max_running must be a whole number of at least 1, got {max_running!r}."
            )
        if heartbeat_timeout is not None and not heartbeat_timeout > 0:
            raise ValueError(
                f"heartbeat_timeout must be positive or None, got {heartbeat_timeout!r}."
            )
        if max_finished < 1:
            raise ValueError(f"max_finished must be at least 1, got {max_finished!r}.")
        self.max_running = max_running
        self.heartbeat_timeout = heartbeat_timeout
        self.max_finished = max_finished
        self.devices = tuple(slot_devices() if devices is None else devices)
        self._free_slots = set(range(max_running))
        self._runner = runner
        self._clock = clock
        self._cond = threading.Condition(threading.Lock())
        self._jobs: dict[str, _Job] = {}
        self._queued: collections.deque[_Job] = collections.deque()
        self._finished: collections.deque[str] = collections.deque()
        self._workers: set[threading.Thread] = set()
        self._worker_numbers = itertools.count(1)
        self._running = 0
        self._closed = False

    # ----- the interface pages use -----

    def submit(self, request: Any, *, owner: str = "") -> str:
        """Put a job in line and return its id."""
        kind = kind_of(request)
        config = getattr(request, "config", None)
        with self._cond:
            if self._closed:
                raise RuntimeError("The job queue has been shut down.")
            job_id = uuid.uuid4().hex
            job = _Job(
                job_id,
                owner,
                kind.name,
                request,
                config if isinstance(config, StyleConfig) else None,
                CancelToken(),
                time.time(),
                self._clock(),
            )
            self._jobs[job_id] = job
            self._queued.append(job)
            self._ensure_workers_locked()
            self._cond.notify()
        return job_id

    def status(self, job_id: str, *, owner: str = "") -> JobStatus:
        """A snapshot of the job; also records a heartbeat for it."""
        with self._cond:
            job = self._get_locked(job_id, owner)
            job.last_seen = self._clock()
            position = 0
            if job.state is JobState.QUEUED:
                # The first jobs in line that free slots wait for are being handed to a worker
                # (0): "number 1 in the queue" would say the studio is busy when it is not.
                place = next(i for i, queued in enumerate(self._queued, 1) if queued is job)
                position = max(0, place - len(self._free_slots))
            preview = job.preview
        png = job.preview_png
        if preview is not None and png is None:  # encode outside the lock: it takes a while
            png = encode_png(preview)
            with self._cond:
                if job.preview is preview:
                    job.preview_png = png
        with self._cond:
            return JobStatus(
                job_id=job.job_id,
                state=job.state,
                position=position,
                progress=job.progress,
                preview=png,
                preview_step=job.preview_step,
                history=list(job.history),
                error=job.error,
                kind=job.kind,
                submitted_at=job.submitted_at,
                started_at=job.started_at,
                finished_at=job.finished_at,
            )

    def cancel(self, job_id: str, *, owner: str = "") -> None:
        """Stop a job: a queued one never starts, a running one ends within a step.

        Cancelling a finished or unknown job does nothing.
        """
        with self._cond:
            job = self._jobs.get(job_id)
            if job is not None and _same_owner(job, owner):
                self._cancel_locked(job)

    def result(self, job_id: str, *, owner: str = "") -> Result | None:
        """The run's result once it has ended, else None.

        Stopped runs keep the image so far (``stopped=True``). A FAILED job has a result when
        there was an image to keep (``error`` set): check ``status().state`` for success.
        """
        with self._cond:
            return self._get_locked(job_id, owner).result

    def forget(self, job_id: str, *, owner: str = "") -> None:
        """Drop a job's data. An unfinished job is cancelled and dropped when it ends."""
        with self._cond:
            job = self._jobs.get(job_id)
            if job is None or not _same_owner(job, owner):
                return
            if job.state.finished:
                self._drop_locked(job)
            else:
                job.forget_when_finished = True
                self._cancel_locked(job)

    def running_count(self) -> int:
        """How many jobs are computing right now."""
        with self._cond:
            return self._running

    def reap(self) -> None:
        """Cancel the jobs whose page stopped polling (workers also do this at every step)."""
        with self._cond:
            self._reap_locked()

    def shutdown(self, timeout: float | None = 30.0) -> None:
        """Cancel every job, refuse new ones and wait (up to ``timeout`` s) for the workers."""
        with self._cond:
            self._closed = True
            for job in list(self._jobs.values()):
                self._cancel_locked(job)
            workers = list(self._workers)
            self._cond.notify_all()
        deadline = None if timeout is None else time.monotonic() + timeout
        for worker in workers:
            if worker is threading.current_thread():
                continue
            worker.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if worker.is_alive():
                logger.warning("Job worker %s did not stop within %s s.", worker.name, timeout)

    @property
    def closed(self) -> bool:
        """True once ``shutdown()`` was called."""
        return self._closed

    # ----- internals; every *_locked method expects self._cond to be held -----

    def _get_locked(self, job_id: str, owner: str) -> _Job:
        job = self._jobs.get(job_id)
        if job is None or not _same_owner(job, owner):
            raise UnknownJobError(UNKNOWN_JOB)
        return job

    def _cancel_locked(self, job: _Job) -> None:
        job.token.cancel()
        if job.state is JobState.QUEUED:
            self._queued.remove(job)
            self._finish_locked(job, JobState.CANCELLED)
        # A running job's worker sees the token within a step and finishes it.

    def _finish_locked(self, job: _Job, state: JobState) -> None:
        job.state = state
        job.finished_at = time.time()
        job.request = None  # the input images are not needed any more
        if job.forget_when_finished:
            self._drop_locked(job)
            return
        self._finished.append(job.job_id)
        while len(self._finished) > self.max_finished:
            oldest = self._jobs.get(self._finished[0])
            if oldest is None:
                self._finished.popleft()
            else:
                self._drop_locked(oldest)

    def _drop_locked(self, job: _Job) -> None:
        self._jobs.pop(job.job_id, None)
        with contextlib.suppress(ValueError):
            self._finished.remove(job.job_id)

    def _reap_locked(self) -> None:
        """Cancel jobs whose page stopped polling them."""
        if self.heartbeat_timeout is None:
            return
        stale_before = self._clock() - self.heartbeat_timeout
        for job in list(self._jobs.values()):
            if not job.state.finished and job.last_seen < stale_before and not job.token.cancelled:
                logger.info(
                    "Cancelling job %s: not polled for %s s.", job.job_id, self.heartbeat_timeout
                )
                self._cancel_locked(job)

    def _ensure_workers_locked(self) -> None:
        wanted = min(self.max_running, self._running + len(self._queued))
        while len(self._workers) < wanted:
            worker = threading.Thread(
                target=self._work, name=f"nst-job-worker-{next(self._worker_numbers)}", daemon=True
            )
            self._workers.add(worker)
            worker.start()

    def _work(self) -> None:
        """A worker thread: take the oldest queued job, run it, repeat; end when idle."""
        me = threading.current_thread()
        while True:
            with self._cond:
                job = None
                while job is None:
                    self._reap_locked()
                    if self._closed:
                        self._workers.discard(me)
                        return
                    if self._queued:
                        job = self._queued.popleft()
                        job.state = JobState.RUNNING
                        job.started_at = time.time()
                        job.slot = min(self._free_slots)  # the lowest free slot
                        self._free_slots.remove(job.slot)
                        self._running += 1
                    elif not self._cond.wait(IDLE_WORKER_SECONDS) and not self._queued:
                        self._workers.discard(me)
                        return
            self._run(job)

    def _run(self, job: _Job) -> None:
        """Drive one job's runner to its end, recording what it yields."""

        def start() -> Any:
            runner = self._runner or kind_of(job.request).runner
            return runner(job.request, job.token)

        def pin() -> Any:
            if not (self.devices and job.slot is not None):
                return contextlib.nullcontext()
            from nst.engine.model import on_device  # TensorFlow: only where there are devices

            return on_device(self.devices[job.slot % len(self.devices)])

        def record(progress: JobProgress, row: dict[str, Any] | None, preview: Any) -> None:
            with self._cond:
                job.progress = progress
                if row is not None:
                    job.history.append(row)
                if preview is not None:
                    job.preview, job.preview_png = preview, None
                    job.preview_step = progress.step
                self._reap_locked()

        state, error, result = JobState.FAILED, None, None  # if the thread itself is stopped
        try:
            state, error, result = follow_run(
                start, job.token, record, job_id=job.job_id, log=logger, pin=pin
            )
        finally:
            with self._cond:
                if result is not None:
                    job.result = result
                    job.preview, job.preview_png = result.image, None
                    job.preview_step = int(result.steps_done)
                    if isinstance(result.history, list) and result.history:
                        job.history = list(result.history)
                elif job.preview is not None and job.config is not None:
                    # The run broke before its Result: keep the last preview as the image so far.
                    job.result = Result(
                        image=job.preview,
                        history=list(job.history),
                        timings={},
                        config=job.config,
                        stopped=True,
                        error=error,
                        steps_done=job.progress.step if job.progress is not None else 0,
                    )
                job.error = error
                self._running -= 1
                if job.slot is not None:
                    self._free_slots.add(job.slot)
                    job.slot = None
                self._finish_locked(job, state)
                self._cond.notify_all()


def _same_owner(job: _Job, owner: str) -> bool:
    return hmac.compare_digest(job.owner.encode(), owner.encode())


def default_concurrency() -> int:
    """How many jobs may compute at once: ``NST_MAX_JOBS`` if set, else one per GPU, else 1."""
    raw = os.environ.get(MAX_JOBS_ENV, "").strip()
    if raw:
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value < 1 or value > 64:
            raise ValueError(f"{MAX_JOBS_ENV} must be a whole number from 1 to 64, got {raw!r}.")
        return value
    return max(1, _gpu_count())


def slot_devices() -> list[str]:
    """The devices the in-process queue pins its slots to: every GPU when there are two or
    more (one job per GPU by default), else none."""
    count = _gpu_count()
    return [f"/GPU:{index}" for index in range(count)] if count > 1 else []


def _gpu_count() -> int:
    """Visible NVIDIA GPUs, counted without importing TensorFlow (seconds and most of a gigabyte
    that an instant-only web process never needs): the driver's list, narrowed by
    ``CUDA_VISIBLE_DEVICES`` as TensorFlow narrows it."""
    try:
        found = len(os.listdir(NVIDIA_GPUS))
    except OSError:  # no NVIDIA driver: compute on the CPU
        return 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return found
    chosen = []
    for part in visible.split(","):
        if part.strip() in ("", "-1"):
            break  # CUDA stops at the first invalid entry; "-1" hides every GPU
        chosen.append(part)
    return min(found, len(chosen))
