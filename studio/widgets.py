"""Widgets generated from the config's field specs, and the settings they add up to.

The settings widgets keep their values in the URL's query string, so a link reproduces them.
Beside the output size, a paper (``nst.prints``) sets it for the photo; under the settings, the
run's forecast (``nst.forecast``) says its pixels, print size, time and memory before Stylize.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import streamlit as st

from nst.config import Adjustments, StyleConfig, default_layers, field_spec
from nst.forecast import forecast
from nst.jobs import queue_url
from nst.knobs import FieldSpec, specs_of
from nst.prints import DPI, PAPER_NAMES, paper_label, print_size
from studio.inputs import mask_picker
from studio.session import InputImage, MaskChoice

# Fields the app sets itself: the preview rate follows the output size so that the picture
# updates about twice a second. (The server's pixel cap, ``ServerLimits``, has no widget.)
APP_MANAGED = frozenset({"preview_every"})
_NICE_MANTISSAS = (1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0)
PAPER_KEY = "paper"
CUSTOM_SIZE = "custom"
# The papers offered beside the output size, each in both orientations, said in full.
PAPER_CHOICES = (CUSTOM_SIZE, *(name for name in PAPER_NAMES if "-" in name))


def specs_in(group: str) -> list[FieldSpec]:
    """The user-facing fields of one group (of ``StyleConfig`` or ``Adjustments``), in
    declaration order."""
    specs = [*specs_of(StyleConfig), *specs_of(Adjustments)]
    return [spec for spec in specs if spec.group == group and spec.name not in APP_MANAGED]


def list_text(values: Iterable[Any]) -> str:
    """A "floats"/"strings" field's values as comma-separated text (floats as ``%g``)."""
    return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


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


def spec_widget(
    spec: FieldSpec,
    *,
    key: str,
    help_suffix: str = "",
    bind: bool = False,
    disabled: bool = False,
) -> Any:
    """One widget for one config field, chosen by the field's kind and bounds.

    Values of "floats"/"strings" fields are returned as comma-separated text, which
    ``StyleConfig`` parses and validates itself. With ``bind``, the value is kept in the URL's
    query string (``?style_weight=50&size=256``), so a link reproduces the settings.
    """
    help_text = spec.help + help_suffix
    common: dict[str, Any] = {
        "key": key,
        "help": help_text,
        "persist_state": "session",
        "disabled": disabled,
    }
    if bind:
        common["bind"] = "query-params"
    # A default only for a fresh widget: one whose value was set through session state (e.g. by
    # "Restore default settings") must not get a second default (Streamlit warns about that).
    fresh = key not in st.session_state
    default = widget_default(spec)
    if spec.kind == "choice":
        if fresh:
            common["index"] = spec.choices.index(default)
        if spec.choice_labels:  # a few named choices a person reads at a glance
            return st.radio(
                spec.label, spec.choices, format_func=spec.choice_label, horizontal=True, **common
            )
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


# What the Instant method does not use: greyed out while it is chosen (their values stay).
OPTIMIZER_ONLY = frozenset({"content_weight", "tv_weight", "steps"})


def _settings_widgets(
    specs: Iterable[FieldSpec],
    columns: int,
    instant: bool = False,
    photo: InputImage | None = None,
) -> dict[str, Any]:
    """Linked widgets for the settings fields, spread over ``columns``; name → raw value. The
    output size comes with its paper (``photo``: the photo picked, which a paper is fitted to)."""
    values: dict[str, Any] = {}
    specs = list(specs)
    slots = st.columns(columns)
    for spec, slot in zip(specs, itertools.cycle(slots)):
        idle = instant and spec.name in OPTIMIZER_ONLY
        with slot:
            if spec.name == "size":
                values["size"] = size_and_paper(spec, photo)
                continue
            values[spec.name] = spec_widget(
                spec,
                key=spec.name,
                help_suffix=" (Painted only.)" if idle else _layer_hint(spec),
                bind=True,
                disabled=idle,
            )
    return values


