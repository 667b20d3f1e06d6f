"""Stylize: a photo and a painting in, a painted photo out, watched live and adjusted instantly."""

import streamlit as st

import studio_ui as ui

st.title("Stylize")
st.caption(
    "Repaint your photo in the style of a painting: choose both, set the style intensity, press "
    "Stylize and watch it being painted. Stop whenever it looks right."
)

photo_column, style_column = st.columns(2, gap="large")
with photo_column:
    st.subheader("1 · Your photo", anchor=False)
    content = ui.content_picker()
with style_column:
    st.subheader("2 · A painting", anchor=False)
    styles = ui.style_picker()

st.subheader("3 · Settings", anchor=False)
values, mask = ui.settings_panel()

start = st.button("Stylize", type="primary", icon=":material/brush:", key="stylize")
alerts = st.container()
stage = st.empty()

pending = ui.take_pending_run()
if start or pending:
    with alerts:
        ui.start_run(
            content,
            styles,
            values,
            mask,
            stage,
            continue_from=(pending or {}).get("continue_from"),
        )
with alerts:
    ui.show_run_error()

record = ui.current_result()
if record is not None:
    with stage.container():
        st.subheader("Result", anchor=False)
        ui.result_panel(record)
notice = ui.dropped_notice()
if notice:
    st.caption(notice)
