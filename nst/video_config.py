"""The knobs of a clip on top of a ``StyleConfig``: steadiness, step counts, clip limits.

The command line (``nst.cli.video``) and the Video page (``studio.video``) are generated from
these fields, as the still-image ones are from ``nst.config``.
"""

from __future__ import annotations

from dataclasses import dataclass

from nst.config import StyleConfig
from nst.knobs import Knobs, knob

# Video: the still-image settings apply to every frame; the step counts derive from ``steps``.
_STILL_DEFAULTS = StyleConfig()


@dataclass(frozen=True)
class VideoConfig(Knobs):
    """Settings of a video run (Ruder, Dosovitskiy & Brox 2016) on top of a ``StyleConfig``.

    ``StyleConfig.steps`` is not used for video: the first frame gets ``first_frame_steps``
    (it is a still image, started from ``init``), every later frame ``frame_steps`` from the
    previous result warped by the optical flow.
    """

    # Cuts most of the flicker while the frames keep frame-by-frame quality; much more stiffens
    # and blurs them (``python -m nst.bench --only video``, docs/video.md).
    temporal_weight: float = knob(
        5.0,
        "Steadiness",
        "Temporal weight: how strongly each frame keeps the previous frame's painting where "
        "the motion is reliable; higher values flicker less, 0 stylizes frames independently.",
        "float",
        "video",
        minimum=0.0,
        maximum=1000.0,
        step=0.1,
        log=True,
    )
    first_frame_steps: int = knob(
        _STILL_DEFAULTS.steps,
        "First-frame steps",
        "Optimization steps of the first frame, which starts from scratch like a still image.",
        "int",
        "video",
        minimum=1,
        maximum=5000,
        step=10,
    )
    frame_steps: int = knob(
        max(1, _STILL_DEFAULTS.steps // 2),
        "Steps per frame",
        "Optimization steps of every later frame, which starts from the previous result.",
        "int",
        "video",
        minimum=1,
        maximum=5000,
        step=5,
    )
    max_frames: int = knob(
        0,
        "Max frames",
        "Stylize only the first this many frames of the clip (0: the whole clip).",
        "int",
        "video",
        minimum=0,
        maximum=100_000,
        step=1,
    )
    max_video_pixels: int = knob(
        100_000_000,
        "Video pixel cap",
        "Clips whose frames x output pixels exceed this are refused before the run starts.",
        "int",
        "video-limits",
        minimum=1_000_000,
        maximum=10_000_000_000,
        step=1_000_000,
    )
    max_animation_frames: int = knob(
        150,
        "Animation frame cap",
        "Results with at most this many frames are also offered as an animated WebP and GIF.",
        "int",
        "video-limits",
        minimum=1,
        maximum=10_000,
        step=1,
    )
