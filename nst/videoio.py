"""Reading and writing video clips with PyAV (which ships its own FFmpeg): no TensorFlow here.

``probe`` opens a clip and checks it before any work starts (not a video, no frames, broken,
too long); ``read_frames`` decodes it upright (rotation metadata applied), at a constant frame
rate and at the working size; ``encode_mp4`` writes H.264 frames with the source's audio, and
``encode_animation`` an animated WebP or GIF for short clips.

Variable frame rate: a clip whose frame intervals differ (phones, screen recordings, GIFs with
uneven delays) is resampled to a constant rate, its average one, by repeating or dropping
frames at their presentation times; ``VideoInfo.notice`` says so in one sentence.
"""

from __future__ import annotations

import io
import logging
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

from nst.images import MIN_SIDE, resize_to

logger = logging.getLogger(__name__)

VideoSource = str | os.PathLike | bytes

# Containers FFmpeg opens that hold one still picture rather than a clip.
_STILL_IMAGE_FORMATS = ("image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe")
# Frame intervals that differ by more than this fraction of the median make a variable rate.
VFR_TOLERANCE = 0.25
MAX_FPS = 60.0
AUDIO_BITRATE = 128_000


class VideoError(ValueError):
    """A clip that cannot be used; the message is one sentence for the user."""


@dataclass(frozen=True)
class VideoInfo:
    """What ``probe`` learned about a clip.

    Attributes:
        width, height: upright frame size in pixels (after rotation metadata).
        fps: the constant rate the frames are read at.
        frames: how many frames ``read_frames`` yields (at ``fps``).
        duration: seconds.
        rotation: degrees counterclockwise the stored frames are turned to be upright.
        variable_rate: the clip had uneven frame intervals and is resampled to ``fps``.
        has_audio: the clip has an audio track.
    """

    width: int
    height: int
    fps: float
    frames: int
    duration: float
    rotation: int
    variable_rate: bool
    has_audio: bool
    format: str
    codec: str

    @property
    def notice(self) -> str | None:
        """A sentence about what was done to the clip while reading it, or None."""
        if self.variable_rate:
            return (
                f"The clip has a variable frame rate; it is resampled to a constant "
                f"{self.fps:g} frames per second."
            )
        return None


def _open(source: VideoSource) -> Any:
    if isinstance(source, bytes | bytearray):
        return av.open(io.BytesIO(bytes(source)), "r")
    path = Path(source)
    if not path.is_file():
        raise VideoError(f"There is no file '{path}'.")
    return av.open(str(path), "r")


def _video_stream(container: Any) -> Any:
    if container.format.name in _STILL_IMAGE_FORMATS or not container.streams.video:
        still = container.format.name in _STILL_IMAGE_FORMATS
        raise VideoError(
            "This is a still image, not a video; stylize it on the Stylize page or with "
            "python -m nst."
            if still
            else "This file has no video track; choose an MP4, MOV, WebM or animated GIF clip."
        )
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return stream


_NOT_A_VIDEO = "This file is not a video FFmpeg can read; choose an MP4, MOV, WebM or animated GIF."
_BROKEN = "The clip is broken or truncated ({detail}); re-export it and try again."


def probe(source: VideoSource, *, max_pixels: int | None = None) -> VideoInfo:
    """Open and check a clip without decoding its pictures; raise ``VideoError`` if unusable.

    The packets are read (cheap) to count the frames and to measure the frame intervals.
    ``max_pixels`` caps the pixels of one stored frame.
    """
    try:
        container = _open(source)
    except VideoError:
        raise
    except av.error.FFmpegError as error:
        if _looks_like_video(source):
            raise VideoError(_BROKEN.format(detail=error.strerror.lower())) from None
        raise VideoError(_NOT_A_VIDEO) from None
    with container:
        stream = _video_stream(container)
        context = stream.codec_context
        if not context.width or not context.height:
            raise VideoError(_NOT_A_VIDEO)
        if max_pixels is not None and context.width * context.height > max_pixels:
            raise VideoError(
                f"The clip's frames are {context.width}x{context.height} pixels, over the "
                f"limit of {max_pixels:,}; use a smaller clip."
            )
        has_audio = bool(container.streams.audio)
        declared = stream.frames
        times: list[float] = []
        try:
            for packet in container.demux(stream):
                if packet.size and packet.pts is not None:
                    times.append(float(packet.pts * stream.time_base))
        except av.error.FFmpegError as error:
            raise VideoError(_BROKEN.format(detail=error.strerror.lower())) from None
    if not times:
        raise VideoError("The clip has no frames; choose another clip.")
    if declared and len(times) < declared:
        raise VideoError(
            _BROKEN.format(detail=f"only {len(times)} of its {declared} frames are there")
        )
    rotation = _first_rotation(source)  # and proves that the pictures decode
    times.sort()
    fps, variable = _frame_rate(times, stream)
    duration = times[-1] - times[0] + 1.0 / fps
    frames = len(times) if not variable else max(1, math.floor(duration * fps + 1e-6))
    width, height = context.width, context.height
    if rotation % 180:
        width, height = height, width
    return VideoInfo(
        width=width,
        height=height,
        fps=fps,
        frames=frames,
        duration=duration,
        rotation=rotation,
        variable_rate=variable,
        has_audio=has_audio,
        format=container.format.name,
        codec=context.name,
    )


