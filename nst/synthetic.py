"""A project-made test clip: a textured disc gliding over a slowly panning textured background.

Used by the tests, ``python -m nst.bench --only video`` and the strip of frames in docs; no
third-party media. Deterministic for a given seed.
"""

from __future__ import annotations

import cv2
import numpy as np


def _texture(rng: np.random.Generator, height: int, width: int, blur: float) -> np.ndarray:
    """Smooth coloured noise in [0, 1] (blurred uniform noise, contrast stretched)."""
    noise = rng.uniform(0.0, 1.0, (height, width, 3)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), blur)
    low, high = smooth.min(axis=(0, 1)), smooth.max(axis=(0, 1))
    return (smooth - low) / np.maximum(high - low, 1e-6)


def synthetic_frames(
    count: int = 12,
    height: int = 72,
    width: int = 96,
    *,
    seed: int = 0,
    shape_speed: float = 3.0,
    pan_speed: float = 0.5,
) -> list[np.ndarray]:
    """``count`` float32 RGB frames in [0, 1]: a striped, textured disc moving right by
    ``shape_speed`` px per frame over a background panning by ``pan_speed`` px per frame.
    """
    rng = np.random.default_rng(seed)
    margin = int(np.ceil(pan_speed * count)) + 2
    background = _texture(rng, height, width + margin, blur=max(1.5, width / 48))
    background = 0.25 + 0.5 * background  # muted, so the disc stands out
    radius = max(6.0, min(height, width) * 0.22)
    side = int(2 * radius) + 2
    disc_texture = _texture(rng, side, side, blur=max(1.0, side / 16))
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    stripes = 0.5 + 0.5 * np.sin((xx + yy) * (2 * np.pi / max(6.0, radius / 1.5)))
    disc_colour = np.clip(
        0.6 * disc_texture + 0.4 * stripes[..., None] * np.array([1.0, 0.55, 0.2], np.float32),
        0.0,
        1.0,
    )
    centre = (side - 1) / 2.0
    # Anti-aliased edge, one pixel wide.
    disc_alpha = np.clip(radius - np.hypot(yy - centre, xx - centre) + 0.5, 0.0, 1.0)[..., None]
    frames = []
    for index in range(count):
        shift = pan_speed * index
        matrix = np.float32([[1, 0, shift], [0, 1, 0]])
        frame = cv2.warpAffine(
            background,
            matrix,
            (width, height),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REFLECT,
        )
        x0 = width * 0.15 + shape_speed * index - centre
        y0 = height / 2.0 - centre
        placement = np.float32([[1, 0, x0], [0, 1, y0]])
        colour = cv2.warpAffine(disc_colour, placement, (width, height), flags=cv2.INTER_LINEAR)
        alpha = cv2.warpAffine(disc_alpha, placement, (width, height), flags=cv2.INTER_LINEAR)
        alpha = alpha[..., None] if alpha.ndim == 2 else alpha
        frames.append(np.clip(alpha * colour + (1.0 - alpha) * frame, 0.0, 1.0).astype(np.float32))
    return frames


def disc_box(
    index: int, height: int, width: int, shape_speed: float = 3.0
) -> tuple[float, float, float]:
    """(centre x, centre y, radius) of the disc in frame ``index`` of ``synthetic_frames``."""
    radius = max(6.0, min(height, width) * 0.22)
    return width * 0.15 + shape_speed * index, height / 2.0, radius


