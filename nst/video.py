"""Stylizing a clip without flicker (Ruder, Dosovitskiy & Brox, "Artistic style transfer for
videos", 2016).

Frame by frame, every frame lands on a different local optimum and the result flickers. Here:

- the first frame is stylized like a still image (``VideoConfig.first_frame_steps``);
- every later frame starts from the previous result warped into it by the optical flow
  (OpenCV's DIS flow, ``cv2.remap``), and runs ``frame_steps`` steps;
- a temporal loss keeps it close to that warped result where the flow is reliable: not where
  forward and backward flow disagree (disocclusions) nor at motion boundaries (the paper's
  tests and thresholds), with the mask's edges softened a little.

With ``StyleConfig.method == "instant"`` the clip goes through the instant network instead,
steadied along the same flow (``nst.instant.video``).

TensorFlow is imported only when a run starts, so the web tier can import this module.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from nst.config import StyleConfig, VideoConfig
from nst.records import CancelToken, Progress, Result

# A squared error of 0.01 (a difference of 0.1 in [0, 1] pixel values) makes the temporal
# term 1 before its weight: the same footing as the content and style terms (about 1 for an
# unrelated image), at any size.
TEMPORAL_SCALE = 0.01

# Ruder et al., section 3.2: a pixel is disoccluded where the forward flow, warped into the
# frame, does not cancel the backward flow: |w~ + w^|^2 > 0.01 (|w~|^2 + |w^|^2) + 0.5; it is on
# a motion boundary where |grad u^|^2 + |grad v^|^2 > 0.01 |w^|^2 + 0.002 (flows in pixels).
CONSISTENCY_RELATIVE = 0.01
CONSISTENCY_ABSOLUTE = 0.5
BOUNDARY_RELATIVE = 0.01
BOUNDARY_ABSOLUTE = 0.002
# Soften the mask's edges: a Gaussian of this sigma (pixels), multiplied by the hard mask so
# that unreliable pixels stay exactly 0.
MASK_BLUR_SIGMA = 1.0


# ----- optical flow, warping and the reliability mask (NumPy/OpenCV only) -----


def _gray(frame: np.ndarray) -> np.ndarray:
    rgb = (np.clip(frame, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def optical_flow(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Dense flow (h, w, 2) in pixels from ``source`` to ``target`` (RGB in [0, 1]).

    ``source(x) ~ target(x + flow(x))``. DIS (Kroeger et al. 2016) at its "medium" preset.
    """
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(_gray(source), _gray(target), None)


