"""Painting the mask over the photo: the brush canvas, and how its picture becomes a mask.

The canvas (``streamlit-drawable-canvas``) draws brush strokes over the photo and sends back
the strokes alone, as a transparent RGBA picture, and the drawing as Fabric.js JSON. Painting
and erasing are strokes in two colours; every stroke is translucent enough that the photo
shows through, and opaque enough (more than half) that the topmost stroke's colour always
dominates where strokes overlap, so the colour alone says whether a pixel was last painted or
erased. After an eraser stroke the canvas is reloaded with that stroke set to cut through the
paint (``destination-out``), so the photo shows again where it erased.

The functions down to ``PaintedMask`` are plain NumPy on that picture and the drawing, testable
without a browser; ``paint_mask`` is the Streamlit part.

Session state used here: ``painted_mask`` (a ``PaintedMask``), the canvas's own state under
``mask_canvas_<generation>``, and the brush widgets' values (``mask_brush``, ``mask_brush_size``,
``mask_invert``, ``mask_feather``).
"""

from __future__ import annotations

import base64
import copy
import io
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import streamlit as st
from PIL import Image

from studio.session import InputImage, MaskChoice, fit_within

logger = logging.getLogger(__name__)

CANVAS_SIDE = 512  # the canvas's longest side in screen pixels (brush sizes are in these)
PAINT_COLOR = "rgba(255, 75, 75, 0.6)"
ERASE_COLOR = "rgba(255, 255, 255, 0.6)"
CUT_COLOR = "rgba(255, 255, 255, 1)"  # an eraser stroke once it cuts through the paint
BRUSH_SIZES = (5, 120, 40)  # smallest, largest, default brush diameter, canvas pixels
FEATHER_SIZES = (0, 40, 4)  # no soft edge, the softest, default, canvas pixels
# A pixel counts as painted from half a stroke's opacity on; a mask with no such pixel is empty.
PAINTED_FROM = 0.5
DROPPED_SENTENCE = (
    "The mask you painted belonged to your previous photo, so it was cleared: paint it again "
    "on this one if you want it."
)


def _rgba(css: str) -> tuple[np.ndarray, float]:
    """The RGB (0..255) and opacity (0..1) of a CSS ``rgba(r, g, b, a)`` colour."""
    numbers = [float(part) for part in re.findall(r"[\d.]+", css)]
    return np.array(numbers[:3], np.float32), numbers[3]


def painted_weight(rgba: np.ndarray) -> np.ndarray:
    """How much each pixel of the canvas's picture is painted, float32 (h, w) in [0, 1].

    ``rgba``: the canvas's strokes, uint8 (h, w, 4), transparent where nothing was drawn. A
    pixel whose colour is nearer the eraser's than the brush's counts as not painted; else its
    opacity, relative to one stroke's, is its weight (soft at a stroke's anti-aliased edge).
    """
    if rgba.ndim != 3 or rgba.shape[2] != 4:
        raise ValueError("The canvas picture must be RGBA.")
    paint, paint_alpha = _rgba(PAINT_COLOR)
    erase, _ = _rgba(ERASE_COLOR)
    colour = rgba[..., :3].astype(np.float32)
    alpha = rgba[..., 3].astype(np.float32) / 255.0
    nearer_paint = np.linalg.norm(colour - paint, axis=-1) < np.linalg.norm(colour - erase, axis=-1)
    weight = np.clip(alpha / paint_alpha, 0.0, 1.0) * nearer_paint
    return weight.astype(np.float32)


def mask_from_canvas(rgba: np.ndarray | None) -> np.ndarray | None:
    """The painted weight of the canvas's picture, or None when nothing is painted (an empty
    mask means no mask)."""
    if rgba is None:
        return None
    weight = painted_weight(rgba)
    return weight if float(weight.max(initial=0.0)) >= PAINTED_FROM else None


