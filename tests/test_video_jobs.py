"""Video jobs through the job interface: the in-process queue, stop, bad clips and the codecs."""

from __future__ import annotations

import io
import time

import av
import numpy as np
import pytest

from nst.config import StyleConfig
from nst.jobs import JobQueue, JobState, job_kind
from nst.jobs.video import VideoJobRequest, VideoResult
from nst.synthetic import synthetic_frames
from nst.video_config import VideoConfig
from tests.video_cases import audio_stream_seconds, make_clip

CONFIG = StyleConfig(size=64, optimizer="adam", preview_every=1000)
VIDEO = VideoConfig(first_frame_steps=3, frame_steps=2)


def _style() -> np.ndarray:
    return np.random.default_rng(2).uniform(0, 1, (64, 64, 3)).astype(np.float32)


def _frames(data: bytes) -> int:
    with av.open(io.BytesIO(data)) as container:
        return sum(1 for _ in container.decode(video=0))


def _wait(queue: JobQueue, job_id: str, *, stop_after_frames: int | None = None) -> VideoResult:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        status = queue.status(job_id)
        progress = status.progress
        # Working on frame n + 1 means n frames are finished.
        frame = progress.frame if progress is not None else None
        if stop_after_frames is not None and frame is not None and frame > stop_after_frames:
            queue.cancel(job_id)
        if status.state.finished:
            result = queue.result(job_id)
            assert isinstance(result, VideoResult)
            return result
        time.sleep(0.05)
    raise AssertionError("the video job did not finish")


def test_a_video_job_runs_on_the_queue_with_per_frame_progress() -> None:
    queue = JobQueue(max_running=1, heartbeat_timeout=None)
    clip = make_clip(fps=12, audio=True)
    request = VideoJobRequest(clip, (_style(),), CONFIG, VIDEO.replace(max_frames=3))
    job_id = queue.submit(request)
    result = _wait(queue, job_id)
    status = queue.status(job_id)
    assert status.state is JobState.DONE and status.kind == "video"
    assert result.frames == result.frames_planned == 3 and not result.stopped
    assert _frames(result.mp4) == 3 and audio_stream_seconds(result.mp4) > 0.2
    assert result.webp is not None and result.gif is not None
    assert {row["frame"] for row in status.history if "frame" in row} == {1, 2, 3}
    queue.shutdown()


def test_stopping_a_video_job_keeps_the_finished_frames() -> None:
    queue = JobQueue(max_running=1, heartbeat_timeout=None)
    request = VideoJobRequest(make_clip(fps=12), (_style(),), CONFIG, VIDEO)
    job_id = queue.submit(request)
    result = _wait(queue, job_id, stop_after_frames=2)
    assert queue.status(job_id).state is JobState.CANCELLED
    assert result.stopped and 2 <= result.frames < 12
    assert _frames(result.mp4) == result.frames
    queue.shutdown()


def test_an_instant_video_job_gives_every_frame_with_its_sound() -> None:
    queue = JobQueue(max_running=1, heartbeat_timeout=None)
    config = CONFIG.replace(method="instant")
    request = VideoJobRequest(make_clip(fps=12, audio=True), (_style(),), config, VIDEO)
    job_id = queue.submit(request)
    result = _wait(queue, job_id)
    status = queue.status(job_id)
    assert status.state is JobState.DONE
    assert result.frames == result.frames_planned == 12 and not result.stopped
    assert result.steps_done == 12  # one pass of the network a frame
    assert result.timings["frames_per_second"] > 0
    assert _frames(result.mp4) == 12 and audio_stream_seconds(result.mp4) > 0.9
    assert [row["frame"] for row in status.history if "frame" in row] == list(range(1, 13))
    queue.shutdown()


def test_stopping_an_instant_video_job_keeps_the_finished_frames() -> None:
    queue = JobQueue(max_running=1, heartbeat_timeout=None)
    frames = synthetic_frames(120, 48, 64)
    config = CONFIG.replace(method="instant")
    request = VideoJobRequest(make_clip(frames, fps=12, audio=True), (_style(),), config, VIDEO)
    job_id = queue.submit(request)
    result = _wait(queue, job_id, stop_after_frames=2)
    assert queue.status(job_id).state is JobState.CANCELLED
    assert result.stopped and 2 <= result.frames < 120
    assert _frames(result.mp4) == result.frames
    assert audio_stream_seconds(result.mp4) == pytest.approx(result.frames / 12, abs=0.1)
    queue.shutdown()


def test_a_bad_clip_ends_the_job_with_its_sentence() -> None:
    queue = JobQueue(max_running=1, heartbeat_timeout=None)
    job_id = queue.submit(VideoJobRequest(b"not a clip" * 30, (_style(),), CONFIG, VIDEO))
    result = _wait(queue, job_id)
    status = queue.status(job_id)
    assert status.state is JobState.FAILED and "not a video" in status.error
    assert result.mp4 is None
    queue.shutdown()


def test_the_codecs_carry_requests_and_results_as_bytes() -> None:
    kind = job_kind("video")
    request = VideoJobRequest(make_clip(), (_style(),), CONFIG, VIDEO)
    meta, blobs = kind.encode_request(request)
    assert set(blobs) == {"clip", "style0"} and isinstance(meta["video"], dict)
    back = kind.decode_request(meta, blobs)
    assert back.clip == request.clip and back.video == VIDEO and back.config == CONFIG
    result = VideoResult(
        image=np.zeros((8, 8, 3), np.float32),
        history=[{"frame": 1, "seconds": 1.0}],
        timings={"total": 1.0},
        config=CONFIG,
        mp4=b"mp4 bytes",
        gif=b"gif bytes",
        frames=1,
        frames_planned=2,
        fps=12.0,
        stopped=True,
    )
    meta, blobs = kind.encode_result(result)
    decoded = kind.decode_result(meta, blobs)
    assert isinstance(decoded, VideoResult)
    assert (decoded.mp4, decoded.gif, decoded.webp) == (b"mp4 bytes", b"gif bytes", None)
    assert (decoded.frames, decoded.frames_planned, decoded.fps) == (1, 2, 12.0)
    assert decoded.stopped


@pytest.mark.parametrize("wrong", ["config", "video"])
def test_a_request_checks_its_configs(wrong: str) -> None:
    values = {"clip": b"", "styles": (_style(),), "config": CONFIG, "video": VIDEO}
    values[wrong] = {}
    with pytest.raises(TypeError):
        VideoJobRequest(**values)
