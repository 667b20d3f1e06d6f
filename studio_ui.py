"""Streamlit helpers shared by the studio's pages (the engine in ``nst`` never imports this).

Pages stay thin: they lay out sections and call these helpers, which turn widgets into a
``StyleConfig``, run jobs through the process-wide queue (``nst.jobs``) with a live preview, and
keep the session's results (the gallery) in ``st.session_state``.

Session state used here (all per browser session):

- ``results``: list of ``StudioResult``, oldest first, capped by count and bytes;
- ``current_id``: the result shown on the Stylize page;
- ``inputs``: the decoded content and style uploads, so reruns do not decode them again;
- ``mailbox``: a ``RunMailbox`` through which an interrupted run hands over its image;
- ``run_error`` / ``run_notice`` / ``dropped``: one-off messages and the number of results
  dropped by the cap.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from nst.config import FieldSpec, StyleConfig, field_spec, field_specs
from nst.images import (
    SUPPORTED_FORMATS,
    ImageError,
    check_shape,
    load_image,
    resize_longest,
    resize_to,
    to_jpeg_bytes,
    to_png_bytes,
    to_uint8,
)

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent
STYLE_DIR = ROOT / "assets" / "styles"

GALLERY_CAP = 12  # results kept per session
GALLERY_BYTES = 400 * 2**20  # and at most this much pixel data; the oldest go first
DISPLAY_SIDE = 1024  # longest side of images sent to the browser for viewing (downloads are full)
THUMB_SIDE = 256
POLL_SECONDS = 0.5  # how often the page asks the queue for news while a run is going
CHART_SECONDS = 1.0  # how often the live loss chart is redrawn
CHART_POINTS = 300
SETTLE_SECONDS = 10.0  # how long a stopped run may take to hand back its image

# Fields the app sets itself: a visitor must not lift the server's pixel cap, and the preview
# rate follows the output size so that the picture updates about twice a second.
APP_MANAGED = frozenset({"max_pixels", "preview_every"})
ADJUST_KEY = "adj_"
_NICE_MANTISSAS = (1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0)


# ----- records -------------------------------------------------------------------------------


@dataclass
class InputImage:
    """A decoded picture the user chose: an upload, a camera shot or a sample style."""

    key: str  # the upload's file id or "sample:<name>": the same key means the same pixels
    name: str
    pixels: np.ndarray  # uint8 RGB, longest side at most the largest output size

    @functools.cached_property
    def thumbnail(self) -> np.ndarray:
        return _fit(self.pixels, THUMB_SIDE)

    def as_float(self) -> np.ndarray:
        return self.pixels.astype(np.float32) / 255.0

    @property
    def caption(self) -> str:
        height, width = self.pixels.shape[:2]
        return f"{self.name} · {width}×{height}"


@dataclass
class StudioResult:
    """One finished (or stopped) run, as kept in the session's gallery."""

    result_id: int
    image: np.ndarray  # uint8 RGB at the output size, before adjustments
    content: np.ndarray  # uint8 RGB, the photo resized to the image's shape
    config: StyleConfig  # the settings of the run (adjustment fields at their defaults)
    content_name: str
    content_key: str
    style_names: tuple[str, ...]
    created: float
    seconds: float
    steps_done: int
    stopped: bool
    error: str | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    final_loss: float | None = None
    continued_from: int | None = None
    adjustments: dict[str, float] = field(default_factory=dict)

    @functools.cached_property
    def thumbnail(self) -> np.ndarray:
        return _fit(self.image, THUMB_SIDE)

    def final_thumbnail(self) -> np.ndarray:
        """The thumbnail with the current adjustments."""
        if not self.adjustments:
            return self.thumbnail
        content = _fit(self.content, THUMB_SIDE)
        return to_uint8(adjusted(self.thumbnail, content, self.adjustments))

    @property
    def nbytes(self) -> int:
        return int(self.image.nbytes + self.content.nbytes)

    @property
    def size_text(self) -> str:
        height, width = self.image.shape[:2]
        return f"{width}×{height}"

    @property
    def label(self) -> str:
        styles = " + ".join(self.style_names)
        return f"#{self.result_id} · {self.content_name} × {styles} · {self.time_text}"

    @property
    def time_text(self) -> str:
        return datetime.fromtimestamp(self.created).strftime("%H:%M:%S")

    @property
    def status_text(self) -> str:
        """One sentence on how the run ended."""
        total = self.config.steps
        took = format_seconds(self.seconds)
        if self.error:
            return f"The run ended early at step {self.steps_done} of {total}: {self.error}"
        if self.stopped:
            return (
                f"Stopped at step {self.steps_done} of {total} after {took}; "
                "the image so far is kept."
            )
        return f"Finished {self.steps_done} steps in {took}."

    def settings(self) -> dict[str, Any]:
        """The settings embedded in downloads: the run's config with the adjustments applied."""
        values = self.export_config().to_dict()
        values["steps_done"] = self.steps_done
        values["stopped"] = self.stopped
        return values

    def export_config(self) -> StyleConfig:
        return self.config.replace(**self.adjustments) if self.adjustments else self.config

    def final_image(self) -> np.ndarray:
        """The image with the current adjustments, float32 RGB in [0, 1]."""
        return adjusted(self.image, self.content, self.adjustments)

    def png_bytes(self) -> bytes:
        return to_png_bytes(self.final_image(), self.settings())

    def jpeg_bytes(self) -> bytes:
        return to_jpeg_bytes(self.final_image())