def size_and_paper(spec: FieldSpec, photo: InputImage | None) -> int:
    """The output-size slider with the paper under it: a paper sets the size that fills it at
    ``DPI`` with ``photo`` (``nst.prints.print_size``) and holds the slider while chosen."""
    # The paper as last chosen: its box is drawn under the slider, whose value it decides.
    paper = st.session_state.get(PAPER_KEY, CUSTOM_SIZE)
    held = False
    if paper != CUSTOM_SIZE and photo is not None:
        st.session_state[spec.name] = print_size(paper, photo.pixels.shape)
        held = True
    hint = " Set by the paper below; choose 'Custom size' there to change it." if held else ""
    size = spec_widget(spec, key=spec.name, help_suffix=hint, bind=True, disabled=held)
    st.selectbox(
        "Paper",
        PAPER_CHOICES,
        format_func=lambda name: "Custom size" if name == CUSTOM_SIZE else paper_label(name),
        key=PAPER_KEY,
        help=f"Sets the output size so that the whole picture fills the paper at {DPI} dpi, "
        "uncropped, for the photo you picked.",
        bind="query-params",
        persist_state="session",
    )
    return size


def forecast_note(photo: InputImage | None, values: dict[str, Any]) -> None:
    """Under the settings, before Stylize: the run's pixels, print size, time and memory as
    estimated on this server (one caption), or, when it will not fit, a warning saying what to
    do. Nothing without a photo or with settings that do not combine (Stylize says why)."""
    if photo is None:
        return
    try:
        config = build_config(values)
        remote = bool(queue_url())
    except ValueError:  # settings that do not combine, or a malformed NST_QUEUE
        return
    paper = st.session_state.get(PAPER_KEY, CUSTOM_SIZE)
    figures = forecast(config, photo.pixels.shape, None if paper == CUSTOM_SIZE else paper)
    # With NST_QUEUE a worker elsewhere paints it, but the figures are this server's own.
    where = "on this server"
    if remote:
        where = "on this web server (the worker that paints it may differ)"
    if figures.fits:
        st.caption(f":material/schedule: {figures.sentence(where)}")
    else:
        st.warning(figures.sentence(where), icon=":material/memory:")


def _layer_hint(spec: FieldSpec) -> str:
    if spec.name not in ("content_layers", "style_layers"):
        return ""
    backbone = st.session_state.get("backbone", field_spec("backbone").default)
    content, style = default_layers(backbone)
    names = content if spec.name == "content_layers" else style
    return f" Default for {backbone}: {', '.join(names)}."


def reset_settings() -> None:
    """Callback: every settings widget back to its default (and out of the link)."""
    for spec in specs_of(StyleConfig):
        if spec.name in st.session_state:
            # set rather than delete: a deleted widget would read the link's value again
            st.session_state[spec.name] = widget_default(spec)
    if PAPER_KEY in st.session_state:
        st.session_state[PAPER_KEY] = CUSTOM_SIZE


def widget_default(spec: FieldSpec) -> Any:
    """The spec's default as its widget holds it (text for lists, float for log sliders)."""
    if spec.kind in ("floats", "strings"):
        return list_text(spec.default)
    if spec.kind == "float":
        return float(spec.default)
    if spec.kind == "int":
        return int(spec.default)
    return spec.default


def settings_panel(photo: InputImage | None) -> tuple[dict[str, Any], MaskChoice | None]:
    """The sliders (main group) with the paper, colour controls and Advanced expander; returns
    raw values. ``photo``: the photo picked, which a paper sizes the output for."""
    main = specs_in("main")
    # The method on a row of its own, above the sliders it decides the meaning of.
    values = _settings_widgets([spec for spec in main if spec.choice_labels], columns=1)
    instant = values.get("method") == "instant"
    sliders = [spec for spec in main if not spec.choice_labels]
    values.update(_settings_widgets(sliders, columns=3, instant=instant, photo=photo))
    with st.expander("Colour, blending and mask", icon=":material/palette:"):
        values.update(_settings_widgets(specs_in("color"), columns=3))
        mask = mask_picker()
    with st.expander("Advanced", icon=":material/tune:"):
        values.update(_settings_widgets(specs_in("advanced"), columns=3))
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


# A step at 512 px on the fastest CPUs the studio runs on (native bfloat16; docs/benchmarks.md,
# ``python -m nst.bench --only steps``): slower machines then simply show every step.
FAST_STEP_SECONDS_AT_512 = 0.6


def preview_every_for(size: int) -> int:
    """Steps between previews so that the picture updates about twice a second.

    A step's time scales with the area from ``FAST_STEP_SECONDS_AT_512``; on slower CPUs every
    step shows.
    """
    seconds_per_step = FAST_STEP_SECONDS_AT_512 * (size / 512) ** 2
    limit = int(field_spec("preview_every").default)
    return int(np.clip(round(0.5 / max(seconds_per_step, 1e-3)), 1, limit))
