"""The job queue on a real Redis with real RQ workers (``python -m nst.worker``).

One Redis server (with a password) and two workers serve the whole module; the tests run in
file order and the last two break things on purpose (a worker is killed, then Redis stops).
Images are 64 px and runs a few steps, with untrained weights.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nst.config import StyleConfig
from nst.jobs import JobRequest, JobState, QueueUnavailableError, UnknownJobError
from nst.jobs.backend import decode_png
from nst.jobs.redis import WORKER_LOST, WORKER_LOST_BEFORE_START, RedisQueue, all_keys, key
from tests.queue_cluster import (
    NEEDS_REDIS,
    ROOT,
    RedisServer,
    Workers,
    free_port,
    running_cluster,
    wait_for,
)

pytestmark = NEEDS_REDIS

RUN_SECONDS = 300  # generous: the machine may be shared


class Cluster:
    def __init__(self, server: RedisServer, workers: Workers) -> None:
        self.server = server
        self.workers = workers

    def queue(self, **options: Any) -> RedisQueue:
        return RedisQueue(self.server.url, **options)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("queue-logs"), 2) as (server, workers):
        yield Cluster(server, workers)


def content_image(index: int) -> np.ndarray:
    """Three clearly different photos: a red ramp, a green ramp, a blue checkerboard."""
    height, width = 48, 64
    image = np.zeros((height, width, 3), np.float32)
    if index == 0:
        image[..., 0] = np.linspace(0.2, 1.0, width)[None, :]
    elif index == 1:
        image[..., 1] = np.linspace(0.2, 1.0, height)[:, None]
    else:
        rows, cols = np.indices((height, width))
        image[..., 2] = ((rows // 8 + cols // 8) % 2) * 0.8 + 0.1
    return image


def style_image() -> np.ndarray:
    return np.random.default_rng(7).random((64, 64, 3), dtype=np.float32)


def request(index: int, **settings: Any) -> JobRequest:
    config = StyleConfig(size=64, **{"steps": 3, "preview_every": 1, **settings})
    return JobRequest(content_image(index), [style_image()], config)


def running_with_a_preview(queue: RedisQueue, job: JobRequest) -> tuple[str, int]:
    """Submit ``job`` and wait until it runs and has published the preview of a painting step
    (after the instant picture, step 0): (job id, worker pid)."""
    job_id = queue.submit(job, owner="me")

    def painting() -> bool:
        status = queue.status(job_id, owner="me")
        return (
            status.state is JobState.RUNNING
            and status.preview is not None
            and status.preview_step >= 1
        )

    wait_for(painting, RUN_SECONDS, "a preview of a painting step")
    worker = queue.connection.hget(key(job_id), "worker").decode()
    return job_id, int(worker.rsplit(":", 1)[1])


def wait_finished(queue: RedisQueue, job_id: str, owner: str) -> Any:
    wait_for(lambda: queue.status(job_id, owner=owner).state.finished, RUN_SECONDS, "job end")
    return queue.status(job_id, owner=owner)


def test_two_workers_serve_three_clients(cluster: Cluster) -> None:
    cluster.workers.ensure(2)
    queue = cluster.queue()
    outcomes: dict[int, tuple[Any, Any, list[tuple[str, int]]]] = {}
    failures: list[BaseException] = []
    start = threading.Barrier(3)

    def client(index: int) -> None:
        owner = f"session-{index}"
        seen: list[tuple[str, int]] = []
        try:
            start.wait()
            # From the photo, so that each result stays closest to its own photo.
            job_id = queue.submit(request(index, init="content"), owner=owner)
            while True:
                status = queue.status(job_id, owner=owner)
                seen.append((status.state.value, status.position))
                if status.state.finished:
                    break
                time.sleep(0.05)
            outcomes[index] = (status, queue.result(job_id, owner=owner), seen)
        except BaseException as error:  # surfaced in the main thread below
            failures.append(error)

    threads = [threading.Thread(target=client, args=(index,)) for index in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(RUN_SECONDS)
    assert not failures, failures
    assert sorted(outcomes) == [0, 1, 2]

    contents = [content_image(index) for index in range(3)]
    for index, (status, result, _) in outcomes.items():
        assert status.state is JobState.DONE, status.error
        assert status.error is None
        assert result.steps_done == 3 and not result.stopped
        assert result.image.shape == (48, 64, 3)
        assert np.isfinite(result.image).all()
        distances = [float(np.abs(result.image - content).mean()) for content in contents]
        assert int(np.argmin(distances)) == index  # each client got its own picture back
        assert distances[index] > 0  # and it was painted
        np.testing.assert_allclose(decode_png(status.preview), result.image, atol=1 / 255)
        assert [row["step"] for row in status.history] == [1, 2, 3]

    # At most two ran at once: the last to start began only after another had finished.
    spans = sorted((status.started_at, status.finished_at) for status, _, _ in outcomes.values())
    for moment, _ in spans:
        assert sum(begin <= moment < end for begin, end in spans) <= 2
    last = max(outcomes.values(), key=lambda outcome: outcome[0].started_at)
    earlier_ends = [s.finished_at for s, _, _ in outcomes.values() if s is not last[0]]
    assert last[0].started_at >= min(earlier_ends)
    # ...and its page was told where it stood while it waited.
    assert ("queued", 1) in last[2]
    assert all(position in (0, 1, 2, 3) for _, position in last[2])


def test_a_cancel_ends_the_run_and_keeps_the_best_image(cluster: Cluster) -> None:
    queue = cluster.queue()
    job_id = queue.submit(request(0, steps=1000), owner="me")
    wait_for(
        lambda: (queue.status(job_id, owner="me").progress or _no_step).step >= 3,
        RUN_SECONDS,
        "three steps",
    )
    with pytest.raises(UnknownJobError):
        queue.status(job_id, owner="someone else")
    queue.cancel(job_id, owner="someone else")  # not theirs: nothing happens
    assert queue.status(job_id, owner="me").state is JobState.RUNNING

    queue.cancel(job_id, owner="me")
    status = wait_finished(queue, job_id, "me")
    result = queue.result(job_id, owner="me")
    assert status.state is JobState.CANCELLED
    assert status.error is None
    assert result.stopped and 3 <= result.steps_done < 1000
    assert result.image.shape == (48, 64, 3)
    assert np.isfinite(result.final_loss) and result.final_loss <= result.initial_loss
    assert status.preview_step == result.steps_done
    np.testing.assert_allclose(decode_png(status.preview), result.image, atol=1 / 255)

    queue.forget(job_id, owner="me")
    with pytest.raises(UnknownJobError):
        queue.status(job_id, owner="me")
    assert not queue.connection.keys(key(job_id) + "*")  # nothing left in Redis


class _NoStep:
    step = 0


_no_step = _NoStep()


def test_a_queued_job_that_is_cancelled_never_runs(cluster: Cluster) -> None:
    queue = cluster.queue()
    busy = [queue.submit(request(index, steps=1000), owner="me") for index in (0, 1)]
    for job_id in busy:
        wait_for(
            lambda job_id=job_id: queue.status(job_id, owner="me").state is JobState.RUNNING,
            RUN_SECONDS,
            "both workers busy",
        )
    waiting = queue.submit(request(2), owner="me")
    status = queue.status(waiting, owner="me")
    assert (status.state, status.position) == (JobState.QUEUED, 1)
    queue.cancel(waiting, owner="me")
    status = queue.status(waiting, owner="me")
    assert status.state is JobState.CANCELLED
    assert queue.result(waiting, owner="me") is None
    assert not queue.connection.exists(key(waiting, "request"))  # the request is dropped
    for job_id in busy:
        queue.cancel(job_id, owner="me")
    for job_id in busy:
        assert wait_finished(queue, job_id, "me").state is JobState.CANCELLED
        assert queue.status(waiting, owner="me").started_at is None


def test_a_job_whose_worker_dies_before_claiming_it_is_reported(cluster: Cluster) -> None:
    from rq import Queue
    from rq.serializers import JSONSerializer

    from nst.worker import JobRun

    # A queue no worker listens on; this test plays the worker, with RQ's own dequeue.
    queue = cluster.queue(queue_name="nst-orphans", worker_ttl=1.0)
    job_id = queue.submit(request(0), owner="me")
    assert queue.status(job_id, owner="me").position == 1
    taken = Queue.dequeue_any(
        [queue.rq_queue], None, connection=queue.connection, serializer=JSONSerializer
    )
    assert taken is not None and taken[0].id == job_id
    # ... and dies before its claim. Until the grace has passed the job just looks queued.
    status = queue.status(job_id, owner="me")
    assert (status.state, status.position) == (JobState.QUEUED, 0)
    time.sleep(1.2)
    status = queue.status(job_id, owner="me")
    assert status.state is JobState.FAILED and status.error == WORKER_LOST_BEFORE_START
    assert queue.result(job_id, owner="me") is None  # nothing had been made
    assert not queue.connection.exists(key(job_id, "request"))
    # A worker that was only slow finds the job settled and leaves it alone.
    assert JobRun(queue.connection, job_id).claim() is JobState.FAILED
    assert queue.status(job_id, owner="me").state is JobState.FAILED


def test_a_job_taken_and_claimed_in_time_is_not_reported_lost(cluster: Cluster) -> None:
    from rq import Queue
    from rq.serializers import JSONSerializer

    from nst.worker import JobRun

    queue = cluster.queue(queue_name="nst-orphans", worker_ttl=1.0)
    job_id = queue.submit(request(1), owner="me")
    Queue.dequeue_any(
        [queue.rq_queue], None, connection=queue.connection, serializer=JSONSerializer
    )
    assert queue.status(job_id, owner="me").state is JobState.QUEUED
    assert JobRun(queue.connection, job_id).claim() is JobState.RUNNING
    time.sleep(1.2)  # the claim wrote the worker heartbeat: not lost yet
    assert queue.status(job_id, owner="me").state is JobState.RUNNING
    queue.connection.delete(*all_keys(job_id))


class RecordingSlot:
    """Records, in order, what the poller writes into the page slot it is given (``st.empty()``
    on a page): warnings, infos, progress text and clearing, so the test reads what was shown."""

    def __init__(self) -> None:
        self.shown: list[tuple[str, str]] = []

    def warning(self, text: str, **_: Any) -> None:
        self.shown.append(("warning", text))

    def info(self, text: str, **_: Any) -> None:
        self.shown.append(("info", text))

    def progress(self, value: float, text: str = "") -> None:
        self.shown.append(("progress", text))

    def empty(self) -> None:
        self.shown.append(("empty", ""))


def test_a_clip_waiting_on_redis_survives_a_slider_and_an_outage_and_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_video_page import _upload_clip, _video_page
    from tests.video_cases import make_clip

    server = RedisServer(tmp_path)
    server.start()
    no_worker = (
        "No worker is connected to the job queue right now; your clip starts as soon as one is."
    )
    try:
        monkeypatch.setenv("NST_QUEUE", server.url)
        at = _video_page()
        _upload_clip(at, "walk.mp4", make_clip(fps=12))
        at.pills(key="style_samples").set_value(["mosaic"])
        at.number_input(key="video_max_frames").set_value(3)
        at.button(key="video_start").click()
        at.run()
        assert not at.exception, at.exception
        assert no_worker in [element.value for element in at.warning]
        run = at.session_state["video_run"]
        # A slider during the run: the page reruns, the clip stays in line.
        at.slider(key="video_size").set_value(64)
        at.run()
        assert at.session_state["video_run"] == run
        assert no_worker in [element.value for element in at.warning]

        # Redis goes away (its data saved): the view says so and retries; back, it goes on.
        RedisQueue(server.url).connection.save()
        server.stop()
        at.run()
        assert not at.exception, at.exception
        (outage,) = [e.value for e in at.warning if "cannot be reached" in e.value]
        assert outage.endswith("Retrying…") and at.session_state["video_run"] == run
        server.start()
        at.run()
        assert no_worker in [element.value for element in at.warning]

        # Only Stop ends it: before its first frame, so one sentence and no clip.
        at.button(key="video_stop").click()
        at.run()
        assert not at.exception, at.exception
        assert "video_run" not in at.session_state
        errors = [element.value for element in at.error]
        assert errors == ["The run was stopped before the first frame finished."]
    finally:
        server.stop()


def test_the_stylize_page_runs_on_the_workers(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nst.engine.model
    from tests.test_app import _jpeg, _open, _results, _stylize, _texts, _upload

    def no_local_model(*args: Any) -> None:
        raise AssertionError("the web tier built a network on the Redis backend")

    monkeypatch.setattr(nst.engine.model, "_build_extractor", no_local_model)
    monkeypatch.setenv("NST_QUEUE", cluster.server.url)
    at = _open()
    _upload(at, _jpeg(), [("a.jpg", _jpeg(seed=1))])
    _stylize(at, size=64, steps=3)
    assert not _texts(at.error)
    (record,) = _results(at)
    assert record.steps_done == 3 and not record.stopped and record.error is None
    assert record.image.shape == (48, 64, 3)

    # Redis unreachable: one sentence, the page keeps working and the result stays.
    monkeypatch.setenv("NST_QUEUE", f"redis://127.0.0.1:{free_port()}/0")
    _stylize(at, size=64, steps=3)
    assert not at.exception
    (message,) = _texts(at.error)
    assert "cannot be reached" in message and "\n" not in message


def test_the_web_tier_does_not_load_tensorflow_on_redis() -> None:
    script = (
        "import sys\n"
        "import studio.runs, studio.banner, studio.inputs, studio.widgets, studio.results\n"
        "import studio.gallery, nst.jobs, nst.jobs.redis\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, timeout=120)


def test_a_hung_job_is_ended_with_rqs_stop_command(cluster: Cluster) -> None:
    from nst.worker import EXIT_JOB_STOPPED, STOPPED_BY_OPERATOR

    queue = cluster.queue()
    job_id, pid = running_with_a_preview(queue, request(2, steps=1000))

    def stop_job(job_id: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "nst.worker", "--stop-job", job_id],
            cwd=ROOT,
            env={**os.environ, "NST_QUEUE": cluster.server.url},
            capture_output=True,
            text=True,
            timeout=60,
        )

    told = stop_job(job_id)
    assert told.returncode == 0, told.stderr
    worker = next(process for process in cluster.workers.processes if process.pid == pid)
    assert worker.wait(30) == EXIT_JOB_STOPPED  # the process that ran the job ends
    status = queue.status(job_id, owner="me")
    assert status.state is JobState.FAILED and status.error == STOPPED_BY_OPERATOR
    result = queue.result(job_id, owner="me")
    assert result.stopped and result.image.shape == (48, 64, 3)  # the last preview is kept
    # Asking again, or for a job that does not exist, is one sentence and exit status 2.
    for unknown in (job_id, "0" * 32):
        again = stop_job(unknown)
        assert again.returncode == 2 and again.stderr.count("\n") == 1, again.stderr
    cluster.workers.ensure(2)  # its supervisor would start a fresh worker


def test_a_killed_worker_is_reported_and_its_last_preview_kept(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    from studio.runs import _outcome_record
    from studio.store import PendingRun

    queue = cluster.queue()
    job_id, pid = running_with_a_preview(queue, request(1, steps=1000))
    cluster.workers.kill(pid)

    status = wait_finished(queue, job_id, "me")  # within the worker heartbeat's expiry
    assert status.state is JobState.FAILED
    assert status.error == WORKER_LOST
    result = queue.result(job_id, owner="me")
    assert result.stopped and result.error == WORKER_LOST
    np.testing.assert_allclose(result.image, decode_png(status.preview), atol=1 / 255)
    assert result.steps_done >= 1

    # The page's settling step makes that picture a gallery record with the sentence.
    photo = (content_image(1) * 255).astype(np.uint8)
    run = PendingRun(
        job_id, StyleConfig(size=64), photo, "photo", "k", ("s",), None, None, None, 0.0
    )
    record = _outcome_record(run, status, result)
    assert record is not None and record.error == WORKER_LOST
    assert record.image.shape == (48, 64, 3)


def test_redis_going_away_is_one_sentence_and_workers_come_back(cluster: Cluster) -> None:
    queue = cluster.queue()
    job_id = queue.submit(request(2, steps=1000), owner="me")
    wait_for(
        lambda: queue.status(job_id, owner="me").state is JobState.RUNNING,
        RUN_SECONDS,
        "a running job",
    )
    cluster.server.stop()
    for call in (
        lambda: queue.status(job_id, owner="me"),
        lambda: queue.submit(request(0), owner="me"),
        lambda: queue.cancel(job_id, owner="me"),
    ):
        with pytest.raises(QueueUnavailableError) as caught:
            call()
        message = str(caught.value)
        assert "cannot be reached" in message and f":{cluster.server.port}" in message
        assert "\n" not in message and cluster.server.password not in message

    # Redis comes back (empty): the surviving worker reconnects and serves new jobs.
    cluster.server.start()
    job_id = queue.submit(request(0), owner="me")
    assert wait_finished(queue, job_id, "me").state is JobState.DONE


def test_an_unreachable_or_locked_redis_is_one_sentence(tmp_path: Path) -> None:
    queue = RedisQueue(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(QueueUnavailableError, match="cannot be reached"):
        queue.submit(request(0), owner="me")
    server = RedisServer(tmp_path)
    server.start()
    try:
        wrong = RedisQueue(f"redis://:wrong@127.0.0.1:{server.port}/0")
        with pytest.raises(QueueUnavailableError, match="refused the password"):
            wrong.submit(request(0), owner="me")
        missing = RedisQueue(f"redis://127.0.0.1:{server.port}/0")
        with pytest.raises(QueueUnavailableError, match="refused the password"):
            missing.status("0" * 32, owner="me")
    finally:
        server.stop()
