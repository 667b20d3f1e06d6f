"""Clips the video tests make themselves with PyAV: good ones and every kind of bad one."""

from __future__ import annotations

import io
import os
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

from nst.synthetic import synthetic_frames

AUDIO_RATE = 44100


def _uint8(frame: np.ndarray) -> np.ndarray:
    return (np.clip(frame, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def make_clip(
    frames: list[np.ndarray] | None = None,
    *,
    fps: int = 12,
    audio: bool = False,
    rotation: int = 0,
    fmt: str = "mp4",
    pts_ms: list[int] | None = None,
    faststart: bool = False,
) -> bytes:
    """An H.264 clip of ``frames`` (default: 12 synthetic frames at 64x48).

    ``audio`` adds a 440 Hz AAC tone; ``rotation`` sets display-matrix rotation metadata
    (degrees counterclockwise, as phones write it); ``pts_ms`` gives each frame's presentation
    time in milliseconds (a variable frame rate).
    """
    frames = frames if frames is not None else synthetic_frames(12, 48, 64)
    height, width = frames[0].shape[:2]
    # faststart moves the index to the front in a second pass, which needs a real file.
    scratch = _scratch_file(fmt) if faststart else None
    target: Any = str(scratch) if scratch is not None else io.BytesIO()
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(target, "w", format=fmt, options=options) as output:
        video = output.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        if rotation:
            video.set_display_rotation(rotation)
        if pts_ms is not None:
            video.time_base = Fraction(1, 1000)
        sound = output.add_stream("aac", rate=AUDIO_RATE) if audio else None
        for index, frame in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(_uint8(frame), format="rgb24")
            if pts_ms is not None:
                picture.pts = pts_ms[index]
                picture.time_base = Fraction(1, 1000)
            for packet in video.encode(picture):
                output.mux(packet)
        for packet in video.encode():
            output.mux(packet)
        if sound is not None:
            seconds = len(frames) / fps
            count = int(seconds * AUDIO_RATE)
            samples = np.sin(2 * np.pi * 440 * np.arange(count) / AUDIO_RATE) * 0.5
            for start in range(0, samples.size, 1024):
                chunk = samples[start : start + 1024].astype(np.float32)[None]
                piece = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
                piece.sample_rate = AUDIO_RATE
                for packet in sound.encode(piece):
                    output.mux(packet)
            for packet in sound.encode():
                output.mux(packet)
    if scratch is None:
        return target.getvalue()
    data = scratch.read_bytes()
    scratch.unlink()
    return data


def _scratch_file(fmt: str) -> Path:
    handle, name = tempfile.mkstemp(suffix=f".{fmt}")
    os.close(handle)
    return Path(name)


def zero_frame_clip() -> bytes:
    """An AVI with a video track and no frames."""
    buffer = io.BytesIO()
    output = av.open(buffer, "w", format="avi")
    video = output.add_stream("libx264", rate=12)
    video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
    output.start_encoding()
    output.close()
    return buffer.getvalue()


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 100, 50)).save(buffer, "PNG")
    return buffer.getvalue()


def gif_bytes(frames: list[np.ndarray], durations: list[int]) -> bytes:
    """An animated GIF (possibly with uneven frame delays, in milliseconds)."""
    pictures = [Image.fromarray(_uint8(frame)) for frame in frames]
    buffer = io.BytesIO()
    pictures[0].save(
        buffer, "GIF", save_all=True, append_images=pictures[1:], duration=durations, loop=0
    )
    return buffer.getvalue()


def audio_stream_seconds(data: bytes) -> float:
    """Seconds of decoded audio in a clip (0 if it has none)."""
    with av.open(io.BytesIO(data)) as container:
        if not container.streams.audio:
            return 0.0
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return samples / stream.codec_context.sample_rate