def adjusted(image: np.ndarray, content: np.ndarray, adjustments: dict[str, float]) -> np.ndarray:
    """``nst.color.adjust`` on uint8 arrays, float32 out; the identity without adjustments.

    The keys are the config's "adjust" fields, which are ``adjust``'s keyword arguments.
    """
    from nst.color import adjust

    picture = image.astype(np.float32) / 255.0
    if not adjustments:
        return picture
    return adjust(picture, content=content.astype(np.float32) / 255.0, **adjustments)


# ----- small helpers ---------------------------------------------------------------------------


def _fit(image: np.ndarray, side: int) -> np.ndarray:
    """uint8 copy with the longest side at most ``side`` (never enlarged)."""
    if max(image.shape[:2]) <= side:
        return to_uint8(image) if image.dtype != np.uint8 else image
    picture = image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image
    return to_uint8(resize_longest(picture, side))


def for_display(image: np.ndarray) -> np.ndarray:
    """What the browser is sent for viewing: uint8, at most DISPLAY_SIDE on the longest side."""
    return _fit(image, DISPLAY_SIDE)


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


def specs_in(group: str) -> list[FieldSpec]:
    """The user-facing config fields of one group, in declaration order."""
    return [spec for spec in field_specs() if spec.group == group and spec.name not in APP_MANAGED]


def friendly_error(error: Exception) -> str:
    """A config ValueError ("field: ...") with the field's label in place of its name."""
    text = str(error)
    name, sep, rest = text.partition(": ")
    if sep:
        try:
            return f"{field_spec(name).label}: {rest}"
        except KeyError:
            pass
    return text


def log_options(spec: FieldSpec, value: float) -> list[float]:
    """Round numbers (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 per decade) within the bounds.

    A lower bound of 0 is kept as the first option, so "off" stays reachable on a log slider.
    """
    low = spec.minimum if spec.minimum and spec.minimum > 0 else (spec.step or 1e-3)
    high = float(spec.maximum)
    options = {0.0} if spec.minimum == 0 else set()
    for exponent in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1):
        for mantissa in _NICE_MANTISSAS:
            number = float(f"{mantissa * 10.0**exponent:.6g}")
            if low <= number <= high:
                options.add(number)
    options.update({float(spec.minimum), high, float(value)})
    return sorted(options)


def _format_number(value: float) -> str:
    return f"{value:g}"


def _uses_log_slider(spec: FieldSpec) -> bool:
    """Log-scaled when the spec says so, or when a 0-based range spans 3+ decades of its step."""
    if spec.log:
        return True
    if spec.kind != "float" or spec.minimum != 0 or not spec.step:
        return False
    return spec.maximum / spec.step >= 1000


# ----- widgets generated from the config -----------------------------------------------------


def spec_widget(spec: FieldSpec, *, key: str, help_suffix: str = "", bind: bool = False) -> Any:
    """One widget for one config field, chosen by the field's kind and bounds.

    Values of "floats"/"strings" fields are returned as comma-separated text, which
    ``StyleConfig`` parses and validates itself. With ``bind``, the value is kept in the URL's
    query string (``?style_weight=50&size=256``), so a link reproduces the settings.
    """
    help_text = spec.help + help_suffix
    common: dict[str, Any] = {"key": key, "help": help_text, "persist_state": "session"}
    if bind:
        common["bind"] = "query-params"
    # A default only for a fresh widget: one whose value was set through session state (e.g. by
    # "Restore default settings") must not get a second default (Streamlit warns about that).
    fresh = key not in st.session_state
    default = widget_default(spec)
    if spec.kind == "choice":
        if fresh:
            common["index"] = spec.choices.index(default)
        return st.selectbox(spec.label, spec.choices, **common)
    if fresh:
        common["value"] = default
    if spec.kind in ("floats", "strings"):
        return st.text_input(spec.label, placeholder="default", **common)
    if spec.kind == "float" and _uses_log_slider(spec):
        return st.select_slider(
            spec.label, options=log_options(spec, default), format_func=_format_number, **common
        )
    if spec.kind == "float":
        decimals = max(0, -math.floor(math.log10(spec.step))) if spec.step else 2
        return st.slider(
            spec.label,
            min_value=float(spec.minimum),
            max_value=float(spec.maximum),
            step=float(spec.step) if spec.step else None,
            format=f"%.{decimals}f",
            **common,
        )
    # ints: a slider when it has a manageable number of positions, else a number box
    step = int(spec.step or 1)
    low, high = int(spec.minimum), int(spec.maximum)
    if (default - low) % step or (high - low) % step:
        step = 1  # keep the default and both bounds reachable
    widget = st.number_input if (high - low) / step > 5000 else st.slider
    return widget(spec.label, min_value=low, max_value=high, step=step, **common)


