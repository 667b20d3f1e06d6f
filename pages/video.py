"""Video: a clip and a painting in, a steady stylized clip out (the instant network steadied
along the motion, or the optimizer with Ruder et al.'s temporal loss)."""

import streamlit as st

from studio import inputs, routing, video

routing.through_app()  # a first visit straight to this page's link: through app.py

st.title("Video")
st.caption(
    "Repaint a short clip in the style of a painting without flicker: each frame keeps what the "
    "previous one painted, carried along by the motion. Instant paints several frames a second; "
    "Painted repaints each frame in detail, taking many seconds a frame. Finished frames appear "
    "as they come; Stop keeps them as a shorter clip."
)

clip, styles = inputs.inputs_row("Your clip", video.clip_picker)
style_values, video_values = video.settings_panel()

start = st.button("Stylize clip", type="primary", icon=":material/movie:", key="video_start")
alerts = st.container()
if start:
    with alerts:
        video.run_video(clip, styles, style_values, video_values)
with alerts:
    video.show_error()

running = video.live_view()
record = video.current_clip()
if record is not None:
    video.result_panel(record, "Your last clip" if running else "Result")
