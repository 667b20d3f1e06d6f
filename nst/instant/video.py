"""A clip through the instant network, steadied along the optical flow.

A feed-forward network applied frame by frame flickers: a small change in a frame (a sub-pixel
pan, noise) changes its strokes. Here every frame is painted by the network with one style
vector for the whole clip, and then, where the flow back to the previous frame is reliable,
blended with the previous *output* warped into the current frame:

    output_i = w * warp(output_{i-1}) + (1 - w) * painted_i,   w = steadiness * reliability

This is an exponential moving average of the painted frames along the motion: strokes that
stay put are kept, a disoccluded region or a motion boundary (reliability 0) takes the new
painting at once. The flow and the reliability mask are ``nst.motion``'s (DIS flow, Ruder et
al.'s consistency and boundary tests), found at half the frame size; the warp is bicubic.
``docs/video.md`` has the measurements behind these choices.

NumPy, OpenCV and onnxruntime only: no TensorFlow.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import cv2
import numpy as np

from nst import color
from nst.config import StyleConfig
from nst.images import resize_to
from nst.instant.networks import Networks, load_networks
from nst.instant.transfer import blended_vector, paint, painting_vectors, run_shape
from nst.motion import FrameMotion, frame_motion, warp
from nst.records import CancelToken, FrameDone, VideoOutcome
from nst.video_config import VideoConfig

# The previous output's share where the flow is reliable, at the default Steadiness slider:
# the value that steadies the clip most while the frames keep the painting's strokes
# (``python -m nst.bench --only video`` on trained features; docs/video.md has the figures).
DEFAULT_STEADINESS = 0.75
# Above this, the output would hardly follow the network any more: a frozen painting.
MAX_STEADINESS = 0.95
# The flow is found at half the frame size (not below FLOW_MIN_SIDE on the longest side): at
# full size the two DIS flows and the reliability tests cost a large share of the network's
# time, and steadying must not slow a clip much below the bare network's frame rate.
FLOW_SCALE = 0.5
FLOW_MIN_SIDE = 160


def instant_steadiness(temporal_weight: float) -> float:
    """The blend weight for a *Steadiness* (``VideoConfig.temporal_weight``) value.

    One slider for both methods: 0 is frame by frame, the slider's default gives
    ``DEFAULT_STEADINESS``, and larger values approach ``MAX_STEADINESS`` (the weight is
    ``t / (t + t0)``, with ``t0`` set by the default).
    """
    default = VideoConfig().temporal_weight
    half = default * (1.0 - DEFAULT_STEADINESS) / DEFAULT_STEADINESS
    weight = max(0.0, float(temporal_weight))
    return min(MAX_STEADINESS, weight / (weight + half))


def clip_vector(
    styles: Sequence[np.ndarray],
    config: StyleConfig,
    first_frame: np.ndarray,
    networks: Networks,
) -> np.ndarray:
    """The one (100,) style vector of a clip: the paintings' blend at the config's intensity.

    Computed once per clip, not per frame: a vector that followed each frame's own style would
    change the painting whenever the scene does. Style intensity interpolates towards the
    first frame's own style vector; with ``preserve_colors="histogram"`` the paintings are
    recoloured to the first frame's palette.
    """
    return blended_vector(painting_vectors(styles, config, first_frame, networks), config)


def paint_frame(
    frame: np.ndarray, vector: np.ndarray, config: StyleConfig, networks: Networks
) -> np.ndarray:
    """One frame through the network, returned at the frame's own size.

    The network runs at the frame's size divided by the style scale (as a still image does),
    and with ``preserve_colors="luminance"`` the frame's colours are put back.
    """
    height, width = frame.shape[:2]
    photo = resize_to(frame, *run_shape(frame.shape, config.replace(size=max(height, width))))
    painted = paint(networks, photo, vector)
    if config.preserve_colors == "luminance":
        painted = color.restore_chroma(painted, photo)
    return resize_to(painted, height, width)


def motion_between(previous: np.ndarray, current: np.ndarray) -> FrameMotion:
    """``nst.motion.frame_motion`` found at ``FLOW_SCALE`` of the frame size and brought back.

    The flow vectors are rescaled to full-size pixels and the reliability mask resized.
    """
    height, width = current.shape[:2]
    scale = max(FLOW_SCALE, min(1.0, FLOW_MIN_SIDE / max(height, width)))
    if scale >= 1.0:
        return frame_motion(previous, current)
    small = max(1, round(height * scale)), max(1, round(width * scale))
    found = frame_motion(resize_to(previous, *small), resize_to(current, *small))
    backward = cv2.resize(found.backward, (width, height), interpolation=cv2.INTER_LINEAR)
    backward *= np.float32([width / small[1], height / small[0]])
    mask = cv2.resize(found.mask, (width, height), interpolation=cv2.INTER_LINEAR)
    return FrameMotion(backward.astype(np.float32), np.clip(mask, 0.0, 1.0))


def steady(
    painted: np.ndarray, previous: np.ndarray, motion: FrameMotion, steadiness: float
) -> np.ndarray:
    """``painted`` blended with ``previous`` (the last output) warped into this frame.

    The previous output's weight is ``steadiness`` times the flow's reliability, so pixels the
    flow cannot follow (disocclusions, motion boundaries) are the new painting alone.
    """
    weight = (steadiness * motion.mask)[..., None]
    # Bicubic: the output is resampled again at every frame and kept, and a bilinear sample
    # is a small blur that, frame after frame, averages the strokes away.
    carried = warp(previous, motion.backward, interpolation=cv2.INTER_CUBIC)
    blended = weight * carried + (1.0 - weight) * painted
    return np.clip(blended, 0.0, 1.0).astype(np.float32)  # bicubic overshoots a little


def stylize_instant_video(
    frames: Iterable[np.ndarray],
    styles: Sequence[np.ndarray],
    config: StyleConfig,
    *,
    frame_count: int,
    steadiness: float = DEFAULT_STEADINESS,
    cancel: CancelToken | None = None,
    outcome: VideoOutcome | None = None,
    networks: Networks | None = None,
) -> Iterator[FrameDone]:
    """Stylize ``frames`` (float32 RGB in [0, 1], one shape: the working size) in order.

    Yields one ``nst.records.FrameDone`` per frame, the same record the optimizer's video loop
    yields (``parts`` empty, ``steps`` 1), so the CLI, the jobs and the page treat both alike.
    ``steadiness`` in [0, ``MAX_STEADINESS``]: 0 is frame by frame, higher keeps more of the
    previous output where the motion is reliable. The caller has checked the run
    (``nst.front.check_clip``). When ``cancel`` is set the loop ends before the next
    frame (the frame in progress is finished: it takes one pass of the network); ``outcome``
    (if given) collects the finished frames and ``stopped``.

    The flow between frame i-1 and frame i depends on the input frames only, so it is computed
    in a worker thread while the network paints frame i (OpenCV and onnxruntime both release
    the GIL).
    """
    if not 0.0 <= steadiness <= MAX_STEADINESS:
        raise ValueError(f"Steadiness must be between 0 and {MAX_STEADINESS}, not {steadiness}.")
    networks = networks or load_networks()
    cancel = cancel or CancelToken()
    outcome = outcome if outcome is not None else VideoOutcome()
    vector: np.ndarray | None = None
    previous: tuple[np.ndarray, np.ndarray] | None = None  # (frame, output) of frame i-1
    with ThreadPoolExecutor(max_workers=1) as pool:
        for index, content in enumerate(frames):
            if cancel.cancelled:
                outcome.stopped = True
                return
            started = time.perf_counter()
            if vector is None:
                vector = clip_vector(styles, config, content, networks)
            motion: Future[FrameMotion] | None = None
            if previous is not None and steadiness > 0:
                motion = pool.submit(motion_between, previous[0], content)
            image = paint_frame(content, vector, config, networks)
            reliable = 0.0
            if motion is not None and previous is not None:
                found = motion.result()
                image = steady(image, previous[1], found, steadiness)
                reliable = float(found.mask.mean())
            done = FrameDone(
                index=index,
                frames=frame_count,
                image=image,
                content=content,
                parts={},
                reliable=reliable,
                seconds=time.perf_counter() - started,
                steps=1,
            )
            outcome.frames.append(done)
            yield done
            previous = (content, image)
