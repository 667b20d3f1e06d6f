"""The optimizer on a clip, without flicker (Ruder, Dosovitskiy & Brox, "Artistic style transfer
for videos", 2016).

Frame by frame, every frame lands on a different local optimum and the result flickers. Here:

- the first frame is stylized like a still image (``VideoConfig.first_frame_steps``), from the
  start image its caller gives (the front door's instant picture, ``nst.front``);
- every later frame starts from the previous result warped into it by the optical flow
  (``nst.motion``), and runs ``frame_steps`` steps;
- a temporal loss keeps it close to that warped result where the flow is reliable.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from nst.config import StyleConfig
from nst.engine.run import optimize
from nst.motion import frame_motion, warp
from nst.records import CancelToken, FrameDone, FrameStep, Result, VideoOutcome
from nst.video_config import VideoConfig

# A squared error of 0.01 (a difference of 0.1 in [0, 1] pixel values) makes the temporal
# term 1 before its weight: the same footing as the content and style terms, at any size.
TEMPORAL_SCALE = 0.01


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


def optimize_clip(
    frames: Iterable[np.ndarray],
    styles: Sequence[np.ndarray],
    config: StyleConfig,
    video: VideoConfig,
    *,
    frame_count: int,
    first_start: Callable[[np.ndarray], np.ndarray | None],
    cancel: CancelToken | None = None,
    temporal: bool = True,
    outcome: VideoOutcome | None = None,
) -> Iterator[FrameStep | FrameDone]:
    """Stylize ``frames`` (float32 RGB in [0, 1], all of one shape: the working size) in order.

    The caller has checked the run (``nst.front.check_clip``). Yields a ``FrameStep`` per
    optimization step and a ``FrameDone`` per finished frame. ``first_start(frame)`` gives the
    start image of a frame stylized from scratch (None: ``config.init``'s own). With
    ``temporal=False`` every frame is stylized on its own with ``first_frame_steps`` (frame by
    frame, the baseline). When ``cancel`` is set, the frame in progress is dropped and the loop
    ends; ``outcome`` (if given) collects the finished frames, ``stopped`` and any numerical
    ``error``.
    """
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
        init_image = instant = extra_loss = None
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
            instant = first_start(content)
        result: Result | None = None
        for event in optimize(
            content,
            styles,
            frame_config,
            init_image=init_image,
            instant=instant,
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