def warp(image: np.ndarray, flow: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """``image`` sampled at ``x + flow(x)`` (bilinear by default, edges replicated): an
    (h, w, c) array. ``interpolation`` is an OpenCV flag (``cv2.INTER_CUBIC``, ...)."""
    height, width = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(
        np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32)
    )
    map_x = grid_x + flow[..., 0]
    map_y = grid_y + flow[..., 1]
    warped = cv2.remap(
        np.ascontiguousarray(image, dtype=np.float32),
        map_x,
        map_y,
        interpolation=interpolation,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return warped.reshape(image.shape)


def reliability_mask(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Weights (h, w) in [0, 1] of frame i: 0 where the flow back to frame i-1 is unreliable.

    Args:
        backward: flow from frame i to frame i-1 (``optical_flow(frame_i, frame_prev)``).
        forward: flow from frame i-1 to frame i.
    """
    forward_here = warp(forward, backward)  # the forward flow seen from frame i
    total = forward_here + backward
    disagreement = np.sum(total**2, axis=2)
    magnitudes = np.sum(forward_here**2, axis=2) + np.sum(backward**2, axis=2)
    occluded = disagreement > CONSISTENCY_RELATIVE * magnitudes + CONSISTENCY_ABSOLUTE
    grad_u_y, grad_u_x = np.gradient(backward[..., 0])
    grad_v_y, grad_v_x = np.gradient(backward[..., 1])
    variation = grad_u_x**2 + grad_u_y**2 + grad_v_x**2 + grad_v_y**2
    boundary = variation > BOUNDARY_RELATIVE * np.sum(backward**2, axis=2) + BOUNDARY_ABSOLUTE
    hard = (~(occluded | boundary)).astype(np.float32)
    soft = cv2.GaussianBlur(hard, (0, 0), MASK_BLUR_SIGMA)
    return hard * soft


@dataclass(frozen=True)
class FrameMotion:
    """How frame i relates to frame i-1: the backward flow and its reliability weights."""

    backward: np.ndarray  # (h, w, 2): frame i -> frame i-1
    mask: np.ndarray  # (h, w) in [0, 1]


def frame_motion(previous: np.ndarray, current: np.ndarray) -> FrameMotion:
    """Flow from ``current`` back to ``previous`` and where it can be trusted."""
    backward = optical_flow(current, previous)
    forward = optical_flow(previous, current)
    return FrameMotion(backward, reliability_mask(backward, forward))


def temporal_error(current: np.ndarray, previous: np.ndarray, motion: FrameMotion) -> float:
    """Mean over reliable pixels of |current - previous warped into the current frame|."""
    difference = np.abs(current - warp(previous, motion.backward)).mean(axis=2)
    weight = float(motion.mask.sum())
    if weight <= 0:
        return float("nan")
    return float((difference * motion.mask).sum() / weight)


# ----- the temporal loss (TensorFlow, imported when used) -----


class TemporalLoss:
    """The extra loss term of a frame: masked mean squared difference to the warped result.

    Its target and mask are ``tf.Variable``s of a fixed shape, assigned for each frame.
    """

    def __init__(self, shape: tuple[int, int], weight: float) -> None:
        import tensorflow as tf

        height, width = shape
        self.weight = float(weight)
        self.target = tf.Variable(tf.zeros((1, height, width, 3)), trainable=False)
        self.mask = tf.Variable(tf.zeros((1, height, width, 1)), trainable=False)
        # One callable for every frame of the clip.
        self._loss = tf.autograph.experimental.do_not_convert(self.__call__)

    def assign(self, target: np.ndarray, mask: np.ndarray) -> None:
        self.target.assign(target[None].astype(np.float32))
        self.mask.assign(mask[None, ..., None].astype(np.float32))

    def loss(self) -> Callable[[Any], dict[str, Any]]:
        """The ``extra_loss`` function for the engine.

        Kept out of autograph (no Python control flow on tensors here): converting a callable
        object's method inside the engine's ``tf.function`` resolved the wrong method. The same
        object for every frame: the target and mask are read from their variables at each call.
        """
        return self._loss

    def __call__(self, image: Any) -> dict[str, Any]:
        import tensorflow as tf

        squared = tf.reduce_sum(self.mask * tf.square(image - self.target))
        reliable = 3.0 * tf.maximum(tf.reduce_sum(self.mask), 1.0)
        return {"temporal": self.weight * squared / reliable / TEMPORAL_SCALE}


# ----- the loop -----


@dataclass(frozen=True)
class FrameStep:
    """One optimization step of one frame (``index`` is 0-based, like ``FrameDone.index``)."""

    index: int
    frames: int
    progress: Progress


@dataclass(frozen=True)
class FrameDone:
    """A finished frame.

    Attributes:
        image: the stylized frame, float32 RGB in [0, 1] at the working size, before the
            colour adjustments (``nst.config.Adjustments``).
        parts: the loss terms of its last step. reliable: share of pixels the temporal loss
            covered (0 for the first frame). seconds: time spent on it.
    """

    index: int
    frames: int
    image: np.ndarray
    content: np.ndarray
    parts: dict[str, float]
    reliable: float
    seconds: float
    steps: int


@dataclass
class VideoOutcome:
    """How a video run ended: ``frames`` holds every finished frame."""

    frames: list[FrameDone] = field(default_factory=list)
    stopped: bool = False
    error: str | None = None


def stylize_video(
    frames: Iterable[np.ndarray],
    styles: Sequence[np.ndarray],
    config: StyleConfig,
    video: VideoConfig,
    *,
    frame_count: int,
    cancel: CancelToken | None = None,
    temporal: bool = True,
    outcome: VideoOutcome | None = None,
) -> Iterator[FrameStep | FrameDone]:
    """Stylize ``frames`` (float32 RGB in [0, 1], all of one shape: the working size) in order.

    Yields a ``FrameStep`` per optimization step and a ``FrameDone`` per finished frame. With
    ``temporal=False`` every frame is stylized on its own from ``config.init`` with
    ``first_frame_steps`` (frame by frame, the baseline). When ``cancel`` is set, the frame in
    progress is dropped and the loop ends; ``outcome`` (if given) collects the finished frames,
    ``stopped`` and any numerical ``error``. The run is checked once, at its first frame
    (every frame has the same shape and settings but for the step counts).

    With ``config.method == "instant"`` every frame goes through the instant network instead
    (``nst.instant.video.stylize_instant_video``): one ``FrameDone`` per frame and no steps,
    steadied by ``video.temporal_weight`` (see ``instant_steadiness``), or frame by frame with
    ``temporal=False``.
    """
    if config.method == "instant":
        from nst.instant.video import instant_steadiness, stylize_instant_video

        yield from stylize_instant_video(
            frames,
            styles,
            config,
            frame_count=frame_count,
            steadiness=instant_steadiness(video.temporal_weight) if temporal else 0.0,
            cancel=cancel,
            outcome=outcome,
        )
        return
    from nst.engine import check_run, optimize

    cancel = cancel or CancelToken()
    outcome = outcome if outcome is not None else VideoOutcome()
    temporal_loss: TemporalLoss | None = None
    previous: tuple[np.ndarray, np.ndarray] | None = None  # (content, raw result) of frame i-1
    for index, content in enumerate(frames):
        if cancel.cancelled:
            outcome.stopped = True
            return
        started = time.perf_counter()
        size = max(content.shape[:2])
        init_image = extra_loss = None
        reliable = 0.0
        if temporal and previous is not None:
            motion = frame_motion(previous[0], content)
            init_image = warp(previous[1], motion.backward)
            reliable = float(motion.mask.mean())
            if video.temporal_weight > 0:
                if temporal_loss is None:
                    temporal_loss = TemporalLoss(content.shape[:2], video.temporal_weight)
                target = init_image
                if config.preserve_colors == "luminance":  # the loss sees luminance only
                    from nst.color import gray_rgb, luminance

                    target = gray_rgb(luminance(init_image))
                temporal_loss.assign(target, motion.mask)
                extra_loss = temporal_loss.loss()
            steps = video.frame_steps
            frame_config = config.replace(size=size, steps=steps, scales=1)
        else:
            steps = video.first_frame_steps
            frame_config = config.replace(size=size, steps=steps)
        if index == 0:
            check_run(content, styles, frame_config)
        result: Result | None = None
        for event in optimize(
            content,
            styles,
            frame_config,
            init_image=init_image,
            cancel=cancel,
            extra_loss=extra_loss,
        ):
            if isinstance(event, Result):
                result = event
            else:
                yield FrameStep(index, frame_count, event)
        assert result is not None
        if result.stopped or cancel.cancelled:
            outcome.stopped = True
            return
        if result.error:
            outcome.error = result.error
            return
        parts = {
            key: value
            for key, value in (result.history[-1] if result.history else {}).items()
            if key not in ("step", "elapsed")
        }
        done = FrameDone(
            index=index,
            frames=frame_count,
            image=result.image,
            content=content,
            parts=parts,
            reliable=reliable,
            seconds=time.perf_counter() - started,
            steps=result.steps_done,
        )
        outcome.frames.append(done)
        yield done
        previous = (content, result.image)


def estimate_pixels(frames: int, shape: tuple[int, int]) -> int:
    """Frames x output pixels, the figure ``VideoConfig.max_video_pixels`` caps."""
    return int(frames) * int(shape[0]) * int(shape[1])


def check_size(frames: int, shape: tuple[int, int], video: VideoConfig) -> None:
    """Raise ``ValueError`` with the figures if a run would exceed the video pixel cap."""
    total = estimate_pixels(frames, shape)
    if total > video.max_video_pixels:
        per_frame = shape[0] * shape[1]
        most = max(1, video.max_video_pixels // per_frame)
        raise ValueError(
            f"The clip is too long for this size: {frames} frames x {shape[1]}x{shape[0]} px "
            f"= {total:,} pixels, over the cap of {video.max_video_pixels:,}; stylize at most "
            f"{most} frames at this size (max frames), or choose a smaller size."
        )
