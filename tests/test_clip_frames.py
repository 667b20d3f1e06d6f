"""A clip's finished frames outlive its worker: kept in Redis as they finish, they become a
shorter clip when the worker dies, and go with the job when it is forgotten."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from nst.config import StyleConfig
from nst.jobs import JobState
from nst.jobs.redis import (
    JOB_TTL,
    WORKER_LOST,
    RedisQueue,
    all_keys,
    finished_ttl,
    key,
    worker_lost_clip,
)
from nst.jobs.video import VideoJobRequest, VideoResult
from nst.video_config import VideoConfig
from tests.queue_cluster import NEEDS_REDIS, RedisServer, running_cluster, wait_for
from tests.video_cases import audio_stream_seconds, make_clip

pytestmark = NEEDS_REDIS

RUN_SECONDS = 300  # generous: the machine may be shared
FRAMES = 12


def clip_request(frame_steps: int = 2) -> VideoJobRequest:
    style = np.random.default_rng(2).uniform(0, 1, (64, 64, 3)).astype(np.float32)
    config = StyleConfig(size=64, optimizer="adam", preview_every=1000)
    video = VideoConfig(first_frame_steps=3, frame_steps=frame_steps, max_frames=FRAMES)
    return VideoJobRequest(make_clip(fps=12, audio=True), (style,), config, video)


def decoded_frames(mp4: bytes) -> list[np.ndarray]:
    with av.open(io.BytesIO(mp4)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    redis_server = RedisServer(tmp_path)
    redis_server.start()
    try:
        yield redis_server
    finally:
        redis_server.stop()


def test_kept_frames_expire_with_the_job_and_forget_deletes_them(server: RedisServer) -> None:
    from nst.worker import JobRun

    queue = RedisQueue(server.url)
    job_id = queue.submit(clip_request(), owner="me")
    run = JobRun(queue.connection, job_id)
    assert run.claim() is JobState.RUNNING
    frame = np.random.default_rng(3).uniform(0, 1, (48, 64, 3)).astype(np.float32)
    run.keep_frame(frame)
    run.keep_frame(frame[::-1])
    frames = key(job_id, "frames")
    assert queue.connection.llen(frames) == 2
    assert 0 < queue.connection.ttl(frames) <= JOB_TTL

    queue.connection.delete(key(job_id, "alive"))  # the worker's heartbeat ran out
    status = queue.status(job_id, owner="me")
    assert status.state is JobState.FAILED and status.error == WORKER_LOST
    assert 0 < queue.connection.ttl(frames) <= finished_ttl()
    assert 0 < queue.connection.ttl(key(job_id, "request")) <= finished_ttl()

    queue.forget(job_id, owner="me")
    assert queue.connection.exists(*all_keys(job_id)) == 0
    queue.shutdown()


def test_a_killed_worker_keeps_the_finished_frames_as_a_shorter_clip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from studio import video
    from studio.store import MemoryStore, new_owner_key
    from studio.video import ClipRun

    monkeypatch.setenv("NST_WARM_UP", "0")  # the worker builds its network on the clip
    with running_cluster(tmp_path, 1) as (server, workers):
        queue = RedisQueue(server.url)
        owner = new_owner_key()
        request = clip_request(frame_steps=30)
        job_id = queue.submit(request, owner=owner)

        def a_frame_kept() -> bool:
            queue.status(job_id, owner=owner)  # the page's heartbeat keeps the job going
            return queue.connection.llen(key(job_id, "frames")) >= 1

        wait_for(a_frame_kept, RUN_SECONDS, "a finished frame")
        worker = queue.connection.hget(key(job_id), "worker").decode()
        workers.kill(int(worker.rsplit(":", 1)[1]))
        assert queue.status(job_id, owner=owner).state is JobState.RUNNING, "ended before kill"

        wait_for(
            lambda: queue.status(job_id, owner=owner).state.finished,
            RUN_SECONDS,
            "the dead worker's job reported",
        )
        status = queue.status(job_id, owner=owner)
        assert status.state is JobState.FAILED and status.error == WORKER_LOST

        result = queue.result(job_id, owner=owner)
        assert isinstance(result, VideoResult) and result.mp4 is not None
        assert 1 <= result.frames < FRAMES == result.frames_planned
        assert result.stopped and result.error == worker_lost_clip(result.frames)
        pictures = decoded_frames(result.mp4)
        assert len(pictures) == result.frames
        assert all(picture.std() > 5 and picture.max() > 50 for picture in pictures)
        assert audio_stream_seconds(result.mp4) > 0
        assert result.webp is not None and result.gif is not None
        assert queue.connection.exists(key(job_id, "frames"), key(job_id, "request")) == 0

        # The page keeps it in the gallery with that one sentence, then forgets the job.
        store = MemoryStore()
        monkeypatch.setattr("nst.jobs.get_backend", lambda: queue)
        monkeypatch.setattr(video, "owner_store", lambda: store)
        run = ClipRun(
            job_id, "walk.mp4", FRAMES, request.config, request.video, ("s",), status.submitted_at
        )
        store.set_run(owner, run)
        record = video.collect_clip(owner)
        assert record is not None and record.frames == result.frames
        assert record.error == worker_lost_clip(result.frames)
        assert len(decoded_frames(record.mp4)) == result.frames
        assert queue.connection.exists(*all_keys(job_id)) == 0
        queue.shutdown()