def _widgets(specs: Iterable[FieldSpec], columns: int = 1) -> dict[str, Any]:
    values: dict[str, Any] = {}
    specs = list(specs)
    slots = st.columns(columns) if columns > 1 else [st.container()]
    for spec, slot in zip(specs, itertools.cycle(slots)):
        with slot:
            values[spec.name] = spec_widget(
                spec, key=spec.name, help_suffix=_layer_hint(spec), bind=True
            )
    return values


def _layer_hint(spec: FieldSpec) -> str:
    if spec.name not in ("content_layers", "style_layers"):
        return ""
    from nst.model import default_layers

    backbone = st.session_state.get("backbone", field_spec("backbone").default)
    content, style = default_layers(backbone)
    names = content if spec.name == "content_layers" else style
    return f" Default for {backbone}: {', '.join(names)}."


def reset_settings() -> None:
    """Callback: every settings widget back to its default (and out of the link)."""
    for spec in field_specs():
        if spec.name in st.session_state:
            # set rather than delete: a deleted widget would read the link's value again
            st.session_state[spec.name] = widget_default(spec)


def widget_default(spec: FieldSpec) -> Any:
    """The spec's default as its widget holds it (text for lists, float for log sliders)."""
    if spec.kind in ("floats", "strings"):
        return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in spec.default)
    if spec.kind == "float":
        return float(spec.default)
    if spec.kind == "int":
        return int(spec.default)
    return spec.default


def settings_panel() -> tuple[dict[str, Any], InputImage | None]:
    """The sliders (main group), colour controls and Advanced expander; returns raw values."""
    values = _widgets(specs_in("main"), columns=3)
    with st.expander("Colour, blending and mask", icon=":material/palette:"):
        values.update(_widgets(specs_in("color"), columns=3))
        mask = mask_picker()
    with st.expander("Advanced", icon=":material/tune:"):
        values.update(_widgets(specs_in("advanced"), columns=3))
        st.button(
            "Restore default settings",
            key="restore_defaults",
            on_click=reset_settings,
            icon=":material/restart_alt:",
        )
    return values, mask


def build_config(values: dict[str, Any]) -> StyleConfig:
    """A validated config from widget values; raises ValueError with the field's label."""
    merged = dict(values)
    size = int(merged.get("size", field_spec("size").default))
    merged.setdefault("preview_every", preview_every_for(size))
    try:
        return StyleConfig(**merged)
    except (TypeError, ValueError) as error:
        raise ValueError(friendly_error(error)) from None


def preview_every_for(size: int) -> int:
    """Steps between previews so that the picture updates about twice a second.

    Based on the measured ~0.6 s per Adam step at 512² on a 2-core CPU, scaling with area.
    """
    seconds_per_step = 0.6 * (size / 512) ** 2
    limit = int(field_spec("preview_every").default)
    return int(np.clip(round(0.5 / max(seconds_per_step, 1e-3)), 1, limit))


# ----- inputs ----------------------------------------------------------------------------------


def _inputs() -> dict[str, Any]:
    return st.session_state.setdefault("inputs", {})


def _forget(slot: str) -> None:
    """Callback of an uploader: its files changed, so drop what was remembered for it."""
    _inputs().pop(slot, None)


def decode(data: bytes, *, key: str, name: str, what: str) -> InputImage:
    """Decode, check and downscale an upload; raises ImageError with one plain sentence."""
    limit = int(field_spec("max_pixels").default)
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
def sample_styles() -> dict[str, InputImage]:
    """The project's own sample styles (``assets/styles/*.png``, made by make_styles.py)."""
    samples = {}
    for path in sorted(STYLE_DIR.glob("*.png")):
        pixels = to_uint8(load_image(path))
        name = path.stem.replace("_", " ")
        samples[name] = InputImage(key=f"sample:{path.stem}", name=name, pixels=pixels)
    return samples


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


def mask_picker() -> InputImage | None:
    """An optional black-and-white mask: white where the style goes, black keeps the photo."""
    upload = st.file_uploader(
        "Mask (optional)",
        key="mask_upload",
        help="White where the (first) style applies, black where the photo stays; with two "
        "styles, black gets the second style. Soft edges blend.",
        on_change=_forget,
        args=("mask",),
    )
    picture = _single_input("mask", upload, "mask")
    if picture is not None:
        st.image(picture.thumbnail, caption=picture.caption, width=120)
    return picture


# ----- the model and the weights banner ----------------------------------------------------------


@st.cache_resource(show_spinner=False, max_entries=6)
def _extractor(backbone: str, pooling: str, precision: str, weights: str) -> Any:
    """The shared, thread-safe extractor (``weights``, the NST_WEIGHTS value, keys the cache)."""
    from nst.model import preload

    return preload(backbone, pooling, precision)


