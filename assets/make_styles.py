"""Render the app's sample style images: procedural painterly textures, made by this project.

Run ``python assets/make_styles.py`` to (re)write ``assets/styles/*.png``. Every texture is
drawn from a fixed seed with NumPy and Pillow only, so the output is reproducible and no
third-party image is involved.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SIZE = 512
OUT_DIR = Path(__file__).resolve().parent / "styles"


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Value noise in [0, 1]: a coarse random grid upsampled bicubically."""
    grid = rng.random((cells, cells)).astype(np.float32)
    image = Image.fromarray(grid).resize((size, size), Image.Resampling.BICUBIC)
    values = np.asarray(image)
    return (values - values.min()) / max(float(np.ptp(values)), 1e-6)


def _fractal_noise(rng: np.random.Generator, size: int, octaves: int = 4) -> np.ndarray:
    total = np.zeros((size, size), np.float32)
    for octave in range(octaves):
        total += _smooth_noise(rng, size, 4 * 2**octave) / 2**octave
    return (total - total.min()) / max(float(np.ptp(total)), 1e-6)


def _palette(values: np.ndarray, colours: list[tuple[int, int, int]]) -> np.ndarray:
    """Map values in [0, 1] through a piecewise-linear colour ramp, giving float RGB."""
    stops = np.linspace(0.0, 1.0, len(colours))
    table = np.asarray(colours, np.float32) / 255.0
    return np.stack([np.interp(values, stops, table[:, c]) for c in range(3)], axis=-1)


def _to_image(rgb: np.ndarray) -> Image.Image:
    return Image.fromarray(np.round(np.clip(rgb, 0.0, 1.0) * 255).astype(np.uint8))


