"""Live camera frames through the instant network, steadied along the motion, at frame rate.

``LiveProcessor`` paints one camera frame at a time (uint8 RGB in, uint8 RGB of the same shape
out) the way the instant video method paints a clip (``nst.instant.video``): one style vector
per painting choice, the network at a working size, and the previous output carried along the
flow where it is reliable. On top of that, for a stream that must keep up with a camera:

- The working size adapts: the network paints at most ``LiveSettings.side`` on the longest
  side, less while a frame takes longer than the frame-rate budget (``TARGET_FPS``), and more
  again once frames are quick; the output is scaled back to the camera's size.
- A stream holds one of the process's live slots (``LiveSlots``, ``NST_MAX_LIVE``) while it
  runs; a stream that finds none taken returns dimmed camera frames and says why.
- While ``busy()`` says that a stylization is computing in this process, the stream waits as
  long as each frame took before the next, leaving that run at least half the processor.
- Nothing is kept but the current frame (for a snapshot) and the previous one with its output
  (for steadiness); ``close()`` drops them.

NumPy, OpenCV and onnxruntime only: no TensorFlow, no Streamlit.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

from nst.config import StyleConfig
from nst.images import working_shape
from nst.instant.networks import Networks, load_networks
from nst.instant.video import MAX_STEADINESS, clip_vector, motion_between, paint_frame, steady
from nst.knobs import FieldSpec

MAX_LIVE_ENV = "NST_MAX_LIVE"
# The live size: the longest side the network paints a camera frame at, at most.
LIVE_SIDE = 320
MIN_LIVE_SIDE = 128
MAX_LIVE_SIDE = 960
SIDE_STEP = 16
# The frame rate the adaptation keeps up with: a frame that takes longer than 1 / TARGET_FPS
# means the machine falls behind (docs/live.md has the measurements).
TARGET_FPS = 12.0
ADAPT_EVERY = 4  # frames between two changes of the working size, so the average settles
SLOW_MARGIN = 1.1  # shrink when the average frame takes this much of the budget or more
FAST_MARGIN = 0.6  # grow back when it takes this much or less
STALE_SECONDS = 10.0  # a slot whose stream sent no frame for this long is free again
FPS_WINDOW_SECONDS = 2.0
REFUSED_DIMMING = 0.25  # a refused stream shows the camera this dark, so nobody mistakes it


def live_side_spec() -> FieldSpec:
    """The *Live size* slider's spec: default, bounds and help in one place."""
    return FieldSpec(
        name="side",
        label="Live size (px)",
        help="Longest side the network paints the camera at. When the machine falls behind "
        f"{TARGET_FPS:g} frames a second, the studio paints smaller until it keeps up again.",
        default=LIVE_SIDE,
        kind="int",
        group="live",
        minimum=MIN_LIVE_SIDE,
        maximum=MAX_LIVE_SIDE,
        step=SIDE_STEP,
    )


