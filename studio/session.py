"""What the studio keeps per session: chosen pictures and finished runs, and how to size them."""

from __future__ import annotations

import functools
import math
import sys
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from nst.color import adjust, mask_region
from nst.config import Adjustments, ServerLimits, StyleConfig
from nst.images import resize_longest, to_jpeg_bytes, to_png_bytes, to_uint8

DISPLAY_SIDE = 1024  # longest side of images sent to the browser for viewing (downloads are full)
THUMB_SIDE = 256


@dataclass
class InputImage:
    """A decoded picture the user chose: an upload, a camera shot or a sample style."""

    key: str  # the upload's file id or "sample:<name>": the same key means the same pixels
    name: str
    pixels: np.ndarray  # uint8 RGB, longest side at most the largest output size

    @functools.cached_property
    def thumbnail(self) -> np.ndarray:
        """Read-only: sample styles (and so their thumbnails) are shared by all sessions."""
        thumbnail = fit_within(self.pixels, THUMB_SIDE)
        thumbnail.setflags(write=False)
        return thumbnail

    def as_float(self) -> np.ndarray:
        return to_float(self.pixels)

    @property
    def caption(self) -> str:
        height, width = self.pixels.shape[:2]
        return f"{self.name} · {width}×{height}"


@dataclass(frozen=True)
class MaskChoice:
    """The mask of a run: where the (first) painting goes, painted in the studio or uploaded."""

    pixels: np.ndarray  # uint8 (height, width): white takes the first painting, black the second
    source: str  # "painted", or the uploaded file's name (what the result's settings record)
    photo_key: str | None = None  # the photo it was painted on; None: an upload fits any photo

    @classmethod
    def of(cls, image: np.ndarray, *, source: str, photo_key: str | None = None) -> MaskChoice:
        """A mask from a gray or RGB image, float in [0, 1] or uint8 (colour counts by its
        luminance)."""
        gray = mask_region(to_float(image), *image.shape[:2])[..., 0]
        return cls(to_uint8(gray), source, photo_key)

    def fits(self, photo_key: str) -> bool:
        """Whether it may be used on this photo: an upload on any, a painting on its own."""
        return self.photo_key is None or self.photo_key == photo_key

    def as_float(self) -> np.ndarray:
        return to_float(self.pixels)


