"""Gallery: every result of this browser, with settings, downloads, comparison and delete."""

import streamlit as st

from studio import gallery, results

st.title("Gallery")
items = gallery.results()
notice = gallery.dropped_notice()
if notice:
    st.info(notice, icon=":material/info:")
if not items:
    st.info("No results yet: stylize a photo and it appears here.", icon=":material/photo_library:")
    st.page_link("pages/stylize.py", label="Go to Stylize", icon=":material/brush:")
    st.stop()

st.caption(
    f"{len(items)} result(s), newest first, kept on the server for this browser (a reload or a "
    f"new tab finds them) for {gallery.keep_text()}: at most the {gallery.GALLERY_CAP} newest, "
    "fewer when the studio runs short of memory. Download what you want to keep."
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

for row_start in range(0, len(items), 3):
    columns = st.columns(3, gap="medium")
    newest_first = list(reversed(items))[row_start : row_start + 3]
    for column, item in zip(columns, newest_first, strict=False):
        with column, st.container(border=True):
            results.gallery_card(item)
