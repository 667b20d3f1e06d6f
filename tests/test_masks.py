"""Painting the mask (``studio.masks``): the canvas's picture as a mask, and the Stylize page
with a painted mask, driven by AppTest through the canvas's state (the browser test in
``test_e2e.py`` paints with the mouse)."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from nst.config import StyleConfig
from nst.images import read_settings
from studio.masks import (
    CUT_COLOR,
    DROPPED_SENTENCE,
    ERASE_COLOR,
    PAINT_COLOR,
    PaintedMask,
    canvas_shape,
    cut_erasers,
    finish_mask,
    mask_from_canvas,
    painted_weight,
)
from studio.session import MaskChoice
from tests.test_app import _captions, _jpeg, _open, _results, _settle, _texts, _upload

PAINT_RGBA = (255, 75, 75, 153)  # PAINT_COLOR as the canvas renders one stroke
ERASE_RGBA = (255, 255, 255, 153)


def _canvas(height: int = 30, width: int = 40) -> np.ndarray:
    return np.zeros((height, width, 4), np.uint8)


def _stroke(value: str) -> dict:
    return {"type": "Path", "stroke": value, "globalCompositeOperation": "source-over"}


def _data_url(rgba: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(rgba).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _sent(rgba: np.ndarray, strokes: list[dict]) -> dict:
    """The canvas's state after it sent a drawing, as the component keeps it."""
    return {"drawing": {"raw": {"objects": strokes}, "data": _data_url(rgba)}}


# ----- the canvas's picture as a mask -----


def test_paint_counts_by_its_opacity_and_the_rest_is_not_painted() -> None:
    rgba = _canvas()
    rgba[:, :20] = PAINT_RGBA
    rgba[:, 20] = (255, 75, 75, 76)  # an anti-aliased edge: half a stroke's opacity
    weight = painted_weight(rgba)
    assert weight.shape == (30, 40) and weight.dtype == np.float32
    assert np.all(weight[:, :20] == 1.0) and np.all(weight[:, 21:] == 0.0)
    assert 0.4 < weight[0, 20] < 0.6


def test_the_topmost_stroke_decides_where_paint_and_eraser_overlap() -> None:
    rgba = _canvas()
    rgba[:, :20] = PAINT_RGBA
    # An eraser stroke over the paint, composited as the canvas does (source-over).
    paint, erase = np.array(PAINT_RGBA[:3], float), np.array(ERASE_RGBA[:3], float)
    top, below = 0.6, 0.6 * (1 - 0.6)
    rgba[:, 10:20, :3] = np.round((erase * top + paint * below) / (top + below))
    rgba[:, 10:20, 3] = round((top + below) * 255)
    # Paint again over an eraser stroke.
    rgba[:, 30:, :3] = np.round((paint * top + erase * below) / (top + below))
    rgba[:, 30:, 3] = round((top + below) * 255)
    weight = painted_weight(rgba)
    assert np.all(weight[:, :10] == 1.0)
    assert np.all(weight[:, 10:30] == 0.0)
    assert np.all(weight[:, 30:] == 1.0)


def test_nothing_painted_is_no_mask() -> None:
    assert mask_from_canvas(None) is None
    assert mask_from_canvas(_canvas()) is None
    erased = _canvas()
    erased[:, :20] = ERASE_RGBA  # only eraser strokes
    assert mask_from_canvas(erased) is None
    faint = _canvas()
    faint[:5, :5] = (255, 75, 75, 40)  # an edge's trace, never a painted pixel
    assert mask_from_canvas(faint) is None
    painted = _canvas()
    painted[:5, :5] = PAINT_RGBA
    assert mask_from_canvas(painted) is not None
    with pytest.raises(ValueError, match="RGBA"):
        painted_weight(np.zeros((4, 4, 3), np.uint8))