@dataclass
class StudioResult:
    """One finished (or stopped) run, as kept in the session's gallery."""

    result_id: int
    image: np.ndarray  # uint8 RGB at the output size, before adjustments
    content: np.ndarray  # uint8 RGB, the photo resized to the image's shape
    config: StyleConfig  # the settings of the run
    content_name: str
    content_key: str
    style_names: tuple[str, ...]
    created: float
    seconds: float
    steps_done: int
    stopped: bool
    error: str | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    # Why a finished run did fewer steps than asked (L-BFGS converged or its line search
    # stopped); None when it did them all.
    note: str | None = None
    continued_from: int | None = None
    adjustments: dict[str, float] = field(default_factory=dict)  # ``Adjustments`` fields
    # A painted run's first picture, from the instant network (uint8, the image's shape).
    instant: np.ndarray | None = None
    # The run's mask (uint8 (h, w), the image's shape) and where it came from ("painted" or
    # the uploaded file's name); None without one.
    mask: np.ndarray | None = None
    mask_source: str | None = None
    # (image, content) fitted within a side, made once per side (see ``fitted``).
    _fitted: dict[int, tuple[np.ndarray, np.ndarray]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def fitted(self, side: int) -> tuple[np.ndarray, np.ndarray]:
        """(image, content) as uint8 with the longest side at most ``side``, kept per side."""
        if side not in self._fitted:
            self._fitted[side] = (fit_within(self.image, side), fit_within(self.content, side))
        return self._fitted[side]

    def shown(self, side: int = DISPLAY_SIDE) -> np.ndarray:
        """The image with the current adjustments, at most ``side`` px, for viewing: the
        adjustments act pixel by pixel, so they are applied at the size shown, not in full."""
        image, content = self.fitted(side)
        if not self.adjustments:
            return image
        return to_uint8(adjusted(image, content, self.adjustments))

    def final_thumbnail(self) -> np.ndarray:
        """The thumbnail with the current adjustments."""
        return self.shown(THUMB_SIDE)

    @property
    def nbytes(self) -> int:
        """Memory this record holds: full-size image and photo, the display copies made so far
        (a copy that is the full image itself counts once) and the loss history."""
        kept = (self.image, self.content, self.instant, self.mask)
        arrays = {id(array): array for array in kept if array is not None}
        for pair in list(self._fitted.values()):
            arrays.update((id(array), array) for array in pair)
        pixels = sum(array.nbytes for array in arrays.values())
        return int(pixels + history_bytes(self.history))

    @property
    def size_text(self) -> str:
        height, width = self.image.shape[:2]
        return f"{width}×{height}"

    @property
    def styles_text(self) -> str:
        return " + ".join(self.style_names)

    @property
    def label(self) -> str:
        return f"#{self.result_id} · {self.content_name} × {self.styles_text} · {self.time_text}"

    @property
    def time_text(self) -> str:
        return datetime.fromtimestamp(self.created).strftime("%H:%M:%S")

    @property
    def status_text(self) -> str:
        """One sentence on how the run ended."""
        total = self.config.steps
        took = format_seconds(self.seconds)
        if self.config.method == "instant":
            return f"Painted by the instant network in {took}."
        if self.error:
            return f"The run ended early at step {self.steps_done} of {total}: {self.error}"
        if self.stopped:
            return (
                f"Stopped at step {self.steps_done} of {total} after {took}; "
                "the image so far is kept."
            )
        if self.note:
            return f"Finished in {took}. {self.note}"
        return f"Finished {self.steps_done} steps in {took}."

    def settings(self) -> dict[str, Any]:
        """The settings embedded in downloads: the run's config, the adjustments and limits."""
        values = {
            **self.config.to_dict(),
            **self.adjustment_record().to_dict(),
            **ServerLimits().to_dict(),
        }
        values["steps_done"] = self.steps_done
        values["stopped"] = self.stopped
        values["mask"] = self.mask_source
        return values

    def mask_choice(self) -> MaskChoice | None:
        """The run's mask, for a run that continues from this result."""
        if self.mask is None or self.mask_source is None:
            return None
        return MaskChoice(self.mask, self.mask_source, self.content_key)

    def adjustment_record(self) -> Adjustments:
        """The current adjustments as a validated record (defaults for those not moved)."""
        return Adjustments(**self.adjustments)

    def final_image(self) -> np.ndarray:
        """The image with the current adjustments, float32 RGB in [0, 1]."""
        return adjusted(self.image, self.content, self.adjustments)

    def png_bytes(self) -> bytes:
        return to_png_bytes(self.final_image(), self.settings())

    def instant_png_bytes(self) -> bytes:
        """The instant picture a painted run started with, as PNG with its own settings."""
        if self.instant is None:
            raise ValueError("This result has no instant picture.")
        values = {**self.settings(), "method": "instant", "steps_done": 0, "stopped": False}
        return to_png_bytes(to_float(self.instant), values)

    def jpeg_bytes(self) -> bytes:
        return to_jpeg_bytes(self.final_image())


def adjusted(image: np.ndarray, content: np.ndarray, adjustments: dict[str, float]) -> np.ndarray:
    """``Adjustments(**adjustments)`` (checked) applied to uint8 arrays, float32 out; the
    identity without adjustments."""
    picture = to_float(image)
    if not adjustments:
        return picture
    return adjust(picture, content=to_float(content), **Adjustments(**adjustments).to_dict())


def history_bytes(history: list[dict[str, float]]) -> int:
    """Memory of a loss history: the list, each row's dict and its float values (the keys are
    shared strings)."""
    total = sys.getsizeof(history)
    for row in history:
        total += sys.getsizeof(row) + sum(sys.getsizeof(value) for value in row.values())
    return total


def to_float(image: np.ndarray) -> np.ndarray:
    """uint8 RGB to float32 in [0, 1]; a float image is returned as it is."""
    return image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image


def fit_within(image: np.ndarray, side: int) -> np.ndarray:
    """uint8 copy with the longest side at most ``side`` (never enlarged)."""
    if max(image.shape[:2]) <= side:
        return to_uint8(image) if image.dtype != np.uint8 else image
    return to_uint8(resize_longest(to_float(image), side))


def for_display(image: np.ndarray) -> np.ndarray:
    """What the browser is sent for viewing: uint8, at most DISPLAY_SIDE on the longest side."""
    return fit_within(image, DISPLAY_SIDE)


def format_seconds(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "an unknown time"
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"
