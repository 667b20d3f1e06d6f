"""Choosing the pictures: photo (upload or camera), paintings (uploads or samples), mask.

Decoded pictures are remembered in ``st.session_state["inputs"]``, so reruns and page visits
do not decode them again.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

import streamlit as st

from nst.config import ServerLimits, field_spec
from nst.images import (
    SUPPORTED_FORMATS,
    ImageError,
    check_shape,
    load_image,
    resize_longest,
    to_uint8,
)
from studio.session import THUMB_SIDE, InputImage, MaskChoice

Picked = TypeVar("Picked")

STYLE_DIR = Path(__file__).resolve().parents[1] / "assets" / "styles"


def _inputs() -> dict[str, Any]:
    return st.session_state.setdefault("inputs", {})


def _forget(slot: str) -> None:
    """Callback of an uploader: its files changed, so drop what was remembered for it."""
    _inputs().pop(slot, None)


def decode(data: bytes, *, key: str, name: str, what: str) -> InputImage:
    """Decode, check and downscale an upload; raises ImageError with one plain sentence."""
    limit = ServerLimits().max_pixels
    max_bytes = int(st.get_option("server.maxUploadSize")) * 2**20
    pixels = load_image(data, max_pixels=limit, max_bytes=max_bytes)
    check_shape(pixels, what=what)
    largest = int(field_spec("size").maximum)
    if max(pixels.shape[:2]) > largest:
        pixels = resize_longest(pixels, largest)
    return InputImage(key=key, name=name, pixels=to_uint8(pixels))


def _decode_upload(upload: Any, what: str) -> InputImage | None:
    """Decode an upload, or show why it cannot be used (one sentence) and return None."""
    try:
        return decode(upload.getvalue(), key=upload.file_id, name=upload.name, what=what)
    except ImageError as error:
        st.error(f"{upload.name}: {error}", icon=":material/error:")
        return None


def _single_input(slot: str, upload: Any, what: str) -> InputImage | None:
    """The picture for one single-file slot, remembered so reruns and page visits reuse it.

    With no upload, the picture remembered from an earlier visit is used (the uploader's
    ``on_change`` clears it when the user removes the file on purpose).
    """
    memory = _inputs()
    if upload is None:
        picture = memory.get(slot)
        if picture is not None:
            st.caption("Kept from your earlier upload; upload another file to replace it.")
        return picture
    known = memory.get(slot)
    if known is not None and known.key == upload.file_id:
        return known
    picture = _decode_upload(upload, what)
    if picture is None:
        memory.pop(slot, None)
    else:
        memory[slot] = picture
    return picture


def content_picker() -> InputImage | None:
    """Upload or camera; shows a thumbnail; remembers the photo across pages and reruns."""
    source = st.segmented_control(
        "Photo source",
        ["Upload", "Camera"],
        default="Upload",
        required=True,
        key="content_source",
        persist_state="session",
        label_visibility="collapsed",
    )
    if source == "Camera":
        upload = st.camera_input(
            "Take a picture", key="content_camera", on_change=_forget, args=("content",)
        )
    else:
        upload = st.file_uploader(
            "Upload a photo",
            key="content_upload",
            help=f"{SUPPORTED_FORMATS}; up to {st.get_option('server.maxUploadSize')} MB.",
            on_change=_forget,
            args=("content",),
        )
    picture = _single_input("content", upload, "content image")
    if picture is not None:
        st.image(picture.thumbnail, caption=picture.caption, width=THUMB_SIDE)
    return picture


@functools.lru_cache(maxsize=1)
def sample_styles() -> Mapping[str, InputImage]:
    """The project's own sample styles (``assets/styles/*.png``, made by make_styles.py).

    Shared by every session and thread: the mapping and the pixels are read-only.
    """
    samples = {}
    for path in sorted(STYLE_DIR.glob("*.png")):
        pixels = to_uint8(load_image(path))
        pixels.setflags(write=False)
        name = path.stem.replace("_", " ")
        samples[name] = InputImage(key=f"sample:{path.stem}", name=name, pixels=pixels)
    return MappingProxyType(samples)


def style_picker() -> list[InputImage]:
    """Uploaded paintings plus picked samples; shows thumbnails of all of them."""
    uploads = st.file_uploader(
        "Upload one or more paintings",
        key="style_upload",
        accept_multiple_files=True,
        help="Several styles are blended (see 'Style blend' under Colour, blending and mask).",
        on_change=_forget,
        args=("styles",),
    )
    samples = sample_styles()
    # thumbnails in the same order as the pills below, which name them
    for column, picture in zip(st.columns(len(samples)), samples.values(), strict=True):
        column.image(picture.thumbnail, width="stretch")
    picked = st.pills(
        "…or pick sample styles",
        list(samples),
        selection_mode="multi",
        format_func=str.title,
        key="style_samples",
        persist_state="session",
        wrap=True,
    )
    remembered: dict[str, InputImage] = _inputs().get("styles", {})
    if uploads:
        current = {}
        for upload in uploads:
            picture = remembered.get(upload.file_id) or _decode_upload(upload, "style image")
            if picture is not None:
                current[upload.file_id] = picture
        _inputs()["styles"] = remembered = current
    elif remembered:
        st.caption("Kept from your earlier upload; upload other files to replace them.")
    styles = list(remembered.values())
    styles.extend(samples[name] for name in picked or [] if name in samples)
    if styles:
        st.image(
            [picture.thumbnail for picture in styles],
            caption=[picture.caption for picture in styles],
            width=160,
        )
    return styles


def mask_picker() -> MaskChoice | None:
    """An optional mask, painted over the photo or uploaded: white (or painted) where the
    (first) style goes, black keeps the photo (or takes the second style)."""
    # No mask until asked for: the brush canvas, once shown, sends its layout back to the
    # server, which reruns the page, and a rerun ends a run that has just started.
    source = st.segmented_control(
        "Mask",
        ["None", "Paint", "Upload"],
        default="None",
        required=True,
        key="mask_source",
        persist_state="session",
        help="None: the style goes everywhere. Paint where the (first) style goes, or upload "
        "a black-and-white mask; with two styles, the rest gets the second style.",
    )
    if source == "None":
        return None
    if source == "Paint":
        photo = _inputs().get("content")  # the photo picked above on this page
        if photo is None:
            st.caption("Add a photo first, then paint over it where the style should go.")
            return None
        from studio.masks import paint_mask

        return paint_mask(photo)
    upload = st.file_uploader(
        "Mask (optional)",
        key="mask_upload",
        help="White where the (first) style applies, black where the photo stays; with two "
        "styles, black gets the second style. Soft edges blend.",
        on_change=_forget,
        args=("mask",),
    )
    picture = _single_input("mask", upload, "mask")
    if picture is None:
        return None
    st.image(picture.thumbnail, caption=picture.caption, width=120)
    return MaskChoice.of(picture.pixels, source=picture.name)


def inputs_row(
    first_title: str, first_picker: Callable[[], Picked]
) -> tuple[Picked, list[InputImage]]:
    """The two numbered input columns a page starts with, the user's own media (``first_picker``)
    and the painting, then the settings heading; returns (what was picked, the paintings)."""
    first_column, style_column = st.columns(2, gap="large")
    with first_column:
        st.subheader(f"1 · {first_title}", anchor=False)
        first = first_picker()
    with style_column:
        st.subheader("2 · A painting", anchor=False)
        styles = style_picker()
    st.subheader("3 · Settings", anchor=False)
    return first, styles
