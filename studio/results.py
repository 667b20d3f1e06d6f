"""Showing results: the result panel, adjustments, downloads, before/after, loss chart, cards."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from nst.config import Adjustments, StyleConfig, field_spec
from nst.images import resize_to
from nst.knobs import specs_of
from studio.gallery import delete_result, request_continue, save_result
from studio.session import (
    DISPLAY_SIDE,
    THUMB_SIDE,
    StudioResult,
    fit_within,
    format_seconds,
    to_float,
)
from studio.widgets import APP_MANAGED, list_text, spec_widget, specs_in

CHART_POINTS = 300
ADJUST_KEY = "adj_"


def loss_chart(history: Sequence[dict[str, Any]], *, height: int = 260) -> None:
    """Line chart of the loss parts (content, style, smoothness) by step.

    A plain Vega-Lite spec: the live view draws it at every poll, and ``st.line_chart`` builds
    and validates an Altair chart each time, which took more of the two cores than the run's
    own Python work."""
    frame = pd.DataFrame(list(history))
    if frame.empty or "step" not in frame:
        return
    parts = [c for c in frame.columns if c not in ("step", "loss", "elapsed")]
    if not parts:
        parts = ["loss"]
    frame = frame.dropna(subset=["step"]).drop_duplicates("step", keep="last")
    if len(frame) > CHART_POINTS:
        frame = frame.iloc[:: math.ceil(len(frame) / CHART_POINTS)]
    names = {"tv": "smoothness (tv)"}
    long = frame.melt(id_vars="step", value_vars=parts, var_name="part", value_name="value")
    long["part"] = long["part"].map(lambda part: names.get(part, part))
    spec = {
        "mark": {"type": "line", "tooltip": True},
        "encoding": {
            "x": {"field": "step", "type": "quantitative", "title": "step"},
            "y": {"field": "value", "type": "quantitative", "title": "loss"},
            "color": {"field": "part", "type": "nominal", "title": None},
        },
    }
    st.vega_lite_chart(long.dropna(subset=["value"]), spec, width="stretch", height=height)


def wipe(before: np.ndarray, after: np.ndarray, position: float) -> np.ndarray:
    """Before on the left of ``position`` (0..1 of the width), after on the right."""
    height, width = after.shape[:2]
    left = resize_to(to_float(before), height, width)
    right = to_float(after)
    cut = round(position * width)
    combined = right.copy()
    combined[:, :cut] = left[:, :cut]
    if 0 < cut < width:
        combined[:, max(0, cut - 1) : cut + 1] = 1.0  # a thin white divider
    return combined


def adjustment_widgets(record: StudioResult) -> dict[str, float]:
    """The instant adjustments (the config's "adjust" group) for one result."""
    values: dict[str, float] = {}
    keys = []
    seeded = st.session_state.setdefault("adjustments_shown", set())
    for spec in specs_in("adjust"):
        key = f"{ADJUST_KEY}{record.result_id}_{spec.name}"
        keys.append(key)
        if key not in seeded and key not in st.session_state and spec.name in record.adjustments:
            st.session_state[key] = record.adjustments[spec.name]  # as kept, after a reload
        seeded.add(key)
        values[spec.name] = spec_widget(spec, key=key)
    st.button(
        "Reset adjustments",
        key=f"reset_adjust_{record.result_id}",
        on_click=_reset_keys,
        args=(tuple(keys),),
        icon=":material/restart_alt:",
    )
    changed = {name: value for name, value in values.items() if value != field_spec(name).default}
    if changed != record.adjustments:
        record.adjustments = changed
        save_result(record)  # kept on the server: the next visit shows it adjusted
    return changed


def _reset_keys(keys: tuple[str, ...]) -> None:
    for key in keys:
        st.session_state.pop(key, None)


def download_buttons(record: StudioResult, *, key_prefix: str, stacked: bool = False) -> None:
    """PNG (settings embedded) and JPEG downloads at full output size, encoded on click."""
    stem = f"stylized-{record.result_id}"
    slots = (st.container(), st.container()) if stacked else st.columns(2)
    png = {"type": "primary", "help": "Full output size, with all settings embedded in the file."}
    formats = (
        ("PNG", record.png_bytes, "png", "image/png", png),
        ("JPEG", record.jpeg_bytes, "jpg", "image/jpeg", {}),
    )
    for slot, (label, data, extension, mime, extra) in zip(slots, formats):
        slot.download_button(
            f"Download {label}",
            data=data,  # a callable: encoded when clicked, on another thread
            file_name=f"{stem}.{extension}",
            mime=mime,
            key=f"{key_prefix}_{extension}_{record.result_id}",
            on_click="ignore",
            icon=":material/download:",
            width="stretch",
            **extra,
        )


def comparison(record: StudioResult) -> None:
    """Before/after side by side (as adjusted), and a wipe between the two."""
    shown = record.shown()
    _, photo = record.fitted(DISPLAY_SIDE)
    side, swipe = st.tabs(["Before / after", "Wipe"])
    with side:
        before, after = st.columns(2)
        before.image(photo, caption="Before: your photo", width="stretch")
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
            wipe(photo, shown, position / 100),
            caption="Before | after",
            width="stretch",
        )