def max_live_streams() -> int:
    """How many live streams this process paints at once: ``NST_MAX_LIVE``, else one per four
    CPU cores (at least one), or four where onnxruntime has CUDA.

    Raises ``ValueError`` with one sentence when the variable is not a whole number >= 0.
    """
    text = os.environ.get(MAX_LIVE_ENV, "").strip()
    if text:
        try:
            value = int(text)
        except ValueError:
            value = -1
        if value < 0:
            raise ValueError(
                f"{MAX_LIVE_ENV} must be a whole number of live streams (0 turns the Live page "
                f"off), not {text!r}."
            )
        return value
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        return 4
    return max(1, (os.cpu_count() or 1) // 4)


class LiveSlots:
    """The process's live streams: at most ``capacity`` hold a slot at once (thread-safe).

    A holder that stops touching its slot for ``STALE_SECONDS`` (its tab vanished without a
    goodbye) loses it to the next stream that asks.
    """

    def __init__(self, capacity: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = capacity
        self._clock = clock
        self._lock = threading.Lock()
        self._holders: dict[int, float] = {}  # id(holder) -> clock() of its last frame

    def acquire(self, holder: object) -> bool:
        """Take (or keep) a slot for ``holder``; False when all are taken."""
        now = self._clock()
        with self._lock:
            for key, seen in list(self._holders.items()):
                if now - seen > STALE_SECONDS:
                    del self._holders[key]
            if id(holder) in self._holders or len(self._holders) < self.capacity:
                self._holders[id(holder)] = now
                return True
            return False

    def release(self, holder: object) -> None:
        with self._lock:
            self._holders.pop(id(holder), None)

    def holds(self, holder: object) -> bool:
        with self._lock:
            return id(holder) in self._holders

    def in_use(self) -> int:
        now = self._clock()
        with self._lock:
            return sum(now - seen <= STALE_SECONDS for seen in self._holders.values())


_slots: LiveSlots | None = None
_slots_lock = threading.Lock()


def live_slots() -> LiveSlots:
    """The process-wide ``LiveSlots`` (``max_live_streams()`` of them), made on first use."""
    global _slots
    with _slots_lock:
        if _slots is None:
            _slots = LiveSlots(max_live_streams())
        return _slots


@dataclass(frozen=True)
class LiveSettings:
    """What the page's controls set for the stream (checked on construction)."""

    side: int = LIVE_SIDE  # the largest working size (longest side, px)
    steadiness: float = 0.0  # 0: frame by frame; up to MAX_STEADINESS
    target_fps: float = TARGET_FPS

    def __post_init__(self) -> None:
        if not MIN_LIVE_SIDE <= self.side <= MAX_LIVE_SIDE:
            raise ValueError(
                f"The live size must be between {MIN_LIVE_SIDE} and {MAX_LIVE_SIDE} px, "
                f"not {self.side}."
            )
        if not 0.0 <= self.steadiness <= MAX_STEADINESS:
            raise ValueError(
                f"Steadiness must be between 0 and {MAX_STEADINESS}, not {self.steadiness}."
            )
        if not self.target_fps > 0:
            raise ValueError(f"The target frame rate must be above 0, not {self.target_fps}.")


@dataclass(frozen=True)
class LiveStats:
    """How the stream is doing, for the page to show."""

    state: str  # "idle", "no_style", "painting", "refused", "stopped"
    fps: float  # stylized frames per second over the last ``FPS_WINDOW_SECONDS``
    frame_shape: tuple[int, int] | None  # (height, width) of the camera's frames
    work_shape: tuple[int, int] | None  # (height, width) the network paints at now
    frame_seconds: float  # the running average of one frame's work
    reduced: bool  # the working size is below the chosen live size to keep up
    yielding: bool  # a stylization computes in this process: the stream leaves it room
    frames: int  # frames painted since the stream started
    last_frame_age: float | None  # seconds since the last camera frame arrived


@dataclass(frozen=True)
class _Style:
    key: object
    styles: tuple[np.ndarray, ...]
    config: StyleConfig


class LiveProcessor:
    """Paints a camera stream, one frame at a time (see the module's docstring).

    ``process`` runs in the stream's thread; ``set_style``, ``set_settings``, ``stats`` and
    ``latest_frame`` may be called from any other thread at the same time.
    """

    def __init__(
        self,
        *,
        networks: Networks | None = None,
        slots: LiveSlots | None = None,
        busy: Callable[[], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._networks = networks
        self._slots = slots
        self._busy = busy or (lambda: False)
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()  # guards everything below that the page reads or sets
        self._work = threading.Lock()  # one frame at a time
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="live-flow")
        self._settings = LiveSettings()
        self._style: _Style | None = None
        self._vector: np.ndarray | None = None
        self._vector_key: object = None
        self._side = LIVE_SIDE
        self._average: float | None = None
        self._since_change = 0
        self._previous: tuple[np.ndarray, np.ndarray] | None = None  # (input, output), work size
        self._latest: np.ndarray | None = None
        self._latest_at: float | None = None
        self._painted_at: deque[float] = deque()
        self._state = "idle"
        self._frame_shape: tuple[int, int] | None = None
        self._work_shape: tuple[int, int] | None = None
        self._yielding = False
        self._frames = 0

    # The page's side ------------------------------------------------------------------------

    def set_style(self, key: object, styles: Sequence[np.ndarray], config: StyleConfig) -> None:
        """The paintings (float32 RGB) and the settings their style vector is made with
        (intensity, blend, colours); ``key`` names the choice, and the vector is computed again
        (at the next frame, against it) only when the key changes. No styles: no painting."""
        with self._lock:
            if not styles:
                self._style = None
            elif self._style is None or self._style.key != key:
                self._style = _Style(key, tuple(styles), config)

    def set_settings(self, settings: LiveSettings) -> None:
        with self._lock:
            if settings.side != self._settings.side:
                self._side = settings.side
                self._average, self._since_change = None, 0
            self._settings = settings

    def stats(self) -> LiveStats:
        now = self._clock()
        with self._lock:
            recent = [stamp for stamp in self._painted_at if now - stamp <= FPS_WINDOW_SECONDS]
            fps = 0.0
            if len(recent) >= 2 and recent[-1] > recent[0]:
                fps = (len(recent) - 1) / (recent[-1] - recent[0])
            return LiveStats(
                state=self._state,
                fps=fps,
                frame_shape=self._frame_shape,
                work_shape=self._work_shape,
                frame_seconds=self._average or 0.0,
                reduced=self._side < self._settings.side,
                yielding=self._yielding,
                frames=self._frames,
                last_frame_age=None if self._latest_at is None else now - self._latest_at,
            )

    def latest_frame(self) -> np.ndarray | None:
        """The camera's current frame (uint8 RGB), for a snapshot; None before the first."""
        with self._lock:
            return None if self._latest is None else self._latest.copy()

    def close(self) -> None:
        """The stream ended: give the slot back and forget the frames."""
        with self._lock:
            self._previous = self._latest = self._latest_at = None
            self._painted_at.clear()
            self._vector_key = None
            self._state = "stopped"
            self._yielding = False
        if self._slots is not None:
            self._slots.release(self)

    # The stream's side ----------------------------------------------------------------------

    def process(self, frame: np.ndarray) -> np.ndarray:
        """One camera frame (uint8 RGB, any size) painted, at the same size."""
        with self._work:
            return self._process(frame)

    def _process(self, frame: np.ndarray) -> np.ndarray:
        started = self._clock()
        height, width = frame.shape[:2]
        with self._lock:
            self._latest, self._latest_at = frame, started
            self._frame_shape = (height, width)
            settings, style = self._settings, self._style
            if self._state == "stopped":
                self._frames, self._state = 0, "idle"
        if self._slots is not None and not self._slots.acquire(self):
            with self._lock:
                self._state, self._previous = "refused", None
            return (frame * REFUSED_DIMMING).astype(np.uint8)
        if style is None:
            with self._lock:
                self._state, self._previous, self._work_shape = "no_style", None, None
            return frame
        networks = self._networks or load_networks()
        work = working_shape(height, width, min(self._side, max(height, width)))
        small = _resized(frame, work).astype(np.float32) / 255.0
        if self._vector is None or self._vector_key != style.key:
            self._vector = clip_vector(style.styles, style.config, small, networks)
            self._vector_key = style.key
            self._previous = None  # a new painting starts afresh
        previous = self._previous
        if previous is not None and previous[0].shape != small.shape:
            previous = None  # the working size changed: this frame starts afresh
        motion: Future | None = None
        if previous is not None and settings.steadiness > 0:
            motion = self._pool.submit(motion_between, previous[0], small)
        image = paint_frame(small, self._vector, style.config, networks)
        if motion is not None and previous is not None:
            image = steady(image, previous[1], motion.result(), settings.steadiness)
        painted = np.round(image * 255.0).astype(np.uint8)
        output = painted if work == (height, width) else _resized(painted, (height, width))
        seconds = self._clock() - started
        with self._lock:
            self._previous = (small, image) if settings.steadiness > 0 else None
            self._state, self._work_shape = "painting", work
            self._frames += 1
            self._adapt(seconds, settings)
            self._painted_at.append(self._clock())
            while self._painted_at and self._clock() - self._painted_at[0] > FPS_WINDOW_SECONDS:
                self._painted_at.popleft()
        yielding = self._busy()
        with self._lock:
            self._yielding = yielding
        if yielding:
            self._sleep(seconds)
        return output

    def _adapt(self, seconds: float, settings: LiveSettings) -> None:
        """Shrink the working size while frames take longer than the budget, grow it back
        towards the live size while they are quick (called with the lock held)."""
        self._average = seconds if self._average is None else 0.7 * self._average + 0.3 * seconds
        self._since_change += 1
        if self._since_change < ADAPT_EVERY:
            return
        budget = 1.0 / settings.target_fps
        side = self._side
        if self._average >= budget * SLOW_MARGIN and side > MIN_LIVE_SIDE:
            # A pass costs about the pixel count, so the side goes with the square root.
            factor = min(0.95, max(0.7, math.sqrt(budget / self._average)))
            side = max(MIN_LIVE_SIDE, int(side * factor) // SIDE_STEP * SIDE_STEP)
        elif self._average <= budget * FAST_MARGIN and side < settings.side:
            factor = min(1.15, math.sqrt(0.8 * budget / self._average))
            side = min(settings.side, -(-int(side * factor) // SIDE_STEP) * SIDE_STEP)
        if side != self._side:
            self._side, self._average, self._since_change = side, None, 0


def _resized(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``image`` at (height, width): area averaging down, bilinear up (cheap, per frame)."""
    height, width = shape
    if image.shape[:2] == (height, width):
        return image
    shrinking = height * width < image.shape[0] * image.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)
