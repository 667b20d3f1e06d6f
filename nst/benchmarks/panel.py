"""The ``panel`` section: the defaults on every photo x painting pair of two folders; a contact
sheet and the figures a person judges (``nst.quality``: edges kept, palette moved), for the
instant network's picture and for the optimizer's result (which starts from it by default;
``--fast init=content`` starts from the photo)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nst.benchmarks.common import DEFAULTS, median
from nst.benchmarks.time_to_quality import evaluation_config
from nst.config import StyleConfig

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def images_in(folder: str | Path) -> list[Path]:
    paths = sorted(path for path in Path(folder).iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(f"{folder}: no images (.jpg, .png, .webp) in this folder.")
    return paths


def panel_section(
    content_folder: str | Path,
    style_folder: str | Path,
    size: int,
    output: str | Path,
    base: StyleConfig = DEFAULTS,
    config: StyleConfig | None = None,
) -> dict[str, Any]:
    """The defaults on every content x style pair of two folders: one contact sheet and figures.

    Writes ``output``.png (photo, painting, result and figures per pair) and ``output``.json.
    Per pair: the loss parts of the result on the float32 objective, seconds and steps, the
    edge agreement with the photo (and, for scale, the painting's own agreement with the
    photo) and the palette shift toward the painting (``nst.quality``).
    """
    import tensorflow as tf

    from nst import quality
    from nst.engine import prepare, run_stylize
    from nst.images import load_image
    from nst.instant import stylize_instant

    config = (config or base).replace(size=size)
    rows, entries = [], []
    for content_path in images_in(content_folder):
        photo = load_image(content_path)
        for style_path in images_in(style_folder):
            painting = load_image(style_path)
            instant = stylize_instant(photo, [painting], config)
            result = run_stylize(photo, [painting], config)
            evaluator = prepare(photo, [painting], evaluation_config(size, base))
            instant_loss, _ = evaluator.objective(tf.constant(instant[None]))
            total, parts = evaluator.objective(tf.constant(result.image[None]))
            row = {
                "content": content_path.name,
                "style": style_path.name,
                "loss": float(total),
                "parts": {name: float(value) for name, value in parts.items()},
                "seconds": result.timings["total"],
                "steps": result.steps_done,
                "edge_agreement": quality.edge_agreement(photo, result.image),
                "edge_agreement_painting": quality.edge_agreement(photo, painting),
                "palette_shift": quality.palette_shift(photo, painting, result.image),
                "note": result.note,
                "instant": {
                    "loss": float(instant_loss),
                    "edge_agreement": quality.edge_agreement(photo, instant),
                    "palette_shift": quality.palette_shift(photo, painting, instant),
                },
            }
            rows.append(row)
            alone = row["instant"]
            entries.append(
                quality.PanelEntry(
                    content_path.stem,
                    f"{style_path.stem}, instant",
                    photo,
                    painting,
                    instant,
                    [
                        f"the instant network alone: loss {alone['loss']:.3f}",
                        f"edges kept {alone['edge_agreement']:.2f}",
                        f"palette moved {alone['palette_shift']:.2f} of the way",
                    ],
                )
            )
            part_text = " + ".join(f"{name} {value:.3f}" for name, value in row["parts"].items())
            entries.append(
                quality.PanelEntry(
                    content_path.stem,
                    style_path.stem,
                    photo,
                    painting,
                    result.image,
                    [
                        f"loss {row['loss']:.3f} = {part_text}",
                        f"{row['seconds']:.1f} s, {row['steps']} steps",
                        f"edges kept {row['edge_agreement']:.2f} "
                        f"(painting itself {row['edge_agreement_painting']:.2f})",
                        f"palette moved {row['palette_shift']:.2f} of the way",
                    ],
                )
            )
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".png").write_bytes(quality.contact_sheet(entries))
    summary = {
        "size": size,
        "config": config.to_dict(),
        "pairs": rows,
        "median_edge_agreement": median([row["edge_agreement"] for row in rows]),
        "median_palette_shift": median([row["palette_shift"] for row in rows]),
        "instant_median_edge_agreement": median([row["instant"]["edge_agreement"] for row in rows]),
        "instant_median_palette_shift": median([row["instant"]["palette_shift"] for row in rows]),
        "sheet": str(output.with_suffix(".png")),
    }
    output.with_suffix(".json").write_text(json.dumps(summary, indent=1))
    return summary