def result_panel(record: StudioResult) -> None:
    """Status, comparison, instant adjustments, downloads and "continue" for one result."""
    if record.error:
        st.warning(record.status_text, icon=":material/warning:")
    elif record.stopped:
        st.info(record.status_text, icon=":material/stop_circle:")
    elif record.note:
        st.info(record.status_text, icon=":material/info:")
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
            help="Paint on from this image (as adjusted) with the optimizer, the current "
            "sliders, styles and mask: more steps, or a different intensity, without starting "
            "over.",
            width="stretch",
        )
    with view:
        comparison(record)
        download_buttons(record, key_prefix="result")
    if record.instant is not None:
        with st.expander("The instant picture this run started from", icon=":material/bolt:"):
            picture, _ = st.columns(2)  # the size of the before/after pictures above
            picture.image(fit_within(record.instant, DISPLAY_SIDE), width="stretch")
            picture.download_button(
                "Download the instant picture",
                data=record.instant_png_bytes,  # a callable: encoded when clicked
                file_name=f"instant-{record.result_id}.png",
                mime="image/png",
                key=f"instant_png_{record.result_id}",
                on_click="ignore",
                icon=":material/download:",
            )
    if record.history:
        with st.expander("Loss curves of this run", icon=":material/show_chart:"):
            loss_chart(record.history)


def settings_table(config: StyleConfig, adjustments: Adjustments) -> pd.DataFrame:
    """Label → value for every user-facing field (for the gallery's settings view)."""
    rows = []
    fields = [(config, spec) for spec in specs_of(StyleConfig)]
    fields += [(adjustments, spec) for spec in specs_of(Adjustments)]
    for record, spec in fields:
        if spec.name in APP_MANAGED:
            continue
        value = getattr(record, spec.name)
        if isinstance(value, tuple):
            value = list_text(value) or "default"
        rows.append({"setting": spec.label, "value": str(value)})
    return pd.DataFrame(rows).set_index("setting")


def mask_text(item: StudioResult) -> str:
    """The mask of a result in a few words: "painted mask", "mask sky.png" or "no mask"."""
    if item.mask_source is None:
        return "no mask"
    return "painted mask" if item.mask_source == "painted" else f"mask {item.mask_source}"


def gallery_card(item: StudioResult) -> None:
    """One gallery entry: thumbnail, what and when, settings, downloads, delete."""
    st.image(item.final_thumbnail(), width="stretch")
    st.markdown(f"**#{item.result_id}** · {item.content_name} × {item.styles_text}")
    facts = [item.time_text, item.size_text, format_seconds(item.seconds)]
    if item.config.method == "instant":
        facts.append("instant")
    else:
        facts.append(f"{item.steps_done}/{item.config.steps} steps")
    if item.continued_from is not None:
        facts.append(f"continued from #{item.continued_from}")
    if item.mask_source is not None:
        facts.append(mask_text(item))
    st.caption(" · ".join(facts))
    if item.error:
        st.caption(f":orange[{item.error}]")
    elif item.stopped:
        st.caption(":blue[Stopped early]")
    elif item.note:
        st.caption(":blue[Ended early: see its note]")
    config = item.config
    st.caption(
        f"Style intensity {config.style_weight:g} · content {config.content_weight:g} · "
        f"smoothness {config.tv_weight:g}"
    )
    with st.expander("All settings"):
        if item.mask is not None:
            st.image(
                fit_within(item.mask, THUMB_SIDE),
                caption="The mask: white took the (first) style",
                width=120,
            )
        st.dataframe(settings_table(config, item.adjustment_record()), width="stretch")
    download_buttons(item, key_prefix="gallery", stacked=True)
    st.button(
        "Delete",
        key=f"delete_{item.result_id}",
        on_click=delete_result,
        args=(item.result_id,),
        icon=":material/delete:",
    )


def _comparison_column(item: StudioResult) -> pd.Series:
    """What, how long and every setting of one result, as one column of the comparison."""
    facts = pd.Series(
        [
            item.styles_text,
            item.content_name,
            mask_text(item),
            str(item.steps_done),
            format_seconds(item.seconds),
        ],
        index=["Styles", "Photo", "Mask", "Steps done", "Time"],
    )
    settings = settings_table(item.config, item.adjustment_record())
    return pd.concat([facts, settings["value"]])


def compare_results(first: StudioResult, second: StudioResult) -> None:
    """Two results side by side, with the settings in which they differ."""
    left, right = st.columns(2)
    for column, item in ((left, first), (right, second)):
        column.image(item.shown(), caption=item.label, width="stretch")
    table = pd.DataFrame(
        {f"#{item.result_id}": _comparison_column(item) for item in (first, second)}
    )
    differing = table[table.iloc[:, 0] != table.iloc[:, 1]]
    if differing.empty:
        st.caption("Both results have the same settings.")
    else:
        st.markdown("**Where they differ**")
        st.dataframe(differing, width="stretch")
