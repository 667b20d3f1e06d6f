"""Gallery: every picture and clip of this browser, with settings, downloads, comparison and
delete."""

import streamlit as st

from studio import gallery, results, routing, video

routing.through_app()  # a first visit straight to this page's link: through app.py

st.title("Gallery")
items = gallery.results()
clips = video.clips()
notice = gallery.dropped_notice()
if notice:
    st.info(notice, icon=":material/info:")
if not items and not clips:
    st.info("No results yet: stylize a photo and it appears here.", icon=":material/photo_library:")
    st.page_link("pages/stylize.py", label="Go to Stylize", icon=":material/brush:")
    st.stop()

if items:
    st.caption(
        f"{len(items)} result(s), newest first, kept on the server for this browser (a reload "
        f"or a new tab finds them) for {gallery.keep_text()}: at most the "
        f"{gallery.GALLERY_CAP} newest, fewer when the studio runs short of memory. Download "
        "what you want to keep."
    )

    labels = {item.label: item for item in items}
    chosen = st.multiselect(
        "Compare two results side by side",
        list(reversed(labels)),
        max_selections=2,
        key="gallery_compare",
        placeholder="Pick two results",
    )
    if len(chosen) == 2:
        results.compare_results(labels[chosen[0]], labels[chosen[1]])
        st.divider()

    gallery.cards(items, results.gallery_card)

if clips:
    st.subheader("Clips", anchor=False)
    st.caption(
        f"{len(clips)} clip(s), newest first, kept for this browser for {gallery.keep_text()}, "
        "fewer when all clips together reach the studio's clip budget."
    )
    gallery.cards(clips, video.clip_card)