# The first bytes of the containers we take (MP4/MOV "ftyp" at offset 4, Matroska/WebM, GIF,
# AVI): a file that starts like one of them but does not open is broken, not "not a video".
_SIGNATURES = (
    (4, b"ftyp"),
    (4, b"moov"),
    (4, b"mdat"),
    (4, b"wide"),
    (0, b"\x1aE\xdf\xa3"),
    (0, b"GIF8"),
    (8, b"AVI "),
)


def _looks_like_video(source: VideoSource) -> bool:
    if isinstance(source, bytes | bytearray):
        head = bytes(source[:16])
    else:
        with open(source, "rb") as file:
            head = file.read(16)
    return any(head[offset : offset + len(mark)] == mark for offset, mark in _SIGNATURES)


def _first_rotation(source: VideoSource) -> int:
    """Degrees counterclockwise of the display matrix on the first decoded frame."""
    try:
        with _open(source) as container:
            for frame in container.decode(video=0):
                return round((frame.rotation or 0) / 90.0) * 90 % 360
    except av.error.FFmpegError as error:
        raise VideoError(_BROKEN.format(detail=error.strerror.lower())) from None
    raise VideoError("The clip has no frames; choose another clip.")


def _frame_rate(times: list[float], stream: Any) -> tuple[float, bool]:
    """(frames per second, whether the intervals vary) from sorted presentation times."""
    intervals = np.diff(np.asarray(times))
    intervals = intervals[intervals > 0]
    if intervals.size == 0:
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        return float(min(MAX_FPS, float(rate))), False
    median = float(np.median(intervals))
    variable = bool(np.any(np.abs(intervals - median) > VFR_TOLERANCE * median))
    if variable:
        mean = (times[-1] - times[0]) / intervals.size
        fps = min(MAX_FPS, max(1.0, round(1.0 / mean, 2)))
    else:
        fps = min(MAX_FPS, 1.0 / median)
        if stream.average_rate and abs(float(stream.average_rate) - fps) < 0.01 * fps:
            fps = float(stream.average_rate)
    return round(fps, 3), variable


def frame_shape(info: VideoInfo, size: int) -> tuple[int, int]:
    """(height, width) of the frames at a longest side of about ``size``: even, for H.264."""
    scale = size / max(info.height, info.width)
    height = max(MIN_SIDE, round(info.height * scale))
    width = max(MIN_SIDE, round(info.width * scale))
    return height - height % 2, width - width % 2


def read_frames(
    source: VideoSource,
    info: VideoInfo,
    shape: tuple[int, int],
    *,
    max_frames: int | None = None,
) -> Iterator[np.ndarray]:
    """Upright float32 RGB frames in [0, 1] of ``shape``, at ``info.fps``, in order.

    Raises ``VideoError`` if the pictures stop decoding part-way (a truncated file).
    """
    limit = info.frames if max_frames is None else min(max_frames, info.frames)
    if limit <= 0:
        return
    turns = info.rotation // 90
    produced = 0
    start: float | None = None
    pending: np.ndarray | None = None
    try:
        with _open(source) as container:
            stream = _video_stream(container)
            for frame in container.decode(stream):
                picture = frame.to_ndarray(format="rgb24")
                if turns:
                    picture = np.rot90(picture, k=turns)
                image = resize_to(np.ascontiguousarray(picture).astype(np.float32) / 255.0, *shape)
                if not info.variable_rate:
                    yield image
                    produced += 1
                    if produced >= limit:
                        return
                    continue
                # Constant-rate resampling: output frame k shows the latest frame whose
                # presentation time is at or before k / fps.
                time = float(frame.pts * stream.time_base) if frame.pts is not None else 0.0
                start = time if start is None else start
                while pending is not None and produced / info.fps < time - start - 1e-6:
                    yield pending
                    produced += 1
                    if produced >= limit:
                        return
                pending = image
            while pending is not None and produced < limit:
                yield pending
                produced += 1
    except av.error.FFmpegError as error:
        raise VideoError(_BROKEN.format(detail=error.strerror.lower())) from None
    if produced == 0:
        raise VideoError("The clip has no frames; choose another clip.")