def synthetic_portrait(side: int = 160, *, seed: int = 0) -> np.ndarray:
    """A float32 RGB "portrait" in [0, 1], ``side`` x ``side``: a face with two large eyes,
    brows, nose and mouth in flat, outlined colour planes over a textured ochre ground. Used by
    the How it works page to show a painting whose subject can travel into a photo."""
    rng = np.random.default_rng(seed)
    ground = _texture(rng, side, side, blur=max(1.0, side / 40))
    image = np.clip(
        np.array([0.78, 0.52, 0.22], np.float32) + 0.25 * (ground - 0.5), 0.0, 1.0
    ).astype(np.float32)
    scale = side / 160.0

    def at(x: float, y: float) -> tuple[int, int]:
        return round(x * scale), round(y * scale)

    def size(a: float, b: float) -> tuple[int, int]:
        return max(1, round(a * scale)), max(1, round(b * scale))

    line = max(1, round(2 * scale))
    outline = (0.18, 0.11, 0.07)
    cv2.ellipse(image, at(80, 30), size(50, 34), 0, 180, 360, (0.16, 0.12, 0.10), -1)  # hair
    cv2.ellipse(image, at(80, 78), size(42, 56), 0, 0, 360, (0.93, 0.72, 0.52), -1)  # face
    cv2.ellipse(image, at(80, 78), size(42, 56), 0, 0, 360, outline, line)
    for x in (62, 98):
        cv2.ellipse(image, at(x, 66), size(13, 8), 0, 0, 360, (0.97, 0.95, 0.90), -1)  # white
        cv2.ellipse(image, at(x, 66), size(13, 8), 0, 0, 360, outline, line)
        cv2.circle(image, at(x, 66), max(2, round(6 * scale)), (0.30, 0.18, 0.08), -1)  # iris
        cv2.circle(image, at(x, 66), max(1, round(3 * scale)), (0.04, 0.03, 0.03), -1)  # pupil
        cv2.line(image, at(x - 14, 53), at(x + 12, 52), outline, line + 1)  # brow
    cv2.line(image, at(80, 70), at(74, 98), outline, line)  # nose
    cv2.line(image, at(74, 98), at(84, 98), outline, line)
    cv2.ellipse(image, at(80, 114), size(14, 5), 0, 0, 180, (0.62, 0.22, 0.16), line + 1)  # mouth
    cv2.rectangle(image, at(38, 136), at(122, 160), (0.90, 0.88, 0.80), -1)  # collar
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def synthetic_landscape(height: int = 120, width: int = 160, *, seed: int = 0) -> np.ndarray:
    """A float32 RGB landscape in [0, 1] with no face in it: a graded sky, two ranges of hills
    and a lake with a dark shore line."""
    rng = np.random.default_rng(seed)
    rows = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    sky = (1 - rows) * np.array([0.35, 0.55, 0.85], np.float32) + rows * np.array(
        [0.80, 0.88, 0.95], np.float32
    )
    image = np.broadcast_to(sky, (height, width, 3)).copy()
    columns = np.arange(width, dtype=np.float32)
    texture = _texture(rng, height, width, blur=max(1.0, width / 60))
    for base, amplitude, period, colour in (
        (0.45, 0.10, 0.9, (0.38, 0.52, 0.34)),
        (0.62, 0.07, 0.5, (0.22, 0.40, 0.18)),
    ):
        ridge = height * (base + amplitude * np.sin(columns / width * 2 * np.pi * period + base))
        below = np.arange(height, dtype=np.float32)[:, None] >= ridge[None, :]
        shaded = np.array(colour, np.float32) * (0.85 + 0.3 * texture)
        image = np.where(below[..., None], shaded, image)
    shore = round(height * 0.78)
    lake = np.array([0.25, 0.42, 0.60], np.float32) * (0.9 + 0.2 * texture[shore:])
    image[shore:] = lake
    image[shore : shore + max(1, height // 60)] = (0.15, 0.18, 0.12)
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    """``python -m nst.synthetic OUT.mp4 [FRAMES] [WIDTH]``: write the clip to try the video CLI."""
    import sys
    from pathlib import Path

    from nst.videoio import encode_mp4

    args = sys.argv[1:] if argv is None else argv
    if not args or not args[0].endswith(".mp4"):
        print("usage: python -m nst.synthetic OUT.mp4 [FRAMES] [WIDTH]", file=sys.stderr)
        return 2
    count = int(args[1]) if len(args) > 1 else 24
    width = int(args[2]) if len(args) > 2 else 256
    frames = synthetic_frames(count, round(width * 0.75) // 2 * 2, width // 2 * 2)
    Path(args[0]).write_bytes(encode_mp4(frames, 12))
    print(f"wrote {args[0]} ({count} frames, 12 fps)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