def ensure_model(config: StyleConfig) -> None:
    """Build (once per process) the backbone the run needs; raises ``WeightsError``."""
    from nst.model import weights_mode

    if weights_mode() == "imagenet":
        message = (
            f"Loading the {config.backbone.upper()} network. The first time, its ImageNet "
            "weights are downloaded (about 80 MB); later runs start at once."
        )
    else:
        message = f"Building the {config.backbone.upper()} network…"
    with st.spinner(message):
        weights = os.environ.get("NST_WEIGHTS", "")
        _extractor(config.backbone, config.pooling, config.precision, weights)


def weights_banner() -> None:
    """A visible banner when the network runs with untrained (random) weights."""
    from nst.model import weights_mode

    if weights_mode() == "random":
        st.warning(
            "Demo mode: NST_WEIGHTS=random, so the network's features are untrained. Everything "
            "works, but results will not look like the painting. Unset NST_WEIGHTS to use the "
            "ImageNet weights.",
            icon=":material/science:",
        )


# ----- results (the session's gallery) ---------------------------------------------------------


def results() -> list[StudioResult]:
    return st.session_state.setdefault("results", [])


def find_result(result_id: int | None) -> StudioResult | None:
    return next((item for item in results() if item.result_id == result_id), None)


def current_result() -> StudioResult | None:
    return find_result(st.session_state.get("current_id"))


def add_result(record: StudioResult) -> None:
    """Append to the gallery, dropping the oldest beyond the count or memory cap."""
    st.session_state["current_id"] = record.result_id
    items = results()
    items.append(record)
    dropped = 0
    while len(items) > 1 and (
        len(items) > GALLERY_CAP or sum(item.nbytes for item in items) > GALLERY_BYTES
    ):
        items.pop(0)
        dropped += 1
    if dropped:
        st.session_state["dropped"] = st.session_state.get("dropped", 0) + dropped


def delete_result(result_id: int) -> None:
    """Callback: remove one result from the gallery."""
    st.session_state["results"] = [item for item in results() if item.result_id != result_id]
    if st.session_state.get("current_id") == result_id:
        st.session_state["current_id"] = None


def dropped_notice() -> str | None:
    dropped = st.session_state.get("dropped", 0)
    if not dropped:
        return None
    plural = "result was" if dropped == 1 else "results were"
    return (
        f"{dropped} older {plural} removed to save memory: the gallery keeps the "
        f"{GALLERY_CAP} newest. Download the ones you want to keep."
    )


def _next_id() -> int:
    number = st.session_state.get("next_id", 1)
    st.session_state["next_id"] = number + 1
    return number


# ----- running a job with a live view ----------------------------------------------------------


@dataclass(frozen=True)
class RunInfo:
    """What the page knows about a run besides the request: names for the gallery."""

    config: StyleConfig
    content: np.ndarray  # float32, as submitted (for the before/after view)
    content_name: str
    content_key: str
    style_names: tuple[str, ...]
    continued_from: int | None = None


def request_continue(result_id: int) -> None:
    """Callback of "Continue from this result": the page starts a warm-started run."""
    st.session_state["pending_run"] = {"continue_from": result_id}


def take_pending_run() -> dict[str, Any] | None:
    return st.session_state.pop("pending_run", None)


def start_run(
    content: InputImage | None,
    styles: Sequence[InputImage],
    values: dict[str, Any],
    mask: InputImage | None,
    stage: Any,
    *,
    continue_from: int | None = None,
) -> StudioResult | None:
    """Validate the inputs, then run the job in ``stage`` (see ``watch_job``).

    Problems are reported with one ``st.error`` sentence and None is returned.
    """
    from nst.jobs import JobRequest
    from nst.model import WeightsError
    from nst.stylize import check_memory

    base = find_result(continue_from) if continue_from is not None else None
    if continue_from is not None and base is None:
        st.error("That result is no longer in the gallery; please start a new run.")
        return None
    if content is None and base is None:
        st.error("Add a photo first: upload one or take a picture with the camera.")
        return None
    if not styles:
        st.error("Choose a style first: upload a painting or pick one of the sample styles.")
        return None
    try:
        config = build_config(values)
    except ValueError as error:
        st.error(str(error))
        return None
    problem = _combination_problem(config, len(styles), mask is not None)
    if problem:
        st.error(problem)
        return None
    init_image = None
    if base is not None:
        init_image = base.final_image()
        if content is None or content.key != base.content_key:
            photo = base.content.astype(np.float32) / 255.0
            info_content = (photo, base.content_name, base.content_key)
        else:
            info_content = (content.as_float(), content.name, content.key)
    else:
        assert content is not None
        info_content = (content.as_float(), content.name, content.key)
    try:
        ensure_model(config)
    except WeightsError as error:
        st.error(str(error))
        return None
    photo, name, key = info_content
    try:
        check_memory(config, photo.shape)  # refuse now rather than fail in the middle
    except ValueError as error:
        st.error(str(error))
        return None
    photo = resize_longest(photo, config.size)  # the engine's working size: less to keep queued
    request = JobRequest(
        content=photo,
        styles=tuple(style.as_float() for style in styles),
        config=config,
        mask=None if mask is None else mask.as_float(),
        init_image=init_image,
    )
    info = RunInfo(config, photo, name, key, tuple(s.name for s in styles), continue_from)
    return watch_job(request, info, stage)


