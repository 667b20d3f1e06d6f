"""Test images the suite makes itself: a photo-like street scene and a painting-like texture.

Both are drawn from fixed seeds with NumPy and Pillow, so every run (and every machine) gets
the same pixels and no third-party image is involved. The scene has what style transfer and
the studio's checks care about in a photo: a smooth sky gradient, buildings with hard edges
and rows of windows, a face-sized blob, textured ground and sensor-like grain. The painting
is one of ``assets/make_styles.py``'s textures at the size the tests expect.

``python -m tests.scenes OUT_DIR`` writes them as JPEG and PNG for a look.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from assets.make_styles import _fractal_noise, _to_image, swirls

SCENE_SIZE = (1024, 768)  # width, height: a 4:3 photo
PAINTING_SIZE = (1024, 640)  # width, height: a 16:10 painting


def street_scene(
    width: int = SCENE_SIZE[0], height: int = SCENE_SIZE[1], seed: int = 7
) -> Image.Image:
    """A photo-like RGB scene: sky, a row of buildings with windows, a person, a road."""
    rng = np.random.default_rng(seed)
    horizon = int(height * 0.62)
    ys = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    zenith = np.array([0.22, 0.42, 0.78], np.float32)
    haze = np.array([0.78, 0.86, 0.95], np.float32)
    rgb = np.broadcast_to(zenith + (haze - zenith) * np.clip(ys / 0.62, 0, 1), (height, width, 3))
    side = max(width, height)
    clouds = _fractal_noise(rng, side, 4)[:height, :width]
    cover = np.clip((clouds - 0.55) * 3.0, 0.0, 1.0)[..., None] * (ys < 0.45)
    rgb = rgb * (1 - 0.8 * cover) + 0.97 * 0.8 * cover

    # Ground: asphalt with a fractal texture, darker towards the viewer.
    ground = _fractal_noise(rng, side, 5)[:height, :width, None]
    asphalt = np.array([0.36, 0.35, 0.34], np.float32) * (0.8 + 0.4 * ground) * (1.15 - 0.35 * ys)
    rgb = np.where(ys * height >= horizon, asphalt, rgb)
    image = _to_image(rgb)

    # Buildings: hard-edged blocks in brick and stone, each with a grid of lit or dark windows.
    draw = ImageDraw.Draw(image)
    facades = [(168, 84, 62), (214, 196, 160), (120, 128, 140), (190, 150, 110), (150, 70, 60)]
    x = -int(rng.integers(0, width // 20))
    while x < width:
        block = int(rng.integers(width // 9, width // 5))
        top = int(rng.integers(int(height * 0.12), int(height * 0.42)))
        colour = facades[int(rng.integers(0, len(facades)))]
        draw.rectangle([x, top, x + block - 3, horizon], fill=colour)
        draw.rectangle([x - 4, top - 8, x + block + 1, top], fill=(70, 60, 58))  # cornice
        window_w, window_h = max(4, block // 8), max(6, height // 32)
        for wy in range(top + window_h, horizon - 2 * window_h, window_h * 2):
            for wx in range(x + window_w, x + block - 2 * window_w, window_w * 2):
                lit = rng.random() < 0.3
                glass = (240, 220, 150) if lit else (40, 52, 70)
                draw.rectangle([wx, wy, wx + window_w, wy + window_h], fill=glass)
                draw.line(
                    [wx, wy + window_h + 1, wx + window_w, wy + window_h + 1], fill=(90, 90, 90)
                )
        x += block
    # Kerb and lane markings: long straight edges.
    draw.rectangle([0, horizon, width, horizon + height // 60], fill=(200, 198, 190))
    for start in range(0, width, width // 8):
        draw.rectangle(
            [start, int(height * 0.85), start + width // 16, int(height * 0.86)],
            fill=(235, 235, 225),
        )

    # A person in the foreground: a face-sized skin-tone oval, hair, eyes, shoulders.
    cx, cy = int(width * 0.7), int(height * 0.6)
    face = height // 10
    draw.ellipse([cx - face * 2, cy + face, cx + face * 2, cy + face * 5], fill=(40, 70, 120))
    draw.ellipse([cx - face, cy - face * 1.3, cx + face, cy + face * 1.3], fill=(224, 172, 140))
    draw.chord(
        [cx - face * 1.05, cy - face * 1.45, cx + face * 1.05, cy + face * 0.4],
        180,
        360,
        fill=(60, 40, 30),
    )
    for eye in (-1, 1):
        ex = cx + eye * face * 0.4
        draw.ellipse(
            [ex - face * 0.12, cy - face * 0.1, ex + face * 0.12, cy + face * 0.08],
            fill=(50, 40, 40),
        )
    draw.arc(
        [cx - face * 0.4, cy + face * 0.3, cx + face * 0.4, cy + face * 0.8],
        20,
        160,
        fill=(150, 70, 70),
        width=3,
    )

    # A camera's slight softness and grain.
    image = image.filter(ImageFilter.GaussianBlur(0.6))
    grain = rng.normal(0.0, 4.0, (height, width, 1))
    pixels = np.asarray(image, np.float32) + grain
    return Image.fromarray(np.clip(np.round(pixels), 0, 255).astype(np.uint8))


def painting(
    width: int = PAINTING_SIZE[0], height: int = PAINTING_SIZE[1], seed: int = 11
) -> Image.Image:
    """A painting-like texture (swirling night-sky strokes) of the given size."""
    side = max(width, height)
    square = swirls(np.random.default_rng(seed), side)
    left, top = (side - width) // 2, (side - height) // 2
    return square.crop((left, top, left + width, top + height))


def write_images(out_dir: Path) -> dict[str, Path]:
    """Write the scene and the painting as JPEG and PNG; returns name -> path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for stem, image in (("street", street_scene()), ("swirls", painting())):
        for suffix, options in ((".jpg", {"quality": 92}), (".png", {})):
            path = out_dir / f"{stem}{suffix}"
            image.save(path, **options)
            paths[path.name] = path
    return paths


if __name__ == "__main__":
    for path in write_images(Path(sys.argv[1] if len(sys.argv) > 1 else "test-images")).values():
        print(path)