def test_invert_and_a_soft_edge() -> None:
    painted = np.zeros((40, 80), np.float32)
    painted[:, :40] = 1.0
    np.testing.assert_array_equal(finish_mask(painted, invert=False, feather=0), painted)
    np.testing.assert_array_equal(finish_mask(painted, invert=True, feather=0), 1.0 - painted)
    soft = finish_mask(painted, invert=False, feather=8)
    row = soft[20]
    assert np.all(np.diff(row) <= 1e-6)  # falls from painted to unpainted, never rises
    assert row[0] > 0.99 and row[-1] < 0.01  # far from the edge, unchanged
    assert 0.3 < row[39] < 0.7 and 0.3 < row[40] < 0.7  # at the edge, a blend
    assert 0.02 < row[44] < 0.3  # the blend reaches beyond the edge
    np.testing.assert_allclose(finish_mask(painted, invert=True, feather=8), 1.0 - soft, atol=1e-6)
    assert painted[0, 0] == 1.0  # the painted weight itself is left as it was


def test_eraser_strokes_are_set_to_cut_through_the_paint_once() -> None:
    drawing = {"version": "7", "objects": [_stroke(PAINT_COLOR), _stroke(ERASE_COLOR)]}
    cut = cut_erasers(drawing)
    assert cut is not None
    assert [item["globalCompositeOperation"] for item in cut["objects"]] == [
        "source-over",
        "destination-out",
    ]
    assert [item["stroke"] for item in cut["objects"]] == [PAINT_COLOR, CUT_COLOR]
    assert drawing["objects"][1]["globalCompositeOperation"] == "source-over"  # not changed
    assert cut_erasers(cut) is None  # nothing new to cut: the canvas is not reloaded again
    assert cut_erasers({"objects": [_stroke(PAINT_COLOR)]}) is None
    assert cut_erasers(None) is None


def test_the_canvas_keeps_the_photos_shape() -> None:
    assert canvas_shape(768, 1024) == (384, 512)
    assert canvas_shape(1024, 512) == (512, 256)
    assert canvas_shape(10, 2000) == (3, 512)


# ----- what the session keeps -----


def test_a_painting_belongs_to_its_photo() -> None:
    state = PaintedMask("photo-a")
    same, dropped = state.for_photo("photo-a")
    assert same is state and not dropped
    fresh, dropped = state.for_photo("photo-b")
    assert not dropped  # nothing was painted: nothing to tell
    assert fresh.photo_key == "photo-b" and fresh.canvas_key != state.canvas_key
    rgba = _canvas()
    rgba[:, :20] = PAINT_RGBA
    state.receive(_sent(rgba, [_stroke(PAINT_COLOR)]))
    fresh, dropped = state.for_photo("photo-b")
    assert dropped and fresh.dropped and fresh.painted is None and fresh.drawing is None
    fresh.receive(_sent(rgba, [_stroke(PAINT_COLOR)]))
    assert not fresh.dropped  # painted on the new photo: no more note about the old one
    cleared = state.cleared()
    assert cleared.photo_key == "photo-a" and cleared.painted is None
    assert cleared.canvas_key != state.canvas_key  # a fresh, empty canvas