def _combination_problem(config: StyleConfig, style_count: int, has_mask: bool) -> str | None:
    """Checks that need the inputs as well as the settings, phrased for the page."""
    blend = config.style_blend
    if blend and len(blend) != style_count:
        return (
            f"{field_spec('style_blend').label}: give one weight per style ({style_count} "
            f"chosen, {len(blend)} given), or leave it empty for equal weights."
        )
    if has_mask and style_count > 2:
        return f"A mask works with one or two styles; {style_count} are chosen."
    return None


@dataclass
class Outcome:
    """How one watched job ended: a gallery record (id still 0 until kept) or a message."""

    record: StudioResult | None = None
    error: str | None = None
    notice: str | None = None


class RunMailbox:
    """Hands the outcome of a run from the script thread that watched it to the next run.

    With ``runner.fastReruns`` a click *stops* the running script and starts a new script run
    at once, in parallel. The stopped script may not touch ``st.session_state`` any more (every
    access raises its ``StopException`` again), so its ``finally`` ends the job and posts the
    outcome here, a plain thread-safe object that the session holds; the next run collects it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._pending: set[str] = set()
        self._outcomes: list[Outcome] = []

    def begin(self, job_id: str) -> None:
        with self._lock:
            self._pending.add(job_id)

    def deliver(self, job_id: str, outcome: Outcome) -> None:
        with self._changed:
            self._pending.discard(job_id)
            self._outcomes.append(outcome)
            self._changed.notify_all()

    def wait_idle(self, timeout: float) -> None:
        """Wait until no watched job is still being settled by an interrupted script."""
        with self._changed:
            self._changed.wait_for(lambda: not self._pending, timeout)

    def peek(self) -> list[Outcome]:
        with self._lock:
            return list(self._outcomes)

    def discard(self, outcomes: Iterable[Outcome]) -> None:
        with self._lock:
            done = {id(outcome) for outcome in outcomes}
            self._outcomes = [item for item in self._outcomes if id(item) not in done]


def _mailbox() -> RunMailbox:
    return st.session_state.setdefault("mailbox", RunMailbox())


def collect_runs() -> StudioResult | None:
    """Keep the outcomes of finished or interrupted runs (call at the top of every page run).

    Returns the newest record kept, if any.
    """
    mailbox = _mailbox()
    mailbox.wait_idle(SETTLE_SECONDS + 2.0)
    outcomes = mailbox.peek()
    newest = None
    for outcome in outcomes:
        record = outcome.record
        if record is not None:
            if record.result_id == 0:
                record.result_id = _next_id()
            if all(item is not record for item in results()):
                add_result(record)
            newest = record
        elif outcome.error:
            st.session_state["run_error"] = outcome.error
        elif outcome.notice:
            st.session_state["run_notice"] = outcome.notice
    mailbox.discard(outcomes)
    return newest


def watch_job(request: Any, info: RunInfo, stage: Any) -> StudioResult | None:
    """Submit to the queue and show queue position, progress, preview and loss chart.

    A click anywhere (Stop, another widget, another page) or a closed tab interrupts this
    script at its next ``st.*`` call; the ``finally`` then cancels the job (within a step) and
    posts the image so far to the mailbox, from where the next run puts it in the gallery.
    """
    from nst.jobs import JobState, get_queue

    queue = get_queue()
    mailbox = _mailbox()
    job_id = queue.submit(request)
    mailbox.begin(job_id)
    try:
        with stage.container():
            bar_column, stop_column = st.columns([5, 1], vertical_alignment="bottom")
            bar = bar_column.empty()
            stop_column.button("Stop", key="stop_run", icon=":material/stop_circle:")
            st.caption(
                "Stop keeps the picture so far. Changing a setting or leaving the page also "
                "stops the run."
            )
            message = st.empty()
            preview_column, chart_column = st.columns(2)
            preview_slot = preview_column.empty()
            chart_slot = chart_column.empty()
        shown_preview: Any = None
        chart_drawn = 0.0
        while True:
            status = queue.status(job_id)
            if status.state is JobState.QUEUED:
                bar.progress(0.0, text="Waiting for a free slot…")
                message.info(
                    f"The studio is busy: your run is number {status.position} in the queue "
                    "and starts as soon as a slot is free.",
                    icon=":material/hourglass_top:",
                )
            elif status.state is JobState.RUNNING:
                progress = status.progress
                if progress is None:
                    bar.progress(0.0, text="Preparing the network and the style targets…")
                else:
                    bar.progress(
                        min(1.0, progress.step / max(1, progress.total)),
                        text=_progress_text(progress),
                    )
                message.empty()
                if status.preview is not None and status.preview is not shown_preview:
                    shown_preview = status.preview
                    step = progress.step if progress is not None else 0
                    preview_slot.image(
                        for_display(shown_preview),
                        caption=f"Preview at step {step}",
                        width="stretch",
                    )
                if status.history and time.monotonic() - chart_drawn >= CHART_SECONDS:
                    chart_drawn = time.monotonic()
                    with chart_slot.container():
                        loss_chart(status.history)
            if status.state.finished:
                break
            time.sleep(POLL_SECONDS)
    finally:
        # No st.* calls in here: after an interruption they would raise again.
        try:
            outcome = settle_job(job_id, info)
        except Exception:  # never leave the next run waiting for this one
            logger.exception("Settling job %s failed.", job_id)
            outcome = Outcome(error="The run ended unexpectedly; please try again.")
        mailbox.deliver(job_id, outcome)
    return collect_runs()  # only reached when the run ended by itself


def _progress_text(progress: Any) -> str:
    text = f"Step {progress.step} of {progress.total}"
    if progress.step < progress.total:
        text += f" · about {format_seconds(progress.seconds_left)} left"
    if math.isfinite(progress.loss):
        text += f" · loss {progress.loss:.4g}"
    return text


def settle_job(job_id: str, info: RunInfo) -> Outcome:
    """End a job (cancel it if it still runs, wait up to a step) and say how it ended.

    Uses only the queue, never Streamlit, so it is safe in a ``finally`` after an interruption.
    """
    from nst.jobs import UnknownJobError, get_queue

    queue = get_queue()
    queue.cancel(job_id)  # nothing happens if it has finished
    status = None
    result = None
    deadline = time.monotonic() + SETTLE_SECONDS
    try:
        while True:
            status = queue.status(job_id)
            if status.state.finished or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if status.state.finished:
            result = queue.result(job_id)
    except UnknownJobError:
        pass
    finally:
        queue.forget(job_id)
    record = _outcome_record(info, status, result)
    if record is not None or status is None:
        return Outcome(record=record)
    if status.error:
        return Outcome(error=status.error)
    return Outcome(notice="The run was stopped before its first step.")


def _outcome_record(info: RunInfo, status: Any, result: Any) -> StudioResult | None:
    """A gallery record (id still 0) from a job's result, or else from its last preview."""
    if result is not None:
        image, config, history = result.image, result.config, list(result.history)
        seconds = float(result.timings.get("total", 0.0))
        steps_done, stopped, error = int(result.steps_done), bool(result.stopped), result.error
        final_loss = result.final_loss if math.isfinite(result.final_loss) else None
    elif status is not None and status.preview is not None:
        # the run did not hand back its result in time: keep the last preview
        progress = status.progress
        image, config, history = status.preview, info.config, list(status.history)
        seconds = float(progress.elapsed) if progress is not None else 0.0
        steps_done = int(progress.step) if progress is not None else 0
        stopped, error, final_loss = True, status.error, None
    else:
        return None
    return StudioResult(
        result_id=0,
        image=to_uint8(image),
        content=to_uint8(resize_to(info.content, *image.shape[:2])),
        config=config,
        content_name=info.content_name,
        content_key=info.content_key,
        style_names=info.style_names,
        created=time.time(),
        seconds=seconds,
        steps_done=steps_done,
        stopped=stopped,
        error=error,
        history=history,
        final_loss=final_loss,
        continued_from=info.continued_from,
    )


