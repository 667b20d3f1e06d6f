"""The "How it works" illustrations: the engine's own losses, on features small enough to show.

The content, style and smoothness numbers come from ``nst.engine.losses`` (the functions every run
uses); only the features differ: simple colour-and-edge responses stand in for the network's.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from types import MappingProxyType

import numpy as np
import pandas as pd
import tensorflow as tf

from nst.config import StyleConfig
from nst.engine import losses
from nst.images import resize_to
from nst.synthetic import synthetic_landscape, synthetic_portrait
from studio.inputs import sample_styles
from studio.widgets import list_text, specs_in

GROUP_TITLES = {
    "main": "Main sliders",
    "color": "Colour, blending and mask",
    "advanced": "Advanced",
    "adjust": "Instant adjustments (after the run)",
}
_FEATURES = "colour and edges"  # the one "layer" of the illustration's features


def _batch(image: np.ndarray) -> tf.Tensor:
    """(height, width, channels) NumPy → the engine's (1, height, width, channels) float32."""
    return tf.constant(image[None], tf.float32)


def _simple_features(image: np.ndarray) -> tf.Tensor:
    """Per-pixel colour and edge responses: a hand-made stand-in for a network's features.

    Returned as the engine's (1, height, width, 5) feature batch.
    """
    dx = np.diff(image, axis=1, append=image[:, -1:])
    dy = np.diff(image, axis=0, append=image[-1:])
    gray_dx, gray_dy = dx.mean(-1, keepdims=True), dy.mean(-1, keepdims=True)
    return _batch(np.concatenate([image, np.abs(gray_dx) * 4, np.abs(gray_dy) * 4], axis=-1))


def content_difference(first: np.ndarray, second: np.ndarray) -> float:
    """The engine's content loss of ``second`` against ``first``: features position by position."""
    target = {_FEATURES: _simple_features(first)}
    return float(losses.content_loss({_FEATURES: _simple_features(second)}, target))


def style_difference(first: np.ndarray, second: np.ndarray) -> float:
    """The engine's style loss of ``second`` against ``first``: Gram matrices, layout ignored."""
    target = losses.StyleTarget(
        grams={_FEATURES: losses.gram_matrix(_simple_features(first))},
        layer_weights={_FEATURES: 1.0},
    )
    return float(losses.style_loss({_FEATURES: _simple_features(second)}, [target]))


def total_variation(image: np.ndarray) -> float:
    """The engine's smoothness term: the mean gradient magnitude between neighbouring pixels."""
    return float(losses.total_variation(_batch(image)))


def shuffle_tiles(image: np.ndarray, tile: int, seed: int = 0) -> np.ndarray:
    """The same pixels in scrambled tiles: same statistics, different layout."""
    height, width = (image.shape[0] // tile) * tile, (image.shape[1] // tile) * tile
    rows, cols = height // tile, width // tile
    tiles = image[:height, :width].reshape(rows, tile, cols, tile, -1).swapaxes(1, 2)
    tiles = tiles.reshape(rows * cols, tile, tile, -1)
    tiles = tiles[np.random.default_rng(seed).permutation(len(tiles))]
    return tiles.reshape(rows, cols, tile, tile, -1).swapaxes(1, 2).reshape(height, width, -1)


@functools.cache
def explainer_samples(side: int = 192) -> Mapping[str, np.ndarray]:
    """Float crops of the sample styles, for the illustrations (made once per process).

    Shared by every session and thread: the mapping and the arrays are read-only.
    """
    crops = {}
    for name, picture in sample_styles().items():
        crops[name] = resize_to(picture.as_float(), side, side)
        crops[name].setflags(write=False)
    return MappingProxyType(crops)


# The subjects example: small enough for a CPU, large enough for the deeper layers to see a face.
SUBJECT_EXAMPLE_SIDE = 160
SUBJECT_EXAMPLE_STEPS = 40
SUBJECT_WEIGHTS = (1.0, 0.0)  # every style layer alike (Gatys et al.); the default


@functools.cache
def subject_example_inputs() -> tuple[np.ndarray, np.ndarray]:
    """(landscape, portrait): the example's photo and painting, drawn by ``nst.synthetic``."""
    side = SUBJECT_EXAMPLE_SIDE
    landscape = synthetic_landscape(side * 3 // 4, side)
    portrait = synthetic_portrait(side)
    for image in (landscape, portrait):
        image.setflags(write=False)
    return landscape, portrait


@functools.cache
def subject_example() -> Mapping[float, np.ndarray]:
    """The landscape painted after the portrait by the engine, with the default settings at a
    small size, once per ``SUBJECT_WEIGHTS`` value of 'Painting's subjects' (made once per
    process; shared read-only, like ``explainer_samples``)."""
    from nst.front import result_of, stylize  # the optimizer only loads when this is asked for

    landscape, portrait = subject_example_inputs()
    config = StyleConfig(size=SUBJECT_EXAMPLE_SIDE, steps=SUBJECT_EXAMPLE_STEPS)
    painted = {}
    for weight in SUBJECT_WEIGHTS:
        events = stylize(landscape, [portrait], config.replace(subject_weight=weight))
        image = result_of(events).image
        image.setflags(write=False)
        painted[weight] = image
    return MappingProxyType(painted)


def subject_example_ready() -> bool:
    """True once ``subject_example`` has been computed in this process."""
    return subject_example.cache_info().currsize > 0


def slider_reference(group: str) -> pd.DataFrame:
    """What each control of one group does, generated from the config."""
    rows = []
    for spec in specs_in(group):
        if spec.kind in ("float", "int"):
            span = f"{spec.minimum:g} – {spec.maximum:g}" + (" (log scale)" if spec.log else "")
        elif spec.kind == "choice":
            span = " / ".join(spec.choices)
        else:
            span = "comma-separated list"
        default = spec.default
        if isinstance(default, tuple):
            default = list_text(default) or "backbone's default"
        rows.append(
            {
                "control": spec.label,
                "what it does": spec.help,
                "default": str(default),
                "range": span,
            }
        )
    return pd.DataFrame(rows).set_index("control")