def test_what_the_canvas_sends_updates_the_painting() -> None:
    state = PaintedMask("photo")
    state.receive(None)
    state.receive({"drawing": {"raw": {"objects": []}, "data": None}})  # shown, nothing sent
    assert state.painted is None and state.seed is None
    rgba = _canvas()
    rgba[:, :20] = PAINT_RGBA
    state.receive(_sent(rgba, [_stroke(PAINT_COLOR)]))
    assert state.painted is not None and state.painted[:, :20].min() == 1.0
    assert state.seed is None  # no eraser: the canvas goes on as it is
    erased = rgba.copy()
    erased[:, 10:20] = ERASE_RGBA
    state.receive(_sent(erased, [_stroke(PAINT_COLOR), _stroke(ERASE_COLOR)]))
    assert state.painted[:, 10:20].max() == 0.0
    assert state.seed is not None
    assert state.seed["objects"][1]["globalCompositeOperation"] == "destination-out"
    kept = state.painted
    state.receive({"drawing": {"raw": state.drawing, "data": None}})
    assert state.painted is kept  # a state without a picture keeps the painting
    state.receive(_sent(erased, [_stroke(PAINT_COLOR), _stroke(ERASE_COLOR)]))
    assert state.painted is kept  # the same picture again (a rerun): taken in once
    broken = {"drawing": {"raw": {"objects": []}, "data": "data:image/png;base64,bm90IGEgcG5n"}}
    state.receive(broken)  # not a picture: the painting stays as it was
    assert state.painted is kept and state.drawing["objects"]
    state.receive(_sent(_canvas(), []))  # everything undone
    assert state.painted is None


def test_results_name_their_mask() -> None:
    from studio.results import mask_text
    from studio.session import StudioResult

    def record(source: str | None) -> StudioResult:
        return StudioResult(
            result_id=1,
            image=np.zeros((2, 2, 3), np.uint8),
            content=np.zeros((2, 2, 3), np.uint8),
            config=StyleConfig(),
            content_name="photo.jpg",
            content_key="photo",
            style_names=("a.jpg",),
            created=0.0,
            seconds=0.0,
            steps_done=0,
            stopped=False,
            mask=None if source is None else np.zeros((2, 2), np.uint8),
            mask_source=source,
        )

    assert [mask_text(record(source)) for source in ("painted", "sky.png", None)] == [
        "painted mask",
        "mask sky.png",
        "no mask",
    ]
    assert record("sky.png").settings()["mask"] == "sky.png"
    assert record(None).settings()["mask"] is None


def test_a_mask_choice_fits_its_photo_or_any_for_an_upload() -> None:
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[:, :3] = 255
    uploaded = MaskChoice.of(rgb, source="sky.png")
    assert uploaded.pixels.shape == (4, 6) and uploaded.pixels.dtype == np.uint8
    assert uploaded.fits("any photo") and uploaded.as_float()[0, 0] == 1.0
    painted = MaskChoice.of(np.ones((4, 6), np.float32), source="painted", photo_key="a")
    assert painted.fits("a") and not painted.fits("b")


# ----- the Stylize page, with the canvas driven through its state -----