def show_run_error() -> None:
    """The one-sentence error (or notice) of the last run, if it ended without an image."""
    error = st.session_state.pop("run_error", None)
    if error:
        st.error(error, icon=":material/error:")
    notice = st.session_state.pop("run_notice", None)
    if notice:
        st.info(notice, icon=":material/info:")


# ----- showing results -------------------------------------------------------------------------


def loss_chart(history: Sequence[dict[str, Any]], *, height: int = 260) -> None:
    """Line chart of the loss parts (content, style, smoothness) by step."""
    frame = pd.DataFrame(list(history))
    if frame.empty or "step" not in frame:
        return
    parts = [c for c in frame.columns if c not in ("step", "loss", "elapsed")]
    if not parts:
        parts = ["loss"]
    frame = frame.dropna(subset=["step"]).drop_duplicates("step", keep="last").set_index("step")
    if len(frame) > CHART_POINTS:
        frame = frame.iloc[:: math.ceil(len(frame) / CHART_POINTS)]
    names = {"tv": "smoothness (tv)"}
    st.line_chart(frame[parts].rename(columns=names), x_label="step", y_label="loss", height=height)


def wipe(before: np.ndarray, after: np.ndarray, position: float) -> np.ndarray:
    """Before on the left of ``position`` (0..1 of the width), after on the right."""
    height, width = after.shape[:2]
    left = resize_to(_as_float(before), height, width)
    right = _as_float(after)
    cut = round(position * width)
    combined = right.copy()
    combined[:, :cut] = left[:, :cut]
    if 0 < cut < width:
        combined[:, max(0, cut - 1) : cut + 1] = 1.0  # a thin white divider
    return combined


