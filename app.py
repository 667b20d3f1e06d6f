"""The style transfer studio: page config and routing only (the pages live in ``pages/``).

Run with ``streamlit run app.py``.
"""

import streamlit as st

from nst.support import exit_if_unsupported
from studio import banner, keras_guard, runs, video

exit_if_unsupported(st.error, st.stop)  # no TensorFlow here: one sentence, not a traceback
keras_guard.keep_keras_session()  # before any run ends: a job may be mid-step
st.set_page_config(page_title="Style transfer studio", page_icon="🎨", layout="wide")

page = st.navigation(
    [
        st.Page("pages/stylize.py", title="Stylize", icon=":material/brush:", default=True),
        st.Page("pages/gallery.py", title="Gallery", icon=":material/photo_library:"),
        st.Page("pages/video.py", title="Video", icon=":material/movie:"),
        st.Page("pages/live.py", title="Live", icon=":material/videocam:"),
        st.Page("pages/how_it_works.py", title="How it works", icon=":material/school:"),
    ]
)
banner.weights_banner()
runs.prepare_backend()  # the in-process engine warms up while the person picks the pictures
runs.collect_runs()  # a run that ended while no page followed it (a closed tab, a reload)
video.collect_clip(runs.session_owner())  # the same for a clip
if page.title != "Stylize":
    runs.run_badge()  # the Stylize page follows the run itself
if page.title != "Video":
    video.clip_badge()  # the Video page follows the clip itself
page.run()