def finish_mask(painted: np.ndarray, *, invert: bool, feather: float) -> np.ndarray:
    """The mask the run uses: the painted weight, inverted if asked (the style then goes where
    nothing was painted), its edge softened over about ``feather`` pixels."""
    mask = 1.0 - painted if invert else painted.copy()
    if feather > 0:
        mask = cv2.GaussianBlur(mask, (0, 0), sigmaX=feather / 2.0, borderType=cv2.BORDER_REFLECT)
    return np.clip(mask, 0.0, 1.0).astype(np.float32)


def cut_erasers(drawing: dict[str, Any] | None) -> dict[str, Any] | None:
    """The drawing with its new eraser strokes set to cut through the paint below them, or None
    when it has none (so the canvas need not be reloaded)."""
    objects = (drawing or {}).get("objects") or []
    pending = [
        index
        for index, item in enumerate(objects)
        if _same_colour(item.get("stroke"), ERASE_COLOR)
        and item.get("globalCompositeOperation") != "destination-out"
    ]
    if not pending:
        return None
    cut = copy.deepcopy(drawing)
    for index in pending:
        # Opaque, so that it removes all the paint under it, not a share of it.
        cut["objects"][index].update(globalCompositeOperation="destination-out", stroke=CUT_COLOR)
    return cut


def _same_colour(value: Any, css: str) -> bool:
    return isinstance(value, str) and value.replace(" ", "") == css.replace(" ", "")


def canvas_shape(height: int, width: int) -> tuple[int, int]:
    """The canvas's (height, width): the photo's shape with the longest side ``CANVAS_SIDE``."""
    scale = CANVAS_SIDE / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


@dataclass
class PaintedMask:
    """What this session painted, for one photo.

    ``generation`` names the canvas: a new photo or "Clear" gives a fresh, empty canvas.
    ``seed`` is the drawing the canvas is (re)loaded with: the last drawing when the page is
    visited again, or the drawing with its eraser strokes cut.
    """

    photo_key: str
    generation: int = 0
    drawing: dict[str, Any] | None = None  # the latest drawing the canvas sent
    painted: np.ndarray | None = None  # its painted weight; None while nothing is painted
    seed: dict[str, Any] | None = None
    background: bytes = field(default=b"", repr=False)  # the photo as the canvas shows it
    received: str = field(default="", repr=False)  # the canvas picture last taken in
    dropped: bool = False  # a painting on the previous photo was dropped for this one

    @property
    def canvas_key(self) -> str:
        return f"mask_canvas_{self.generation}"

    def for_photo(self, photo_key: str) -> tuple[PaintedMask, bool]:
        """This record if it belongs to ``photo_key``, else a fresh one; and whether something
        painted was dropped."""
        if photo_key == self.photo_key:
            return self, False
        dropped = self.painted is not None
        return PaintedMask(photo_key, self.generation + 1, dropped=dropped), dropped

    def cleared(self) -> PaintedMask:
        """A fresh, empty canvas on the same photo."""
        return PaintedMask(self.photo_key, self.generation + 1, background=self.background)

    def receive(self, value: Any) -> None:
        """Take in what the canvas sent (its state: ``{"drawing": {"raw", "data"}}``); a state
        without a picture (the canvas has not sent one since it was shown) changes nothing."""
        drawing = (value or {}).get("drawing") or {}
        data = drawing.get("data")
        if not data or data == self.received:
            return  # nothing sent yet, or the picture already taken in (every rerun)
        self.received = data
        try:
            picture = decode_canvas_picture(data)
        except (ValueError, OSError):  # not a picture: keep the painting taken in before
            logger.warning("The mask canvas sent a picture that cannot be read; ignored.")
            return
        self.drawing = drawing.get("raw")
        self.painted = mask_from_canvas(picture)
        if self.painted is not None:
            self.dropped = False  # painted on this photo: the note on the previous one is done
        cut = cut_erasers(self.drawing)
        if cut is not None:
            self.seed = cut