def swirls(rng: np.random.Generator, size: int = SIZE) -> Image.Image:
    """Night-sky swirls: noise smeared along a field of vortices (line integral convolution)."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size
    vx = np.zeros_like(xs)
    vy = np.zeros_like(xs)
    for _ in range(7):
        cx, cy = rng.random(2)
        radius = 0.08 + 0.15 * rng.random()
        spin = rng.choice([-1.0, 1.0])
        dx, dy = xs - cx, ys - cy
        falloff = np.exp(-(dx**2 + dy**2) / (2 * radius**2))
        vx += spin * -dy * falloff / radius
        vy += spin * dx * falloff / radius
    vx += 0.35  # a steady wind so that the space between the vortices also flows
    norm = np.sqrt(vx**2 + vy**2) + 1e-6
    vx, vy = vx / norm, vy / norm
    streaks = rng.random((size, size)).astype(np.float32)
    streaks = (streaks + np.roll(streaks, 1, 0) + np.roll(streaks, 1, 1)) / 3.0
    total = np.zeros_like(streaks)
    for direction in (1.0, -1.0):
        px, py = xs * size, ys * size
        for _ in range(18):
            ix = np.clip(px.astype(int), 0, size - 1)
            iy = np.clip(py.astype(int), 0, size - 1)
            total += streaks[iy, ix]
            px = px + direction * vx[iy, ix] * 1.5
            py = py + direction * vy[iy, ix] * 1.5
    lic = (total - total.min()) / np.ptp(total)
    lic = np.clip((lic - 0.5) * 2.2 + 0.5, 0, 1)
    tone = 0.55 * lic + 0.45 * _fractal_noise(rng, size, 3)
    colours = [(12, 24, 70), (28, 62, 140), (70, 120, 190), (150, 190, 210), (240, 210, 90)]
    return _to_image(_palette(tone, colours))


def mosaic(rng: np.random.Generator, size: int = SIZE) -> Image.Image:
    """Jewel-toned tesserae separated by pale grout (Voronoi cells on a jittered grid)."""
    per_side = 18
    grid = (np.arange(per_side) + 0.5) / per_side
    seeds = np.stack(np.meshgrid(grid, grid), -1).reshape(-1, 2)
    seeds += (rng.random(seeds.shape) - 0.5) * 0.8 / per_side
    seeds *= size
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    points = np.stack([xs.ravel(), ys.ravel()], 1)
    nearest = np.empty(len(points), np.int32)
    gap = np.empty(len(points), np.float32)
    for start in range(0, len(points), 16384):
        chunk = points[start : start + 16384]
        dist = np.sqrt(((chunk[:, None, :] - seeds[None, :, :]) ** 2).sum(-1))
        order = np.argpartition(dist, 2, axis=1)[:, :2]
        first = np.take_along_axis(dist, order, 1)
        swap = first[:, 0] > first[:, 1]
        nearest[start : start + 16384] = np.where(swap, order[:, 1], order[:, 0])
        gap[start : start + 16384] = np.abs(first[:, 0] - first[:, 1])
    colours = (
        np.asarray(
            [
                (160, 30, 40),
                (20, 90, 140),
                (220, 160, 30),
                (30, 120, 80),
                (90, 40, 120),
                (230, 110, 40),
                (15, 50, 90),
                (200, 190, 150),
            ],
            np.float32,
        )
        / 255.0
    )
    cell_colour = colours[rng.integers(0, len(colours), len(seeds))]
    cell_colour *= 0.8 + 0.4 * rng.random((len(seeds), 1))
    rgb = cell_colour[nearest].reshape(size, size, 3)
    rgb *= (0.9 + 0.2 * _fractal_noise(rng, size, 3))[..., None]
    grout = np.clip(gap.reshape(size, size) / 2.5, 0, 1)[..., None]
    rgb = rgb * grout + np.array([0.85, 0.82, 0.75], np.float32) * (1 - grout)
    return _to_image(rgb)


def hatching(rng: np.random.Generator, size: int = SIZE) -> Image.Image:
    """Ink cross-hatching on warm paper; darker tones get more layers of lines."""
    tone = _fractal_noise(rng, size, 4)
    paper = np.array([0.96, 0.92, 0.82], np.float32)
    ink = np.array([0.12, 0.10, 0.16], np.float32)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    coverage = np.zeros((size, size), np.float32)
    for layer, angle in enumerate((30.0, 120.0, 75.0, 165.0)):
        theta = np.deg2rad(angle + rng.normal(0, 4))
        wobble = 1.5 * _smooth_noise(rng, size, 6)
        phase = (xs * np.cos(theta) + ys * np.sin(theta)) / 7.0 + wobble
        line = np.clip(1.0 - np.abs(phase - np.round(phase)) * 4.0, 0, 1)
        threshold = 0.2 + 0.2 * layer
        coverage = np.maximum(coverage, line * (tone > threshold))
    rgb = paper * (1 - coverage[..., None]) + ink * coverage[..., None]
    rgb *= (0.95 + 0.05 * _smooth_noise(rng, size, 64))[..., None]
    return _to_image(rgb)


def watercolour(rng: np.random.Generator, size: int = SIZE) -> Image.Image:
    """Translucent watercolour blobs with darkened edges and paper grain."""
    rgb = np.ones((size, size, 3), np.float32) * np.array([0.97, 0.95, 0.9], np.float32)
    colours = (
        np.asarray(
            [(220, 80, 90), (60, 140, 200), (240, 190, 60), (90, 170, 120), (150, 90, 170)],
            np.float32,
        )
        / 255.0
    )
    warp = _fractal_noise(rng, size, 4)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size
    for _ in range(40):
        cx, cy = rng.random(2)
        radius = 0.05 + 0.11 * rng.random()
        dist = np.sqrt((xs - cx) ** 2 + (ys - cy) ** 2) / radius + 0.6 * (warp - 0.5)
        inside = np.clip((1.0 - dist) * 6.0, 0, 1)
        rim = np.exp(-(((dist - 0.92) / 0.07) ** 2)) * 0.5  # pigment pools at the edge
        density = (0.35 + 0.25 * rng.random()) * inside + rim * inside
        colour = colours[rng.integers(0, len(colours))]
        rgb *= 1.0 - density[..., None] * (1.0 - colour)  # subtractive, like stacked glazes
    grain = _smooth_noise(rng, size, 128)
    rgb *= (0.93 + 0.07 * grain)[..., None]
    return _to_image(rgb)


def impasto(rng: np.random.Generator, size: int = SIZE) -> Image.Image:
    """Thick impressionist dabs following a gentle flow, in autumn colours."""
    scale = 2  # draw at twice the size and downsample for smooth edges
    canvas = Image.new("RGB", (size * scale, size * scale), (120, 70, 40))
    draw = ImageDraw.Draw(canvas)
    flow = _fractal_noise(rng, size, 3) * 2 * np.pi
    colours = [
        (200, 90, 30),
        (230, 160, 50),
        (150, 40, 30),
        (90, 110, 50),
        (240, 210, 140),
        (60, 40, 30),
        (180, 120, 60),
    ]
    for _ in range(4200):
        x, y = rng.random(2) * size
        angle = flow[int(y), int(x)] + rng.normal(0, 0.2)
        length = (8 + 18 * rng.random()) * scale
        width = int((3 + 5 * rng.random()) * scale)
        base = np.asarray(colours[rng.integers(0, len(colours))], np.float32)
        colour = tuple(int(v) for v in np.clip(base * (0.8 + 0.4 * rng.random()), 0, 255))
        x0, y0 = x * scale, y * scale
        x1, y1 = x0 + np.cos(angle) * length, y0 + np.sin(angle) * length
        draw.line([(x0, y0), (x1, y1)], fill=colour, width=width)
        highlight = tuple(min(255, c + 35) for c in colour)
        draw.line([(x0 + 1, y0 - 1), (x1 + 1, y1 - 1)], fill=highlight, width=max(1, width // 4))
    return canvas.resize((size, size), Image.Resampling.LANCZOS)


STYLES: dict[str, Callable[[np.random.Generator, int], Image.Image]] = {
    "swirls": swirls,
    "mosaic": mosaic,
    "hatching": hatching,
    "watercolour": watercolour,
    "impasto": impasto,
}


def render_all(out_dir: Path = OUT_DIR, size: int = SIZE) -> list[Path]:
    """Render every style to ``out_dir/<name>.png`` (palette-quantised to keep files small)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for index, (name, render) in enumerate(STYLES.items()):
        image = render(np.random.default_rng(2024 + index), size)
        target = out_dir / f"{name}.png"
        image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
            target, optimize=True
        )
        written.append(target)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output folder")
    parser.add_argument("--size", type=int, default=SIZE, help="side length in pixels")
    args = parser.parse_args()
    for path in render_all(args.out, args.size):
        print(f"{path} {path.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
