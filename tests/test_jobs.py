"""Behaviour of the in-process job backend, with fast fake runners and one real engine run.

Heartbeats use a fake clock and steps are released by the test, so nothing depends on timing.
"""

from __future__ import annotations

import dataclasses
import gc
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

import nst.jobs.local
from nst.config import StyleConfig
from nst.jobs import (
    JobQueue,
    JobRequest,
    JobState,
    UnknownJobError,
    default_concurrency,
    get_backend,
)
from nst.jobs.backend import decode_png
from nst.records import CancelToken, Progress, Result

CONFIG = StyleConfig(size=64, steps=3)


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``predicate`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


def request(value: float, *, style: float = 1.0) -> JobRequest:
    """A tiny request whose content is filled with ``value``: it names the job in fake runners."""
    content = np.full((4, 4, 3), value, dtype=np.float32)
    return JobRequest(content, [np.full((4, 4, 3), style, dtype=np.float32)], CONFIG)


def tag(req: JobRequest) -> float:
    """The value a request was made with (rounded: the arrays are float32)."""
    return round(float(req.content[0, 0, 0]), 3)


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def png_pixels(data: bytes | None) -> np.ndarray:
    """A PNG preview back to float32 (8-bit precision)."""
    assert data is not None
    return decode_png(data)


def expected_image(req: JobRequest) -> np.ndarray:
    """What the fake runners return: the average of content and first style."""
    return (req.content + req.styles[0]) / 2


def progress(step: int, total: int, preview: np.ndarray | None = None) -> Progress:
    return Progress(
        step=step,
        total=total,
        loss=1.0 / step,
        parts={"style": 0.5 / step, "content": 0.5 / step},
        elapsed=0.01 * step,
        preview=preview,
    )


def result(req: JobRequest, image: np.ndarray, steps: int, stopped: bool) -> Result:
    return Result(
        image=image,
        history=[],
        timings={},
        config=req.config,
        stopped=stopped,
        error=None,
        initial_loss=1.0,
        final_loss=1.0 / max(steps, 1),
        steps_done=steps,
    )


def stepping_runner(
    steps: int,
    step_seconds: float = 0.0,
    gate: Callable[[JobRequest], None] | None = None,
) -> Callable[[JobRequest, CancelToken], Iterator[Any]]:
    """A fake engine: checks the token before every step, previews ``step / steps`` blends."""

    def run(req: JobRequest, cancel: CancelToken) -> Iterator[Any]:
        target = expected_image(req)
        done = 0
        for step in range(1, steps + 1):
            if gate is not None:
                gate(req)
            if cancel.cancelled:
                break
            time.sleep(step_seconds)
            done = step
            yield progress(step, steps, preview=req.content + (target - req.content) * step / steps)
        image = req.content + (target - req.content) * done / steps
        yield result(req, image, done, stopped=done < steps)

    return run


@pytest.fixture
def queues() -> Iterator[Callable[..., JobQueue]]:
    """Make queues that are shut down (workers joined) after the test."""
    made: list[JobQueue] = []

    def make(**kwargs: Any) -> JobQueue:
        queue = JobQueue(**kwargs)
        made.append(queue)
        return queue

    yield make
    for queue in made:
        queue.shutdown(timeout=10)


def test_concurrent_sessions_all_finish_and_respect_the_limit(queues) -> None:
    active = 0
    max_active = 0
    lock = threading.Lock()
    base = stepping_runner(steps=3, step_seconds=0.01)

    def counting_runner(req: JobRequest, cancel: CancelToken) -> Iterator[Any]:
        nonlocal active, max_active
        with lock:
            active += 1
            max_active = max(max_active, active)
        try:
            yield from base(req, cancel)
        finally:
            with lock:
                active -= 1

    queue = queues(max_running=2, runner=counting_runner)
    outcomes: dict[float, tuple[Any, Any]] = {}
    failures: list[BaseException] = []
    start = threading.Barrier(8)

    def session(value: float) -> None:
        try:
            req = request(value)
            start.wait()
            job_id = queue.submit(req)
            wait_until(lambda: queue.status(job_id).state.finished)
            outcomes[value] = (queue.status(job_id), queue.result(job_id))
        except Exception as exc:  # surfaced in the main thread below
            failures.append(exc)

    sessions = [threading.Thread(target=session, args=(i / 10,)) for i in range(8)]
    for thread in sessions:
        thread.start()
    for thread in sessions:
        thread.join(30)

    assert not failures
    assert len(outcomes) == 8
    for value, (status, res) in outcomes.items():
        assert status.state is JobState.DONE
        assert status.error is None
        assert not res.stopped
        np.testing.assert_allclose(res.image, expected_image(request(value)))
        assert [row["step"] for row in status.history] == [1, 2, 3]
    assert max_active == 2
    assert queue.running_count() == 0


def test_waiting_jobs_see_their_place_and_start_in_order(queues) -> None:
    release = threading.Event()
    started: list[float] = []

    def gate(req: JobRequest) -> None:
        if tag(req) not in started:
            started.append(tag(req))
        release.wait(10)

    queue = queues(max_running=1, runner=stepping_runner(steps=1, gate=gate))
    first = queue.submit(request(0.0))
    wait_until(lambda: queue.status(first).state is JobState.RUNNING)
    waiting = [queue.submit(request(value)) for value in (0.1, 0.2, 0.3)]

    assert queue.status(first).position == 0
    assert [queue.status(job_id).position for job_id in waiting] == [1, 2, 3]
    assert all(queue.status(job_id).state is JobState.QUEUED for job_id in waiting)
    assert queue.running_count() == 1

    release.set()
    for job_id in [first, *waiting]:
        wait_until(lambda job_id=job_id: queue.status(job_id).state is JobState.DONE)
    assert started == [0.0, 0.1, 0.2, 0.3]


def test_jobs_that_free_slots_wait_for_are_not_shown_in_line(queues, monkeypatch) -> None:
    queue = queues(max_running=2, runner=stepping_runner(steps=1))
    start_workers = queue._ensure_workers_locked
    monkeypatch.setattr(queue, "_ensure_workers_locked", lambda: None)  # no hand-over yet
    jobs = [queue.submit(request(value)) for value in (0.1, 0.2, 0.3)]

    assert all(queue.status(job_id).state is JobState.QUEUED for job_id in jobs)
    assert [queue.status(job_id).position for job_id in jobs] == [0, 0, 1]
    with queue._cond:
        start_workers()
    for job_id in jobs:
        wait_until(lambda job_id=job_id: queue.status(job_id).state is JobState.DONE)


def test_cancelling_a_queued_job_means_it_never_runs(queues) -> None:
    release = threading.Event()
    ran: list[float] = []

    def gate(req: JobRequest) -> None:
        ran.append(tag(req))
        release.wait(10)

    queue = queues(max_running=1, runner=stepping_runner(steps=1, gate=gate))
    first = queue.submit(request(0.0))
    wait_until(lambda: queue.status(first).state is JobState.RUNNING)
    second = queue.submit(request(0.5))
    third = queue.submit(request(0.7))
    queue.cancel(second)

    assert queue.status(second).state is JobState.CANCELLED
    assert queue.status(second).position == 0
    assert queue.status(third).position == 1
    release.set()
    wait_until(lambda: queue.status(third).state is JobState.DONE)
    assert queue.status(first).state is JobState.DONE
    assert 0.5 not in ran
    assert queue.result(second) is None


def test_cancelling_a_running_job_ends_it_within_a_step_keeping_the_image(queues) -> None:
    steps_allowed = threading.Semaphore(0)

    def gate(req: JobRequest) -> None:
        assert steps_allowed.acquire(timeout=10)

    queue = queues(max_running=1, runner=stepping_runner(steps=100, gate=gate))
    req = request(0.0)
    job_id = queue.submit(req)
    steps_allowed.release(2)
    wait_until(lambda: (queue.status(job_id).progress or progress(1, 1)).step == 2)

    queue.cancel(job_id)
    steps_allowed.release(1)  # the engine checks the token once more, at the next step
    wait_until(lambda: queue.status(job_id).state.finished)

    status = queue.status(job_id)
    res = queue.result(job_id)
    assert status.state is JobState.CANCELLED
    assert status.error is None
    assert res.stopped
    assert res.steps_done == 2
    partial = req.content + (expected_image(req) - req.content) * 2 / 100
    np.testing.assert_allclose(res.image, partial)
    np.testing.assert_allclose(png_pixels(status.preview), partial, atol=1 / 255)
    assert status.preview_step == 2
    assert queue.running_count() == 0


def test_a_running_job_nobody_polls_is_cancelled(queues) -> None:
    clock = FakeClock()
    gates = {0.1: threading.Semaphore(0), 0.2: threading.Semaphore(0)}

    def gate(req: JobRequest) -> None:
        assert gates[tag(req)].acquire(timeout=10)

    queue = queues(
        max_running=2, heartbeat_timeout=15, runner=stepping_runner(steps=5, gate=gate), clock=clock
    )
    watched = queue.submit(request(0.1))
    abandoned = queue.submit(request(0.2))  # its tab is closed after the first step
    for job_id, semaphore in ((watched, gates[0.1]), (abandoned, gates[0.2])):
        semaphore.release()
        wait_until(lambda job_id=job_id: queue.status(job_id).progress is not None)
    clock.advance(10)
    queue.status(watched)  # polled at 10 s; the other was last seen at 0 s
    clock.advance(10)  # 20 s: only the abandoned job is stale
    gates[0.1].release(4)
    wait_until(lambda: queue.status(watched).state is JobState.DONE)  # its steps reaped the other
    gates[0.2].release()  # the abandoned run checks its token at the next step
    wait_until(lambda: queue.running_count() == 0)

    assert queue.status(abandoned).state is JobState.CANCELLED
    assert queue.result(abandoned).steps_done == 1
    assert queue.result(watched).steps_done == 5


def test_a_queued_job_nobody_polls_never_starts(queues) -> None:
    clock = FakeClock()
    release = threading.Event()
    ran: list[float] = []

    def gate(req: JobRequest) -> None:
        if tag(req) not in ran:
            ran.append(tag(req))
        release.wait(10)

    queue = queues(
        max_running=1, heartbeat_timeout=15, runner=stepping_runner(steps=1, gate=gate), clock=clock
    )
    watched = queue.submit(request(0.1))
    wait_until(lambda: queue.status(watched).state is JobState.RUNNING)
    abandoned = queue.submit(request(0.2))
    clock.advance(16)
    queue.status(watched)
    release.set()
    wait_until(lambda: queue.status(watched).state is JobState.DONE)
    wait_until(lambda: queue.status(abandoned).state.finished)

    assert queue.status(abandoned).state is JobState.CANCELLED
    assert ran == [0.1]


def test_no_heartbeat_timeout_keeps_unpolled_jobs(queues) -> None:
    clock = FakeClock()
    steps_allowed = threading.Semaphore(0)

    def gate(req: JobRequest) -> None:
        assert steps_allowed.acquire(timeout=10)

    queue = queues(
        max_running=1,
        heartbeat_timeout=None,
        runner=stepping_runner(steps=10, gate=gate),
        clock=clock,
    )
    job_id = queue.submit(request(0.3))
    clock.advance(10_000)  # not polled for far longer than any timeout
    steps_allowed.release(10)
    queue.reap()
    wait_until(lambda: queue.running_count() == 0 and queue.status(job_id).state.finished)
    assert queue.status(job_id).state is JobState.DONE
    assert queue.result(job_id).steps_done == 10


def test_the_heartbeat_timeout_is_measured_from_the_last_status_call(queues) -> None:
    clock = FakeClock()
    release = threading.Event()
    queue = queues(
        max_running=1,
        heartbeat_timeout=15,
        runner=stepping_runner(steps=1, gate=lambda req: release.wait(10)),
        clock=clock,
    )
    first = queue.submit(request(0.1))
    waiting = queue.submit(request(0.2))
    for _ in range(5):  # 5 x 10 s, polled every time: never stale
        clock.advance(10)
        queue.status(waiting)
        queue.status(first)
        queue.reap()
    assert queue.status(waiting).state is JobState.QUEUED
    clock.advance(15.5)
    queue.reap()
    assert queue.status(waiting).state is JobState.CANCELLED
    release.set()


def test_jobs_are_visible_only_to_their_owner(queues) -> None:
    release = threading.Event()
    queue = queues(max_running=1, runner=stepping_runner(steps=1, gate=lambda r: release.wait(10)))
    mine = queue.submit(request(0.1), owner="alice-secret")
    assert queue.status(mine, owner="alice-secret").state in (JobState.QUEUED, JobState.RUNNING)
    for stranger in ("", "bob-secret", "alice-secre"):
        with pytest.raises(UnknownJobError):
            queue.status(mine, owner=stranger)
        with pytest.raises(UnknownJobError):
            queue.result(mine, owner=stranger)
        queue.cancel(mine, owner=stranger)  # silently ignored
        queue.forget(mine, owner=stranger)
    release.set()
    wait_until(lambda: queue.status(mine, owner="alice-secret").state.finished)
    assert queue.status(mine, owner="alice-secret").state is JobState.DONE
    assert len(mine) == 32 and int(mine, 16) >= 0  # a uuid4: not guessable from other ids


def test_a_finished_job_lets_go_of_its_request(queues) -> None:
    queue = queues(max_running=1, runner=stepping_runner(steps=1))
    req = request(0.4)
    alive = weakref.ref(req)
    job_id = queue.submit(req)
    del req
    wait_until(lambda: queue.status(job_id).state.finished)
    gc.collect()
    assert alive() is None  # the input images are freed while the result is kept
    assert queue.result(job_id) is not None


def test_style_images_are_queued_at_the_size_the_run_uses() -> None:
    config = StyleConfig(size=96, steps=1, style_scale=1.5)
    huge = np.random.default_rng(0).random((900, 1200, 3), dtype=np.float32)
    small = np.zeros((50, 40, 3), np.float32)
    req = JobRequest(np.zeros((72, 96, 3), np.float32), [huge, small], config)
    # The optimizer uses a longest side of 96 x 1.5 = 144, but the instant picture's style
    # predictor sees the painting with its shorter side at 256: that is kept, aspect kept.
    assert req.styles[0].shape == (256, 342, 3)
    assert req.styles[0].dtype == np.float32
    larger = JobRequest(np.zeros((72, 96, 3), np.float32), [huge], config.replace(size=512))
    assert larger.styles[0].shape == (576, 768, 3)  # the optimizer's 512 x 1.5
    assert req.styles[1] is small  # never enlarged
    np.testing.assert_allclose(req.styles[0].mean(), huge.mean(), atol=0.01)


def test_a_failing_run_is_reported_in_one_sentence_and_keeps_the_preview(queues) -> None:
    preview = np.full((4, 4, 3), 0.25, dtype=np.float32)

    healthy = stepping_runner(steps=2)

    def broken(req: JobRequest, cancel: CancelToken) -> Iterator[Any]:
        if tag(req) != 0.0:
            yield from healthy(req, cancel)
            return
        yield progress(1, 10, preview=preview)
        raise RuntimeError("boom\nwith a long internal traceback")

    queue = queues(max_running=1, runner=broken)
    job_id = queue.submit(request(0.0))
    wait_until(lambda: queue.status(job_id).state.finished)

    status = queue.status(job_id)
    assert status.state is JobState.FAILED
    assert "boom" in status.error
    assert "\n" not in status.error and "traceback" not in status.error
    np.testing.assert_allclose(png_pixels(status.preview), preview, atol=1 / 255)
    assert status.progress.step == 1
    assert status.finished_at is not None
    kept = queue.result(job_id)  # the image so far is not lost
    np.testing.assert_array_equal(kept.image, preview)
    assert kept.stopped and kept.error == status.error

    # The worker survives a failure and runs the next job.
    next_id = queue.submit(request(0.4))
    wait_until(lambda: queue.status(next_id).state is JobState.DONE)


def test_an_engine_refusal_is_passed_on_verbatim(queues) -> None:
    def refusing(req: JobRequest, cancel: CancelToken) -> Iterator[Any]:
        raise ValueError("size: 64 px is too small for this backbone; use at least 96.")
        yield  # a generator, like the engine

    queue = queues(max_running=1, runner=refusing)
    job_id = queue.submit(request(0.0))
    wait_until(lambda: queue.status(job_id).state.finished)
    status = queue.status(job_id)
    assert status.state is JobState.FAILED
    assert status.error == "size: 64 px is too small for this backbone; use at least 96."
    assert queue.result(job_id) is None  # nothing was painted yet


def test_forgetting_a_running_job_stops_and_drops_it(queues) -> None:
    queue = queues(max_running=1, runner=stepping_runner(steps=10_000, step_seconds=0.01))
    job_id = queue.submit(request(0.0))
    wait_until(lambda: queue.running_count() == 1)
    queue.forget(job_id)
    wait_until(lambda: queue.running_count() == 0, timeout=2)
    with pytest.raises(UnknownJobError):
        queue.status(job_id)


def test_a_run_that_stops_with_an_error_keeps_its_image(queues) -> None:
    def diverging(req: JobRequest, cancel: CancelToken) -> Iterator[Any]:
        yield progress(1, 3)
        last_good = expected_image(req)
        res = result(req, last_good, 1, stopped=True)
        yield dataclasses.replace(res, error="The loss became NaN at step 2.")

    queue = queues(max_running=1, runner=diverging)
    job_id = queue.submit(request(0.2))
    wait_until(lambda: queue.status(job_id).state.finished)
    assert queue.status(job_id).state is JobState.FAILED
    assert queue.status(job_id).error == "The loss became NaN at step 2."
    np.testing.assert_allclose(queue.result(job_id).image, expected_image(request(0.2)))


def test_shutdown_cancels_everything_and_leaves_no_thread(queues) -> None:
    before = set(threading.enumerate())
    queue = queues(max_running=2, runner=stepping_runner(steps=10_000, step_seconds=0.01))
    job_ids = [queue.submit(request(value)) for value in (0.1, 0.2, 0.3)]
    wait_until(lambda: queue.running_count() == 2)

    queue.shutdown(timeout=10)

    assert set(threading.enumerate()) <= before
    states = [queue.status(job_id).state for job_id in job_ids]
    assert states == [JobState.CANCELLED] * 3
    assert queue.result(job_ids[2]) is None  # it was still waiting: it never ran
    with pytest.raises(RuntimeError, match="shut down"):
        queue.submit(request(0.4))


def test_finished_jobs_are_capped_and_can_be_forgotten(queues) -> None:
    queue = queues(max_running=1, runner=stepping_runner(steps=1), max_finished=2)
    job_ids = []
    for value in (0.1, 0.2, 0.3):
        job_ids.append(queue.submit(request(value)))
        wait_until(lambda: queue.status(job_ids[-1]).state.finished)

    with pytest.raises(UnknownJobError):
        queue.status(job_ids[0])  # the oldest finished job was dropped
    assert queue.result(job_ids[1]) is not None
    queue.forget(job_ids[1])
    with pytest.raises(UnknownJobError):
        queue.result(job_ids[1])
    queue.cancel(job_ids[1])  # cancelling or forgetting an unknown job is harmless
    queue.forget(job_ids[1])
    assert queue.status(job_ids[2]).state is JobState.DONE


def test_request_needs_a_style() -> None:
    with pytest.raises(ValueError, match="style"):
        JobRequest(np.zeros((4, 4, 3), np.float32), [], CONFIG)
    one = JobRequest(np.zeros((4, 4, 3), np.float32), [np.ones((4, 4, 3), np.float32)], CONFIG)
    assert isinstance(one.styles, tuple)


@pytest.mark.parametrize(("raw", "expected"), [("1", 1), ("3", 3), (" 2 ", 2)])
def test_max_jobs_from_the_environment(monkeypatch, raw: str, expected: int) -> None:
    monkeypatch.setenv("NST_MAX_JOBS", raw)
    assert default_concurrency() == expected
    assert JobQueue(runner=stepping_runner(steps=1)).max_running == expected


@pytest.mark.parametrize("raw", ["0", "-1", "abc", "1.5", "1000"])
def test_bad_max_jobs_is_a_clear_error(monkeypatch, raw: str) -> None:
    monkeypatch.setenv("NST_MAX_JOBS", raw)
    with pytest.raises(ValueError, match="NST_MAX_JOBS must be a whole number"):
        default_concurrency()


@pytest.mark.parametrize(("gpus", "expected"), [(0, 1), (1, 1), (3, 3)])
def test_default_concurrency_is_one_job_per_gpu(monkeypatch, gpus: int, expected: int) -> None:
    monkeypatch.delenv("NST_MAX_JOBS", raising=False)
    monkeypatch.setattr(nst.jobs.local, "_gpu_count", lambda: gpus)
    assert default_concurrency() == expected


def test_get_backend_is_one_backend_for_all_threads(monkeypatch) -> None:
    monkeypatch.setenv("NST_MAX_JOBS", "1")
    monkeypatch.delenv("NST_QUEUE", raising=False)
    found: list[JobQueue] = []
    start = threading.Barrier(8)

    def look() -> None:
        start.wait()
        found.append(get_backend())

    threads = [threading.Thread(target=look) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(found) == 8
    assert all(queue is found[0] for queue in found)
    found[0].shutdown()
    assert get_backend() is not found[0]  # a shut-down queue is replaced
    get_backend().shutdown()


def test_the_in_process_backend_warms_the_engine_up_once_when_made(monkeypatch) -> None:
    import nst.front

    warmed: list[threading.Thread] = []
    done = threading.Event()

    def warm_up() -> float:
        warmed.append(threading.current_thread())
        done.set()
        return 0.0

    monkeypatch.setattr(nst.front, "warm_up", warm_up)
    monkeypatch.delenv("NST_QUEUE", raising=False)
    monkeypatch.setenv("NST_WARM_UP", "1")
    get_backend().shutdown()  # the next call makes a new in-process queue
    queue = get_backend()
    assert done.wait(10) and warmed[0] is not threading.current_thread()  # in the background
    assert get_backend() is queue
    queue.shutdown()
    monkeypatch.setenv("NST_WARM_UP", "0")
    get_backend().shutdown()
    assert len(warmed) == 2  # one per queue made with the warm-up on, none with it off
    monkeypatch.setenv("NST_WARM_UP", "maybe")
    with pytest.raises(ValueError, match="NST_WARM_UP must be 1"):
        get_backend()


def test_nst_queue_selects_the_backend(monkeypatch) -> None:
    from nst.jobs.redis import RedisQueue

    monkeypatch.setenv("NST_QUEUE", "redis://:secret@127.0.0.1:1/0")  # never connected to
    remote = get_backend()
    assert isinstance(remote, RedisQueue) and remote.remote
    monkeypatch.setenv("NST_QUEUE", "")
    local = get_backend()
    assert isinstance(local, JobQueue) and not local.remote
    local.shutdown()
    monkeypatch.setenv("NST_QUEUE", "http://example.com")
    with pytest.raises(ValueError, match=r"NST_QUEUE must be empty .* or a Redis URL"):
        get_backend()


@pytest.mark.slow
def test_real_engine_runs_three_jobs_one_at_a_time(queues, content_path, style_path) -> None:
    from nst.images import load_image

    content = load_image(content_path)  # the fixtures skip when the shared images are missing
    style = load_image(style_path)
    queue = queues(max_running=1)  # the default runner: the real engine
    job_ids = [
        queue.submit(JobRequest(content, [style], StyleConfig(size=64, steps=3, seed=seed)))
        for seed in range(3)
    ]
    seen_running = 0
    deadline = time.monotonic() + 300
    while not all(queue.status(job_id).state.finished for job_id in job_ids):
        assert time.monotonic() < deadline, "engine jobs did not finish in time"
        seen_running = max(seen_running, queue.running_count())
        time.sleep(0.02)

    assert seen_running <= 1
    height, width = content.shape[:2]
    for job_id in job_ids:
        status = queue.status(job_id)
        assert status.state is JobState.DONE, status.error
        image = queue.result(job_id).image
        assert image.ndim == 3 and image.shape[2] == 3
        assert max(image.shape[:2]) == 64
        assert abs(image.shape[1] / image.shape[0] - width / height) < 0.05
        assert np.isfinite(image).all()


@pytest.mark.parametrize(
    ("gpus", "expected"), [(0, []), (1, []), (3, ["/GPU:0", "/GPU:1", "/GPU:2"])]
)
def test_slots_are_pinned_to_gpus_only_when_there_are_several(monkeypatch, gpus, expected) -> None:
    monkeypatch.setattr(nst.jobs.local, "_gpu_count", lambda: gpus)
    assert nst.jobs.local.slot_devices() == expected


def test_each_running_job_is_pinned_to_its_slots_device(queues) -> None:
    from nst.engine.model import pinned_device

    together = threading.Barrier(3)
    pins: dict[float, str | None] = {}
    base = stepping_runner(steps=2)

    def pinned_runner(req: JobRequest, cancel: CancelToken) -> Iterator[Any]:
        pins[tag(req)] = pinned_device()  # read in the worker thread, inside the run
        together.wait(timeout=10)  # all three hold a slot at once
        yield from base(req, cancel)

    queue = queues(max_running=3, runner=pinned_runner, devices=["/GPU:0", "/GPU:1"])
    first = [queue.submit(request(value)) for value in (0.1, 0.2, 0.3)]
    wait_until(lambda: all(queue.status(job_id).state.finished for job_id in first))
    # Slots 0, 1 and 2 on two GPUs: two jobs share GPU 0, one has GPU 1.
    assert sorted(pins.values()) == ["/GPU:0", "/GPU:0", "/GPU:1"]
    # Every slot was given back: a lone later job takes slot 0 again.
    pins.clear()
    together = threading.Barrier(1)
    later = queue.submit(request(0.4))
    wait_until(lambda: queue.status(later).state.finished)
    assert pins == {0.4: "/GPU:0"} and pinned_device() is None


def test_unpinned_queue_leaves_placement_to_tensorflow(queues) -> None:
    from nst.engine.model import pinned_device

    pins: list[str | None] = []
    base = stepping_runner(steps=1)

    def recording_runner(req: JobRequest, cancel: CancelToken) -> Iterator[Any]:
        pins.append(pinned_device())
        yield from base(req, cancel)

    queue = queues(max_running=2, runner=recording_runner, devices=[])
    job_id = queue.submit(request(0.5))
    wait_until(lambda: queue.status(job_id).state.finished)
    assert pins == [None]


PINNED_RUNS = """
import json, threading, time
import numpy as np
import tensorflow as tf

# Two logical CPU devices stand in for two GPUs: the same placement machinery.
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import nst.engine.lbfgs
from nst.engine import model
from nst.config import StyleConfig
from nst.jobs.image import JobRequest, run_image
from nst.jobs.local import JobQueue

pairs_push = nst.engine.lbfgs.CorrectionPairs.push
seen = {"lbfgs": set()}

def recording_push(self, s, y):  # L-BFGS's history, kept where the run computes
    kept = pairs_push(self, s, y)
    seen["lbfgs"].update(tensor.device for pair in self.pairs for tensor in pair)
    return kept

nst.engine.lbfgs.CorrectionPairs.push = recording_push
together = threading.Barrier(2)

def runner(request, token):
    together.wait(timeout=60)
    config = request.config
    extractor = model.get_extractor(config.backbone, config.pooling, None, config.precision)
    seen.setdefault("weights", []).append(extractor.model.weights[0].value.device)
    yield from run_image(request, token)

rng = np.random.default_rng(3)
content = rng.random((48, 64, 3), dtype=np.float32)
style = rng.random((48, 64, 3), dtype=np.float32)
queue = JobQueue(2, None, runner, devices=["/CPU:0", "/CPU:1"])
config = StyleConfig(size=64, steps=4, optimizer="lbfgs", precision="float32")
ids = [queue.submit(JobRequest(content, (style,), config)) for _ in range(2)]
while not all(queue.status(job_id).state.finished for job_id in ids):
    time.sleep(0.05)
images = [queue.result(job_id).image for job_id in ids]
print(json.dumps({
    "states": [str(queue.status(job_id).state) for job_id in ids],
    "weights": sorted(seen["weights"]),
    "lbfgs": sorted(seen["lbfgs"]),
    "difference": float(np.abs(images[0] - images[1]).max()),
    "cached_on": sorted(model._pinned_extractors),
    "unpinned_cache": len(model._extractors.cached_keys()),
}))
queue.shutdown()
"""


@pytest.mark.slow
def test_pinned_engine_runs_keep_weights_and_l_bfgs_on_their_own_device() -> None:
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "NST_WEIGHTS": "random", "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, "-c", PINNED_RUNS], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["states"] == ["done", "done"]
    cpu0, cpu1 = (
        "/job:localhost/replica:0/task:0/device:CPU:0",
        "/job:localhost/replica:0/task:0/device:CPU:1",
    )
    assert report["weights"] == [cpu0, cpu1]  # one copy of the model per device
    assert report["lbfgs"] == [cpu0, cpu1]  # L-BFGS's history stays on its job's device
    assert report["cached_on"] == ["/CPU:0", "/CPU:1"] and report["unpinned_cache"] == 0
    assert report["difference"] == 0.0  # the same job gives the same image on either device


def test_an_image_result_crosses_the_job_boundary_with_its_note() -> None:
    import json

    from nst.jobs.backend import job_kind

    kind = job_kind("image")
    image = np.linspace(0, 1, 4 * 6 * 3, dtype=np.float32).reshape(4, 6, 3)
    sent = Result(
        image,
        [{"step": 1.0, "loss": 2.0}],
        {"total": 1.5},
        CONFIG,
        steps_done=1,
        final_loss=2.0,
        note="L-BFGS ended after 1 of 3 iterations: it converged.",
    )
    meta, blobs = kind.encode_result(sent)
    received = kind.decode_result(json.loads(json.dumps(meta)), blobs)
    assert received.note == sent.note and received.steps_done == 1 and received.final_loss == 2.0
    np.testing.assert_allclose(received.image, image, atol=1 / 255)
    meta.pop("note")  # a result stored by an older worker has no note
    assert kind.decode_result(meta, blobs).note is None


def test_a_sketch_is_the_first_preview_but_not_a_step_of_the_history(queues) -> None:
    released = threading.Event()

    def sketching_runner(req: JobRequest, cancel: CancelToken) -> Iterator[Any]:
        sketch = np.full_like(req.content, 0.25)
        yield Progress(0, 2, float("nan"), {}, 0.5, sketch)
        released.wait(10)
        yield progress(1, 2)
        yield progress(2, 2, preview=req.content)
        yield result(req, req.content, 2, stopped=False)

    queue = queues(max_running=1, runner=sketching_runner)
    job_id = queue.submit(request(0.5))
    wait_until(lambda: queue.status(job_id).preview is not None)
    status = queue.status(job_id)
    assert status.state is JobState.RUNNING and status.preview_step == 0 and not status.history
    assert status.progress.step == 0 and np.isnan(status.progress.seconds_left)
    np.testing.assert_allclose(decode_png(status.preview), 0.25, atol=1 / 255)
    released.set()
    wait_until(lambda: queue.status(job_id).state.finished)
    assert [row["step"] for row in queue.status(job_id).history] == [1, 2]


@pytest.mark.parametrize(
    ("visible", "expected"), [(None, 2), ("1", 1), ("0,1,5", 2), ("", 0), ("-1", 0), ("0,-1,1", 1)]
)
def test_gpus_are_counted_from_the_driver_without_tensorflow(
    monkeypatch, tmp_path, visible: str | None, expected: int
) -> None:
    import nst.jobs.local

    for bus in ("0000:01:00.0", "0000:02:00.0"):
        (tmp_path / bus).mkdir()
    monkeypatch.setattr(nst.jobs.local, "NVIDIA_GPUS", str(tmp_path))
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert nst.jobs.local._gpu_count() == expected
    monkeypatch.setattr(nst.jobs.local, "NVIDIA_GPUS", str(tmp_path / "absent"))
    assert nst.jobs.local._gpu_count() == 0


def test_a_step_s_scale_reaches_the_page_through_both_backends_records() -> None:
    from nst.jobs.backend import JobProgress
    from nst.records import Progress
    from studio.runs import _progress_text

    step = Progress(
        7, 20, 0.5, {"style": 0.25}, 3.0, scale=2, scales=4, scale_size=256, time_left=9.0
    )
    carried = JobProgress.from_dict(JobProgress.from_record(step).to_dict())
    assert (carried.scale, carried.scales, carried.scale_size, carried.time_left) == (
        2,
        4,
        256,
        9.0,
    )
    assert "at 256 px, scale 2 of 4 · about 9.0 s left" in _progress_text(carried)


def _status(state: str, *, preview: bytes | None = None, **progress: Any) -> Any:
    from nst.jobs.backend import JobProgress, JobState, JobStatus

    return JobStatus(
        job_id="j",
        state=JobState(state),
        preview=preview,
        progress=JobProgress(loss=1.0, parts={}, elapsed=1.0, **progress) if progress else None,
    )


def test_the_page_looks_quickly_only_while_a_picture_is_due() -> None:
    from nst.jobs.backend import PAGE_ENDING_SECONDS, PAGE_FIRST_SECONDS, picture_due

    # The instant picture in the run's first seconds.
    assert picture_due(_status("running"), 0.5)
    assert not picture_due(_status("running"), PAGE_FIRST_SECONDS + 0.1)
    assert not picture_due(_status("running", preview=b"png", step=1, total=70, time_left=9.0), 1.0)
    # The result: when the engine expects it within a poll, or all steps are done.
    near = {"step": 68, "total": 70, "time_left": PAGE_ENDING_SECONDS - 0.2}
    assert picture_due(_status("running", preview=b"png", **near), 12.0)
    assert picture_due(_status("running", preview=b"png", step=70, total=70), 12.0)
    middle = {"step": 40, "total": 70}
    assert not picture_due(_status("running", preview=b"png", time_left=5.0, **middle), 9.0)
    assert not picture_due(_status("running", preview=b"png", **middle), 9.0)  # no estimate yet
    # Never once finished, nor for a clip's frames (each frame is not the result).
    assert not picture_due(_status("done", preview=b"png", **near), 12.0)
    assert not picture_due(_status("running", preview=b"png", frame=2, frames=9, **near), 12.0)