def decode_canvas_picture(data_url: str) -> np.ndarray:
    """A canvas picture sent as a ``data:image/png;base64,`` URL, as uint8 RGBA."""
    _, _, encoded = data_url.partition(";base64,")
    with Image.open(io.BytesIO(base64.b64decode(encoded))) as image:
        return np.asarray(image.convert("RGBA"))


def _background(photo: InputImage) -> bytes:
    """The photo at the canvas's size, as JPEG bytes (sent to the browser on every rerun)."""
    height, width = canvas_shape(*photo.pixels.shape[:2])
    small = Image.fromarray(fit_within(photo.pixels, CANVAS_SIDE)).resize((width, height))
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def _state(photo: InputImage) -> PaintedMask:
    """This session's painted mask for ``photo``; a mask painted on another photo is dropped
    with one sentence."""
    state: PaintedMask | None = st.session_state.get("painted_mask")
    if state is None:
        state = PaintedMask(photo.key)
    else:
        state, dropped = state.for_photo(photo.key)
        if dropped:
            st.toast(DROPPED_SENTENCE, icon=":material/layers_clear:")
    if not state.background:
        state.background = _background(photo)
    st.session_state["painted_mask"] = state
    return state


def _clear() -> None:
    """Callback of "Clear": an empty canvas."""
    state: PaintedMask | None = st.session_state.get("painted_mask")
    if state is not None:
        st.session_state["painted_mask"] = state.cleared()


def paint_mask(photo: InputImage) -> MaskChoice | None:
    """The brush canvas over ``photo`` with its controls; returns the painted mask, or None
    while nothing is painted."""
    from streamlit_drawable_canvas import st_canvas

    state = _state(photo)
    key = state.canvas_key
    if key in st.session_state:
        state.receive(st.session_state[key])
    else:  # shown afresh (a new canvas, or the page visited again): restore the drawing
        state.seed = cut_erasers(state.drawing) or state.drawing
    brush, size, feather, invert = st.columns(4, vertical_alignment="bottom")
    mode = brush.segmented_control(
        "Brush",
        ["Paint", "Erase"],
        default="Paint",
        required=True,
        key="mask_brush",
        persist_state="session",
    )
    low, high, default = BRUSH_SIZES
    width = size.slider(
        "Brush size",
        low,
        high,
        default,
        key="mask_brush_size",
        persist_state="session",
        help="The brush's diameter, in pixels of the picture below.",
    )
    inverted = invert.checkbox(
        "Invert",
        key="mask_invert",
        persist_state="session",
        help="The style goes where you did not paint.",
    )
    low, high, default = FEATHER_SIZES
    soft = feather.slider(
        "Soft edge",
        low,
        high,
        default,
        key="mask_feather",
        persist_state="session",
        help="How far the edge of the mask blends, in pixels of the picture below.",
    )
    # A line above the canvas: its toolbar (undo, redo) floats over the canvas's top edge.
    st.caption("Paint over the photo where the (first) style should go.")
    height, canvas_width = canvas_shape(*photo.pixels.shape[:2])
    st_canvas(
        stroke_width=int(width),
        stroke_color=ERASE_COLOR if mode == "Erase" else PAINT_COLOR,
        background_image=state.background,
        height=height,
        width=canvas_width,
        drawing_mode="freedraw",
        initial_drawing=state.seed,
        return_image_data=True,
        key=key,
    )
    st.button("Clear", key="mask_clear", on_click=_clear, help="Start the mask afresh.")
    if state.painted is None:
        if state.dropped:  # said until something is painted on this photo
            st.caption(DROPPED_SENTENCE)
        else:
            st.caption("Nothing is painted yet, so there is no mask: the style goes everywhere.")
        return None
    mask = finish_mask(state.painted, invert=bool(inverted), feather=float(soft))
    share = float(mask.mean())
    st.image(
        mask,
        caption=f"Mask: white takes the (first) style ({share:.0%} of the photo)",
        width=160,
        clamp=True,
    )
    return MaskChoice.of(mask, source="painted", photo_key=photo.key)
