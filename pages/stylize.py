"""Stylize: a photo and a painting in, a painted photo out, watched live and adjusted instantly."""

import streamlit as st

from studio import gallery, inputs, results, routing, runs, widgets

routing.through_app()  # a first visit straight to this page's link: through app.py

st.title("Stylize")
st.caption(
    "Repaint your photo in the style of a painting: choose both, set the style intensity, press "
    "Stylize and watch it being painted. Stop whenever it looks right."
)

content, styles = inputs.inputs_row("Your photo", inputs.content_picker)
values, mask = widgets.settings_panel(content)
widgets.forecast_note(content, values)

start = st.button("Stylize", type="primary", icon=":material/brush:", key="stylize")
alerts = st.container()

pending = gallery.take_pending_run()
if start or pending:
    with alerts:
        runs.start_run(
            content,
            styles,
            values,
            mask,
            continue_from=(pending or {}).get("continue_from"),
        )
with alerts:
    runs.show_run_error()

if not runs.live_view(values):
    record = gallery.current_result()
    if record is not None:
        st.subheader("Result", anchor=False)
        results.result_panel(record)
    elif gallery.current_was_lost():
        st.info(gallery.LOST_RESULT, icon=":material/history:")
notice = gallery.dropped_notice()
if notice:
    st.caption(notice)
