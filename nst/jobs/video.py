"""Video jobs through the job interface (``nst.jobs``): the "video" kind, its request, runner,
result and the codecs that carry them to RQ workers. Importing this module registers the kind.

The runner stylizes the clip frame by frame (``nst.front.stylize_clip``: the optimizer, or the
instant network with ``StyleConfig.method == "instant"``), yields a progress record per step
(``frame``/``frames`` say which frame; the instant method has one step a frame) with the
finished frame as the preview, and ends with a ``VideoResult`` holding the encoded MP4 (with
the clip's sound) and, for short clips, an animated WebP and GIF. Stopping keeps the frames
finished so far as a shorter clip; a clip that stops decoding part-way also keeps them, with
the error sentence; a clip whose worker died is rebuilt from the frames the worker kept in
Redis as they finished (``kept_clip``). No TensorFlow at import: the web tier imports this freely.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from nst.color import adjust
from nst.config import Adjustments, ServerLimits, StyleConfig
from nst.jobs.backend import (
    Blobs,
    JobKind,
    decode_png,
    decode_result,
    encode_png,
    encode_result,
    register_kind,
    style_for_run,
)
from nst.records import CancelToken, FrameDone, FrameStep, Result, VideoOutcome
from nst.video_config import VideoConfig
from nst.videoio import (
    VideoError,
    VideoInfo,
    encode_animation,
    encode_mp4,
    frame_shape,
    probe,
    read_frames,
)


@dataclass(frozen=True, eq=False)
class VideoJobRequest:
    """A clip (its file's bytes), the style images (float32 RGB), both configs and the colour
    adjustments applied to every finished frame."""

    kind: ClassVar[str] = "video"

    clip: bytes
    styles: tuple[np.ndarray, ...]
    config: StyleConfig
    video: VideoConfig
    adjustments: Adjustments = field(default_factory=Adjustments)

    def __post_init__(self) -> None:
        if not isinstance(self.config, StyleConfig) or not isinstance(self.video, VideoConfig):
            raise TypeError("config must be a StyleConfig and video a VideoConfig.")
        styles = (self.styles,) if isinstance(self.styles, np.ndarray) else tuple(self.styles)
        if not styles:
            raise ValueError("A job needs at least one style image.")
        # Shrunk to what the run uses, as image jobs do: a queued job holds no full-size upload.
        object.__setattr__(self, "styles", tuple(style_for_run(s, self.config) for s in styles))


@dataclass(frozen=True, eq=False)
class VideoResult(Result):
    """A video run's outcome: ``image`` is the last finished frame; the clip is encoded.

    Attributes:
        mp4: H.264 MP4 of the finished frames, with the source's sound; None if no frame
            finished. webp / gif: animated versions when there are at most
            ``VideoConfig.max_animation_frames`` frames. frames / frames_planned: finished and
            planned frame counts. fps: frames per second. notice: what was done to the clip
            while reading it (a resampled variable frame rate), or None.
    """

    mp4: bytes | None = None
    webp: bytes | None = None
    gif: bytes | None = None
    frames: int = 0
    frames_planned: int = 0
    fps: float = 0.0
    notice: str | None = None


@dataclass(frozen=True)
class FrameProgress:
    """One step of one frame, as ``nst.jobs`` reads it (``frame`` is 1-based)."""

    step: int
    total: int
    loss: float
    parts: dict[str, float]
    elapsed: float
    frame: int
    frames: int
    preview: np.ndarray | None = None


@dataclass(frozen=True)
class VideoPlan:
    """What a run of a clip will do, known before it starts."""

    info: VideoInfo
    shape: tuple[int, int]  # (height, width) of the output frames
    frames: int


def plan(clip: bytes, config: StyleConfig, video: VideoConfig) -> VideoPlan:
    """Check a clip and the run's size; raise ``VideoError``/``ValueError`` with one sentence."""
    from nst.front import check_clip_size

    run = _plan_of(clip, config, video)
    check_clip_size(run.frames, run.shape, video)
    return run


def _plan_of(clip: bytes, config: StyleConfig, video: VideoConfig) -> VideoPlan:
    """The frames and their shape a run of ``clip`` plans, without the size check."""
    info = probe(clip, max_pixels=ServerLimits().max_pixels)
    frames = info.frames if not video.max_frames else min(video.max_frames, info.frames)
    return VideoPlan(info, frame_shape(info, config.size), frames)


def total_steps(frames: int, video: VideoConfig, config: StyleConfig | None = None) -> int:
    """Steps of a run of ``frames`` frames: the optimizer's, or one a frame for the instant
    method (``config.method``)."""
    if config is not None and config.method == "instant":
        return frames
    return video.first_frame_steps + max(0, frames - 1) * video.frame_steps


def steps_done(frame: int, step: int, video: VideoConfig, config: StyleConfig | None = None) -> int:
    """Steps done across the clip at ``step`` of (1-based) ``frame``."""
    if config is not None and config.method == "instant":
        return frame - 1 + min(step, 1)
    if frame <= 1:
        return step
    return video.first_frame_steps + (frame - 2) * video.frame_steps + step


def run_video_job(request: VideoJobRequest, cancel: CancelToken) -> Iterator[Any]:
    """The "video" runner: progress records per step, then one ``VideoResult``."""
    from nst.front import stylize_clip

    started = time.perf_counter()
    config, video = request.config, request.video
    try:
        run = plan(request.clip, config, video)
    except ValueError as error:  # VideoError included
        yield _empty_result(config, str(error))
        return
    outcome = VideoOutcome()
    finished: list[np.ndarray] = []
    history: list[dict[str, Any]] = []
    error: str | None = None
    try:
        frames = read_frames(request.clip, run.info, run.shape, max_frames=run.frames)
        for event in stylize_clip(
            frames,
            list(request.styles),
            config,
            video,
            frame_count=run.frames,
            cancel=cancel,
            outcome=outcome,
        ):
            if isinstance(event, FrameStep):
                progress = event.progress
                yield FrameProgress(
                    progress.step,
                    progress.total,
                    progress.loss,
                    progress.parts,
                    time.perf_counter() - started,
                    event.index + 1,
                    run.frames,
                )
            elif isinstance(event, FrameDone):
                image = adjust(event.image, content=event.content, **request.adjustments.to_dict())
                finished.append(image)
                history.append({"frame": event.index + 1, "seconds": event.seconds, **event.parts})
                yield FrameProgress(
                    event.steps,
                    event.steps,
                    float(event.parts.get("loss", float("nan"))),
                    {k: v for k, v in event.parts.items() if k != "loss"},
                    time.perf_counter() - started,
                    event.index + 1,
                    run.frames,
                    preview=image,
                )
        error = outcome.error
    except VideoError as failure:
        error = str(failure)
    yield _result(request, run, finished, history, outcome, error, started)


def _empty_result(config: StyleConfig, error: str | None, stopped: bool = False) -> VideoResult:
    """No frame finished: a black image stands in; ``mp4`` is None."""
    return VideoResult(
        image=np.zeros((32, 32, 3), np.float32),
        history=[],
        timings={},
        config=config,
        stopped=stopped,
        error=error,
    )


def _result(
    request: VideoJobRequest,
    run: VideoPlan,
    finished: list[np.ndarray],
    history: list[dict[str, Any]],
    outcome: Any,
    error: str | None,
    started: float,
) -> VideoResult:
    video = request.video
    if not finished:
        return _empty_result(request.config, error, stopped=True)
    mp4 = encode_mp4(finished, run.info.fps, audio_from=request.clip)
    short = len(finished) <= video.max_animation_frames
    seconds = [row["seconds"] for row in history]
    timings: dict[str, float] = {}
    if seconds:
        timings = {
            "total": time.perf_counter() - started,
            "first_frame": seconds[0],
            "other_frames": float(np.mean(seconds[1:])) if len(seconds) > 1 else 0.0,
            "frames_per_second": len(seconds) / max(sum(seconds), 1e-9),
        }
    return VideoResult(
        image=finished[-1],
        history=history,
        timings=timings,
        config=request.config,
        stopped=outcome.stopped or len(finished) < run.frames,
        error=error,
        steps_done=total_steps(len(finished), video, request.config),
        mp4=mp4,
        webp=encode_animation(finished, run.info.fps, format="webp") if short else None,
        gif=encode_animation(finished, run.info.fps, format="gif") if short else None,
        frames=len(finished),
        frames_planned=run.frames,
        fps=run.info.fps,
        notice=run.info.notice,
    )


def kept_clip(meta: dict[str, Any], blobs: Blobs, frames: list[bytes], error: str) -> VideoResult:
    """The shorter clip of a run whose worker died: its request (as stored for the worker) and
    the frames it had finished (PNG, in order), encoded as a finished run's are, with the
    clip's sound. No TensorFlow: the web tier builds it."""
    request = _decode_request(meta, blobs)
    run = _plan_of(request.clip, request.config, request.video)
    finished = [decode_png(frame) for frame in frames[: run.frames]]
    outcome = VideoOutcome(stopped=True)
    return _result(request, run, finished, [], outcome, error, time.perf_counter())


# ----- codecs for the Redis backend: JSON metadata and bytes, nothing pickled -----


def _encode_request(request: VideoJobRequest) -> tuple[dict[str, Any], Blobs]:
    blobs: Blobs = {"clip": request.clip}
    for index, style in enumerate(request.styles):
        blobs[f"style{index}"] = encode_png(style)
    meta = {
        "config": request.config.to_dict(),
        "video": request.video.to_dict(),
        "adjustments": request.adjustments.to_dict(),
        "styles": len(request.styles),
    }
    return meta, blobs


def _decode_request(meta: dict[str, Any], blobs: Blobs) -> VideoJobRequest:
    return VideoJobRequest(
        clip=blobs["clip"],
        styles=tuple(decode_png(blobs[f"style{index}"]) for index in range(int(meta["styles"]))),
        config=StyleConfig.from_dict(dict(meta["config"])),
        video=VideoConfig(**dict(meta["video"])),
        adjustments=Adjustments(**dict(meta.get("adjustments") or {})),
    )


def _encode_video_result(result: Result) -> tuple[dict[str, Any], Blobs]:
    meta, blobs = encode_result(result)
    if isinstance(result, VideoResult):
        meta["video"] = {
            "frames": result.frames,
            "frames_planned": result.frames_planned,
            "fps": result.fps,
            "notice": result.notice,
        }
        for name in ("mp4", "webp", "gif"):
            data = getattr(result, name)
            if data is not None:
                blobs[name] = data
    return json.loads(json.dumps(meta, default=float)), blobs


def _decode_video_result(meta: dict[str, Any], blobs: Blobs) -> VideoResult:
    base = decode_result(meta, blobs)
    extra = dict(meta.get("video") or {})
    return VideoResult(
        **base.__dict__,
        mp4=blobs.get("mp4"),
        webp=blobs.get("webp"),
        gif=blobs.get("gif"),
        frames=int(extra.get("frames", 0)),
        frames_planned=int(extra.get("frames_planned", 0)),
        fps=float(extra.get("fps", 0.0)),
        notice=extra.get("notice"),
    )


register_kind(
    JobKind(
        name="video",
        request_type=VideoJobRequest,
        runner=run_video_job,
        encode_request=_encode_request,
        decode_request=_decode_request,
        encode_result=_encode_video_result,
        decode_result=_decode_video_result,
    )
)
