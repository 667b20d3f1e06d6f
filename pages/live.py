"""Live: the camera painted in the style of any painting, as it moves; Snapshot keeps a frame."""

import streamlit as st

from studio import inputs, live, routing

routing.through_app()  # a first visit straight to this page's link: through app.py

st.title("Live")
st.caption(
    "See yourself painted: the instant network repaints your camera's picture as you move, in "
    "the style of any painting. Nothing is recorded; Snapshot paints the current picture again "
    "at the snapshot size and keeps it in the gallery."
)

processor = live.session_processor()
camera_column, style_column = st.columns(2, gap="large")
with style_column:
    st.subheader("2 · A painting", anchor=False)
    styles = inputs.style_picker()
st.subheader("3 · Settings", anchor=False)
values = live.settings_panel(len(styles))
config = live.configure(processor, styles, values)
with camera_column:
    st.subheader("1 · Your camera", anchor=False)
    context = live.camera(processor)
    live.show_status(processor, context)
    if st.button("Snapshot", icon=":material/photo_camera:", key="live_snapshot"):
        live.take_snapshot(processor, styles, config)
    live.show_notice()
