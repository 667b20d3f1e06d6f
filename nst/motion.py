"""How frame i of a clip relates to frame i-1: dense optical flow, warping, and where the flow can
be trusted (Ruder, Dosovitskiy & Brox, "Artistic style transfer for videos", 2016).

Both video methods steady a clip along this motion: the optimizer's temporal loss
(``nst.engine.video``) and the instant network's blend (``nst.instant.video``). NumPy and
OpenCV only.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Ruder et al., section 3.2: a pixel is disoccluded where the forward flow, warped into the
# frame, does not cancel the backward flow: |w~ + w^|^2 > 0.01 (|w~|^2 + |w^|^2) + 0.5; it is on
# a motion boundary where |grad u^|^2 + |grad v^|^2 > 0.01 |w^|^2 + 0.002 (flows in pixels).
CONSISTENCY_RELATIVE = 0.01
CONSISTENCY_ABSOLUTE = 0.5
BOUNDARY_RELATIVE = 0.01
BOUNDARY_ABSOLUTE = 0.002
# Soften the mask's edges: a Gaussian of this sigma (pixels), multiplied by the hard mask so
# that unreliable pixels stay exactly 0.
MASK_BLUR_SIGMA = 1.0


def _gray(frame: np.ndarray) -> np.ndarray:
    rgb = (np.clip(frame, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def optical_flow(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Dense flow (h, w, 2) in pixels from ``source`` to ``target`` (RGB in [0, 1]).

    ``source(x) ~ target(x + flow(x))``. DIS (Kroeger et al. 2016) at its "medium" preset.
    """
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(_gray(source), _gray(target), None)


def warp(image: np.ndarray, flow: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """``image`` sampled at ``x + flow(x)`` (bilinear by default, edges replicated): an
    (h, w, c) array. ``interpolation`` is an OpenCV flag (``cv2.INTER_CUBIC``, ...)."""
    height, width = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(
        np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32)
    )
    map_x = grid_x + flow[..., 0]
    map_y = grid_y + flow[..., 1]
    warped = cv2.remap(
        np.ascontiguousarray(image, dtype=np.float32),
        map_x,
        map_y,
        interpolation=interpolation,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return warped.reshape(image.shape)


def reliability_mask(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Weights (h, w) in [0, 1] of frame i: 0 where the flow back to frame i-1 is unreliable.

    Args:
        backward: flow from frame i to frame i-1 (``optical_flow(frame_i, frame_prev)``).
        forward: flow from frame i-1 to frame i.
    """
    forward_here = warp(forward, backward)  # the forward flow seen from frame i
    total = forward_here + backward
    disagreement = np.sum(total**2, axis=2)
    magnitudes = np.sum(forward_here**2, axis=2) + np.sum(backward**2, axis=2)
    occluded = disagreement > CONSISTENCY_RELATIVE * magnitudes + CONSISTENCY_ABSOLUTE
    grad_u_y, grad_u_x = np.gradient(backward[..., 0])
    grad_v_y, grad_v_x = np.gradient(backward[..., 1])
    variation = grad_u_x**2 + grad_u_y**2 + grad_v_x**2 + grad_v_y**2
    boundary = variation > BOUNDARY_RELATIVE * np.sum(backward**2, axis=2) + BOUNDARY_ABSOLUTE
    hard = (~(occluded | boundary)).astype(np.float32)
    soft = cv2.GaussianBlur(hard, (0, 0), MASK_BLUR_SIGMA)
    return hard * soft


@dataclass(frozen=True)
class FrameMotion:
    """How frame i relates to frame i-1: the backward flow and its reliability weights."""

    backward: np.ndarray  # (h, w, 2): frame i -> frame i-1
    mask: np.ndarray  # (h, w) in [0, 1]


def frame_motion(previous: np.ndarray, current: np.ndarray) -> FrameMotion:
    """Flow from ``current`` back to ``previous`` and where it can be trusted."""
    backward = optical_flow(current, previous)
    forward = optical_flow(previous, current)
    return FrameMotion(backward, reliability_mask(backward, forward))


def temporal_error(current: np.ndarray, previous: np.ndarray, motion: FrameMotion) -> float:
    """Mean over reliable pixels of |current - previous warped into the current frame|."""
    difference = np.abs(current - warp(previous, motion.backward)).mean(axis=2)
    weight = float(motion.mask.sum())
    if weight <= 0:
        return float("nan")
    return float((difference * motion.mask).sum() / weight)