def _paint_left_half(at: AppTest, photo_shape: tuple[int, int] = (72, 96)) -> None:
    """What the canvas sends after a stroke over the left half of the photo."""
    state = at.session_state["painted_mask"]
    height, width = canvas_shape(*photo_shape)
    rgba = np.zeros((height, width, 4), np.uint8)
    rgba[:, : width // 2] = PAINT_RGBA
    at.session_state[state.canvas_key] = _sent(rgba, [_stroke(PAINT_COLOR)])
    at.run()
    assert not at.exception, at.exception


def _instant_run(at: AppTest) -> None:
    at.radio(key="method").set_value("instant")
    at.slider(key="size").set_value(96)
    at.slider(key="mask_feather").set_value(0)
    at.button(key="stylize").click().run()
    assert not at.exception, at.exception
    _settle(at)
    assert not _texts(at.error)


def _photo_difference(record: object) -> tuple[float, float]:
    """Mean absolute difference to the photo on the left (painted) and right quarters."""
    image, photo = record.image.astype(float), record.content.astype(float)
    quarter = image.shape[1] // 4
    left = np.abs(image[:, :quarter] - photo[:, :quarter]).mean()
    right = np.abs(image[:, -quarter:] - photo[:, -quarter:]).mean()
    return float(left), float(right)


def _choose_paint(at: AppTest) -> None:
    at.segmented_control(key="mask_source").set_value("Paint").run()
    assert not at.exception, at.exception


def test_a_painted_mask_styles_only_where_painted_and_travels_with_the_result() -> None:
    at = _open()
    _upload(at, _jpeg(), [("a.jpg", _jpeg(seed=1))])
    # No canvas until asked for: shown, it reruns the page, which would end a starting run.
    assert at.segmented_control(key="mask_source").value == "None"
    assert "painted_mask" not in at.session_state
    _choose_paint(at)
    assert "mask_canvas" in at.session_state["painted_mask"].canvas_key
    _paint_left_half(at)
    assert any(text.startswith("Mask: white takes") for text in _captions(at))
    _instant_run(at)
    (record,) = _results(at)
    assert record.mask_source == "painted" and record.mask.shape == record.image.shape[:2]
    painted, kept = _photo_difference(record)
    assert painted > 10 * max(kept, 1.0)  # styled where painted, the photo elsewhere
    assert read_settings(record.png_bytes())["mask"] == "painted"
    assert read_settings(record.png_bytes())["method"] == "instant"
    # Inverted: the style goes to the other half.
    at.checkbox(key="mask_invert").check()
    at.button(key="stylize").click().run()
    assert not at.exception, at.exception
    _settle(at)
    inverted = _results(at)[-1]
    painted, kept = _photo_difference(inverted)
    assert kept > 10 * max(painted, 1.0)
    # The gallery says a mask was used and shows it.
    at.switch_page("pages/gallery.py").run()
    assert not at.exception, at.exception
    assert any("painted mask" in text for text in _texts(at.caption))
    assert "The mask: white took the (first) style" in _captions(at)


def test_an_empty_canvas_is_no_mask() -> None:
    at = _open()
    _upload(at, _jpeg(), [("a.jpg", _jpeg(seed=1))])
    _choose_paint(at)
    state = at.session_state["painted_mask"]
    height, width = canvas_shape(72, 96)
    at.session_state[state.canvas_key] = _sent(np.zeros((height, width, 4), np.uint8), [])
    at.run()
    _instant_run(at)
    (record,) = _results(at)
    assert record.mask is None and record.mask_source is None
    assert read_settings(record.png_bytes())["mask"] is None
    painted, kept = _photo_difference(record)
    assert min(painted, kept) > 1.0  # styled everywhere


def test_a_new_photo_drops_the_painting_with_a_sentence_and_continue_keeps_the_results() -> None:
    at = _open()
    _upload(at, _jpeg(), [("a.jpg", _jpeg(seed=1))])
    _choose_paint(at)
    _paint_left_half(at)
    _instant_run(at)
    first = _results(at)[0]
    at.file_uploader(key="content_upload").set_value(("other.jpg", _jpeg(seed=5), "image/jpeg"))
    at.run()
    assert not at.exception, at.exception
    assert [toast.value for toast in at.toast] == [DROPPED_SENTENCE]
    assert at.session_state["painted_mask"].painted is None
    assert not any(text.startswith("Mask: white takes") for text in _captions(at))
    assert DROPPED_SENTENCE in _texts(at.caption)
    at.run()  # the toast once; the note under the canvas until something is painted
    assert not at.toast and DROPPED_SENTENCE in _texts(at.caption)
    # Continuing result #1 paints on its own photo, so with its own mask.
    at.radio(key="method").set_value("optimize").run()
    at.slider(key="steps").set_value(2)
    at.button(key="continue_1").click().run()
    assert not at.exception, at.exception
    _settle(at)
    assert not _texts(at.error)
    continued = _results(at)[-1]
    assert continued.continued_from == 1 and continued.content_key == first.content_key
    assert continued.mask_source == "painted"
    assert read_settings(continued.png_bytes())["mask"] == "painted"
    assert len(_results(at)) == 2  # nothing made before is lost


def test_no_photo_yet_asks_for_one_first() -> None:
    at = _open()
    _choose_paint(at)
    assert any(text.startswith("Add a photo first, then paint") for text in _texts(at.caption))
    assert "painted_mask" not in at.session_state
