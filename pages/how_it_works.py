"""How it works: content, style and smoothness losses, and what each slider does."""

import numpy as np
import streamlit as st

from studio import explain, gallery, results, routing

routing.through_app()  # a first visit straight to this page's link: through app.py

st.title("How it works")
st.markdown(
    """
Neural style transfer (Gatys, Ecker and Bethge, 2015) does not train anything. It takes a
network that already learned to recognise images (VGG19, trained on ImageNet), and then
**changes the pixels of one picture** step by step until three numbers become small:

- the **content loss**: the network's features of the result, compared *position by position*
  with those of your photo, so the shapes and layout stay;
- the **style loss**: which features occur *together* anywhere in the picture (their Gram
  matrix), compared with the painting's, so the textures, strokes and colours move over;
- the **smoothness** (total variation): how much neighbouring pixels differ, which keeps away
  speckle.

Each step computes the gradient of their weighted sum with respect to every pixel and nudges the
pixels downhill. The live preview shows exactly this picture as it changes.

The default optimizer is **L-BFGS**, which builds a picture of the loss's curvature from its
last steps and so needs far fewer of them: with ImageNet-trained features it reaches lower
losses than the TensorFlow tutorial's Adam recipe in fewer iterations, and keeps more of the
photo's edges (the figures are in the project's benchmarks). **Adam** takes cheaper, noisier
steps; choose it under *Advanced* to compare.
"""
)

st.graphviz_chart(
    """
digraph {
  rankdir=LR; bgcolor="transparent";
  node [shape=box, style="rounded,filled", fillcolor="#f1ebe1", color="#c2410c", fontname="sans"];
  photo [label="Your photo"]; painting [label="Painting"]; image [label="Image being painted"];
  net [label="VGG19 features", fillcolor="#fde7d9"];
  content [label="Content loss\\n(same features, same places)"];
  style [label="Style loss\\n(same Gram matrices)"];
  tv [label="Smoothness\\n(total variation)"];
  total [label="Weighted sum", shape=ellipse];
  photo -> net; painting -> net; image -> net;
  net -> content; net -> style; image -> tv;
  content -> total; style -> total; tv -> total;
  total -> image [label=" gradient step", style=dashed, color="#2b2118"];
}
""",
    width="stretch",
)

st.header("Style is statistics, content is layout")
samples = explain.explainer_samples()
names = list(samples)
first_name = "mosaic" if "mosaic" in samples else names[0]
other_name = "swirls" if "swirls" in samples else names[-1]
original = samples[first_name]
shuffled = explain.shuffle_tiles(original, 32)
other = samples[other_name]
columns = st.columns(3)
columns[0].image(original, caption=f"A sample style ({first_name})", width="stretch")
columns[1].image(shuffled, caption="The same tiles, shuffled", width="stretch")
columns[2].image(other, caption=f"Another style ({other_name})", width="stretch")
shuffled_row = (
    f"| shuffled tiles | {explain.content_difference(original, shuffled):.2f} "
    f"| {explain.style_difference(original, shuffled):.3f} |"
)
other_row = (
    f"| another style | {explain.content_difference(original, other):.2f} "
    f"| {explain.style_difference(original, other):.3f} |"
)
st.markdown(
    f"""
Compared with the first picture by the engine's own content and style losses, here on simple
colour-and-edge features (a run uses the network's features, which see strokes and textures):

| | content difference (position by position) | style difference (Gram matrices) |
| --- | --- | --- |
{shuffled_row}
{other_row}

Shuffling destroys the layout, so the content difference is large, yet the style difference stays
near zero: the Gram matrix only records *which* features appear together, not *where*. That is why
the style loss can move a painting's brushwork onto your photo while the content loss keeps your
photo's shapes.
"""
)

st.header("The painting's style, not its subjects")
st.markdown(
    """
The network's deeper layers (block4 and block5 of VGG) respond to *objects*: eyes, faces,
figures. Asked to match a portrait's statistics there, the optimizer does the cheapest thing that
matches them: it paints the sitter's eyes and faces into your sky and water. So by default the
style loss uses only the shallower layers, which see the painting's strokes, textures and
colours; *Painting's subjects* under *Advanced* brings the deeper ones back (1 weighs every layer
alike, as Gatys et al. did).

Here the engine paints a landscape after a portrait, both drawn by the app, at a small size:
"""
)
landscape, portrait = explain.subject_example_inputs()
columns = st.columns(4)
columns[0].image(landscape, caption="The photo: a landscape, no face in it", width="stretch")
columns[1].image(portrait, caption="The painting: a portrait", width="stretch")
if st.button("Paint both", key="subject_example") or explain.subject_example_ready():
    with st.spinner("Painting the landscape twice…"):
        painted = explain.subject_example()
    everything, default = explain.SUBJECT_WEIGHTS
    columns[2].image(
        painted[everything],
        caption=f"Painting's subjects {everything:g}: every style layer alike",
        width="stretch",
    )
    columns[3].image(
        painted[default],
        caption=f"Painting's subjects {default:g}: the default",
        width="stretch",
    )
    st.caption(
        f"{explain.SUBJECT_EXAMPLE_SIDE} px, {explain.SUBJECT_EXAMPLE_STEPS} iterations, the "
        "default settings otherwise. The eyes need trained features to appear: with the "
        "untrained features of an offline demo the two pictures show only the mechanics."
    )

st.header("Smoothness")
crop = samples["watercolour" if "watercolour" in samples else names[0]]
noisy = np.clip(crop + np.random.default_rng(0).normal(0, 0.15, crop.shape), 0, 1)
left, right = st.columns(2)
noisy_tv, clean_tv = explain.total_variation(noisy), explain.total_variation(crop)
left.image(noisy, caption=f"Speckled: total variation {noisy_tv:.3f}", width=256)
right.image(crop, caption=f"Clean: total variation {clean_tv:.3f}", width=256)
st.markdown(
    "The smoothness term is the average difference between neighbouring pixels. A little of it "
    "removes the high-frequency speckle that pure feature matching leaves behind; too much makes "
    "the result look blurred."
)

st.header("What each control does")
st.markdown(
    "All loss weights are **relative**: the engine normalises every term, so a slider means the "
    "same at 256 px and at 2048 px and with every backbone. *Style intensity* is on a log scale: "
    "each notch multiplies the style's weight, from a hint of texture to a full repaint."
)
for group, title in explain.GROUP_TITLES.items():
    table = explain.slider_reference(group)
    if not table.empty:
        st.subheader(title)
        st.table(table)

st.header("Reading the loss chart")
st.markdown(
    "While a run goes, the chart shows each weighted part of the loss by step. The style part "
    "usually falls fastest at first; the content part rises a little as the picture moves away "
    "from the photo; the balance between them is what the *style intensity* and *content weight* "
    "sliders set. A flat curve means more steps will change little."
)
made = gallery.results()
latest = made[-1] if made else None
if latest is not None and latest.history:
    st.caption(f"Your latest run ({latest.label}):")
    results.loss_chart(latest.history)