def _as_float(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image


def adjustment_widgets(record: StudioResult) -> dict[str, float]:
    """The instant adjustments (the config's "adjust" group) for one result."""
    values: dict[str, float] = {}
    keys = []
    for spec in specs_in("adjust"):
        key = f"{ADJUST_KEY}{record.result_id}_{spec.name}"
        keys.append(key)
        values[spec.name] = spec_widget(spec, key=key)
    st.button(
        "Reset adjustments",
        key=f"reset_adjust_{record.result_id}",
        on_click=_reset_keys,
        args=(tuple(keys),),
        icon=":material/restart_alt:",
    )
    changed = {name: value for name, value in values.items() if value != field_spec(name).default}
    record.adjustments = changed
    return changed


def _reset_keys(keys: tuple[str, ...]) -> None:
    for key in keys:
        st.session_state.pop(key, None)


def download_buttons(record: StudioResult, *, key_prefix: str, stacked: bool = False) -> None:
    """PNG (settings embedded) and JPEG downloads at full output size, encoded on click."""
    stem = f"stylized-{record.result_id}"
    left, right = (st.container(), st.container()) if stacked else st.columns(2)
    left.download_button(
        "Download PNG",
        data=record.png_bytes,  # a callable: encoded when clicked, on another thread
        file_name=f"{stem}.png",
        mime="image/png",
        key=f"{key_prefix}_png_{record.result_id}",
        on_click="ignore",
        icon=":material/download:",
        type="primary",
        help="Full output size, with all settings embedded in the file.",
        width="stretch",
    )
    right.download_button(
        "Download JPEG",
        data=record.jpeg_bytes,
        file_name=f"{stem}.jpg",
        mime="image/jpeg",
        key=f"{key_prefix}_jpg_{record.result_id}",
        on_click="ignore",
        icon=":material/download:",
        width="stretch",
    )


def comparison(record: StudioResult, image: np.ndarray) -> None:
    """Before/after side by side, and a wipe between the two."""
    shown = for_display(image)
    side, swipe = st.tabs(["Before / after", "Wipe"])
    with side:
        before, after = st.columns(2)
        before.image(for_display(record.content), caption="Before: your photo", width="stretch")
        after.image(shown, caption=f"After: {record.size_text}", width="stretch")
    with swipe:
        position = st.slider(
            "Wipe position",
            0,
            100,
            50,
            key=f"wipe_{record.result_id}",
            format="%d%%",
            help="Left of the line: your photo. Right: the result.",
        )
        st.image(
            wipe(for_display(record.content), shown, position / 100),
            caption="Before | after",
            width="stretch",
        )


def result_panel(record: StudioResult) -> None:
    """Status, comparison, instant adjustments, downloads and "continue" for one result."""
    if record.error:
        st.warning(record.status_text, icon=":material/warning:")
    elif record.stopped:
        st.info(record.status_text, icon=":material/stop_circle:")
    else:
        st.success(record.status_text, icon=":material/check_circle:")
    view, controls = st.columns([3, 2], gap="large")
    with controls:
        st.markdown("**Adjust** (instant, no new run)")
        adjustment_widgets(record)
        st.button(
            "Continue from this result",
            key=f"continue_{record.result_id}",
            on_click=request_continue,
            args=(record.result_id,),
            icon=":material/replay:",
            help="Start a new run from this image (as adjusted) with the current sliders and "
            "styles: more steps, or a different intensity, without starting over.",
            width="stretch",
        )
    with view:
        comparison(record, record.final_image())
        download_buttons(record, key_prefix="result")
    if record.history:
        with st.expander("Loss curves of this run", icon=":material/show_chart:"):
            loss_chart(record.history)


def settings_table(config: StyleConfig) -> pd.DataFrame:
    """Label → value for every user-facing field (for the gallery's settings view)."""
    rows = []
    for spec in field_specs():
        if spec.name in APP_MANAGED:
            continue
        value = getattr(config, spec.name)
        if isinstance(value, tuple):
            value = (
                ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) or "default"
            )
        rows.append({"setting": spec.label, "value": str(value)})
    return pd.DataFrame(rows).set_index("setting")


def gallery_card(item: StudioResult) -> None:
    """One gallery entry: thumbnail, what and when, settings, downloads, delete."""
    st.image(item.final_thumbnail(), width="stretch")
    st.markdown(f"**#{item.result_id}** · {item.content_name} × {' + '.join(item.style_names)}")
    facts = [item.time_text, item.size_text, format_seconds(item.seconds)]
    facts.append(f"{item.steps_done}/{item.config.steps} steps")
    if item.continued_from is not None:
        facts.append(f"continued from #{item.continued_from}")
    st.caption(" · ".join(facts))
    if item.error:
        st.caption(f":orange[{item.error}]")
    elif item.stopped:
        st.caption(":blue[Stopped early]")
    config = item.export_config()
    st.caption(
        f"Style intensity {config.style_weight:g} · content {config.content_weight:g} · "
        f"smoothness {config.tv_weight:g}"
    )
    with st.expander("All settings"):
        st.dataframe(settings_table(config), width="stretch")
    download_buttons(item, key_prefix="gallery", stacked=True)
    st.button(
        "Delete",
        key=f"delete_{item.result_id}",
        on_click=delete_result,
        args=(item.result_id,),
        icon=":material/delete:",
    )


