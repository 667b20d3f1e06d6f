"""The ``panel`` section: the defaults on every photo x painting pair of two folders; a contact
sheet and the figures a person judges (``nst.quality``: edges kept, palette moved, texture at
the painting's scale), for the instant network's picture and for the optimizer's result (which
starts from it by default; ``--fast init=content`` starts from the photo). With ``against``
(``--against scales=1``) other settings run on every pair too, interleaved with the first in
the same process, for the speed ratio and the figures side by side."""

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
    against: StyleConfig | None = None,
) -> dict[str, Any]:
    """The defaults on every content x style pair of two folders: one contact sheet and figures.

    Writes ``output``.png (photo, painting, result and figures per pair) and ``output``.json.
    Per pair: the loss parts of the result on the float32 objective, seconds and steps, the
    edge agreement with the photo (and, for scale, the painting's own agreement with the
    photo), the palette shift toward the painting and the texture at the painting's scale
    (``nst.quality``). With ``against``, the same figures of its run of the pair under
    ``against`` (run right after, at the same size), and in the summary the ratio of the
    seconds and on how many pairs the texture is higher than there.
    """
    import tensorflow as tf

    from nst import quality
    from nst.engine import prepare
    from nst.front import result_of, stylize
    from nst.images import load_image
    from nst.instant import stylize_instant

    config = (config or base).replace(size=size)
    rows, entries = [], []
    for content_path in images_in(content_folder):
        photo = load_image(content_path)
        for style_path in images_in(style_folder):
            painting = load_image(style_path)
            instant = stylize_instant(photo, [painting], config)
            result = result_of(stylize(photo, [painting], config))
            evaluator = prepare(photo, [painting], evaluation_config(size, base))
            instant_loss, _ = evaluator.objective(tf.constant(instant[None]))
            row = {
                "content": content_path.name,
                "style": style_path.name,
                **_figures(evaluator, photo, painting, result),
                "edge_agreement_painting": quality.edge_agreement(photo, painting),
                "instant": {
                    "loss": float(instant_loss),
                    **quality.figures(photo, painting, instant),
                },
            }
            if against is not None:
                other = result_of(stylize(photo, [painting], against.replace(size=size)))
                row["against"] = _figures(evaluator, photo, painting, other)
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
                        f"texture at scale {alone['texture_at_scale']:.2f}",
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
                        f"texture at scale {row['texture_at_scale']:.2f}",
                    ],
                )
            )
            if against is not None:
                entries.append(
                    quality.PanelEntry(
                        content_path.stem,
                        f"{style_path.stem}, against",
                        photo,
                        painting,
                        other.image,
                        _against_lines(row["against"]),
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
        "median_texture_at_scale": median([row["texture_at_scale"] for row in rows]),
        "instant_median_edge_agreement": median([row["instant"]["edge_agreement"] for row in rows]),
        "instant_median_palette_shift": median([row["instant"]["palette_shift"] for row in rows]),
        "sheet": str(output.with_suffix(".png")),
    }
    if against is not None:
        compared = [row["against"] for row in rows]
        summary["against"] = against.to_dict()
        summary["against_median_edge_agreement"] = median([r["edge_agreement"] for r in compared])
        summary["against_median_palette_shift"] = median([r["palette_shift"] for r in compared])
        summary["against_median_texture_at_scale"] = median(
            [r["texture_at_scale"] for r in compared]
        )
        summary["speedup"] = sum(r["seconds"] for r in compared) / sum(
            row["seconds"] for row in rows
        )
        summary["texture_higher_pairs"] = sum(
            row["texture_at_scale"] > row["against"]["texture_at_scale"] for row in rows
        )
    output.with_suffix(".json").write_text(json.dumps(summary, indent=1))
    return summary


def _figures(evaluator: Any, photo: Any, painting: Any, result: Any) -> dict[str, Any]:
    """One result's figures: its loss on the evaluation objective, seconds, steps, edges kept,
    palette moved and texture at the painting's scale."""
    import tensorflow as tf

    from nst import quality

    total, parts = evaluator.objective(tf.constant(result.image[None]))
    return {
        "loss": float(total),
        "parts": {name: float(value) for name, value in parts.items()},
        "seconds": result.timings["total"],
        "steps": result.steps_done,
        "note": result.note,
        **quality.figures(photo, painting, result.image),
    }


def _against_lines(figures: dict[str, Any]) -> list[str]:
    """The contact sheet's text beside the ``against`` run of a pair."""
    return [
        f"against: loss {figures['loss']:.3f}",
        f"{figures['seconds']:.1f} s, {figures['steps']} steps",
        f"edges kept {figures['edge_agreement']:.2f}",
        f"palette moved {figures['palette_shift']:.2f} of the way",
        f"texture at scale {figures['texture_at_scale']:.2f}",
    ]


def format_rows(summary: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(measure, value, target) rows for the benchmark table: one per pair, then the medians
    (and, with ``against``, the ratio of the seconds and the pairs where texture is higher)."""
    compared = "against" in summary
    rows = []
    for pair in summary["pairs"]:
        value = f"{pair['seconds']:.1f} s, {_cell(pair)}"
        if compared:
            other = pair["against"]
            value += f" | against: {other['seconds']:.1f} s, {_cell(other)}"
        name = f"panel {summary['size']} px: {Path(pair['content']).stem} × "
        rows.append((name + Path(pair["style"]).stem, value, ""))
    medians = (
        f"texture {summary['median_texture_at_scale']:.2f}, "
        f"edges {summary['median_edge_agreement']:.2f}, "
        f"palette {100 * summary['median_palette_shift']:.0f}%"
    )
    if compared:
        medians += (
            f" | against: texture {summary['against_median_texture_at_scale']:.2f}, "
            f"edges {summary['against_median_edge_agreement']:.2f}, "
            f"palette {100 * summary['against_median_palette_shift']:.0f}%"
        )
    rows.append((f"panel {summary['size']} px: medians", medians, ""))
    if compared:
        rows.append(
            (
                "panel: seconds of all pairs, against / defaults",
                f"{summary['speedup']:.2f}×",
                "≥ 3×",
            )
        )
        rows.append(
            (
                "panel: pairs with higher texture at scale than against",
                f"{summary['texture_higher_pairs']} of {len(summary['pairs'])}",
                "≥ 9 of 12",
            )
        )
    return rows


def _cell(figures: dict[str, Any]) -> str:
    return (
        f"texture {figures['texture_at_scale']:.2f}, edges {figures['edge_agreement']:.2f}, "
        f"palette {100 * figures['palette_shift']:.0f}%"
    )