def _to_uint8(frame: np.ndarray) -> np.ndarray:
    if frame.dtype == np.uint8:
        return frame
    return (np.clip(frame, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def encode_mp4(
    frames: Iterable[np.ndarray],
    fps: float,
    *,
    audio_from: VideoSource | None = None,
    crf: int = 18,
) -> bytes:
    """H.264 MP4 bytes of RGB frames (float in [0, 1] or uint8, even sides).

    With ``audio_from``, that clip's first audio track is re-encoded to AAC and cut to the
    length of the frames (so a stopped run keeps the matching part of the sound).
    """
    frames = [_to_uint8(frame) for frame in frames]
    if not frames:
        raise VideoError("There are no frames to write.")
    height, width = frames[0].shape[:2]
    buffer = io.BytesIO()
    rate = Fraction(fps).limit_denominator(1001)
    source = _open(audio_from) if audio_from is not None else None
    try:
        with av.open(buffer, "w", format="mp4") as output:
            # Every stream is added before the first packet: the header is written then.
            video = output.add_stream("libx264", rate=rate)
            video.width, video.height, video.pix_fmt = width, height, "yuv420p"
            video.options = {"crf": str(crf), "preset": "medium"}
            audio_in = source.streams.audio[0] if source and source.streams.audio else None
            audio_out = None
            if audio_in is not None:
                sample_rate = audio_in.codec_context.sample_rate or 44100
                audio_out = output.add_stream("aac", rate=sample_rate)
                audio_out.bit_rate = AUDIO_BITRATE
            for frame in frames:
                for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    output.mux(packet)
            for packet in video.encode():
                output.mux(packet)
            if audio_in is not None and audio_out is not None:
                _copy_audio(source, audio_in, output, audio_out, len(frames) / float(rate))
    finally:
        if source is not None:
            source.close()
    return buffer.getvalue()


def _copy_audio(container: Any, stream: Any, output: Any, audio: Any, seconds: float) -> None:
    """Re-encode ``stream`` of ``container`` into ``audio`` of ``output``, up to ``seconds``."""
    rate = audio.codec_context.sample_rate
    resampler = av.AudioResampler(format="fltp", layout="stereo", rate=rate)
    samples_left = round(seconds * rate)
    wanted = samples_left
    try:
        for frame in container.decode(stream):
            for chunk in resampler.resample(frame):
                if samples_left <= 0:
                    break
                if chunk.samples > samples_left:
                    data = np.ascontiguousarray(chunk.to_ndarray()[:, :samples_left])
                    chunk = av.AudioFrame.from_ndarray(data, format="fltp", layout="stereo")
                    chunk.sample_rate = rate
                samples_left -= chunk.samples
                chunk.pts = None
                for packet in audio.encode(chunk):
                    output.mux(packet)
            if samples_left <= 0:
                break
    except av.error.FFmpegError as error:
        # A damaged audio tail must not cost the user the stylized video: the sound decoded
        # up to the damage is kept, and the log says how much.
        kept = (wanted - max(samples_left, 0)) / rate
        logger.warning(
            "The clip's audio could not be decoded after %.1f s (%s); the result keeps the "
            "sound up to there.",
            kept,
            error,
        )
    for packet in audio.encode():
        output.mux(packet)


def encode_animation(frames: Iterable[np.ndarray], fps: float, *, format: str = "webp") -> bytes:
    """An endlessly looping animated WebP (lossy, small) or GIF of RGB frames."""
    pictures = [Image.fromarray(_to_uint8(frame)) for frame in frames]
    if not pictures:
        raise VideoError("There are no frames to write.")
    buffer = io.BytesIO()
    duration = max(20, round(1000.0 / fps))  # milliseconds; browsers slow GIF delays under 20
    options: dict[str, Any] = {"save_all": True, "append_images": pictures[1:], "loop": 0}
    if format == "webp":
        pictures[0].save(buffer, "WEBP", duration=duration, quality=80, method=4, **options)
    elif format == "gif":
        pictures[0].save(buffer, "GIF", duration=duration, optimize=False, **options)
    else:
        raise ValueError(f"format: must be webp or gif; got {format!r}.")
    return buffer.getvalue()