def compare_results(first: StudioResult, second: StudioResult) -> None:
    """Two results side by side, with the settings in which they differ."""
    left, right = st.columns(2)
    for column, item in ((left, first), (right, second)):
        column.image(for_display(item.final_image()), caption=item.label, width="stretch")
    table_first = settings_table(first.export_config())
    table_second = settings_table(second.export_config())
    table = pd.DataFrame(
        {f"#{first.result_id}": table_first["value"], f"#{second.result_id}": table_second["value"]}
    )
    extra = pd.DataFrame(
        {
            f"#{first.result_id}": [
                " + ".join(first.style_names),
                first.content_name,
                str(first.steps_done),
                format_seconds(first.seconds),
            ],
            f"#{second.result_id}": [
                " + ".join(second.style_names),
                second.content_name,
                str(second.steps_done),
                format_seconds(second.seconds),
            ],
        },
        index=["Styles", "Photo", "Steps done", "Time"],
    )
    table = pd.concat([extra, table])
    differing = table[table.iloc[:, 0] != table.iloc[:, 1]]
    if differing.empty:
        st.caption("Both results have the same settings.")
    else:
        st.markdown("**Where they differ**")
        st.dataframe(differing, width="stretch")


# ----- How it works: small, honest numpy illustrations -----------------------------------------

GROUP_TITLES = {
    "main": "Main sliders",
    "color": "Colour, blending and mask",
    "advanced": "Advanced",
    "adjust": "Instant adjustments (after the run)",
}


def _simple_features(image: np.ndarray) -> np.ndarray:
    """Per-pixel colour and edge responses: a hand-made stand-in for a network's features."""
    dx = np.diff(image, axis=1, append=image[:, -1:])
    dy = np.diff(image, axis=0, append=image[-1:])
    gray_dx, gray_dy = dx.mean(-1, keepdims=True), dy.mean(-1, keepdims=True)
    return np.concatenate([image, np.abs(gray_dx) * 4, np.abs(gray_dy) * 4], axis=-1)


def gram(features: np.ndarray) -> np.ndarray:
    """Gram matrix divided by the number of positions (as in the TensorFlow tutorial)."""
    flat = features.reshape(-1, features.shape[-1])
    return flat.T @ flat / len(flat)


def content_difference(first: np.ndarray, second: np.ndarray) -> float:
    """Feature error position by position, relative to the first image's features."""
    a, b = _simple_features(first), _simple_features(second)
    return float(((a - b) ** 2).mean() / max(float((a**2).mean()), 1e-8))


def style_difference(first: np.ndarray, second: np.ndarray) -> float:
    """Gram-matrix error, relative to the first image's Gram matrix: layout is ignored."""
    a, b = gram(_simple_features(first)), gram(_simple_features(second))
    return float(((a - b) ** 2).sum() / max(float((a**2).sum()), 1e-12))


def shuffle_tiles(image: np.ndarray, tile: int, seed: int = 0) -> np.ndarray:
    """The same pixels in scrambled tiles: same statistics, different layout."""
    height, width = (image.shape[0] // tile) * tile, (image.shape[1] // tile) * tile
    rows, cols = height // tile, width // tile
    tiles = image[:height, :width].reshape(rows, tile, cols, tile, -1).swapaxes(1, 2)
    tiles = tiles.reshape(rows * cols, tile, tile, -1)
    tiles = tiles[np.random.default_rng(seed).permutation(len(tiles))]
    return tiles.reshape(rows, cols, tile, tile, -1).swapaxes(1, 2).reshape(height, width, -1)


def total_variation(image: np.ndarray) -> float:
    """Mean absolute difference between neighbouring pixels."""
    return float(np.abs(np.diff(image, axis=0)).mean() + np.abs(np.diff(image, axis=1)).mean())


def explainer_samples(side: int = 192) -> dict[str, np.ndarray]:
    """Float crops of the sample styles, for the illustrations."""
    return {
        name: resize_to(picture.as_float(), side, side) for name, picture in sample_styles().items()
    }


def slider_reference(group: str) -> pd.DataFrame:
    """What each control of one group does, generated from the config."""
    rows = []
    for spec in specs_in(group):
        if spec.kind in ("float", "int"):
            span = f"{spec.minimum:g} – {spec.maximum:g}" + (" (log scale)" if spec.log else "")
        elif spec.kind == "choice":
            span = " / ".join(spec.choices)
        else:
            span = "comma-separated list"
        default = spec.default
        if isinstance(default, tuple):
            default = ", ".join(map(str, default)) or "backbone's default"
        rows.append(
            {
                "control": spec.label,
                "what it does": spec.help,
                "default": str(default),
                "range": span,
            }
        )
    return pd.DataFrame(rows).set_index("control")
